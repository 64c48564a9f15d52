// Embedding backward: scatter-add of output-gradient rows into the table's gradient.
//
// CPU reference: synthscale_model::decoder::Decoder::hidden (the lookup
// `emb.index_select(ids, 0)`, whose gradient candle forms with index_add: dW[id] += dY row,
// serially over tokens). Here one block per token row, in parallel.
// Tolerances: bf16 dY in, f32 dW accumulated with f32 atomics; the order of the additions
// for a word that occurs many times is not fixed, so results agree with the CPU sum to f32
// rounding (relative ~1e-6 × occurrences), not bit for bit.
#include "common.cuh"

// embedding_bwd_bf16(const unsigned int* ids, const bf16* dy, float* dw, int n_tokens,
//                    int d, int vocab)
//   ids: [n_tokens] u32; dy: [n_tokens, d] bf16; dw: [vocab, d] f32, accumulated into (the
//   caller zeroes it first, or keeps adding across micro-batches). Ids ≥ vocab are skipped
//   (the launcher validates them). Grid (n_tokens), block (any multiple of 32, e.g.
//   min(256, d rounded up)), no dynamic shared memory.
extern "C" __global__ void embedding_bwd_bf16(const unsigned int* __restrict__ ids,
                                              const bf16* __restrict__ dy,
                                              float* __restrict__ dw, int n_tokens, int d,
                                              int vocab) {
    const int tok = blockIdx.x;
    if (tok >= n_tokens) return;
    const unsigned int id = ids[tok];
    if (id >= (unsigned int)vocab) return;
    const bf16* src = dy + (size_t)tok * d;
    float* dst = dw + (size_t)id * d;
    for (int j = threadIdx.x; j < d; j += blockDim.x) atomicAdd(dst + j, ld_bf16(src + j));
}
