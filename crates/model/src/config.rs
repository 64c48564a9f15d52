//! The decoder's shape: config, presets, the size rule (parameters → shape), and exact
//! parameter and FLOP counts.

use serde::{Deserialize, Serialize};

use crate::error::{ModelError, Result};

/// A Llama-style decoder: token embedding, `n_layers` pre-norm blocks (RMSNorm, rotary
/// causal attention with optional grouped KV heads, RMSNorm, SwiGLU MLP), a final RMSNorm
/// and an output head, tied to the embedding or not. No biases.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ModelConfig {
    /// Vocabulary size (rows of the embedding); set from the tokenizer.
    pub vocab_size: usize,
    /// Width of the residual stream.
    pub d_model: usize,
    pub n_layers: usize,
    /// Query heads; `d_model / n_heads` is the head dimension.
    pub n_heads: usize,
    /// Key/value heads; equal to `n_heads` for plain multi-head attention, a divisor of it
    /// for grouped-query attention.
    pub n_kv_heads: usize,
    /// Hidden width of the SwiGLU MLP (Llama: 8/3 · d_model, rounded up to a multiple of 32).
    pub d_ff: usize,
    /// Longest sequence the rotary tables cover.
    pub max_seq_len: usize,
    /// Rotary base (Llama and GPT-NeoX use 10,000).
    pub rope_theta: f64,
    /// RMSNorm epsilon (Llama uses 1e-5).
    pub norm_eps: f64,
    /// Share the embedding matrix with the output head (GPT-2 does; Llama does not).
    pub tie_embeddings: bool,
    /// Standard deviation of the normal initialisation (GPT-2 and OLMo use 0.02); output
    /// projections of each block are scaled by 1/sqrt(2·n_layers) as in GPT-2.
    pub init_std: f64,
}

impl Default for ModelConfig {
    fn default() -> Self {
        ModelConfig {
            vocab_size: 50257,
            d_model: 128,
            n_layers: 5,
            n_heads: 4,
            n_kv_heads: 4,
            d_ff: swiglu_width(128),
            max_seq_len: 1024,
            rope_theta: 10_000.0,
            norm_eps: 1e-5,
            tie_embeddings: true,
            init_std: 0.02,
        }
    }
}

/// Llama's SwiGLU width: 8/3 · d, rounded up to a multiple of 32 (keeps 12·d² parameters
/// per block, as a 4·d MLP with two matrices would).
pub fn swiglu_width(d_model: usize) -> usize {
    (8 * d_model).div_ceil(3).div_ceil(32) * 32
}

/// A named shape of the ladder: `(name, d_model, n_layers, n_heads)`.
///
/// Names are the non-embedding parameter counts. Widths follow published ladders: GPT-2 small
/// (768 × 12) and medium (1024 × 24), OLMo-1B's 2048 × 16, and below those a width/depth
/// ratio of about 32–64, inside the range where Kaplan et al. (2020, fig. 5) find loss
/// insensitive to shape; head dimension 32 below d = 256, then 64, then 128 at d = 2048.
pub const PRESETS: &[(&str, usize, usize, usize)] = &[
    ("0.1M", 64, 2, 2),
    ("0.3M", 96, 3, 3),
    ("1M", 128, 5, 4),
    ("3M", 192, 7, 6),
    ("10M", 320, 8, 5),
    ("30M", 512, 9, 8),
    ("85M", 768, 12, 12),
    ("300M", 1024, 24, 16),
    ("800M", 2048, 16, 16),
];

/// Largest accepted dimensions, for `validate`: far past any model this harness trains
/// (800M is 2048 × 16), and small enough that parameter and FLOP counts cannot overflow
/// u64. Whether a shape fits the device's memory is the trainer's bound
/// (`synthscale_train::bounds`), applied by `train` and `sweep plan` alike.
pub struct MaxShape {
    pub vocab_size: usize,
    pub d_model: usize,
    pub n_layers: usize,
    pub d_ff: usize,
    pub max_seq_len: usize,
}

pub const MAX_SHAPE: MaxShape = MaxShape {
    vocab_size: 1 << 24,
    d_model: 1 << 17,
    n_layers: 1 << 12,
    d_ff: 1 << 19,
    max_seq_len: 1 << 22,
};

impl ModelConfig {
    /// A preset by name, with the given vocabulary.
    pub fn preset(name: &str, vocab_size: usize) -> Result<ModelConfig> {
        let &(_, d, l, h) = PRESETS.iter().find(|p| p.0 == name).ok_or_else(|| {
            ModelError::Config(format!(
                "no preset {name:?}; presets are {}",
                PRESETS.iter().map(|p| p.0).collect::<Vec<_>>().join(", ")
            ))
        })?;
        Ok(ModelConfig::from_shape(d, l, h, vocab_size))
    }

    /// A shape with Llama's defaults for everything else.
    pub fn from_shape(d_model: usize, n_layers: usize, n_heads: usize, vocab_size: usize) -> Self {
        ModelConfig {
            vocab_size,
            d_model,
            n_layers,
            n_heads,
            n_kv_heads: n_heads,
            d_ff: swiglu_width(d_model),
            ..ModelConfig::default()
        }
    }

    /// The size rule: the shape whose non-embedding parameter count is closest to `target`.
    ///
    /// A block holds about 12·d² parameters (4·d² attention, 8·d² SwiGLU), so N ≈ 12·L·d².
    /// With width/depth ratio r = 64 (GPT-2 small's), L = (N / (12·r²))^(1/3); depths
    /// L−1, L, L+1 are tried, each with the width (a multiple of the head dimension) that
    /// comes closest to N, and the closest count wins.
    pub fn for_params(target: u64, vocab_size: usize) -> Result<ModelConfig> {
        if !(50_000..=100_000_000_000).contains(&target) {
            return Err(ModelError::Config(format!(
                "target of {target} non-embedding parameters is outside 5e4..=1e11 (below that, shapes are too coarse to hit a target)"
            )));
        }
        let n = target as f64;
        let l0 = (n / (12.0 * 64.0 * 64.0)).cbrt().round().max(1.0) as usize;
        let mut best: Option<(f64, ModelConfig)> = None;
        for l in [l0.saturating_sub(1).max(1), l0, l0 + 1] {
            let d_raw = (n / (12.0 * l as f64)).sqrt();
            let hd = head_dim_for(d_raw as usize);
            for d in [
                ((d_raw / hd as f64).floor() as usize).max(1) * hd,
                ((d_raw / hd as f64).ceil() as usize).max(1) * hd,
            ] {
                let hd = head_dim_for(d).min(d);
                if d % hd != 0 {
                    continue;
                }
                let c = ModelConfig::from_shape(d, l, d / hd, vocab_size);
                let err = (c.non_embedding_params() as f64 / n).ln().abs();
                if best.as_ref().is_none_or(|(e, _)| err < *e) {
                    best = Some((err, c));
                }
            }
        }
        Ok(best.expect("at least one candidate").1)
    }

    /// Checks that the shape is consistent and within [`MAX_SHAPE`].
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(ModelError::Config(m));
        if self.vocab_size == 0 || self.d_model == 0 || self.n_layers == 0 || self.d_ff == 0 {
            return bad("vocab_size, d_model, n_layers and d_ff must be positive".into());
        }
        for (name, v, max) in [
            ("vocab_size", self.vocab_size, MAX_SHAPE.vocab_size),
            ("d_model", self.d_model, MAX_SHAPE.d_model),
            ("n_layers", self.n_layers, MAX_SHAPE.n_layers),
            ("d_ff", self.d_ff, MAX_SHAPE.d_ff),
            ("max_seq_len", self.max_seq_len, MAX_SHAPE.max_seq_len),
        ] {
            if v > max {
                return bad(format!("{name} = {v} is above the largest accepted, {max}"));
            }
        }
        if self.n_heads == 0 || self.d_model % self.n_heads != 0 {
            return bad(format!(
                "d_model = {} is not divisible by n_heads = {}",
                self.d_model, self.n_heads
            ));
        }
        if self.head_dim() % 2 != 0 {
            return bad(format!(
                "head dimension d_model / n_heads = {} must be even for rotary positions",
                self.head_dim()
            ));
        }
        if self.n_kv_heads == 0 || self.n_heads % self.n_kv_heads != 0 {
            return bad(format!(
                "n_heads = {} is not divisible by n_kv_heads = {}",
                self.n_heads, self.n_kv_heads
            ));
        }
        if self.max_seq_len == 0 {
            return bad("max_seq_len must be positive".into());
        }
        if !(self.rope_theta > 0.0 && self.norm_eps > 0.0 && self.init_std > 0.0) {
            return bad("rope_theta, norm_eps and init_std must be positive".into());
        }
        Ok(())
    }

    pub fn head_dim(&self) -> usize {
        self.d_model / self.n_heads
    }

    /// Parameters of one block.
    pub fn block_params(&self) -> u64 {
        let d = self.d_model as u64;
        let kv = (self.n_kv_heads * self.head_dim()) as u64;
        let attn = d * d + 2 * d * kv + d * d; // q, k, v, o
        let mlp = 3 * d * self.d_ff as u64; // gate, up, down
        attn + mlp + 2 * d // two RMSNorm gains
    }

    /// Every parameter, counting a tied embedding once.
    pub fn params(&self) -> u64 {
        let vd = (self.vocab_size * self.d_model) as u64;
        let head = if self.tie_embeddings { 0 } else { vd };
        vd + head + self.non_embedding_params()
    }

    /// Parameters outside the vocabulary matrices (the embedding and an untied output
    /// head), as Kaplan et al. (2020) count N.
    pub fn non_embedding_params(&self) -> u64 {
        self.n_layers as u64 * self.block_params() + self.d_model as u64
    }

    /// Training FLOPs per token at sequence length `seq_len`: 6 per weight of every matrix
    /// multiply (forward 2, backward 4; the output head included, embedding lookups and
    /// norms not), plus attention's score and value products, 12·L·T·d_attn (forward
    /// 2·T·d_attn each, ×3 for training, causal masking not discounted), the convention of
    /// PaLM (Chowdhery et al. 2022, appendix B) for MFU.
    pub fn flops_per_token(&self, seq_len: usize) -> u64 {
        let d = self.d_model as u64;
        let kv = (self.n_kv_heads * self.head_dim()) as u64;
        let per_block = 2 * d * d + 2 * d * kv + 3 * d * self.d_ff as u64;
        let matmul = self.n_layers as u64 * per_block + (self.vocab_size as u64) * d;
        6 * matmul + 12 * self.n_layers as u64 * seq_len as u64 * d
    }
}

fn head_dim_for(d: usize) -> usize {
    match d {
        0..256 => 32,
        256..2048 => 64,
        _ => 128,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gpt2_small_shape_counts_like_the_published_model() {
        // Oracle: GPT-2 small (768 × 12, vocab 50257, tied) has 124.4M parameters; the same
        // shape with a SwiGLU MLP of width 2048 (= 8/3·768) holds 4·768² (attention)
        // + 3·768·2048 (MLP) + 2·768 (norm gains) per block, the same 12·d² as GPT-2's.
        let c = ModelConfig::preset("85M", 50257).unwrap();
        assert_eq!(c.d_ff, 2048);
        assert_eq!(c.block_params(), 4 * 768 * 768 + 3 * 768 * 2048 + 2 * 768);
        assert_eq!(c.non_embedding_params(), 12 * c.block_params() + 768);
        assert_eq!(c.params(), 50257 * 768 + c.non_embedding_params());
        // 85,0xx,xxx non-embedding + 38.6M embedding = 123.6M, GPT-2 small's class.
        assert!(
            (123_000_000..125_000_000).contains(&c.params()),
            "{}",
            c.params()
        );
    }

    #[test]
    fn presets_are_named_by_their_non_embedding_size() {
        for &(name, ..) in PRESETS {
            let c = ModelConfig::preset(name, 8192).unwrap();
            c.validate().unwrap();
            let want: f64 = name.trim_end_matches('M').parse::<f64>().unwrap() * 1e6;
            let got = c.non_embedding_params() as f64;
            assert!((got / want - 1.0).abs() < 0.15, "{name}: {got}");
        }
    }

    #[test]
    fn size_rule_lands_within_a_few_percent_of_the_target() {
        for target in [
            50_000u64,
            100_000,
            1_000_000,
            5_000_000,
            30_000_000,
            1_000_000_000,
        ] {
            let c = ModelConfig::for_params(target, 8192).unwrap();
            c.validate().unwrap();
            let ratio = c.non_embedding_params() as f64 / target as f64;
            assert!(
                (0.75..1.3).contains(&ratio),
                "{target}: {c:?} ratio {ratio}"
            );
        }
        assert!(ModelConfig::for_params(10, 8192).is_err());
    }

    #[test]
    fn flops_follow_the_closed_form() {
        // Oracle: with tied embeddings and n_kv = n_heads, the PaLM count is
        // 6·(L·(4d² + 3·d·F) + V·d) + 12·L·T·d.
        let c = ModelConfig::from_shape(256, 4, 4, 8192);
        let (d, l, f, v, t) = (256u64, 4u64, c.d_ff as u64, 8192u64, 256u64);
        assert_eq!(
            c.flops_per_token(256),
            6 * (l * (4 * d * d + 3 * d * f) + v * d) + 12 * l * t * d
        );
        let mut g = c.clone();
        g.n_kv_heads = 2;
        assert!(g.flops_per_token(256) < c.flops_per_token(256));
        assert!(g.params() < c.params());
    }

    #[test]
    fn inconsistent_shapes_are_refused() {
        let mut c = ModelConfig::from_shape(100, 2, 3, 50);
        assert!(c
            .validate()
            .unwrap_err()
            .to_string()
            .contains("divisible by n_heads"));
        c = ModelConfig::from_shape(96, 2, 4, 50);
        c.n_kv_heads = 3;
        assert!(c.validate().unwrap_err().to_string().contains("n_kv_heads"));
        // d_model = 1,000,000 (issue 12) is refused before any count could overflow.
        c = ModelConfig::from_shape(1_000_000, 2, 2, 50);
        let msg = c.validate().unwrap_err().to_string();
        assert!(
            msg.contains("d_model = 1000000") && msg.contains("131072"),
            "{msg}"
        );
    }
}
