//! The CPU path's attention: one row's query heads over a sequence's cached keys and
//! values, with AVX2+FMA where the CPU has it.

/// The shape of one row's attention over a sequence's cache.
#[derive(Clone, Copy)]
pub(super) struct AttnShape {
    pub n_kv_heads: usize,
    pub head_dim: usize,
    /// Positions attended over (causal: up to and including the row's own).
    pub len: usize,
    pub scale: f32,
}

/// One row's query heads and its sequence's cached keys and values.
#[derive(Clone, Copy)]
pub(super) struct AttnRow<'a> {
    /// The query heads, `n_heads · head_dim`.
    pub q: &'a [f32],
    /// The cached keys, `n_kv_heads · head_dim` per position.
    pub k: &'a [f32],
    /// The cached values, laid out as the keys.
    pub v: &'a [f32],
    pub shape: AttnShape,
}

/// Softmax attention of one row's query heads (`q`, `n_heads · head_dim`) over a cache of
/// `len` positions (each `n_kv_heads · head_dim` keys, then as many values); query head `h`
/// reads KV head `h / (n_heads / n_kv_heads)`. Writes `out` (`n_heads · head_dim`). Runs
/// AVX2+FMA code where the CPU has it (decided at run time; a release build targets
/// baseline x86-64, where the compiler may only use SSE2), portable code elsewhere.
pub(super) fn attend(row: AttnRow<'_>, scores: &mut Vec<f32>, out: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
        {
            // SAFETY: the CPU supports the features the function is compiled for.
            unsafe { attend_avx2(row, scores, out) };
            return;
        }
    }
    attend_generic::<false>(row, scores, out)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn attend_avx2(row: AttnRow<'_>, scores: &mut Vec<f32>, out: &mut [f32]) {
    attend_generic::<true>(row, scores, out)
}

#[inline(always)]
fn attend_generic<const FMA: bool>(row: AttnRow<'_>, scores: &mut Vec<f32>, out: &mut [f32]) {
    let AttnRow { q, k, v, shape: sh } = row;
    let (hd, len) = (sh.head_dim, sh.len);
    let nh = q.len() / hd;
    let group = nh / sh.n_kv_heads;
    let stride = sh.n_kv_heads * hd;
    scores.clear();
    scores.resize(nh * len, 0.0);
    for (j, krow) in k.chunks_exact(stride).take(len).enumerate() {
        for (h, qh) in q.chunks_exact(hd).enumerate() {
            let kh = &krow[(h / group) * hd..][..hd];
            scores[h * len + j] = dot::<FMA>(qh, kh) * sh.scale;
        }
    }
    for row in scores.chunks_exact_mut(len) {
        let m = row.iter().cloned().fold(f32::NEG_INFINITY, f32::max);
        let mut sum = 0f32;
        for x in row.iter_mut() {
            *x = (*x - m).exp();
            sum += *x;
        }
        let inv = 1.0 / sum;
        for x in row.iter_mut() {
            *x *= inv;
        }
    }
    out.fill(0.0);
    for (j, vrow) in v.chunks_exact(stride).take(len).enumerate() {
        for (h, oh) in out.chunks_exact_mut(hd).enumerate() {
            let w = scores[h * len + j];
            axpy::<FMA>(w, &vrow[(h / group) * hd..][..hd], oh);
        }
    }
}

/// `a · b + c`, fused where the caller is compiled with FMA.
#[inline(always)]
fn madd<const FMA: bool>(a: f32, b: f32, c: f32) -> f32 {
    if FMA {
        a.mul_add(b, c)
    } else {
        a * b + c
    }
}

/// `a · b`. With `FMA` only from code compiled for (and run on) AVX2+FMA.
#[inline(always)]
fn dot<const FMA: bool>(a: &[f32], b: &[f32]) -> f32 {
    #[cfg(target_arch = "x86_64")]
    if FMA {
        // SAFETY: FMA is true only inside `attend_avx2`, called after the CPU check.
        return unsafe { dot_avx2(a, b) };
    }
    let mut acc = [0f32; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for l in 0..8 {
            acc[l] += x[l] * y[l];
        }
    }
    let mut s: f32 = acc.iter().sum();
    for (x, y) in ra.iter().zip(rb) {
        s += x * y;
    }
    s
}

/// `y += w · x`.
#[inline(always)]
fn axpy<const FMA: bool>(w: f32, x: &[f32], y: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if FMA {
        // SAFETY: as in `dot`.
        return unsafe { axpy_avx2(w, x, y) };
    }
    for (o, &v) in y.iter_mut().zip(x) {
        *o = madd::<FMA>(w, v, *o);
    }
}

/// Explicit 8-lane FMAs: the compiler turns neither loop above into vector code by itself
/// once the multiply-adds are fused (it keeps them scalar, in order).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
#[inline]
unsafe fn dot_avx2(a: &[f32], b: &[f32]) -> f32 {
    use std::arch::x86_64::*;
    let n = a.len().min(b.len());
    let (pa, pb) = (a.as_ptr(), b.as_ptr());
    let (mut acc0, mut acc1) = (_mm256_setzero_ps(), _mm256_setzero_ps());
    let mut i = 0;
    while i + 16 <= n {
        acc0 = _mm256_fmadd_ps(_mm256_loadu_ps(pa.add(i)), _mm256_loadu_ps(pb.add(i)), acc0);
        acc1 = _mm256_fmadd_ps(
            _mm256_loadu_ps(pa.add(i + 8)),
            _mm256_loadu_ps(pb.add(i + 8)),
            acc1,
        );
        i += 16;
    }
    if i + 8 <= n {
        acc0 = _mm256_fmadd_ps(_mm256_loadu_ps(pa.add(i)), _mm256_loadu_ps(pb.add(i)), acc0);
        i += 8;
    }
    let acc = _mm256_add_ps(acc0, acc1);
    let s = _mm_add_ps(_mm256_castps256_ps128(acc), _mm256_extractf128_ps(acc, 1));
    let s = _mm_hadd_ps(s, s);
    let mut r = _mm_cvtss_f32(_mm_hadd_ps(s, s));
    while i < n {
        r = a[i].mul_add(b[i], r);
        i += 1;
    }
    r
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
#[inline]
unsafe fn axpy_avx2(w: f32, x: &[f32], y: &mut [f32]) {
    use std::arch::x86_64::*;
    let n = x.len().min(y.len());
    let (px, py) = (x.as_ptr(), y.as_mut_ptr());
    let wv = _mm256_set1_ps(w);
    let mut i = 0;
    while i + 8 <= n {
        let v = _mm256_fmadd_ps(wv, _mm256_loadu_ps(px.add(i)), _mm256_loadu_ps(py.add(i)));
        _mm256_storeu_ps(py.add(i), v);
        i += 8;
    }
    while i < n {
        y[i] = w.mul_add(x[i], y[i]);
        i += 1;
    }
}
