//! Shared fixtures: small corpora written by the tests and the bundled GPT-2 tokenizer.

#![allow(dead_code)]

use std::path::{Path, PathBuf};

use synthscale_data::config::{DocSplit, Format, SourceConfig, SourceKind, TokenizerSpec};
use synthscale_data::DataConfig;

/// The bundled GPT-2 tokenizer (experiments/tokenizers/gpt2.json).
pub fn gpt2() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../experiments/tokenizers/gpt2.json")
}

pub fn source(name: &str, kind: SourceKind, domain: &str, path: &Path) -> SourceConfig {
    SourceConfig {
        name: name.into(),
        kind,
        domain: domain.into(),
        path: path.to_path_buf(),
        format: Format::Auto,
        text_field: "text".into(),
        split: DocSplit::File,
        validation_fraction: None,
    }
}

pub fn config(sources: Vec<SourceConfig>, seq_len: usize, fraction: f64) -> DataConfig {
    DataConfig {
        sources,
        tokenizer: TokenizerSpec::File { path: gpt2() },
        validation_fraction: fraction,
        seq_len,
        ..DataConfig::default()
    }
}

const WORDS: &[&str] = &[
    "the", "river", "carried", "small", "boats", "past", "a", "quiet", "town", "where", "people",
    "made", "bread", "and", "wrote", "letters", "to", "friends", "far", "away", "every", "morning",
    "bells", "rang", "over", "green", "fields", "while", "old", "teachers", "read", "books",
    "aloud",
];

/// A document whose every sentence carries the marker `m{id:05}q`, so that any window of
/// a few dozen tokens shows which document it came from.
pub fn marked_doc(id: usize, sentences: usize) -> String {
    let mut s = String::new();
    let mut x = id as u64 * 2654435761 + 12345;
    for _ in 0..sentences {
        s.push_str(&format!("m{id:05}q"));
        for _ in 0..8 {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            s.push(' ');
            s.push_str(WORDS[(x >> 33) as usize % WORDS.len()]);
        }
        s.push_str(". ");
    }
    s
}

/// The markers in a piece of text.
pub fn markers(text: &str) -> Vec<usize> {
    let b = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i + 7 <= b.len() {
        if b[i] == b'm' && b[i + 6] == b'q' && b[i + 1..i + 6].iter().all(u8::is_ascii_digit) {
            out.push(text[i + 1..i + 6].parse().unwrap());
            i += 7;
        } else {
            i += 1;
        }
    }
    out
}

/// Writes `n` marked documents (ids `first..first+n`) as JSONL.
pub fn write_jsonl(path: &Path, first: usize, n: usize, sentences: usize) {
    let mut s = String::new();
    for id in first..first + n {
        s.push_str(
            &serde_json::json!({"id": format!("doc-{id}"), "text": marked_doc(id, sentences)})
                .to_string(),
        );
        s.push('\n');
    }
    std::fs::write(path, s).unwrap();
}

/// Entries of a folder, for checking that nothing was left behind.
pub fn entries(dir: &Path) -> Vec<String> {
    let mut v: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}
