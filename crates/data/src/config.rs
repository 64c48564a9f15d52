//! The `[data]` section of an experiment manifest: sources, tokenizer, split and sequence length.

use std::collections::BTreeSet;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{DataError, Result};

/// What a source's text is: the studies compare natural web-like text with two synthetic kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SourceKind {
    Natural,
    Rephrased,
    Textbook,
}

impl SourceKind {
    pub const ALL: [SourceKind; 3] = [
        SourceKind::Natural,
        SourceKind::Rephrased,
        SourceKind::Textbook,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            SourceKind::Natural => "natural",
            SourceKind::Rephrased => "rephrased",
            SourceKind::Textbook => "textbook",
        }
    }
}

impl fmt::Display for SourceKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How a file's bytes become records.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// `.jsonl`, `.ndjson` and `.json` (optionally `.gz`) are JSONL; anything else is text.
    #[default]
    Auto,
    Text,
    Jsonl,
}

/// How a plain-text file is cut into documents (JSONL: one record is one document).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DocSplit {
    /// The whole file is one document.
    #[default]
    File,
    /// Paragraphs separated by blank lines are documents.
    Paragraph,
    /// Every non-empty line is a document.
    Line,
}

/// One corpus: a file or folder of text or JSONL, gzip or not.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceConfig {
    /// Unique name; names the shard files, so `[A-Za-z0-9._-]` only.
    pub name: String,
    /// natural, rephrased or textbook.
    pub kind: SourceKind,
    /// Validation domain: sources sharing a domain share one validation set.
    pub domain: String,
    /// A file, or a folder read recursively in sorted order (hidden files skipped).
    pub path: PathBuf,
    /// Record format; `auto` decides by file extension.
    #[serde(default)]
    pub format: Format,
    /// JSONL field holding the document text.
    #[serde(default = "default_text_field")]
    pub text_field: String,
    /// Plain text only: how files are cut into documents.
    #[serde(default)]
    pub split: DocSplit,
    /// Overrides `data.validation_fraction` for this source (0 keeps it all for training,
    /// e.g. for synthetic sources evaluated on natural domains).
    #[serde(default)]
    pub validation_fraction: Option<f64>,
}

fn default_text_field() -> String {
    "text".to_string()
}

/// Where the tokenizer comes from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
pub enum TokenizerSpec {
    /// A Hugging Face `tokenizer.json`.
    File { path: PathBuf },
    /// A byte-level BPE trained on the sources' training documents.
    Bpe {
        /// Vocabulary size including the end-of-text token.
        vocab_size: usize,
        /// Merges must occur at least this often in the training text.
        #[serde(default = "default_min_frequency")]
        min_frequency: u64,
        /// Train on at most this many bytes of text, taken from each source in proportion
        /// to its size, so that training time stays bounded on large corpora.
        #[serde(default = "default_train_bytes")]
        max_train_bytes: u64,
    },
}

fn default_min_frequency() -> u64 {
    2
}

fn default_train_bytes() -> u64 {
    200_000_000
}

/// Width of one token in the shard files.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TokenDtypeSpec {
    /// u16 when every token id fits (vocabulary ≤ 65,536), else u32.
    #[default]
    Auto,
    U16,
    U32,
}

/// The `[data]` section.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DataConfig {
    /// The corpora (`[[data.sources]]`).
    pub sources: Vec<SourceConfig>,
    /// The tokenizer; by default an 8,192-token BPE trained on the sources, since small
    /// models want 4–16k vocabularies.
    pub tokenizer: TokenizerSpec,
    /// The token that separates documents in the shards.
    pub eot_token: String,
    /// Fraction of each source's documents held out for validation, chosen by a hash of the
    /// document's text so that the split is stable when a corpus grows.
    pub validation_fraction: f64,
    /// Tokens per training sequence (the model's context length).
    pub seq_len: usize,
    /// Shard token width.
    pub token_dtype: TokenDtypeSpec,
    /// The mixture sampler warns when a source would be seen more than this many times
    /// (Muennighoff et al. 2023 find returns fade after ~4 epochs of repeated data).
    pub max_repeats: f64,
    /// Where `data prepare` writes; default `results/<manifest name>/data` under the
    /// working directory. Relative paths resolve against the working directory.
    pub out_dir: Option<PathBuf>,
}

impl Default for DataConfig {
    fn default() -> Self {
        DataConfig {
            sources: Vec::new(),
            tokenizer: TokenizerSpec::Bpe {
                vocab_size: 8192,
                min_frequency: default_min_frequency(),
                max_train_bytes: default_train_bytes(),
            },
            eot_token: "<|endoftext|>".to_string(),
            validation_fraction: 0.01,
            seq_len: 256,
            token_dtype: TokenDtypeSpec::Auto,
            max_repeats: 4.0,
            out_dir: None,
        }
    }
}

/// Largest accepted sequence length: far beyond any model this harness trains.
pub const MAX_SEQ_LEN: usize = 1 << 20;

/// Names that become file names and Slurm/shell arguments later: a safe alphabet only.
pub fn is_safe_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 100
        && !s.starts_with('.')
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
}

/// Why a name that [`is_safe_name`] refuses is refused.
fn unsafe_name_message(name: &str) -> String {
    format!("{name:?}: use 1-100 characters from A-Z a-z 0-9 . _ - (not starting with .)")
}

impl DataConfig {
    /// Parses a `[data]` section given as TOML text on its own (tests and tools).
    pub fn from_toml(text: &str, file: &Path) -> Result<DataConfig> {
        toml::from_str(text).map_err(|e| DataError::Manifest {
            file: file.to_path_buf(),
            message: e.to_string().trim_end().to_string(),
        })
    }

    /// Makes relative source and tokenizer paths relative to `base` (the manifest's folder).
    pub fn resolve_paths(&mut self, base: &Path) {
        for s in &mut self.sources {
            if s.path.is_relative() {
                s.path = base.join(&s.path);
            }
        }
        if let TokenizerSpec::File { path } = &mut self.tokenizer {
            if path.is_relative() {
                *path = base.join(&*path);
            }
        }
    }

    /// The validation fraction in force for source `i`.
    pub fn source_validation_fraction(&self, i: usize) -> f64 {
        self.sources[i]
            .validation_fraction
            .unwrap_or(self.validation_fraction)
    }

    /// Checks every bound before any work starts. `file` is the manifest (for messages);
    /// field names are given as they appear in the manifest (`data.sources[2].kind`).
    pub fn validate(&self, file: &Path) -> Result<()> {
        self.validate_with(file, true)
    }

    /// [`DataConfig::validate`]; with `corpora` false the sources' paths may be missing
    /// (planning a sweep before the corpora are on this machine).
    pub fn validate_with(&self, file: &Path, corpora: bool) -> Result<()> {
        let field = |name: String, msg: String| DataError::field(file, name, msg);
        if self.sources.is_empty() {
            return Err(field(
                "data.sources".into(),
                "no sources: add at least one [[data.sources]] table".into(),
            ));
        }
        check_fraction(self.validation_fraction)
            .map_err(|m| field("data.validation_fraction".into(), m))?;
        if self.seq_len == 0 || self.seq_len > MAX_SEQ_LEN {
            return Err(field(
                "data.seq_len".into(),
                format!("{} is outside 1..={MAX_SEQ_LEN}", self.seq_len),
            ));
        }
        if !(self.max_repeats.is_finite() && self.max_repeats > 0.0) {
            return Err(field(
                "data.max_repeats".into(),
                format!("{} must be a positive number", self.max_repeats),
            ));
        }
        if self.eot_token.is_empty() {
            return Err(field("data.eot_token".into(), "must not be empty".into()));
        }
        match &self.tokenizer {
            TokenizerSpec::File { path } => {
                if !path.is_file() {
                    return Err(field(
                        "data.tokenizer.path".into(),
                        format!("{} is not a file", path.display()),
                    ));
                }
            }
            TokenizerSpec::Bpe {
                vocab_size,
                max_train_bytes,
                ..
            } => {
                // 256 byte symbols + the end-of-text token is the smallest byte-level BPE.
                if !(257..=1 << 24).contains(vocab_size) {
                    return Err(field(
                        "data.tokenizer.vocab_size".into(),
                        format!("{vocab_size} is outside 257..={}", 1 << 24),
                    ));
                }
                if self.token_dtype == TokenDtypeSpec::U16 && *vocab_size > 1 << 16 {
                    return Err(field(
                        "data.token_dtype".into(),
                        format!(
                            "u16 holds at most 65536 token ids, but data.tokenizer.vocab_size \
                             is {vocab_size}; use \"u32\" or \"auto\""
                        ),
                    ));
                }
                if *max_train_bytes == 0 {
                    return Err(field(
                        "data.tokenizer.max_train_bytes".into(),
                        "must be positive".into(),
                    ));
                }
            }
        }
        let mut names = BTreeSet::new();
        for (i, s) in self.sources.iter().enumerate() {
            let at = |f: &str| format!("data.sources[{i}].{f}");
            if !is_safe_name(&s.name) {
                return Err(field(at("name"), unsafe_name_message(&s.name)));
            }
            if !names.insert(s.name.as_str()) {
                return Err(field(
                    at("name"),
                    format!("{:?} is used by two sources; names must be unique", s.name),
                ));
            }
            if !is_safe_name(&s.domain) {
                return Err(field(at("domain"), unsafe_name_message(&s.domain)));
            }
            if s.text_field.is_empty() {
                return Err(field(at("text_field"), "must not be empty".into()));
            }
            if let Some(f) = s.validation_fraction {
                check_fraction(f).map_err(|m| field(at("validation_fraction"), m))?;
            }
            if corpora && !s.path.exists() {
                return Err(field(
                    at("path"),
                    format!("{} does not exist", s.path.display()),
                ));
            }
        }
        Ok(())
    }
}

fn check_fraction(f: f64) -> std::result::Result<(), String> {
    if (0.0..0.5).contains(&f) {
        Ok(())
    } else {
        Err(format!(
            "{f} is outside [0, 0.5): hold out less than half of the documents"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_fields_are_rejected_with_their_name() {
        let err = DataConfig::from_toml("seq_len = 8\nsequence_len = 9\n", Path::new("m.toml"))
            .unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("m.toml"), "{msg}");
        assert!(msg.contains("sequence_len"), "{msg}");
    }

    #[test]
    fn tokenizer_kinds_parse_and_unknown_tokenizer_fields_fail() {
        let c = DataConfig::from_toml(
            "[tokenizer]\nkind = \"bpe\"\nvocab_size = 4096\n",
            Path::new("m.toml"),
        )
        .unwrap();
        assert!(matches!(
            c.tokenizer,
            TokenizerSpec::Bpe {
                vocab_size: 4096,
                min_frequency: 2,
                ..
            }
        ));
        let err = DataConfig::from_toml(
            "[tokenizer]\nkind = \"file\"\npath = \"t.json\"\nvocab = 3\n",
            Path::new("m.toml"),
        )
        .unwrap_err();
        assert!(err.to_string().contains("vocab"), "{err}");
    }

    #[test]
    fn bounds_name_their_field() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.txt"), "hello").unwrap();
        let text = format!(
            "validation_fraction = 0.7\n[[sources]]\nname = \"a\"\nkind = \"natural\"\n\
             domain = \"d\"\npath = {:?}\n",
            dir.path().join("a.txt")
        );
        let c = DataConfig::from_toml(&text, Path::new("m.toml")).unwrap();
        let err = c.validate(Path::new("m.toml")).unwrap_err().to_string();
        assert!(err.contains("data.validation_fraction"), "{err}");
        assert!(err.contains("0.7"), "{err}");

        let mut c2 = c.clone();
        c2.validation_fraction = 0.1;
        c2.sources[0].name = "a b".into();
        let err = c2.validate(Path::new("m.toml")).unwrap_err().to_string();
        assert!(err.contains("data.sources[0].name"), "{err}");

        let mut c3 = c.clone();
        c3.validation_fraction = 0.1;
        c3.sources[0].path = dir.path().join("missing.txt");
        let err = c3.validate(Path::new("m.toml")).unwrap_err().to_string();
        assert!(err.contains("data.sources[0].path"), "{err}");
        assert!(err.contains("does not exist"), "{err}");
    }
}
