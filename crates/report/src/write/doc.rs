//! The document both report pages print: the results, the fits and the figures, with
//! the parts the HTML and the Markdown share (the headline domain, the tables in order,
//! the notes).

use std::path::Path;

use crate::analysis::{Analysis, Fits, Key};
use crate::format::{fmt_params, num};
use crate::plots::Figure;
use crate::results::Results;

use super::cells::Table;

/// Everything the HTML and the Markdown print, read from the same structs.
pub(super) struct Doc<'a> {
    pub(super) results: &'a Results,
    pub(super) analysis: &'a Analysis,
    pub(super) figures: &'a [Figure],
    /// The manifest's path and text, when the report was asked for by manifest.
    pub(super) manifest: Option<(&'a Path, &'a str)>,
}

/// `mixture, size` of a group, as a reader names it, from its typed key.
pub(super) fn who(k: &Key) -> (String, String) {
    let m = match (&k.mixture, k.share) {
        (Some(m), _) => m.clone(),
        (None, Some(s)) => format!("share {}", num(s)),
        (None, None) => "all".into(),
    };
    (m, k.params.map_or("all sizes".to_string(), fmt_params))
}

impl Doc<'_> {
    /// The domain the report leads with.
    pub(super) fn headline(&self) -> &str {
        &self.analysis.config.headline_domain
    }

    /// The fitted laws on the headline domain, rectified, power and joint, those there are.
    pub(super) fn laws(&self) -> Vec<&Fits> {
        [
            &self.analysis.rectified,
            &self.analysis.power,
            &self.analysis.chinchilla,
        ]
        .into_iter()
        .flatten()
        .collect()
    }

    /// Every table in report order, each with whether the HTML folds it away.
    pub(super) fn tables(&self) -> Vec<(Table, bool)> {
        // The answers first; the run table (one row per run) after them.
        let mut v = Vec::new();
        for r in self.laws() {
            v.push((self.params_table(r, self.headline()), false));
        }
        v.push((self.holdout_table(), false));
        v.push((self.plateau_table(), false));
        v.push((self.multiplier_table(), false));
        v.push((self.speedup_table(), false));
        v.push((self.share_table(), false));
        if self.analysis.chinchilla.is_some() {
            v.push((self.compute_table(), false));
        }
        v.push((self.runs_table(), false));
        // Per-domain parameters: folded away in the HTML.
        for df in &self.analysis.per_domain {
            for r in [&df.rectified, &df.power, &df.chinchilla]
                .into_iter()
                .flatten()
            {
                v.push((self.params_table(r, &df.eval_domain), true));
            }
        }
        v
    }

    /// What the results left out, what could not be fitted and what the figures lack.
    pub(super) fn notes(&self) -> Vec<String> {
        let mut v = self.results.warnings.clone();
        v.extend(self.analysis.skipped.iter().cloned());
        for f in self.figures {
            for m in &f.missing {
                v.push(format!("figure {}: {m}", f.fig.stem()));
            }
        }
        v
    }
}
