//! Numbers and durations as the sweep's tables print them.

pub(super) fn sci(x: f64) -> String {
    format!("{x:.2e}")
}

pub(super) fn duration(s: f64) -> String {
    if !s.is_finite() {
        return "?".into();
    }
    let s = s.round() as u64;
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m{:02}s", s / 60, s % 60),
        _ => format!("{}h{:02}m", s / 3600, s % 3600 / 60),
    }
}
