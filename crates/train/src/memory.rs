//! The memory model: the bytes one training step holds at its peak, counted from the
//! tensors the forward graph keeps for the backward pass, the optimizer's state and the
//! backward pass's largest temporaries.
//!
//! Three graphs run, and they keep different tensors:
//! - [`Graph::Fused`]: the fused f32 ops of `synthscale_model::ops` (CPU): one tensor per
//!   op, attention probabilities `[b, h, t, t]` in f32, the output head's logits turned
//!   into their gradient in place;
//! - [`Graph::Kernels`]: the same ops in bf16 on CUDA, launching `synthscale-kernels`: one
//!   bf16 tensor per op, each RMSNorm's f32 row statistics, and flash attention's f32
//!   log-sum-exp per query row instead of any per-score tensor; the classifier's bf16
//!   logits (rows padded to 128 words) turned into their gradient in place;
//! - [`Graph::Composed`]: the decoder built from candle's elementwise ops in bf16 (CUDA at a
//!   head dimension the flash kernels lack, and the oracle form): every intermediate of the
//!   norms, rotary positions, softmax and loss stays alive, 28 bytes per attention score and
//!   18 per logit.
//!
//! The fused and composed graphs also run on the CPU (`Decoder::set_compute_dtype(BF16)` selects the
//! composed one), so `synthscale bench memory` checks each against the heap's measured
//! peak; the kernels graph runs on CUDA only, so its count is unmeasured until
//! `scripts/gpu-check.sh` runs on a GPU (it reports the peak beside this model). candle keeps the whole forward graph until backward ends (the loss holds it), so
//! the peak is reached inside the backward pass: either at its start, where the output
//! head's backward runs with every activation alive, or at its end, where every
//! parameter's gradient exists and the embedding's is being added.

use candle_core::DType;
use serde::Serialize;
use synthscale_model::ops::FusedOps;
use synthscale_model::ModelConfig;

use crate::config::DeviceSpec;

/// Which forward/backward graph a step executes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Graph {
    /// synthscale's fused f32 ops (CPU).
    Fused,
    /// synthscale's fused ops in bf16 on CUDA (the kernels of `synthscale-kernels`).
    Kernels,
    /// candle's composed ops with bf16 activations (also the CPU in bf16).
    Composed,
}

impl Graph {
    /// The graph a training run executes: the trainer computes in f32 on the CPU and in
    /// bf16 on CUDA.
    pub fn for_run(m: &ModelConfig, device: DeviceSpec) -> Graph {
        let dtype = match device {
            DeviceSpec::Cpu => DType::F32,
            DeviceSpec::Cuda => DType::BF16,
        };
        Graph::for_dtype(m, device, dtype)
    }

    /// The graph `Decoder` runs on a device at a compute dtype, from the fused ops that
    /// exist there (`FusedOps::select`): every op fused on the CPU in f32; on CUDA in bf16
    /// the kernels graph where flash attention has the head dimension's tile. Elsewhere the
    /// composed graph, which over-counts a CUDA run at another head dimension (its norms,
    /// SwiGLU and rotary positions are fused): a conservative estimate.
    pub fn for_dtype(m: &ModelConfig, device: DeviceSpec, dtype: DType) -> Graph {
        let on_cuda = device == DeviceSpec::Cuda;
        let ops = FusedOps::select(on_cuda, dtype, m.head_dim());
        match (on_cuda, ops.loss, ops.attention) {
            (false, true, _) => Graph::Fused,
            (true, _, true) => Graph::Kernels,
            _ => Graph::Composed,
        }
    }
}

/// The peak bytes of one training step, by what holds them; `total` is the largest of
/// three moments: backward's start, backward's end and the AdamW update.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct MemoryModel {
    pub graph: Graph,
    /// f32 master weights.
    pub weights: f64,
    /// AdamW's two f32 moments.
    pub optimizer: f64,
    /// The f32 gradient of every parameter (alive at the end of backward).
    pub gradients: f64,
    /// The compute-dtype copies of the weights the forward graph keeps (bf16 only).
    pub weight_copies: f64,
    /// Everything the forward graph keeps for backward, the loss's own buffers included.
    pub activations: f64,
    /// Of `activations`: attention's per-score tensors.
    pub attention_scores: f64,
    /// Of `activations`: the output head's per-logit tensors.
    pub logits: f64,
    /// The gradient accumulated over earlier micro-batches (accumulation > 1 only).
    pub accumulator: f64,
    /// The temporaries at the peak: the backward pass's (gradients of activations, the
    /// accumulation's zeros and sums, and in the composed graph the gradients candle keeps
    /// for untracked operands), or the AdamW update's where that is the peak.
    pub backward_temporaries: f64,
    /// The peak: the larger of backward's start and end.
    pub total: f64,
}

impl MemoryModel {
    /// The model for one of `ranks` data-parallel ranks under ZeRO-1 (the `zero` module):
    /// the optimizer's moments divided among them (whole tensors are owned, so a rank's
    /// share is about 1/ranks of them), everything else whole on every rank.
    pub fn sharded(mut self, ranks: usize) -> MemoryModel {
        if ranks > 1 {
            let saved = self.optimizer * (1.0 - 1.0 / ranks as f64);
            self.optimizer -= saved;
            self.total -= saved;
        }
        self
    }
}

/// The memory model of one training step: model `m`, sequences of `seq` tokens, `micro`
/// sequences per micro-batch, `accum` micro-batches per step, on `graph`, with the AdamW
/// update `device` runs.
pub fn memory_model(
    m: &ModelConfig,
    seq: usize,
    micro: usize,
    accum: usize,
    graph: Graph,
    device: DeviceSpec,
) -> MemoryModel {
    let p = m.params() as f64;
    let n = (seq * micro) as f64; // tokens in the micro-batch
    let (d, f, v) = (m.d_model as f64, m.d_ff as f64, m.vocab_size as f64);
    let kv = (m.n_kv_heads * m.head_dim()) as f64;
    let (l, t, h) = (m.n_layers as f64, seq as f64, m.n_heads as f64);
    // Attention scores per layer.
    let scores = micro as f64 * h * t * t;
    // Grouped-query attention repeats k and v to every head: two more [b, h, t, hd] copies.
    let repeat = if m.n_kv_heads < m.n_heads {
        2.0 * d
    } else {
        0.0
    };
    let vd = v * d;

    let (per_token, per_score, outside, per_logit, weight_copies, start_tmp, end_tmp, stray) =
        match graph {
            Graph::Fused => {
                // Per layer, one f32 tensor each: the norm's output, q, k, v, v moved to heads,
                // q and k rotated to heads, attention's output, the o projection, the residual
                // sum, the second norm, the MLP's gate, up and product, the down projection and
                // the second residual sum.
                let per_token = 4.0 * (9.0 * d + 4.0 * kv + 3.0 * f + repeat);
                // The embedding lookup and the final norm.
                let outside = 4.0 * 2.0 * n * d;
                // Backward's start: the head's backward writes dh [n, d] and dW [v, d] while the
                // logits' gradient is alive; once it is freed, the accumulation adds a zero
                // [v, d] and the sum. End: the embedding's gradient, index_add onto the head's (a
                // new [v, d]).
                let start = (4.0 * (n * d + vd)).max(4.0 * (3.0 * vd + n * d) - 4.0 * n * v);
                // Or, larger where attention dominates: the first layer's attention backward
                // writes dq, dk and dv, and two of them are accumulated (a zero and a sum each).
                let end = 4.0 * (vd + 2.0 * n * d).max(5.0 * n * d);
                (per_token, 4.0, outside, 4.0, 0.0, start, end, 0.0)
            }
            Graph::Kernels => {
                // Per layer, the fused graph's tensors in bf16, plus the f32 statistics the
                // kernels keep: each RMSNorm's 1/rms per row (two) and attention's
                // log-sum-exp per head and row. No per-score tensor.
                let h_rows = m.n_heads as f64;
                let per_token =
                    2.0 * (9.0 * d + 4.0 * kv + 3.0 * f + repeat) + 4.0 * 2.0 + 4.0 * h_rows;
                // The embedding lookup and the final norm (bf16), the norm's statistics.
                let outside = 2.0 * 2.0 * n * d + 4.0 * n;
                // The classifier keeps its logits as their gradient, bf16, until the backward
                // pass takes them; the head's backward then writes dh and dW in bf16, their
                // products with the upstream gradient, and dW's f32 cast onto the master.
                let per_logit = 2.0;
                let start = 2.0 * 2.0 * (n * d + vd) + 4.0 * vd;
                // End: the embedding's gradient as in the composed graph, or the first layer's
                // attention backward: dQ's f32 accumulator, dq, dk and dv in bf16, and two of
                // them accumulated onto a zero (18 bytes a value of [n, d]).
                let end = (4.0 * (vd + 2.0 * n * d) + 2.0 * vd).max(18.0 * n * d);
                (per_token, 0.0, outside, per_logit, 2.0 * p, start, end, 0.0)
            }
            Graph::Composed => {
                // Per layer, bf16 unless noted: each RMSNorm keeps x in f32, x², x·rms (f32),
                // the bf16 cast and the gain product (16 bytes a value, twice); q, k and v and
                // their copies to heads; rotary positions, four tensors' worth each for q and k;
                // attention's output and its copy back to [b, t, d]; the o projection; the
                // residual sums; gate, up, silu and product; the down projection.
                let per_token = 56.0 * d + 16.0 * kv + 8.0 * f + 2.0 * repeat;
                // Scores in bf16, then in f32: cast, scaled, masked, shifted, exp, normalised,
                // and the probabilities back in bf16 (2 + 6·4 + 2 = 28 bytes).
                let per_score = 28.0;
                // The embedding lookup (bf16) and the final norm (16 bytes a value).
                let outside = (2.0 + 16.0) * n * d;
                // Logits: bf16, cast to f32, then log-softmax's shifted, exp and result (f32).
                let per_logit = 2.0 + 4.0 + 12.0;
                // The loss's backward walks log-softmax back with several f32 [n, v] tensors
                // alive at once: the targets' scattered gradient with its zero, the gradients
                // pending at the shifted logits, at exp and at the row maxima (with the
                // equality mask's cast and product), each accumulated onto a zero. Counted on
                // the CPU (`bench memory`, two shapes), its peak is 6.5 f32 values a logit; then
                // the head's dW in bf16 and its f32 accumulation.
                let start = 26.0 * n * v + 2.0 * vd + 4.0 * vd;
                // End: the embedding's gradient as in the fused graph, or, larger where attention
                // dominates, the first layer's softmax backward: the gradient at the division by
                // the row sums, its quotient, the accumulated gradient of exp, and the product,
                // square and quotient of the row-sum gradient (6 f32 values a score at once).
                let end = (4.0 * (vd + 2.0 * n * d) + 2.0 * vd).max(24.0 * scores);
                // candle's backward also writes a gradient for the untracked operand of an
                // add, sub or mul, and keeps it to the end (nothing consumes it): per layer the
                // causal mask and the detached row maxima broadcast to every score (f32), and the
                // cos and sin tables broadcast over q's and k's halves in the four products of
                // the rotary form (bf16).
                let stray = l * (8.0 * scores + n * (4.0 * d + 4.0 * kv));
                (
                    per_token,
                    per_score,
                    outside,
                    per_logit,
                    2.0 * p,
                    start,
                    end,
                    stray,
                )
            }
        };
    let attention_scores = l * scores * per_score;
    let logits = n * v * per_logit;
    let layers = l * n * per_token + attention_scores;
    let activations = layers + outside + logits;
    let weights = 4.0 * p;
    let optimizer = 8.0 * p;
    let gradients = 4.0 * p;
    let accumulator = if accum > 1 { 4.0 * p } else { 0.0 };
    let base = weights + optimizer + weight_copies + accumulator;
    // Start of backward: everything the forward kept, no gradients yet.
    let start = base + activations + start_tmp;
    // End: the logits' buffers of the fused graph are gone (taken by the head's backward);
    // the composed graph keeps them until the loss is dropped.
    let kept_at_end = match graph {
        Graph::Fused | Graph::Kernels => activations - logits,
        Graph::Composed => activations,
    };
    let end = base + kept_at_end + gradients + stray + end_tmp;
    // The AdamW update, after the loss and its graph are dropped: every gradient, and the
    // update of the largest parameter. On the CPU its one-pass update writes a new weight,
    // m and v before the old ones go (3 buffers); elsewhere the tensor-op form also keeps
    // the decayed weight, the denominator, the quotient and the step (7).
    let largest = (v * d).max(f * d).max(d * d);
    let update = match device {
        DeviceSpec::Cpu => 3.0,
        DeviceSpec::Cuda => 7.0,
    } * 4.0
        * largest;
    // The compute-dtype weight copies went with the graph; the accumulated gradient is now
    // the gradient.
    let optimizer_step = weights + optimizer + gradients + update;
    let (total, backward_temporaries) = if start >= end.max(optimizer_step) {
        (start, start_tmp)
    } else if end >= optimizer_step {
        (end, end_tmp + stray)
    } else {
        (optimizer_step, update)
    };
    MemoryModel {
        graph,
        weights,
        optimizer,
        gradients,
        weight_copies,
        activations,
        attention_scores,
        logits,
        accumulator,
        backward_temporaries,
        total,
    }
}

/// The peak bytes of training `m` on `device` (the graph that device runs) at `micro`
/// sequences of `seq_len` tokens per micro-batch, one micro-batch per step.
pub fn memory_estimate(m: &ModelConfig, seq_len: usize, micro: usize, device: DeviceSpec) -> f64 {
    memory_model(m, seq_len, micro, 1, Graph::for_run(m, device), device).total
}
