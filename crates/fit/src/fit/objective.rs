//! The Huber objective on log residuals: points prepared in log space, the cost with its
//! analytic gradient, the goodness of fit, and the threshold scaled to the residuals' noise.

use crate::law::{Law, Point};

/// Points in the form the objective reads: logs precomputed, with multiplicities (a
/// bootstrap resample repeats points; weights avoid evaluating a repeat twice).
#[derive(Debug, Clone)]
pub struct Prepared {
    ln_n: Vec<f64>,
    ln_d: Vec<f64>,
    ln_loss: Vec<f64>,
    weight: Vec<f64>,
}

impl Prepared {
    /// All points, each once.
    pub fn new(points: &[Point]) -> Self {
        Self::weighted(points, &vec![1; points.len()])
    }

    /// Point `i` counted `counts[i]` times (0 drops it).
    pub fn weighted(points: &[Point], counts: &[u32]) -> Self {
        let mut p = Prepared {
            ln_n: Vec::with_capacity(points.len()),
            ln_d: Vec::with_capacity(points.len()),
            ln_loss: Vec::with_capacity(points.len()),
            weight: Vec::with_capacity(points.len()),
        };
        for (pt, &c) in points.iter().zip(counts) {
            if c > 0 {
                p.ln_n.push(pt.n.ln());
                p.ln_d.push(pt.d.ln());
                p.ln_loss.push(pt.loss.ln());
                p.weight.push(c as f64);
            }
        }
        p
    }
}
/// Huber loss of one residual: `r²/2` within `delta`, `delta·(|r| − delta/2)` beyond (the
/// form of SciPy's `special.huber`, which Epoch AI's objective sums).
pub fn huber(r: f64, delta: f64) -> f64 {
    let a = r.abs();
    if a <= delta {
        0.5 * r * r
    } else {
        delta * (a - 0.5 * delta)
    }
}

/// The objective and its gradient with respect to the whole θ.
pub fn huber_cost_grad(law: Law, theta: &[f64], data: &Prepared, delta: f64) -> (f64, Vec<f64>) {
    let k = theta.len();
    let mut grad = vec![0.0; k];
    let mut g = [0.0; 5];
    let mut cost = 0.0;
    for i in 0..data.ln_loss.len() {
        let pred = law.log_pred_grad(theta, data.ln_n[i], data.ln_d[i], &mut g[..k]);
        let r = pred - data.ln_loss[i];
        let w = data.weight[i];
        let psi = if r.abs() <= delta {
            cost += w * 0.5 * r * r;
            r
        } else {
            cost += w * delta * (r.abs() - 0.5 * delta);
            delta * r.signum()
        };
        for j in 0..k {
            grad[j] += w * psi * g[j];
        }
    }
    (cost, grad)
}

/// The objective alone at θ (all points once).
pub fn objective(law: Law, theta: &[f64], points: &[Point], delta: f64) -> f64 {
    huber_cost_grad(law, theta, &Prepared::new(points), delta).0
}

/// Root mean square of the log residuals, `sqrt(mean((ln L̂ − ln L)²))`: the goodness of
/// fit Lin et al. 2024 report.
pub fn rmsd_log(law: Law, theta: &[f64], points: &[Point]) -> f64 {
    let s: f64 = points
        .iter()
        .map(|p| {
            let r = law.log_pred(theta, p) - p.loss.ln();
            r * r
        })
        .sum();
    (s / points.len() as f64).sqrt()
}
/// The Huber threshold scaled to the noise of the residuals `r` ([`DeltaRule::Noise`]).
pub fn noise_delta(r: &[f64]) -> f64 {
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        let n = v.len();
        if n % 2 == 1 {
            v[n / 2]
        } else {
            0.5 * (v[n / 2 - 1] + v[n / 2])
        }
    };
    let mut v = r.to_vec();
    if v.is_empty() {
        return 1e-4;
    }
    let m = median(&mut v);
    let mut dev: Vec<f64> = r.iter().map(|x| (x - m).abs()).collect();
    let sigma = 1.4826 * median(&mut dev);
    (1.345 * sigma).max(1e-4)
}
