// SwiGLU's gate, forward and backward, elementwise.
//
// CPU reference: synthscale_model::ops::swiglu (SwiGlu::cpu_fwd) and its backward
// SwiGluGrad::cpu_fwd: out = silu(gate)·up; dgate = g·up·σ(x)(1 + x(1 − σ(x))),
// dup = g·silu(x).
// Tolerances: bf16 in and out, computed in f32 (σ with expf, not the fast intrinsic), so
// results equal the f32 CPU op on the bf16-rounded inputs up to one bf16 rounding.
#include "common.cuh"

__device__ __forceinline__ float sigmoidf(float x) { return 1.0f / (1.0f + expf(-x)); }

// swiglu_fwd_bf16(const bf16* gate, const bf16* up, bf16* out, unsigned long long n)
//   gate, up, out: n bf16 elements, contiguous. Grid-stride: any grid (e.g.
//   min(ceil(n / 256), 16 × SMs)), block 256, no dynamic shared memory.
extern "C" __global__ void swiglu_fwd_bf16(const bf16* __restrict__ gate,
                                           const bf16* __restrict__ up, bf16* __restrict__ out,
                                           unsigned long long n) {
    const size_t stride = (size_t)gridDim.x * blockDim.x;
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride) {
        const float x = ld_bf16(gate + i);
        st_bf16(out + i, x * sigmoidf(x) * ld_bf16(up + i));
    }
}

// swiglu_bwd_bf16(const bf16* gate, const bf16* up, const bf16* dout, bf16* dgate,
//                 bf16* dup, unsigned long long n)
//   All n bf16 elements, contiguous. Launch as swiglu_fwd_bf16.
extern "C" __global__ void swiglu_bwd_bf16(const bf16* __restrict__ gate,
                                           const bf16* __restrict__ up,
                                           const bf16* __restrict__ dout,
                                           bf16* __restrict__ dgate, bf16* __restrict__ dup,
                                           unsigned long long n) {
    const size_t stride = (size_t)gridDim.x * blockDim.x;
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride) {
        const float x = ld_bf16(gate + i), u = ld_bf16(up + i), g = ld_bf16(dout + i);
        const float s = sigmoidf(x);
        st_bf16(dgate + i, g * u * s * (1.0f + x * (1.0f - s)));
        st_bf16(dup + i, g * x * s);
    }
}
