//! The numbers behind the axes: spacings, spans, ticks, tick labels, interpolation and
//! the wrapping of long notes.

use std::ops::Range;

use crate::analysis::Curve;
use crate::format::si;

/// Wraps `s` at about `width` characters.
pub(super) fn wrap(s: &str, width: usize) -> Vec<String> {
    let mut lines = Vec::new();
    let mut cur = String::new();
    for w in s.split_whitespace() {
        if !cur.is_empty() && cur.chars().count() + 1 + w.chars().count() > width {
            lines.push(std::mem::take(&mut cur));
        }
        if !cur.is_empty() {
            cur.push(' ');
        }
        cur.push_str(w);
    }
    if !cur.is_empty() {
        lines.push(cur);
    }
    lines
}

/// `n` points evenly spaced in log between `lo` and `hi`, both included.
pub(super) fn logspace(lo: f64, hi: f64, n: usize) -> Vec<f64> {
    let (a, b) = (lo.ln(), hi.ln());
    (0..n)
        .map(|i| (a + (b - a) * i as f64 / (n - 1) as f64).exp())
        .collect()
}

/// A log axis over `[lo, hi]` widened by `pad` each side (and a factor 2 when flat).
pub(super) fn log_span(lo: f64, hi: f64, pad: f64) -> Range<f64> {
    let (lo, hi) = if hi > lo {
        (lo, hi)
    } else {
        (lo / 2.0, hi * 2.0)
    };
    lo / pad..hi * pad
}

/// The least and greatest finite value of `v`; `None` when it has none.
pub(super) fn min_max(v: impl Iterator<Item = f64>) -> Option<(f64, f64)> {
    v.filter(|x| x.is_finite()).fold(None, |acc, x| match acc {
        None => Some((x, x)),
        Some((a, b)) => Some((a.min(x), b.max(x))),
    })
}

/// Round ticks inside `[lo, hi]`: a log axis over less than a decade gets none of its own.
pub(super) fn ticks(lo: f64, hi: f64) -> Vec<f64> {
    let span = hi - lo;
    let step = [
        0.01, 0.02, 0.05, 0.1, 0.2, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 50.0,
    ]
    .into_iter()
    .find(|s| span / s <= 7.0)
    .unwrap_or(100.0);
    let mut v = Vec::new();
    let mut x = (lo / step).ceil() * step;
    while x <= hi {
        v.push(x);
        x += step;
    }
    v
}

/// 1-2-5 ticks per decade inside `[lo, hi]`, thinned to decades when there are many.
pub(super) fn log_ticks(lo: f64, hi: f64) -> Vec<f64> {
    let mut v = Vec::new();
    let mut k = lo.log10().floor() as i32;
    while 10f64.powi(k) <= hi {
        for m in [1.0, 2.0, 5.0] {
            let x = m * 10f64.powi(k);
            if x >= lo && x <= hi {
                v.push(x);
            }
        }
        k += 1;
    }
    if v.len() > 8 {
        v.retain(|x| (x.log10() - x.log10().round()).abs() < 1e-9);
    }
    v
}

/// A loss tick label.
pub(super) fn loss_label(v: &f64) -> String {
    format!("{v:.2}")
}

/// A tick label with an SI suffix.
pub(super) fn si_label(v: &f64) -> String {
    si(*v)
}

/// Linear interpolation of `(x, y)` pairs sorted by x, at `x`.
pub(super) fn interp(pairs: &[(f64, f64)], x: f64) -> Option<f64> {
    pairs.windows(2).find_map(|w| {
        let ((x0, y0), (x1, y1)) = (w[0], w[1]);
        (x >= x0 && x <= x1 && x1 > x0).then(|| y0 + (y1 - y0) * (x - x0) / (x1 - x0))
    })
}

/// Rows and columns of a grid of `n` panels, at most three a row.
pub(super) fn grid(n: usize) -> (usize, usize) {
    let cols = n.clamp(1, 3);
    (n.max(1).div_ceil(cols), cols)
}

/// `curve` over the x range at 120 points, those inside the y range.
pub(super) fn fitted(curve: &Curve, x: &Range<f64>, y: &Range<f64>) -> Vec<(f64, f64)> {
    logspace(x.start, x.end, 120)
        .iter()
        .map(|&t| (t, curve.loss(t)))
        .filter(|p| y.contains(&p.1))
        .collect()
}
