//! `init_from`: continued pre-training. A run starts from the weights of another synthscale
//! run (its latest valid checkpoint) or of a `synthscale export` directory instead of a
//! random init; the optimizer state, step and data position start fresh, since it is a new
//! run with its own schedule. The source must have the run's model shape and tokenizer,
//! checked before anything is written or trained; what was taken (file and sha256) is
//! recorded in every checkpoint's `state.json`.

use std::path::{Path, PathBuf};

use candle_core::Device;
use synthscale_model::{Decoder, ModelConfig};

use crate::checkpoint::{self, sha256_file};
use crate::config::ResolvedConfig;
use crate::error::{Result, TrainError};
use crate::files::CONFIG as RUN_CONFIG;
pub use crate::state::{InitKind, InitRecord};

/// A source whose model shape and tokenizer agree with the run's ([`check`]).
#[derive(Debug, Clone)]
pub struct InitSource {
    pub path: PathBuf,
    pub kind: InitKind,
    /// A run source's resolved config, which its checkpoints are verified against.
    run: Option<Box<ResolvedConfig>>,
}

impl InitSource {
    /// `"run directory <path>"` or `"export <path>"`, for messages and `sweep plan`.
    pub fn describe(&self) -> String {
        match self.kind {
            InitKind::Run => format!("run directory {}", self.path.display()),
            InitKind::Export => format!("export {}", self.path.display()),
        }
    }
}

const HF_CONFIG: &str = "config.json";
const HF_WEIGHTS: &str = "model.safetensors";
const HF_TOKENIZER: &str = "tokenizer.json";

/// Checks that `src` is a run directory or an export whose model has `model`'s shape and
/// whose tokenizer is the one of hash `tokenizer_hash` (where the source records one).
/// Reads configs only, not weights. A mismatch is [`TrainError::Field`] naming the
/// source's config file and field and both values; `file` (the run config or manifest
/// that names the source) stands in the messages.
pub fn check(
    src: &Path,
    model: &ModelConfig,
    tokenizer_hash: &str,
    file: &Path,
) -> Result<InitSource> {
    let bad = |f: &Path, field: &str, message: String| TrainError::Field {
        file: f.to_path_buf(),
        field: field.to_string(),
        message,
    };
    if !src.is_dir() {
        return Err(bad(
            file,
            "init_from",
            format!(
                "{} is not a directory; give a synthscale run directory or a `synthscale \
                 export` directory",
                src.display()
            ),
        ));
    }
    let run_cfg = src.join(RUN_CONFIG);
    if run_cfg.is_file() {
        let text = std::fs::read_to_string(&run_cfg).map_err(|e| TrainError::read(&run_cfg, e))?;
        let theirs: ResolvedConfig = toml::from_str(&text).map_err(|e| TrainError::Config {
            file: run_cfg.clone(),
            message: format!(
                "not a synthscale run's resolved config (init_from): {}",
                e.to_string().trim_end()
            ),
        })?;
        compare(model, &theirs.model, &run_cfg, "model.", file)?;
        if theirs.tokenizer_hash != tokenizer_hash {
            return Err(bad(
                &run_cfg,
                "tokenizer_hash",
                format!(
                    "{} there, but the run ({}) trains with tokenizer {tokenizer_hash}: \
                     init_from needs the same tokenizer",
                    theirs.tokenizer_hash,
                    file.display()
                ),
            ));
        }
        if checkpoint::candidates(src).is_empty() {
            return Err(bad(
                file,
                "init_from",
                format!("{} has no checkpoint yet; train it first", src.display()),
            ));
        }
        return Ok(InitSource {
            path: src.to_path_buf(),
            kind: InitKind::Run,
            run: Some(Box::new(theirs)),
        });
    }
    let hf = src.join(HF_CONFIG);
    if !(hf.is_file() && src.join(HF_WEIGHTS).is_file()) {
        return Err(bad(
            file,
            "init_from",
            format!(
                "{} is neither a synthscale run directory ({RUN_CONFIG}) nor a `synthscale \
                 export` directory ({HF_CONFIG} and {HF_WEIGHTS})",
                src.display()
            ),
        ));
    }
    let text = std::fs::read_to_string(&hf).map_err(|e| TrainError::read(&hf, e))?;
    let json: serde_json::Value = serde_json::from_str(&text).map_err(|e| TrainError::Config {
        file: hf.clone(),
        message: format!("not JSON: {e}"),
    })?;
    let theirs = hf_model(&json, &hf)?;
    compare(model, &theirs, &hf, "", file)?;
    let tok = src.join(HF_TOKENIZER);
    // A synthscale export records the data stage's hash of the tokenizer it was trained
    // with (its tokenizer.json adds a document-start post-processor, so its bytes differ);
    // any other export is identified by its tokenizer.json's bytes.
    let recorded = json
        .get(synthscale_model::export::TOKENIZER_SHA256_KEY)
        .and_then(|v| v.as_str())
        .map(String::from);
    if recorded.is_some() || tok.is_file() {
        let (found, where_, field) = match recorded {
            Some(h) => (h, &hf, synthscale_model::export::TOKENIZER_SHA256_KEY),
            None => (sha256_file(&tok)?, &tok, "sha256"),
        };
        if found != tokenizer_hash {
            return Err(bad(
                where_,
                field,
                format!(
                    "{found}, but the run ({}) trains with tokenizer {tokenizer_hash}: \
                     init_from needs the same tokenizer",
                    file.display()
                ),
            ));
        }
    }
    Ok(InitSource {
        path: src.to_path_buf(),
        kind: InitKind::Export,
        run: None,
    })
}

/// The shape of a Hugging Face Llama `config.json`, with `LlamaConfig`'s defaults for the
/// optional fields. Fields named as in the file (`hidden_size`, ...), so that a mismatch
/// names the line to look at.
fn hf_model(json: &serde_json::Value, path: &Path) -> Result<ModelConfig> {
    let bad = |field: &str, message: String| TrainError::Field {
        file: path.to_path_buf(),
        field: field.to_string(),
        message,
    };
    if json["architectures"][0] != "LlamaForCausalLM" {
        return Err(bad(
            "architectures",
            format!(
                "{}, not [\"LlamaForCausalLM\"]: not an export of a synthscale model",
                json["architectures"]
            ),
        ));
    }
    let int = |k: &str| -> Result<usize> {
        json[k]
            .as_u64()
            .map(|v| v as usize)
            .ok_or_else(|| bad(k, format!("{} is not a whole number", json[k])))
    };
    let n_heads = int("num_attention_heads")?;
    let c = ModelConfig {
        vocab_size: int("vocab_size")?,
        d_model: int("hidden_size")?,
        n_layers: int("num_hidden_layers")?,
        n_heads,
        n_kv_heads: json["num_key_value_heads"]
            .as_u64()
            .map_or(n_heads, |v| v as usize),
        d_ff: int("intermediate_size")?,
        rope_theta: json["rope_theta"].as_f64().unwrap_or(10_000.0),
        norm_eps: json["rms_norm_eps"].as_f64().unwrap_or(1e-6),
        tie_embeddings: json["tie_word_embeddings"].as_bool().unwrap_or(false),
        ..ModelConfig::default()
    };
    if let Some(h) = json["head_dim"].as_u64() {
        if c.n_heads == 0 || h as usize * c.n_heads != c.d_model {
            return Err(bad(
                "head_dim",
                format!(
                    "{h}, but hidden_size / num_attention_heads = {} / {}: synthscale's \
                     decoder has head_dim = hidden_size / num_attention_heads",
                    c.d_model, c.n_heads
                ),
            ));
        }
    }
    Ok(c)
}

/// The fields the weights depend on, as (run field, source field in a run's
/// `config.toml`, source field in `config.json`, value). Left out: `max_seq_len` (the
/// rotary tables are computed, not stored, so continued pre-training may change the
/// context length) and `init_std` (no role once weights are loaded).
fn shape_fields(m: &ModelConfig) -> [(&'static str, &'static str, String); 9] {
    [
        ("vocab_size", "vocab_size", m.vocab_size.to_string()),
        ("d_model", "hidden_size", m.d_model.to_string()),
        ("n_layers", "num_hidden_layers", m.n_layers.to_string()),
        ("n_heads", "num_attention_heads", m.n_heads.to_string()),
        (
            "n_kv_heads",
            "num_key_value_heads",
            m.n_kv_heads.to_string(),
        ),
        ("d_ff", "intermediate_size", m.d_ff.to_string()),
        (
            "tie_embeddings",
            "tie_word_embeddings",
            m.tie_embeddings.to_string(),
        ),
        ("rope_theta", "rope_theta", m.rope_theta.to_string()),
        ("norm_eps", "rms_norm_eps", m.norm_eps.to_string()),
    ]
}

/// The first field where the source's model differs from the run's. `prefix` is
/// `"model."` for a run's `config.toml`, where the fields carry the run's names; an
/// export's `config.json` uses Hugging Face's.
fn compare(
    ours: &ModelConfig,
    theirs: &ModelConfig,
    src_file: &Path,
    prefix: &str,
    file: &Path,
) -> Result<()> {
    let export = prefix.is_empty();
    for ((name, hf_name, a), (_, _, b)) in shape_fields(ours).into_iter().zip(shape_fields(theirs))
    {
        if a != b {
            let field = if export {
                hf_name.to_string()
            } else {
                format!("{prefix}{name}")
            };
            return Err(TrainError::Field {
                file: src_file.to_path_buf(),
                field,
                message: format!(
                    "{b} there, but the run ({}) has model {name} = {a}: init_from needs the \
                     run's model shape exactly",
                    file.display()
                ),
            });
        }
    }
    Ok(())
}

/// Loads a checked source's weights as the run's model, on `dev`: for a run directory its
/// latest checkpoint that passes verification (`state.json` against the source's config,
/// `model.safetensors` against `SHA256SUMS`), for an export its `model.safetensors`.
pub fn load(src: &InitSource, cfg: &ResolvedConfig, dev: &Device) -> Result<(Decoder, InitRecord)> {
    let (weights, sha256, step) = match &src.run {
        Some(theirs) => {
            let mut first_error = None;
            let mut found = None;
            for dir in checkpoint::candidates(&src.path) {
                match checkpoint::verify_model(&dir, theirs) {
                    Ok((state, model, sha)) => {
                        found = Some((model, sha, Some(state.step)));
                        break;
                    }
                    Err(e) => {
                        first_error.get_or_insert(e);
                    }
                }
            }
            match (found, first_error) {
                (Some(f), _) => f,
                (None, Some((path, field, message))) => {
                    return Err(TrainError::Field {
                        file: path,
                        field: if field.is_empty() {
                            "init_from".into()
                        } else {
                            field
                        },
                        message: format!(
                            "{message}; init_from {} has no checkpoint that passes \
                             verification",
                            src.path.display()
                        ),
                    })
                }
                (None, None) => {
                    return Err(TrainError::Field {
                        file: src.path.clone(),
                        field: "init_from".into(),
                        message: "has no checkpoint".into(),
                    })
                }
            }
        }
        None => {
            let w = src.path.join(HF_WEIGHTS);
            let sha = sha256_file(&w)?;
            (w, sha, None)
        }
    };
    let tensors =
        candle_core::safetensors::load(&weights, dev).map_err(|e| TrainError::Checkpoint {
            path: weights.clone(),
            message: format!("cannot be read: {e}"),
        })?;
    let model = Decoder::from_tensors(&cfg.model, tensors, &weights)?;
    Ok((
        model,
        InitRecord {
            path: src.path.clone(),
            kind: src.kind,
            weights,
            sha256,
            step,
        },
    ))
}
