//! Source passages: documents read through the data crate, cut into paragraph-aligned
//! chunks that fit the generator's prompt, and a seeded choice among them.

use std::path::Path;

use synthscale_data::config::{DocSplit, Format, SourceConfig, SourceKind};

use crate::config::{ChunkConfig, SourceSpec};
use crate::error::{Result, SynthError};
use crate::generate::stream_seed;

/// One passage: a chunk of one document.
#[derive(Debug, Clone, PartialEq)]
pub struct Passage {
    /// `<source>:<document id>#<chunk>`.
    pub id: String,
    pub text: String,
    /// Generator tokens in `text`.
    pub tokens: usize,
}

/// Cuts `text` into chunks of at most `max_tokens` (by `count`), packing whole paragraphs;
/// a paragraph longer than that is cut between words.
pub fn chunk_text(
    text: &str,
    max_tokens: usize,
    count: &dyn Fn(&str) -> usize,
) -> Vec<(String, usize)> {
    let mut pieces: Vec<(String, usize)> = Vec::new();
    for para in text.split("\n\n").map(str::trim).filter(|p| !p.is_empty()) {
        let n = count(para);
        if n <= max_tokens {
            pieces.push((para.to_string(), n));
            continue;
        }
        // Split a long paragraph into word runs of about max_tokens each.
        let words: Vec<&str> = para.split_whitespace().collect();
        let per = (words.len() * max_tokens / n.max(1)).max(1);
        for w in words.chunks(per) {
            let s = w.join(" ");
            let n = count(&s);
            pieces.push((s, n));
        }
    }
    let mut out: Vec<(String, usize)> = Vec::new();
    let mut cur = String::new();
    let mut cur_n = 0;
    for (p, n) in pieces {
        if !cur.is_empty() && cur_n + n > max_tokens {
            out.push((std::mem::take(&mut cur), cur_n));
            cur_n = 0;
        }
        if !cur.is_empty() {
            cur.push_str("\n\n");
        }
        cur.push_str(&p);
        cur_n += n;
    }
    if !cur.is_empty() {
        out.push((cur, cur_n));
    }
    out
}

/// Every passage of `src` of at least `chunking.min_tokens`, then a seeded choice of
/// `src.max_passages` of them (kept in corpus order).
pub fn read_passages(
    src: &SourceSpec,
    chunking: &ChunkConfig,
    seed: u64,
    count: &dyn Fn(&str) -> usize,
) -> Result<Vec<Passage>> {
    if !src.path.exists() {
        return Err(SynthError::Missing {
            path: src.path.clone(),
            what: format!("source `{}`", src.name),
        });
    }
    let data_src = SourceConfig {
        name: src.name.clone(),
        kind: SourceKind::Natural,
        domain: src.name.clone(),
        path: src.path.clone(),
        format: Format::Auto,
        text_field: "text".into(),
        split: DocSplit::default(),
        validation_fraction: None,
    };
    let mut all = Vec::new();
    synthscale_data::source::for_each_document(&data_src, |doc| {
        for (i, (text, tokens)) in chunk_text(&doc.text, chunking.max_tokens, count)
            .into_iter()
            .enumerate()
        {
            if tokens >= chunking.min_tokens {
                all.push(Passage {
                    id: format!("{}:{}#{i}", src.name, doc.id),
                    text,
                    tokens,
                });
            }
        }
        Ok(())
    })?;
    if all.is_empty() {
        return Err(SynthError::Empty {
            path: src.path.clone(),
            what: format!(
                "no passage of at least {} generator tokens (chunking.min_tokens)",
                chunking.min_tokens
            ),
        });
    }
    if let Some(k) = src.max_passages {
        if k < all.len() {
            let mut keyed: Vec<(u64, usize)> = all
                .iter()
                .enumerate()
                .map(|(i, p)| (stream_seed(seed, &p.id), i))
                .collect();
            keyed.sort_unstable();
            let mut keep: Vec<usize> = keyed[..k].iter().map(|x| x.1).collect();
            keep.sort_unstable();
            let mut all_opt: Vec<Option<Passage>> = all.into_iter().map(Some).collect();
            all = keep
                .into_iter()
                .map(|i| all_opt[i].take().expect("once"))
                .collect();
        }
    }
    Ok(all)
}

/// For error messages that name a source file.
pub fn describe(path: &Path) -> String {
    path.display().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_pack_paragraphs_and_respect_the_bound() {
        let words = |s: &str| s.split_whitespace().count();
        let text = "a b c\n\nd e\n\nf g h i\n\n".to_string() + &"w ".repeat(25);
        let chunks = chunk_text(&text, 6, &words);
        // "a b c" + "d e" = 5 ≤ 6; "f g h i" alone; 25 words cut into runs of ≤ 6.
        assert_eq!(chunks[0], ("a b c\n\nd e".to_string(), 5));
        assert_eq!(chunks[1], ("f g h i".to_string(), 4));
        assert!(chunks.iter().all(|c| c.1 <= 6));
        let total: usize = chunks.iter().map(|c| c.1).sum();
        assert_eq!(total, 3 + 2 + 4 + 25);
    }
}
