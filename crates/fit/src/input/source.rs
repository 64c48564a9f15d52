//! Provenance of each input: what format it was read as, its path and the sha256 of its
//! bytes, recorded with every fit.

use std::path::Path;

use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::error::{FitError, Result};

/// What kind of input a table came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Format {
    /// One point per row.
    LongCsv,
    /// One point per JSON line (any tool's metrics log), read as a long table.
    Jsonl,
    /// One curve per evaluation column.
    WideLog,
    /// synthscale run directories.
    Metrics,
}

/// One input file and its hash, recorded with every fit.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SourceFile {
    /// Path as given.
    pub path: String,
    /// sha256 of its bytes.
    pub sha256: String,
    /// How it was read.
    pub format: Format,
}

/// The lowercase hex sha256 of `bytes`: the fit crate's one hash.
pub(crate) fn sha256_hex(bytes: &[u8]) -> String {
    format!("{:x}", Sha256::digest(bytes))
}

/// The bytes of an input file.
pub(super) fn read_bytes(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|e| FitError::read(path, e))
}

/// The file's stem, the `file` column of its rows.
pub(super) fn stem(path: &Path) -> String {
    path.file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| path.display().to_string())
}
