//! The results table (`results.csv` of `synthscale sweep collect`) read into scaling
//! points: final evaluations only, seeds averaged, and the mean over evaluation domains.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Serialize;

use synthscale_sweep::results::CONTRACT_COLUMNS;

use crate::error::{ReportError, Result};

/// The name of the mean-over-domains "domain".
pub const MEAN: &str = "mean";

/// The contract columns read besides `final` (sweep's list less `step` and `final`, in its
/// order); other columns are ignored.
fn read_columns() -> impl Iterator<Item = &'static str> {
    CONTRACT_COLUMNS
        .into_iter()
        .filter(|c| !matches!(*c, "step" | "final"))
}

/// A mixture and its shares.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Mixture {
    /// Its name in the table.
    pub name: String,
    /// Natural share.
    pub natural: f64,
    /// Rephrased share.
    pub rephrased: f64,
    /// Textbook share.
    pub textbook: f64,
}

impl Mixture {
    /// The synthetic share, `1 − natural`.
    pub fn synthetic(&self) -> f64 {
        self.rephrased + self.textbook
    }

    /// Which synthetic data the mixture holds: `rephrased`, `textbook`, `rephrased+textbook`,
    /// or `none` for natural text alone.
    pub fn kind(&self) -> &'static str {
        match (self.rephrased > 0.0, self.textbook > 0.0) {
            (false, false) => "none",
            (true, false) => "rephrased",
            (false, true) => "textbook",
            (true, true) => "rephrased+textbook",
        }
    }
}

/// One scaling point: the final loss of one (size, budget, mixture) on one domain,
/// averaged over seeds.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Obs {
    /// Model parameters N.
    pub params: f64,
    /// Training tokens D.
    pub tokens: f64,
    /// Mixture name.
    pub mixture: String,
    /// Evaluation domain, or [`MEAN`].
    pub domain: String,
    /// Final validation loss (nats/token), mean over seeds.
    pub loss: f64,
    /// Runs averaged.
    pub seeds: usize,
}

/// One row of the run table: one (mixture, size, budget), all domains.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunRow {
    /// Mixture name.
    pub mixture: String,
    /// N.
    pub params: f64,
    /// Non-embedding N.
    pub non_embedding_params: f64,
    /// D.
    pub tokens: f64,
    /// Training FLOPs (mean over seeds).
    pub flops: f64,
    /// Runs (seeds).
    pub seeds: usize,
    /// Final loss per domain, [`MEAN`] included.
    pub loss: BTreeMap<String, f64>,
}

/// The unigram loss of a mixture's training tokens on one validation domain (the
/// `unigram_loss` column of `synthscale sweep collect`; `synthscale_data::unigram`): what
/// a model that learned token frequencies alone would score.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct UnigramLoss {
    /// Mixture name.
    pub mixture: String,
    /// Validation domain, or [`MEAN`] (the mean over the averaged domains).
    pub domain: String,
    /// Nats per token.
    pub loss: f64,
}

/// The seed-to-seed noise of the final loss on one domain: the pooled standard deviation
/// of ln(loss) among runs that differ only in their seed.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SeedNoise {
    /// Validation domain, or [`MEAN`].
    pub domain: String,
    /// Pooled SD of ln(loss), `sqrt(Σ_cells Σ_i (ln l_i − mean_cell)² / Σ_cells (n − 1))`:
    /// the noise of one run's loss, in relative terms.
    pub sd_log: f64,
    /// (size, budget, mixture) cells with two or more seeds.
    pub cells: usize,
    /// Degrees of freedom, `Σ_cells (n − 1)`.
    pub dof: usize,
}

/// The results table, read.
#[derive(Debug, Clone, Serialize)]
pub struct Results {
    /// The CSV read.
    pub path: PathBuf,
    /// Data rows in it.
    pub rows: usize,
    /// Final rows used.
    pub final_rows: usize,
    /// Mixtures, in order of first appearance.
    pub mixtures: Vec<Mixture>,
    /// Distinct model sizes, ascending.
    pub sizes: Vec<f64>,
    /// Distinct budgets, ascending.
    pub budgets: Vec<f64>,
    /// Evaluation domains, [`MEAN`] first.
    pub domains: Vec<String>,
    /// The domains averaged into [`MEAN`].
    pub mean_of: Vec<String>,
    /// Scaling points.
    pub points: Vec<Obs>,
    /// The run table.
    pub runs: Vec<RunRow>,
    /// Unigram losses per (mixture, domain), when the table has the column.
    pub unigram: Vec<UnigramLoss>,
    /// Seed-to-seed noise per domain, where some cell has two or more seeds.
    pub seed_noise: Vec<SeedNoise>,
    /// What was dropped or could not be averaged.
    pub warnings: Vec<String>,
}

impl Results {
    /// "mean over 4 domain(s)", naming them when they are not every domain.
    pub fn mean_text(&self) -> String {
        let n = self.mean_of.len();
        if n + 1 == self.domains.len() {
            format!("mean over {n} domain(s)")
        } else {
            format!("mean over {n} domain(s): {}", self.mean_of.join(", "))
        }
    }

    /// Points of one domain.
    pub fn domain<'a>(&'a self, domain: &'a str) -> impl Iterator<Item = &'a Obs> + 'a {
        self.points.iter().filter(move |p| p.domain == domain)
    }

    /// The unigram loss of `mixture` on `domain`, when known.
    pub fn unigram_loss(&self, mixture: &str, domain: &str) -> Option<f64> {
        self.unigram
            .iter()
            .find(|u| u.mixture == mixture && u.domain == domain)
            .map(|u| u.loss)
    }

    /// The seed-to-seed noise on `domain`, when measured.
    pub fn seed_noise(&self, domain: &str) -> Option<&SeedNoise> {
        self.seed_noise.iter().find(|s| s.domain == domain)
    }

    /// The mixture called `name`.
    pub fn mixture(&self, name: &str) -> Option<&Mixture> {
        self.mixtures.iter().find(|m| m.name == name)
    }
}

fn distinct(mut v: Vec<f64>) -> Vec<f64> {
    v.sort_by(f64::total_cmp);
    v.dedup();
    v
}

/// Reads `path`: the `final` rows, one per run and domain.
/// `mean_domains` names the domains averaged into [`MEAN`]; empty: every domain.
pub fn read_results(path: &Path, mean_domains: &[String]) -> Result<Results> {
    let bytes = std::fs::read(path).map_err(|e| ReportError::read(path, e))?;
    let mut rdr = csv::ReaderBuilder::new().from_reader(bytes.as_slice());
    let cell_err = |line: u64, column: &str, message: String| ReportError::Cell {
        path: path.to_path_buf(),
        line,
        column: column.to_string(),
        message,
    };
    let header: Vec<String> = rdr
        .headers()
        .map_err(|e| cell_err(1, "-", e.to_string()))?
        .iter()
        .map(|s| s.trim_start_matches('\u{feff}').trim().to_string())
        .collect();
    let col = |name: &str| {
        header
            .iter()
            .position(|h| h == name)
            .ok_or_else(|| ReportError::MissingColumn {
                path: path.to_path_buf(),
                column: name.to_string(),
                available: header.join(", "),
            })
    };
    let idx: Vec<usize> = read_columns().map(col).collect::<Result<_>>()?;
    let final_idx = col("final")?;
    // Optional: written by `sweep collect` since the unigram baseline was added.
    let unigram_idx = header.iter().position(|h| h == "unigram_loss");
    let [run_i, params_i, ne_i, tokens_i, flops_i, mix_i, nat_i, reph_i, text_i, dom_i, loss_i] =
        idx[..]
    else {
        unreachable!("11 columns")
    };

    struct Raw {
        run: String,
        params: f64,
        ne: f64,
        tokens: f64,
        flops: f64,
        mixture: String,
        domain: String,
        loss: f64,
        unigram: Option<f64>,
    }
    let mut raws = Vec::new();
    let mut mixtures: Vec<Mixture> = Vec::new();
    let mut rows = 0;
    let mut warnings = Vec::new();
    for rec in rdr.records() {
        let rec = rec.map_err(|e| {
            let line = e.position().map_or(0, |p| p.line());
            cell_err(line, "-", e.to_string())
        })?;
        rows += 1;
        let line = rec.position().map_or(0, |p| p.line());
        let get = |i: usize| rec.get(i).unwrap_or("").trim();
        let fin = get(final_idx).to_ascii_lowercase();
        let is_final = match fin.as_str() {
            "true" | "1" | "yes" => true,
            "false" | "0" | "no" => false,
            other => {
                return Err(cell_err(
                    line,
                    "final",
                    format!("{other:?} is not true or false"),
                ))
            }
        };
        if !is_final {
            continue;
        }
        let num = |i: usize, lo: f64, positive: bool| -> Result<f64> {
            let c = get(i);
            let v: f64 = c.parse().map_err(|_| {
                cell_err(
                    line,
                    &header[i],
                    if c.is_empty() {
                        "empty cell".into()
                    } else {
                        format!("{c:?} is not a number")
                    },
                )
            })?;
            let ok = v.is_finite() && if positive { v > lo } else { v >= lo };
            if !ok {
                return Err(cell_err(
                    line,
                    &header[i],
                    format!("{v} must be {} {lo}", if positive { ">" } else { "≥" }),
                ));
            }
            Ok(v)
        };
        let share = |i: usize| -> Result<f64> {
            let v = num(i, 0.0, false)?;
            if v > 1.0 + 1e-9 {
                return Err(cell_err(line, &header[i], format!("{v} must be ≤ 1")));
            }
            Ok(v)
        };
        let mixture = get(mix_i).to_string();
        if mixture.is_empty() {
            return Err(cell_err(line, "mixture", "empty cell".into()));
        }
        let m = Mixture {
            name: mixture.clone(),
            natural: share(nat_i)?,
            rephrased: share(reph_i)?,
            textbook: share(text_i)?,
        };
        let sum = m.natural + m.rephrased + m.textbook;
        if (sum - 1.0).abs() > 1e-3 {
            return Err(cell_err(
                line,
                "natural_ratio",
                format!("shares of {mixture} sum to {sum}, not 1"),
            ));
        }
        match mixtures.iter().find(|x| x.name == mixture) {
            None => mixtures.push(m),
            Some(x) if (x.synthetic() - m.synthetic()).abs() > 1e-6 => {
                return Err(cell_err(
                    line,
                    "natural_ratio",
                    format!(
                        "mixture {mixture} has natural share {} here and {} above",
                        m.natural, x.natural
                    ),
                ))
            }
            Some(_) => {}
        }
        let domain = get(dom_i).to_string();
        if domain.is_empty() || domain == MEAN {
            return Err(cell_err(
                line,
                "eval_domain",
                format!("{domain:?} is not a domain name (`{MEAN}` is reserved for the mean over domains)"),
            ));
        }
        raws.push(Raw {
            run: get(run_i).to_string(),
            params: num(params_i, 0.0, true)?,
            ne: num(ne_i, 0.0, true)?,
            tokens: num(tokens_i, 0.0, true)?,
            flops: num(flops_i, 0.0, true)?,
            mixture,
            domain,
            loss: num(loss_i, 0.0, true)?,
            unigram: match unigram_idx {
                Some(i) if !get(i).is_empty() => Some(num(i, 0.0, true)?),
                _ => None,
            },
        });
    }
    if raws.is_empty() {
        return Err(ReportError::Empty {
            path: path.to_path_buf(),
            message: format!(
                "{rows} data rows, none with final = true: no run has finished its budget"
            ),
        });
    }
    let final_rows = raws.len();
    let mut domains: Vec<String> = raws.iter().map(|r| r.domain.clone()).collect();
    domains.sort();
    domains.dedup();

    // Per run: the loss of each domain (the last row wins if a run repeats one).
    let mut by_run: BTreeMap<String, BTreeMap<String, f64>> = BTreeMap::new();
    let mut run_meta: BTreeMap<String, (f64, f64, f64, f64, String)> = BTreeMap::new();
    for r in &raws {
        by_run
            .entry(r.run.clone())
            .or_default()
            .insert(r.domain.clone(), r.loss);
        run_meta.insert(
            r.run.clone(),
            (r.params, r.ne, r.tokens, r.flops, r.mixture.clone()),
        );
    }
    // The mean over the chosen domains, for runs evaluated on every one of them (a mean
    // over fewer would not be comparable).
    let averaged: Vec<String> = if mean_domains.is_empty() {
        domains.clone()
    } else {
        if let Some(d) = mean_domains.iter().find(|d| !domains.contains(d)) {
            return Err(ReportError::Empty {
                path: path.to_path_buf(),
                message: format!(
                    "[report] mean_domains: {d:?} is not among the results' domains ({})",
                    domains.join(", ")
                ),
            });
        }
        mean_domains.to_vec()
    };
    for (run, losses) in by_run.iter_mut() {
        let picked: Vec<f64> = averaged
            .iter()
            .filter_map(|d| losses.get(d).copied())
            .collect();
        if picked.len() == averaged.len() {
            let mean = picked.iter().sum::<f64>() / picked.len() as f64;
            losses.insert(MEAN.to_string(), mean);
        } else {
            warnings.push(format!(
                "run {run}: final losses on {} of the {} averaged domains; left out of the mean",
                picked.len(),
                averaged.len()
            ));
        }
    }
    // Seeds: runs sharing (params, tokens, mixture) are averaged, domain by domain.
    type Key = (u64, u64, String);
    let key =
        |m: &(f64, f64, f64, f64, String)| -> Key { (m.0.to_bits(), m.2.to_bits(), m.4.clone()) };
    let mut cells: BTreeMap<Key, Vec<&String>> = BTreeMap::new();
    for run in by_run.keys() {
        cells.entry(key(&run_meta[run])).or_default().push(run);
    }
    let mut runs = Vec::new();
    let mut points = Vec::new();
    let mut all_domains = vec![MEAN.to_string()];
    all_domains.extend(domains.iter().cloned());
    for ids in cells.values() {
        let meta = &run_meta[ids[0]];
        let mut loss = BTreeMap::new();
        for d in &all_domains {
            let v: Vec<f64> = ids
                .iter()
                .filter_map(|r| by_run[*r].get(d).copied())
                .collect();
            if v.is_empty() {
                continue;
            }
            let l = v.iter().sum::<f64>() / v.len() as f64;
            loss.insert(d.clone(), l);
            points.push(Obs {
                params: meta.0,
                tokens: meta.2,
                mixture: meta.4.clone(),
                domain: d.clone(),
                loss: l,
                seeds: v.len(),
            });
        }
        runs.push(RunRow {
            mixture: meta.4.clone(),
            params: meta.0,
            non_embedding_params: meta.1,
            tokens: meta.2,
            flops: ids.iter().map(|r| run_meta[*r].3).sum::<f64>() / ids.len() as f64,
            seeds: ids.len(),
            loss,
        });
    }
    // Seed-to-seed noise, per domain, pooled over the cells with two or more seeds.
    let mut seed_noise = Vec::new();
    for d in &all_domains {
        let (mut ss, mut dof, mut n_cells) = (0.0, 0usize, 0usize);
        for ids in cells.values() {
            let v: Vec<f64> = ids
                .iter()
                .filter_map(|r| by_run[*r].get(d).map(|l| l.ln()))
                .collect();
            if v.len() < 2 {
                continue;
            }
            let m = v.iter().sum::<f64>() / v.len() as f64;
            ss += v.iter().map(|x| (x - m).powi(2)).sum::<f64>();
            dof += v.len() - 1;
            n_cells += 1;
        }
        if dof > 0 {
            seed_noise.push(SeedNoise {
                domain: d.clone(),
                sd_log: (ss / dof as f64).sqrt(),
                cells: n_cells,
                dof,
            });
        }
    }
    // Unigram losses per (mixture, domain); the mean over the averaged domains.
    let mut unigram = Vec::new();
    for m in &mixtures {
        let of = |d: &str| {
            raws.iter()
                .find(|r| r.mixture == m.name && r.domain == d)
                .and_then(|r| r.unigram)
        };
        let per: Vec<Option<f64>> = averaged.iter().map(|d| of(d)).collect();
        if per.iter().all(Option::is_some) && !per.is_empty() {
            unigram.push(UnigramLoss {
                mixture: m.name.clone(),
                domain: MEAN.to_string(),
                loss: per.iter().flatten().sum::<f64>() / per.len() as f64,
            });
        }
        for d in &domains {
            if let Some(l) = of(d) {
                unigram.push(UnigramLoss {
                    mixture: m.name.clone(),
                    domain: d.clone(),
                    loss: l,
                });
            }
        }
    }
    let order = |name: &str| mixtures.iter().position(|m| m.name == name).unwrap_or(0);
    runs.sort_by(|a, b| {
        order(&a.mixture)
            .cmp(&order(&b.mixture))
            .then(a.params.total_cmp(&b.params))
            .then(a.tokens.total_cmp(&b.tokens))
    });
    Ok(Results {
        path: path.to_path_buf(),
        rows,
        final_rows,
        sizes: distinct(raws.iter().map(|r| r.params).collect()),
        budgets: distinct(raws.iter().map(|r| r.tokens).collect()),
        mixtures,
        domains: all_domains,
        mean_of: averaged,
        points,
        runs,
        unigram,
        seed_noise,
        warnings,
    })
}
