//! The generator a synth run uses: synthscale's candle decoder on a local model, or an
//! OpenAI-compatible inference server, with what records need to name it.

use std::path::Path;

use crate::config::{GeneratorConfig, GeneratorKind};
use crate::error::{Result, SynthError};
use crate::generate::{Generator, Sampling};
use crate::llama::Llama;
use crate::record::GeneratorId;
use crate::server::ServerClient;
use crate::sha256_hex;
use crate::tokenizer::{ChatFormat, ChatTokenizer};
use synthscale_model::ModelError;

/// Where generations come from.
pub enum Backend {
    /// The candle decoder, its tokenizer and chat format.
    Local {
        generator: Generator,
        format: ChatFormat,
    },
    /// An inference server; the tokenizer (if the config names one) only measures passages.
    Server {
        client: ServerClient,
        tokenizer: Option<ChatTokenizer>,
    },
}

/// A loaded generator with everything records need to name it.
pub struct LoadedGenerator {
    pub backend: Backend,
    pub id: GeneratorId,
    pub sampling: Sampling,
}

impl LoadedGenerator {
    /// The length of `text` in generator tokens (for a server without a tokenizer, the
    /// usual estimate of one token per four bytes).
    pub fn count_tokens(&self, text: &str) -> usize {
        let tok = match &self.backend {
            Backend::Local { generator, .. } => Some(&generator.tokenizer),
            Backend::Server { tokenizer, .. } => tokenizer.as_ref(),
        };
        match tok {
            Some(t) => t.encode(text).map(|v| v.len()).unwrap_or(0),
            None => text.len().div_ceil(4),
        }
    }

    /// One line for the log.
    pub fn describe(&self) -> String {
        match &self.backend {
            Backend::Local { generator, .. } => format!(
                "generator {} (sha256 {}…), batch {}",
                self.id.name,
                &self.id.sha256[..12.min(self.id.sha256.len())],
                generator.batch_size
            ),
            Backend::Server { client, tokenizer } => format!(
                "generator {} at {}, up to {} requests in flight; passages measured {}",
                client.model,
                client.base_url(),
                client.max_concurrency(),
                if tokenizer.is_some() {
                    "with the given tokenizer"
                } else {
                    "as bytes / 4 (no tokenizer given)"
                }
            ),
        }
    }
}

/// Opens the generator `cfg` names: loads a local model, or checks that the server
/// answers and serves the model.
pub fn load_generator(
    cfg: &GeneratorConfig,
    sampling: Sampling,
    cfg_path: &Path,
) -> Result<LoadedGenerator> {
    match cfg.kind {
        GeneratorKind::Local => load_local(cfg, sampling),
        GeneratorKind::Openai => {
            let client = ServerClient::new(cfg, cfg_path)?;
            client.check_model(cfg_path)?;
            let tokenizer = match &cfg.tokenizer {
                None => None,
                Some(t) if t.extension().is_some_and(|e| e == "gguf") => {
                    let ct = Llama::read_gguf_header(t)?;
                    Some(ChatTokenizer::from_gguf(&ct, t)?)
                }
                Some(t) => Some(ChatTokenizer::from_file(t, None)?),
            };
            let id = GeneratorId {
                name: cfg.name.clone().unwrap_or_else(|| client.model.clone()),
                sha256: String::new(),
                server_model: Some(client.model.clone()),
            };
            Ok(LoadedGenerator {
                backend: Backend::Server { client, tokenizer },
                id,
                sampling,
            })
        }
    }
}

fn load_local(cfg: &GeneratorConfig, sampling: Sampling) -> Result<LoadedGenerator> {
    let path = &cfg.model;
    if !path.exists() {
        return Err(SynthError::Missing {
            path: path.clone(),
            what: "generator model (scripts/fetch-generator.sh fetches SmolLM2)".into(),
        });
    }
    let (model, tokenizer, format, weights) = if path.is_dir() {
        let model = Llama::from_hf_dir(path)?;
        let tok_path = cfg
            .tokenizer
            .clone()
            .unwrap_or_else(|| path.join("tokenizer.json"));
        let eos = std::fs::read_to_string(path.join("config.json"))
            .ok()
            .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
            .and_then(|j| j["eos_token_id"].as_u64())
            .map(|v| v as u32);
        let tok = ChatTokenizer::from_file(&tok_path, eos)?;
        let format = if tok.token_to_id("<|im_start|>").is_some() {
            ChatFormat::ChatMl
        } else {
            ChatFormat::Plain
        };
        (model, tok, format, path.join("model.safetensors"))
    } else {
        let (model, ct) = Llama::from_gguf(path)?;
        let tok = match &cfg.tokenizer {
            Some(t) => ChatTokenizer::from_file(
                t,
                ct.metadata
                    .get("tokenizer.ggml.eos_token_id")
                    .and_then(|v| v.to_u32().ok()),
            )?,
            None => ChatTokenizer::from_gguf(&ct, path)?,
        };
        let template = ct
            .metadata
            .get("tokenizer.chat_template")
            .and_then(|v| v.to_string().ok())
            .map(|s| s.as_str());
        let format = ChatFormat::from_template(template, path)?;
        (model, tok, format, path.clone())
    };
    if tokenizer.vocab_size() > model.config().vocab_size {
        return Err(SynthError::Weights {
            path: path.clone(),
            message: format!(
                "the tokenizer has {} tokens, the model's embedding only {}",
                tokenizer.vocab_size(),
                model.config().vocab_size
            ),
        });
    }
    let model = match cfg.device.as_str() {
        "cpu" => model,
        _ => model.to_device(&open_cuda(path)?)?,
    };
    let bytes = std::fs::read(&weights).map_err(|e| SynthError::read(&weights, e))?;
    let id = GeneratorId {
        name: cfg.name.clone().unwrap_or_else(|| {
            path.file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default()
        }),
        sha256: sha256_hex(&bytes),
        server_model: None,
    };
    Ok(LoadedGenerator {
        backend: Backend::Local {
            generator: Generator {
                model,
                tokenizer,
                sampling,
                batch_size: cfg.batch_size,
            },
            format,
        },
        id,
        sampling,
    })
}

/// GPU 0 of those visible, for `device = "cuda"`, opened as the trainer opens its devices.
fn open_cuda(model: &Path) -> Result<candle_core::Device> {
    synthscale_model::device::open_cuda(0).map_err(|e| match e {
        ModelError::CudaNotBuilt => SynthError::Unsupported {
            path: model.to_path_buf(),
            message: format!("generator.device = {e}"),
        },
        e => SynthError::Weights {
            path: model.to_path_buf(),
            message: format!("generator.device = \"cuda\": {e}"),
        },
    })
}
