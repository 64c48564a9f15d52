// Causal self-attention without a T×T tensor, FlashAttention-2 style (Dao 2023), forward
// and backward, on tensor cores (nvcuda::wmma bf16 16×16×16 fragments, sm_80+).
//
// CPU reference: synthscale_model::ops::causal_attention (CausalAttention::cpu_fwd and
// CausalAttention::bwd): O = softmax(scale·QKᵀ, keys j > query i masked)·V for Q, K, V
// [b, h, t, hd], O returned as [b, t, h·hd]; backward dV = Pᵀ·dO, dS = scale·P⊙(dP − D)
// with dP = dO·Vᵀ and D = rowsum(dO⊙O), dQ = dS·K, dK = dSᵀ·Q.
// Tolerances: bf16 Q, K, V, dO in; QKᵀ, P·V and every backward product accumulate in f32
// on tensor cores; the online softmax (max, sum, rescaling of O) and the log-sum-exp are
// f32; P and dS are rounded to bf16 before they enter a product (as in FlashAttention-2),
// so outputs agree with the f32 CPU op on bf16-rounded inputs to about 1e-2 relative.
//
// Tiling: BR = 64 query rows by BC = 64 keys, 4 warps per block, each warp owning 16 rows
// (forward: query rows; backward: keys). Tiles above the diagonal are skipped; only the
// diagonal tile is masked. Shared-memory rows are padded (+8 bf16, +4 f32) against bank
// conflicts. Head dims 64 and 128 are compiled (template HD, one extern "C" entry each).
#include "common.cuh"
#include <mma.h>

using namespace nvcuda;

constexpr int ATT_BR = 64;      // query rows per tile
constexpr int ATT_BC = 64;      // keys per tile
constexpr int ATT_THREADS = 128; // 4 warps × 16 rows
constexpr int ATT_PAD_BF16 = 8;
constexpr int ATT_PAD_F32 = 4;
constexpr float ATT_LOG2E = 1.4426950408889634f;
constexpr float ATT_LN2 = 0.6931471805599453f;

typedef wmma::fragment<wmma::matrix_a, 16, 16, 16, bf16, wmma::row_major> FragA;
typedef wmma::fragment<wmma::matrix_a, 16, 16, 16, bf16, wmma::col_major> FragAT;
typedef wmma::fragment<wmma::matrix_b, 16, 16, 16, bf16, wmma::row_major> FragB;
typedef wmma::fragment<wmma::matrix_b, 16, 16, 16, bf16, wmma::col_major> FragBT;
typedef wmma::fragment<wmma::accumulator, 16, 16, 16, float> FragC;

// Bytes of dynamic shared memory (the launcher must pass exactly these; above 48 KiB it
// must also raise CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES). lib.rs mirrors these.
template <int HD>
constexpr int att_fwd_smem() {
    return 3 * ATT_BR * (HD + ATT_PAD_BF16) * 2        // Q, K, V tiles (bf16)
           + ATT_BR * (ATT_BC + ATT_PAD_F32) * 4       // S (f32)
           + ATT_BR * (ATT_BC + ATT_PAD_BF16) * 2      // P (bf16)
           + ATT_BR * (HD + ATT_PAD_F32) * 4           // O accumulator (f32)
           + 2 * ATT_BR * 4;                           // running max and sum
}
template <int HD>
constexpr int att_bwd_smem() {
    return 4 * ATT_BC * (HD + ATT_PAD_BF16) * 2        // K, V, Q, dO tiles (bf16)
           + 2 * ATT_BC * (ATT_BR + ATT_PAD_F32) * 4   // Sᵀ, dPᵀ (f32)
           + 2 * ATT_BC * (ATT_BR + ATT_PAD_BF16) * 2  // Pᵀ, dSᵀ (bf16)
           + 2 * ATT_BR * 4;                           // log-sum-exp, D of the query rows
}
static_assert(att_fwd_smem<64>() == 72192, "lib.rs mirrors this size");
static_assert(att_fwd_smem<128>() == 113152, "lib.rs mirrors this size");
static_assert(att_bwd_smem<64>() == 90624, "lib.rs mirrors this size");
static_assert(att_bwd_smem<128>() == 123392, "lib.rs mirrors this size");

// Copies `nrows` rows of HD bf16 (row r at src + r·src_stride) into a padded shared tile,
// 16 bytes per load, zero-filling rows at or past `valid`.
template <int HD>
__device__ __forceinline__ void load_tile(bf16* dst, const bf16* src, size_t src_stride,
                                          int nrows, int valid) {
    constexpr int VEC = HD / 8;
    constexpr int LD = HD + ATT_PAD_BF16;
    for (int i = threadIdx.x; i < nrows * VEC; i += ATT_THREADS) {
        const int r = i / VEC, c = (i % VEC) * 8;
        uint4 val = make_uint4(0, 0, 0, 0);
        if (r < valid) val = *reinterpret_cast<const uint4*>(src + r * src_stride + c);
        *reinterpret_cast<uint4*>(dst + r * LD + c) = val;
    }
}

// ---------------------------------------------------------------------------------------
// Forward.
template <int HD>
__device__ __forceinline__ void flash_attn_fwd(const bf16* __restrict__ q,
                                               const bf16* __restrict__ k,
                                               const bf16* __restrict__ v,
                                               bf16* __restrict__ o, float* __restrict__ lse,
                                               int H, int T, float scale) {
#if __CUDA_ARCH__ >= 800
    constexpr int LDB = HD + ATT_PAD_BF16, LDS = ATT_BC + ATT_PAD_F32;
    constexpr int LDP = ATT_BC + ATT_PAD_BF16, LDO = HD + ATT_PAD_F32;
    extern __shared__ __align__(128) unsigned char smem[];
    bf16* q_s = reinterpret_cast<bf16*>(smem);
    bf16* k_s = q_s + ATT_BR * LDB;
    bf16* v_s = k_s + ATT_BC * LDB;
    float* s_s = reinterpret_cast<float*>(v_s + ATT_BC * LDB);
    bf16* p_s = reinterpret_cast<bf16*>(s_s + ATT_BR * LDS);
    float* o_s = reinterpret_cast<float*>(p_s + ATT_BR * LDP);
    float* m_s = o_s + ATT_BR * LDO;
    float* l_s = m_s + ATT_BR;

    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    const int qt = gridDim.x - 1 - blockIdx.x; // the longest rows first
    const int bh = blockIdx.y, bi = bh / H, hi = bh % H;
    const int q0 = qt * ATT_BR;
    const size_t head = (size_t)bh * T * HD;
    const float scale_log2 = scale * ATT_LOG2E;

    load_tile<HD>(q_s, q + head + (size_t)q0 * HD, HD, ATT_BR, T - q0);
    for (int i = threadIdx.x; i < ATT_BR * LDO; i += ATT_THREADS) o_s[i] = 0.0f;
    for (int i = threadIdx.x; i < ATT_BR; i += ATT_THREADS) {
        m_s[i] = -SS_INF;
        l_s[i] = 0.0f;
    }

    const int wr = warp * 16; // this warp's first row in the tile
    // BR == BC: key tiles 0..qt hold every key at or before the tile's last query.
    for (int kt = 0; kt <= qt; ++kt) {
        const int k0 = kt * ATT_BC;
        __syncthreads(); // the previous tile's K and V are no longer read
        load_tile<HD>(k_s, k + head + (size_t)k0 * HD, HD, ATT_BC, T - k0);
        load_tile<HD>(v_s, v + head + (size_t)k0 * HD, HD, ATT_BC, T - k0);
        __syncthreads();

        // S = Q Kᵀ for this warp's 16 rows.
#pragma unroll
        for (int n = 0; n < ATT_BC / 16; ++n) {
            FragC acc;
            wmma::fill_fragment(acc, 0.0f);
#pragma unroll
            for (int kk = 0; kk < HD / 16; ++kk) {
                FragA a;
                FragBT b;
                wmma::load_matrix_sync(a, q_s + wr * LDB + kk * 16, LDB);
                wmma::load_matrix_sync(b, k_s + n * 16 * LDB + kk * 16, LDB);
                wmma::mma_sync(acc, a, b, acc);
            }
            wmma::store_matrix_sync(s_s + wr * LDS + n * 16, acc, LDS, wmma::mem_row_major);
        }
        __syncwarp();

        // Online softmax over the row, in the log2 domain; rescale O's row.
        const bool diag = kt == qt;
        for (int r = 0; r < 16; ++r) {
            const int row = wr + r, qg = q0 + row;
            float s0 = s_s[row * LDS + lane] * scale_log2;
            float s1 = s_s[row * LDS + lane + 32] * scale_log2;
            const int kg0 = k0 + lane, kg1 = k0 + lane + 32;
            if (kg0 >= T || (diag && kg0 > qg)) s0 = -SS_INF;
            if (kg1 >= T || (diag && kg1 > qg)) s1 = -SS_INF;
            const float m_old = m_s[row], l_old = l_s[row];
            const float m_new = fmaxf(m_old, warp_max(fmaxf(s0, s1)));
            const float m_use = m_new == -SS_INF ? 0.0f : m_new;
            const float p0 = exp2f(s0 - m_use), p1 = exp2f(s1 - m_use);
            const float alpha = exp2f(m_old - m_use);
            const float psum = warp_sum(p0 + p1);
            p_s[row * LDP + lane] = __float2bfloat16_rn(p0);
            p_s[row * LDP + lane + 32] = __float2bfloat16_rn(p1);
            for (int c = lane; c < HD; c += 32) o_s[row * LDO + c] *= alpha;
            __syncwarp();
            if (lane == 0) {
                m_s[row] = m_new;
                l_s[row] = l_old * alpha + psum;
            }
        }
        __syncwarp();

        // O += P V for this warp's rows (O lives in shared memory, already rescaled).
#pragma unroll
        for (int n = 0; n < HD / 16; ++n) {
            FragC acc;
            wmma::load_matrix_sync(acc, o_s + wr * LDO + n * 16, LDO, wmma::mem_row_major);
#pragma unroll
            for (int kk = 0; kk < ATT_BC / 16; ++kk) {
                FragA a;
                FragB b;
                wmma::load_matrix_sync(a, p_s + wr * LDP + kk * 16, LDP);
                wmma::load_matrix_sync(b, v_s + kk * 16 * LDB + n * 16, LDB);
                wmma::mma_sync(acc, a, b, acc);
            }
            wmma::store_matrix_sync(o_s + wr * LDO + n * 16, acc, LDO, wmma::mem_row_major);
        }
        __syncwarp();
    }

    // O / l, written as [b, t, h, hd]; lse = ln Σ exp(scale·s) = (m + log2 l)·ln 2.
    for (int r = 0; r < 16; ++r) {
        const int row = wr + r, qg = q0 + row;
        if (qg >= T) break;
        const float inv = 1.0f / l_s[row];
        bf16* dst = o + (((size_t)bi * T + qg) * H + hi) * HD;
        for (int c = 2 * lane; c < HD; c += 64) {
            const float2 val = make_float2(o_s[row * LDO + c] * inv, o_s[row * LDO + c + 1] * inv);
            *reinterpret_cast<__nv_bfloat162*>(dst + c) = __float22bfloat162_rn(val);
        }
        if (lane == 0) lse[(size_t)bh * T + qg] = (m_s[row] + log2f(l_s[row])) * ATT_LN2;
    }
#else
    __trap(); // bf16 tensor cores need sm_80+
#endif
}

// flash_attn_fwd_bf16_hd64 / flash_attn_fwd_bf16_hd128(const bf16* q, const bf16* k,
//     const bf16* v, bf16* o, float* lse, int h, int t, float scale)
//   q, k, v: [b, h, t, HD] bf16 contiguous, 16-byte aligned; o: [b, t, h, HD] bf16 (the
//   heads side by side, [b, t, h·HD]); lse: [b, h, t] f32, the natural log-sum-exp of each
//   query row's scaled scores (kept for the backward pass). scale: usually 1/sqrt(HD).
//   Grid (ceil(t / 64), b·h), block (128), dynamic shared memory 72192 bytes (HD 64) or
//   113152 bytes (HD 128).
extern "C" __global__ void __launch_bounds__(ATT_THREADS)
    flash_attn_fwd_bf16_hd64(const bf16* q, const bf16* k, const bf16* v, bf16* o, float* lse,
                             int h, int t, float scale) {
    flash_attn_fwd<64>(q, k, v, o, lse, h, t, scale);
}
extern "C" __global__ void __launch_bounds__(ATT_THREADS)
    flash_attn_fwd_bf16_hd128(const bf16* q, const bf16* k, const bf16* v, bf16* o,
                              float* lse, int h, int t, float scale) {
    flash_attn_fwd<128>(q, k, v, o, lse, h, t, scale);
}

// ---------------------------------------------------------------------------------------
// Backward, step 1: D = rowsum(dO ⊙ O), and dQ's f32 accumulator zeroed.

// flash_attn_bwd_preprocess_bf16(const bf16* o, const bf16* d_o, float* d, float* dq_accum,
//                                int b, int h, int t, int hd)
//   o, d_o: [b, t, h, hd] bf16 (the forward output and its gradient); d: [b, h, t] f32;
//   dq_accum: [b, h, t, hd] f32, zeroed here for flash_attn_bwd_*. One warp per row:
//   grid (ceil(b·h·t / 4)), block (128), no dynamic shared memory.
extern "C" __global__ void flash_attn_bwd_preprocess_bf16(const bf16* __restrict__ o,
                                                          const bf16* __restrict__ d_o,
                                                          float* __restrict__ d,
                                                          float* __restrict__ dq_accum, int b,
                                                          int h, int t, int hd) {
    const size_t row = (size_t)blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5);
    const int lane = threadIdx.x & 31;
    if (row >= (size_t)b * h * t) return;
    const int p = (int)(row % t);
    const size_t bh = row / t;
    const int hi = (int)(bh % h);
    const size_t bi = bh / h;
    const size_t src = ((bi * t + p) * h + hi) * hd;
    float acc = 0.0f;
    for (int c = lane; c < hd; c += 32) {
        acc += ld_bf16(o + src + c) * ld_bf16(d_o + src + c);
        dq_accum[row * hd + c] = 0.0f;
    }
    acc = warp_sum(acc);
    if (lane == 0) d[row] = acc;
}

// ---------------------------------------------------------------------------------------
// Backward, step 2: one block per key tile; dK and dV accumulate in registers over the
// query tiles at or below the diagonal, dQ in f32 atomics.
template <int HD>
__device__ __forceinline__ void flash_attn_bwd(
    const bf16* __restrict__ q, const bf16* __restrict__ k, const bf16* __restrict__ v,
    const bf16* __restrict__ d_o, const float* __restrict__ lse, const float* __restrict__ dvec,
    float* __restrict__ dq_accum, bf16* __restrict__ dk, bf16* __restrict__ dv, int H, int T,
    float scale) {
#if __CUDA_ARCH__ >= 800
    constexpr int LDB = HD + ATT_PAD_BF16, LDS = ATT_BR + ATT_PAD_F32;
    constexpr int LDP = ATT_BR + ATT_PAD_BF16;
    extern __shared__ __align__(128) unsigned char smem[];
    bf16* k_s = reinterpret_cast<bf16*>(smem);
    bf16* v_s = k_s + ATT_BC * LDB;
    bf16* q_s = v_s + ATT_BC * LDB;
    bf16* do_s = q_s + ATT_BR * LDB;
    float* st_s = reinterpret_cast<float*>(do_s + ATT_BR * LDB);
    float* dpt_s = st_s + ATT_BC * LDS;
    bf16* pt_s = reinterpret_cast<bf16*>(dpt_s + ATT_BC * LDS);
    bf16* dst_s = pt_s + ATT_BC * LDP;
    float* lse_s = reinterpret_cast<float*>(dst_s + ATT_BC * LDP);
    float* d_s = lse_s + ATT_BR;

    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    const int kt = blockIdx.x; // low key tiles see the most query tiles: they go first
    const int bh = blockIdx.y, bi = bh / H, hi = bh % H;
    const int k0 = kt * ATT_BC;
    const size_t head = (size_t)bh * T * HD;
    const size_t do_stride = (size_t)H * HD;
    const float scale_log2 = scale * ATT_LOG2E;
    const int wr = warp * 16; // this warp's first key in the tile

    load_tile<HD>(k_s, k + head + (size_t)k0 * HD, HD, ATT_BC, T - k0);
    load_tile<HD>(v_s, v + head + (size_t)k0 * HD, HD, ATT_BC, T - k0);

    FragC dk_acc[HD / 16], dv_acc[HD / 16];
#pragma unroll
    for (int n = 0; n < HD / 16; ++n) {
        wmma::fill_fragment(dk_acc[n], 0.0f);
        wmma::fill_fragment(dv_acc[n], 0.0f);
    }

    const int nq = (T + ATT_BR - 1) / ATT_BR;
    for (int qt = kt; qt < nq; ++qt) { // BR == BC: query tiles below kt see none of these keys
        const int q0 = qt * ATT_BR;
        __syncthreads(); // the previous tile's Q, dO, dSᵀ are no longer read
        load_tile<HD>(q_s, q + head + (size_t)q0 * HD, HD, ATT_BR, T - q0);
        load_tile<HD>(do_s, d_o + ((size_t)bi * T + q0) * do_stride + (size_t)hi * HD,
                      do_stride, ATT_BR, T - q0);
        for (int i = threadIdx.x; i < ATT_BR; i += ATT_THREADS) {
            const bool ok = q0 + i < T;
            lse_s[i] = ok ? lse[(size_t)bh * T + q0 + i] * ATT_LOG2E : 0.0f;
            d_s[i] = ok ? dvec[(size_t)bh * T + q0 + i] : 0.0f;
        }
        __syncthreads();

        // Sᵀ = K Qᵀ and dPᵀ = V dOᵀ for this warp's 16 keys. (Loops that need no static
        // fragment index stay rolled: HD 128 then needs ~175 of its 255 registers.)
#pragma unroll 1
        for (int n = 0; n < ATT_BR / 16; ++n) {
            FragC acc_s, acc_p;
            wmma::fill_fragment(acc_s, 0.0f);
            wmma::fill_fragment(acc_p, 0.0f);
#pragma unroll
            for (int kk = 0; kk < HD / 16; ++kk) {
                FragA a;
                FragBT b;
                wmma::load_matrix_sync(a, k_s + wr * LDB + kk * 16, LDB);
                wmma::load_matrix_sync(b, q_s + n * 16 * LDB + kk * 16, LDB);
                wmma::mma_sync(acc_s, a, b, acc_s);
                wmma::load_matrix_sync(a, v_s + wr * LDB + kk * 16, LDB);
                wmma::load_matrix_sync(b, do_s + n * 16 * LDB + kk * 16, LDB);
                wmma::mma_sync(acc_p, a, b, acc_p);
            }
            wmma::store_matrix_sync(st_s + wr * LDS + n * 16, acc_s, LDS, wmma::mem_row_major);
            wmma::store_matrix_sync(dpt_s + wr * LDS + n * 16, acc_p, LDS, wmma::mem_row_major);
        }
        __syncwarp();

        // Pᵀ = exp(scale·Sᵀ − lse), dSᵀ = scale·Pᵀ⊙(dPᵀ − D); masked entries are 0.
        for (int r = 0; r < 16; ++r) {
            const int row = wr + r, kg = k0 + row;
#pragma unroll
            for (int h2 = 0; h2 < 2; ++h2) {
                const int c = lane + 32 * h2, qg = q0 + c;
                float p = 0.0f, ds = 0.0f;
                if (qg < T && kg <= qg) {
                    p = exp2f(st_s[row * LDS + c] * scale_log2 - lse_s[c]);
                    ds = scale * p * (dpt_s[row * LDS + c] - d_s[c]);
                }
                pt_s[row * LDP + c] = __float2bfloat16_rn(p);
                dst_s[row * LDP + c] = __float2bfloat16_rn(ds);
            }
        }
        __syncwarp();

        // dV += Pᵀ dO and dK += dSᵀ Q for this warp's keys.
#pragma unroll
        for (int n = 0; n < HD / 16; ++n) {
#pragma unroll 1
            for (int kk = 0; kk < ATT_BR / 16; ++kk) {
                FragA a;
                FragB b;
                wmma::load_matrix_sync(a, pt_s + wr * LDP + kk * 16, LDP);
                wmma::load_matrix_sync(b, do_s + kk * 16 * LDB + n * 16, LDB);
                wmma::mma_sync(dv_acc[n], a, b, dv_acc[n]);
                wmma::load_matrix_sync(a, dst_s + wr * LDP + kk * 16, LDP);
                wmma::load_matrix_sync(b, q_s + kk * 16 * LDB + n * 16, LDB);
                wmma::mma_sync(dk_acc[n], a, b, dk_acc[n]);
            }
        }
        __syncthreads(); // every warp's rows of dSᵀ are written

        // dQ (this warp's 16 query rows) += dS K, added to the f32 accumulator. Sᵀ's rows
        // of this warp are free now: they stage each 16×16 block.
        float* scratch = st_s + wr * LDS;
#pragma unroll 1
        for (int n = 0; n < HD / 16; ++n) {
            FragC acc;
            wmma::fill_fragment(acc, 0.0f);
#pragma unroll
            for (int kk = 0; kk < ATT_BC / 16; ++kk) {
                FragAT a; // dS = (dSᵀ)ᵀ: dSᵀ read column-major
                FragB b;
                wmma::load_matrix_sync(a, dst_s + kk * 16 * LDP + wr, LDP);
                wmma::load_matrix_sync(b, k_s + kk * 16 * LDB + n * 16, LDB);
                wmma::mma_sync(acc, a, b, acc);
            }
            wmma::store_matrix_sync(scratch, acc, LDS, wmma::mem_row_major);
            __syncwarp();
#pragma unroll
            for (int e = lane; e < 256; e += 32) {
                const int rr = e >> 4, cc = e & 15, qg = q0 + wr + rr;
                if (qg < T)
                    atomicAdd(dq_accum + head + (size_t)qg * HD + n * 16 + cc,
                              scratch[rr * LDS + cc]);
            }
            __syncwarp();
        }
    }

    // dK, dV: stage each warp's 16 × HD block through shared memory (the Sᵀ and dPᵀ
    // buffers, 16·(HD + 4) floats per warp) and store bf16.
    __syncthreads();
    constexpr int LDE = HD + ATT_PAD_F32;
    static_assert(4 * 16 * LDE <= 2 * ATT_BC * LDS, "epilogue staging fits in Sᵀ and dPᵀ");
    float* stage = st_s + warp * 16 * LDE;
#pragma unroll
    for (int which = 0; which < 2; ++which) {
#pragma unroll
        for (int n = 0; n < HD / 16; ++n)
            wmma::store_matrix_sync(stage + n * 16, which == 0 ? dk_acc[n] : dv_acc[n], LDE,
                                    wmma::mem_row_major);
        __syncwarp();
        bf16* out = which == 0 ? dk : dv;
        for (int r = 0; r < 16; ++r) {
            const int kg = k0 + wr + r;
            if (kg >= T) break;
            for (int c = 2 * lane; c < HD; c += 64) {
                const float2 val = make_float2(stage[r * LDE + c], stage[r * LDE + c + 1]);
                *reinterpret_cast<__nv_bfloat162*>(out + head + (size_t)kg * HD + c) =
                    __float22bfloat162_rn(val);
            }
        }
        __syncwarp();
    }
#else
    __trap(); // bf16 tensor cores need sm_80+
#endif
}

// flash_attn_bwd_bf16_hd64 / flash_attn_bwd_bf16_hd128(const bf16* q, const bf16* k,
//     const bf16* v, const bf16* d_o, const float* lse, const float* d, float* dq_accum,
//     bf16* dk, bf16* dv, int h, int t, float scale)
//   q, k, v: [b, h, t, HD] bf16 (the forward inputs); d_o: [b, t, h, HD] bf16 (the gradient
//   of the forward's o); lse: [b, h, t] f32 from the forward; d, dq_accum: [b, h, t] f32 and
//   [b, h, t, HD] f32 (zeroed) from flash_attn_bwd_preprocess_bf16; dk, dv: [b, h, t, HD]
//   bf16, every element written. Then flash_attn_bwd_dq_convert turns dq_accum into dQ.
//   Grid (ceil(t / 64), b·h), block (128), dynamic shared memory 90624 bytes (HD 64) or
//   123392 bytes (HD 128).
extern "C" __global__ void __launch_bounds__(ATT_THREADS)
    flash_attn_bwd_bf16_hd64(const bf16* q, const bf16* k, const bf16* v, const bf16* d_o,
                             const float* lse, const float* d, float* dq_accum, bf16* dk,
                             bf16* dv, int h, int t, float scale) {
    flash_attn_bwd<64>(q, k, v, d_o, lse, d, dq_accum, dk, dv, h, t, scale);
}
extern "C" __global__ void __launch_bounds__(ATT_THREADS)
    flash_attn_bwd_bf16_hd128(const bf16* q, const bf16* k, const bf16* v, const bf16* d_o,
                              const float* lse, const float* d, float* dq_accum, bf16* dk,
                              bf16* dv, int h, int t, float scale) {
    flash_attn_bwd<128>(q, k, v, d_o, lse, d, dq_accum, dk, dv, h, t, scale);
}

// flash_attn_bwd_dq_convert(const float* dq_accum, bf16* dq, unsigned long long n)
//   dq = bf16(dq_accum), n = b·h·t·hd elements ([b, h, t, hd]). Grid-stride: any grid,
//   block 256, no dynamic shared memory.
extern "C" __global__ void flash_attn_bwd_dq_convert(const float* __restrict__ dq_accum,
                                                     bf16* __restrict__ dq,
                                                     unsigned long long n) {
    const size_t stride = (size_t)gridDim.x * blockDim.x;
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride)
        dq[i] = __float2bfloat16_rn(dq_accum[i]);
}
