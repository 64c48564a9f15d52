//! Export to Hugging Face's Llama layout (`model.safetensors`, `config.json`,
//! `generation_config.json`, `tokenizer.json`, `tokenizer_config.json` and a `README.md`
//! model card), which `transformers` and `candle-transformers` load unchanged.

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
        "pad_token_id": eot_id,
        "dtype": "float32",
    })
}

/// What an export carries beside the weights and `config.json`.
#[derive(Debug, Default, Clone, Copy)]
pub struct ExportFiles<'a> {
    /// The tokenizer the model was trained with (`tokenizer.json`).
    pub tokenizer: Option<&'a Path>,
    /// The end-of-text token (id, text): every training document starts with it, and it is
    /// the model's bos, eos and pad token.
    pub eot: Option<(u32, &'a str)>,
    /// The model card (`README.md`).
    pub model_card: Option<&'a str>,
    /// The sha256 the data stage gave the tokenizer (`data.json`), recorded in config.json
    /// as `synthscale_tokenizer_sha256`: the exported tokenizer.json differs from the one
    /// trained with (its document-start post-processor), and `init_from` checks this.
    pub tokenizer_sha256: Option<&'a str>,
}

/// The config.json key under which an export records its tokenizer's data-stage sha256.
pub const TOKENIZER_SHA256_KEY: &str = "synthscale_tokenizer_sha256";

/// `generation_config.json`: the special tokens `generate` needs.
pub fn generation_config(cfg: &ModelConfig, eot_id: u32) -> serde_json::Value {
    json!({
        "bos_token_id": eot_id,
        "eos_token_id": eot_id,
        "pad_token_id": eot_id,
        "max_length": cfg.max_seq_len,
    })
}

/// `tokenizer_config.json` for a fast tokenizer whose bos, eos and pad token is `eot`.
pub fn tokenizer_config(cfg: &ModelConfig, eot: &str) -> serde_json::Value {
    json!({
        "tokenizer_class": "PreTrainedTokenizerFast",
        "bos_token": eot,
        "eos_token": eot,
        "pad_token": eot,
        "model_max_length": cfg.max_seq_len,
        "clean_up_tokenization_spaces": false,
    })
}

/// `tokenizer.json` that starts every encoded text with the end-of-text token, as every
/// training document started: a `TemplateProcessing` post-processor (`<eot> $A`), after
/// the tokenizer's own (a `Sequence` of both) when it has one.
pub fn with_document_start(
    mut tokenizer: serde_json::Value,
    eot: (u32, &str),
) -> serde_json::Value {
    let (id, text) = eot;
    let template = json!({
        "type": "TemplateProcessing",
        "single": [
            {"SpecialToken": {"id": text, "type_id": 0}},
            {"Sequence": {"id": "A", "type_id": 0}}
        ],
        "pair": [
            {"SpecialToken": {"id": text, "type_id": 0}},
            {"Sequence": {"id": "A", "type_id": 0}},
            {"SpecialToken": {"id": text, "type_id": 1}},
            {"Sequence": {"id": "B", "type_id": 1}}
        ],
        "special_tokens": {text: {"id": text, "ids": [id], "tokens": [text]}}
    });
    let own = tokenizer
        .get("post_processor")
        .cloned()
        .unwrap_or(serde_json::Value::Null);
    tokenizer["post_processor"] = if own.is_null() {
        template
    } else {
        json!({"type": "Sequence", "processors": [own, template]})
    };
    tokenizer
}

/// 0755 on `dir`, 0644 on each file in it (safetensors and temporary files are created
/// 0600).
fn readable_by_all(dir: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755))
        .map_err(|e| ModelError::write(dir, e))?;
    for e in std::fs::read_dir(dir).map_err(|e| ModelError::read(dir, e))? {
        let p = e.map_err(|e| ModelError::read(dir, e))?.path();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644))
            .map_err(|e| ModelError::write(&p, e))?;
    }
    Ok(())
}

/// The files [`export_hf`] writes.
const EXPORT_FILES: [&str; 6] = [
    "model.safetensors",
    "config.json",
    "generation_config.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "README.md",
];

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
///
/// Every file is written readable by all (0644), as a model on a shared cluster must be.
pub fn export_hf(model: &Decoder, dir: &Path, files: &ExportFiles) -> Result<()> {
    let eot_id = files.eot.map(|(id, _)| id);
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
        std::fs::remove_dir_all(&tmp).map_err(|e| ModelError::write(&tmp, e))?;
    }
    std::fs::create_dir_all(&tmp).map_err(|e| ModelError::write(&tmp, e))?;
    let result = (|| -> Result<()> {
        let weights = tmp.join("model.safetensors");
        candle_core::safetensors::save(&model.tensors(), &weights)?;
        let mut config = hf_config(model.config(), eot_id);
        if let Some(h) = files.tokenizer_sha256 {
            config[TOKENIZER_SHA256_KEY] = json!(h);
        }
        let config = serde_json::to_string_pretty(&config).expect("serializable");
        std::fs::write(tmp.join("config.json"), config).map_err(|e| ModelError::write(&tmp, e))?;
        let json = |v: &serde_json::Value| serde_json::to_string_pretty(v).expect("serializable");
        if let Some((id, text)) = files.eot {
            let g = generation_config(model.config(), id);
            std::fs::write(tmp.join("generation_config.json"), json(&g))
                .map_err(|e| ModelError::write(&tmp, e))?;
            let t = tokenizer_config(model.config(), text);
            std::fs::write(tmp.join("tokenizer_config.json"), json(&t))
                .map_err(|e| ModelError::write(&tmp, e))?;
        }
        if let Some(t) = files.tokenizer {
            let text = std::fs::read_to_string(t).map_err(|e| ModelError::read(t, e))?;
            let mut tok: serde_json::Value =
                serde_json::from_str(&text).map_err(|e| ModelError::Tokenizer {
                    path: t.to_path_buf(),
                    message: format!("not a tokenizer.json: {e}"),
                })?;
            if let Some(eot) = files.eot {
                tok = with_document_start(tok, eot);
            }
            std::fs::write(tmp.join("tokenizer.json"), json(&tok))
                .map_err(|e| ModelError::write(&tmp, e))?;
        }
        if let Some(card) = files.model_card {
            std::fs::write(tmp.join("README.md"), card).map_err(|e| ModelError::write(&tmp, e))?;
        }
        readable_by_all(&tmp)?;
        // Checked again just before the earlier export is moved aside.
        let replaced = dir.symlink_metadata().is_ok();
        if replaced {
            if let Some(reason) = not_an_export_dir(dir) {
                return Err(refuse(reason));
            }
            std::fs::rename(dir, &aside).map_err(|e| ModelError::write(dir, e))?;
        }
        std::fs::rename(&tmp, dir).map_err(|e| ModelError::write(dir, e))?;
        if replaced {
            std::fs::remove_dir_all(&aside).map_err(|e| ModelError::write(&aside, e))?;
        }
        Ok(())
    })();
    if result.is_err() {
        let _ = std::fs::remove_dir_all(&tmp);
    }
    result
}
