//! Whether a prepared data directory is the one a manifest's `[data]` describes: the same
//! sources (names, kinds, domains, validation fractions, in order), tokenizer, end-of-text
//! token and sequence length. A sweep pointed (`--data`) at data prepared from another
//! `[data]` would train and label its runs wrongly without a word.

use std::path::Path;

use synthscale_data::datadir::{read_meta, META_FILE};
use synthscale_data::{DataConfig, TextTokenizer, TokenizerSpec};

use crate::error::{Result, SweepError};

/// Checks `data_dir`'s `data.json` against `data`, the `[data]` section of `manifest`;
/// the first difference is a [`SweepError::Field`] naming the manifest field.
pub fn check_data_matches(manifest: &Path, data: &DataConfig, data_dir: &Path) -> Result<()> {
    let meta = read_meta(data_dir)?;
    let meta_file = data_dir.join(META_FILE);
    let differ = |field: String, ours: String, theirs: String| SweepError::Field {
        file: manifest.to_path_buf(),
        field,
        message: format!(
            "is {ours} here but {} was prepared with {theirs}: the data directory was \
             prepared from another [data]; prepare this manifest's data (`synthscale data \
             prepare {}`) or pass the --data it was prepared into",
            meta_file.display(),
            manifest.display()
        ),
    };
    let names = |v: Vec<&str>| format!("{v:?}");
    if data.sources.len() != meta.sources.len()
        || data
            .sources
            .iter()
            .zip(&meta.sources)
            .any(|(a, b)| a.name != b.name)
    {
        return Err(differ(
            "data.sources".into(),
            format!(
                "sources {}",
                names(data.sources.iter().map(|s| s.name.as_str()).collect())
            ),
            format!(
                "sources {}",
                names(meta.sources.iter().map(|s| s.name.as_str()).collect())
            ),
        ));
    }
    for (i, (a, b)) in data.sources.iter().zip(&meta.sources).enumerate() {
        if a.kind != b.kind {
            return Err(differ(
                format!("data.sources[{i}].kind"),
                format!("{:?}", a.kind.as_str()),
                format!("{:?}", b.kind.as_str()),
            ));
        }
        if a.domain != b.domain {
            return Err(differ(
                format!("data.sources[{i}].domain"),
                format!("{:?}", a.domain),
                format!("{:?}", b.domain),
            ));
        }
        let vf = data.source_validation_fraction(i);
        if vf != b.validation_fraction {
            return Err(differ(
                format!("data.sources[{i}].validation_fraction"),
                vf.to_string(),
                b.validation_fraction.to_string(),
            ));
        }
    }
    if data.seq_len != meta.seq_len {
        return Err(differ(
            "data.seq_len".into(),
            data.seq_len.to_string(),
            meta.seq_len.to_string(),
        ));
    }
    if data.eot_token != meta.tokenizer.eot_token {
        return Err(differ(
            "data.eot_token".into(),
            format!("{:?}", data.eot_token),
            format!("{:?}", meta.tokenizer.eot_token),
        ));
    }
    match &data.tokenizer {
        TokenizerSpec::File { path } => {
            let tok = TextTokenizer::from_file(path, &data.eot_token)?;
            if tok.hash() != meta.tokenizer.hash {
                return Err(differ(
                    "data.tokenizer".into(),
                    format!("{} (sha256 {})", path.display(), short(tok.hash())),
                    format!(
                        "the tokenizer {} (sha256 {})",
                        meta.tokenizer.origin,
                        short(&meta.tokenizer.hash)
                    ),
                ));
            }
        }
        TokenizerSpec::Bpe { vocab_size, .. } => {
            // `data prepare` names a trained BPE by its requested vocabulary; the trained one
            // may hold fewer tokens when the text is small.
            let origin = format!("<bpe vocab_size={vocab_size}>");
            if meta.tokenizer.origin != origin {
                return Err(differ(
                    "data.tokenizer".into(),
                    format!("a BPE of vocab_size {vocab_size}"),
                    format!("the tokenizer {}", meta.tokenizer.origin),
                ));
            }
        }
    }
    Ok(())
}

fn short(hash: &str) -> &str {
    &hash[..hash.len().min(12)]
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A data.json as `data prepare` writes it, for a `[data]` with one source.
    fn write_meta(dir: &Path, kind: &str, domain: &str, seq_len: usize) {
        let meta = serde_json::json!({
            "layout_version": synthscale_data::datadir::LAYOUT_VERSION,
            "fingerprint": "x",
            "tokenizer": {"hash": "h", "vocab_size": 300, "eot_token": "<|endoftext|>",
                "eot_id": 0, "dtype": "u16", "origin": "<bpe vocab_size=512>"},
            "seq_len": seq_len,
            "max_repeats": 4.0,
            "sources": [{"name": "c", "kind": kind, "domain": domain, "path": "/x",
                "files": 1, "validation_fraction": 0.1,
                "train": {"documents": 1, "bytes": 1, "tokens": 1},
                "val": {"documents": 1, "bytes": 1, "tokens": 1}, "skipped_empty": 0}]
        });
        std::fs::write(dir.join(META_FILE), meta.to_string()).unwrap();
    }

    fn config() -> DataConfig {
        DataConfig::from_toml(
            "tokenizer = { kind = \"bpe\", vocab_size = 512 }\nvalidation_fraction = 0.1\n\
             seq_len = 32\n[[sources]]\nname = \"c\"\nkind = \"natural\"\n\
             domain = \"web\"\npath = \"c.jsonl\"\n",
            Path::new("m.toml"),
        )
        .unwrap()
    }

    #[test]
    fn data_prepared_from_another_data_section_is_refused_by_field() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = config();
        write_meta(dir.path(), "natural", "web", 32);
        check_data_matches(Path::new("m.toml"), &cfg, dir.path()).unwrap();
        for (kind, domain, seq, field) in [
            ("rephrased", "web", 32, "data.sources[0].kind"),
            ("natural", "news", 32, "data.sources[0].domain"),
            ("natural", "web", 64, "data.seq_len"),
        ] {
            write_meta(dir.path(), kind, domain, seq);
            let e = check_data_matches(Path::new("m.toml"), &cfg, dir.path()).unwrap_err();
            assert!(e.is_bad_input());
            let text = e.to_string();
            assert!(text.contains(&format!("`{field}`")), "{text}");
            assert!(text.contains("m.toml"), "{text}");
        }
        write_meta(dir.path(), "natural", "web", 32);
        let mut other = cfg.clone();
        other.sources[0].name = "d".into();
        let e = check_data_matches(Path::new("m.toml"), &other, dir.path()).unwrap_err();
        assert!(e.to_string().contains("`data.sources`"), "{e}");
        let mut other = cfg.clone();
        other.tokenizer = TokenizerSpec::Bpe {
            vocab_size: 1024,
            min_frequency: 2,
            max_train_bytes: 1,
        };
        let e = check_data_matches(Path::new("m.toml"), &other, dir.path()).unwrap_err();
        assert!(e.to_string().contains("`data.tokenizer`"), "{e}");
    }
}
