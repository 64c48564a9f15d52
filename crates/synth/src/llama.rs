//! A batched Llama-family decoder for generation: weights from GGUF (dequantized once to
//! f32) or HF safetensors, one forward pass over many sequences at different positions,
//! each in its own slot of a batch KV cache.
//!
//! candle-transformers' Llama models share one position index across a batch and have no
//! padding mask, so they cannot batch prompts of different lengths; here every sequence
//! keeps its own length and RoPE positions, and the projections of all sequences run as
//! one (rows × d) @ (d × k) matmul. On the CPU attention itself (a few rows per sequence)
//! runs in plain Rust over the per-sequence caches, parallel across sequences and heads; on
//! a GPU it runs in tensor ops over all decoding sequences at once (`device`).

mod attend;
mod device;
mod load;

use candle_core::{DType, Device, Tensor, D};
use rayon::prelude::*;

use crate::error::Result;
use attend::{attend, AttnRow, AttnShape};

/// The shape of a Llama-family model.
#[derive(Debug, Clone, PartialEq)]
pub struct LlamaConfig {
    pub vocab_size: usize,
    pub d_model: usize,
    pub n_layers: usize,
    pub n_heads: usize,
    pub n_kv_heads: usize,
    pub head_dim: usize,
    pub d_ff: usize,
    pub rope_theta: f32,
    pub norm_eps: f64,
    /// Longest sequence (prompt + generation) the model was trained for.
    pub max_seq_len: usize,
    /// GGUF files from llama.cpp's converter store Q/K rows permuted for rotation of
    /// adjacent pairs (2i, 2i+1); HF checkpoints rotate halves (i, i + head_dim/2).
    pub rope_interleaved: bool,
}

/// Projections are stored transposed, (in, out), after loading checks them as (out, in).
struct Layer {
    attn_norm: Tensor,
    /// Q, K and V projections stacked by rows: ((n_heads + 2·n_kv_heads)·head_dim, d).
    wqkv: Tensor,
    wo: Tensor,
    ffn_norm: Tensor,
    /// Gate and up projections stacked by rows: (2·d_ff, d).
    w_gate_up: Tensor,
    w_down: Tensor,
}

/// The model's weights, in f32 on the CPU.
pub struct Llama {
    cfg: LlamaConfig,
    /// Where the weights live and the forward pass runs.
    device: Device,
    /// The dtype of the tensor path's key/value caches: bf16 on a GPU (half the memory and
    /// the bytes each decode step reads), f32 on the CPU. Attention's scores and softmax
    /// stay f32.
    kv_dtype: DType,
    embed: Tensor,
    layers: Vec<Layer>,
    norm: Tensor,
    lm_head: Tensor,
}

/// The keys and values of a batch of sequences: a fixed number of slots, each holding one
/// sequence's cache until [`KvCache::clear`] frees it for the next. The CPU path keeps each
/// slot's rows in host vectors; the tensor path keeps all slots of a layer in one device
/// tensor, so one launch reads the caches of every decoding sequence.
#[derive(Clone)]
pub struct KvCache {
    /// Positions cached so far, per slot.
    lens: Vec<usize>,
    /// The CPU path's caches, per slot and layer: `[position][kv_head][head_dim]`.
    k: Vec<Vec<Vec<f32>>>,
    v: Vec<Vec<Vec<f32>>>,
    /// The tensor path's caches, per layer: `(slots · cap, n_kv_heads · head_dim)` on the
    /// model's device in the cache dtype, slot `s` in rows `s·cap .. (s+1)·cap`, its first
    /// `lens[s]` rows filled; grown by doubling `cap`.
    dk: Vec<Tensor>,
    dv: Vec<Tensor>,
    cap: usize,
}

impl KvCache {
    /// Sequences the cache holds at once.
    pub fn slots(&self) -> usize {
        self.lens.len()
    }

    /// Positions cached so far in `slot` (prompt + generated tokens fed back).
    pub fn len(&self, slot: usize) -> usize {
        self.lens[slot]
    }

    /// Frees `slot` for a new sequence. Its old rows stay until overwritten: attention
    /// reads only the first `len` rows of a slot.
    pub fn clear(&mut self, slot: usize) {
        self.lens[slot] = 0;
        for l in self.k[slot].iter_mut().chain(self.v[slot].iter_mut()) {
            l.clear();
        }
    }
}

impl Llama {
    pub fn config(&self) -> &LlamaConfig {
        &self.cfg
    }

    /// A fresh, empty cache of `slots` sequences.
    pub fn new_cache(&self, slots: usize) -> KvCache {
        let layers = self.cfg.n_layers;
        KvCache {
            lens: vec![0; slots],
            k: vec![vec![Vec::new(); layers]; slots],
            v: vec![vec![Vec::new(); layers]; slots],
            dk: Vec::new(),
            dv: Vec::new(),
            cap: 0,
        }
    }

    /// The dtype of the tensor path's key/value caches (see the field); f32 or bf16. Set it
    /// before the first forward pass of a cache: a cache keeps the dtype it was grown in.
    pub fn set_kv_dtype(&mut self, dtype: DType) -> Result<()> {
        if !matches!(dtype, DType::F32 | DType::BF16) {
            return Err(candle_core::Error::Msg(format!(
                "key/value cache dtype {dtype:?}: only f32 and bf16"
            ))
            .into());
        }
        self.kv_dtype = dtype;
        Ok(())
    }

    pub fn kv_dtype(&self) -> DType {
        self.kv_dtype
    }

    /// The device the model computes on.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// The same model with its weights on `device` (a CUDA GPU under the `cuda` feature).
    pub fn to_device(self, device: &Device) -> Result<Llama> {
        let mv = |t: Tensor| -> Result<Tensor> { Ok(t.to_device(device)?) };
        let mut layers = Vec::with_capacity(self.layers.len());
        for l in self.layers {
            layers.push(Layer {
                attn_norm: mv(l.attn_norm)?,
                wqkv: mv(l.wqkv)?,
                wo: mv(l.wo)?,
                ffn_norm: mv(l.ffn_norm)?,
                w_gate_up: mv(l.w_gate_up)?,
                w_down: mv(l.w_down)?,
            });
        }
        Ok(Llama {
            cfg: self.cfg,
            device: device.clone(),
            kv_dtype: if device.is_cuda() {
                DType::BF16
            } else {
                DType::F32
            },
            embed: mv(self.embed)?,
            layers,
            norm: mv(self.norm)?,
            lm_head: mv(self.lm_head)?,
        })
    }

    /// One forward pass over several sequences: `inputs[i]` are the next tokens of the
    /// sequence in slot `slots[i]` of `cache` (a whole prompt, or the one token just
    /// sampled). Appends them to the cache and returns the logits after each sequence's last
    /// token, shape (inputs.len(), vocab). On the CPU attention runs in plain Rust over each
    /// slot's rows; elsewhere in tensor ops ([`Llama::forward_tensors`]).
    pub fn forward(
        &self,
        inputs: &[&[u32]],
        slots: &[usize],
        cache: &mut KvCache,
    ) -> Result<Tensor> {
        if !self.device.is_cpu() {
            return self.forward_tensors(inputs, slots, cache);
        }
        check_slots(inputs, slots, cache);
        let c = &self.cfg;
        let (hd, nh, nkv) = (c.head_dim, c.n_heads, c.n_kv_heads);
        // Row layout: the tokens of sequence 0, then of sequence 1, ...
        let mut ids = Vec::new();
        let mut rows: Vec<(usize, usize)> = Vec::new(); // (sequence, position)
        let mut last_rows = Vec::with_capacity(inputs.len());
        for (s, toks) in inputs.iter().enumerate() {
            for (t, &id) in toks.iter().enumerate() {
                ids.push(id);
                rows.push((s, cache.lens[slots[s]] + t));
            }
            last_rows.push((rows.len() - 1) as u32);
        }
        let n = rows.len();
        let ids_t = Tensor::from_vec(ids, n, &Device::Cpu)?;
        let mut x = self.embed.index_select(&ids_t, 0)?;
        let (cos, sin) = self.rope_tables(&rows);
        let qkv_w = (nh + 2 * nkv) * hd;
        for (li, layer) in self.layers.iter().enumerate() {
            let h = candle_nn::ops::rms_norm(&x, &layer.attn_norm, c.norm_eps as f32)?;
            let qkv = h.matmul(&layer.wqkv)?;
            let mut qkv: Vec<f32> = qkv.flatten_all()?.to_vec1()?;
            // RoPE on the q and k heads of every row, at that row's own position.
            qkv.par_chunks_mut(qkv_w).enumerate().for_each(|(r, row)| {
                let (cs, sn) = (
                    &cos[r * hd / 2..(r + 1) * hd / 2],
                    &sin[r * hd / 2..(r + 1) * hd / 2],
                );
                for head in row[..(nh + nkv) * hd].chunks_mut(hd) {
                    rotate(head, cs, sn, c.rope_interleaved);
                }
            });
            // Append k and v to each sequence's cache.
            for (r, &(s, _)) in rows.iter().enumerate() {
                let row = &qkv[r * qkv_w..(r + 1) * qkv_w];
                cache.k[slots[s]][li].extend_from_slice(&row[nh * hd..(nh + nkv) * hd]);
                cache.v[slots[s]][li].extend_from_slice(&row[(nh + nkv) * hd..]);
            }
            let mut att = vec![0f32; n * nh * hd];
            {
                let cache = &*cache;
                let scale = 1.0 / (hd as f32).sqrt();
                // One task per row over all its heads: each cached position's keys and
                // values (all KV heads, contiguous) are read once, front to back, which is
                // what decoding is bound by (the caches outgrow the CPU caches).
                att.par_chunks_mut(nh * hd).enumerate().for_each_init(
                    Vec::new,
                    |scores, (r, out)| {
                        let (s, pos) = rows[r];
                        let row = AttnRow {
                            q: &qkv[r * qkv_w..r * qkv_w + nh * hd],
                            k: &cache.k[slots[s]][li],
                            v: &cache.v[slots[s]][li],
                            shape: AttnShape {
                                n_kv_heads: nkv,
                                head_dim: hd,
                                len: pos + 1,
                                scale,
                            },
                        };
                        attend(row, scores, out);
                    },
                );
            }
            let att = Tensor::from_vec(att, (n, nh * hd), &Device::Cpu)?;
            x = self.finish_layer(layer, &x, &att)?;
        }
        for (s, toks) in inputs.iter().enumerate() {
            cache.lens[slots[s]] += toks.len();
        }
        let last = Tensor::from_vec(last_rows, inputs.len(), &Device::Cpu)?;
        let x = x.index_select(&last, 0)?;
        let x = candle_nn::ops::rms_norm(&x, &self.norm, c.norm_eps as f32)?;
        Ok(x.matmul(&self.lm_head)?)
    }

    /// The rest of a layer after attention: output projection and residual, then the
    /// SwiGLU MLP and its residual.
    fn finish_layer(&self, layer: &Layer, x: &Tensor, att: &Tensor) -> Result<Tensor> {
        let c = &self.cfg;
        let x = (x + att.matmul(&layer.wo)?)?;
        let h = candle_nn::ops::rms_norm(&x, &layer.ffn_norm, c.norm_eps as f32)?;
        let gu = h.matmul(&layer.w_gate_up)?;
        let gate = gu.narrow(D::Minus1, 0, c.d_ff)?;
        let up = gu.narrow(D::Minus1, c.d_ff, c.d_ff)?;
        let mlp = (candle_nn::ops::silu(&gate)? * up)?.matmul(&layer.w_down)?;
        Ok((x + mlp)?)
    }

    /// cos and sin of every row's rotation angles, `rows × head_dim/2`.
    fn rope_tables(&self, rows: &[(usize, usize)]) -> (Vec<f32>, Vec<f32>) {
        let half = self.cfg.head_dim / 2;
        // In f32, as candle-transformers builds its tables, so both agree to rounding.
        let inv: Vec<f32> = (0..half)
            .map(|i| {
                1.0 / self
                    .cfg
                    .rope_theta
                    .powf((2 * i) as f32 / self.cfg.head_dim as f32)
            })
            .collect();
        let mut cos = Vec::with_capacity(rows.len() * half);
        let mut sin = Vec::with_capacity(rows.len() * half);
        for &(_, pos) in rows {
            for &f in &inv {
                let a = pos as f32 * f;
                cos.push(a.cos());
                sin.push(a.sin());
            }
        }
        (cos, sin)
    }
}

/// Rotates one head in place: pairs (2i, 2i+1) when interleaved, else (i, i + d/2).
fn rotate(x: &mut [f32], cos: &[f32], sin: &[f32], interleaved: bool) {
    let half = x.len() / 2;
    for i in 0..half {
        let (a, b) = if interleaved {
            (2 * i, 2 * i + 1)
        } else {
            (i, i + half)
        };
        let (x0, x1) = (x[a], x[b]);
        x[a] = x0 * cos[i] - x1 * sin[i];
        x[b] = x0 * sin[i] + x1 * cos[i];
    }
}

/// A forward pass's inputs against its cache: one slot per sequence, each slot once, every
/// sequence with at least one new token. A caller's bug, not bad input: it panics.
fn check_slots(inputs: &[&[u32]], slots: &[usize], cache: &KvCache) {
    assert_eq!(inputs.len(), slots.len(), "one slot per sequence");
    let mut seen = vec![false; cache.slots()];
    for (toks, &s) in inputs.iter().zip(slots) {
        assert!(
            s < cache.slots(),
            "slot {s} of a {}-slot cache",
            cache.slots()
        );
        assert!(
            !std::mem::replace(&mut seen[s], true),
            "slot {s} twice in one pass"
        );
        assert!(!toks.is_empty(), "a sequence needs at least one new token");
    }
}
