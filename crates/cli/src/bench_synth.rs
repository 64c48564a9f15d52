//! `synthscale bench synth`: generated tokens/s of the batched decoder at batch 1 and at
//! larger batches, with candle-transformers' quantized Llama at batch 1 as the peer.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use serde::Serialize;
use synthscale_synth::bench::{decode_rate, quantized_peer_rate};
use synthscale_synth::llama::Llama;

#[derive(Args, Debug)]
pub struct BenchSynthArgs {
    /// A GGUF generator (scripts/fetch-generator.sh).
    #[arg(
        long,
        default_value = "target/generator/SmolLM2-135M-Instruct.Q4_1.gguf"
    )]
    pub model: PathBuf,
    /// Batch sizes to time, comma-separated.
    #[arg(long, default_value = "1,4,8,16,32,64", value_delimiter = ',')]
    pub batches: Vec<usize>,
    /// Prompt tokens per sequence (prefilled, not timed).
    #[arg(long, default_value_t = 128)]
    pub prompt_tokens: usize,
    /// Timed decode steps.
    #[arg(long, default_value_t = 16)]
    pub steps: usize,
    /// Skip the quantized_llama peer.
    #[arg(long)]
    pub no_peer: bool,
    /// `cpu`, or `cuda` (GPU 0; a binary built with --features cuda): where our decoder
    /// runs. The peer always runs on the CPU.
    #[arg(long, default_value = "cpu")]
    pub device: String,
}

#[derive(Serialize)]
struct Figures {
    model: String,
    device: String,
    prompt_tokens: usize,
    steps: usize,
    threads: usize,
    tokens_per_s: Vec<(usize, f64)>,
    batch1_tokens_per_s: f64,
    best_batch: usize,
    best_tokens_per_s: f64,
    best_over_batch1: f64,
    peer_quantized_llama_batch1_tokens_per_s: Option<f64>,
}

pub fn run(a: &BenchSynthArgs) -> anyhow::Result<ExitCode> {
    let mut batches = a.batches.clone();
    if !batches.contains(&1) {
        batches.insert(0, 1);
    }
    if batches.contains(&0) || a.steps == 0 || a.prompt_tokens == 0 {
        return Err(crate::util::BadInput(
            "--batches, --steps and --prompt-tokens must be at least 1".into(),
        )
        .into());
    }
    let (model, _) = Llama::from_gguf(&a.model)?;
    let model = match a.device.as_str() {
        "cpu" => model,
        "cuda" => {
            let dev =
                synthscale_train::trainer::open_device(synthscale_train::config::DeviceSpec::Cuda)
                    .map_err(|e| crate::util::BadInput(format!("--device cuda: {e}")))?;
            model.to_device(&dev)?
        }
        other => {
            return Err(crate::util::BadInput(format!(
                "--device {other:?}: expected \"cpu\" or \"cuda\""
            ))
            .into())
        }
    };
    let mut rates = Vec::new();
    for &b in &batches {
        let r = decode_rate(&model, b, a.prompt_tokens, a.steps)?;
        eprintln!("[bench synth] batch {b}: {r:.1} generated tokens/s");
        rates.push((b, r));
    }
    let b1 = rates.iter().find(|r| r.0 == 1).map(|r| r.1).unwrap_or(0.0);
    let best = rates
        .iter()
        .cloned()
        .fold((1, 0.0), |acc, r| if r.1 > acc.1 { r } else { acc });
    let peer = if a.no_peer {
        None
    } else {
        drop(model);
        Some(quantized_peer_rate(&a.model, a.prompt_tokens, a.steps)?)
    };
    let f = Figures {
        model: a.model.display().to_string(),
        device: a.device.clone(),
        prompt_tokens: a.prompt_tokens,
        steps: a.steps,
        threads: rayon::current_num_threads(),
        tokens_per_s: rates,
        batch1_tokens_per_s: b1,
        best_batch: best.0,
        best_tokens_per_s: best.1,
        best_over_batch1: best.1 / b1,
        peer_quantized_llama_batch1_tokens_per_s: peer,
    };
    println!("{}", serde_json::to_string(&f)?);
    Ok(ExitCode::SUCCESS)
}
