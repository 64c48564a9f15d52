//! SynthLLM levels 2 and 3 (Qin et al. 2025, REFERENCE.md §1): topic and concept
//! extraction per passage (parsed leniently; a malformed answer is logged and skipped),
//! the topic/concept co-occurrence graph with `w = log(freq + eps)` edges, softmax random
//! walks over it, and Jaccard retrieval of the two passages closest to a walk.
//!
//! - [`extraction`]: an extraction answer, parsed and grounded in its passage;
//! - [`graph`]: the concept graph, its walks and the retrieval of the closest passages;
//! - this module: the extraction run over every passage and the level 2/3 prompts.

pub mod extraction;
pub mod graph;

use std::collections::{BTreeMap, BTreeSet, HashMap};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::backend::LoadedGenerator;
use crate::config::{Method, SynthConfig, TaskConfig};
use crate::error::Result;
use crate::generate::stream_seed;
use crate::job::{generate_jobs, make_job, passage_jobs, record_maker, Job, Log};
use crate::passages::Passage;
use crate::prompt::Template;
use crate::record::read_raw;

pub use extraction::{parse_extraction, Extraction, ExtractionSummary};
pub use graph::{closest, ConceptGraph, Node};

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
    let jobs = passage_jobs(gen, tmpl, "extract", passages)?;
    // Named by the template, not the task: level 2 and level 3 tasks with one extraction
    // template (and the same passages) share one extraction run.
    let raw = cfg
        .work_dir
        .join(format!("extract-{}.raw.jsonl", &tmpl.sha256[..12]));
    let make = record_maker(&cfg.sampling, "extraction", "extract", tmpl, gen);
    generate_jobs(
        &raw,
        &jobs,
        gen,
        make.as_ref(),
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
