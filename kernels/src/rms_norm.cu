// RMSNorm over the last dimension, forward and backward, and the residual-add variant.
//
// CPU reference: synthscale_model::ops::rms_norm (RmsNorm::cpu_fwd) and its backward
// RmsNormGrad::cpu_fwd: y = x · r · w with r = 1/sqrt(mean(x²) + eps);
// dx = r·(g⊙w) − x·r³·mean(g⊙w⊙x), dw = Σ_rows g⊙x·r.
// Tolerances: bf16 in and out, every sum in f32 (r is kept in f32 for the backward pass),
// so outputs agree with the f32 CPU op on bf16-rounded inputs to bf16 rounding (relative
// 2⁻⁸); dw is reduced in f32 across rows and never accumulated in bf16.
#include "common.cuh"

// rms_norm_fwd_bf16(const bf16* x, const bf16* w, bf16* y, float* rstd,
//                   int rows, int d, float eps)
//   x, y: [rows, d] bf16, contiguous; w: [d] bf16; rstd: [rows] f32 (r of each row, for the
//   backward pass). Grid (rows), block (multiple of 32, ≤ 1024; 256 suits d ≤ 8192),
//   no dynamic shared memory.
extern "C" __global__ void rms_norm_fwd_bf16(const bf16* __restrict__ x,
                                             const bf16* __restrict__ w, bf16* __restrict__ y,
                                             float* __restrict__ rstd, int rows, int d,
                                             float eps) {
    __shared__ float scratch[32];
    const int row = blockIdx.x;
    if (row >= rows) return;
    const bf16* xr = x + (size_t)row * d;
    bf16* yr = y + (size_t)row * d;
    float ss = 0.0f;
    for (int j = threadIdx.x; j < d; j += blockDim.x) {
        const float v = ld_bf16(xr + j);
        ss += v * v;
    }
    ss = block_sum(ss, scratch);
    const float r = 1.0f / sqrtf(ss / (float)d + eps);
    for (int j = threadIdx.x; j < d; j += blockDim.x)
        st_bf16(yr + j, ld_bf16(xr + j) * r * ld_bf16(w + j));
    if (threadIdx.x == 0) rstd[row] = r;
}

// residual_rms_norm_fwd_bf16(const bf16* x, const bf16* a, bf16* x_out, const bf16* w,
//                            bf16* y, float* rstd, int rows, int d, float eps)
//   The decoder's `x = x + a; h = rms_norm(x, w)` in one pass: x_out = bf16(x + a) (x_out
//   may be x itself, updating the residual stream in place) and y = rms_norm(x_out, w),
//   normalising the rounded sum that is stored, so the backward pass sees the same x.
//   CPU reference: x + a then synthscale_model::ops::rms_norm. Shapes and launch as
//   rms_norm_fwd_bf16 (grid (rows), block multiple of 32 ≤ 1024, no dynamic shared memory).
extern "C" __global__ void residual_rms_norm_fwd_bf16(const bf16* x, const bf16* __restrict__ a,
                                                      bf16* x_out, const bf16* __restrict__ w,
                                                      bf16* __restrict__ y,
                                                      float* __restrict__ rstd, int rows, int d,
                                                      float eps) {
    __shared__ float scratch[32];
    const int row = blockIdx.x;
    if (row >= rows) return;
    const size_t base = (size_t)row * d;
    float ss = 0.0f;
    for (int j = threadIdx.x; j < d; j += blockDim.x) {
        const bf16 s = __float2bfloat16_rn(ld_bf16(x + base + j) + ld_bf16(a + base + j));
        x_out[base + j] = s;
        const float v = __bfloat162float(s);
        ss += v * v;
    }
    ss = block_sum(ss, scratch);
    const float r = 1.0f / sqrtf(ss / (float)d + eps);
    // Each thread reads back only the elements it wrote: no barrier needed.
    for (int j = threadIdx.x; j < d; j += blockDim.x)
        st_bf16(y + base + j, ld_bf16(x_out + base + j) * r * ld_bf16(w + j));
    if (threadIdx.x == 0) rstd[row] = r;
}

// rms_norm_bwd_bf16(const bf16* x, const bf16* w, const bf16* dy, const float* rstd,
//                   bf16* dx, float* dw_partial, int rows, int d)
//   x, dy, dx: [rows, d] bf16; w: [d] bf16; rstd: [rows] f32 from the forward pass;
//   dw_partial: [gridDim.x, d] f32, one row of Σ g⊙x·r per block (every element written).
//   Grid (nblocks) with nblocks ≤ rows (e.g. 2 × the SM count; each block takes rows
//   blockIdx.x, blockIdx.x + nblocks, …), block (multiple of 32, ≤ 1024),
//   dynamic shared memory d × 4 bytes. Follow with rms_norm_dw_reduce.
extern "C" __global__ void rms_norm_bwd_bf16(const bf16* __restrict__ x,
                                             const bf16* __restrict__ w,
                                             const bf16* __restrict__ dy,
                                             const float* __restrict__ rstd,
                                             bf16* __restrict__ dx,
                                             float* __restrict__ dw_partial, int rows, int d) {
    extern __shared__ float dw_s[];
    __shared__ float scratch[32];
    for (int j = threadIdx.x; j < d; j += blockDim.x) dw_s[j] = 0.0f;
    for (int row = blockIdx.x; row < rows; row += gridDim.x) {
        const size_t base = (size_t)row * d;
        const float r = rstd[row];
        float dot = 0.0f;
        for (int j = threadIdx.x; j < d; j += blockDim.x) {
            const float xv = ld_bf16(x + base + j), g = ld_bf16(dy + base + j);
            dot += g * ld_bf16(w + j) * xv;
            // Column j is only ever touched by thread j mod blockDim.x: no atomics.
            dw_s[j] += g * xv * r;
        }
        dot = block_sum(dot, scratch);
        const float c = r * r * r * dot / (float)d;
        for (int j = threadIdx.x; j < d; j += blockDim.x) {
            const float xv = ld_bf16(x + base + j), g = ld_bf16(dy + base + j);
            st_bf16(dx + base + j, r * g * ld_bf16(w + j) - xv * c);
        }
    }
    for (int j = threadIdx.x; j < d; j += blockDim.x)
        dw_partial[(size_t)blockIdx.x * d + j] = dw_s[j];
}

// rms_norm_dw_reduce(const float* dw_partial, int nparts, int d, float* dw)
//   dw[j] = Σ_p dw_partial[p, j] in f32 (in a fixed order: deterministic). dw: [d] f32.
//   Grid (ceil(d / blockDim.x)), block (any, e.g. 256), no dynamic shared memory.
extern "C" __global__ void rms_norm_dw_reduce(const float* __restrict__ dw_partial, int nparts,
                                              int d, float* __restrict__ dw) {
    const int j = blockIdx.x * blockDim.x + threadIdx.x;
    if (j >= d) return;
    float s = 0.0f;
    for (int p = 0; p < nparts; ++p) s += dw_partial[(size_t)p * d + j];
    dw[j] = s;
}
