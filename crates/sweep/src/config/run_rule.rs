//! The run rule: how a size and a budget become optimizer settings (learning rate, batch,
//! micro-batch, schedule, evaluations and checkpoints).

use serde::{Deserialize, Serialize};
use synthscale_train::config::{DecayShape, Schedule};

/// How a size and a budget become optimizer settings.
///
/// Defaults follow the hyper-parameter scaling law of DeepSeek LLM (DeepSeek-AI 2024,
/// §3.1, fitted on models up to 3e20 FLOPs): `lr = 0.3118 · C^−0.1250` and
/// `B = 0.2920 · C^0.3271` tokens, with C = M·D and M the non-embedding training FLOPs per
/// token (here: our FLOP count without the output head).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RunRule {
    /// A fixed peak learning rate for every run; when absent, the power law below.
    pub lr: Option<f64>,
    /// The law's coefficient (0.3118).
    pub lr_coefficient: f64,
    /// The law's exponent on C (−0.1250).
    pub lr_exponent: f64,
    /// A fixed batch in tokens per step; when absent, the power law below, rounded to a
    /// power of two sequences.
    pub batch_tokens: Option<u64>,
    /// The batch law's coefficient, in tokens (0.2920).
    pub batch_coefficient: f64,
    /// The batch law's exponent on C (0.3271).
    pub batch_exponent: f64,
    /// The batch shrinks (by powers of two) until a run has at least this many steps, so
    /// that the schedule has a shape even at the smallest budgets.
    pub min_steps: u64,
    /// Sequences per forward/backward pass (bounded by memory, not by the rule): a
    /// number, or `"auto"`, the largest the memory model fits in 90% of the device's memory.
    pub micro_batch_size: MicroBatch,
    /// The learning-rate schedule of every run (`"cosine"`, or `"wsd"`: warm-up, stable,
    /// decay).
    pub schedule: Schedule,
    /// Budget ladders (Hägele et al. 2024): per size, mixture and seed, one constant-LR
    /// trunk to the largest budget's cooldown start and one WSD cooldown branch per budget
    /// from the trunk's checkpoint there. Implies `schedule = "wsd"`; every budget of a
    /// ladder takes the batch, peak lr and warm-up the rule gives its largest budget.
    pub ladder: bool,
    /// WSD and ladders: the fraction of each run's steps spent cooling down, in (0, 1).
    pub decay_fraction: f64,
    /// WSD and ladders: the cooldown's shape, `"linear"` or `"1-sqrt"`.
    pub decay_shape: DecayShape,
    /// Floor of the decay as a fraction of lr (nanoGPT: lr/10, per Chinchilla).
    pub min_lr_ratio: f64,
    /// Warm-up as a fraction of the steps (at least one step).
    pub warmup_fraction: f64,
    /// AdamW's decoupled weight decay.
    pub weight_decay: f64,
    /// The global gradient norm is clipped to this (0: no clipping).
    pub grad_clip: f64,
    /// Validation points per run, evenly spaced (the last at the end): the intermediate
    /// points let `collect` report a loss curve, the final one is the run's result.
    pub evals_per_run: u64,
    /// Tokens per validation domain at each evaluation.
    pub eval_max_tokens: u64,
    /// Checkpoints per run, evenly spaced: what a preempted run loses at most.
    pub checkpoints_per_run: u64,
}

/// A run rule's micro-batch: fixed, or chosen per run from the memory model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MicroBatch {
    Fixed(usize),
    /// The largest micro-batch (a divisor of the batch's sequences) whose step the memory
    /// model (`synthscale_train::memory`) fits in [`MicroBatch::AUTO_SHARE`] of the
    /// device's memory.
    Auto,
}

impl MicroBatch {
    /// The share of the device's memory an automatic micro-batch may fill: 10% headroom
    /// for the allocator's fragmentation and the runtime's own buffers.
    pub const AUTO_SHARE: f64 = 0.9;
}

impl Serialize for MicroBatch {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        match self {
            MicroBatch::Fixed(n) => s.serialize_u64(*n as u64),
            MicroBatch::Auto => s.serialize_str("auto"),
        }
    }
}

impl<'de> Deserialize<'de> for MicroBatch {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = MicroBatch;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a number of sequences or \"auto\"")
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> std::result::Result<MicroBatch, E> {
                usize::try_from(v)
                    .map(MicroBatch::Fixed)
                    .map_err(|_| E::custom(format!("{v} is not a number of sequences")))
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> std::result::Result<MicroBatch, E> {
                usize::try_from(v)
                    .map(MicroBatch::Fixed)
                    .map_err(|_| E::custom(format!("{v} is too large")))
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> std::result::Result<MicroBatch, E> {
                match v {
                    "auto" => Ok(MicroBatch::Auto),
                    _ => Err(E::custom(format!(
                        "{v:?}: expected a number of sequences or \"auto\""
                    ))),
                }
            }
        }
        d.deserialize_any(V)
    }
}

impl Default for RunRule {
    fn default() -> Self {
        RunRule {
            lr: None,
            lr_coefficient: 0.3118,
            lr_exponent: -0.1250,
            batch_tokens: None,
            batch_coefficient: 0.2920,
            batch_exponent: 0.3271,
            min_steps: 20,
            micro_batch_size: MicroBatch::Fixed(16),
            schedule: Schedule::Cosine,
            ladder: false,
            decay_fraction: 0.2,
            decay_shape: DecayShape::Linear,
            min_lr_ratio: 0.1,
            warmup_fraction: 0.05,
            weight_decay: 0.1,
            grad_clip: 1.0,
            evals_per_run: 4,
            eval_max_tokens: 32_768,
            checkpoints_per_run: 10,
        }
    }
}
