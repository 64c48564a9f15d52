//! SynthLLM level 2's extraction answer: the topics and key concepts of one passage,
//! parsed leniently (JSON first, else the `Topic:`/`Concepts:` text forms small generators
//! fall into) and grounded in the passage.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

/// Topics of one passage, each with its key concepts.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Extraction {
    pub topics: BTreeMap<String, BTreeSet<String>>,
}

impl Extraction {
    /// Every concept of every topic.
    pub fn concepts(&self) -> BTreeSet<String> {
        self.topics.values().flatten().cloned().collect()
    }
}

/// A concept: at most six words and 60 characters, lower case, single spaces.
fn normalise(s: &str) -> Option<String> {
    normalise_up_to(s, 6, 60)
}

/// A topic name may be longer than a concept (ten words, 100 characters).
fn normalise_topic(s: &str) -> Option<String> {
    normalise_up_to(s, 10, 100)
}

fn normalise_up_to(s: &str, words: usize, chars: usize) -> Option<String> {
    let s = s
        .trim()
        .trim_matches(|c: char| !c.is_alphanumeric())
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .to_lowercase();
    (!s.is_empty() && s.chars().count() <= chars && s.split(' ').count() <= words).then_some(s)
}

impl Extraction {
    /// Keeps the concepts grounded in `passage`: those with a word of four or more letters
    /// that occurs in it (case-insensitive), so that a concept the generator made up or
    /// copied from the prompt's instructions is dropped; topics left without concepts go.
    pub fn grounded_in(mut self, passage: &str) -> Self {
        let text = passage.to_lowercase();
        let words: BTreeSet<&str> = text
            .split(|c: char| !c.is_alphanumeric())
            .filter(|w| w.chars().count() >= 4)
            .collect();
        for concepts in self.topics.values_mut() {
            concepts.retain(|c| {
                c.split(|ch: char| !ch.is_alphanumeric())
                    .any(|w| w.chars().count() >= 4 && words.contains(w))
            });
        }
        self.topics.retain(|_, c| !c.is_empty());
        self
    }
}

/// How many extraction answers gave grounded concepts (SynthLLM's survival rate).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ExtractionSummary {
    /// Passages with an extraction answer.
    pub answered: usize,
    /// Answers that parsed into at least one topic with a concept found in the passage.
    pub parsed: usize,
    /// `parsed / answered`.
    pub survival: f64,
}

/// Parses a JSON extraction answer: `{"topics": [{"topic": …, "concepts": [...]}]}`
/// (concepts may also be one comma-separated string, and `name` may stand for `topic`),
/// taking the first JSON object in the text. None when there is no such object.
fn parse_json_extraction(answer: &str) -> Option<Extraction> {
    let start = answer.find('{')?;
    let v: serde_json::Value = serde_json::Deserializer::from_str(&answer[start..])
        .into_iter::<serde_json::Value>()
        .next()?
        .ok()?;
    let mut ex = Extraction::default();
    for t in v["topics"].as_array()? {
        let Some(name) = t["topic"].as_str().or_else(|| t["name"].as_str()) else {
            continue;
        };
        let Some(topic) = normalise_topic(name) else {
            continue;
        };
        let items: Vec<String> = match &t["concepts"] {
            serde_json::Value::Array(a) => a
                .iter()
                .filter_map(|c| c.as_str().map(str::to_string))
                .collect(),
            serde_json::Value::String(s) => s.split([',', ';']).map(str::to_string).collect(),
            _ => Vec::new(),
        };
        let set = ex.topics.entry(topic).or_default();
        set.extend(items.iter().filter_map(|c| normalise(c)));
    }
    ex.topics.retain(|_, c| !c.is_empty());
    (!ex.topics.is_empty()).then_some(ex)
}

/// Parses an extraction answer: JSON first ([`parse_json_extraction`]), else the form
/// ```text
/// Topic: <name>
/// Concepts: <a>, <b>; <c>
/// ```
/// tolerating bullets, markdown emphasis, numbering, case, "Key concepts", "Concept:" and
/// "Keywords:" lines, and concepts
/// given as a bulleted list under their topic (with or without a `Concepts:` line) — the
/// shapes small generators fall into. A concept longer than six words is not a concept and
/// is dropped. Returns why it failed when no topic with at least one concept was found.
pub fn parse_extraction(answer: &str) -> std::result::Result<Extraction, String> {
    if let Some(ex) = parse_json_extraction(answer) {
        return Ok(ex);
    }
    let mut ex = Extraction::default();
    let mut current: Option<String> = None;
    for raw in answer.lines() {
        let t = raw.trim();
        let digits = t.chars().take_while(|c| c.is_ascii_digit()).count();
        let bullet =
            t.starts_with(['-', '*', '•']) || (digits > 0 && t[digits..].starts_with(['.', ')']));
        let line = t
            .trim_start_matches(|c: char| {
                c == '-'
                    || c == '*'
                    || c == '#'
                    || c == '•'
                    || c.is_ascii_digit()
                    || c == '.'
                    || c == ')'
                    || c.is_whitespace()
            })
            .replace("**", "");
        if let Some((key, value)) = line.split_once(':') {
            let key = key.trim().to_lowercase();
            if key == "topic" || key.starts_with("topic ") {
                current = normalise_topic(value);
                if let Some(t) = &current {
                    ex.topics.entry(t.clone()).or_default();
                }
                continue;
            }
            if key == "concepts"
                || key == "concept"
                || key == "keywords"
                || key.ends_with(" concepts")
            {
                let Some(t) = &current else { continue };
                let set = ex.topics.entry(t.clone()).or_default();
                for c in value.split([',', ';']) {
                    if let Some(c) = normalise(c) {
                        set.insert(c);
                    }
                }
                continue;
            }
        }
        // A bulleted item under a topic is one concept ("- name: gloss" names it).
        if bullet {
            if let Some(t) = &current {
                let name = line.split_once(':').map_or(line.as_str(), |(k, _)| k);
                if let Some(c) = normalise(name) {
                    ex.topics.entry(t.clone()).or_default().insert(c);
                }
            }
        }
    }
    ex.topics.retain(|_, c| !c.is_empty());
    if ex.topics.is_empty() {
        return Err(format!(
            "no `Topic:` line followed by concepts in {:?}",
            answer.chars().take(120).collect::<String>()
        ));
    }
    Ok(ex)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_extractions_parse_first_and_text_is_the_fallback() {
        // The schema's shape (as a server held to it answers), after some prose.
        let a = r#"Here: {"topics": [{"topic": "The Bridge", "concepts": ["soft clay", "Deeper piles", "x"]},
            {"name": "Tolls", "concepts": "carts, merchants; ferry"}, {"topic": "empty", "concepts": []}]} trailing"#;
        let ex = parse_extraction(a).unwrap();
        let want: BTreeMap<String, BTreeSet<String>> = [
            ("the bridge", vec!["soft clay", "deeper piles", "x"]),
            ("tolls", vec!["carts", "merchants", "ferry"]),
        ]
        .into_iter()
        .map(|(t, c)| (t.to_string(), c.into_iter().map(str::to_string).collect()))
        .collect();
        assert_eq!(ex.topics, want);
        // Cut-off JSON is not an extraction; the text form after it still is.
        let cut = "{\"topics\": [{\"topic\": \"a\", \"concepts\": [\"b\"\nTopic: Rivers\nConcepts: delta, flood";
        let ex = parse_extraction(cut).unwrap();
        assert_eq!(ex.topics.keys().collect::<Vec<_>>(), ["rivers"]);
        assert!(parse_extraction("{\"topics\": []}").is_err());
    }

    #[test]
    fn parses_lenient_extractions_and_rejects_garbage() {
        let ans = "Subject: history\n1. **Topic:** The Union\n   - Key concepts: Congress, the States; taxes\n## topic: War\nConcepts: army,\n";
        let ex = parse_extraction(ans).unwrap();
        assert_eq!(ex.topics.len(), 2);
        assert_eq!(
            ex.topics["the union"],
            ["congress", "the states", "taxes"]
                .iter()
                .map(|s| s.to_string())
                .collect()
        );
        assert_eq!(ex.topics["war"].len(), 1);
        assert!(parse_extraction("I like turtles.").is_err());
        assert!(parse_extraction("Topic: lonely\n").is_err());
        // Concepts as a bulleted list under the topic, with glosses, repeats and a
        // sentence that is no concept; a list before any topic belongs to none.
        let ans = "- stray item\nTopic: Incremental decoding\n- Decoder state: kept between calls\n- Error handling\n- error handling\n- The decoder keeps its state between calls so that no bytes are lost\n2) BOM\nTopic: Codecs\nConcepts:\n* UTF-8\n* code page\nKeywords: utf-8, byte order\n";
        let ex = parse_extraction(ans).unwrap();
        let names = |t: &str| ex.topics[t].iter().cloned().collect::<Vec<_>>();
        assert_eq!(ex.topics.len(), 2);
        assert_eq!(
            names("incremental decoding"),
            ["bom", "decoder state", "error handling"]
        );
        assert_eq!(names("codecs"), ["byte order", "code page", "utf-8"]);
    }

    #[test]
    fn grounding_keeps_concepts_that_occur_in_the_passage() {
        let ans = "Topic: Photosynthesis\nConcepts: chlorophyll, sunlight\nTopic: The incremental decoder of the codecs module\nConcepts: decoder state, error handling, BOM\n";
        let ex = parse_extraction(ans).unwrap();
        assert_eq!(ex.topics.len(), 2, "a ten-word topic name is kept");
        let ex = ex.grounded_in(
            "An incremental decoder keeps its state; errors are handled as the codec says.",
        );
        assert_eq!(ex.topics.len(), 1);
        let kept: Vec<_> = ex.topics.values().next().unwrap().iter().cloned().collect();
        // "decoder state" shares "decoder" and "state"; "error handling" shares nothing
        // ("errors", "handled" are other words); "bom" is under four letters.
        assert_eq!(kept, ["decoder state"]);
    }
}
