//! The decoder's weights and forward pass, built from differentiable candle ops only.
//!
//! candle's fused `softmax_last_dim`, `rms_norm` and `rope` record no backward (candle issues
//! #2168, #3569, #3568), so norms, rotary positions and softmax are written here from
//! elementwise ops and reductions that do; a test checks that every parameter receives a
//! gradient. Weights are named as in Hugging Face's Llama, so export is a plain save.
//!
//! Mixed precision: the parameters (master weights) are always f32 `Var`s; with a bf16
//! compute dtype each weight is cast when fetched (`Decoder::w`), so gradients flow back
//! through the cast to the f32 masters. RMSNorm statistics, attention softmax and the
//! logits fed to the loss stay in f32. With f32 compute every cast is a no-op.

use std::collections::HashMap;
use std::path::Path;

use candle_core::{DType, Device, Tensor, Var, D};
use rand::SeedableRng;
use rand_distr::{Distribution, Normal};

use crate::config::ModelConfig;
use crate::error::{ModelError, Result};
use crate::ops::{self, FusedOps};

/// Whether a forward pass records the graph for backpropagation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Train,
    /// No gradient tracking: weights are detached, no graph is kept.
    Eval,
}

/// A decoder with its parameters, in a fixed order.
#[derive(Debug)]
pub struct Decoder {
    cfg: ModelConfig,
    device: Device,
    params: Vec<(String, Var)>,
    /// Where each weight the forward pass reads stands in `params`, found once by name.
    at: ParamIndex,
    /// Rotary tables, `[max_seq_len, head_dim / 2]`.
    cos: Tensor,
    sin: Tensor,
    /// The dtype matmuls and activations run in (f32, or bf16 on CUDA); see the module doc.
    compute_dtype: DType,
    /// Every op composed from candle's differentiable ops even where a fused op exists
    /// (the oracle form; `bench gpu-check` compares the two on one device).
    composed: bool,
}

const EMBED: &str = "model.embed_tokens.weight";
const FINAL_NORM: &str = "model.norm.weight";
const LM_HEAD: &str = "lm_head.weight";

/// The weights of one layer, named after `model.layers.{i}.` as in Hugging Face's Llama, in
/// the decoder's order.
const LAYER_WEIGHTS: [&str; 9] = [
    "input_layernorm.weight",
    "self_attn.q_proj.weight",
    "self_attn.k_proj.weight",
    "self_attn.v_proj.weight",
    "self_attn.o_proj.weight",
    "post_attention_layernorm.weight",
    "mlp.gate_proj.weight",
    "mlp.up_proj.weight",
    "mlp.down_proj.weight",
];

/// The full name of layer `layer`'s weight `weight` (one of [`LAYER_WEIGHTS`]).
fn layer_weight(layer: usize, weight: &str) -> String {
    format!("model.layers.{layer}.{weight}")
}

/// Names and shapes of every parameter, in the decoder's order.
pub fn param_shapes(cfg: &ModelConfig) -> Vec<(String, Vec<usize>)> {
    let (d, f, v) = (cfg.d_model, cfg.d_ff, cfg.vocab_size);
    let kv = cfg.n_kv_heads * cfg.head_dim();
    let layer_shapes = [
        vec![d],
        vec![d, d],
        vec![kv, d],
        vec![kv, d],
        vec![d, d],
        vec![d],
        vec![f, d],
        vec![f, d],
        vec![d, f],
    ];
    let mut out = vec![(EMBED.to_string(), vec![v, d])];
    for i in 0..cfg.n_layers {
        for (weight, shape) in LAYER_WEIGHTS.iter().zip(&layer_shapes) {
            out.push((layer_weight(i, weight), shape.clone()));
        }
    }
    out.push((FINAL_NORM.to_string(), vec![d]));
    if !cfg.tie_embeddings {
        out.push((LM_HEAD.to_string(), vec![v, d]));
    }
    out
}

/// One layer's weights: their positions in [`Decoder::params`], in [`LAYER_WEIGHTS`]' order.
#[derive(Debug, Clone, Copy)]
struct LayerParams {
    input_norm: usize,
    q_proj: usize,
    k_proj: usize,
    v_proj: usize,
    o_proj: usize,
    post_attention_norm: usize,
    gate_proj: usize,
    up_proj: usize,
    down_proj: usize,
}

/// The positions in [`Decoder::params`] of every weight the forward pass reads.
#[derive(Debug, Clone)]
struct ParamIndex {
    embed: usize,
    layers: Vec<LayerParams>,
    final_norm: usize,
    /// `None` with tied embeddings: the head is the embedding.
    lm_head: Option<usize>,
}

impl ParamIndex {
    /// Looks every name up once in `params` (which holds [`param_shapes`]' names).
    fn new(cfg: &ModelConfig, params: &[(String, Var)]) -> Self {
        let by_name: HashMap<&str, usize> = params
            .iter()
            .enumerate()
            .map(|(i, (name, _))| (name.as_str(), i))
            .collect();
        let at = |name: &str| by_name[name];
        let layers = (0..cfg.n_layers)
            .map(|i| {
                let [input_norm, q_proj, k_proj, v_proj, o_proj, post_attention_norm, gate_proj, up_proj, down_proj] =
                    LAYER_WEIGHTS.map(|weight| at(&layer_weight(i, weight)));
                LayerParams {
                    input_norm,
                    q_proj,
                    k_proj,
                    v_proj,
                    o_proj,
                    post_attention_norm,
                    gate_proj,
                    up_proj,
                    down_proj,
                }
            })
            .collect();
        ParamIndex {
            embed: at(EMBED),
            layers,
            final_norm: at(FINAL_NORM),
            lm_head: (!cfg.tie_embeddings).then(|| at(LM_HEAD)),
        }
    }
}

/// Whether a parameter is a norm gain (1-D), which weight decay usually skips.
pub fn is_norm(name: &str) -> bool {
    name.ends_with("layernorm.weight") || name == FINAL_NORM
}

/// Whether a parameter is a vocabulary matrix (embedding or output head).
pub fn is_embedding(name: &str) -> bool {
    name == EMBED || name == LM_HEAD
}

impl Decoder {
    /// A freshly initialised decoder: normal(0, init_std) matrices, output projections
    /// (`o_proj`, `down_proj`) scaled by 1/sqrt(2·n_layers) as in GPT-2, unit norm gains;
    /// deterministic under `seed`.
    pub fn new(cfg: &ModelConfig, seed: u64, device: &Device) -> Result<Self> {
        cfg.validate()?;
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        let mut tensors = HashMap::new();
        for (name, shape) in param_shapes(cfg) {
            let n: usize = shape.iter().product();
            let data: Vec<f32> = if is_norm(&name) {
                vec![1.0; n]
            } else {
                let scaled = name.ends_with("o_proj.weight") || name.ends_with("down_proj.weight");
                let std = if scaled {
                    cfg.init_std / (2.0 * cfg.n_layers as f64).sqrt()
                } else {
                    cfg.init_std
                };
                let normal = Normal::new(0.0f32, std as f32)
                    .map_err(|e| ModelError::Config(format!("init_std: {e}")))?;
                (0..n).map(|_| normal.sample(&mut rng)).collect()
            };
            tensors.insert(name, Tensor::from_vec(data, shape, device)?);
        }
        Self::from_tensors(cfg, tensors, Path::new("<init>"))
    }

    /// A decoder from named tensors (a checkpoint or an export); every name and shape must
    /// match the config. `origin` names the file in messages.
    pub fn from_tensors(
        cfg: &ModelConfig,
        mut tensors: HashMap<String, Tensor>,
        origin: &Path,
    ) -> Result<Self> {
        cfg.validate()?;
        let device = tensors
            .values()
            .next()
            .map(|t| t.device().clone())
            .unwrap_or(Device::Cpu);
        let mut params = Vec::new();
        for (name, shape) in param_shapes(cfg) {
            let t = tensors.remove(&name).ok_or_else(|| ModelError::Weights {
                path: origin.to_path_buf(),
                message: format!("no tensor {name}"),
            })?;
            if t.dims() != shape.as_slice() {
                return Err(ModelError::Weights {
                    path: origin.to_path_buf(),
                    message: format!(
                        "{name} has shape {:?}, the config needs {shape:?}",
                        t.dims()
                    ),
                });
            }
            params.push((name, Var::from_tensor(&t.to_dtype(DType::F32)?)?));
        }
        if let Some(extra) = tensors.keys().next() {
            return Err(ModelError::Weights {
                path: origin.to_path_buf(),
                message: format!("tensor {extra} is not part of this model"),
            });
        }
        let (cos, sin) = rope_tables(cfg, &device)?;
        let at = ParamIndex::new(cfg, &params);
        Ok(Decoder {
            cfg: cfg.clone(),
            device,
            params,
            at,
            cos,
            sin,
            compute_dtype: DType::F32,
            composed: false,
        })
    }

    pub fn config(&self) -> &ModelConfig {
        &self.cfg
    }

    pub fn device(&self) -> &Device {
        &self.device
    }

    /// The dtype of the forward pass's matmuls and activations: f32 (the default) or bf16
    /// (mixed precision; the parameters stay f32). Chosen by the trainer per device.
    pub fn set_compute_dtype(&mut self, dtype: DType) -> Result<()> {
        if !matches!(dtype, DType::F32 | DType::BF16) {
            return Err(ModelError::Config(format!(
                "compute dtype {dtype:?}: only f32 and bf16 are supported"
            )));
        }
        self.compute_dtype = dtype;
        Ok(())
    }

    pub fn compute_dtype(&self) -> DType {
        self.compute_dtype
    }

    /// Whether every op runs composed from candle's differentiable ops (true) or the fused
    /// ops run where [`FusedOps::select`] has them for this device and dtype (false, the
    /// default).
    pub fn set_composed_ops(&mut self, composed: bool) {
        self.composed = composed;
    }

    /// The ops that run fused in this decoder's forward and backward passes.
    pub fn fused_ops(&self) -> FusedOps {
        if self.composed {
            return FusedOps::NONE;
        }
        FusedOps::for_device(&self.device, self.compute_dtype, self.cfg.head_dim())
    }

    /// Every parameter with its name, in a fixed order.
    pub fn params(&self) -> &[(String, Var)] {
        &self.params
    }

    /// The parameters as named tensors (for saving).
    pub fn tensors(&self) -> HashMap<String, Tensor> {
        self.params
            .iter()
            .map(|(n, v)| (n.clone(), v.as_tensor().clone()))
            .collect()
    }

    /// The gradient of every parameter from a backward pass, in parameter order; zeros
    /// for a parameter the loss did not reach.
    pub fn gradients(&self, store: &candle_core::backprop::GradStore) -> Result<Vec<Tensor>> {
        self.params
            .iter()
            .map(|(_, v)| match store.get(v.as_tensor()) {
                Some(g) => Ok(g.clone()),
                None => Ok(v.as_tensor().zeros_like()?),
            })
            .collect()
    }

    /// Sum of the sizes of the model's own variables.
    pub fn count_params(&self) -> u64 {
        self.params.iter().map(|(_, v)| v.elem_count() as u64).sum()
    }

    /// A weight in the compute dtype; the cast is differentiable, so gradients reach the
    /// f32 master `Var`.
    fn w(&self, at: usize, mode: Mode) -> Result<Tensor> {
        let t = self.params[at].1.as_tensor();
        let t = match mode {
            Mode::Train => t.clone(),
            Mode::Eval => t.detach(),
        };
        Ok(t.to_dtype(self.compute_dtype)?)
    }

    /// The final normalised hidden states `[batch, seq, d_model]` for token ids
    /// `[batch, seq]` (u32), and the output head's weight `[vocab, d_model]`.
    fn hidden(&self, ids: &Tensor, mode: Mode) -> Result<(Tensor, Tensor)> {
        let (b, t) = ids.dims2()?;
        if t > self.cfg.max_seq_len {
            return Err(ModelError::Config(format!(
                "sequence of {t} tokens is longer than max_seq_len = {}",
                self.cfg.max_seq_len
            )));
        }
        let d = self.cfg.d_model;
        let emb = self.w(self.at.embed, mode)?;
        let fused = self.fused_ops();
        let mut x = if fused.embedding {
            ops::embedding(&emb, &ids.flatten_all()?)?
        } else {
            emb.index_select(&ids.flatten_all()?, 0)?
        }
        .reshape((b, t, d))?;
        // The fused rope reads f32 tables; the composed one multiplies in the compute dtype.
        let (mut cos, mut sin) = (self.cos.narrow(0, 0, t)?, self.sin.narrow(0, 0, t)?);
        if !fused.rope {
            cos = cos.to_dtype(self.compute_dtype)?;
            sin = sin.to_dtype(self.compute_dtype)?;
        }
        // The composed attention's additive mask; the fused ops mask inside the kernel.
        let mask = if fused.attention {
            None
        } else {
            Some(causal_mask(t, &self.device)?)
        };
        for layer in &self.at.layers {
            let h = self.norm(&x, &self.w(layer.input_norm, mode)?)?;
            let a = self.attention(&h, layer, mode, fused, (&cos, &sin), mask.as_ref())?;
            x = (x + a)?;
            let h = self.norm(&x, &self.w(layer.post_attention_norm, mode)?)?;
            let gate = linear(&h, &self.w(layer.gate_proj, mode)?)?;
            let up = linear(&h, &self.w(layer.up_proj, mode)?)?;
            let act = if fused.swiglu {
                ops::swiglu(&gate, &up)?
            } else {
                (gate.silu()? * up)?
            };
            let m = linear(&act, &self.w(layer.down_proj, mode)?)?;
            x = (x + m)?;
        }
        let x = self.norm(&x, &self.w(self.at.final_norm, mode)?)?;
        let head = match self.at.lm_head {
            None => emb,
            Some(lm_head) => self.w(lm_head, mode)?,
        };
        Ok((x, head))
    }

    /// Logits `[batch, seq, vocab]` for token ids `[batch, seq]` (u32).
    pub fn forward(&self, ids: &Tensor, mode: Mode) -> Result<Tensor> {
        let (x, head) = self.hidden(ids, mode)?;
        // Logits in f32 for the loss.
        Ok(linear(&x, &head)?.to_dtype(DType::F32)?)
    }

    fn attention(
        &self,
        h: &Tensor,
        layer: &LayerParams,
        mode: Mode,
        fused: FusedOps,
        (cos, sin): (&Tensor, &Tensor),
        mask: Option<&Tensor>,
    ) -> Result<Tensor> {
        let (b, t, d) = h.dims3()?;
        let (nh, nkv, hd) = (self.cfg.n_heads, self.cfg.n_kv_heads, self.cfg.head_dim());
        let heads = |x: Tensor, n: usize| -> Result<Tensor> {
            Ok(x.reshape((b, t, n, hd))?.transpose(1, 2)?.contiguous()?)
        };
        let q = linear(h, &self.w(layer.q_proj, mode)?)?;
        let k = linear(h, &self.w(layer.k_proj, mode)?)?;
        let v = linear(h, &self.w(layer.v_proj, mode)?)?;
        let v = heads(v, nkv)?;
        let (q, k) = if fused.rope {
            (
                ops::rope_to_heads(&q.reshape((b, t, nh, hd))?, cos, sin)?,
                ops::rope_to_heads(&k.reshape((b, t, nkv, hd))?, cos, sin)?,
            )
        } else {
            (
                rope(&heads(q, nh)?, cos, sin)?,
                rope(&heads(k, nkv)?, cos, sin)?,
            )
        };
        let k = repeat_kv(k, nh / nkv)?;
        let v = repeat_kv(v, nh / nkv)?;
        let scale = 1.0 / (hd as f64).sqrt();
        if fused.attention {
            let y = ops::causal_attention(&q, &k, &v, scale)?;
            return linear(&y, &self.w(layer.o_proj, mode)?);
        }
        let Some(mask) = mask else {
            return Err(ModelError::Config(
                "composed attention needs the causal mask".to_string(),
            ));
        };
        let scores = q.matmul(&k.t()?)?;
        // Scores and softmax in f32 (the mask is f32); probabilities back to the compute dtype.
        let z = (scores.to_dtype(DType::F32)? * scale)?.broadcast_add(mask)?;
        let att = softmax_last(&z)?.to_dtype(q.dtype())?;
        let y = att.matmul(&v)?.transpose(1, 2)?.reshape((b, t, d))?;
        linear(&y, &self.w(layer.o_proj, mode)?)
    }

    /// Mean cross-entropy of predicting `targets` `[batch, seq]` from `ids`.
    pub fn loss(&self, ids: &Tensor, targets: &Tensor, mode: Mode) -> Result<Tensor> {
        if self.fused_ops().loss {
            let (x, head) = self.hidden(ids, mode)?;
            let (b, t, d) = x.dims3()?;
            let x = x.reshape((b * t, d))?;
            return Ok(ops::linear_cross_entropy(
                &x,
                &head,
                &targets.flatten_all()?,
            )?);
        }
        let logits = self.forward(ids, mode)?;
        let (b, t, v) = logits.dims3()?;
        let (logits, targets) = (logits.reshape((b * t, v))?, targets.flatten_all()?);
        Ok(candle_nn::loss::cross_entropy(&logits, &targets)?)
    }

    fn norm(&self, x: &Tensor, gain: &Tensor) -> Result<Tensor> {
        if self.fused_ops().rms_norm {
            Ok(ops::rms_norm(x, gain, self.cfg.norm_eps)?)
        } else {
            rms_norm(x, gain, self.cfg.norm_eps)
        }
    }
}

/// `x · wᵀ` for `x` `[b, t, in]` and `w` `[out, in]`.
fn linear(x: &Tensor, w: &Tensor) -> Result<Tensor> {
    let (b, t, i) = x.dims3()?;
    let o = w.dim(0)?;
    Ok(x.reshape((b * t, i))?.matmul(&w.t()?)?.reshape((b, t, o))?)
}

/// RMSNorm over the last dimension, from differentiable ops; statistics in f32, the
/// normalised activations back in `x`'s dtype before the gain (as Hugging Face's Llama).
fn rms_norm(x: &Tensor, gain: &Tensor, eps: f64) -> Result<Tensor> {
    let dtype = x.dtype();
    let x = x.to_dtype(DType::F32)?;
    let ms = x.sqr()?.mean_keepdim(D::Minus1)?;
    let inv = (ms + eps)?.sqrt()?.recip()?;
    Ok(x.broadcast_mul(&inv)?
        .to_dtype(dtype)?
        .broadcast_mul(gain)?)
}

/// Softmax over the last dimension, from differentiable ops.
fn softmax_last(x: &Tensor) -> Result<Tensor> {
    let max = x.max_keepdim(D::Minus1)?.detach();
    let e = x.broadcast_sub(&max)?.exp()?;
    let s = e.sum_keepdim(D::Minus1)?;
    Ok(e.broadcast_div(&s)?)
}

/// Rotary positions, Hugging Face's (GPT-NeoX) half-split layout: the first and second
/// halves of each head form the rotated pairs.
fn rope(x: &Tensor, cos: &Tensor, sin: &Tensor) -> Result<Tensor> {
    let hd = x.dim(D::Minus1)?;
    let x1 = x.narrow(D::Minus1, 0, hd / 2)?;
    let x2 = x.narrow(D::Minus1, hd / 2, hd / 2)?;
    let a = (x1.broadcast_mul(cos)? - x2.broadcast_mul(sin)?)?;
    let b = (x2.broadcast_mul(cos)? + x1.broadcast_mul(sin)?)?;
    Ok(Tensor::cat(&[a, b], D::Minus1)?)
}

fn repeat_kv(x: Tensor, n_rep: usize) -> Result<Tensor> {
    if n_rep == 1 {
        return Ok(x);
    }
    let (b, h, t, d) = x.dims4()?;
    Ok(x.unsqueeze(2)?
        .broadcast_as((b, h, n_rep, t, d))?
        .contiguous()?
        .reshape((b, h * n_rep, t, d))?)
}

fn rope_tables(cfg: &ModelConfig, device: &Device) -> Result<(Tensor, Tensor)> {
    let hd = cfg.head_dim();
    let inv: Vec<f64> = (0..hd / 2)
        .map(|i| 1.0 / cfg.rope_theta.powf(2.0 * i as f64 / hd as f64))
        .collect();
    let mut cos = Vec::with_capacity(cfg.max_seq_len * hd / 2);
    let mut sin = Vec::with_capacity(cfg.max_seq_len * hd / 2);
    for p in 0..cfg.max_seq_len {
        for f in &inv {
            let a = p as f64 * f;
            cos.push(a.cos() as f32);
            sin.push(a.sin() as f32);
        }
    }
    Ok((
        Tensor::from_vec(cos, (cfg.max_seq_len, hd / 2), device)?,
        Tensor::from_vec(sin, (cfg.max_seq_len, hd / 2), device)?,
    ))
}

fn causal_mask(t: usize, device: &Device) -> Result<Tensor> {
    let m: Vec<f32> = (0..t)
        .flat_map(|i| (0..t).map(move |j| if j <= i { 0.0 } else { f32::NEG_INFINITY }))
        .collect();
    Ok(Tensor::from_vec(m, (t, t), device)?)
}
