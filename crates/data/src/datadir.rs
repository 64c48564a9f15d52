//! A prepared data directory: `data.json`, `tokenizer.json`, and one train and one
//! validation shard per source; opened with its tokenizer identity checked.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::config::SourceKind;
use crate::error::{DataError, Result};
use crate::shard::{Shard, TokenDtype};
use crate::tokenizer::TextTokenizer;

/// Version of the data directory layout.
pub const LAYOUT_VERSION: u32 = 1;
pub const META_FILE: &str = "data.json";
pub const TOKENIZER_FILE: &str = "tokenizer.json";

/// The tokenizer the shards were written with.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TokenizerMeta {
    /// sha256 of the canonical tokenizer JSON (stored beside as `tokenizer.json`).
    pub hash: String,
    /// Largest token id + 1.
    pub vocab_size: u32,
    pub eot_token: String,
    pub eot_id: u32,
    pub dtype: TokenDtype,
    /// The file it was loaded from, or how it was trained.
    pub origin: String,
}

/// Documents, text bytes and tokens (end-of-text tokens included) of one split.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SplitStats {
    pub documents: u64,
    pub bytes: u64,
    pub tokens: u64,
}

/// One source as prepared.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SourceMeta {
    pub name: String,
    pub kind: SourceKind,
    pub domain: String,
    /// The corpus path as given in the manifest, resolved.
    pub path: String,
    pub files: usize,
    pub validation_fraction: f64,
    pub train: SplitStats,
    pub val: SplitStats,
    /// Blank records or paragraphs skipped.
    pub skipped_empty: u64,
}

/// `data.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DataMeta {
    pub layout_version: u32,
    /// Hash of the resolved `[data]` config and the input files' names and sizes:
    /// equal fingerprints mean `data prepare` has nothing to do.
    pub fingerprint: String,
    pub tokenizer: TokenizerMeta,
    pub seq_len: usize,
    pub max_repeats: f64,
    pub sources: Vec<SourceMeta>,
}

impl DataMeta {
    /// Validation domains and the sources (indices) whose held-out documents form each.
    pub fn domains(&self) -> BTreeMap<String, Vec<usize>> {
        let mut d: BTreeMap<String, Vec<usize>> = BTreeMap::new();
        for (i, s) in self.sources.iter().enumerate() {
            if s.val.documents > 0 {
                d.entry(s.domain.clone()).or_default().push(i);
            }
        }
        d
    }

    pub fn source_index(&self, name: &str) -> Option<usize> {
        self.sources.iter().position(|s| s.name == name)
    }
}

pub(crate) fn train_path(dir: &Path, source: &str) -> PathBuf {
    dir.join("train").join(format!("{source}.bin"))
}

pub(crate) fn val_path(dir: &Path, source: &str) -> PathBuf {
    dir.join("val").join(format!("{source}.bin"))
}

/// Reads `data.json` of a data directory.
pub fn read_meta(dir: &Path) -> Result<DataMeta> {
    let path = dir.join(META_FILE);
    let text = std::fs::read_to_string(&path).map_err(|e| DataError::read(&path, e))?;
    let meta: DataMeta = serde_json::from_str(&text).map_err(|e| DataError::Corrupt {
        path: path.clone(),
        message: format!("not a synthscale data description: {e}"),
    })?;
    if meta.layout_version != LAYOUT_VERSION {
        return Err(DataError::Corrupt {
            path,
            message: format!(
                "layout version {}; this build reads version {LAYOUT_VERSION}",
                meta.layout_version
            ),
        });
    }
    Ok(meta)
}

/// A prepared data directory, with every shard mapped.
#[derive(Debug)]
pub struct DataDir {
    path: PathBuf,
    meta: DataMeta,
    train: Vec<Shard>,
    val: Vec<Shard>,
}

impl DataDir {
    /// Opens a data directory and checks that every shard belongs to it (same tokenizer,
    /// same counts as `data.json`).
    pub fn open(dir: &Path) -> Result<Self> {
        let meta = read_meta(dir)?;
        let mut train = Vec::with_capacity(meta.sources.len());
        let mut val = Vec::with_capacity(meta.sources.len());
        for s in &meta.sources {
            for (split, path, stats, out) in [
                ("train", train_path(dir, &s.name), s.train, &mut train),
                ("val", val_path(dir, &s.name), s.val, &mut val),
            ] {
                let shard = Shard::open(&path)?;
                let h = shard.header();
                if h.tokenizer_hash != meta.tokenizer.hash {
                    return Err(DataError::TokenizerMismatch {
                        path,
                        expected: meta.tokenizer.hash.clone(),
                        found: h.tokenizer_hash.clone(),
                    });
                }
                if h.tokens != stats.tokens
                    || h.documents != stats.documents
                    || h.dtype != meta.tokenizer.dtype
                {
                    return Err(DataError::Corrupt {
                        path,
                        message: format!(
                            "{split} shard of source {:?} holds {} tokens in {} documents \
                             ({}), but {META_FILE} says {} in {} ({})",
                            s.name,
                            h.tokens,
                            h.documents,
                            h.dtype,
                            stats.tokens,
                            stats.documents,
                            meta.tokenizer.dtype
                        ),
                    });
                }
                out.push(shard);
            }
        }
        Ok(DataDir {
            path: dir.to_path_buf(),
            meta,
            train,
            val,
        })
    }

    /// Opens a data directory and requires it to have been built with the tokenizer whose
    /// hash is `expected`.
    pub fn open_expecting(dir: &Path, expected_tokenizer_hash: &str) -> Result<Self> {
        let d = Self::open(dir)?;
        if d.meta.tokenizer.hash != expected_tokenizer_hash {
            return Err(DataError::TokenizerMismatch {
                path: dir.to_path_buf(),
                expected: expected_tokenizer_hash.to_string(),
                found: d.meta.tokenizer.hash.clone(),
            });
        }
        Ok(d)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn meta(&self) -> &DataMeta {
        &self.meta
    }

    /// The tokenizer stored with the data, checked against the recorded hash.
    pub fn tokenizer(&self) -> Result<TextTokenizer> {
        let path = self.path.join(TOKENIZER_FILE);
        let tok = TextTokenizer::from_file(&path, &self.meta.tokenizer.eot_token)?;
        if tok.hash() != self.meta.tokenizer.hash {
            return Err(DataError::TokenizerMismatch {
                path,
                expected: self.meta.tokenizer.hash.clone(),
                found: tok.hash().to_string(),
            });
        }
        Ok(tok)
    }

    /// The training shard of source `i`.
    pub fn train_shard(&self, i: usize) -> &Shard {
        &self.train[i]
    }

    /// The validation shard of source `i`.
    pub fn val_shard(&self, i: usize) -> &Shard {
        &self.val[i]
    }

    /// The validation tokens of a domain: its sources' held-out documents, concatenated in
    /// source order. `None` for an unknown domain.
    pub fn validation_tokens(&self, domain: &str) -> Option<Vec<u32>> {
        let domains = self.meta.domains();
        let sources = domains.get(domain)?;
        let mut tokens = Vec::new();
        for &i in sources {
            tokens.extend(self.val[i].to_vec());
        }
        Some(tokens)
    }
}
