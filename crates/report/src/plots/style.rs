//! The figures' look: the bundled font and the colour-blind-safe palette.

use std::sync::Once;

use plotters::prelude::*;

/// The family name the fit crate gives the plots' font.
pub(super) const FONT: &str = "sans-serif";
/// DejaVu Sans 2.37 (Debian fonts-dejavu-core; fonts/PROVENANCE).
pub(super) static FONT_BYTES: &[u8] = include_bytes!("../../fonts/DejaVuSans.ttf");

/// Okabe & Ito's colour-blind-safe palette.
pub(super) const PALETTE: [RGBColor; 8] = [
    RGBColor(0, 114, 178),
    RGBColor(213, 94, 0),
    RGBColor(0, 158, 115),
    RGBColor(204, 121, 167),
    RGBColor(230, 159, 0),
    RGBColor(86, 180, 233),
    RGBColor(0, 0, 0),
    RGBColor(160, 140, 20),
];
/// The grey of reference lines, frames and legend borders.
pub(super) const GREY: RGBColor = RGBColor(120, 120, 120);

/// The `i`-th colour of the palette, round again past its end.
pub(super) fn color(i: usize) -> RGBColor {
    PALETTE[i % PALETTE.len()]
}

/// Registers the bundled font with plotters, once per process.
pub(super) fn register_font() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // The bytes are a valid TrueType file committed with the crate; a failure here is
        // caught by every figure test.
        let _ = plotters::style::register_font(FONT, FontStyle::Normal, FONT_BYTES);
    });
}
