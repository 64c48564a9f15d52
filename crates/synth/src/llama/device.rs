//! The tensor path of [`Llama::forward`]: candle tensor ops only, on the model's device
//! (what runs on a GPU). The caches of all slots of a layer live in one device tensor in
//! the cache dtype ([`Llama::set_kv_dtype`]); a pass writes every new key and value with one
//! scatter per layer, and attends for every decoding sequence (one new token) at once:
//! one gather of their slots' rows, one batched product for the scores, a mask for each
//! sequence's length, one softmax and one product with the values, whatever the batch
//! size. Sequences fed a whole prompt (prefill) attend one by one, each a causal block.

use candle_core::{DType, Tensor};

use super::{check_slots, KvCache, Llama};
use crate::error::Result;

/// Where a pass's rows come from and go to, worked out once on the host.
struct Plan {
    /// (first row, rows) of each sequence in the pass.
    spans: Vec<(usize, usize)>,
    /// Each sequence's cached positions before the pass.
    len0: Vec<usize>,
    /// Sequences with one new token, attended together.
    decode: Vec<usize>,
    /// Sequences with several (a prompt), attended one by one.
    prefill: Vec<usize>,
}

impl Llama {
    /// [`Llama::forward`] in candle tensor ops on the model's device (see the module). On
    /// the CPU it computes the same as the plain-Rust path (tested), only slower.
    pub fn forward_tensors(
        &self,
        inputs: &[&[u32]],
        slots: &[usize],
        cache: &mut KvCache,
    ) -> Result<Tensor> {
        check_slots(inputs, slots, cache);
        let c = &self.cfg;
        let dev = &self.device;
        let (hd, nh, nkv) = (c.head_dim, c.n_heads, c.n_kv_heads);
        let (group, w) = (nh / nkv, nkv * hd);
        let mut ids = Vec::new();
        let mut rows: Vec<(usize, usize)> = Vec::new(); // (sequence, position)
        let mut plan = Plan {
            spans: Vec::with_capacity(inputs.len()),
            len0: slots.iter().map(|&sl| cache.lens[sl]).collect(),
            decode: Vec::new(),
            prefill: Vec::new(),
        };
        for (s, toks) in inputs.iter().enumerate() {
            plan.spans.push((rows.len(), toks.len()));
            if toks.len() == 1 {
                plan.decode.push(s);
            } else {
                plan.prefill.push(s);
            }
            for (t, &id) in toks.iter().enumerate() {
                ids.push(id);
                rows.push((s, plan.len0[s] + t));
            }
        }
        let n = rows.len();
        let need = rows.iter().map(|&(_, pos)| pos + 1).max().unwrap_or(0);
        self.reserve(cache, need)?;
        let cap = cache.cap;
        // Each new row's key and value go to row slot·cap + position of the layer's cache.
        let dst: Vec<u32> = rows
            .iter()
            .flat_map(|&(s, pos)| std::iter::repeat_n((slots[s] * cap + pos) as u32, w))
            .collect();
        let dst = Tensor::from_vec(dst, (n, w), dev)?;
        let decode = DecodeBatch::new(&plan, slots, cap, dev)?;
        // Attention comes out decode block first, then each prefill block: back to row order.
        let order = if plan.prefill.is_empty() {
            None
        } else {
            let mut start = vec![0usize; inputs.len()];
            let mut at = 0;
            for &s in plan.decode.iter().chain(&plan.prefill) {
                start[s] = at;
                at += plan.spans[s].1;
            }
            let order: Vec<u32> = rows
                .iter()
                .enumerate()
                .map(|(r, &(s, _))| (start[s] + r - plan.spans[s].0) as u32)
                .collect();
            Some(Tensor::from_vec(order, n, dev)?)
        };
        let ids_t = Tensor::from_vec(ids, n, dev)?;
        let mut x = self.embed.index_select(&ids_t, 0)?;
        let (cos, sin) = self.rope_tables(&rows);
        let cos = Tensor::from_vec(cos, (n, hd / 2), dev)?;
        let sin = Tensor::from_vec(sin, (n, hd / 2), dev)?;
        let rope = |t: &Tensor, heads: usize| -> Result<Tensor> {
            let t = t
                .reshape((n, heads, hd))?
                .transpose(0, 1)?
                .unsqueeze(0)?
                .contiguous()?;
            let t = if c.rope_interleaved {
                candle_nn::rotary_emb::rope_i(&t, &cos, &sin)?
            } else {
                candle_nn::rotary_emb::rope(&t, &cos, &sin)?
            };
            Ok(t.squeeze(0)?
                .transpose(0, 1)?
                .contiguous()?
                .reshape((n, heads * hd))?)
        };
        let scale = 1.0 / (hd as f64).sqrt();
        for (li, layer) in self.layers.iter().enumerate() {
            let (ck, cv) = (&cache.dk[li], &cache.dv[li]);
            let kv = ck.dtype();
            let h = candle_nn::ops::rms_norm(&x, &layer.attn_norm, c.norm_eps as f32)?;
            let qkv = h.matmul(&layer.wqkv)?;
            let q = rope(&qkv.narrow(1, 0, nh * hd)?, nh)?;
            let k = rope(&qkv.narrow(1, nh * hd, w)?, nkv)?.to_dtype(kv)?;
            let v = qkv
                .narrow(1, (nh + nkv) * hd, w)?
                .contiguous()?
                .to_dtype(kv)?;
            ck.scatter_set(&dst, &k, 0)?;
            cv.scatter_set(&dst, &v, 0)?;
            let mut blocks = Vec::with_capacity(1 + plan.prefill.len());
            if let Some(d) = &decode {
                let sd = plan.decode.len();
                let heads = |t: &Tensor| -> Result<Tensor> {
                    Ok(t.index_select(&d.gather, 0)?
                        .reshape((sd, d.lmax, nkv, hd))?
                        .transpose(1, 2)?
                        .contiguous()?)
                };
                let (kh, vh) = (heads(ck)?, heads(cv)?);
                let qd = match &d.rows {
                    Some(r) => q.index_select(r, 0)?,
                    None => q.clone(),
                };
                let qd = qd.reshape((sd, nkv, group, hd))?.to_dtype(kv)?;
                // Products in the cache's dtype (f32 accumulation in the GEMM), softmax in f32.
                let scores =
                    (qd.matmul(&kh.t()?)?.to_dtype(DType::F32)? * scale)?.broadcast_add(&d.mask)?;
                let p = candle_nn::ops::softmax_last_dim(&scores)?.to_dtype(kv)?;
                blocks.push(
                    p.matmul(&vh)?
                        .to_dtype(DType::F32)?
                        .reshape((sd, nh * hd))?,
                );
            }
            for &s in &plan.prefill {
                let (r0, m) = plan.spans[s];
                let (base, total) = (slots[s] * cap, plan.len0[s] + m);
                let heads = |t: &Tensor| -> Result<Tensor> {
                    Ok(t.narrow(0, base, total)?
                        .reshape((total, nkv, hd))?
                        .transpose(0, 1)?
                        .contiguous()?)
                };
                let (kh, vh) = (heads(ck)?, heads(cv)?);
                let qh = q
                    .narrow(0, r0, m)?
                    .reshape((m, nkv, group, hd))?
                    .transpose(0, 1)?
                    .contiguous()?
                    .reshape((nkv, m * group, hd))?
                    .to_dtype(kv)?;
                let mask = causal_block(m, group, plan.len0[s], dev)?;
                let scores =
                    (qh.matmul(&kh.t()?)?.to_dtype(DType::F32)? * scale)?.broadcast_add(&mask)?;
                let p = candle_nn::ops::softmax_last_dim(&scores)?.to_dtype(kv)?;
                blocks.push(
                    p.matmul(&vh)?
                        .to_dtype(DType::F32)?
                        .reshape((nkv, m, group, hd))?
                        .transpose(0, 1)?
                        .contiguous()?
                        .reshape((m, nh * hd))?,
                );
            }
            let att = match &order {
                None => blocks.pop().expect("a pass has at least one sequence"),
                Some(order) => Tensor::cat(&blocks, 0)?.index_select(order, 0)?,
            };
            x = self.finish_layer(layer, &x, &att)?;
        }
        let last: Vec<u32> = plan
            .spans
            .iter()
            .map(|&(r0, m)| (r0 + m - 1) as u32)
            .collect();
        for (s, toks) in inputs.iter().enumerate() {
            cache.lens[slots[s]] += toks.len();
        }
        let last = Tensor::from_vec(last, inputs.len(), dev)?;
        let x = x.index_select(&last, 0)?;
        let x = candle_nn::ops::rms_norm(&x, &self.norm, c.norm_eps as f32)?;
        Ok(x.matmul(&self.lm_head)?)
    }

    /// Room for `need` positions in every slot of the device caches: grown by doubling,
    /// what is there kept (one copy per layer, all slots at once).
    fn reserve(&self, cache: &mut KvCache, need: usize) -> Result<()> {
        let layers = self.cfg.n_layers;
        if need <= cache.cap && cache.dk.len() == layers {
            return Ok(());
        }
        let (slots, old_cap) = (cache.slots(), cache.cap);
        let w = self.cfg.n_kv_heads * self.cfg.head_dim;
        let cap = need.next_power_of_two().max(64);
        let dtype = cache.dk.first().map_or(self.kv_dtype, Tensor::dtype);
        let grow = |old: Option<&Tensor>| -> Result<Tensor> {
            let t = Tensor::zeros((slots, cap, w), dtype, &self.device)?;
            if let Some(old) = old {
                t.slice_set(&old.reshape((slots, old_cap, w))?, 1, 0)?;
            }
            Ok(t.reshape((slots * cap, w))?)
        };
        cache.dk = (0..layers)
            .map(|l| grow(cache.dk.get(l)))
            .collect::<Result<_>>()?;
        cache.dv = (0..layers)
            .map(|l| grow(cache.dv.get(l)))
            .collect::<Result<_>>()?;
        cache.cap = cap;
        Ok(())
    }
}

/// What the decoding sequences of a pass read, built once per pass.
struct DecodeBatch {
    /// Positions read per sequence: the longest one's, after this token.
    lmax: usize,
    /// Cache rows read: rows `0..lmax` of each decoding sequence's slot, in order.
    gather: Tensor,
    /// Their query rows in the pass, or `None` when every sequence decodes (all rows).
    rows: Option<Tensor>,
    /// (sequences, 1, 1, lmax): 0 on a sequence's own positions, -inf past them.
    mask: Tensor,
}

impl DecodeBatch {
    fn new(
        plan: &Plan,
        slots: &[usize],
        cap: usize,
        dev: &candle_core::Device,
    ) -> Result<Option<DecodeBatch>> {
        if plan.decode.is_empty() {
            return Ok(None);
        }
        let sd = plan.decode.len();
        let lmax = plan
            .decode
            .iter()
            .map(|&s| plan.len0[s] + 1)
            .max()
            .unwrap_or(1);
        let gather: Vec<u32> = plan
            .decode
            .iter()
            .flat_map(|&s| (0..lmax).map(move |j| (slots[s] * cap + j) as u32))
            .collect();
        let mask: Vec<f32> = plan
            .decode
            .iter()
            .flat_map(|&s| {
                let len = plan.len0[s] + 1;
                (0..lmax).map(move |j| if j < len { 0.0 } else { f32::NEG_INFINITY })
            })
            .collect();
        let rows = if plan.prefill.is_empty() {
            None
        } else {
            let r: Vec<u32> = plan
                .decode
                .iter()
                .map(|&s| plan.spans[s].0 as u32)
                .collect();
            Some(Tensor::from_vec(r, sd, dev)?)
        };
        Ok(Some(DecodeBatch {
            lmax,
            gather: Tensor::from_vec(gather, sd * lmax, dev)?,
            rows,
            mask: Tensor::from_vec(mask, (sd, 1, 1, lmax), dev)?,
        }))
    }
}

/// The causal mask of a prompt of `m` rows after `len0` cached positions, its query heads
/// stacked `group` to a row: query row (i, head-in-group) sees positions up to `len0 + i`.
fn causal_block(m: usize, group: usize, len0: usize, dev: &candle_core::Device) -> Result<Tensor> {
    let total = len0 + m;
    let mask: Vec<f32> = (0..m * group)
        .flat_map(|r| {
            let i = r / group;
            (0..total).map(move |j| {
                if j <= len0 + i {
                    0.0
                } else {
                    f32::NEG_INFINITY
                }
            })
        })
        .collect();
    Ok(Tensor::from_vec(mask, (m * group, total), dev)?)
}
