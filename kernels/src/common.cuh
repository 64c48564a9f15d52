// Shared helpers for synthscale's kernels: bf16 loads and stores as f32, and warp and
// block reductions. Every kernel reads bf16 activations, computes and accumulates in f32,
// and rounds to bf16 only when it stores.
#pragma once

#include <cuda_bf16.h>
#include <stdint.h>

typedef __nv_bfloat16 bf16;

#define SS_INF __int_as_float(0x7f800000)

__device__ __forceinline__ float ld_bf16(const bf16* p) { return __bfloat162float(*p); }

__device__ __forceinline__ void st_bf16(bf16* p, float x) { *p = __float2bfloat16_rn(x); }

__device__ __forceinline__ float warp_sum(float x) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) x += __shfl_xor_sync(0xffffffffu, x, o);
    return x;
}

__device__ __forceinline__ double warp_sum_f64(double x) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) x += __shfl_xor_sync(0xffffffffu, x, o);
    return x;
}

__device__ __forceinline__ float warp_max(float x) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) x = fmaxf(x, __shfl_xor_sync(0xffffffffu, x, o));
    return x;
}

// Sum over the block, returned to every thread. blockDim.x must be a multiple of 32 (at
// most 1024); `scratch` is 32 floats of shared memory. Ends with the scratch free again.
__device__ __forceinline__ float block_sum(float x, float* scratch) {
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nwarps = blockDim.x >> 5;
    x = warp_sum(x);
    __syncthreads(); // scratch may still be read by a previous call
    if (lane == 0) scratch[warp] = x;
    __syncthreads();
    x = lane < nwarps ? scratch[lane] : 0.0f;
    return warp_sum(x);
}

__device__ __forceinline__ double block_sum_f64(double x, double* scratch) {
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nwarps = blockDim.x >> 5;
    x = warp_sum_f64(x);
    __syncthreads();
    if (lane == 0) scratch[warp] = x;
    __syncthreads();
    x = lane < nwarps ? scratch[lane] : 0.0;
    return warp_sum_f64(x);
}

// Online softmax state (running max m, sum s of exp(x - m)) merged across a warp.
__device__ __forceinline__ void warp_merge_max_sum(float& m, float& s) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) {
        const float m2 = __shfl_xor_sync(0xffffffffu, m, o);
        const float s2 = __shfl_xor_sync(0xffffffffu, s, o);
        const float mn = fmaxf(m, m2);
        // exp(-inf - -inf) would be NaN: a side that has seen nothing contributes nothing.
        const float a = m == -SS_INF ? 0.0f : s * expf(m - mn);
        const float b = m2 == -SS_INF ? 0.0f : s2 * expf(m2 - mn);
        m = mn;
        s = a + b;
    }
}

// The same merge over the block, returned to every thread; `scratch` is 64 floats.
__device__ __forceinline__ void block_merge_max_sum(float& m, float& s, float* scratch) {
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nwarps = blockDim.x >> 5;
    warp_merge_max_sum(m, s);
    __syncthreads();
    if (lane == 0) {
        scratch[warp] = m;
        scratch[32 + warp] = s;
    }
    __syncthreads();
    m = lane < nwarps ? scratch[lane] : -SS_INF;
    s = lane < nwarps ? scratch[32 + lane] : 0.0f;
    warp_merge_max_sum(m, s);
}
