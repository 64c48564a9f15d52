// The optimizer step on the device: the global gradient norm and a multi-tensor AdamW
// update over every parameter in one launch, with no read back to the host.
//
// CPU reference: synthscale_train::optim::AdamW::step (its one-pass f32 path
// AdamW::step_cpu_f32), with synthscale_train::optim::global_norm and
// synthscale_train::optim::clip before it:
//   clip: f = max_norm / (norm + 1e-6), applied (g ← g·f) only if max_norm > 0 and f < 1;
//   m ← m·β1 + g·(1 − β1); v ← v·β2 + g²·(1 − β2);
//   w ← w·(1 − lr·wd) if the tensor decays;
//   w ← w − (m / (sqrt(v)/sqrt(1 − β2ᵗ) + eps))·lr/(1 − β1ᵗ).
// Tolerances: the per-tensor constants are formed in f64 and rounded to f32 as the CPU
// path does, and the update uses round-to-nearest f32 operations without FMA contraction
// in the CPU's order, so for f32 gradients and no clipping an update matches the CPU's to
// the bit. The norm sums squares in f32 within a block and in f64 across blocks (the CPU
// sums each tensor in f32 and the tensors in f64): equal to f32 rounding.
//
// Tensor lists are device arrays, one entry per parameter tensor: pointers as u64,
// sizes (element counts) as u64, flags as u32 (bit 0: weight decay applies; bit 1: the
// gradient is f32, else bf16).
#include "common.cuh"

#define ADAMW_DECAY 1u
#define ADAMW_GRAD_F32 2u

// β^t by binary exponentiation, the way Rust's f64::powi evaluates it, so the bias
// corrections round as on the CPU.
__device__ __forceinline__ double powi(double a, int b) {
    double r = 1.0;
    for (;;) {
        if (b & 1) r *= a;
        b /= 2;
        if (b == 0) break;
        a *= a;
    }
    return r;
}

__device__ __forceinline__ float load_grad(unsigned long long ptr, bool is_f32, size_t i) {
    return is_f32 ? reinterpret_cast<const float*>(ptr)[i]
                  : __bfloat162float(reinterpret_cast<const bf16*>(ptr)[i]);
}

// global_norm_sq_partial(const unsigned long long* grads, const unsigned long long* sizes,
//                        const unsigned int* flags, int n_tensors, float* partials)
//   Stage 1: partials[tensor · gridDim.x + blockIdx.x] = Σ g² over the block's strided
//   share of tensor blockIdx.y. partials: [n_tensors · gridDim.x] f32, every one written.
//   Grid (nblocks_x, n_tensors) (e.g. nblocks_x = 64), block (multiple of 32, ≤ 1024;
//   256 suggested), no dynamic shared memory.
extern "C" __global__ void global_norm_sq_partial(const unsigned long long* __restrict__ grads,
                                                  const unsigned long long* __restrict__ sizes,
                                                  const unsigned int* __restrict__ flags,
                                                  int n_tensors, float* __restrict__ partials) {
    __shared__ float scratch[32];
    const int tensor = blockIdx.y;
    if (tensor >= n_tensors) return;
    const unsigned long long g = grads[tensor];
    const size_t n = sizes[tensor];
    const bool is_f32 = flags[tensor] & ADAMW_GRAD_F32;
    float acc = 0.0f;
    const size_t stride = (size_t)gridDim.x * blockDim.x;
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride) {
        const float x = load_grad(g, is_f32, i);
        acc += x * x;
    }
    acc = block_sum(acc, scratch);
    if (threadIdx.x == 0) partials[(size_t)tensor * gridDim.x + blockIdx.x] = acc;
}

// global_norm_finalize(const float* partials, int n_partials, float* norm)
//   Stage 2: norm[0] = sqrt(Σ partials), summed in f64 in a fixed order (deterministic).
//   Grid (1), block (multiple of 32, ≤ 1024; 1024 suggested), no dynamic shared memory.
extern "C" __global__ void global_norm_finalize(const float* __restrict__ partials,
                                                int n_partials, float* __restrict__ norm) {
    __shared__ double scratch[32];
    double acc = 0.0;
    for (int i = threadIdx.x; i < n_partials; i += blockDim.x) acc += (double)partials[i];
    acc = block_sum_f64(acc, scratch);
    if (threadIdx.x == 0) norm[0] = (float)sqrt(acc);
}

// adamw_multi_tensor(const unsigned long long* params, const unsigned long long* grads,
//                    const unsigned long long* m, const unsigned long long* v,
//                    const unsigned long long* params_bf16,
//                    const unsigned long long* sizes, const unsigned int* flags,
//                    int n_tensors, const float* grad_norm, double max_norm, double lr,
//                    double beta1, double beta2, double eps, double weight_decay, int step)
//   params, m, v: f32 master weights and moments, updated in place; grads: bf16 or f32
//   (flags bit 1); params_bf16: where the bf16 copy of each updated weight goes (0 for
//   none). grad_norm: the device scalar from global_norm_finalize (null: no clipping);
//   step: t, the count of updates including this one (≥ 1).
//   Grid (nblocks_x, n_tensors) (e.g. nblocks_x = ceil(largest size / 256) capped at a few
//   thousand; blocks past a small tensor's end do nothing), block (any; 256 suggested),
//   no dynamic shared memory.
extern "C" __global__ void adamw_multi_tensor(
    const unsigned long long* __restrict__ params, const unsigned long long* __restrict__ grads,
    const unsigned long long* __restrict__ m, const unsigned long long* __restrict__ v,
    const unsigned long long* __restrict__ params_bf16,
    const unsigned long long* __restrict__ sizes, const unsigned int* __restrict__ flags,
    int n_tensors, const float* __restrict__ grad_norm, double max_norm, double lr,
    double beta1, double beta2, double eps, double weight_decay, int step) {
    const int tensor = blockIdx.y;
    if (tensor >= n_tensors) return;
    const size_t n = sizes[tensor];
    if ((size_t)blockIdx.x * blockDim.x >= n) return;
    const unsigned int fl = flags[tensor];
    const bool is_f32 = fl & ADAMW_GRAD_F32;

    // The constants exactly as AdamW::step_cpu_f32 rounds them (f64, then f32).
    const double bc1 = 1.0 - powi(beta1, step);
    const double bc2 = 1.0 - powi(beta2, step);
    const float b1 = (float)beta1, b2 = (float)beta2;
    const float c1 = (float)(1.0 - beta1), c2 = (float)(1.0 - beta2);
    const bool decay = (fl & ADAMW_DECAY) && weight_decay > 0.0;
    // Explicit roundings: nvcc would otherwise fuse 1 − lr·wd into one FMA.
    const float decay_f = (float)__dsub_rn(1.0, __dmul_rn(lr, weight_decay));
    const float inv_sbc2 = (float)(1.0 / sqrt(bc2)), epsf = (float)eps;
    const float step_size = (float)(lr / bc1);
    // clip(): factor max_norm / (norm + 1e-6) in f64, applied only below 1.
    float clip = 1.0f;
    bool clipping = false;
    if (grad_norm != nullptr && max_norm > 0.0) {
        const double f = max_norm / ((double)grad_norm[0] + 1e-6);
        if (f < 1.0) {
            clip = (float)f;
            clipping = true;
        }
    }

    float* w = reinterpret_cast<float*>(params[tensor]);
    float* mt = reinterpret_cast<float*>(m[tensor]);
    float* vt = reinterpret_cast<float*>(v[tensor]);
    bf16* out = reinterpret_cast<bf16*>(params_bf16[tensor]);
    const unsigned long long g = grads[tensor];
    const size_t stride = (size_t)gridDim.x * blockDim.x;
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride) {
        float gj = load_grad(g, is_f32, i);
        if (clipping) gj = __fmul_rn(gj, clip);
        const float mj = __fadd_rn(__fmul_rn(mt[i], b1), __fmul_rn(gj, c1));
        const float vj = __fadd_rn(__fmul_rn(vt[i], b2), __fmul_rn(__fmul_rn(gj, gj), c2));
        const float wj = decay ? __fmul_rn(w[i], decay_f) : w[i];
        const float denom = __fadd_rn(__fmul_rn(__fsqrt_rn(vj), inv_sbc2), epsf);
        const float wn = __fsub_rn(wj, __fmul_rn(__fdiv_rn(mj, denom), step_size));
        mt[i] = mj;
        vt[i] = vj;
        w[i] = wn;
        if (out != nullptr) out[i] = __float2bfloat16_rn(wn);
    }
}
