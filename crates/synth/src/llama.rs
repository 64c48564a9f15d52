//! A batched Llama-family decoder for generation: weights from GGUF (dequantized once to
//! f32) or HF safetensors, one forward pass over many sequences at different positions,
//! each with its own KV cache.
//!
//! candle-transformers' Llama models share one position index across a batch and have no
//! padding mask, so they cannot batch prompts of different lengths; here every sequence
//! keeps its own length and RoPE positions, and the projections of all sequences run as
//! one (rows × d) @ (d × k) matmul. Attention itself (a few rows per sequence) runs in
//! plain Rust over the per-sequence caches, parallel across sequences and heads.

use std::collections::HashMap;
use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};

use candle_core::quantized::gguf_file;
use candle_core::{DType, Device, Tensor, D};
use rayon::prelude::*;

use crate::error::{Result, SynthError};

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

/// One sequence's cached keys and values, per layer: `[position][kv_head][head_dim]`.
#[derive(Default, Clone)]
pub struct KvCache {
    k: Vec<Vec<f32>>,
    v: Vec<Vec<f32>>,
    len: usize,
    /// The tensor path's caches, per layer: `(capacity, n_kv_heads · head_dim)` on the
    /// model's device, the first `len` rows filled; grown by doubling.
    dk: Vec<Tensor>,
    dv: Vec<Tensor>,
    cap: usize,
}

impl KvCache {
    /// Positions cached so far (prompt + generated tokens fed back).
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

/// Reads a GGUF metadata value as u32, naming the key when it is missing.
fn md_u32(ct: &gguf_file::Content, path: &Path, key: &str) -> Result<u32> {
    ct.metadata
        .get(key)
        .and_then(|v| v.to_u32().ok())
        .ok_or_else(|| SynthError::Weights {
            path: path.to_path_buf(),
            message: format!("GGUF metadata `{key}` is missing or not an integer"),
        })
}

impl Llama {
    pub fn config(&self) -> &LlamaConfig {
        &self.cfg
    }

    /// Loads a GGUF file of architecture `llama`, dequantizing every tensor to f32.
    pub fn from_gguf(path: &Path) -> Result<(Llama, gguf_file::Content)> {
        let file = File::open(path).map_err(|e| missing_or_io(path, e, "GGUF model"))?;
        let mut reader = BufReader::new(file);
        let ct = gguf_file::Content::read(&mut reader).map_err(|e| SynthError::Weights {
            path: path.to_path_buf(),
            message: format!("not a readable GGUF file: {e}"),
        })?;
        let arch = ct
            .metadata
            .get("general.architecture")
            .and_then(|v| v.to_string().ok())
            .cloned()
            .unwrap_or_default();
        if arch != "llama" {
            return Err(SynthError::Unsupported {
                path: path.to_path_buf(),
                message: format!(
                    "general.architecture is `{arch}`; the generator runs Llama-family models (`llama`) only"
                ),
            });
        }
        if ct.metadata.contains_key("llama.expert_count") {
            return Err(SynthError::Unsupported {
                path: path.to_path_buf(),
                message: "mixture-of-experts Llama models are not supported".into(),
            });
        }
        let n_heads = md_u32(&ct, path, "llama.attention.head_count")? as usize;
        let d_model = md_u32(&ct, path, "llama.embedding_length")? as usize;
        let head_dim = md_u32(&ct, path, "llama.rope.dimension_count")
            .map(|v| v as usize)
            .unwrap_or(d_model / n_heads.max(1));
        let n_kv_heads = md_u32(&ct, path, "llama.attention.head_count_kv")
            .map(|v| v as usize)
            .unwrap_or(n_heads);
        let rope_theta = ct
            .metadata
            .get("llama.rope.freq_base")
            .and_then(|v| v.to_f32().ok())
            .unwrap_or(10_000.0);
        let norm_eps = ct
            .metadata
            .get("llama.attention.layer_norm_rms_epsilon")
            .and_then(|v| v.to_f32().ok())
            .ok_or_else(|| SynthError::Weights {
                path: path.to_path_buf(),
                message: "GGUF metadata `llama.attention.layer_norm_rms_epsilon` is missing".into(),
            })? as f64;
        let n_layers = md_u32(&ct, path, "llama.block_count")? as usize;
        let max_seq_len = md_u32(&ct, path, "llama.context_length").unwrap_or(2048) as usize;
        let dev = Device::Cpu;
        let mut get = |name: &str| -> Result<Tensor> {
            let q = ct
                .tensor(&mut reader, name, &dev)
                .map_err(|e| SynthError::Weights {
                    path: path.to_path_buf(),
                    message: format!("tensor `{name}`: {e}"),
                })?;
            Ok(q.dequantize(&dev)?.to_dtype(DType::F32)?)
        };
        let embed = get("token_embd.weight")?;
        let vocab_size = embed.dim(0)?;
        let norm = get("output_norm.weight")?;
        let lm_head = if ct.tensor_infos.contains_key("output.weight") {
            get("output.weight")?
        } else {
            embed.clone()
        };
        let mut layers = Vec::with_capacity(n_layers);
        for i in 0..n_layers {
            let p = format!("blk.{i}");
            let wq = get(&format!("{p}.attn_q.weight"))?;
            let wk = get(&format!("{p}.attn_k.weight"))?;
            let wv = get(&format!("{p}.attn_v.weight"))?;
            let gate = get(&format!("{p}.ffn_gate.weight"))?;
            let up = get(&format!("{p}.ffn_up.weight"))?;
            layers.push(Layer {
                attn_norm: get(&format!("{p}.attn_norm.weight"))?,
                wqkv: Tensor::cat(&[&wq, &wk, &wv], 0)?,
                wo: get(&format!("{p}.attn_output.weight"))?,
                ffn_norm: get(&format!("{p}.ffn_norm.weight"))?,
                w_gate_up: Tensor::cat(&[&gate, &up], 0)?,
                w_down: get(&format!("{p}.ffn_down.weight"))?,
            });
        }
        let d_ff = layers
            .first()
            .map(|l| l.w_down.dim(1))
            .transpose()?
            .unwrap_or(0);
        let cfg = LlamaConfig {
            vocab_size,
            d_model,
            n_layers,
            n_heads,
            n_kv_heads,
            head_dim,
            d_ff,
            rope_theta,
            norm_eps,
            max_seq_len,
            rope_interleaved: true,
        };
        let model = Llama {
            cfg,
            device: Device::Cpu,
            kv_dtype: DType::F32,
            embed,
            layers,
            norm,
            lm_head,
        };
        model.check_shapes(path)?;
        Ok((model.transposed()?, ct))
    }

    /// Loads an HF Llama checkpoint folder: `config.json` (`LlamaForCausalLM`) and
    /// `model.safetensors`, as `synthscale export` writes it.
    pub fn from_hf_dir(dir: &Path) -> Result<Llama> {
        let cfg_path = dir.join("config.json");
        let text = std::fs::read_to_string(&cfg_path)
            .map_err(|e| missing_or_io(&cfg_path, e, "HF config.json"))?;
        let json: serde_json::Value =
            serde_json::from_str(&text).map_err(|e| SynthError::Weights {
                path: cfg_path.clone(),
                message: format!("not JSON: {e}"),
            })?;
        let archs: Vec<String> = json["architectures"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default();
        if !archs.iter().any(|a| a == "LlamaForCausalLM") {
            return Err(SynthError::Unsupported {
                path: cfg_path,
                message: format!(
                    "architectures = {archs:?}; the generator runs `LlamaForCausalLM` only"
                ),
            });
        }
        let num = |key: &str| -> Result<usize> {
            json[key]
                .as_u64()
                .map(|v| v as usize)
                .ok_or_else(|| SynthError::field(&cfg_path, key, "missing or not an integer"))
        };
        let n_heads = num("num_attention_heads")?;
        let d_model = num("hidden_size")?;
        let head_dim = json["head_dim"]
            .as_u64()
            .map(|v| v as usize)
            .unwrap_or(d_model / n_heads.max(1));
        let cfg = LlamaConfig {
            vocab_size: num("vocab_size")?,
            d_model,
            n_layers: num("num_hidden_layers")?,
            n_heads,
            n_kv_heads: json["num_key_value_heads"]
                .as_u64()
                .map(|v| v as usize)
                .unwrap_or(n_heads),
            head_dim,
            d_ff: num("intermediate_size")?,
            rope_theta: json["rope_theta"].as_f64().unwrap_or(10_000.0) as f32,
            norm_eps: json["rms_norm_eps"].as_f64().unwrap_or(1e-6),
            max_seq_len: json["max_position_embeddings"].as_u64().unwrap_or(2048) as usize,
            rope_interleaved: false,
        };
        let tied = json["tie_word_embeddings"].as_bool().unwrap_or(false);
        let wpath = dir.join("model.safetensors");
        if !wpath.exists() {
            return Err(SynthError::Missing {
                path: wpath,
                what: "HF weights (a single model.safetensors)".into(),
            });
        }
        let mut t: HashMap<String, Tensor> = candle_core::safetensors::load(&wpath, &Device::Cpu)
            .map_err(|e| SynthError::Weights {
            path: wpath.clone(),
            message: format!("not a readable safetensors file: {e}"),
        })?;
        let mut get = |name: &str| -> Result<Tensor> {
            t.remove(name)
                .ok_or_else(|| SynthError::Weights {
                    path: wpath.clone(),
                    message: format!("tensor `{name}` is missing"),
                })?
                .to_dtype(DType::F32)
                .map_err(SynthError::from)
        };
        let embed = get("model.embed_tokens.weight")?;
        let norm = get("model.norm.weight")?;
        let lm_head = if tied {
            embed.clone()
        } else {
            get("lm_head.weight")?
        };
        let mut layers = Vec::with_capacity(cfg.n_layers);
        for i in 0..cfg.n_layers {
            let p = format!("model.layers.{i}");
            let wq = get(&format!("{p}.self_attn.q_proj.weight"))?;
            let wk = get(&format!("{p}.self_attn.k_proj.weight"))?;
            let wv = get(&format!("{p}.self_attn.v_proj.weight"))?;
            let gate = get(&format!("{p}.mlp.gate_proj.weight"))?;
            let up = get(&format!("{p}.mlp.up_proj.weight"))?;
            layers.push(Layer {
                attn_norm: get(&format!("{p}.input_layernorm.weight"))?,
                wqkv: Tensor::cat(&[&wq, &wk, &wv], 0)?,
                wo: get(&format!("{p}.self_attn.o_proj.weight"))?,
                ffn_norm: get(&format!("{p}.post_attention_layernorm.weight"))?,
                w_gate_up: Tensor::cat(&[&gate, &up], 0)?,
                w_down: get(&format!("{p}.mlp.down_proj.weight"))?,
            });
        }
        let model = Llama {
            cfg,
            device: Device::Cpu,
            kv_dtype: DType::F32,
            embed,
            layers,
            norm,
            lm_head,
        };
        model.check_shapes(&wpath)?;
        model.transposed()
    }

    /// Stores every projection as a contiguous (in, out) matrix, so each step's matmuls
    /// read the weights in gemm's preferred layout.
    fn transposed(mut self) -> Result<Llama> {
        let t = |w: &Tensor| -> Result<Tensor> { Ok(w.t()?.contiguous()?) };
        for l in self.layers.iter_mut() {
            l.wqkv = t(&l.wqkv)?;
            l.wo = t(&l.wo)?;
            l.w_gate_up = t(&l.w_gate_up)?;
            l.w_down = t(&l.w_down)?;
        }
        self.lm_head = t(&self.lm_head)?;
        Ok(self)
    }

    fn check_shapes(&self, path: &Path) -> Result<()> {
        let c = &self.cfg;
        let bad = |what: String| SynthError::Weights {
            path: path.to_path_buf(),
            message: what,
        };
        if c.n_heads == 0 || c.n_kv_heads == 0 || c.n_heads % c.n_kv_heads != 0 {
            return Err(bad(format!(
                "{} query heads cannot share {} key/value heads",
                c.n_heads, c.n_kv_heads
            )));
        }
        if c.head_dim % 2 != 0 {
            return Err(bad(format!("head dimension {} is odd", c.head_dim)));
        }
        let qkv = (c.n_heads + 2 * c.n_kv_heads) * c.head_dim;
        for (i, l) in self.layers.iter().enumerate() {
            let dims = [
                ("qkv", l.wqkv.dims2()?, (qkv, c.d_model)),
                ("o", l.wo.dims2()?, (c.d_model, c.n_heads * c.head_dim)),
                ("gate/up", l.w_gate_up.dims2()?, (2 * c.d_ff, c.d_model)),
                ("down", l.w_down.dims2()?, (c.d_model, c.d_ff)),
            ];
            for (name, got, want) in dims {
                if got != want {
                    return Err(bad(format!(
                        "layer {i} {name} projection is {got:?}, the config implies {want:?}"
                    )));
                }
            }
        }
        if self.embed.dims2()? != (c.vocab_size, c.d_model)
            || self.lm_head.dims2()? != (c.vocab_size, c.d_model)
        {
            return Err(bad(format!(
                "embedding {:?} / output {:?} do not match vocab {} × d {}",
                self.embed.dims(),
                self.lm_head.dims(),
                c.vocab_size,
                c.d_model
            )));
        }
        Ok(())
    }

    /// A fresh, empty cache for one sequence.
    pub fn new_cache(&self) -> KvCache {
        KvCache {
            k: vec![Vec::new(); self.cfg.n_layers],
            v: vec![Vec::new(); self.cfg.n_layers],
            len: 0,
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
    /// sequence whose cache is `caches[i]` (a whole prompt, or the one token just sampled).
    /// Appends them to the caches and returns the logits after each sequence's last token,
    /// shape (inputs.len(), vocab).
    pub fn forward(&self, inputs: &[&[u32]], caches: &mut [&mut KvCache]) -> Result<Tensor> {
        if !self.device.is_cpu() {
            return self.forward_tensors(inputs, caches);
        }
        assert_eq!(inputs.len(), caches.len());
        let c = &self.cfg;
        let (hd, nh, nkv) = (c.head_dim, c.n_heads, c.n_kv_heads);
        // Row layout: the tokens of sequence 0, then of sequence 1, ...
        let mut ids = Vec::new();
        let mut rows: Vec<(usize, usize)> = Vec::new(); // (sequence, position)
        let mut last_rows = Vec::with_capacity(inputs.len());
        for (s, toks) in inputs.iter().enumerate() {
            assert!(!toks.is_empty(), "a sequence needs at least one new token");
            for (t, &id) in toks.iter().enumerate() {
                ids.push(id);
                rows.push((s, caches[s].len + t));
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
                caches[s].k[li].extend_from_slice(&row[nh * hd..(nh + nkv) * hd]);
                caches[s].v[li].extend_from_slice(&row[(nh + nkv) * hd..]);
            }
            let mut att = vec![0f32; n * nh * hd];
            {
                let caches_ro: Vec<&KvCache> = caches.iter().map(|c| &**c).collect();
                let scale = 1.0 / (hd as f32).sqrt();
                // One task per row over all its heads: each cached position's keys and
                // values (all KV heads, contiguous) are read once, front to back, which is
                // what decoding is bound by (the caches outgrow the CPU caches).
                att.par_chunks_mut(nh * hd).enumerate().for_each_init(
                    Vec::new,
                    |scores, (r, out)| {
                        let (s, pos) = rows[r];
                        let cache = caches_ro[s];
                        attend(
                            &qkv[r * qkv_w..r * qkv_w + nh * hd],
                            &cache.k[li],
                            &cache.v[li],
                            AttnShape {
                                n_kv_heads: nkv,
                                head_dim: hd,
                                len: pos + 1,
                                scale,
                            },
                            scores,
                            out,
                        );
                    },
                );
            }
            let att = Tensor::from_vec(att, (n, nh * hd), &Device::Cpu)?;
            x = self.finish_layer(layer, &x, &att)?;
        }
        for (s, toks) in inputs.iter().enumerate() {
            caches[s].len += toks.len();
        }
        let last = Tensor::from_vec(last_rows, inputs.len(), &Device::Cpu)?;
        let x = x.index_select(&last, 0)?;
        let x = candle_nn::ops::rms_norm(&x, &self.norm, c.norm_eps as f32)?;
        Ok(x.matmul(&self.lm_head)?)
    }

    /// [`Llama::forward`] in candle tensor ops only, on the model's device: what runs on a
    /// GPU. Each sequence's keys and values stay on the device, in the cache dtype
    /// ([`Llama::set_kv_dtype`]); attention runs per sequence as two batched products over
    /// its KV heads (the query heads that share a KV head stacked as rows). On the CPU it computes the same as the fused path (tested),
    /// only slower.
    pub fn forward_tensors(
        &self,
        inputs: &[&[u32]],
        caches: &mut [&mut KvCache],
    ) -> Result<Tensor> {
        assert_eq!(inputs.len(), caches.len());
        let c = &self.cfg;
        let dev = &self.device;
        let (hd, nh, nkv) = (c.head_dim, c.n_heads, c.n_kv_heads);
        let group = nh / nkv;
        let mut ids = Vec::new();
        let mut rows: Vec<(usize, usize)> = Vec::new();
        let mut spans = Vec::with_capacity(inputs.len()); // (first row, rows)
        for (s, toks) in inputs.iter().enumerate() {
            assert!(!toks.is_empty(), "a sequence needs at least one new token");
            spans.push((rows.len(), toks.len()));
            for (t, &id) in toks.iter().enumerate() {
                ids.push(id);
                rows.push((s, caches[s].len + t));
            }
        }
        let n = rows.len();
        // Room in every cache for its new rows (doubling, keeping what is there).
        for (s, &(_, m)) in spans.iter().enumerate() {
            let cache = &mut *caches[s];
            let need = cache.len + m;
            if need > cache.cap || cache.dk.len() != c.n_layers {
                let cap = need.next_power_of_two().max(64);
                let grow = |old: Option<&Tensor>| -> Result<Tensor> {
                    let t = Tensor::zeros((cap, nkv * hd), self.kv_dtype, dev)?;
                    if let Some(old) = old {
                        if cache.len > 0 {
                            t.slice_set(&old.narrow(0, 0, cache.len)?, 0, 0)?;
                        }
                    }
                    Ok(t)
                };
                let dk = (0..c.n_layers)
                    .map(|l| grow(cache.dk.get(l)))
                    .collect::<Result<Vec<_>>>()?;
                let dv = (0..c.n_layers)
                    .map(|l| grow(cache.dv.get(l)))
                    .collect::<Result<Vec<_>>>()?;
                cache.dk = dk;
                cache.dv = dv;
                cache.cap = cap;
            }
        }
        // Causal masks for sequences fed several rows at once (prompts): query row
        // (i, head-in-group) sees positions up to len + i.
        let mut masks: Vec<Option<Tensor>> = Vec::with_capacity(spans.len());
        for (s, &(_, m)) in spans.iter().enumerate() {
            if m == 1 {
                masks.push(None);
                continue;
            }
            let len0 = caches[s].len;
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
            masks.push(Some(Tensor::from_vec(mask, (m * group, total), dev)?));
        }
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
            let h = candle_nn::ops::rms_norm(&x, &layer.attn_norm, c.norm_eps as f32)?;
            let qkv = h.matmul(&layer.wqkv)?;
            let q = rope(&qkv.narrow(1, 0, nh * hd)?, nh)?;
            let k = rope(&qkv.narrow(1, nh * hd, nkv * hd)?, nkv)?;
            let v = qkv.narrow(1, (nh + nkv) * hd, nkv * hd)?.contiguous()?;
            let mut outs = Vec::with_capacity(spans.len());
            for (s, &(r0, m)) in spans.iter().enumerate() {
                let cache = &*caches[s];
                let len0 = cache.len;
                let kv = cache.dk[li].dtype();
                cache.dk[li].slice_set(&k.narrow(0, r0, m)?.to_dtype(kv)?, 0, len0)?;
                cache.dv[li].slice_set(&v.narrow(0, r0, m)?.to_dtype(kv)?, 0, len0)?;
                let total = len0 + m;
                let heads = |t: &Tensor| -> Result<Tensor> {
                    Ok(t.narrow(0, 0, total)?
                        .reshape((total, nkv, hd))?
                        .transpose(0, 1)?
                        .contiguous()?)
                };
                let (kh, vh) = (heads(&cache.dk[li])?, heads(&cache.dv[li])?);
                let qh = q
                    .narrow(0, r0, m)?
                    .reshape((m, nkv, group, hd))?
                    .transpose(0, 1)?
                    .contiguous()?
                    .reshape((nkv, m * group, hd))?
                    .to_dtype(kv)?;
                // Products in the cache's dtype (f32 accumulation in the GEMM), softmax in f32.
                let mut scores = (qh.matmul(&kh.t()?)?.to_dtype(DType::F32)? * scale)?;
                if let Some(mask) = &masks[s] {
                    scores = scores.broadcast_add(mask)?;
                }
                let p = candle_nn::ops::softmax_last_dim(&scores)?.to_dtype(kv)?;
                let o = p
                    .matmul(&vh)?
                    .to_dtype(DType::F32)?
                    .reshape((nkv, m, group, hd))?
                    .transpose(0, 1)?
                    .contiguous()?
                    .reshape((m, nh * hd))?;
                outs.push(o);
            }
            let att = Tensor::cat(&outs, 0)?;
            x = self.finish_layer(layer, &x, &att)?;
        }
        let last: Vec<u32> = spans.iter().map(|&(r0, m)| (r0 + m - 1) as u32).collect();
        for (s, toks) in inputs.iter().enumerate() {
            caches[s].len += toks.len();
        }
        let last = Tensor::from_vec(last, inputs.len(), dev)?;
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

fn missing_or_io(path: &Path, e: std::io::Error, what: &str) -> SynthError {
    if e.kind() == std::io::ErrorKind::NotFound {
        SynthError::Missing {
            path: PathBuf::from(path),
            what: what.to_string(),
        }
    } else {
        SynthError::Io {
            path: path.to_path_buf(),
            source: e,
        }
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

/// The shape of one row's attention over a sequence's cache.
#[derive(Clone, Copy)]
struct AttnShape {
    n_kv_heads: usize,
    head_dim: usize,
    /// Positions attended over (causal: up to and including the row's own).
    len: usize,
    scale: f32,
}

/// Softmax attention of one row's query heads (`q`, `n_heads · head_dim`) over a cache of
/// `len` positions (each `n_kv_heads · head_dim` keys, then as many values); query head `h`
/// reads KV head `h / (n_heads / n_kv_heads)`. Writes `out` (`n_heads · head_dim`). Runs
/// AVX2+FMA code where the CPU has it (decided at run time; a release build targets
/// baseline x86-64, where the compiler may only use SSE2), portable code elsewhere.
fn attend(q: &[f32], k: &[f32], v: &[f32], sh: AttnShape, scores: &mut Vec<f32>, out: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
        {
            // SAFETY: the CPU supports the features the function is compiled for.
            unsafe { attend_avx2(q, k, v, sh, scores, out) };
            return;
        }
    }
    attend_generic::<false>(q, k, v, sh, scores, out)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn attend_avx2(
    q: &[f32],
    k: &[f32],
    v: &[f32],
    sh: AttnShape,
    scores: &mut Vec<f32>,
    out: &mut [f32],
) {
    attend_generic::<true>(q, k, v, sh, scores, out)
}

#[inline(always)]
fn attend_generic<const FMA: bool>(
    q: &[f32],
    k: &[f32],
    v: &[f32],
    sh: AttnShape,
    scores: &mut Vec<f32>,
    out: &mut [f32],
) {
    let (hd, len) = (sh.head_dim, sh.len);
    let nh = q.len() / hd;
    let group = nh / sh.n_kv_heads;
    let stride = sh.n_kv_heads * hd;
    scores.clear();
    scores.resize(nh * len, 0.0);
    for (j, krow) in k.chunks_exact(stride).take(len).enumerate() {
        for (h, qh) in q.chunks_exact(hd).enumerate() {
            let kh = &krow[(h / group) * hd..][..hd];
            scores[h * len + j] = dot::<FMA>(qh, kh) * sh.scale;
        }
    }
    for row in scores.chunks_exact_mut(len) {
        let m = row.iter().cloned().fold(f32::NEG_INFINITY, f32::max);
        let mut sum = 0f32;
        for x in row.iter_mut() {
            *x = (*x - m).exp();
            sum += *x;
        }
        let inv = 1.0 / sum;
        for x in row.iter_mut() {
            *x *= inv;
        }
    }
    out.fill(0.0);
    for (j, vrow) in v.chunks_exact(stride).take(len).enumerate() {
        for (h, oh) in out.chunks_exact_mut(hd).enumerate() {
            let w = scores[h * len + j];
            axpy::<FMA>(w, &vrow[(h / group) * hd..][..hd], oh);
        }
    }
}

/// `a · b + c`, fused where the caller is compiled with FMA.
#[inline(always)]
fn madd<const FMA: bool>(a: f32, b: f32, c: f32) -> f32 {
    if FMA {
        a.mul_add(b, c)
    } else {
        a * b + c
    }
}

/// `a · b`. With `FMA` only from code compiled for (and run on) AVX2+FMA.
#[inline(always)]
fn dot<const FMA: bool>(a: &[f32], b: &[f32]) -> f32 {
    #[cfg(target_arch = "x86_64")]
    if FMA {
        // SAFETY: FMA is true only inside `attend_avx2`, called after the CPU check.
        return unsafe { dot_avx2(a, b) };
    }
    let mut acc = [0f32; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for l in 0..8 {
            acc[l] += x[l] * y[l];
        }
    }
    let mut s: f32 = acc.iter().sum();
    for (x, y) in ra.iter().zip(rb) {
        s += x * y;
    }
    s
}

/// `y += w · x`.
#[inline(always)]
fn axpy<const FMA: bool>(w: f32, x: &[f32], y: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if FMA {
        // SAFETY: as in `dot`.
        return unsafe { axpy_avx2(w, x, y) };
    }
    for (o, &v) in y.iter_mut().zip(x) {
        *o = madd::<FMA>(w, v, *o);
    }
}

/// Explicit 8-lane FMAs: the compiler turns neither loop above into vector code by itself
/// once the multiply-adds are fused (it keeps them scalar, in order).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
#[inline]
unsafe fn dot_avx2(a: &[f32], b: &[f32]) -> f32 {
    use std::arch::x86_64::*;
    let n = a.len().min(b.len());
    let (pa, pb) = (a.as_ptr(), b.as_ptr());
    let (mut acc0, mut acc1) = (_mm256_setzero_ps(), _mm256_setzero_ps());
    let mut i = 0;
    while i + 16 <= n {
        acc0 = _mm256_fmadd_ps(_mm256_loadu_ps(pa.add(i)), _mm256_loadu_ps(pb.add(i)), acc0);
        acc1 = _mm256_fmadd_ps(
            _mm256_loadu_ps(pa.add(i + 8)),
            _mm256_loadu_ps(pb.add(i + 8)),
            acc1,
        );
        i += 16;
    }
    if i + 8 <= n {
        acc0 = _mm256_fmadd_ps(_mm256_loadu_ps(pa.add(i)), _mm256_loadu_ps(pb.add(i)), acc0);
        i += 8;
    }
    let acc = _mm256_add_ps(acc0, acc1);
    let s = _mm_add_ps(_mm256_castps256_ps128(acc), _mm256_extractf128_ps(acc, 1));
    let s = _mm_hadd_ps(s, s);
    let mut r = _mm_cvtss_f32(_mm_hadd_ps(s, s));
    while i < n {
        r = a[i].mul_add(b[i], r);
        i += 1;
    }
    r
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
#[inline]
unsafe fn axpy_avx2(w: f32, x: &[f32], y: &mut [f32]) {
    use std::arch::x86_64::*;
    let n = x.len().min(y.len());
    let (px, py) = (x.as_ptr(), y.as_mut_ptr());
    let wv = _mm256_set1_ps(w);
    let mut i = 0;
    while i + 8 <= n {
        let v = _mm256_fmadd_ps(wv, _mm256_loadu_ps(px.add(i)), _mm256_loadu_ps(py.add(i)));
        _mm256_storeu_ps(py.add(i), v);
        i += 8;
    }
    while i < n {
        y[i] = w.mul_add(x[i], y[i]);
        i += 1;
    }
}
