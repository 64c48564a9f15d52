//! The self-contained HTML page: figures inlined as base64 PNG, no network, no script.

use crate::error::{ReportError, Result};
use crate::format::{base64, html_escape};

use super::cells::table_html;
use super::doc::Doc;

impl Doc<'_> {
    /// The self-contained HTML page.
    pub(super) fn html(&self) -> Result<String> {
        let mut s = String::new();
        s.push_str("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n");
        s.push_str("<title>synthscale report</title>\n<style>\n");
        s.push_str(
            "body{font-family:'DejaVu Sans',Helvetica,Arial,sans-serif;max-width:1180px;margin:2em auto;padding:0 1em;color:#222;line-height:1.45}\n\
             table{border-collapse:collapse;margin:.5em 0 1.5em;font-size:13px}\n\
             th,td{border:1px solid #ccc;padding:3px 7px;text-align:left}\n\
             td.n{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}\n\
             th{background:#f0f0f0}\n small{color:#666}\n\
             figure{margin:1.5em 0}\n figure img{max-width:100%;border:1px solid #ddd}\n\
             figcaption{font-size:14px;color:#333;margin-top:.3em}\n\
             pre{background:#f7f7f7;padding:.8em;overflow-x:auto;font-size:12px}\n\
             .none{color:#888}\n",
        );
        s.push_str("</style>\n</head>\n<body>\n");
        s.push_str("<h1>Scaling-law report</h1>\n");
        s.push_str(&format!(
            "<p>Results: <code>{}</code> ({} rows, {} final). Written by synthscale {}.</p>\n",
            html_escape(&self.results.path.display().to_string()),
            self.results.rows,
            self.results.final_rows,
            env!("CARGO_PKG_VERSION")
        ));
        s.push_str("<h2>Findings</h2>\n<ul>\n");
        for f in self.findings() {
            s.push_str(&format!("<li>{}</li>\n", html_escape(&f)));
        }
        s.push_str("</ul>\n<h2>Figures</h2>\n");
        for (i, f) in self.figures.iter().enumerate() {
            let bytes = std::fs::read(&f.png).map_err(|e| ReportError::read(&f.png, e))?;
            s.push_str(&format!(
                "<figure id=\"{}\"><img alt=\"{}\" src=\"data:image/png;base64,{}\">\n<figcaption><b>Figure {}.</b> {}</figcaption></figure>\n",
                f.fig.stem(),
                html_escape(&f.title),
                base64(&bytes),
                i + 1,
                html_escape(&f.caption)
            ));
        }
        s.push_str("<h2>Tables</h2>\n");
        let mut folded = false;
        for (tb, fold) in self.tables() {
            if fold && !folded {
                s.push_str("<details><summary>Fitted parameters on every other domain</summary>\n");
                folded = true;
            }
            s.push_str(&table_html(&tb, 3));
        }
        if folded {
            s.push_str("</details>\n");
        }
        let notes = self.notes();
        s.push_str("<h2>Notes</h2>\n");
        if notes.is_empty() {
            s.push_str("<p class=\"none\">Every fit and figure is complete.</p>\n");
        } else {
            s.push_str("<ul>\n");
            for n in notes {
                s.push_str(&format!("<li>{}</li>\n", html_escape(&n)));
            }
            s.push_str("</ul>\n");
        }
        s.push_str(&format!(
            "<h2>Fitting</h2>\n<p>Every law is fitted by synthscale-fit: sum of Huber losses of log residuals ({}), L-BFGS from the law's full start grid, {} bootstrap resamples of the residuals (seed {}) for 95% percentile intervals. The fit JSON (<code>fit.json</code>) holds every number above at full precision.</p>\n",
            html_escape(&self.delta_text()),
            self.analysis.config.bootstrap,
            self.analysis.config.seed
        ));
        if let Some((p, text)) = self.manifest {
            s.push_str(&format!(
                "<h2>Manifest</h2>\n<p><code>{}</code></p>\n<pre>{}</pre>\n",
                html_escape(&p.display().to_string()),
                html_escape(text)
            ));
        }
        s.push_str("</body>\n</html>\n");
        Ok(s)
    }
}
