//! The mixture sampler: exact per-source shares of a token budget, as a deterministic,
//! resumable stream of (input, target) batches.
//!
//! Each sequence of `seq_len + 1` tokens comes whole from one source. Which source serves
//! sequence k is decided by the largest-deficit rule that Megatron-LM's blended datasets
//! use: the source whose realized count lags its weight the most, `argmax_i w_i·(k+1) − c_i`.
//! Every prefix of the stream then holds each source's share to within one sequence.
//! Inside a source, the training tokens are cut into non-overlapping windows; each epoch
//! visits all windows once in a seeded pseudo-random order (a keyed Feistel permutation, so
//! any position of any epoch is computed directly, with no per-epoch table in memory).

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::config::SourceKind;
use crate::datadir::{DataDir, DataMeta};
use crate::error::{DataError, Result};

/// Source weights of a mixture, by source name; they sum to 1.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Mixture {
    pub weights: Vec<(String, f64)>,
}

/// How close to 1 the weights must sum.
pub const WEIGHT_SUM_TOLERANCE: f64 = 1e-6;

impl Mixture {
    /// Splits shares by kind (natural, rephrased, textbook) over the sources of each kind in
    /// proportion to their training tokens, as if each kind's sources were one corpus.
    pub fn from_kind_shares(meta: &DataMeta, shares: &[(SourceKind, f64)]) -> Result<Mixture> {
        let mut weights = Vec::new();
        for &(kind, share) in shares {
            if share == 0.0 {
                continue;
            }
            let of_kind: Vec<_> = meta.sources.iter().filter(|s| s.kind == kind).collect();
            let total: u64 = of_kind.iter().map(|s| s.train.tokens).sum();
            if of_kind.is_empty() || total == 0 {
                return Err(DataError::field(
                    PathBuf::from("<mixture>"),
                    kind.as_str(),
                    format!(
                        "share {share} asks for {kind} data, but the data has no {kind} source"
                    ),
                ));
            }
            for s in of_kind {
                weights.push((s.name.clone(), share * s.train.tokens as f64 / total as f64));
            }
        }
        Ok(Mixture { weights })
    }
}

/// The stream's shape and length.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SamplerConfig {
    /// Tokens per sequence (inputs; targets are shifted by one).
    pub seq_len: usize,
    /// Sequences per batch.
    pub batch_size: usize,
    /// Training tokens to serve; rounded down to whole batches.
    pub token_budget: u64,
    /// Seeds the order of windows within each source.
    pub seed: u64,
}

/// One batch: `batch_size` rows of `seq_len` inputs and the targets shifted by one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Batch {
    pub step: u64,
    pub batch_size: usize,
    pub seq_len: usize,
    /// Row-major `[batch_size, seq_len]`.
    pub inputs: Vec<u32>,
    /// Row-major `[batch_size, seq_len]`; `targets[r][t] = inputs[r][t + 1]` within a window.
    pub targets: Vec<u32>,
    /// Data-directory index of the source of each row.
    pub sources: Vec<usize>,
}

#[derive(Debug, Clone)]
struct Lane {
    /// Index in the data directory.
    index: usize,
    name: String,
    kind: SourceKind,
    weight: f64,
    /// Windows in one epoch of the source.
    windows: u64,
    train_tokens: u64,
    key: u64,
}

/// How a mixture uses each source over the whole budget.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SourceUse {
    pub name: String,
    pub kind: SourceKind,
    pub weight: f64,
    pub sequences: u64,
    /// Input tokens served from the source.
    pub tokens: u64,
    /// Realized share of all sequences.
    pub share: f64,
    /// Distinct training tokens seen (windows touched × seq_len).
    pub unique_tokens: u64,
    /// Passes over the source's training windows (sequences / windows).
    pub epochs: f64,
}

/// The mixture over the whole budget.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MixtureReport {
    pub steps: u64,
    pub sequences: u64,
    pub tokens: u64,
    pub sources: Vec<SourceUse>,
    /// One line per source that repeats more often than `max_repeats`.
    pub warnings: Vec<String>,
}

/// A deterministic, resumable sampler over a prepared data directory.
#[derive(Debug)]
pub struct MixtureSampler<'a> {
    data: &'a DataDir,
    lanes: Vec<Lane>,
    cfg: SamplerConfig,
    steps: u64,
}

impl<'a> MixtureSampler<'a> {
    /// Checks the mixture and budget against the data; `origin` names the file they came
    /// from in messages.
    pub fn new(
        data: &'a DataDir,
        mixture: &Mixture,
        cfg: SamplerConfig,
        origin: &Path,
    ) -> Result<Self> {
        let err = |field: &str, message: String| DataError::field(origin, field, message);
        if cfg.seq_len == 0 {
            return Err(err("seq_len", "must be at least 1".into()));
        }
        if cfg.batch_size == 0 {
            return Err(err("batch_size", "must be at least 1".into()));
        }
        let per_step = cfg.seq_len as u64 * cfg.batch_size as u64;
        if cfg.token_budget < per_step {
            return Err(err(
                "token_budget",
                format!(
                    "{} tokens is less than one batch of batch_size × seq_len = {} × {} = {per_step}",
                    cfg.token_budget, cfg.batch_size, cfg.seq_len
                ),
            ));
        }
        if mixture.weights.is_empty() {
            return Err(err("mixture", "names no source".into()));
        }
        let mut sum = 0.0;
        let mut lanes = Vec::new();
        for (name, w) in &mixture.weights {
            let field = format!("mixture.{name}");
            if !(w.is_finite() && *w >= 0.0) {
                return Err(err(&field, format!("weight {w} must be a number ≥ 0")));
            }
            sum += w;
            let index = data.meta().source_index(name).ok_or_else(|| {
                let known: Vec<_> = data
                    .meta()
                    .sources
                    .iter()
                    .map(|s| s.name.as_str())
                    .collect();
                err(
                    &field,
                    format!(
                        "no source {name:?} in {}; it has {}",
                        data.path().display(),
                        known.join(", ")
                    ),
                )
            })?;
            if lanes.iter().any(|l: &Lane| l.index == index) {
                return Err(err(&field, "source named twice".into()));
            }
            if *w == 0.0 {
                continue;
            }
            let meta = &data.meta().sources[index];
            let tokens = data.train_shard(index).len() as u64;
            let windows = tokens.saturating_sub(1) / cfg.seq_len as u64;
            if windows == 0 {
                return Err(err(
                    &field,
                    format!(
                        "source {name:?} has {tokens} training tokens, fewer than one \
                         sequence of seq_len + 1 = {}",
                        cfg.seq_len + 1
                    ),
                ));
            }
            lanes.push(Lane {
                index,
                name: name.clone(),
                kind: meta.kind,
                weight: *w,
                windows,
                train_tokens: tokens,
                key: mix64(cfg.seed ^ mix64(fnv1a(name.as_bytes()))),
            });
        }
        if (sum - 1.0).abs() > WEIGHT_SUM_TOLERANCE {
            return Err(err(
                "mixture",
                format!("weights sum to {sum}, but must sum to 1 (±{WEIGHT_SUM_TOLERANCE})"),
            ));
        }
        Ok(MixtureSampler {
            data,
            lanes,
            cfg,
            steps: cfg.token_budget / per_step,
        })
    }

    /// Optimizer steps (batches) in the budget.
    pub fn steps(&self) -> u64 {
        self.steps
    }

    pub fn config(&self) -> &SamplerConfig {
        &self.cfg
    }

    /// Tokens actually served: whole batches only.
    pub fn tokens(&self) -> u64 {
        self.steps * self.cfg.batch_size as u64 * self.cfg.seq_len as u64
    }

    /// Per-source use over the whole budget, with a warning for every source seen more
    /// than `max_repeats` times.
    pub fn report(&self, max_repeats: f64) -> MixtureReport {
        let n = self.steps * self.cfg.batch_size as u64;
        let mut sched = Schedule::new(self.lanes.iter().map(|l| l.weight).collect());
        sched.advance(n);
        let s = self.cfg.seq_len as u64;
        let mut warnings = Vec::new();
        let sources = self
            .lanes
            .iter()
            .zip(&sched.counts)
            .map(|(l, &c)| {
                let epochs = c as f64 / l.windows as f64;
                if epochs > max_repeats {
                    warnings.push(format!(
                        "source {:?} is repeated {epochs:.2} times (more than max_repeats = \
                         {max_repeats}): {} unique training tokens serve {} tokens",
                        l.name,
                        l.windows * s,
                        c * s
                    ));
                }
                SourceUse {
                    name: l.name.clone(),
                    kind: l.kind,
                    weight: l.weight,
                    sequences: c,
                    tokens: c * s,
                    share: c as f64 / n as f64,
                    unique_tokens: c.min(l.windows) * s,
                    epochs,
                }
            })
            .collect();
        MixtureReport {
            steps: self.steps,
            sequences: n,
            tokens: n * s,
            sources,
            warnings,
        }
    }

    /// The batches from `start_step` to the end of the budget: exactly those an
    /// uninterrupted stream gives from that step on.
    pub fn stream(&self, start_step: u64) -> BatchStream<'_> {
        let mut sched = Schedule::new(self.lanes.iter().map(|l| l.weight).collect());
        sched.advance(start_step.min(self.steps) * self.cfg.batch_size as u64);
        BatchStream {
            sampler: self,
            step: start_step.min(self.steps),
            sched,
        }
    }

    /// The training tokens of the `c`-th sequence drawn from lane `lane`.
    fn window(&self, lane: usize, c: u64, out: &mut [u32]) {
        let l = &self.lanes[lane];
        let epoch = c / l.windows;
        let pos = c % l.windows;
        let w = permute(pos, l.windows, mix64(l.key ^ mix64(epoch.wrapping_add(1))));
        let start = w * self.cfg.seq_len as u64;
        debug_assert!(start + (self.cfg.seq_len as u64) < l.train_tokens);
        self.data
            .train_shard(l.index)
            .read_into(start as usize, out);
    }
}

/// The largest-deficit schedule: counts per lane after k sequences.
#[derive(Debug, Clone)]
struct Schedule {
    weights: Vec<f64>,
    counts: Vec<u64>,
    k: u64,
}

impl Schedule {
    fn new(weights: Vec<f64>) -> Self {
        let n = weights.len();
        Schedule {
            weights,
            counts: vec![0; n],
            k: 0,
        }
    }

    /// The lane of the next sequence; advances.
    fn next(&mut self) -> usize {
        let target = (self.k + 1) as f64;
        let mut best = 0;
        let mut best_deficit = f64::NEG_INFINITY;
        for (i, (&w, &c)) in self.weights.iter().zip(&self.counts).enumerate() {
            let d = w * target - c as f64;
            if d > best_deficit {
                best = i;
                best_deficit = d;
            }
        }
        self.counts[best] += 1;
        self.k += 1;
        best
    }

    fn advance(&mut self, n: u64) {
        for _ in 0..n {
            self.next();
        }
    }
}

/// Iterator over batches; see [`MixtureSampler::stream`].
#[derive(Debug)]
pub struct BatchStream<'s> {
    sampler: &'s MixtureSampler<'s>,
    step: u64,
    sched: Schedule,
}

impl BatchStream<'_> {
    /// The step the next batch belongs to.
    pub fn step(&self) -> u64 {
        self.step
    }
}

impl Iterator for BatchStream<'_> {
    type Item = Batch;

    fn next(&mut self) -> Option<Batch> {
        let s = self.sampler;
        if self.step >= s.steps {
            return None;
        }
        let (b, t) = (s.cfg.batch_size, s.cfg.seq_len);
        let mut inputs = vec![0u32; b * t];
        let mut targets = vec![0u32; b * t];
        let mut sources = Vec::with_capacity(b);
        let mut window = vec![0u32; t + 1];
        for r in 0..b {
            let lane = self.sched.next();
            let c = self.sched.counts[lane] - 1;
            s.window(lane, c, &mut window);
            inputs[r * t..(r + 1) * t].copy_from_slice(&window[..t]);
            targets[r * t..(r + 1) * t].copy_from_slice(&window[1..]);
            sources.push(s.lanes[lane].index);
        }
        let batch = Batch {
            step: self.step,
            batch_size: b,
            seq_len: t,
            inputs,
            targets,
            sources,
        };
        self.step += 1;
        Some(batch)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let n = (self.sampler.steps - self.step) as usize;
        (n, Some(n))
    }
}

/// Evaluation batches over held-out tokens: consecutive non-overlapping windows from the
/// start, at most `max_sequences`, the last batch possibly smaller.
pub fn eval_batches(
    tokens: &[u32],
    seq_len: usize,
    batch_size: usize,
    max_sequences: usize,
) -> Vec<Batch> {
    let n = (tokens.len().saturating_sub(1) / seq_len.max(1)).min(max_sequences);
    let mut out = Vec::new();
    let mut row = 0;
    while row < n {
        let rows = batch_size.max(1).min(n - row);
        let mut inputs = Vec::with_capacity(rows * seq_len);
        let mut targets = Vec::with_capacity(rows * seq_len);
        for r in row..row + rows {
            let w = &tokens[r * seq_len..r * seq_len + seq_len + 1];
            inputs.extend_from_slice(&w[..seq_len]);
            targets.extend_from_slice(&w[1..]);
        }
        out.push(Batch {
            step: out.len() as u64,
            batch_size: rows,
            seq_len,
            inputs,
            targets,
            sources: Vec::new(),
        });
        row += rows;
    }
    out
}

/// splitmix64's finalizer: a strong 64-bit mixing function.
fn mix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ b as u64).wrapping_mul(0x0100_0000_01b3)
    })
}

/// A keyed pseudo-random permutation of `0..n`: a 4-round Feistel network on the smallest
/// even bit width that covers `n`, cycle-walking until the value falls inside `0..n`
/// (fewer than 4 rounds of walking on average, since the domain is < 4n).
fn permute(index: u64, n: u64, key: u64) -> u64 {
    debug_assert!(index < n);
    if n <= 1 {
        return 0;
    }
    let bits = (64 - (n - 1).leading_zeros()).max(2);
    let half = bits.div_ceil(2);
    let mask = (1u64 << half) - 1;
    let mut x = index;
    loop {
        let (mut l, mut r) = (x >> half, x & mask);
        for round in 0..4u64 {
            let f = mix64(r ^ mix64(key.wrapping_add(round))) & mask;
            (l, r) = (r, l ^ f);
        }
        x = (l << half) | r;
        if x < n {
            return x;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permutation_is_a_bijection_for_many_sizes() {
        for n in [1u64, 2, 3, 5, 16, 17, 100, 1000, 4097] {
            for key in [0u64, 1, 0xdead_beef] {
                let mut seen = vec![false; n as usize];
                for i in 0..n {
                    let p = permute(i, n, key);
                    assert!(p < n);
                    assert!(!seen[p as usize], "n={n} key={key} repeats {p}");
                    seen[p as usize] = true;
                }
            }
        }
        // Different keys give different orders.
        let a: Vec<_> = (0..100).map(|i| permute(i, 100, 1)).collect();
        let b: Vec<_> = (0..100).map(|i| permute(i, 100, 2)).collect();
        assert_ne!(a, b);
    }

    #[test]
    fn largest_deficit_keeps_every_prefix_within_one_sequence() {
        // Oracle: the closed form w_i·k; the rule must keep |c_i(k) − w_i·k| < 1 for every
        // prefix k and lane i (the within-one-sequence property the sampler promises).
        let cases: Vec<Vec<f64>> = vec![
            vec![1.0],
            vec![0.5, 0.5],
            vec![1.0 / 3.0, 2.0 / 3.0],
            vec![0.7, 0.2, 0.1],
            vec![0.01, 0.99],
            vec![0.25, 0.25, 0.25, 0.125, 0.125],
            vec![0.333, 0.333, 0.334],
            vec![0.05, 0.15, 0.3, 0.5],
        ];
        for w in cases {
            let mut s = Schedule::new(w.clone());
            for k in 1..=5000u64 {
                s.next();
                for (i, &wi) in w.iter().enumerate() {
                    let dev = s.counts[i] as f64 - wi * k as f64;
                    assert!(
                        dev.abs() < 1.0,
                        "weights {w:?} k={k} lane {i}: deviation {dev}"
                    );
                }
            }
        }
    }
}
