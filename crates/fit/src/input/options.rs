//! How an input's columns are found and its rows chosen.

/// How columns are found and rows chosen.
#[derive(Debug, Clone, PartialEq)]
pub struct InputOptions {
    /// Token-count column.
    pub tokens_col: String,
    /// Loss column.
    pub loss_col: String,
    /// Parameter-count column (joint law).
    pub params_col: String,
    /// FLOP column: tokens become `C/(6N)`.
    pub flops_col: Option<String>,
    /// Wide logs: a column whose name contains this (any case) is one curve.
    pub curves: String,
    /// `--where col=value` filters, all of which a row must pass.
    pub filters: Vec<(String, String)>,
    /// Columns that split the rows into groups; `None`: the format's default (long CSV: one
    /// group; wide logs: `curve`, and `file` for one-variable laws; run directories:
    /// `eval_domain`, and `run` for one-variable laws).
    pub group_by: Option<Vec<String>>,
    /// Drop this many highest-loss points of each group (Epoch AI drops the 5 highest-loss
    /// points of Chinchilla's data as outliers from the first steps of training).
    pub drop_highest_loss: usize,
    /// Step-indexed logs (a W&B panel export): tokens are the step column × this.
    pub tokens_per_step: Option<f64>,
}

impl Default for InputOptions {
    fn default() -> Self {
        InputOptions {
            tokens_col: "tokens".into(),
            loss_col: "loss".into(),
            params_col: "params".into(),
            flops_col: None,
            curves: "loss".into(),
            filters: Vec::new(),
            group_by: None,
            drop_highest_loss: 0,
            tokens_per_step: None,
        }
    }
}
