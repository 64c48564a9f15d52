//! The report's tables: cells (numbers with intervals, estimates marked where they were
//! read past the data) and their printing as HTML and Markdown.

use crate::format::{html_escape, key_num, num};

/// A table cell.
pub(super) enum Cell {
    Text(String),
    /// A number from the fit JSON, with its interval if any.
    Num(Option<f64>, Option<[f64; 2]>),
    /// A derived number with where it was read: inside the data, past it, or not found
    /// within the search limit (DESIGN house style 18: nothing extrapolated goes unmarked).
    Est(Option<f64>, Option<[f64; 2]>, Reach),
    /// A fraction shown as a percentage.
    Pct(f64),
}

/// Where a derived number was read, relative to the data it comes from.
#[derive(Debug, Clone, Copy)]
pub(super) enum Reach {
    /// Inside the observed budgets (or sizes).
    Inside,
    /// Past them; by this factor where known.
    Past(Option<f64>),
    /// Not reached within this multiple of the largest observed budget.
    Beyond(f64),
    /// Inside the data, but set by the design rather than the data (an optimal share from
    /// fewer than four shares: a quadratic through three always has a vertex).
    Grid,
}

impl Reach {
    /// Inside, or past the data by `beyond` when it is a factor above 1.
    pub(super) fn of(extrapolated: bool, beyond: Option<f64>) -> Reach {
        if extrapolated {
            Reach::Past(beyond.filter(|f| f.is_finite() && *f > 1.0))
        } else {
            Reach::Inside
        }
    }

    /// How a cell marks it; nothing inside the data.
    pub(super) fn text(self) -> Option<String> {
        match self {
            Reach::Inside => None,
            Reach::Past(Some(f)) => Some(format!("extrapolated, {}× past the data", num(f))),
            Reach::Past(None) => Some("extrapolated".into()),
            Reach::Beyond(f) => Some(format!("beyond {}× the data", num(f))),
            Reach::Grid => Some("set by the grid: fewer than 4 shares".into()),
        }
    }
}

/// A plateau cell: the tokens, marked when past the largest budget, or "beyond" the limit.
pub(super) fn plateau_cell(
    d: Option<f64>,
    ci: Option<[f64; 2]>,
    extrapolated: bool,
    p: &synthscale_fit::study::Plateau,
) -> Cell {
    match d {
        None => Cell::Est(None, None, Reach::Beyond(p.search_limit / p.largest_tokens)),
        Some(d) => Cell::Est(
            Some(d),
            ci,
            Reach::of(extrapolated, Some(d / p.largest_tokens)),
        ),
    }
}

impl Cell {
    /// A text cell.
    pub(super) fn text(s: impl Into<String>) -> Cell {
        Cell::Text(s.into())
    }

    /// A number without an interval.
    pub(super) fn number(v: f64) -> Cell {
        Cell::Num(Some(v), None)
    }
}

/// A titled table of cells, printed as HTML or Markdown.
pub(super) struct Table {
    pub(super) title: String,
    pub(super) head: Vec<String>,
    pub(super) rows: Vec<Vec<Cell>>,
}

impl Table {
    /// An empty table with its title and column heads.
    pub(super) fn new(title: impl Into<String>, head: &[&str]) -> Self {
        Table {
            title: title.into(),
            head: head.iter().map(|s| s.to_string()).collect(),
            rows: Vec::new(),
        }
    }
}

/// A number in HTML, its full-precision key in `data-v`.
fn span(v: f64) -> String {
    format!("<span data-v=\"{}\">{}</span>", key_num(v), num(v))
}

/// A cell as an HTML `<td>`.
fn cell_html(c: &Cell) -> String {
    match c {
        Cell::Text(s) => format!("<td>{}</td>", html_escape(s)),
        Cell::Num(None, _) => "<td class=\"n\">—</td>".into(),
        Cell::Num(Some(v), iv) => {
            let ci = iv.map_or(String::new(), |[lo, hi]| {
                format!(" <small>[{}, {}]</small>", span(lo), span(hi))
            });
            format!("<td class=\"n\">{}{ci}</td>", span(*v))
        }
        Cell::Pct(v) => format!(
            "<td class=\"n\"><span data-v=\"{}\">{:.3}%</span></td>",
            key_num(*v),
            100.0 * v
        ),
        Cell::Est(v, iv, reach) => {
            let inner = cell_html(&Cell::Num(*v, *iv));
            match reach.text() {
                None => inner,
                Some(note) => inner.replace(
                    "</td>",
                    &format!(" <small class=\"x\">({})</small></td>", html_escape(&note)),
                ),
            }
        }
    }
}

/// A cell as Markdown.
fn cell_md(c: &Cell) -> String {
    match c {
        Cell::Text(s) => s.replace('|', "\\|"),
        Cell::Num(None, _) => "—".into(),
        Cell::Num(Some(v), iv) => {
            let ci = iv.map_or(String::new(), |[lo, hi]| {
                format!(" [{}, {}]", num(lo), num(hi))
            });
            format!("{}{ci}", num(*v))
        }
        Cell::Pct(v) => format!("{:.3}%", 100.0 * v),
        Cell::Est(v, iv, reach) => {
            let inner = cell_md(&Cell::Num(*v, *iv));
            match reach.text() {
                None => inner,
                Some(note) => format!("{inner} *({note})*"),
            }
        }
    }
}

/// A table as HTML under an `<h{level}>` title; "none" when it has no rows.
pub(super) fn table_html(tb: &Table, level: u8) -> String {
    let mut s = format!("<h{level}>{}</h{level}>\n", html_escape(&tb.title));
    if tb.rows.is_empty() {
        s.push_str("<p class=\"none\">none</p>\n");
        return s;
    }
    s.push_str("<table>\n<thead><tr>");
    for h in &tb.head {
        s.push_str(&format!("<th>{}</th>", html_escape(h)));
    }
    s.push_str("</tr></thead>\n<tbody>\n");
    for r in &tb.rows {
        s.push_str("<tr>");
        for c in r {
            s.push_str(&cell_html(c));
        }
        s.push_str("</tr>\n");
    }
    s.push_str("</tbody></table>\n");
    s
}

/// A table as Markdown under a level-`level` heading; "none" when it has no rows.
pub(super) fn table_md(tb: &Table, level: usize) -> String {
    let mut s = format!("{} {}\n\n", "#".repeat(level), tb.title);
    if tb.rows.is_empty() {
        s.push_str("none\n\n");
        return s;
    }
    s.push_str(&format!("| {} |\n", tb.head.join(" | ")));
    s.push_str(&format!("|{}\n", "---|".repeat(tb.head.len())));
    for r in &tb.rows {
        let cells: Vec<String> = r.iter().map(cell_md).collect();
        s.push_str(&format!("| {} |\n", cells.join(" | ")));
    }
    s.push('\n');
    s
}
