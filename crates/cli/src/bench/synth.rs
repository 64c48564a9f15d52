//! `synthscale bench synth`: generated tokens/s of the batched decoder at batch 1 and at
//! larger batches, with candle-transformers' quantized Llama at batch 1 as the peer; with
//! `--base-url`, tokens/s through an OpenAI-compatible server at several concurrencies,
//! with our own generator on the same prompts at the same batch sizes as the peer.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use serde::Serialize;
use synthscale_synth::bench::{decode_rate, quantized_peer_rate};
use synthscale_synth::llama::Llama;

#[derive(Args, Debug)]
pub struct BenchSynthArgs {
    /// A GGUF generator (scripts/fetch-generator.sh); with `--base-url`, the model id the
    /// server serves.
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
    /// Time an OpenAI-compatible server instead (its API root, `http://127.0.0.1:8000/v1`).
    #[arg(long)]
    pub base_url: Option<String>,
    /// With `--base-url`: requests in flight, comma-separated.
    #[arg(long, default_value = "1,4,16", value_delimiter = ',')]
    pub concurrency: Vec<usize>,
    /// With `--base-url`: new tokens per request.
    #[arg(long, default_value_t = 128)]
    pub max_tokens: usize,
    /// With `--base-url`: the environment variable holding the API key.
    #[arg(long)]
    pub api_key_env: Option<String>,
    /// With `--base-url`: the GGUF our own generator runs as the peer (`--no-peer` skips it).
    #[arg(
        long,
        default_value = "target/generator/SmolLM2-135M-Instruct.Q4_1.gguf"
    )]
    pub peer_model: PathBuf,
}

#[derive(Serialize)]
struct ServerFigures {
    base_url: String,
    model: String,
    max_tokens: usize,
    /// (concurrency, requests, generated tokens, tokens/s) through the server.
    server: Vec<(usize, usize, u64, f64)>,
    /// (batch, requests, generated tokens, tokens/s) of our generator on the same prompts.
    peer_synthscale_generator: Vec<(usize, usize, u64, f64)>,
    peer_model: Option<String>,
    threads: usize,
}

fn run_server(a: &BenchSynthArgs, base_url: &str) -> anyhow::Result<ExitCode> {
    use synthscale_synth::backend::{load_generator, Backend};
    use synthscale_synth::bench::{local_rate, server_rate};
    use synthscale_synth::config::{Api, GeneratorConfig, GeneratorKind};
    if a.concurrency.is_empty() || a.concurrency.contains(&0) || a.max_tokens == 0 {
        return Err(crate::util::BadInput(
            "--concurrency and --max-tokens must be at least 1".into(),
        )
        .into());
    }
    let mut cfg = GeneratorConfig {
        kind: GeneratorKind::Openai,
        model: a.model.clone(),
        tokenizer: None,
        base_url: Some(base_url.to_string()),
        api_key_env: a.api_key_env.clone(),
        api: Api::Chat,
        max_concurrency: 1,
        request_timeout_s: 600.0,
        max_retries: 2,
        retry_base_s: 1.0,
        name: None,
        batch_size: 1,
        device: "cpu".into(),
    };
    let here = std::path::Path::new("--base-url");
    let client = synthscale_synth::server::ServerClient::new(&cfg, here)?;
    client.check_model(here)?;
    // Enough requests that every concurrency keeps its slots busy: twice the slots, at least 8.
    let requests = |c: usize| (2 * c).max(8);
    let mut server = Vec::new();
    for &c in &a.concurrency {
        let (rate, tokens) = server_rate(&client, requests(c), c, a.max_tokens)?;
        eprintln!("[bench synth] server, concurrency {c}: {rate:.1} generated tokens/s");
        server.push((c, requests(c), tokens, rate));
    }
    let mut peer = Vec::new();
    if !a.no_peer {
        cfg.kind = GeneratorKind::Local;
        cfg.model = a.peer_model.clone();
        cfg.base_url = None;
        cfg.api_key_env = None;
        let mut loaded = load_generator(&cfg, Default::default(), here)?;
        if let Backend::Local { generator, format } = &mut loaded.backend {
            for &c in &a.concurrency {
                let (rate, tokens) = local_rate(generator, *format, requests(c), c, a.max_tokens)?;
                eprintln!(
                    "[bench synth] synthscale generator, batch {c}: {rate:.1} generated tokens/s"
                );
                peer.push((c, requests(c), tokens, rate));
            }
        }
    }
    let f = ServerFigures {
        base_url: base_url.to_string(),
        model: a.model.display().to_string(),
        max_tokens: a.max_tokens,
        server,
        peer_synthscale_generator: peer,
        peer_model: (!a.no_peer).then(|| a.peer_model.display().to_string()),
        threads: rayon::current_num_threads(),
    };
    println!("{}", serde_json::to_string(&f)?);
    Ok(ExitCode::SUCCESS)
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
    if let Some(url) = &a.base_url {
        return run_server(a, url);
    }
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
