// Rotary positions applied while moving heads forward, and the adjoint.
//
// CPU reference: synthscale_model::ops::rope_to_heads (RopeToHeads::cpu_fwd) and its
// backward RopeFromHeadsGrad::cpu_fwd. Half-split layout: for j < d/2, with
// (a, b) = (x[j], x[j + d/2]) and (c, s) = (cos[p, j], sin[p, j]):
// out[j] = a·c − b·s, out[j + d/2] = b·c + a·s; the backward rotates by −s.
// Layouts: x [b, t, h, d] → out [b, h, t, d]; gradient [b, h, t, d] → [b, t, h, d];
// cos, sin [t, d/2] f32 (row stride d/2).
// Tolerances: bf16 in and out, rotation in f32 with f32 tables: one bf16 rounding.
#include "common.cuh"

// The loop both kernels share: one thread per rotated pair, i enumerating [b, t, h, d/2]
// so that the [b, t, h, d] side (read forward, written backward) is coalesced. Forward
// reads [b, t, h, d] and writes [b, h, t, d] rotated by +θ; backward (ToHeads = false)
// reads [b, h, t, d] and writes [b, t, h, d] rotated by −θ.
template <bool ToHeads>
__device__ __forceinline__ void rope_move(const bf16* __restrict__ src,
                                          const float* __restrict__ cos,
                                          const float* __restrict__ sin,
                                          bf16* __restrict__ dst, int b, int t, int h, int d) {
    const int hd = d / 2;
    const size_t n = (size_t)b * t * h * hd;
    const size_t stride = (size_t)gridDim.x * blockDim.x;
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride) {
        const int j = (int)(i % hd);
        size_t r = i / hd;
        const int hi = (int)(r % h);
        r /= h;
        const int p = (int)(r % t);
        const size_t bi = r / t;
        const size_t seq_row = ((bi * t + p) * h + hi) * d;   // [b, t, h, d]
        const size_t head_row = ((bi * h + hi) * t + p) * d;  // [b, h, t, d]
        const bf16* in = src + (ToHeads ? seq_row : head_row);
        bf16* out = dst + (ToHeads ? head_row : seq_row);
        const float a = ld_bf16(in + j), bb = ld_bf16(in + j + hd);
        const float c = cos[(size_t)p * hd + j];
        const float s = ToHeads ? sin[(size_t)p * hd + j] : -sin[(size_t)p * hd + j];
        st_bf16(out + j, a * c - bb * s);
        st_bf16(out + j + hd, bb * c + a * s);
    }
}

// rope_to_heads_fwd_bf16(const bf16* x, const float* cos, const float* sin, bf16* out,
//                        int b, int t, int h, int d)
//   One thread per rotated pair: n = b·t·h·(d/2) threads, grid-stride (any grid, e.g.
//   ceil(n / 256) capped), block 256, no dynamic shared memory. d even.
extern "C" __global__ void rope_to_heads_fwd_bf16(const bf16* __restrict__ x,
                                                  const float* __restrict__ cos,
                                                  const float* __restrict__ sin,
                                                  bf16* __restrict__ out, int b, int t, int h,
                                                  int d) {
    rope_move<true>(x, cos, sin, out, b, t, h, d);
}

// rope_from_heads_bwd_bf16(const bf16* g, const float* cos, const float* sin, bf16* dx,
//                          int b, int t, int h, int d)
//   g: [b, h, t, d] (the gradient of rope_to_heads' output); dx: [b, t, h, d]. Rotates
//   back (angle −θ) and transposes back. Launch as rope_to_heads_fwd_bf16.
extern "C" __global__ void rope_from_heads_bwd_bf16(const bf16* __restrict__ g,
                                                    const float* __restrict__ cos,
                                                    const float* __restrict__ sin,
                                                    bf16* __restrict__ dx, int b, int t, int h,
                                                    int d) {
    rope_move<false>(g, cos, sin, dx, b, t, h, d);
}
