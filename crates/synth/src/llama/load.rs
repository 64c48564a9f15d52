//! Loading a [`Llama`] from GGUF or HF safetensors, and the checks on what was loaded.

use std::collections::HashMap;
use std::fs::File;
use std::io::BufReader;
use std::path::Path;

use candle_core::quantized::gguf_file;
use candle_core::{DType, Device, Tensor};

use super::{Layer, Llama, LlamaConfig};
use crate::error::{Result, SynthError};

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

/// What a checkpoint gives besides the config, as loaded.
struct Weights {
    embed: Tensor,
    layers: Vec<Layer>,
    norm: Tensor,
    lm_head: Tensor,
}

/// Where one layer's tensors are in a checkpoint format: each name follows the layer's
/// prefix and a dot, and ends in `.weight`.
struct LayerNames {
    q: &'static str,
    k: &'static str,
    v: &'static str,
    o: &'static str,
    gate: &'static str,
    up: &'static str,
    down: &'static str,
    attn_norm: &'static str,
    ffn_norm: &'static str,
}

/// llama.cpp's GGUF names (`blk.{i}.…`).
const GGUF_NAMES: LayerNames = LayerNames {
    q: "attn_q",
    k: "attn_k",
    v: "attn_v",
    o: "attn_output",
    gate: "ffn_gate",
    up: "ffn_up",
    down: "ffn_down",
    attn_norm: "attn_norm",
    ffn_norm: "ffn_norm",
};

/// Hugging Face Llama's names (`model.layers.{i}.…`).
const HF_NAMES: LayerNames = LayerNames {
    q: "self_attn.q_proj",
    k: "self_attn.k_proj",
    v: "self_attn.v_proj",
    o: "self_attn.o_proj",
    gate: "mlp.gate_proj",
    up: "mlp.up_proj",
    down: "mlp.down_proj",
    attn_norm: "input_layernorm",
    ffn_norm: "post_attention_layernorm",
};

impl LayerNames {
    /// The layer under `prefix`, Q/K/V and gate/up stacked by rows, through `get`.
    fn load(&self, prefix: &str, get: &mut impl FnMut(&str) -> Result<Tensor>) -> Result<Layer> {
        let mut w = |name: &str| get(&format!("{prefix}.{name}.weight"));
        let (wq, wk, wv) = (w(self.q)?, w(self.k)?, w(self.v)?);
        let (gate, up) = (w(self.gate)?, w(self.up)?);
        Ok(Layer {
            attn_norm: w(self.attn_norm)?,
            wqkv: Tensor::cat(&[&wq, &wk, &wv], 0)?,
            wo: w(self.o)?,
            ffn_norm: w(self.ffn_norm)?,
            w_gate_up: Tensor::cat(&[&gate, &up], 0)?,
            w_down: w(self.down)?,
        })
    }
}

impl Llama {
    /// Reads a GGUF file's header (metadata and tensor index; no weights).
    pub fn read_gguf_header(path: &Path) -> Result<gguf_file::Content> {
        let file =
            File::open(path).map_err(|e| SynthError::missing_or_read(path, e, "GGUF file"))?;
        gguf_file::Content::read(&mut BufReader::new(file)).map_err(|e| SynthError::Weights {
            path: path.to_path_buf(),
            message: format!("not a readable GGUF file: {e}"),
        })
    }

    /// Loads a GGUF file of architecture `llama`, dequantizing every tensor to f32.
    pub fn from_gguf(path: &Path) -> Result<(Llama, gguf_file::Content)> {
        let file =
            File::open(path).map_err(|e| SynthError::missing_or_read(path, e, "GGUF model"))?;
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
        let layers = (0..n_layers)
            .map(|i| GGUF_NAMES.load(&format!("blk.{i}"), &mut get))
            .collect::<Result<Vec<_>>>()?;
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
        let weights = Weights {
            embed,
            layers,
            norm,
            lm_head,
        };
        Ok((Llama::assemble(cfg, weights, path)?, ct))
    }

    /// Loads an HF Llama checkpoint folder: `config.json` (`LlamaForCausalLM`) and
    /// `model.safetensors`, as `synthscale export` writes it.
    pub fn from_hf_dir(dir: &Path) -> Result<Llama> {
        let cfg_path = dir.join("config.json");
        let text = std::fs::read_to_string(&cfg_path)
            .map_err(|e| SynthError::missing_or_read(&cfg_path, e, "HF config.json"))?;
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
        let layers = (0..cfg.n_layers)
            .map(|i| HF_NAMES.load(&format!("model.layers.{i}"), &mut get))
            .collect::<Result<Vec<_>>>()?;
        let weights = Weights {
            embed,
            layers,
            norm,
            lm_head,
        };
        Llama::assemble(cfg, weights, &wpath)
    }

    /// The model from loaded (out, in) weights on the CPU: shapes checked against `cfg`
    /// (naming `path` on a mismatch), then projections stored transposed.
    fn assemble(cfg: LlamaConfig, w: Weights, path: &Path) -> Result<Llama> {
        let model = Llama {
            cfg,
            device: Device::Cpu,
            kv_dtype: DType::F32,
            embed: w.embed,
            layers: w.layers,
            norm: w.norm,
            lm_head: w.lm_head,
        };
        model.check_shapes(path)?;
        model.transposed()
    }

    /// Stores every projection as a contiguous (in, out) matrix, so each step's matmuls
    /// read the weights in gemm's preferred layout.
    fn transposed(mut self) -> Result<Llama> {
        let in_out = |w: &Tensor| -> Result<Tensor> { Ok(w.t()?.contiguous()?) };
        for l in self.layers.iter_mut() {
            l.wqkv = in_out(&l.wqkv)?;
            l.wo = in_out(&l.wo)?;
            l.w_gate_up = in_out(&l.w_gate_up)?;
            l.w_down = in_out(&l.w_down)?;
        }
        self.lm_head = in_out(&self.lm_head)?;
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
}
