//! Tokenizers: a Hugging Face `tokenizer.json` or a byte-level BPE trained on the sources,
//! identified by the sha256 of their canonical serialization.

use std::path::{Path, PathBuf};

use rayon::prelude::*;
use sha2::{Digest, Sha256};
use tokenizers::models::bpe::{BpeTrainerBuilder, BPE};
use tokenizers::models::TrainerWrapper;
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::{AddedToken, Tokenizer};

use crate::error::{DataError, Result};

/// A loaded tokenizer with what the shards need to know of it.
#[derive(Clone)]
pub struct TextTokenizer {
    inner: Tokenizer,
    /// Canonical JSON (`tokenizers`' own compact serialization).
    json: String,
    /// sha256 of `json`, hex: the identity recorded in every shard.
    hash: String,
    eot_id: u32,
    /// One more than the largest token id.
    vocab_size: u32,
    /// Where it came from, for messages.
    origin: PathBuf,
}

impl std::fmt::Debug for TextTokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TextTokenizer")
            .field("hash", &self.hash)
            .field("eot_id", &self.eot_id)
            .field("vocab_size", &self.vocab_size)
            .field("origin", &self.origin)
            .finish()
    }
}

/// sha256 of bytes as lower-case hex: the one definition the data and synth stages share
/// (the fitter, which depends on neither, formats sha2's digest the same way inline).
pub fn sha256_hex(bytes: &[u8]) -> String {
    format!("{:x}", Sha256::digest(bytes))
}

impl TextTokenizer {
    /// Loads a `tokenizer.json`; `eot_token` must be in its vocabulary.
    pub fn from_file(path: &Path, eot_token: &str) -> Result<Self> {
        let bytes = std::fs::read(path).map_err(|e| DataError::read(path, e))?;
        Self::from_json_bytes(&bytes, path, eot_token)
    }

    /// Parses tokenizer JSON; `origin` is only used in messages.
    pub fn from_json_bytes(bytes: &[u8], origin: &Path, eot_token: &str) -> Result<Self> {
        let inner = Tokenizer::from_bytes(bytes).map_err(|e| DataError::Tokenizer {
            path: origin.to_path_buf(),
            message: format!("not a valid tokenizer.json: {e}"),
        })?;
        Self::wrap(inner, origin, eot_token)
    }

    fn wrap(inner: Tokenizer, origin: &Path, eot_token: &str) -> Result<Self> {
        let json = inner.to_string(false).map_err(|e| DataError::Tokenizer {
            path: origin.to_path_buf(),
            message: format!("cannot serialize: {e}"),
        })?;
        let eot_id = inner
            .token_to_id(eot_token)
            .ok_or_else(|| DataError::Tokenizer {
                path: origin.to_path_buf(),
                message: format!(
                    "end-of-text token {eot_token:?} (data.eot_token) is not in the vocabulary"
                ),
            })?;
        let max_id = inner.get_vocab(true).values().copied().max().unwrap_or(0);
        Ok(TextTokenizer {
            hash: sha256_hex(json.as_bytes()),
            json,
            inner,
            eot_id,
            vocab_size: max_id + 1,
            origin: origin.to_path_buf(),
        })
    }

    /// Trains a byte-level BPE (GPT-2 style pre-tokenization) on `texts`.
    pub fn train_bpe<I, S>(
        texts: I,
        vocab_size: usize,
        min_frequency: u64,
        eot_token: &str,
    ) -> Result<Self>
    where
        I: Iterator<Item = S> + Send,
        S: AsRef<str> + Send,
    {
        let origin = PathBuf::from(format!("<bpe vocab_size={vocab_size}>"));
        // GPT-2's byte-level setup: no prefix space (so decoding is the identity), offsets
        // trimmed, GPT-2's split regex.
        let byte_level = ByteLevel::new(false, true, true);
        let mut tok = Tokenizer::new(BPE::default());
        tok.with_pre_tokenizer(Some(byte_level));
        tok.with_decoder(Some(byte_level));
        let mut trainer: TrainerWrapper = BpeTrainerBuilder::new()
            .vocab_size(vocab_size)
            .min_frequency(min_frequency)
            .show_progress(false)
            .special_tokens(vec![AddedToken::from(eot_token.to_string(), true)])
            .initial_alphabet(ByteLevel::alphabet().into_iter().collect())
            .build()
            .into();
        tok.train(&mut trainer, texts)
            .map_err(|e| DataError::Tokenizer {
                path: origin.clone(),
                message: format!("BPE training failed: {e}"),
            })?;
        Self::wrap(tok, &origin, eot_token)
    }

    /// Token ids of one document, without special tokens.
    pub fn encode(&self, text: &str) -> Result<Vec<u32>> {
        let enc = self
            .inner
            .encode_fast(text, false)
            .map_err(|e| DataError::Internal(format!("tokenizing: {e}")))?;
        Ok(enc.get_ids().to_vec())
    }

    /// Token ids of many documents, on all of rayon's threads, in order.
    pub fn encode_many<S: AsRef<str> + Sync>(&self, texts: &[S]) -> Result<Vec<Vec<u32>>> {
        texts.par_iter().map(|t| self.encode(t.as_ref())).collect()
    }

    /// Text of token ids (special tokens kept).
    pub fn decode(&self, ids: &[u32]) -> Result<String> {
        self.inner
            .decode(ids, false)
            .map_err(|e| DataError::Internal(format!("decoding: {e}")))
    }

    pub fn hash(&self) -> &str {
        &self.hash
    }

    pub fn json(&self) -> &str {
        &self.json
    }

    pub fn eot_id(&self) -> u32 {
        self.eot_id
    }

    pub fn vocab_size(&self) -> u32 {
        self.vocab_size
    }

    pub fn origin(&self) -> &Path {
        &self.origin
    }

    /// The wrapped `tokenizers` tokenizer.
    pub fn inner(&self) -> &Tokenizer {
        &self.inner
    }
}
