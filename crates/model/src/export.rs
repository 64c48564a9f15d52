//! Export to Hugging Face's Llama layout (`model.safetensors`, `config.json`,
//! `tokenizer.json`), which `transformers` and `candle-transformers` load unchanged.

use std::path::{Path, PathBuf};

use serde_json::json;

use crate::config::ModelConfig;
use crate::decoder::Decoder;
use crate::error::{ModelError, Result};

/// `config.json` for `LlamaForCausalLM`.
pub fn hf_config(cfg: &ModelConfig, eot_id: Option<u32>) -> serde_json::Value {
    json!({
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "hidden_size": cfg.d_model,
        "intermediate_size": cfg.d_ff,
        "num_hidden_layers": cfg.n_layers,
        "num_attention_heads": cfg.n_heads,
        "num_key_value_heads": cfg.n_kv_heads,
        "head_dim": cfg.head_dim(),
        "vocab_size": cfg.vocab_size,
        "max_position_embeddings": cfg.max_seq_len,
        "rms_norm_eps": cfg.norm_eps,
        "rope_theta": cfg.rope_theta,
        "tie_word_embeddings": cfg.tie_embeddings,
        "hidden_act": "silu",
        "attention_bias": false,
        "mlp_bias": false,
        "initializer_range": cfg.init_std,
        "bos_token_id": eot_id,
        "eos_token_id": eot_id,
        "torch_dtype": "float32",
    })
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> ModelError + '_ {
    move |source| ModelError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Writes the model (and the tokenizer, when given) into `dir`, through a temporary
/// sibling directory renamed into place.
pub fn export_hf(
    model: &Decoder,
    dir: &Path,
    tokenizer_json: Option<&Path>,
    eot_id: Option<u32>,
) -> Result<()> {
    let tmp = PathBuf::from(format!("{}.tmp-{}", dir.display(), std::process::id()));
    if tmp.exists() {
        std::fs::remove_dir_all(&tmp).map_err(io(&tmp))?;
    }
    std::fs::create_dir_all(&tmp).map_err(io(&tmp))?;
    let result = (|| -> Result<()> {
        let weights = tmp.join("model.safetensors");
        candle_core::safetensors::save(&model.tensors(), &weights)?;
        let config =
            serde_json::to_string_pretty(&hf_config(model.config(), eot_id)).expect("serializable");
        std::fs::write(tmp.join("config.json"), config).map_err(io(&tmp))?;
        if let Some(t) = tokenizer_json {
            std::fs::copy(t, tmp.join("tokenizer.json")).map_err(io(t))?;
        }
        if dir.exists() {
            std::fs::remove_dir_all(dir).map_err(io(dir))?;
        }
        std::fs::rename(&tmp, dir).map_err(io(dir))
    })();
    if result.is_err() {
        let _ = std::fs::remove_dir_all(&tmp);
    }
    result
}
