//! The run directory's own file names, and the one way its small files are written: whole
//! and flushed to disk, so that a rename after it publishes complete bytes.

use std::path::Path;

use crate::error::{Result, TrainError};

/// The file that marks a finished run.
pub const DONE: &str = "DONE";
/// The resolved config, written first into the run directory.
pub const CONFIG: &str = "config.toml";

/// Writes a file and flushes it to disk.
pub fn write_synced(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    let mut f = std::fs::File::create(path).map_err(|e| TrainError::write(path, e))?;
    f.write_all(bytes).map_err(|e| TrainError::write(path, e))?;
    f.sync_all().map_err(|e| TrainError::write(path, e))
}

/// Flushes a file or directory (a directory: the renames inside it) to disk.
pub(crate) fn sync(path: &Path) -> Result<()> {
    std::fs::File::open(path)
        .and_then(|f| f.sync_all())
        .map_err(|e| TrainError::write(path, e))
}
