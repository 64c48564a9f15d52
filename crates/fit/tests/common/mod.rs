//! Shared fixtures: the joint law at Epoch AI's fitted parameters, and clean points of it.

#![allow(dead_code)]

use synthscale_fit::{Law, Point};

/// θ of Epoch AI's Chinchilla fit (A = 477.84, B = 2143.86, E = 1.8172, alpha = 0.3473,
/// beta = 0.3672), in the law's parametrization.
pub fn epoch_chinchilla_theta() -> [f64; 5] {
    [
        477.84f64.ln(),
        2143.86f64.ln(),
        1.8172f64.ln(),
        0.3473,
        0.3672,
    ]
}

/// Noise-free points of the joint law at θ `theta`, at every N of `ns` (outer) and D of `ds`.
pub fn chinchilla_points(theta: &[f64], ns: &[f64], ds: &[f64]) -> Vec<Point> {
    let mut pts = Vec::new();
    for &n in ns {
        for &d in ds {
            pts.push(Point {
                d,
                n,
                loss: Law::Chinchilla.predict(theta, n, d),
            });
        }
    }
    pts
}
