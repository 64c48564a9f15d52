// The fused classifier (after llm.c's): loss and dlogits over a chunk of rows in one kernel.
//
// CPU reference: synthscale_model::ops::linear_cross_entropy
// (LinearCrossEntropy::cpu_fwd, the loop after the logits product): per row,
// loss = max + ln Σ exp(x − max) − x[target]; the logits are overwritten in place with
// dlogits = (softmax − onehot(target)) / n, n the number of rows of the whole batch (the
// loss is a mean over n). The mean itself is left to the caller: it sums the per-row
// losses and divides by n.
// Tolerances: bf16 logits in, max and sum in f32 (online, merged across the block), the
// loss in f32; dlogits rounded once to bf16 (relative 2⁻⁸ of each element, absolute
// ≤ 2⁻⁹/n).
#include "common.cuh"

// cross_entropy_fwd_bwd_bf16(bf16* logits, const unsigned int* targets, float* losses,
//                            int rows, int v, int v_padded, int row_offset, int n)
//   logits: [rows, v_padded] bf16, the chunk's rows (row i of the chunk is row
//   row_offset + i of the batch), v_padded a multiple of 8 (the vocabulary padded to a
//   multiple of 128 by the caller), the pointer 16-byte aligned; columns v..v_padded are
//   treated as −inf and their dlogits written as 0. targets: [n] u32 for the whole batch
//   (each < v); losses: [n] f32, row_offset + i written. n: rows of the whole batch.
//   Grid (rows), block (multiple of 32, ≤ 1024; 512 suggested), no dynamic shared memory.
extern "C" __global__ void cross_entropy_fwd_bwd_bf16(bf16* __restrict__ logits,
                                                      const unsigned int* __restrict__ targets,
                                                      float* __restrict__ losses, int rows,
                                                      int v, int v_padded, int row_offset,
                                                      int n) {
    __shared__ float scratch[64];
    __shared__ float target_logit;
    const int row = blockIdx.x;
    if (row >= rows) return;
    bf16* x = logits + (size_t)row * v_padded;
    const unsigned int target = targets[row_offset + row];
    if (threadIdx.x == 0) target_logit = ld_bf16(x + target);

    // Pass 1: online max and sum of exp over the row, 8 bf16 (16 bytes) per load.
    float m = -SS_INF, s = 0.0f;
    const int nvec = v_padded / 8;
    for (int k = threadIdx.x; k < nvec; k += blockDim.x) {
        const uint4 raw = reinterpret_cast<const uint4*>(x)[k];
        const bf16* e = reinterpret_cast<const bf16*>(&raw);
        float lm = -SS_INF;
        float vals[8];
#pragma unroll
        for (int q = 0; q < 8; ++q) {
            vals[q] = (k * 8 + q < v) ? __bfloat162float(e[q]) : -SS_INF;
            lm = fmaxf(lm, vals[q]);
        }
        if (lm == -SS_INF) continue;
        const float mn = fmaxf(m, lm);
        float acc = m == -SS_INF ? 0.0f : s * expf(m - mn);
#pragma unroll
        for (int q = 0; q < 8; ++q) acc += expf(vals[q] - mn);
        m = mn;
        s = acc;
    }
    block_merge_max_sum(m, s, scratch); // its barriers also publish target_logit
    if (threadIdx.x == 0) losses[row_offset + row] = m + logf(s) - target_logit;

    // Pass 2: dlogits = exp(x − m)·(1/n)/s − [j = target]/n, in place.
    const float inv_n = 1.0f / (float)n;
    const float scale = inv_n / s;
    for (int k = threadIdx.x; k < nvec; k += blockDim.x) {
        uint4 raw = reinterpret_cast<const uint4*>(x)[k];
        bf16* e = reinterpret_cast<bf16*>(&raw);
#pragma unroll
        for (int q = 0; q < 8; ++q) {
            const int j = k * 8 + q;
            float dl = 0.0f;
            if (j < v) {
                dl = expf(__bfloat162float(e[q]) - m) * scale;
                if (j == (int)target) dl -= inv_n;
            }
            e[q] = __float2bfloat16_rn(dl);
        }
        reinterpret_cast<uint4*>(x)[k] = raw;
    }
}
