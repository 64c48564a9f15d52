//! The Markdown summary: the findings, the figures as files beside it, the tables.

use super::cells::table_md;
use super::doc::Doc;

impl Doc<'_> {
    /// The Markdown summary.
    pub(super) fn markdown(&self) -> String {
        let mut s = String::from("# Scaling-law report\n\n");
        s.push_str(&format!(
            "Results: `{}` ({} rows, {} final). Full report: `report.html`; every number at full precision: `fit.json`.\n\n## Findings\n\n",
            self.results.path.display(),
            self.results.rows,
            self.results.final_rows
        ));
        for f in self.findings() {
            s.push_str(&format!("- {f}\n"));
        }
        s.push_str("\n## Figures\n\n");
        for (i, f) in self.figures.iter().enumerate() {
            let file = f
                .png
                .file_name()
                .map_or(String::new(), |x| x.to_string_lossy().into_owned());
            s.push_str(&format!(
                "![{}]({file})\n\n**Figure {}.** {}\n\n",
                f.title,
                i + 1,
                f.caption
            ));
        }
        s.push_str("## Tables\n\n");
        for (tb, _) in self.tables() {
            s.push_str(&table_md(&tb, 3));
        }
        let notes = self.notes();
        if !notes.is_empty() {
            s.push_str("## Notes\n\n");
            for n in notes {
                s.push_str(&format!("- {n}\n"));
            }
            s.push('\n');
        }
        if let Some((p, _)) = self.manifest {
            s.push_str(&format!("Manifest: `{}`\n", p.display()));
        }
        s
    }
}
