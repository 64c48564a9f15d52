//! A prepared data directory: `data.json`, `tokenizer.json`, and one train and one
//! validation shard per source; opened with every record cross-checked (data.json against
//! each shard's header and against the tokenizer file's sha256), since a damaged data
//! directory must fail here, naming the file and field, and not as garbage in training.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::config::SourceKind;
use crate::error::{DataError, Result};
use crate::shard::{Shard, TokenDtype};
use crate::tokenizer::{sha256_hex, TextTokenizer};

/// Version of the data directory layout.
pub const LAYOUT_VERSION: u32 = 1;
pub const META_FILE: &str = "data.json";
pub const TOKENIZER_FILE: &str = "tokenizer.json";
/// The token counts `data prepare` writes (read by [`crate::unigram`]).
pub const COUNTS_FILE: &str = "token_counts.json";

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
    /// What `data prepare` will write, as far as the manifest's `[data]` fixes it without
    /// reading the corpora: the tokenizer (a file's vocabulary and hash; a BPE's size, its
    /// hash empty until trained), the sequence length and the sources, each with an
    /// unbounded token count. For planning a sweep before the data is prepared: every
    /// shape, budget, batch and memory figure is exact; nothing that counts the data's
    /// tokens can be checked.
    pub fn provisional(cfg: &crate::config::DataConfig) -> Result<DataMeta> {
        use crate::config::{TokenDtypeSpec, TokenizerSpec};
        let (hash, vocab_size, eot_id, origin) = match &cfg.tokenizer {
            TokenizerSpec::File { path } => {
                let t = crate::tokenizer::TextTokenizer::from_file(path, &cfg.eot_token)?;
                (
                    t.hash().to_string(),
                    t.vocab_size(),
                    t.eot_id(),
                    path.display().to_string(),
                )
            }
            TokenizerSpec::Bpe { vocab_size, .. } => (
                String::new(),
                *vocab_size as u32,
                0,
                format!("a {vocab_size}-token BPE, not yet trained"),
            ),
        };
        let fits16 = u64::from(vocab_size) <= TokenDtype::U16.capacity();
        let dtype = match cfg.token_dtype {
            TokenDtypeSpec::U16 | TokenDtypeSpec::Auto if fits16 => TokenDtype::U16,
            _ => TokenDtype::U32,
        };
        // Unbounded, and far enough below u64::MAX that sums over sources cannot overflow.
        let unknown = SplitStats {
            documents: 1 << 40,
            bytes: 1 << 40,
            tokens: 1 << 40,
        };
        Ok(DataMeta {
            layout_version: LAYOUT_VERSION,
            fingerprint: String::new(),
            tokenizer: TokenizerMeta {
                hash,
                vocab_size,
                eot_token: cfg.eot_token.clone(),
                eot_id,
                dtype,
                origin,
            },
            seq_len: cfg.seq_len,
            max_repeats: cfg.max_repeats,
            sources: cfg
                .sources
                .iter()
                .map(|s| SourceMeta {
                    name: s.name.clone(),
                    kind: s.kind,
                    domain: s.domain.clone(),
                    path: s.path.display().to_string(),
                    files: 0,
                    validation_fraction: s.validation_fraction.unwrap_or(cfg.validation_fraction),
                    train: unknown,
                    val: unknown,
                    skipped_empty: 0,
                })
                .collect(),
        })
    }

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

/// What `data prepare` writes at the top of a data directory.
const LAYOUT_ENTRIES: [&str; 5] = [META_FILE, TOKENIZER_FILE, COUNTS_FILE, "train", "val"];

/// Why `dir` is not a data directory that `data prepare --force` may replace, or `None`
/// when it is one: a directory whose `data.json` describes synthscale data and which holds
/// nothing but what `data prepare` writes (`data.json`, `tokenizer.json`, `token_counts.json`, `train/*.bin`,
/// `val/*.bin`), so that replacing it loses nothing else.
pub fn not_a_data_dir(dir: &Path) -> Option<String> {
    match std::fs::metadata(dir) {
        Ok(m) if m.is_dir() => {}
        Ok(_) => return Some("a file, not a directory".into()),
        Err(e) => return Some(format!("unreadable ({e})")),
    }
    let meta = dir.join(META_FILE);
    let Ok(text) = std::fs::read_to_string(&meta) else {
        return Some(format!("a directory without a readable {META_FILE}"));
    };
    let v: serde_json::Value = match serde_json::from_str(&text) {
        Ok(v) => v,
        Err(_) => return Some(format!("a directory whose {META_FILE} is not JSON")),
    };
    let says_so = v["layout_version"].is_u64()
        && v["fingerprint"].is_string()
        && v["tokenizer"]["hash"].is_string()
        && v["sources"].is_array();
    if !says_so {
        return Some(format!(
            "a directory whose {META_FILE} does not describe synthscale data"
        ));
    }
    let list = |d: &Path| -> std::result::Result<Vec<(String, bool)>, String> {
        let mut out = Vec::new();
        for e in std::fs::read_dir(d).map_err(|e| format!("unreadable ({e})"))? {
            let e = e.map_err(|e| format!("unreadable ({e})"))?;
            let is_file = e.file_type().is_ok_and(|t| t.is_file());
            out.push((e.file_name().to_string_lossy().into_owned(), is_file));
        }
        out.sort();
        Ok(out)
    };
    let top = match list(dir) {
        Ok(t) => t,
        Err(e) => return Some(e),
    };
    for (name, _) in &top {
        if !LAYOUT_ENTRIES.contains(&name.as_str()) {
            return Some(format!(
                "a data directory that also holds `{name}`, which `data prepare` did not write"
            ));
        }
    }
    for split in ["train", "val"] {
        if !top.iter().any(|(n, _)| n == split) {
            continue;
        }
        let entries = match list(&dir.join(split)) {
            Ok(t) => t,
            Err(e) => return Some(e),
        };
        for (name, is_file) in entries {
            if !(is_file && name.ends_with(".bin")) {
                return Some(format!(
                    "a data directory that also holds `{split}/{name}`, which `data prepare` \
                     did not write"
                ));
            }
        }
    }
    None
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

/// What `data.json` says about itself and the tokenizer file: a vocabulary its token type
/// holds, an end-of-text id inside it, unique source names, and a `tokenizer.json` whose
/// sha256 is the recorded hash (it is written in canonical form, so its bytes hash to it).
fn check_meta(dir: &Path, meta: &DataMeta) -> Result<()> {
    let file = dir.join(META_FILE);
    let t = &meta.tokenizer;
    if t.vocab_size == 0 || u64::from(t.vocab_size) > t.dtype.capacity() {
        return Err(DataError::field(
            &file,
            "tokenizer.vocab_size",
            format!(
                "{} is outside 1..={} for {} token ids",
                t.vocab_size,
                t.dtype.capacity(),
                t.dtype
            ),
        ));
    }
    if t.eot_id >= t.vocab_size {
        return Err(DataError::field(
            &file,
            "tokenizer.eot_id",
            format!(
                "{} is not below tokenizer.vocab_size = {}",
                t.eot_id, t.vocab_size
            ),
        ));
    }
    for (i, s) in meta.sources.iter().enumerate() {
        if !crate::config::is_safe_name(&s.name)
            || meta.sources[..i].iter().any(|o| o.name == s.name)
        {
            return Err(DataError::field(
                &file,
                format!("sources[{i}].name"),
                format!("{:?} is not a safe, unique source name", s.name),
            ));
        }
    }
    tokenizer_file(dir, meta)?;
    Ok(())
}

/// The path of a data directory's `tokenizer.json`, checked to hash to the `tokenizer.hash`
/// its `data.json` records (without opening the shards: for `export`).
pub fn tokenizer_file(dir: &Path, meta: &DataMeta) -> Result<PathBuf> {
    let t = &meta.tokenizer;
    let tok = dir.join(TOKENIZER_FILE);
    let bytes = std::fs::read(&tok).map_err(|e| DataError::read(&tok, e))?;
    let found = sha256_hex(&bytes);
    if found != t.hash {
        return Err(DataError::field(
            &tok,
            "sha256",
            format!(
                "{found}, but {META_FILE} records tokenizer.hash = {}: the tokenizer was changed \
                 after the data was prepared with it; restore it or prepare the data again",
                t.hash
            ),
        ));
    }
    Ok(tok)
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
        check_meta(dir, &meta)?;
        let mut train = Vec::with_capacity(meta.sources.len());
        let mut val = Vec::with_capacity(meta.sources.len());
        for (i, s) in meta.sources.iter().enumerate() {
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
                let t = &meta.tokenizer;
                for (field, header, recorded) in [
                    ("tokenizer.vocab_size", h.vocab_size, t.vocab_size),
                    ("tokenizer.eot_id", h.eot_id, t.eot_id),
                ] {
                    if header != recorded {
                        return Err(DataError::field(
                            dir.join(META_FILE),
                            field,
                            format!(
                                "{recorded}, but the header of {} says {header}; the data \
                                 directory is damaged or was edited: prepare it again",
                                path.display()
                            ),
                        ));
                    }
                }
                if h.kind.is_some_and(|k| k != s.kind) {
                    return Err(DataError::field(
                        dir.join(META_FILE),
                        format!("sources[{i}].kind"),
                        format!(
                            "source {:?} is {}, but its tokens were prepared as {} (header of \
                             {}); a source's kind is fixed when it is prepared: change it in the \
                             manifest and prepare the data again",
                            s.name,
                            s.kind,
                            h.kind.map_or("?", SourceKind::as_str),
                            path.display()
                        ),
                    ));
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
        let t = &self.meta.tokenizer;
        for (field, loaded, recorded) in [
            ("tokenizer.vocab_size", tok.vocab_size(), t.vocab_size),
            ("tokenizer.eot_id", tok.eot_id(), t.eot_id),
        ] {
            if loaded != recorded {
                return Err(DataError::field(
                    self.path.join(META_FILE),
                    field,
                    format!(
                        "{recorded}, but the tokenizer {} has {loaded}",
                        path.display()
                    ),
                ));
            }
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
