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

/// The files [`export_hf`] writes.
const EXPORT_FILES: [&str; 3] = ["model.safetensors", "config.json", "tokenizer.json"];

/// Why an export may not replace `dir`, or `None` when it may: an empty directory, or an
/// earlier export (nothing but [`EXPORT_FILES`], with a `LlamaForCausalLM` config.json), so
/// that replacing it loses nothing else.
pub fn not_an_export_dir(dir: &Path) -> Option<String> {
    match std::fs::metadata(dir) {
        Ok(m) if m.is_dir() => {}
        Ok(_) => return Some("a file, not a directory".into()),
        Err(e) => return Some(format!("unreadable ({e})")),
    }
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) => return Some(format!("unreadable ({e})")),
    };
    let mut names = Vec::new();
    for e in entries {
        match e {
            Ok(e) => names.push(e.file_name().to_string_lossy().into_owned()),
            Err(e) => return Some(format!("unreadable ({e})")),
        }
    }
    if names.is_empty() {
        return None;
    }
    names.sort();
    if let Some(n) = names.iter().find(|n| !EXPORT_FILES.contains(&n.as_str())) {
        return Some(format!(
            "a directory holding `{n}`, which an export does not write"
        ));
    }
    let config = std::fs::read_to_string(dir.join("config.json"))
        .ok()
        .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok());
    if config.is_none_or(|c| c["architectures"][0] != "LlamaForCausalLM") {
        return Some("a directory without the config.json of an export".into());
    }
    None
}

/// Writes the model (and the tokenizer, when given) into `dir`, through a temporary
/// sibling directory renamed into place. An existing `dir` is replaced only when it is
/// empty or an earlier export ([`not_an_export_dir`]); anything else is refused untouched.
pub fn export_hf(
    model: &Decoder,
    dir: &Path,
    tokenizer_json: Option<&Path>,
    eot_id: Option<u32>,
) -> Result<()> {
    let refuse = |reason: String| ModelError::NotExportDir {
        path: dir.to_path_buf(),
        reason,
    };
    if dir.symlink_metadata().is_ok() {
        if let Some(reason) = not_an_export_dir(dir) {
            return Err(refuse(reason));
        }
    }
    let tmp = PathBuf::from(format!("{}.tmp-{}", dir.display(), std::process::id()));
    let aside = PathBuf::from(format!("{}.old-{}", dir.display(), std::process::id()));
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
        // Checked again just before the earlier export is moved aside.
        let replaced = dir.symlink_metadata().is_ok();
        if replaced {
            if let Some(reason) = not_an_export_dir(dir) {
                return Err(refuse(reason));
            }
            std::fs::rename(dir, &aside).map_err(io(dir))?;
        }
        std::fs::rename(&tmp, dir).map_err(io(dir))?;
        if replaced {
            std::fs::remove_dir_all(&aside).map_err(io(&aside))?;
        }
        Ok(())
    })();
    if result.is_err() {
        let _ = std::fs::remove_dir_all(&tmp);
    }
    result
}
