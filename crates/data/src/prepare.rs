//! `data prepare`: corpora → validation split → tokens → a data directory, written under a
//! temporary name and renamed into place only when complete.

use std::path::{Path, PathBuf};

use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::config::{DataConfig, SourceConfig, TokenDtypeSpec, TokenizerSpec};
use crate::datadir::{
    not_a_data_dir, read_meta, train_path, val_path, DataMeta, SourceMeta, SplitStats,
    TokenizerMeta, COUNTS_FILE, LAYOUT_VERSION, META_FILE, TOKENIZER_FILE,
};
use crate::error::{DataError, Result};
use crate::shard::{ShardWriter, TokenDtype};
use crate::source::{for_each_document, source_files, Document};
use crate::tokenizer::TextTokenizer;

/// Text handed to the tokenizer threads at a time: large enough to keep both cores busy,
/// small enough to bound memory on any corpus size.
const BATCH_BYTES: usize = 8 << 20;

/// What `prepare` reports as it goes.
#[derive(Debug, Clone)]
pub enum PrepareEvent {
    /// Training the BPE tokenizer on this many bytes of text.
    TrainingTokenizer {
        bytes: u64,
    },
    /// Tokenizing source `index` of `total`.
    SourceStarted {
        name: String,
        index: usize,
        total: usize,
    },
    /// Running totals of the current source.
    Progress {
        documents: u64,
        bytes: u64,
    },
    SourceDone(SourceMeta),
}

/// The result of `prepare`.
#[derive(Debug, Clone)]
pub enum PrepareOutcome {
    /// The directory was written.
    Prepared(DataMeta),
    /// The directory already held data prepared from the same config and inputs.
    UpToDate(DataMeta),
}

impl PrepareOutcome {
    pub fn meta(&self) -> &DataMeta {
        match self {
            PrepareOutcome::Prepared(m) | PrepareOutcome::UpToDate(m) => m,
        }
    }
}

/// Where a document goes: the first 8 bytes of its sha256 as a number in [0, 1),
/// compared with the validation fraction. Identical documents always land together.
pub fn is_validation(text: &str, fraction: f64) -> bool {
    unit_hash(&Sha256::digest(text.as_bytes())[0..8]) < fraction
}

fn unit_hash(b: &[u8]) -> f64 {
    // 53 random bits → a uniform double in [0, 1).
    let x = u64::from_be_bytes(b.try_into().expect("8 bytes"));
    (x >> 11) as f64 / (1u64 << 53) as f64
}

/// The fingerprint of a config and its inputs: every setting but the paths, each source's
/// files (relative to the source's path) with their sizes, and the tokenizer's hash when it
/// comes from a file. Moving a project keeps it; editing a setting, adding, removing or
/// resizing a file, or changing the tokenizer changes it. (Content hashes of the corpora
/// would cost a full read of large corpora on every call.)
pub fn fingerprint(cfg: &DataConfig, tokenizer_hash: Option<&str>) -> Result<String> {
    #[derive(Serialize)]
    struct Input<'a> {
        config: &'a DataConfig,
        files: Vec<Vec<(String, u64)>>,
        tokenizer_hash: Option<&'a str>,
    }
    let mut canon = cfg.clone();
    canon.out_dir = None;
    let mut files = Vec::new();
    for s in &mut canon.sources {
        let mut list = Vec::new();
        for f in source_files(s)? {
            let size = std::fs::metadata(&f)
                .map_err(|e| DataError::read(&f, e))?
                .len();
            let rel = f.strip_prefix(&s.path).unwrap_or(&f);
            list.push((rel.display().to_string(), size));
        }
        files.push(list);
        s.path = PathBuf::new();
    }
    if let TokenizerSpec::File { path } = &mut canon.tokenizer {
        *path = PathBuf::new();
    }
    let json = serde_json::to_string(&Input {
        config: &canon,
        files,
        tokenizer_hash,
    })
    .map_err(|e| DataError::Internal(e.to_string()))?;
    Ok(crate::tokenizer::sha256_hex(json.as_bytes()))
}

/// Options of [`prepare`].
#[derive(Default)]
pub struct PrepareOptions<'a> {
    /// Rebuild even when the output directory is up to date or was built differently.
    pub force: bool,
    /// Called with progress events (from the calling thread only).
    pub on_event: Option<&'a dyn Fn(PrepareEvent)>,
}

/// Prepares the data directory `out` from a validated config (`manifest` names the file in
/// messages). Nothing appears at `out` unless every source was read and tokenized.
pub fn prepare(
    cfg: &DataConfig,
    manifest: &Path,
    out: &Path,
    opts: &PrepareOptions,
) -> Result<PrepareOutcome> {
    cfg.validate(manifest)?;
    let emit = |e: PrepareEvent| {
        if let Some(f) = opts.on_event {
            f(e)
        }
    };
    let file_tokenizer = match &cfg.tokenizer {
        TokenizerSpec::File { path } => Some(TextTokenizer::from_file(path, &cfg.eot_token)?),
        TokenizerSpec::Bpe { .. } => None,
    };
    let fp = fingerprint(cfg, file_tokenizer.as_ref().map(|t| t.hash()))?;
    let (parent, name) = split_out(out)?;
    // What killed runs of `data prepare` into this output left behind.
    crate::tempname::remove_stale(&parent, &format!(".{name}"), &["tmp", "old"])?;
    // --force replaces only a data directory this command wrote, with nothing else in it;
    // without it, an existing output must at least be a directory.
    let refuse = match out.symlink_metadata() {
        Err(_) => None,
        Ok(_) if opts.force => not_a_data_dir(out),
        Ok(_) if !out.is_dir() => Some("a file, not a directory".to_string()),
        Ok(_) => None,
    };
    if let Some(reason) = refuse {
        return Err(DataError::NotDataDir {
            path: out.to_path_buf(),
            reason,
        });
    }
    if out.exists() && !opts.force {
        let meta = read_meta(out)?;
        if meta.fingerprint == fp {
            return Ok(PrepareOutcome::UpToDate(meta));
        }
        if let Some(tok) = &file_tokenizer {
            if tok.hash() != meta.tokenizer.hash {
                return Err(DataError::TokenizerMismatch {
                    path: out.to_path_buf(),
                    expected: tok.hash().to_string(),
                    found: meta.tokenizer.hash,
                });
            }
        }
        return Err(DataError::Corrupt {
            path: out.to_path_buf(),
            message: format!(
                "holds data prepared from another [data] config or other input files than \
                 {}; remove it, choose another data.out_dir, or pass --force to rebuild",
                manifest.display()
            ),
        });
    }

    let tok = match file_tokenizer {
        Some(tok) => tok,
        None => train_tokenizer(cfg, &emit)?,
    };
    let dtype = resolve_dtype(cfg, &tok, manifest)?;

    let tmp = TempDir::create(&parent, &name)?;
    for sub in ["train", "val"] {
        let p = tmp.path.join(sub);
        std::fs::create_dir_all(&p).map_err(|e| DataError::write(&p, e))?;
    }
    let mut sources = Vec::with_capacity(cfg.sources.len());
    for (i, src) in cfg.sources.iter().enumerate() {
        emit(PrepareEvent::SourceStarted {
            name: src.name.clone(),
            index: i,
            total: cfg.sources.len(),
        });
        let meta = tokenize_source(
            src,
            cfg.source_validation_fraction(i),
            &tok,
            dtype,
            &tmp.path,
            &emit,
        )?;
        check_source(cfg, i, &meta, manifest)?;
        emit(PrepareEvent::SourceDone(meta.clone()));
        sources.push(meta);
    }
    let meta = DataMeta {
        layout_version: LAYOUT_VERSION,
        fingerprint: fp,
        tokenizer: TokenizerMeta {
            hash: tok.hash().to_string(),
            vocab_size: tok.vocab_size(),
            eot_token: cfg.eot_token.clone(),
            eot_id: tok.eot_id(),
            dtype,
            origin: tok.origin().display().to_string(),
        },
        seq_len: cfg.seq_len,
        max_repeats: cfg.max_repeats,
        sources,
    };
    check_domains(cfg, &meta, manifest)?;
    write_file(&tmp.path.join(TOKENIZER_FILE), tok.json().as_bytes())?;
    let json =
        serde_json::to_string_pretty(&meta).map_err(|e| DataError::Internal(e.to_string()))?;
    write_file(&tmp.path.join(META_FILE), json.as_bytes())?;
    // The unigram baseline's counts, from the shards just written (checked on open).
    let counts = crate::unigram::TokenCounts::count(&crate::datadir::DataDir::open(&tmp.path)?);
    let json = serde_json::to_string(&counts).map_err(|e| DataError::Internal(e.to_string()))?;
    write_file(&tmp.path.join(COUNTS_FILE), json.as_bytes())?;
    tmp.commit(out, opts.force)?;
    Ok(PrepareOutcome::Prepared(meta))
}

/// Trains the BPE the config asks for.
fn train_tokenizer(cfg: &DataConfig, emit: &dyn Fn(PrepareEvent)) -> Result<TextTokenizer> {
    match &cfg.tokenizer {
        TokenizerSpec::File { .. } => Err(DataError::Internal(
            "train_tokenizer called for a tokenizer file".into(),
        )),
        TokenizerSpec::Bpe {
            vocab_size,
            min_frequency,
            max_train_bytes,
        } => {
            // Train only on training documents, subsampled by a second, independent hash
            // when the corpus is larger than the cap.
            let mut total = 0u64;
            for (i, src) in cfg.sources.iter().enumerate() {
                let f = cfg.source_validation_fraction(i);
                for_each_document(src, |d| {
                    if !is_validation(&d.text, f) {
                        total += d.text.len() as u64;
                    }
                    Ok(())
                })?;
            }
            let keep = (*max_train_bytes as f64 / total.max(1) as f64).min(1.0);
            let mut texts = Vec::new();
            let mut bytes = 0u64;
            for (i, src) in cfg.sources.iter().enumerate() {
                let f = cfg.source_validation_fraction(i);
                for_each_document(src, |d| {
                    let h = Sha256::digest(d.text.as_bytes());
                    if unit_hash(&h[0..8]) >= f && unit_hash(&h[8..16]) < keep {
                        bytes += d.text.len() as u64;
                        texts.push(d.text);
                    }
                    Ok(())
                })?;
            }
            emit(PrepareEvent::TrainingTokenizer { bytes });
            TextTokenizer::train_bpe(
                texts.into_iter(),
                *vocab_size,
                *min_frequency,
                &cfg.eot_token,
            )
        }
    }
}

fn resolve_dtype(cfg: &DataConfig, tok: &TextTokenizer, manifest: &Path) -> Result<TokenDtype> {
    let fits16 = u64::from(tok.vocab_size()) <= TokenDtype::U16.capacity();
    match cfg.token_dtype {
        TokenDtypeSpec::Auto if fits16 => Ok(TokenDtype::U16),
        TokenDtypeSpec::Auto | TokenDtypeSpec::U32 => Ok(TokenDtype::U32),
        TokenDtypeSpec::U16 if fits16 => Ok(TokenDtype::U16),
        TokenDtypeSpec::U16 => Err(DataError::field(
            manifest,
            "data.token_dtype",
            format!(
                "u16 holds at most 65536 token ids, but the tokenizer {} has {}; \
                 use \"u32\" or \"auto\"",
                tok.origin().display(),
                tok.vocab_size()
            ),
        )),
    }
}

fn tokenize_source(
    src: &SourceConfig,
    val_fraction: f64,
    tok: &TextTokenizer,
    dtype: TokenDtype,
    dir: &Path,
    emit: &dyn Fn(PrepareEvent),
) -> Result<SourceMeta> {
    let new_writer = |p: PathBuf| {
        ShardWriter::create(
            &p,
            dtype,
            tok.vocab_size(),
            tok.eot_id(),
            tok.hash(),
            src.kind,
        )
    };
    let mut train = new_writer(train_path(dir, &src.name))?;
    let mut val = new_writer(val_path(dir, &src.name))?;
    let mut train_bytes = 0u64;
    let mut val_bytes = 0u64;
    let mut batch: Vec<Document> = Vec::new();
    let mut batch_bytes = 0usize;
    let (mut docs, mut bytes) = (0u64, 0u64);

    let mut flush = |batch: &mut Vec<Document>| -> Result<()> {
        let ids = tok.encode_many(&batch.iter().map(|d| d.text.as_str()).collect::<Vec<_>>())?;
        for (doc, ids) in batch.iter().zip(ids) {
            if is_validation(&doc.text, val_fraction) {
                val_bytes += doc.text.len() as u64;
                val.write_document(&ids)?;
            } else {
                train_bytes += doc.text.len() as u64;
                train.write_document(&ids)?;
            }
        }
        batch.clear();
        Ok(())
    };
    let stats = for_each_document(src, |doc| {
        docs += 1;
        bytes += doc.text.len() as u64;
        batch_bytes += doc.text.len();
        batch.push(doc);
        if batch_bytes >= BATCH_BYTES {
            flush(&mut batch)?;
            batch_bytes = 0;
            emit(PrepareEvent::Progress {
                documents: docs,
                bytes,
            });
        }
        Ok(())
    })?;
    flush(&mut batch)?;
    emit(PrepareEvent::Progress {
        documents: docs,
        bytes,
    });
    let t = train.finish()?;
    let v = val.finish()?;
    Ok(SourceMeta {
        name: src.name.clone(),
        kind: src.kind,
        domain: src.domain.clone(),
        path: src.path.display().to_string(),
        files: stats.files,
        validation_fraction: val_fraction,
        train: SplitStats {
            documents: t.documents,
            bytes: train_bytes,
            tokens: t.tokens,
        },
        val: SplitStats {
            documents: v.documents,
            bytes: val_bytes,
            tokens: v.tokens,
        },
        skipped_empty: stats.skipped_empty,
    })
}

/// A source must hold at least one training sequence, and a held-out part when asked for.
fn check_source(cfg: &DataConfig, i: usize, m: &SourceMeta, manifest: &Path) -> Result<()> {
    let need = cfg.seq_len as u64 + 1;
    if m.train.tokens < need {
        return Err(DataError::field(
            manifest,
            format!("data.sources[{i}].path"),
            format!(
                "source {:?} has {} training tokens, fewer than one sequence of \
                 data.seq_len + 1 = {need}",
                m.name, m.train.tokens
            ),
        ));
    }
    if m.validation_fraction > 0.0 && m.val.documents == 0 {
        return Err(DataError::field(
            manifest,
            format!("data.sources[{i}].validation_fraction"),
            format!(
                "the split by document hash put none of source {:?}'s {} documents into \
                 validation at fraction {}; raise the fraction, cut the text into more \
                 documents (split = \"paragraph\"), or set it to 0",
                m.name, m.train.documents, m.validation_fraction
            ),
        ));
    }
    Ok(())
}

/// Every validation domain must hold at least one evaluation sequence.
fn check_domains(cfg: &DataConfig, meta: &DataMeta, manifest: &Path) -> Result<()> {
    let need = cfg.seq_len as u64 + 1;
    for (domain, idx) in meta.domains() {
        let tokens: u64 = idx.iter().map(|&i| meta.sources[i].val.tokens).sum();
        if tokens < need {
            return Err(DataError::field(
                manifest,
                format!("data.sources[{}].validation_fraction", idx[0]),
                format!(
                    "validation domain {domain:?} holds {tokens} tokens, fewer than one \
                     sequence of data.seq_len + 1 = {need}; raise the fraction"
                ),
            ));
        }
    }
    Ok(())
}

fn write_file(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    let mut f = std::fs::File::create(path).map_err(|e| DataError::write(path, e))?;
    f.write_all(bytes).map_err(|e| DataError::write(path, e))?;
    f.sync_all().map_err(|e| DataError::write(path, e))
}

/// The folder an output directory goes into (created if missing) and its name.
fn split_out(out: &Path) -> Result<(PathBuf, String)> {
    let name = out
        .file_name()
        .ok_or_else(|| DataError::Field {
            file: out.to_path_buf(),
            field: "data.out_dir".into(),
            message: "the output path has no final component".into(),
        })?
        .to_string_lossy()
        .into_owned();
    let parent = match out.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    std::fs::create_dir_all(&parent).map_err(|e| DataError::write(&parent, e))?;
    Ok((parent, name))
}

/// A sibling of the output directory, `.<name>.tmp-<pid>-<host>`, that is removed unless
/// committed (and, if this process is killed, by the next `prepare` of the same output).
struct TempDir {
    path: PathBuf,
    parent: PathBuf,
    name: String,
    committed: bool,
}

impl TempDir {
    fn create(parent: &Path, name: &str) -> Result<Self> {
        let path = parent.join(crate::tempname::owned_name(&format!(".{name}"), "tmp"));
        if path.exists() {
            std::fs::remove_dir_all(&path).map_err(|e| DataError::write(&path, e))?;
        }
        std::fs::create_dir(&path).map_err(|e| DataError::write(&path, e))?;
        Ok(TempDir {
            path,
            parent: parent.to_path_buf(),
            name: name.to_string(),
            committed: false,
        })
    }

    /// Renames into place; with `replace`, an existing `out` is moved aside first (checked
    /// once more to be a data directory) and removed after the rename.
    fn commit(mut self, out: &Path, replace: bool) -> Result<()> {
        let mut old = None;
        if replace && out.symlink_metadata().is_ok() {
            if let Some(reason) = not_a_data_dir(out) {
                return Err(DataError::NotDataDir {
                    path: out.to_path_buf(),
                    reason,
                });
            }
            let aside = self.parent.join(crate::tempname::owned_name(
                &format!(".{}", self.name),
                "old",
            ));
            std::fs::rename(out, &aside).map_err(|e| DataError::write(out, e))?;
            old = Some(aside);
        }
        std::fs::rename(&self.path, out).map_err(|e| DataError::write(out, e))?;
        self.committed = true;
        if let Some(old) = old {
            std::fs::remove_dir_all(&old).map_err(|e| DataError::write(&old, e))?;
        }
        Ok(())
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if !self.committed {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_is_deterministic_and_close_to_the_fraction() {
        // Oracle: a uniform hash puts ~fraction of 20,000 distinct documents into validation;
        // the binomial standard deviation is sqrt(20000·0.1·0.9) ≈ 42, so ±200 is > 4σ.
        let n = (0..20_000)
            .filter(|i| is_validation(&format!("document number {i}"), 0.1))
            .count();
        assert!((1800..=2200).contains(&n), "{n}");
        assert_eq!(is_validation("abc", 0.3), is_validation("abc", 0.3));
        assert!(!is_validation("abc", 0.0));
    }
}
