//! SynthLLM levels 2 and 3 (Qin et al. 2025, REFERENCE.md §1): topic and concept
//! extraction per passage (parsed leniently; a malformed answer is logged and skipped),
//! the topic/concept co-occurrence graph with `w = log(freq + eps)` edges, softmax random
//! walks over it, and Jaccard retrieval of the two passages closest to a walk.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::backend::LoadedGenerator;
use crate::config::{Method, SynthConfig, TaskConfig};
use crate::error::Result;
use crate::generate::stream_seed;
use crate::job::{generate_jobs, make_job, sampling_record, Job, Log, Outcome};
use crate::passages::Passage;
use crate::prompt::Template;
use crate::record::{read_raw, Record};

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

/// A node of the graph.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Node {
    Topic(String),
    Concept(String),
}

/// Co-occurrence graph: an edge joins two nodes that appear in one passage's extraction;
/// its weight is `ln(freq + eps)`, freq the number of passages they share.
#[derive(Debug, Clone, Default)]
pub struct ConceptGraph {
    pub edges: BTreeMap<Node, BTreeMap<Node, u32>>,
    pub eps: f64,
}

impl ConceptGraph {
    pub fn build<'a>(extractions: impl IntoIterator<Item = &'a Extraction>, eps: f64) -> Self {
        let mut edges: BTreeMap<Node, BTreeMap<Node, u32>> = BTreeMap::new();
        for ex in extractions {
            let mut nodes: BTreeSet<Node> =
                ex.topics.keys().map(|t| Node::Topic(t.clone())).collect();
            nodes.extend(ex.concepts().into_iter().map(Node::Concept));
            for a in &nodes {
                for b in &nodes {
                    if a != b {
                        *edges
                            .entry(a.clone())
                            .or_default()
                            .entry(b.clone())
                            .or_default() += 1;
                    }
                }
            }
        }
        ConceptGraph { edges, eps }
    }

    pub fn topics(&self) -> Vec<&Node> {
        self.edges
            .keys()
            .filter(|n| matches!(n, Node::Topic(_)))
            .collect()
    }

    /// Neighbours of `from` that satisfy `keep`, with softmax(w) transition probabilities.
    pub fn transitions(&self, from: &Node, keep: impl Fn(&Node) -> bool) -> Vec<(&Node, f64)> {
        let Some(nb) = self.edges.get(from) else {
            return Vec::new();
        };
        let ws: Vec<(&Node, f64)> = nb
            .iter()
            .filter(|(n, _)| keep(n))
            .map(|(n, &f)| (n, (f as f64 + self.eps).ln()))
            .collect();
        let m = ws.iter().map(|x| x.1).fold(f64::NEG_INFINITY, f64::max);
        let z: f64 = ws.iter().map(|x| (x.1 - m).exp()).sum();
        ws.into_iter()
            .map(|(n, w)| (n, (w - m).exp() / z))
            .collect()
    }

    /// One step from `from` among neighbours satisfying `keep`; None at a dead end.
    pub fn step(
        &self,
        from: &Node,
        keep: impl Fn(&Node) -> bool,
        rng: &mut ChaCha8Rng,
    ) -> Option<Node> {
        let t = self.transitions(from, keep);
        if t.is_empty() {
            return None;
        }
        let mut u: f64 = rng.random();
        for (n, p) in &t {
            u -= p;
            if u <= 0.0 {
                return Some((*n).clone());
            }
        }
        Some(t[t.len() - 1].0.clone())
    }

    /// SynthLLM's walk: a uniform start topic, 1–2 steps among topics, one step onto a
    /// concept, 3–4 steps among concepts. Returns the visited topics and concepts.
    pub fn walk(&self, rng: &mut ChaCha8Rng) -> Option<(BTreeSet<String>, BTreeSet<String>)> {
        let topics = self.topics();
        if topics.is_empty() {
            return None;
        }
        let mut cur = topics[rng.random_range(0..topics.len())].clone();
        let mut ts = BTreeSet::new();
        let mut cs = BTreeSet::new();
        let is_topic = |n: &Node| matches!(n, Node::Topic(_));
        let is_concept = |n: &Node| matches!(n, Node::Concept(_));
        if let Node::Topic(t) = &cur {
            ts.insert(t.clone());
        }
        for _ in 0..rng.random_range(1..=2) {
            match self.step(&cur, is_topic, rng) {
                Some(n) => cur = n,
                None => break,
            }
            if let Node::Topic(t) = &cur {
                ts.insert(t.clone());
            }
        }
        cur = self.step(&cur, is_concept, rng)?;
        if let Node::Concept(c) = &cur {
            cs.insert(c.clone());
        }
        for _ in 0..rng.random_range(3..=4) {
            match self.step(&cur, is_concept, rng) {
                Some(n) => cur = n,
                None => break,
            }
            if let Node::Concept(c) = &cur {
                cs.insert(c.clone());
            }
        }
        Some((ts, cs))
    }
}

/// Indices of the `k` sets with the highest Jaccard similarity to `query` (ties: lower
/// index first).
pub fn closest(query: &BTreeSet<String>, sets: &[BTreeSet<String>], k: usize) -> Vec<usize> {
    let mut scored: Vec<(f64, usize)> = sets
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let inter = s.intersection(query).count();
            let union = s.len() + query.len() - inter;
            (
                if union == 0 {
                    0.0
                } else {
                    inter as f64 / union as f64
                },
                i,
            )
        })
        .collect();
    scored.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
    scored.into_iter().take(k).map(|x| x.1).collect()
}

/// Runs (or resumes) the extraction call on every passage; returns the parsed extractions
/// by passage id and the survival rate. Malformed answers are logged and left out.
pub fn extract_all(
    cfg: &SynthConfig,
    task: &TaskConfig,
    tmpl: &Template,
    gen: &LoadedGenerator,
    passages: &[Passage],
    log: Log,
) -> Result<(BTreeMap<String, Extraction>, ExtractionSummary)> {
    let jobs: Vec<Job> = passages
        .iter()
        .map(|p| {
            let mut v = BTreeMap::new();
            v.insert("passage", p.text.clone());
            make_job(
                gen,
                tmpl,
                format!("extract/{}", p.id),
                vec![p.id.clone()],
                &v,
            )
        })
        .collect::<Result<_>>()?;
    // Named by the template, not the task: level 2 and level 3 tasks with one extraction
    // template (and the same passages) share one extraction run.
    let raw = cfg
        .work_dir
        .join(format!("extract-{}.raw.jsonl", &tmpl.sha256[..12]));
    let make = |c: &Outcome, job: &Job, text: String| Record {
        id: c.id.clone(),
        text,
        kind: "extraction".into(),
        task: "extract".into(),
        sources: job.sources.clone(),
        generator: gen.id.clone(),
        template_sha256: tmpl.sha256.clone(),
        sampling: sampling_record(&cfg.sampling, job),
        seed: cfg.sampling.seed,
        finish: c.finish,
        prompt_tokens: c.prompt_tokens,
        generated_tokens: c.generated_tokens,
    };
    generate_jobs(
        &raw,
        &jobs,
        gen,
        &make,
        log,
        &format!("{} extraction", task.name),
    )?;
    let mut out = BTreeMap::new();
    let mut bad = 0;
    let text_of: HashMap<&str, &str> = passages
        .iter()
        .map(|p| (p.id.as_str(), p.text.as_str()))
        .collect();
    for r in read_raw(&raw)? {
        let Some(passage) = r.sources.first().and_then(|s| text_of.get(s.as_str())) else {
            continue; // a passage no longer among this run's sources
        };
        let parsed = parse_extraction(&r.text).and_then(|ex| {
            let ex = ex.grounded_in(passage);
            if ex.topics.is_empty() {
                Err("none of its concepts occurs in the passage".to_string())
            } else {
                Ok(ex)
            }
        });
        match parsed {
            Ok(ex) => {
                out.insert(r.sources[0].clone(), ex);
            }
            Err(why) => {
                bad += 1;
                log(&format!("{}: malformed extraction skipped: {why}", r.id));
            }
        }
    }
    let answered = out.len() + bad;
    let summary = ExtractionSummary {
        answered,
        parsed: out.len(),
        survival: if answered == 0 {
            0.0
        } else {
            out.len() as f64 / answered as f64
        },
    };
    log(&format!(
        "{} extraction: {} parsed, {bad} malformed and skipped (survival {:.2})",
        task.name,
        out.len(),
        summary.survival
    ));
    Ok((out, summary))
}

fn join(items: impl IntoIterator<Item = String>) -> String {
    items.into_iter().collect::<Vec<_>>().join(", ")
}

/// The level 2 or 3 generation prompts.
pub fn jobs(
    cfg: &SynthConfig,
    task: &TaskConfig,
    tmpl: &Template,
    gen: &LoadedGenerator,
    passages: &[Passage],
    extractions: &BTreeMap<String, Extraction>,
    log: Log,
) -> Result<Vec<Job>> {
    let by_id: HashMap<&str, &Passage> = passages.iter().map(|p| (p.id.as_str(), p)).collect();
    let mut jobs = Vec::new();
    match task.method {
        Method::Level2 => {
            for (pid, ex) in extractions {
                let Some(p) = by_id.get(pid.as_str()) else {
                    continue;
                };
                let concepts: Vec<String> = ex.concepts().into_iter().collect();
                if concepts.len() < 2 {
                    continue;
                }
                let id = format!("{}/{}", task.name, pid);
                let mut rng = ChaCha8Rng::seed_from_u64(stream_seed(cfg.sampling.seed, &id));
                let k = rng.random_range(2..=3).min(concepts.len());
                let picked = rand::seq::index::sample(&mut rng, concepts.len(), k);
                let mut v = BTreeMap::new();
                v.insert("passage", p.text.clone());
                v.insert("concepts", join(picked.iter().map(|i| concepts[i].clone())));
                jobs.push(make_job(gen, tmpl, id, vec![pid.clone()], &v)?);
            }
        }
        Method::Level3 => {
            let ids: Vec<&String> = extractions.keys().collect();
            let graph = ConceptGraph::build(extractions.values(), 1e-3);
            let sets: Vec<BTreeSet<String>> = extractions.values().map(|e| e.concepts()).collect();
            let walks = task.max_records.unwrap_or(extractions.len());
            for w in 0..walks {
                let id = format!("{}/walk-{w}", task.name);
                let mut rng = ChaCha8Rng::seed_from_u64(stream_seed(cfg.sampling.seed, &id));
                let Some((topics, concepts)) = graph.walk(&mut rng) else {
                    log(&format!("{id}: the walk hit a dead end; skipped"));
                    continue;
                };
                let near = closest(&concepts, &sets, 2);
                let sources: Vec<String> = near.iter().map(|&i| ids[i].clone()).collect();
                let text = sources
                    .iter()
                    .filter_map(|s| by_id.get(s.as_str()).map(|p| p.text.clone()))
                    .collect::<Vec<_>>()
                    .join("\n\n---\n\n");
                let mut v = BTreeMap::new();
                v.insert("passage", text);
                v.insert("concepts", join(concepts));
                v.insert("topics", join(topics));
                jobs.push(make_job(gen, tmpl, id, sources, &v)?);
            }
        }
        Method::Passage => unreachable!("passage tasks need no extraction"),
    }
    Ok(jobs)
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

    fn ex(pairs: &[(&str, &[&str])]) -> Extraction {
        Extraction {
            topics: pairs
                .iter()
                .map(|(t, cs)| (t.to_string(), cs.iter().map(|c| c.to_string()).collect()))
                .collect(),
        }
    }

    fn graph() -> ConceptGraph {
        // Topic "a" co-occurs with "b" in 3 passages, with "c" in 1, with "d" in 6.
        let mut docs = Vec::new();
        for _ in 0..3 {
            docs.push(ex(&[("a", &["x"]), ("b", &["y"])]));
        }
        docs.push(ex(&[("a", &["x"]), ("c", &["z"])]));
        for _ in 0..6 {
            docs.push(ex(&[("a", &["w"]), ("d", &["v", "u"])]));
        }
        ConceptGraph::build(&docs, 1e-3)
    }

    #[test]
    fn edge_weights_are_log_cooccurrence_counts() {
        let g = graph();
        let a = Node::Topic("a".into());
        assert_eq!(g.edges[&a][&Node::Topic("b".into())], 3);
        assert_eq!(g.edges[&a][&Node::Topic("d".into())], 6);
        assert_eq!(g.edges[&a][&Node::Concept("x".into())], 4);
        // softmax over w = ln(f + eps) is (f + eps) / Σ(f + eps): closed form.
        let t = g.transitions(&a, |n| matches!(n, Node::Topic(_)));
        let z = 3.001 + 1.001 + 6.001;
        for (n, p) in t {
            let f = g.edges[&a][n] as f64 + 1e-3;
            assert!((p - f / z).abs() < 1e-12);
        }
    }

    #[test]
    fn empirical_transitions_match_softmax() {
        let g = graph();
        let a = Node::Topic("a".into());
        let probs = g.transitions(&a, |n| matches!(n, Node::Topic(_)));
        let mut rng = ChaCha8Rng::seed_from_u64(11);
        let n = 200_000;
        let mut counts: BTreeMap<Node, usize> = BTreeMap::new();
        for _ in 0..n {
            let next = g
                .step(&a, |n| matches!(n, Node::Topic(_)), &mut rng)
                .unwrap();
            *counts.entry(next).or_default() += 1;
        }
        for (node, p) in probs {
            let freq = counts[node] as f64 / n as f64;
            // 5 binomial standard deviations.
            let sd = (p * (1.0 - p) / n as f64).sqrt();
            assert!((freq - p).abs() < 5.0 * sd, "{node:?}: {freq} vs {p}");
        }
    }

    #[test]
    fn walks_are_deterministic_under_a_seed_and_retrieval_is_jaccard() {
        let g = graph();
        let walk = |seed| {
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            (0..20).map(|_| g.walk(&mut rng)).collect::<Vec<_>>()
        };
        assert_eq!(walk(5), walk(5));
        assert_ne!(walk(5), walk(6));
        for w in walk(5) {
            let (ts, cs) = w.unwrap();
            assert!(!ts.is_empty() && !cs.is_empty());
        }
        let set = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<BTreeSet<_>>();
        let sets = vec![
            set(&["x", "y"]),
            set(&["v", "u", "w"]),
            set(&["x", "z"]),
            set(&["u"]),
        ];
        // Query {u, v}: Jaccard 2/3 with set 1, 1/2 with set 3, 0 with sets 0 and 2.
        assert_eq!(closest(&set(&["u", "v"]), &sets, 2), vec![1, 3]);
    }
}
