//! Generation with continuous batching: up to `batch_size` sequences decode together, a
//! finished one hands its slot to the next prompt; sampling (temperature, top-p) draws from
//! a random stream keyed by (seed, request id), so a record does not depend on which batch
//! it ran in, or on whether the run was resumed.

use std::collections::VecDeque;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::Result;
use crate::llama::Llama;
use crate::tokenizer::ChatTokenizer;

/// How tokens are drawn.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Sampling {
    /// Softmax temperature; 0 picks the most likely token (greedy).
    pub temperature: f32,
    /// Nucleus: sample among the most likely tokens whose probabilities sum to `top_p`.
    pub top_p: f32,
    /// Seed of every record's random stream (mixed with the record id).
    pub seed: u64,
    /// Longest generation in tokens; a record that reaches it is cut there.
    pub max_new_tokens: usize,
}

impl Default for Sampling {
    fn default() -> Self {
        Sampling {
            // SmolLM2's model card suggests 0.2 for chat; rephrasing wants more variety.
            temperature: 0.7,
            top_p: 0.9,
            seed: 1234,
            max_new_tokens: 512,
        }
    }
}

/// One prompt to complete.
#[derive(Debug, Clone)]
pub struct Request {
    /// Stable id; keys the random stream.
    pub id: String,
    pub prompt: Vec<u32>,
    /// This request's own cap on new tokens (at most `Sampling::max_new_tokens`).
    pub max_new_tokens: Option<usize>,
}

/// Why a generation stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Finish {
    /// The model wrote an end-of-sequence token.
    Stop,
    /// `max_new_tokens` (or the model's context) ran out.
    Length,
}

/// One finished generation.
#[derive(Debug, Clone)]
pub struct Completion {
    pub id: String,
    pub tokens: Vec<u32>,
    pub finish: Finish,
    pub prompt_tokens: usize,
}

/// The 64-bit seed of one record's stream: sha256(seed ‖ id).
pub fn stream_seed(seed: u64, id: &str) -> u64 {
    let mut h = Sha256::new();
    h.update(seed.to_le_bytes());
    h.update(id.as_bytes());
    u64::from_le_bytes(h.finalize()[..8].try_into().expect("8 bytes"))
}

/// Draws one token from `logits` (softmax at `temperature`, nucleus `top_p`).
pub fn sample(logits: &[f32], s: &Sampling, rng: &mut ChaCha8Rng) -> u32 {
    if s.temperature <= 0.0 {
        return argmax(logits);
    }
    let m = logits.iter().cloned().fold(f32::NEG_INFINITY, f32::max);
    let mut p: Vec<(u32, f32)> = logits
        .iter()
        .enumerate()
        .map(|(i, &l)| (i as u32, ((l - m) / s.temperature).exp()))
        .collect();
    let total: f32 = p.iter().map(|x| x.1).sum();
    let by_prob = |a: &(u32, f32), b: &(u32, f32)| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0));
    // The nucleus nearly always lies among the 256 most likely tokens: partition those off
    // and sort only them; fall back to a full sort when their mass falls short of top_p.
    let k = 256.min(p.len());
    if k < p.len() {
        p.select_nth_unstable_by(k - 1, by_prob);
    }
    let mut head_sorted = false;
    if k < p.len() {
        let head: f32 = p[..k].iter().map(|x| x.1).sum();
        if head >= s.top_p * total {
            p.truncate(k);
            p.sort_unstable_by(by_prob);
            head_sorted = true;
        }
    }
    if !head_sorted {
        p.sort_unstable_by(by_prob);
    }
    let mut cut = p.len();
    let mut acc = 0f32;
    for (i, x) in p.iter().enumerate() {
        acc += x.1;
        if acc >= s.top_p * total {
            cut = i + 1;
            break;
        }
    }
    let mass: f32 = p[..cut].iter().map(|x| x.1).sum();
    let mut u = rng.random::<f32>() * mass;
    for x in &p[..cut] {
        u -= x.1;
        if u <= 0.0 {
            return x.0;
        }
    }
    p[cut - 1].0
}

fn argmax(v: &[f32]) -> u32 {
    let mut best = 0;
    for (i, &x) in v.iter().enumerate() {
        if x > v[best] {
            best = i;
        }
    }
    best as u32
}

struct Slot {
    req: Request,
    /// Its slot of the batch's KV cache.
    slot: usize,
    out: Vec<u32>,
    rng: ChaCha8Rng,
    /// Tokens to feed at the next step (the prompt, then each sampled token).
    pending: Vec<u32>,
    /// New tokens allowed.
    cap: usize,
}

/// The model, its tokenizer and how to decode.
pub struct Generator {
    pub model: Llama,
    pub tokenizer: ChatTokenizer,
    pub sampling: Sampling,
    /// Sequences decoded together.
    pub batch_size: usize,
}

/// Counters from one `generate` call.
#[derive(Debug, Clone, Copy, Default)]
pub struct GenStats {
    pub prompt_tokens: u64,
    pub generated_tokens: u64,
    pub steps: u64,
}

impl Generator {
    /// Completes every request, calling `done` as each finishes (not in request order).
    /// `done` may stop the run early by returning `false`.
    pub fn generate(
        &self,
        requests: impl IntoIterator<Item = Request>,
        mut done: impl FnMut(Completion) -> Result<bool>,
    ) -> Result<GenStats> {
        let mut queue: VecDeque<Request> = requests.into_iter().collect();
        let mut slots: Vec<Slot> = Vec::new();
        let mut stats = GenStats::default();
        let ctx = self.model.config().max_seq_len;
        let mut cache = self.model.new_cache(self.batch_size.max(1));
        let mut free: Vec<usize> = (0..cache.slots()).rev().collect();
        loop {
            while let Some(&slot) = free.last() {
                let Some(mut req) = queue.pop_front() else {
                    break;
                };
                free.pop();
                cache.clear(slot);
                // Keep room for at least a few generated tokens inside the context.
                if req.prompt.len() + 1 >= ctx {
                    let keep = ctx.saturating_sub(2).max(1);
                    req.prompt.truncate(keep);
                }
                stats.prompt_tokens += req.prompt.len() as u64;
                let cap = req
                    .max_new_tokens
                    .map_or(self.sampling.max_new_tokens, |c| {
                        c.min(self.sampling.max_new_tokens)
                    });
                slots.push(Slot {
                    cap,
                    rng: ChaCha8Rng::seed_from_u64(stream_seed(self.sampling.seed, &req.id)),
                    slot,
                    out: Vec::new(),
                    pending: req.prompt.clone(),
                    req,
                });
            }
            if slots.is_empty() {
                return Ok(stats);
            }
            let inputs: Vec<Vec<u32>> = slots
                .iter_mut()
                .map(|s| std::mem::take(&mut s.pending))
                .collect();
            let refs: Vec<&[u32]> = inputs.iter().map(|v| v.as_slice()).collect();
            let ids: Vec<usize> = slots.iter().map(|s| s.slot).collect();
            let logits = self.model.forward(&refs, &ids, &mut cache)?;
            stats.steps += 1;
            let logits: Vec<Vec<f32>> = logits.to_vec2()?;
            let sampling = self.sampling;
            let next: Vec<u32> = slots
                .par_iter_mut()
                .zip(logits.par_iter())
                .map(|(s, l)| sample(l, &sampling, &mut s.rng))
                .collect();
            let mut kept = Vec::with_capacity(slots.len());
            let mut finished = Vec::new();
            for (mut s, tok) in slots.into_iter().zip(next) {
                let stop = self.tokenizer.stop_ids.contains(&tok);
                if !stop {
                    s.out.push(tok);
                    stats.generated_tokens += 1;
                }
                let full = s.out.len() >= s.cap || cache.len(s.slot) + 1 >= ctx;
                if stop || full {
                    free.push(s.slot);
                    finished.push(Completion {
                        prompt_tokens: s.req.prompt.len(),
                        id: s.req.id,
                        tokens: s.out,
                        finish: if stop { Finish::Stop } else { Finish::Length },
                    });
                } else {
                    s.pending = vec![tok];
                    kept.push(s);
                }
            }
            slots = kept;
            for c in finished {
                if !done(c)? {
                    return Ok(stats);
                }
            }
        }
    }
}
