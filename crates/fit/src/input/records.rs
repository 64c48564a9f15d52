//! Records from an input's bytes: delimited text (its separator sniffed from the header) or
//! JSON lines, as a header and rows of string cells with their line numbers.

use std::path::Path;

use crate::error::{FitError, Result};

/// Whether `path` is a JSON-lines file of another tool (by its extension, or a first
/// non-blank byte `{`); synthscale's own `metrics.jsonl` is read as a run instead.
pub(super) fn is_jsonl(path: &Path, bytes: &[u8]) -> bool {
    let ext = path
        .extension()
        .map(|e| e.to_string_lossy().to_lowercase())
        .unwrap_or_default();
    ext == "jsonl"
        || ext == "ndjson"
        || bytes
            .iter()
            .find(|b| !b.is_ascii_whitespace())
            .is_some_and(|&b| b == b'{')
}

/// The separator of a delimited text file: of `,`, `;` and tab, the one its header line
/// holds most of (outside quotes); `,` when it holds none.
pub fn sniff_delimiter(bytes: &[u8]) -> u8 {
    let header = bytes.split(|&b| b == b'\n').next().unwrap_or(&[]);
    let mut counts = [(b',', 0usize), (b';', 0), (b'\t', 0)];
    let mut quoted = false;
    for &b in header {
        if b == b'"' {
            quoted = !quoted;
        } else if !quoted {
            for c in counts.iter_mut() {
                if c.0 == b {
                    c.1 += 1;
                }
            }
        }
    }
    // Ties keep the earlier (`,` first).
    let best = counts
        .iter()
        .fold((b',', 0), |best, &c| if c.1 > best.1 { c } else { best });
    best.0
}

/// A header, and records of (line number, cells).
pub(super) type Records = (Vec<String>, Vec<(u64, Vec<String>)>);

/// A header and its records from a delimited text file.
pub(super) fn csv_records(path: &Path, bytes: &[u8]) -> Result<Records> {
    let mut rdr = csv::ReaderBuilder::new()
        .flexible(false)
        .delimiter(sniff_delimiter(bytes))
        .from_reader(bytes);
    let parse_err = |line: u64, e: csv::Error| FitError::Parse {
        path: path.to_path_buf(),
        line,
        column: "-".into(),
        message: e.to_string(),
    };
    let header: Vec<String> = rdr
        .headers()
        .map_err(|e| parse_err(1, e))?
        .iter()
        // A byte-order mark (spreadsheet exports) is no part of the first column's name.
        .map(|s| s.trim_start_matches('\u{feff}').trim().to_string())
        .collect();
    if header.is_empty() || header.iter().all(|h| h.is_empty()) {
        return Err(FitError::Empty {
            path: path.to_path_buf(),
            message: "no header line".into(),
        });
    }
    let mut records = Vec::new();
    for rec in rdr.records() {
        let rec = rec.map_err(|e| {
            let line = e.position().map_or(0, |p| p.line());
            parse_err(line, e)
        })?;
        let line = rec.position().map_or(0, |p| p.line());
        records.push((
            line,
            rec.iter().map(|s| s.trim().to_string()).collect::<Vec<_>>(),
        ));
    }
    Ok((header, records))
}

/// A header and records from JSON lines: one object a line, the columns the union of their
/// keys in order of first appearance; numbers and booleans as written, null as empty.
pub(super) fn jsonl_records(path: &Path, bytes: &[u8]) -> Result<Records> {
    let text = String::from_utf8_lossy(bytes);
    let mut header: Vec<String> = Vec::new();
    let mut objects = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line_no = i as u64 + 1;
        if line.trim().is_empty() {
            continue;
        }
        let v: serde_json::Value = serde_json::from_str(line).map_err(|e| FitError::Parse {
            path: path.to_path_buf(),
            line: line_no,
            column: "-".into(),
            message: format!("not a JSON object: {e}"),
        })?;
        let serde_json::Value::Object(map) = v else {
            return Err(FitError::Parse {
                path: path.to_path_buf(),
                line: line_no,
                column: "-".into(),
                message: "a JSON value, but not an object of named fields".into(),
            });
        };
        for k in map.keys() {
            if !header.contains(k) {
                header.push(k.clone());
            }
        }
        objects.push((line_no, map));
    }
    let cell = |x: Option<&serde_json::Value>| match x {
        Some(serde_json::Value::String(s)) => s.trim().to_string(),
        Some(serde_json::Value::Null) | None => String::new(),
        Some(x) => x.to_string(),
    };
    let records = objects
        .into_iter()
        .map(|(line, map)| (line, header.iter().map(|k| cell(map.get(k))).collect()))
        .collect();
    Ok((header, records))
}
