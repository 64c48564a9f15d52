//! SynthLLM level 3's concept graph: topic/concept co-occurrence edges weighted
//! `w = ln(freq + eps)`, softmax random walks over them, and Jaccard retrieval of the
//! passages closest to a walk.

use std::collections::{BTreeMap, BTreeSet};

use rand::Rng;
use rand_chacha::ChaCha8Rng;

use crate::synthllm::extraction::Extraction;

/// A node of the graph.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Node {
    Topic(String),
    Concept(String),
}

impl Node {
    /// The topic's or concept's text.
    pub fn name(&self) -> &str {
        match self {
            Node::Topic(name) | Node::Concept(name) => name,
        }
    }
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

    /// A number of steps drawn from `steps` (fewer at a dead end) from `cur` among
    /// neighbours satisfying `keep`, adding the name of every node reached to `visited`.
    fn wander(
        &self,
        cur: &mut Node,
        steps: std::ops::RangeInclusive<i32>,
        keep: impl Fn(&Node) -> bool + Copy,
        visited: &mut BTreeSet<String>,
        rng: &mut ChaCha8Rng,
    ) {
        for _ in 0..rng.random_range(steps) {
            match self.step(cur, keep, rng) {
                Some(n) => *cur = n,
                None => break,
            }
            visited.insert(cur.name().to_string());
        }
    }

    /// SynthLLM's walk: a uniform start topic, 1–2 steps among topics, one step onto a
    /// concept, 3–4 steps among concepts. Returns the visited topics and concepts.
    pub fn walk(&self, rng: &mut ChaCha8Rng) -> Option<(BTreeSet<String>, BTreeSet<String>)> {
        let topics = self.topics();
        if topics.is_empty() {
            return None;
        }
        let mut cur = topics[rng.random_range(0..topics.len())].clone();
        let is_topic = |n: &Node| matches!(n, Node::Topic(_));
        let is_concept = |n: &Node| matches!(n, Node::Concept(_));
        let mut ts = BTreeSet::from([cur.name().to_string()]);
        self.wander(&mut cur, 1..=2, is_topic, &mut ts, rng);
        cur = self.step(&cur, is_concept, rng)?;
        let mut cs = BTreeSet::from([cur.name().to_string()]);
        self.wander(&mut cur, 3..=4, is_concept, &mut cs, rng);
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

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

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
