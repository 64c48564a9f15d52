//! Answers read off fitted laws: plateaus, tokens to reach a loss (and so speed-ups),
//! the optimal synthetic ratio, and compute-optimal model size.
//!
//! Every function returns `None` where the quantity does not exist (a loss below the
//! asymptote is never reached; a plateau beyond 1e30 tokens is not reported), never NaN.

use crate::law::Law;

/// Largest token count searched for a plateau.
pub const MAX_TOKENS: f64 = 1e30;

/// Relative gain of one more doubling at `d`: `(L(d) − L(2d)) / L(d)`, at model size `n`.
pub fn doubling_gain(law: Law, theta: &[f64], n: f64, d: f64) -> f64 {
    let l1 = law.predict(theta, n, d);
    let l2 = law.predict(theta, n, 2.0 * d);
    (l1 - l2) / l1
}

/// The doubling plateau: the token count D after which every further doubling of D improves
/// the loss by less than the fraction `eps` of the loss, `(L(D) − L(2D))/L(D) < eps` for
/// all larger D up to `max_d`. The gain rises and then falls for the rectified law (slow
/// start while `D^beta < D_l`), so this is the last crossing below `max_d`, found on a grid
/// of 20 points per decade from 1 to `max_d` and refined by bisection. `Some(1.0)` when the
/// gain is below `eps` everywhere; `None` when it is still above at `max_d` (the caller
/// passes a multiple of the largest observed budget: a plateau further out is not read off
/// a law fitted decades below it).
pub fn plateau_doubling(law: Law, theta: &[f64], n: f64, eps: f64, max_d: f64) -> Option<f64> {
    let max_d = max_d.min(MAX_TOKENS);
    if max_d.is_nan() || max_d <= 1.0 {
        return None;
    }
    let steps = ((max_d.log10() * 20.0).ceil() as usize).max(2);
    let ln_max = max_d.ln();
    let at = |i: usize| (ln_max * i as f64 / steps as f64).exp();
    let gain = |d: f64| doubling_gain(law, theta, n, d);
    if !gain(max_d).is_finite() || gain(max_d) >= eps {
        return None;
    }
    let last_above = (0..steps).rev().find(|&i| gain(at(i)) >= eps)?;
    // Bisect in ln D between the last grid point at or above eps and the next one below.
    let (mut lo, mut hi) = (at(last_above).ln(), at(last_above + 1).ln());
    for _ in 0..60 {
        let mid = 0.5 * (lo + hi);
        if gain(mid.exp()) >= eps {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    Some(hi.exp())
}

/// The asymptote of the curve in D at model size `n`: E, or `E + A/N^alpha` for the joint
/// law.
pub fn asymptote_in_d(law: Law, theta: &[f64], n: f64) -> f64 {
    match law {
        Law::Chinchilla => theta[2].exp() + (theta[0] - theta[3] * n.ln()).exp(),
        _ => law.asymptote(theta),
    }
}

/// The margin plateau: the token count from which the loss stays within the fraction
/// `margin` of its asymptote, `L(D) ≤ (1 + margin)·L∞` (L∞ from [`asymptote_in_d`]).
/// `Some(0.0)` when the whole curve is within the margin.
pub fn plateau_margin(law: Law, theta: &[f64], n: f64, margin: f64) -> Option<f64> {
    let target = (1.0 + margin) * asymptote_in_d(law, theta, n);
    tokens_for_loss(law, theta, n, target)
}

/// Tokens D at which the curve at model size `n` reaches loss `target`; `None` when the
/// target is at or below the asymptote (never reached) or beyond 1e30 tokens, `Some(0.0)`
/// when the curve starts below it.
pub fn tokens_for_loss(law: Law, theta: &[f64], n: f64, target: f64) -> Option<f64> {
    let excess = target - asymptote_in_d(law, theta, n);
    if excess.is_nan() || excess <= 0.0 {
        return None;
    }
    // ln of D^beta that gives the excess.
    let ln_dbeta = match law {
        // B/D^beta = excess
        Law::Power => theta[0] - excess.ln(),
        Law::Chinchilla => theta[1] - excess.ln(),
        // B/(D_l + D^beta) = excess  ⇒  D^beta = B/excess − D_l
        Law::Rectified => {
            let x = (theta[0] - excess.ln()).exp() - theta[1].exp();
            if x <= 0.0 {
                return Some(0.0);
            }
            x.ln()
        }
    };
    let beta = theta[theta.len() - 1];
    let ln_d = ln_dbeta / beta;
    (ln_d.is_finite() && ln_d <= MAX_TOKENS.ln()).then(|| ln_d.exp())
}

/// Speed-up of a mixture over a baseline at target loss: `D_base(L*) / D_mix(L*)` (both
/// read off fitted curves, at model size `n`). `None` when either curve never reaches
/// `target` or the mixture reaches it at D = 0.
pub fn speedup(law: Law, base: &[f64], mixture: &[f64], n: f64, target: f64) -> Option<f64> {
    let db = tokens_for_loss(law, base, n, target)?;
    let dm = tokens_for_loss(law, mixture, n, target)?;
    (dm > 0.0 && db > 0.0).then(|| db / dm)
}

/// Compute-optimal split of a FLOP budget `c` under the joint law with C = 6·N·D
/// (Hoffmann et al. 2022, eq. 4): `N* = G·(C/6)^(beta/(alpha+beta))`,
/// `D* = (C/6)/N*`, `G = (alpha·A / (beta·B))^(1/(alpha+beta))`. Returns `(N*, D*, L(N*, D*))`.
pub fn compute_optimal(theta: &[f64], c: f64) -> Option<(f64, f64, f64)> {
    let (a, b, alpha, beta) = (theta[0], theta[1], theta[3], theta[4]);
    let s = alpha + beta;
    if !(alpha > 0.0 && beta > 0.0 && c > 0.0) {
        return None;
    }
    let ln_g = ((alpha.ln() + a) - (beta.ln() + b)) / s;
    let ln_c6 = (c / 6.0).ln();
    let ln_n = ln_g + ln_c6 * beta / s;
    let ln_d = ln_c6 - ln_n;
    let (n, d) = (ln_n.exp(), ln_d.exp());
    let l = Law::Chinchilla.predict(theta, n, d);
    (n.is_finite() && d.is_finite() && l.is_finite()).then_some((n, d, l))
}

/// The smooth model of loss against synthetic ratio: `ln L(r) = c0 + c1·r + c2·r²`, least
/// squares over `(r, ln L)` pairs (exact through three). The optimal ratio is the
/// quadratic's minimum within the observed range `[min r, max r]` (its vertex when convex
/// and inside, else the better end): no extrapolation beyond the ratios that were run.
/// Needs at least three distinct ratios.
pub fn optimal_ratio(pairs: &[(f64, f64)]) -> Option<f64> {
    let mut rs: Vec<f64> = pairs.iter().map(|p| p.0).collect();
    rs.sort_by(f64::total_cmp);
    rs.dedup();
    if rs.len() < 3 || pairs.iter().any(|p| !p.1.is_finite()) {
        return None;
    }
    let (lo, hi) = (rs[0], rs[rs.len() - 1]);
    let [c0, c1, c2] = quadratic_fit(pairs)?;
    let f = |r: f64| c0 + c1 * r + c2 * r * r;
    let mut best = if f(lo) <= f(hi) { lo } else { hi };
    if c2 > 0.0 {
        let v = -c1 / (2.0 * c2);
        if v > lo && v < hi && f(v) < f(best) {
            best = v;
        }
    }
    Some(best)
}

/// Least-squares `[c0, c1, c2]` of `y = c0 + c1 x + c2 x²` (normal equations, centred x).
fn quadratic_fit(pairs: &[(f64, f64)]) -> Option<[f64; 3]> {
    let m = pairs.iter().map(|p| p.0).sum::<f64>() / pairs.len() as f64;
    let mut s = [[0.0; 3]; 3];
    let mut t = [0.0; 3];
    for &(x, y) in pairs {
        let u = x - m;
        let phi = [1.0, u, u * u];
        for i in 0..3 {
            t[i] += phi[i] * y;
            for j in 0..3 {
                s[i][j] += phi[i] * phi[j];
            }
        }
    }
    let k = solve3(s, t)?;
    // Back from centred u = x − m to x.
    Some([k[0] - k[1] * m + k[2] * m * m, k[1] - 2.0 * k[2] * m, k[2]])
}

fn solve3(mut a: [[f64; 3]; 3], mut b: [f64; 3]) -> Option<[f64; 3]> {
    for col in 0..3 {
        let piv = (col..3).max_by(|&i, &j| a[i][col].abs().total_cmp(&a[j][col].abs()))?;
        if a[piv][col].abs() < 1e-300 {
            return None;
        }
        a.swap(col, piv);
        b.swap(col, piv);
        for row in col + 1..3 {
            let f = a[row][col] / a[col][col];
            let pivot_row = a[col];
            for (x, p) in a[row].iter_mut().zip(pivot_row).skip(col) {
                *x -= f * p;
            }
            b[row] -= f * b[col];
        }
    }
    let mut x = [0.0; 3];
    for i in (0..3).rev() {
        let s: f64 = (i + 1..3).map(|k| a[i][k] * x[k]).sum();
        x[i] = (b[i] - s) / a[i][i];
    }
    x.iter().all(|v| v.is_finite()).then_some(x)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_for_loss_inverts_every_law() {
        let cases: [(Law, Vec<f64>); 3] = [
            (Law::Rectified, vec![8.0, 6.0, 0.4, 0.45]),
            (Law::Power, vec![5.0, 0.5, 0.35]),
            (Law::Chinchilla, vec![6.17, 7.67, 0.597, 0.347, 0.367]),
        ];
        for (law, th) in cases {
            for d in [1e3, 1e7, 1e11] {
                let l = law.predict(&th, 1e8, d);
                let back = tokens_for_loss(law, &th, 1e8, l).unwrap();
                assert!((back / d - 1.0).abs() < 1e-8, "{law:?}: {back} vs {d}");
            }
            let below = asymptote_in_d(law, &th, 1e8) * 0.99;
            assert_eq!(tokens_for_loss(law, &th, 1e8, below), None);
        }
    }

    #[test]
    fn doubling_plateau_is_where_the_gain_falls_below_eps() {
        // Power law: gain(D) = B D^-b (1 − 2^-b) / (B D^-b + E), decreasing in D.
        let th = [5.0_f64, 0.5, 0.35];
        let d = plateau_doubling(Law::Power, &th, 1.0, 0.01, MAX_TOKENS).unwrap();
        // Searched only up to a bound, a plateau past it is not reported.
        assert_eq!(plateau_doubling(Law::Power, &th, 1.0, 0.01, d / 2.0), None);
        let g = doubling_gain(Law::Power, &th, 1.0, d);
        assert!((g - 0.01).abs() < 1e-9, "gain {g} at {d}");
        assert!(doubling_gain(Law::Power, &th, 1.0, d * 1.01) < 0.01);
        // Rectified law with a long flat start: the gain below D_l^(1/beta) is also small,
        // and the plateau must be the last crossing, not the first.
        let th = [20.0_f64, 18.0, 0.0, 1.0];
        let d = plateau_doubling(Law::Rectified, &th, 1.0, 0.01, MAX_TOKENS).unwrap();
        assert!(d > 1e7, "{d}");
        assert!(doubling_gain(Law::Rectified, &th, 1.0, 1.0) < 0.01);
    }

    #[test]
    fn compute_optimal_matches_brute_force() {
        let th = [6.17, 7.67, 0.597, 0.347, 0.367];
        let c = 5.76e23;
        let (n, d, l) = compute_optimal(&th, c).unwrap();
        assert!((6.0 * n * d / c - 1.0).abs() < 1e-9);
        for f in [0.9, 1.1] {
            let l2 = Law::Chinchilla.predict(&th, n * f, c / (6.0 * n * f));
            assert!(l2 > l);
        }
    }

    #[test]
    fn optimal_ratio_is_the_vertex_or_an_end() {
        let q = |r: f64| 1.0 + (r - 0.3) * (r - 0.3);
        let pairs: Vec<(f64, f64)> = [0.0, 0.25, 0.5, 1.0].iter().map(|&r| (r, q(r))).collect();
        assert!((optimal_ratio(&pairs).unwrap() - 0.3).abs() < 1e-9);
        let pairs: Vec<(f64, f64)> = [0.0, 0.5, 1.0].iter().map(|&r| (r, 2.0 - r)).collect();
        assert_eq!(optimal_ratio(&pairs), Some(1.0));
        assert_eq!(optimal_ratio(&pairs[..2]), None);
    }
}
