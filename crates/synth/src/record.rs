//! A generated text with its provenance (one line of `<task>.raw.jsonl`), reading the raw
//! files back (a line cut short by a kill is dropped), and writing a filtered corpus.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Result, SynthError};
use crate::generate::Finish;

/// The generator as records name it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GeneratorId {
    pub name: String,
    /// sha256 of the local generator's weights (empty for a server's model).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub sha256: String,
    /// The model id an inference server generated with (`kind = "openai"`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_model: Option<String>,
}

/// Sampling settings recorded with each text.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct SamplingRecord {
    pub temperature: f32,
    pub top_p: f32,
    pub max_new_tokens: usize,
}

/// One generated text with its provenance (one JSONL line).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    pub id: String,
    pub text: String,
    /// `rephrased` or `textbook`.
    pub kind: String,
    pub task: String,
    /// Passage ids (`<source>:<document id>#<chunk>`) the prompt was made from.
    pub sources: Vec<String>,
    pub generator: GeneratorId,
    pub template_sha256: String,
    pub sampling: SamplingRecord,
    /// The run's seed; the record's own stream is sha256(seed ‖ id).
    pub seed: u64,
    pub finish: Finish,
    pub prompt_tokens: usize,
    pub generated_tokens: usize,
}

/// Reads the records of a raw file; a last line cut short by a kill is dropped (and cut
/// from the file so new records start on a fresh line).
pub fn read_raw(path: &Path) -> Result<Vec<Record>> {
    read_raw_opt(path, true)
}

/// [`read_raw`]; with `repair` false a cut last line is skipped but the file is left alone
/// (for reading a file another run is still appending to).
pub fn read_raw_opt(path: &Path, repair: bool) -> Result<Vec<Record>> {
    if !path.exists() {
        return Ok(Vec::new());
    }
    let file = File::open(path).map_err(|e| SynthError::read(path, e))?;
    let mut out = Vec::new();
    let mut good_bytes = 0u64;
    let mut total = 0u64;
    let mut reader = BufReader::new(file);
    let mut line = String::new();
    let mut lineno = 0;
    loop {
        line.clear();
        let n = reader
            .read_line(&mut line)
            .map_err(|e| SynthError::read(path, e))?;
        if n == 0 {
            break;
        }
        lineno += 1;
        total += n as u64;
        if !line.ends_with('\n') {
            break; // killed mid-write
        }
        let rec: Record = serde_json::from_str(&line).map_err(|e| {
            SynthError::field(
                path,
                &format!("line {lineno}"),
                format!("not a synth record: {e}"),
            )
        })?;
        out.push(rec);
        good_bytes = total;
    }
    if repair && good_bytes < total {
        let f = OpenOptions::new()
            .write(true)
            .open(path)
            .map_err(|e| SynthError::write(path, e))?;
        f.set_len(good_bytes)
            .map_err(|e| SynthError::write(path, e))?;
    }
    Ok(out)
}

/// Writes records as JSONL (gzip when the name ends in `.gz`) through a temporary file
/// renamed into place.
pub fn write_output(path: &Path, records: &[&Record]) -> Result<()> {
    if let Some(dir) = path.parent() {
        if !dir.as_os_str().is_empty() {
            std::fs::create_dir_all(dir).map_err(|e| SynthError::write(dir, e))?;
        }
    }
    let tmp = PathBuf::from(format!("{}.tmp-{}", path.display(), std::process::id()));
    let result = (|| -> std::io::Result<()> {
        let file = File::create(&tmp)?;
        let gz = path.extension().is_some_and(|e| e == "gz");
        let mut w: Box<dyn Write> = if gz {
            Box::new(flate2::write::GzEncoder::new(
                BufWriter::new(file),
                flate2::Compression::best(),
            ))
        } else {
            Box::new(BufWriter::new(file))
        };
        for r in records {
            serde_json::to_writer(&mut w, r)?;
            w.write_all(b"\n")?;
        }
        w.flush()?;
        drop(w);
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result.map_err(|e| SynthError::write(path, e))
}
