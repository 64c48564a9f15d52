//! The typed key of every group the report hands the fitter, and a study's answer read
//! back through those keys.

use std::ops::Deref;

use serde::Serialize;
use synthscale_fit::study::GroupReport;
use synthscale_fit::{Group, Point, StudyReport};

use crate::format::key_num;

/// What a fitted group is, typed: the report builds every group it hands the fitter from
/// these, and reads the fitter's answers back through them (by the group indices the fitter
/// returns), never by parsing group or family names.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Key {
    /// Validation domain, or `mean`.
    pub domain: String,
    /// Model size N (one-variable laws); `None` for the joint law's groups.
    pub params: Option<f64>,
    /// Mixture name (curve fits), or `None` (optimal-share groups).
    pub mixture: Option<String>,
    /// Synthetic share (optimal-share groups).
    pub share: Option<f64>,
}

impl Key {
    /// The group handed to the fitter: its keys name it in fit.json and error messages.
    pub(super) fn group(&self, kind: Option<&str>, points: Vec<Point>) -> Group {
        let mut k = vec![("eval_domain".to_string(), self.domain.clone())];
        if let Some(kind) = kind {
            k.push(("kind".into(), kind.to_string()));
        }
        if let Some(n) = self.params {
            k.push(("params".into(), key_num(n)));
        }
        if let Some(m) = &self.mixture {
            k.push(("mixture".into(), m.clone()));
        }
        if let Some(s) = self.share {
            k.push(("share".into(), key_num(s)));
        }
        Group { keys: k, points }
    }

    /// The mixture, for curve groups (empty for share groups).
    pub fn mixture(&self) -> &str {
        self.mixture.as_deref().unwrap_or("")
    }
}

/// One study's answer with the typed key of each of its groups (`keys[i]` is
/// `report.groups[i]`'s). Serialized as the study alone.
#[derive(Debug, Clone, Serialize)]
pub struct Fits {
    /// The fitter's answer.
    #[serde(flatten)]
    pub report: StudyReport,
    /// Each group's key, parallel to `report.groups`.
    #[serde(skip)]
    pub keys: Vec<Key>,
}

impl Deref for Fits {
    type Target = StudyReport;
    fn deref(&self) -> &StudyReport {
        &self.report
    }
}

impl Fits {
    /// The group of (domain, size, mixture); `params` `None` for the joint law's groups.
    pub fn group(&self, domain: &str, params: Option<f64>, mixture: &str) -> Option<&GroupReport> {
        self.keys
            .iter()
            .position(|k| {
                k.domain == domain && k.params == params && k.mixture.as_deref() == Some(mixture)
            })
            .map(|i| &self.report.groups[i])
    }

    /// The groups on `domain`, with their keys.
    pub fn on<'a>(&'a self, domain: &'a str) -> impl Iterator<Item = (&'a GroupReport, &'a Key)> {
        self.report
            .groups
            .iter()
            .zip(&self.keys)
            .filter(move |(_, k)| k.domain == domain)
    }

    /// The key of group `i` (an index the fitter returned).
    pub fn key(&self, i: usize) -> &Key {
        &self.keys[i]
    }
}
