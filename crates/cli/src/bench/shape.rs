//! The decoder shape a bench builds (`--d-model`, `--layers`, …), the random tokens it
//! trains on, and the shape and batch as its JSON line reports them.

use clap::Args;
use serde::Serialize;
use synthscale_model::ModelConfig;

/// `n` token ids below `vocab` from a xorshift64 stream with state `x`.
pub fn random_tokens(x: &mut u64, n: usize, vocab: usize) -> Vec<u32> {
    (0..n)
        .map(|_| {
            *x ^= *x << 13;
            *x ^= *x >> 7;
            *x ^= *x << 17;
            (*x % vocab as u64) as u32
        })
        .collect()
}

/// The decoder shape a bench builds (defaults: the ~5M-parameter model of
/// REFERENCE.md §4, with SwiGLU).
#[derive(Args, Debug, Clone)]
pub struct ShapeArgs {
    #[arg(long, default_value_t = 256)]
    pub d_model: usize,
    #[arg(long, default_value_t = 4)]
    pub layers: usize,
    #[arg(long, default_value_t = 4)]
    pub heads: usize,
    #[arg(long, default_value_t = 8192)]
    pub vocab: usize,
    #[arg(long, default_value_t = 256)]
    pub seq_len: usize,
}

impl ShapeArgs {
    pub fn config(&self) -> anyhow::Result<ModelConfig> {
        let mut cfg = ModelConfig::from_shape(self.d_model, self.layers, self.heads, self.vocab);
        cfg.max_seq_len = self.seq_len;
        cfg.validate()?;
        Ok(cfg)
    }
}

/// A model's shape and batch as a bench's JSON line reports them (flattened into it).
#[derive(Serialize)]
pub struct ShapeReport {
    d_model: usize,
    layers: usize,
    heads: usize,
    vocab: usize,
    seq_len: usize,
    batch: usize,
}

impl ShapeReport {
    pub fn new(cfg: &ModelConfig, seq_len: usize, batch: usize) -> Self {
        ShapeReport {
            d_model: cfg.d_model,
            layers: cfg.n_layers,
            heads: cfg.n_heads,
            vocab: cfg.vocab_size,
            seq_len,
            batch,
        }
    }
}
