//! The scaling-law forms: parameters, bounds, start grids, and log-space predictions with
//! analytic gradients.
//!
//! Every law is fitted in log space with log-parametrized scales, as Epoch AI fits
//! Chinchilla's law (Besiroglu et al. 2024): a scale `X` enters as `x = ln X`, so the
//! optimizer works on an unconstrained vector and predictions are log-sum-exps, exact and
//! stable over the many decades that D and N span.
//!
//! | law | form | fitted vector θ |
//! |---|---|---|
//! | `rectified` | `L(D) = B/(D_l + D^beta) + E` (Lin et al. 2024) | `[b, d_l, e, beta]`: `ln L = LSE(b − LSE(d_l, beta·ln D), e)` |
//! | `power` | `L(D) = B/D^beta + E` | `[b, e, beta]`: `ln L = LSE(b − beta·ln D, e)` |
//! | `chinchilla` | `L(N,D) = E + A/N^alpha + B/D^beta` | `[a, b, e, alpha, beta]`: `ln L = LSE(a − alpha·ln N, b − beta·ln D, e)` |

use serde::Serialize;

/// A law's form.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Law {
    /// `L(D) = B/(D_l + D^beta) + E`, the rectified scaling law of Lin et al. 2024.
    Rectified,
    /// `L(D) = B/D^beta + E`.
    Power,
    /// `L(N,D) = E + A/N^alpha + B/D^beta` (Hoffmann et al. 2022, approach 3).
    Chinchilla,
}

/// One point: tokens `d`, parameters `n` (only the joint law reads it), observed loss.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Point {
    /// Training tokens D (or examples: any positive data-size measure).
    pub d: f64,
    /// Model parameters N (1.0 where the law does not use it).
    pub n: f64,
    /// Observed loss (> 0).
    pub loss: f64,
}

/// Bounds on one fitted coordinate; a fit whose best point leaves them has not converged
/// to a meaningful law (an exponent that ran to 0, a scale that ran off to ±∞).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Bound {
    /// Smallest accepted value.
    pub lo: f64,
    /// Largest accepted value.
    pub hi: f64,
}

// Log-scales within [-30, 60] admit every scale from 1e-13 to 1e26; exponents within
// (0, 4] cover every published data or model exponent by a wide margin.
const LOG_SCALE: Bound = Bound {
    lo: -30.0,
    hi: 60.0,
};
const EXPONENT: Bound = Bound { lo: 1e-6, hi: 4.0 };

/// Epoch AI's grid for the scales of the joint law: {0, 5, …, 25}.
const GRID_SCALE: [f64; 6] = [0.0, 5.0, 10.0, 15.0, 20.0, 25.0];
/// Epoch AI's grid for `e = ln E`: {−1, −0.5, …, 1}.
const GRID_E: [f64; 5] = [-1.0, -0.5, 0.0, 0.5, 1.0];
/// Epoch AI's grid for exponents: {0, 0.5, …, 2}.
const GRID_EXP: [f64; 5] = [0.0, 0.5, 1.0, 1.5, 2.0];
/// Exponent grid of the one-variable laws: finer, because they have one exponent only and
/// fine-tuning curves (Lin et al.) sit at small exponents.
const GRID_EXP_1D: [f64; 9] = [0.0, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.0];
/// Grid for `d_l = ln D_l` of the rectified law: from 1 to e^25 "pre-learned" data.
const GRID_DL: [f64; 6] = [0.0, 5.0, 10.0, 15.0, 20.0, 25.0];

impl Law {
    /// Every law, in CLI order.
    pub const ALL: [Law; 3] = [Law::Rectified, Law::Power, Law::Chinchilla];

    /// The name used on the command line and in JSON.
    pub fn name(self) -> &'static str {
        match self {
            Law::Rectified => "rectified",
            Law::Power => "power",
            Law::Chinchilla => "chinchilla",
        }
    }

    /// Parses a CLI name.
    pub fn from_name(s: &str) -> Option<Law> {
        Law::ALL.into_iter().find(|l| l.name() == s)
    }

    /// The form, as printed.
    pub fn formula(self) -> &'static str {
        match self {
            Law::Rectified => "L(D) = B/(D_l + D^beta) + E",
            Law::Power => "L(D) = B/D^beta + E",
            Law::Chinchilla => "L(N,D) = E + A/N^alpha + B/D^beta",
        }
    }

    /// Whether the law reads model size N.
    pub fn uses_params(self) -> bool {
        self == Law::Chinchilla
    }

    /// Names of the fitted coordinates θ (log-scales in lower case).
    pub fn theta_names(self) -> &'static [&'static str] {
        match self {
            Law::Rectified => &["b", "d_l", "e", "beta"],
            Law::Power => &["b", "e", "beta"],
            Law::Chinchilla => &["a", "b", "e", "alpha", "beta"],
        }
    }

    /// Names of the law's parameters as written in its form (scales exponentiated).
    pub fn param_names(self) -> &'static [&'static str] {
        match self {
            Law::Rectified => &["B", "D_l", "E", "beta"],
            Law::Power => &["B", "E", "beta"],
            Law::Chinchilla => &["A", "B", "E", "alpha", "beta"],
        }
    }

    /// Index of `e = ln E` in θ.
    pub fn e_index(self) -> usize {
        match self {
            Law::Rectified => 2,
            Law::Power => 1,
            Law::Chinchilla => 2,
        }
    }

    /// Bounds of each θ coordinate.
    pub fn bounds(self) -> Vec<Bound> {
        match self {
            Law::Rectified => vec![LOG_SCALE, LOG_SCALE, LOG_SCALE, EXPONENT],
            Law::Power => vec![LOG_SCALE, LOG_SCALE, EXPONENT],
            Law::Chinchilla => vec![LOG_SCALE, LOG_SCALE, LOG_SCALE, EXPONENT, EXPONENT],
        }
    }

    /// The start grid: the values each θ coordinate takes; starts are their product.
    ///
    /// - chinchilla: Epoch AI's 4500 starts: `a, b ∈ {0, 5, …, 25}`, `e ∈ {−1, −0.5, …, 1}`,
    ///   `alpha, beta ∈ {0, 0.5, …, 2}`.
    /// - rectified: `b, d_l ∈ {0, 5, …, 25}`, `e ∈ {−1, −0.5, …, 1}`,
    ///   `beta ∈ {0, 0.1, 0.2, 0.3, 0.5, 0.75, 1, 1.5, 2}` (1620 starts).
    /// - power: `b ∈ {0, 5, …, 25}`, `e` and `beta` as for rectified (270 starts).
    pub fn grid_axes(self) -> Vec<Vec<f64>> {
        match self {
            Law::Rectified => vec![
                GRID_SCALE.to_vec(),
                GRID_DL.to_vec(),
                GRID_E.to_vec(),
                GRID_EXP_1D.to_vec(),
            ],
            Law::Power => vec![GRID_SCALE.to_vec(), GRID_E.to_vec(), GRID_EXP_1D.to_vec()],
            Law::Chinchilla => vec![
                GRID_SCALE.to_vec(),
                GRID_SCALE.to_vec(),
                GRID_E.to_vec(),
                GRID_EXP.to_vec(),
                GRID_EXP.to_vec(),
            ],
        }
    }

    /// The start grid, expanded: the product of [`Law::grid_axes`], last axis fastest.
    pub fn start_grid(self) -> Vec<Vec<f64>> {
        product(&self.grid_axes())
    }

    /// `ln L` predicted at `p`.
    pub fn log_pred(self, theta: &[f64], p: &Point) -> f64 {
        match self {
            Law::Power => lse2(theta[0] - theta[2] * p.d.ln(), theta[1]),
            Law::Rectified => {
                let u = lse2(theta[1], theta[3] * p.d.ln());
                lse2(theta[0] - u, theta[2])
            }
            Law::Chinchilla => lse3(
                theta[0] - theta[3] * p.n.ln(),
                theta[1] - theta[4] * p.d.ln(),
                theta[2],
            ),
        }
    }

    /// `ln L` at `p` and its gradient with respect to θ, written into `grad`.
    pub fn log_pred_grad(self, theta: &[f64], ln_n: f64, ln_d: f64, grad: &mut [f64]) -> f64 {
        match self {
            Law::Power => {
                let t = theta[0] - theta[2] * ln_d;
                let (v, w) = lse2_w(t, theta[1]);
                grad[0] = w;
                grad[1] = 1.0 - w;
                grad[2] = -w * ln_d;
                v
            }
            Law::Rectified => {
                let (u, pd) = lse2_w(theta[1], theta[3] * ln_d);
                let (v, w) = lse2_w(theta[0] - u, theta[2]);
                grad[0] = w;
                grad[1] = -w * pd;
                grad[2] = 1.0 - w;
                grad[3] = -w * (1.0 - pd) * ln_d;
                v
            }
            Law::Chinchilla => {
                let x0 = theta[0] - theta[3] * ln_n;
                let x1 = theta[1] - theta[4] * ln_d;
                let x2 = theta[2];
                let m = x0.max(x1).max(x2);
                let (e0, e1, e2) = ((x0 - m).exp(), (x1 - m).exp(), (x2 - m).exp());
                let s = e0 + e1 + e2;
                let (w0, w1, w2) = (e0 / s, e1 / s, e2 / s);
                grad[0] = w0;
                grad[1] = w1;
                grad[2] = w2;
                grad[3] = -w0 * ln_n;
                grad[4] = -w1 * ln_d;
                m + s.ln()
            }
        }
    }

    /// The loss predicted at `(n, d)`.
    pub fn predict(self, theta: &[f64], n: f64, d: f64) -> f64 {
        self.log_pred(theta, &Point { d, n, loss: 1.0 }).exp()
    }

    /// The law's parameters (as in its form) from θ, in [`Law::param_names`] order.
    pub fn params(self, theta: &[f64]) -> Vec<f64> {
        match self {
            Law::Rectified => vec![theta[0].exp(), theta[1].exp(), theta[2].exp(), theta[3]],
            Law::Power => vec![theta[0].exp(), theta[1].exp(), theta[2]],
            Law::Chinchilla => vec![
                theta[0].exp(),
                theta[1].exp(),
                theta[2].exp(),
                theta[3],
                theta[4],
            ],
        }
    }

    /// The asymptote E.
    pub fn asymptote(self, theta: &[f64]) -> f64 {
        theta[self.e_index()].exp()
    }
}

/// The cartesian product of `axes`, last axis varying fastest.
pub fn product(axes: &[Vec<f64>]) -> Vec<Vec<f64>> {
    let mut out: Vec<Vec<f64>> = vec![Vec::new()];
    for axis in axes {
        let mut next = Vec::with_capacity(out.len() * axis.len());
        for prefix in &out {
            for &v in axis {
                let mut p = prefix.clone();
                p.push(v);
                next.push(p);
            }
        }
        out = next;
    }
    out
}

/// `ln(e^x + e^y)`.
pub fn lse2(x: f64, y: f64) -> f64 {
    lse2_w(x, y).0
}

/// `ln(e^x + e^y)` and the weight of `x`, `e^x / (e^x + e^y)`.
fn lse2_w(x: f64, y: f64) -> (f64, f64) {
    if x >= y {
        let t = (y - x).exp();
        (x + t.ln_1p(), 1.0 / (1.0 + t))
    } else {
        let t = (x - y).exp();
        (y + t.ln_1p(), t / (1.0 + t))
    }
}

fn lse3(x: f64, y: f64, z: f64) -> f64 {
    let m = x.max(y).max(z);
    m + ((x - m).exp() + (y - m).exp() + (z - m).exp()).ln()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Analytic gradients against central differences, for every law.
    #[test]
    fn gradients_match_finite_differences() {
        let cases: [(Law, Vec<f64>); 3] = [
            (Law::Rectified, vec![6.0, 4.0, 0.3, 0.4]),
            (Law::Power, vec![5.0, 0.5, 0.35]),
            (Law::Chinchilla, vec![6.2, 7.7, 0.6, 0.35, 0.37]),
        ];
        for (law, theta) in cases {
            for &(n, d) in &[(1e8, 1e9), (7e7, 3e4), (2e9, 5e11)] {
                let mut g = vec![0.0; theta.len()];
                law.log_pred_grad(&theta, f64::ln(n), f64::ln(d), &mut g);
                for i in 0..theta.len() {
                    let h = 1e-6;
                    let (mut tp, mut tm) = (theta.clone(), theta.clone());
                    tp[i] += h;
                    tm[i] -= h;
                    let p = Point { d, n, loss: 1.0 };
                    let fd = (law.log_pred(&tp, &p) - law.log_pred(&tm, &p)) / (2.0 * h);
                    assert!(
                        (fd - g[i]).abs() < 1e-7 * (1.0 + fd.abs()),
                        "{law:?} θ[{i}] at N={n} D={d}: analytic {} vs numeric {fd}",
                        g[i]
                    );
                }
            }
        }
    }

    /// The log-space forms equal the written laws.
    #[test]
    fn log_forms_equal_the_laws() {
        let (b, dl, e, beta) = (300.0_f64, 50.0_f64, 1.2_f64, 0.4_f64);
        let th = [b.ln(), dl.ln(), e.ln(), beta];
        let d = 1234.0_f64;
        let want = b / (dl + d.powf(beta)) + e;
        assert!((Law::Rectified.predict(&th, 1.0, d) - want).abs() < 1e-12 * want);
        let th = [b.ln(), e.ln(), beta];
        let want = b / d.powf(beta) + e;
        assert!((Law::Power.predict(&th, 1.0, d) - want).abs() < 1e-12 * want);
        let (a, alpha, n) = (400.0_f64, 0.3_f64, 1e8_f64);
        let th = [a.ln(), b.ln(), e.ln(), alpha, beta];
        let want = e + a / n.powf(alpha) + b / d.powf(beta);
        assert!((Law::Chinchilla.predict(&th, n, d) - want).abs() < 1e-12 * want);
    }

    #[test]
    fn epoch_grid_has_4500_starts() {
        assert_eq!(Law::Chinchilla.start_grid().len(), 4500);
        assert_eq!(Law::Rectified.start_grid().len(), 1620);
        assert_eq!(Law::Power.start_grid().len(), 270);
    }
}
