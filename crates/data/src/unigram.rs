//! The unigram baseline: the loss a model reaches by learning token frequencies alone.
//!
//! `data prepare` counts every source's training and validation tokens into
//! `token_counts.json`. A mixture's unigram model is then the mixture of its sources'
//! add-one-smoothed frequencies with the sampler's own weights ([`Mixture`]):
//! `p(t) = Σ_s w_s · (c_s(t) + 1) / (N_s + V)`, and its loss on a validation domain is the
//! cross-entropy `−Σ_t q(t) · ln p(t)` with `q` the domain's held-out token frequencies.
//! A run whose validation loss sits near this number has learned the unigram statistics
//! and little else: it measures the initial plateau, not a scaling law (REFERENCE.md §9).

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::datadir::DataDir;
use crate::error::{DataError, Result};
use crate::mixture::Mixture;
use crate::shard::Shard;

/// Re-exported from [`crate::datadir`], where the data directory's file names live.
pub use crate::datadir::COUNTS_FILE;

/// Token counts of every source's training and validation split.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TokenCounts {
    /// Vocabulary size V (the length of every count vector).
    pub vocab_size: usize,
    /// Per source, by name: training-token counts by id.
    pub train: BTreeMap<String, Vec<u64>>,
    /// Per source, by name: held-out token counts by id.
    pub val: BTreeMap<String, Vec<u64>>,
}

fn histogram(shard: &Shard, vocab: usize) -> Vec<u64> {
    let mut counts = vec![0u64; vocab];
    let mut buf = vec![0u32; 1 << 16];
    let mut at = 0;
    while at < shard.len() {
        let n = buf.len().min(shard.len() - at);
        shard.read_into(at, &mut buf[..n]);
        for &t in &buf[..n] {
            // Shards are checked against the vocabulary when opened.
            counts[t as usize] += 1;
        }
        at += n;
    }
    counts
}

impl TokenCounts {
    /// Counts the tokens of every shard of an open data directory.
    pub fn count(data: &DataDir) -> TokenCounts {
        let meta = data.meta();
        let vocab = meta.tokenizer.vocab_size as usize;
        let mut train = BTreeMap::new();
        let mut val = BTreeMap::new();
        for (i, s) in meta.sources.iter().enumerate() {
            train.insert(s.name.clone(), histogram(data.train_shard(i), vocab));
            val.insert(s.name.clone(), histogram(data.val_shard(i), vocab));
        }
        TokenCounts {
            vocab_size: vocab,
            train,
            val,
        }
    }

    /// The counts `data prepare` recorded in `dir`, or, for a directory prepared before it
    /// recorded them, counted from its shards now.
    pub fn load_or_count(dir: &Path) -> Result<TokenCounts> {
        let path = dir.join(COUNTS_FILE);
        match std::fs::read_to_string(&path) {
            Ok(text) => serde_json::from_str(&text).map_err(|e| DataError::Corrupt {
                path: path.clone(),
                message: format!("not the token counts `data prepare` writes ({e})"),
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                Ok(TokenCounts::count(&DataDir::open(dir)?))
            }
            Err(e) => Err(DataError::Corrupt {
                path,
                message: format!("unreadable ({e})"),
            }),
        }
    }

    /// The unigram loss (nats/token) of `mixture`'s training distribution on the held-out
    /// tokens of `sources` (one validation domain's sources); `None` when a source is
    /// unknown or the domain holds no held-out tokens.
    pub fn unigram_loss(&self, mixture: &Mixture, sources: &[&str]) -> Option<f64> {
        let v = self.vocab_size;
        let mut p = vec![0.0f64; v];
        for (name, w) in &mixture.weights {
            let c = self.train.get(name)?;
            let n: u64 = c.iter().sum();
            let denom = (n + v as u64) as f64;
            for (pt, &ct) in p.iter_mut().zip(c) {
                *pt += w * (ct as f64 + 1.0) / denom;
            }
        }
        let mut q = vec![0u64; v];
        for name in sources {
            for (qt, &ct) in q.iter_mut().zip(self.val.get(*name)?) {
                *qt += ct;
            }
        }
        let total: u64 = q.iter().sum();
        if total == 0 {
            return None;
        }
        let ce: f64 = q
            .iter()
            .zip(&p)
            .filter(|(&c, _)| c > 0)
            .map(|(&c, &pt)| -(c as f64) * pt.ln())
            .sum();
        Some(ce / total as f64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counts() -> TokenCounts {
        TokenCounts {
            vocab_size: 4,
            train: BTreeMap::from([
                ("a".into(), vec![6, 2, 0, 0]),
                ("b".into(), vec![0, 0, 3, 1]),
            ]),
            val: BTreeMap::from([
                ("a".into(), vec![1, 1, 0, 0]),
                ("b".into(), vec![0, 0, 0, 0]),
            ]),
        }
    }

    #[test]
    fn unigram_loss_is_the_closed_form_cross_entropy() {
        // Oracle, by hand: source a alone, add-one: p = (7, 3, 1, 1)/12; the held-out
        // tokens are ids 0 and 1 once each: CE = −(ln 7/12 + ln 3/12)/2.
        let c = counts();
        let a = Mixture {
            weights: vec![("a".into(), 1.0)],
        };
        let want = -((7.0f64 / 12.0).ln() + (3.0f64 / 12.0).ln()) / 2.0;
        assert!((c.unigram_loss(&a, &["a"]).unwrap() - want).abs() < 1e-12);
        // Half a, half b: p = ½(7,3,1,1)/12 + ½(1,1,4,2)/8.
        let ab = Mixture {
            weights: vec![("a".into(), 0.5), ("b".into(), 0.5)],
        };
        let p0: f64 = 0.5 * 7.0 / 12.0 + 0.5 / 8.0;
        let p1: f64 = 0.5 * 3.0 / 12.0 + 0.5 / 8.0;
        let want = -(p0.ln() + p1.ln()) / 2.0;
        assert!((c.unigram_loss(&ab, &["a"]).unwrap() - want).abs() < 1e-12);
        // A domain with no held-out tokens, or an unknown source, has no unigram loss.
        assert_eq!(c.unigram_loss(&a, &["b"]), None);
        assert_eq!(c.unigram_loss(&a, &["zzz"]), None);
    }
}
