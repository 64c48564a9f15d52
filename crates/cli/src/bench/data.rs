//! `synthscale bench data`: tokenization (on all cores and on one), `data prepare` end to
//! end and the mixture sampler, on a manifest's sources.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::Context;
use clap::Args;
use serde::Serialize;
use synthscale_data::source::for_each_document;
use synthscale_data::{prepare, DataDir, Mixture, MixtureSampler, PrepareOptions, SamplerConfig};

use crate::manifest::LoadedManifest;
use crate::util::parse_count;

#[derive(Args, Debug)]
pub struct BenchDataArgs {
    /// Manifest whose [data] sources and tokenizer are measured.
    #[arg(long, default_value = "experiments/quickstart.toml")]
    pub manifest: PathBuf,
    /// Tokens the sampler serves while timed.
    #[arg(long, default_value = "200M", value_parser = parse_count)]
    pub sampler_tokens: u64,
    /// Sampler batch size (sequences).
    #[arg(long, default_value_t = 16)]
    pub batch_size: usize,
    /// Sampler sequence length [default: the manifest's data.seq_len].
    #[arg(long)]
    pub seq_len: Option<usize>,
}

#[derive(Serialize)]
struct DataBench {
    bench: &'static str,
    manifest: String,
    threads: usize,
    documents: u64,
    text_mb: f64,
    tokens: u64,
    tokenize_s: f64,
    tokenize_mb_per_s: f64,
    tokenize_tokens_per_s: f64,
    tokenize_1thread_tokens_per_s: f64,
    prepare_s: f64,
    prepare_mb_per_s: f64,
    sampler_batch: String,
    sampler_tokens: u64,
    sampler_s: f64,
    sampler_tokens_per_s: f64,
}

pub fn run(a: &BenchDataArgs) -> anyhow::Result<ExitCode> {
    let m = LoadedManifest::load(&a.manifest)?;
    let cfg = &m.manifest.data;
    let scratch = tempfile::tempdir().context("creating a scratch directory")?;
    let out = scratch.path().join("data");

    // 1. `data prepare` end to end: read, decompress, parse, split, tokenize, write.
    let t = Instant::now();
    prepare(cfg, &m.path, &out, &PrepareOptions::default())?;
    let prepare_s = t.elapsed().as_secs_f64();
    let data = DataDir::open(&out)?;
    let tok = data.tokenizer()?;

    // 2. Tokenization alone, on text already in memory.
    let mut texts = Vec::new();
    for src in &cfg.sources {
        for_each_document(src, |d| {
            texts.push(d.text);
            Ok(())
        })?;
    }
    let bytes: u64 = texts.iter().map(|t| t.len() as u64).sum();
    let t = Instant::now();
    let ids = tok.encode_many(&texts)?;
    let tokenize_s = t.elapsed().as_secs_f64();
    let tokens: u64 = ids.iter().map(|v| v.len() as u64).sum();
    drop(ids);
    let one = rayon::ThreadPoolBuilder::new().num_threads(1).build()?;
    let sample = &texts[..texts.len().div_ceil(4)];
    let t = Instant::now();
    let sample_tokens: u64 = one
        .install(|| tok.encode_many(sample))?
        .iter()
        .map(|v| v.len() as u64)
        .sum();
    let one_s = t.elapsed().as_secs_f64();

    // 3. The sampler: equal weights over every source, streamed for `sampler_tokens`.
    let n = data.meta().sources.len() as f64;
    let mut mixture = Mixture {
        weights: data
            .meta()
            .sources
            .iter()
            .map(|s| (s.name.clone(), 1.0 / n))
            .collect(),
    };
    let drift: f64 = 1.0 - mixture.weights.iter().map(|w| w.1).sum::<f64>();
    mixture.weights[0].1 += drift;
    let seq_len = a.seq_len.unwrap_or(data.meta().seq_len);
    let scfg = SamplerConfig {
        seq_len,
        batch_size: a.batch_size,
        token_budget: a.sampler_tokens,
        seed: 0,
    };
    let sampler = MixtureSampler::new(&data, &mixture, scfg, Path::new("<bench>"))?;
    let t = Instant::now();
    let mut checksum = 0u64;
    for b in sampler.stream(0) {
        checksum = checksum.wrapping_add(b.inputs[b.inputs.len() - 1] as u64);
    }
    let sampler_s = t.elapsed().as_secs_f64();
    std::hint::black_box(checksum);

    let r = DataBench {
        bench: "data",
        manifest: m.path.display().to_string(),
        threads: rayon::current_num_threads(),
        documents: texts.len() as u64,
        text_mb: bytes as f64 / 1e6,
        tokens,
        tokenize_s,
        tokenize_mb_per_s: bytes as f64 / 1e6 / tokenize_s,
        tokenize_tokens_per_s: tokens as f64 / tokenize_s,
        tokenize_1thread_tokens_per_s: sample_tokens as f64 / one_s,
        prepare_s,
        prepare_mb_per_s: bytes as f64 / 1e6 / prepare_s,
        sampler_batch: format!("{}x{}", a.batch_size, seq_len),
        sampler_tokens: sampler.tokens(),
        sampler_s,
        sampler_tokens_per_s: sampler.tokens() as f64 / sampler_s,
    };
    println!("{}", serde_json::to_string(&r)?);
    Ok(ExitCode::SUCCESS)
}
