//! The generator's tokenizer (from `tokenizer.json`, or rebuilt from GGUF metadata) and its
//! chat template (ChatML).

use std::path::Path;

use candle_core::quantized::gguf_file;
use serde_json::json;
use tokenizers::Tokenizer;

use crate::error::{Result, SynthError};

/// A tokenizer with the ids generation needs and the chat format of the model.
pub struct ChatTokenizer {
    inner: Tokenizer,
    /// Ids that end a generation (the model's end-of-sequence and ChatML's `<|im_end|>`).
    pub stop_ids: Vec<u32>,
}

fn tok_err(e: impl std::fmt::Display) -> SynthError {
    SynthError::Tokenizer(e.to_string())
}

impl ChatTokenizer {
    /// Rebuilds a GPT-2-style byte-level BPE tokenizer from GGUF metadata
    /// (`tokenizer.ggml.{tokens,merges,token_type,eos_token_id}`). Control tokens (type 3)
    /// become special added tokens so `<|im_start|>` encodes to its id.
    pub fn from_gguf(ct: &gguf_file::Content, path: &Path) -> Result<Self> {
        let md = |k: &str| {
            ct.metadata.get(k).ok_or_else(|| SynthError::Weights {
                path: path.to_path_buf(),
                message: format!("GGUF metadata `{k}` is missing (no tokenizer in the file; give `tokenizer` in the config)"),
            })
        };
        let bad = |k: &str| SynthError::Weights {
            path: path.to_path_buf(),
            message: format!("GGUF metadata `{k}` has the wrong type"),
        };
        let model = md("tokenizer.ggml.model")?
            .to_string()
            .map_err(|_| bad("tokenizer.ggml.model"))?;
        if model != "gpt2" {
            return Err(SynthError::Unsupported {
                path: path.to_path_buf(),
                message: format!(
                    "tokenizer.ggml.model is `{model}`; only byte-level BPE (`gpt2`) is rebuilt from GGUF; give a tokenizer.json"
                ),
            });
        }
        let pre = ct
            .metadata
            .get("tokenizer.ggml.pre")
            .and_then(|v| v.to_string().ok())
            .cloned()
            .unwrap_or_else(|| "default".into());
        let tokens = md("tokenizer.ggml.tokens")?
            .to_vec()
            .map_err(|_| bad("tokenizer.ggml.tokens"))?;
        let merges = md("tokenizer.ggml.merges")?
            .to_vec()
            .map_err(|_| bad("tokenizer.ggml.merges"))?;
        let types = ct
            .metadata
            .get("tokenizer.ggml.token_type")
            .and_then(|v| v.to_vec().ok());
        let mut vocab = serde_json::Map::new();
        let mut added = Vec::new();
        for (i, t) in tokens.iter().enumerate() {
            let t = t.to_string().map_err(|_| bad("tokenizer.ggml.tokens"))?;
            vocab.insert(t.clone(), json!(i));
            let ty = types
                .and_then(|ts| ts.get(i))
                .and_then(|v| v.to_i32().ok())
                .unwrap_or(1);
            if ty == 3 || ty == 4 {
                added.push(
                    json!({"id": i, "content": t, "single_word": false, "lstrip": false,
                    "rstrip": false, "normalized": false, "special": ty == 3}),
                );
            }
        }
        let merges: Vec<String> = merges
            .iter()
            .map(|m| {
                m.to_string()
                    .cloned()
                    .map_err(|_| bad("tokenizer.ggml.merges"))
            })
            .collect::<Result<_>>()?;
        let byte_level = json!({"type": "ByteLevel", "add_prefix_space": false,
            "trim_offsets": true, "use_regex": true});
        // llama.cpp's `smollm` pre-tokenizer splits digits one by one before the GPT-2 regex,
        // as SmolLM's own tokenizer.json does (Digits(individual) + ByteLevel).
        let pre_tok = match pre.as_str() {
            "smollm" => json!({"type": "Sequence", "pretokenizers": [
                {"type": "Digits", "individual_digits": true}, byte_level]}),
            "gpt2" | "default" => byte_level,
            other => {
                return Err(SynthError::Unsupported {
                    path: path.to_path_buf(),
                    message: format!(
                        "tokenizer.ggml.pre is `{other}`; rebuilt pre-tokenizers: smollm, gpt2, default; give a tokenizer.json"
                    ),
                })
            }
        };
        let spec = json!({
            "version": "1.0",
            "truncation": null,
            "padding": null,
            "added_tokens": added,
            "normalizer": null,
            "pre_tokenizer": pre_tok,
            "post_processor": null,
            "decoder": {"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": true,
                "use_regex": true},
            "model": {"type": "BPE", "dropout": null, "unk_token": null,
                "continuing_subword_prefix": null, "end_of_word_suffix": null,
                "fuse_unk": false, "byte_fallback": false, "ignore_merges": false,
                "vocab": vocab, "merges": merges},
        });
        let inner =
            Tokenizer::from_bytes(serde_json::to_vec(&spec).expect("json")).map_err(tok_err)?;
        let eos = ct
            .metadata
            .get("tokenizer.ggml.eos_token_id")
            .and_then(|v| v.to_u32().ok());
        Self::finish(inner, eos)
    }

    /// Loads a `tokenizer.json`.
    pub fn from_file(path: &Path, eos_id: Option<u32>) -> Result<Self> {
        if !path.exists() {
            return Err(SynthError::Missing {
                path: path.to_path_buf(),
                what: "tokenizer.json".into(),
            });
        }
        let inner = Tokenizer::from_file(path).map_err(|e| SynthError::Weights {
            path: path.to_path_buf(),
            message: format!("not a tokenizer.json: {e}"),
        })?;
        Self::finish(inner, eos_id)
    }

    fn finish(inner: Tokenizer, eos: Option<u32>) -> Result<Self> {
        let mut stop_ids: Vec<u32> = eos.into_iter().collect();
        for t in ["<|im_end|>", "<|endoftext|>", "</s>"] {
            if let Some(id) = inner.token_to_id(t) {
                if !stop_ids.contains(&id) {
                    stop_ids.push(id);
                }
            }
        }
        Ok(ChatTokenizer { inner, stop_ids })
    }

    pub fn encode(&self, text: &str) -> Result<Vec<u32>> {
        Ok(self
            .inner
            .encode(text, false)
            .map_err(tok_err)?
            .get_ids()
            .to_vec())
    }

    /// Decodes generated ids, dropping special tokens.
    pub fn decode(&self, ids: &[u32]) -> Result<String> {
        self.inner.decode(ids, true).map_err(tok_err)
    }

    pub fn token_to_id(&self, t: &str) -> Option<u32> {
        self.inner.token_to_id(t)
    }

    pub fn vocab_size(&self) -> usize {
        self.inner.get_vocab_size(true)
    }
}

/// Chat formats the generator can write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChatFormat {
    /// `<|im_start|>role\n…<|im_end|>\n`, ending with `<|im_start|>assistant\n`.
    ChatMl,
    /// No template: system and user text joined by a blank line (base models, and models
    /// exported by `synthscale export`).
    Plain,
}

impl ChatFormat {
    /// Picks the format a GGUF `tokenizer.chat_template` (Jinja) describes; ChatML only.
    pub fn from_template(template: Option<&str>, path: &Path) -> Result<Self> {
        match template {
            None => Ok(ChatFormat::Plain),
            Some(t) if t.contains("<|im_start|>") && t.contains("<|im_end|>") => {
                Ok(ChatFormat::ChatMl)
            }
            Some(t) => Err(SynthError::Unsupported {
                path: path.to_path_buf(),
                message: format!(
                    "tokenizer.chat_template is not ChatML (supported: ChatML); it begins {:?}",
                    t.chars().take(80).collect::<String>()
                ),
            }),
        }
    }

    /// The prompt text for one system + user turn, ready for the assistant's answer.
    pub fn render(self, system: &str, user: &str) -> String {
        match self {
            ChatFormat::ChatMl => format!(
                "<|im_start|>system\n{system}<|im_end|>\n<|im_start|>user\n{user}<|im_end|>\n<|im_start|>assistant\n"
            ),
            ChatFormat::Plain => {
                if system.is_empty() {
                    format!("{user}\n\n")
                } else {
                    format!("{system}\n\n{user}\n\n")
                }
            }
        }
    }
}
