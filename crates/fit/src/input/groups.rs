//! From the table to the points to fit: columns checked, cells validated as positive numbers,
//! `--where` filters, grouping, and the highest-loss points dropped on request.

use std::collections::BTreeMap;
use std::path::PathBuf;

use super::options::InputOptions;
use super::source::Format;
use super::table::{Row, Table};
use crate::error::{FitError, Result};
use crate::law::{Law, Point};

/// A group of points to fit.
#[derive(Debug, Clone, PartialEq)]
pub struct Group {
    /// `(column, value)` pairs that define it (empty: all rows).
    pub keys: Vec<(String, String)>,
    /// Its points, in input order.
    pub points: Vec<Point>,
}

impl Group {
    /// `col=value,…`, or `all`.
    pub fn name(&self) -> String {
        group_name(&self.keys)
    }
}

/// `col=value,…`, or `all` for no keys.
pub fn group_name(keys: &[(String, String)]) -> String {
    if keys.is_empty() {
        "all".into()
    } else {
        keys.iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(",")
    }
}

impl Table {
    fn col(&self, name: &str, why: &str) -> Result<usize> {
        self.columns
            .iter()
            .position(|c| c == name)
            .ok_or_else(|| self.missing(name, why))
    }

    /// The error for a column `name` this table lacks, needed for `why`.
    fn missing(&self, name: &str, why: &str) -> FitError {
        FitError::MissingColumn {
            path: PathBuf::from(self.paths()),
            column: name.to_string(),
            why: why.to_string(),
            available: self.columns.join(", "),
        }
    }

    /// The input paths, joined for messages.
    pub fn paths(&self) -> String {
        self.sources
            .iter()
            .map(|s| s.path.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    }

    fn path_of(&self, row: &Row) -> PathBuf {
        PathBuf::from(&self.sources[row.source].path)
    }

    fn number(&self, row: &Row, col: usize, scale: f64) -> Result<f64> {
        let cell = &row.cells[col];
        let v: f64 = cell.parse().map_err(|_| FitError::Parse {
            path: self.path_of(row),
            line: row.line,
            column: self.columns[col].clone(),
            message: if cell.is_empty() {
                "empty cell".into()
            } else {
                format!("{cell:?} is not a number")
            },
        })?;
        let v = v * scale;
        if !v.is_finite() || v <= 0.0 {
            return Err(FitError::NonPositive {
                path: self.path_of(row),
                line: row.line,
                column: self.columns[col].clone(),
                value: v,
            });
        }
        Ok(v)
    }

    /// The default grouping columns of this table's format, for `law`.
    pub fn default_group_by(&self, law: Law) -> Vec<String> {
        let many = |col: &str| {
            let i = self.columns.iter().position(|c| c == col);
            i.is_some_and(|i| {
                let mut v: Vec<&str> = self.rows.iter().map(|r| r.cells[i].as_str()).collect();
                v.sort_unstable();
                v.dedup();
                v.len() > 1
            })
        };
        match self.format {
            Format::LongCsv | Format::Jsonl => Vec::new(),
            Format::WideLog => {
                let mut g = Vec::new();
                if !law.uses_params() && many("file") {
                    g.push("file".to_string());
                }
                g.push("curve".to_string());
                g
            }
            Format::Metrics => {
                let mut g = Vec::new();
                if !law.uses_params() && many("run") {
                    g.push("run".to_string());
                }
                g.push("eval_domain".to_string());
                g
            }
        }
    }

    /// Filters, groups and converts rows to points for `law`. Groups come in order of first
    /// appearance.
    pub fn groups(&self, law: Law, opts: &InputOptions) -> Result<Vec<Group>> {
        let filters: Vec<(usize, &str)> = opts
            .filters
            .iter()
            .map(|(c, v)| Ok((self.col(c, "named in --where")?, v.as_str())))
            .collect::<Result<_>>()?;
        let group_by = opts
            .group_by
            .clone()
            .unwrap_or_else(|| self.default_group_by(law));
        let group_idx: Vec<usize> = group_by
            .iter()
            .map(|c| self.col(c, "named in --group-by"))
            .collect::<Result<_>>()?;
        let names = &self.names;
        let loss = self.col(&names.loss, "the loss to fit; map another with --loss-col")?;
        let flops = match &names.flops {
            Some((c, scale)) if self.columns.contains(c) => Some((self.col(c, "")?, *scale)),
            Some((c, _)) if names.flops_give_tokens => {
                return Err(self.missing(c, "named by --flops-col"))
            }
            _ => None,
        };
        let params = self.columns.iter().position(|c| *c == names.params);
        let tokens = self.columns.iter().position(|c| *c == names.tokens);

        let mut order: Vec<Vec<(String, String)>> = Vec::new();
        let mut by_key: BTreeMap<Vec<(String, String)>, Vec<Point>> = BTreeMap::new();
        for row in &self.rows {
            if !filters.iter().all(|&(i, v)| cell_matches(&row.cells[i], v)) {
                continue;
            }
            let l = self.number(row, loss, 1.0)?;
            // N first: D may be derived from it.
            let n_cell = |row: &Row| -> Result<Option<f64>> {
                match params {
                    Some(p) if !row.cells[p].is_empty() => Ok(Some(self.number(row, p, 1.0)?)),
                    _ => Ok(None),
                }
            };
            let (d, n) = if names.flops_give_tokens {
                let (fc, scale) = flops.expect("checked above");
                let n = n_cell(row)?.ok_or_else(|| {
                    self.missing(
                        &names.params,
                        "tokens come from FLOPs as D = C/(6N), which needs N; map it with --params-col",
                    )
                })?;
                (self.number(row, fc, scale)? / (6.0 * n), n)
            } else {
                let t = tokens.ok_or_else(|| {
                    self.missing(
                        &names.tokens,
                        "the token counts; map another with --tokens-col, or give --flops-col (D = C/6N)",
                    )
                })?;
                let d = self.number(row, t, 1.0)?;
                let n =
                    if law.uses_params() {
                        match (n_cell(row)?, flops) {
                            (Some(n), _) => n,
                            (None, Some((fc, scale))) if !row.cells[fc].is_empty() => {
                                self.number(row, fc, scale)? / (6.0 * d)
                            }
                            _ => return Err(self.missing(
                                &names.params,
                                "the chinchilla law needs model sizes; map them with --params-col",
                            )),
                        }
                    } else {
                        1.0
                    };
                (d, n)
            };
            let key: Vec<(String, String)> = group_by
                .iter()
                .zip(&group_idx)
                .map(|(c, &i)| (c.clone(), row.cells[i].clone()))
                .collect();
            let entry = by_key.entry(key.clone()).or_default();
            if entry.is_empty() {
                order.push(key);
            }
            entry.push(Point { d, n, loss: l });
        }
        if order.is_empty() {
            return Err(FitError::Empty {
                path: PathBuf::from(self.paths()),
                message: if opts.filters.is_empty() {
                    "no data rows".into()
                } else {
                    "no row passes the --where filters".into()
                },
            });
        }
        Ok(order
            .into_iter()
            .map(|k| {
                let mut points = by_key.remove(&k).expect("present");
                if opts.drop_highest_loss > 0 {
                    // Stable: ties keep input order; the rest stay in input order.
                    let mut order: Vec<usize> = (0..points.len()).collect();
                    order.sort_by(|&a, &b| points[b].loss.total_cmp(&points[a].loss));
                    let mut drop = vec![false; points.len()];
                    for &i in order.iter().take(opts.drop_highest_loss) {
                        drop[i] = true;
                    }
                    let mut i = 0;
                    points.retain(|_| {
                        i += 1;
                        !drop[i - 1]
                    });
                }
                Group { keys: k, points }
            })
            .collect())
    }
}

/// Equal as strings, or as numbers (`0.5` matches `0.50`).
fn cell_matches(cell: &str, want: &str) -> bool {
    cell == want || matches!((cell.parse::<f64>(), want.parse::<f64>()), (Ok(a), Ok(b)) if a == b)
}

/// Parses `col=value`.
pub fn parse_filter(s: &str) -> std::result::Result<(String, String), String> {
    match s.split_once('=') {
        Some((c, v)) if !c.trim().is_empty() => Ok((c.trim().to_string(), v.trim().to_string())),
        _ => Err(format!("{s:?} is not col=value")),
    }
}
