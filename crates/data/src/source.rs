//! Reading corpora: plain text or JSONL, gzip or not, files or folders, into documents.

use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

use flate2::read::MultiGzDecoder;

use crate::config::{DocSplit, Format, SourceConfig};
use crate::error::{DataError, Result};

/// One document: the unit that is split into train or validation and framed by end-of-text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Document {
    /// The JSONL `id` field when present, else `<file>:<line>` or `<file>#<n>`.
    pub id: String,
    pub text: String,
}

/// Counts from reading one source.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReadStats {
    pub files: usize,
    pub documents: u64,
    /// UTF-8 bytes of document text.
    pub bytes: u64,
    /// Records or paragraphs with no text besides white space, skipped.
    pub skipped_empty: u64,
}

/// The files a source reads, in the order it reads them.
pub fn source_files(src: &SourceConfig) -> Result<Vec<PathBuf>> {
    let meta = std::fs::metadata(&src.path).map_err(|e| DataError::read(&src.path, e))?;
    if meta.is_file() {
        return Ok(vec![src.path.clone()]);
    }
    let mut files = Vec::new();
    collect_files(&src.path, &mut files)?;
    files.sort();
    if files.is_empty() {
        return Err(DataError::Empty {
            path: src.path.clone(),
            what: "the folder holds no files (hidden files are skipped)".into(),
        });
    }
    Ok(files)
}

fn collect_files(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    let entries = std::fs::read_dir(dir).map_err(|e| DataError::read(dir, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| DataError::read(dir, e))?;
        let path = entry.path();
        if entry.file_name().to_string_lossy().starts_with('.') {
            continue;
        }
        let ty = entry.file_type().map_err(|e| DataError::read(&path, e))?;
        if ty.is_dir() {
            collect_files(&path, out)?;
        } else if ty.is_file() || path.is_file() {
            out.push(path);
        }
    }
    Ok(())
}

/// Whether `path` is read as JSONL under `format`.
pub fn is_jsonl(path: &Path, format: Format) -> bool {
    match format {
        Format::Text => false,
        Format::Jsonl => true,
        Format::Auto => {
            let name = path
                .file_name()
                .map(|n| n.to_string_lossy().to_lowercase())
                .unwrap_or_default();
            let name = name.strip_suffix(".gz").unwrap_or(&name);
            name.ends_with(".jsonl") || name.ends_with(".ndjson") || name.ends_with(".json")
        }
    }
}

/// Opens a file, decompressing gzip when its first bytes say so (not trusting the name).
pub fn open_maybe_gzip(path: &Path) -> Result<Box<dyn BufRead>> {
    let mut file = File::open(path).map_err(|e| DataError::read(path, e))?;
    let mut magic = [0u8; 2];
    let n = read_up_to(&mut file, &mut magic).map_err(|e| DataError::read(path, e))?;
    let file = File::open(path).map_err(|e| DataError::read(path, e))?;
    if n == 2 && magic == [0x1f, 0x8b] {
        Ok(Box::new(BufReader::with_capacity(
            1 << 20,
            MultiGzDecoder::new(BufReader::with_capacity(1 << 20, file)),
        )))
    } else {
        Ok(Box::new(BufReader::with_capacity(1 << 20, file)))
    }
}

fn read_up_to(r: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..])? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}

/// Reads every document of a source in order and hands it to `f`. Errors name the file and
/// line; a file with no text at all is an error, blank records inside a file are skipped.
pub fn for_each_document(
    src: &SourceConfig,
    mut f: impl FnMut(Document) -> Result<()>,
) -> Result<ReadStats> {
    let mut stats = ReadStats::default();
    for path in source_files(src)? {
        stats.files += 1;
        let before = stats.documents;
        if is_jsonl(&path, src.format) {
            read_jsonl(&path, &src.text_field, &mut stats, &mut f)?;
        } else {
            read_text(&path, src.split, &mut stats, &mut f)?;
        }
        if stats.documents == before {
            return Err(DataError::Empty {
                path,
                what: "no document with text in this file".into(),
            });
        }
    }
    Ok(stats)
}

fn display_id(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| path.display().to_string())
}

fn read_jsonl(
    path: &Path,
    field: &str,
    stats: &mut ReadStats,
    f: &mut impl FnMut(Document) -> Result<()>,
) -> Result<()> {
    let mut reader = open_maybe_gzip(path)?;
    let mut buf = Vec::new();
    let mut line_no = 0u64;
    let mut offset = 0u64;
    let file_id = display_id(path);
    loop {
        buf.clear();
        let n = reader
            .read_until(b'\n', &mut buf)
            .map_err(|e| DataError::read(path, e))?;
        if n == 0 {
            break;
        }
        line_no += 1;
        let line = std::str::from_utf8(&buf).map_err(|e| DataError::Utf8 {
            path: path.to_path_buf(),
            line: line_no,
            offset: offset + e.valid_up_to() as u64,
        })?;
        offset += n as u64;
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let jsonl_err = |message: String| DataError::Jsonl {
            path: path.to_path_buf(),
            line: line_no,
            message,
        };
        let value: serde_json::Value =
            serde_json::from_str(line).map_err(|e| jsonl_err(format!("invalid JSON: {e}")))?;
        let obj = value
            .as_object()
            .ok_or_else(|| jsonl_err("the record is not a JSON object".into()))?;
        let text = match obj.get(field) {
            Some(serde_json::Value::String(s)) => s,
            Some(other) => {
                return Err(jsonl_err(format!(
                    "field `{field}` is {} but must be a string",
                    json_type(other)
                )))
            }
            None => return Err(jsonl_err(format!("the record has no `{field}` field"))),
        };
        if text.trim().is_empty() {
            stats.skipped_empty += 1;
            continue;
        }
        let id = match obj.get("id") {
            Some(serde_json::Value::String(s)) => s.clone(),
            Some(serde_json::Value::Number(n)) => n.to_string(),
            _ => format!("{file_id}:{line_no}"),
        };
        stats.documents += 1;
        stats.bytes += text.len() as u64;
        f(Document {
            id,
            text: text.clone(),
        })?;
    }
    Ok(())
}

fn json_type(v: &serde_json::Value) -> &'static str {
    match v {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "an array",
        serde_json::Value::Object(_) => "an object",
    }
}

fn read_text(
    path: &Path,
    split: DocSplit,
    stats: &mut ReadStats,
    f: &mut impl FnMut(Document) -> Result<()>,
) -> Result<()> {
    let mut bytes = Vec::new();
    open_maybe_gzip(path)?
        .read_to_end(&mut bytes)
        .map_err(|e| DataError::read(path, e))?;
    let text = String::from_utf8(bytes).map_err(|e| {
        let offset = e.utf8_error().valid_up_to();
        let line = 1 + e.as_bytes()[..offset]
            .iter()
            .filter(|&&b| b == b'\n')
            .count() as u64;
        DataError::Utf8 {
            path: path.to_path_buf(),
            line,
            offset: offset as u64,
        }
    })?;
    let file_id = display_id(path);
    let mut emit = |id: String, body: &str, stats: &mut ReadStats| -> Result<()> {
        if body.trim().is_empty() {
            stats.skipped_empty += 1;
            return Ok(());
        }
        stats.documents += 1;
        stats.bytes += body.len() as u64;
        f(Document {
            id,
            text: body.to_string(),
        })
    };
    match split {
        DocSplit::File => {
            if text.trim().is_empty() {
                return Ok(()); // reported as an empty file by the caller
            }
            emit(file_id, &text, stats)?;
        }
        DocSplit::Line => {
            for (i, line) in text.lines().enumerate() {
                if !line.trim().is_empty() {
                    emit(format!("{file_id}:{}", i + 1), line, stats)?;
                }
            }
        }
        DocSplit::Paragraph => {
            let mut n = 0usize;
            for para in paragraphs(&text) {
                n += 1;
                emit(format!("{file_id}#{n}"), para, stats)?;
            }
        }
    }
    Ok(())
}

/// Runs of lines separated by lines that hold only white space.
fn paragraphs(text: &str) -> impl Iterator<Item = &str> {
    let mut rest = text;
    std::iter::from_fn(move || {
        // Skip leading blank lines.
        loop {
            let end = rest.find('\n').map(|i| i + 1).unwrap_or(rest.len());
            if end == 0 {
                return None;
            }
            if rest[..end].trim().is_empty() {
                rest = &rest[end..];
            } else {
                break;
            }
        }
        let mut pos = 0;
        while pos < rest.len() {
            let end = rest[pos..]
                .find('\n')
                .map(|i| pos + i + 1)
                .unwrap_or(rest.len());
            if rest[pos..end].trim().is_empty() {
                break;
            }
            pos = end;
        }
        let para = rest[..pos].trim_end_matches(['\n', '\r']);
        rest = &rest[pos..];
        Some(para)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paragraphs_split_on_blank_lines() {
        let p: Vec<_> = paragraphs("\n\na b\nc\n \n\nd\n\n\ne\n").collect();
        assert_eq!(p, vec!["a b\nc", "d", "e"]);
        assert_eq!(paragraphs("").count(), 0);
        assert_eq!(paragraphs("x").collect::<Vec<_>>(), vec!["x"]);
    }

    #[test]
    fn jsonl_detection_looks_through_gzip_suffix() {
        assert!(is_jsonl(Path::new("a/b.jsonl.gz"), Format::Auto));
        assert!(is_jsonl(Path::new("b.JSONL"), Format::Auto));
        assert!(!is_jsonl(Path::new("b.txt.gz"), Format::Auto));
        assert!(is_jsonl(Path::new("b.txt"), Format::Jsonl));
    }
}
