//! Filters on generated texts: minimum length, exact and near duplicates (MinHash-free:
//! Jaccard over word 5-gram shingles against everything kept), prompt echo and refusals;
//! with counts of what was kept and why the rest was dropped.

use std::collections::{BTreeMap, HashSet};
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{Result, SynthError};

/// Filter settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FilterConfig {
    /// Texts with fewer words are dropped.
    pub min_words: usize,
    /// A text whose 5-gram shingle Jaccard similarity with a kept text reaches this is a
    /// near duplicate.
    pub near_dup_jaccard: f64,
    /// A text sharing this fraction of its 8-gram shingles with its own prompt (template and
    /// passage) echoes the prompt instead of rewriting it.
    pub echo_overlap: f64,
    /// Lower-case phrases that mark a refusal when the text opens with them (first 200
    /// characters).
    pub refusal_phrases: Vec<String>,
}

impl Default for FilterConfig {
    fn default() -> Self {
        FilterConfig {
            min_words: 50,
            near_dup_jaccard: 0.8,
            // A rephrase keeps the facts but should change most of the wording.
            echo_overlap: 0.6,
            refusal_phrases: [
                "i'm sorry",
                "i am sorry",
                "i cannot",
                "i can't",
                "as an ai",
                "i'm unable",
                "i am unable",
                "i apologize",
            ]
            .into_iter()
            .map(String::from)
            .collect(),
        }
    }
}

impl FilterConfig {
    pub fn validate(&self, path: &Path) -> Result<()> {
        for (field, v) in [
            ("filter.near_dup_jaccard", self.near_dup_jaccard),
            ("filter.echo_overlap", self.echo_overlap),
        ] {
            if !(v > 0.0 && v <= 1.0) {
                return Err(SynthError::field(
                    path,
                    field,
                    format!("{v} is outside (0, 1]"),
                ));
            }
        }
        Ok(())
    }
}

/// Why a text was dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Drop {
    TooShort,
    ExactDuplicate,
    NearDuplicate,
    PromptEcho,
    Refusal,
}

/// Counts from one filter pass.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FilterSummary {
    pub seen: u64,
    pub kept: u64,
    pub dropped: BTreeMap<String, u64>,
    pub kept_words: u64,
}

fn words(text: &str) -> Vec<String> {
    text.split_whitespace()
        .map(|w| {
            w.trim_matches(|c: char| !c.is_alphanumeric())
                .to_lowercase()
        })
        .filter(|w| !w.is_empty())
        .collect()
}

fn shingles(w: &[String], n: usize) -> HashSet<u64> {
    use std::hash::{Hash, Hasher};
    if w.len() < n {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        w.hash(&mut h);
        return [h.finish()].into_iter().collect();
    }
    w.windows(n)
        .map(|g| {
            let mut h = std::collections::hash_map::DefaultHasher::new();
            g.hash(&mut h);
            h.finish()
        })
        .collect()
}

/// Jaccard similarity |a ∩ b| / |a ∪ b| (1 for two empty sets).
pub fn jaccard<T: Eq + std::hash::Hash>(a: &HashSet<T>, b: &HashSet<T>) -> f64 {
    if a.is_empty() && b.is_empty() {
        return 1.0;
    }
    let inter = a.intersection(b).count();
    inter as f64 / (a.len() + b.len() - inter) as f64
}

/// A stateful filter: texts are judged in order against what was kept before.
pub struct Filter {
    cfg: FilterConfig,
    exact: HashSet<String>,
    kept: Vec<HashSet<u64>>,
    pub summary: FilterSummary,
}

impl Filter {
    pub fn new(cfg: FilterConfig) -> Self {
        Filter {
            cfg,
            exact: HashSet::new(),
            kept: Vec::new(),
            summary: FilterSummary::default(),
        }
    }

    /// Judges `text` (made from `prompt`); keeps it in the dedup state when it passes.
    pub fn check(&mut self, text: &str, prompt: &str) -> Option<Drop> {
        self.summary.seen += 1;
        let verdict = self.judge(text, prompt);
        match verdict {
            Some(d) => {
                let key = serde_json::to_value(d).expect("enum");
                *self
                    .summary
                    .dropped
                    .entry(key.as_str().expect("string").to_string())
                    .or_default() += 1;
            }
            None => self.summary.kept += 1,
        }
        verdict
    }

    fn judge(&mut self, text: &str, prompt: &str) -> Option<Drop> {
        let w = words(text);
        if w.len() < self.cfg.min_words {
            return Some(Drop::TooShort);
        }
        let head: String = text.chars().take(200).collect::<String>().to_lowercase();
        if self
            .cfg
            .refusal_phrases
            .iter()
            .any(|p| head.contains(p.as_str()))
        {
            return Some(Drop::Refusal);
        }
        let sh8 = shingles(&w, 8);
        let p8 = shingles(&words(prompt), 8);
        let echoed = sh8.iter().filter(|s| p8.contains(s)).count() as f64 / sh8.len() as f64;
        if echoed >= self.cfg.echo_overlap {
            return Some(Drop::PromptEcho);
        }
        let norm = w.join(" ");
        if self.exact.contains(&norm) {
            return Some(Drop::ExactDuplicate);
        }
        let sh5 = shingles(&w, 5);
        if self
            .kept
            .iter()
            .any(|k| jaccard(k, &sh5) >= self.cfg.near_dup_jaccard)
        {
            return Some(Drop::NearDuplicate);
        }
        self.exact.insert(norm);
        self.kept.push(sh5);
        self.summary.kept_words += w.len() as u64;
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(n: usize, salt: &str) -> String {
        (0..n)
            .map(|i| format!("{salt}{i}"))
            .collect::<Vec<_>>()
            .join(" ")
    }

    #[test]
    fn each_rule_fires_on_its_case() {
        let mut f = Filter::new(FilterConfig::default());
        let a = text(60, "a");
        assert_eq!(f.check(&a, "prompt"), None);
        assert_eq!(f.check("too short", "prompt"), Some(Drop::TooShort));
        // Same words, different punctuation and case: exact duplicate after normalising.
        assert_eq!(
            f.check(&a.to_uppercase(), "prompt"),
            Some(Drop::ExactDuplicate)
        );
        // Last word changed: 55 of 56 5-grams shared, Jaccard 55/57 ≥ 0.8.
        let near = a.replacen("a59", "zz", 1);
        assert_eq!(f.check(&near, "prompt"), Some(Drop::NearDuplicate));
        let b = text(60, "b");
        assert_eq!(
            f.check(&b, &format!("Rephrase: {b}")),
            Some(Drop::PromptEcho)
        );
        let r = format!("I'm sorry, but {}", text(60, "c"));
        assert_eq!(f.check(&r, "prompt"), Some(Drop::Refusal));
        assert_eq!(f.summary.seen, 6);
        assert_eq!(f.summary.kept, 1);
        assert_eq!(f.summary.dropped.values().sum::<u64>(), 5);
    }

    #[test]
    fn jaccard_closed_form() {
        let a: HashSet<u32> = [1, 2, 3, 4].into_iter().collect();
        let b: HashSet<u32> = [3, 4, 5].into_iter().collect();
        assert!((jaccard(&a, &b) - 2.0 / 5.0).abs() < 1e-12);
    }
}
