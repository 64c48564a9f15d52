//! synthscale's report stage: a results table fitted, plotted and written up as one
//! self-contained HTML file, a Markdown summary and the fit JSON.
//!
//! - [`results`]: `results.csv` → scaling points (final evaluations, seeds averaged, the
//!   mean over domains);
//! - [`analysis`]: the fits (rectified, power, joint law, optimal shares) through
//!   `synthscale-fit`, with the reason for every fit the data cannot determine;
//! - [`plots`]: the six figures, PNG and SVG;
//! - [`write`]: the HTML, the Markdown and the fit JSON;
//! - [`config`]: the manifest's `[report]` section;
//! - [`format`]: number formatting shared by all of them;
//! - [`glyphs`]: correct glyph placement for the bitmap figures.

pub mod analysis;
pub mod config;
pub mod error;
pub mod format;
pub mod glyphs;
pub mod plots;
pub mod results;
pub mod write;

pub use analysis::{analyze, Analysis};
pub use config::ReportConfig;
pub use error::{ReportError, Result};
pub use results::{read_results, Results};
pub use write::{build_report, ReportInput, ReportOutput};
