//! The results table's contract between the crate that writes it (`sweep collect`) and the
//! one that reads it (`report`). Oracle: DESIGN.md's "Results table" line, which names the
//! columns every `results.csv` has at least, in this order.

use synthscale_report::ReportError;
use synthscale_sweep::results::{COLUMNS, CONTRACT_COLUMNS};

/// DESIGN.md: "at least `run_id, params, non_embedding_params, tokens, flops, mixture,
/// natural_ratio, rephrased_ratio, textbook_ratio, eval_domain, step, loss, final`".
const DESIGN: [&str; 13] = [
    "run_id",
    "params",
    "non_embedding_params",
    "tokens",
    "flops",
    "mixture",
    "natural_ratio",
    "rephrased_ratio",
    "textbook_ratio",
    "eval_domain",
    "step",
    "loss",
    "final",
];

#[test]
fn collect_writes_the_design_contract_first() {
    assert_eq!(CONTRACT_COLUMNS, DESIGN);
    assert_eq!(COLUMNS[..DESIGN.len()], DESIGN);
    let mut unique = COLUMNS.to_vec();
    unique.sort_unstable();
    unique.dedup();
    assert_eq!(
        unique.len(),
        COLUMNS.len(),
        "a column written twice: {COLUMNS:?}"
    );
}

/// One final row of a 1M-parameter run on natural text, with only the contract's columns.
fn table(columns: &[&str]) -> String {
    let cell = |c: &str| match c {
        "run_id" => "r1",
        "params" => "1000000",
        "non_embedding_params" => "900000",
        "tokens" => "20000000",
        "flops" => "120000000000000",
        "mixture" => "natural",
        "natural_ratio" => "1",
        "rephrased_ratio" | "textbook_ratio" => "0",
        "eval_domain" => "web",
        "step" => "100",
        "loss" => "3.5",
        "final" => "true",
        other => panic!("no cell for {other}"),
    };
    let row: Vec<&str> = columns.iter().map(|c| cell(c)).collect();
    format!("{}\n{}\n", columns.join(","), row.join(","))
}

#[test]
fn report_reads_a_table_of_the_contract_columns_alone() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("results.csv");
    std::fs::write(&path, table(&CONTRACT_COLUMNS)).unwrap();
    let results = synthscale_report::read_results(&path, &[]).unwrap();
    // One point for the domain, one for the mean over domains.
    assert_eq!(
        (results.rows, results.final_rows, results.points.len()),
        (1, 1, 2)
    );
}

#[test]
fn report_names_each_missing_contract_column_it_needs() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("results.csv");
    // `step` orders a run's evaluations for the fitter's inputs; the report reads final rows.
    for missing in CONTRACT_COLUMNS.iter().filter(|c| **c != "step") {
        let columns: Vec<&str> = CONTRACT_COLUMNS
            .into_iter()
            .filter(|c| c != missing)
            .collect();
        std::fs::write(&path, table(&columns)).unwrap();
        match synthscale_report::read_results(&path, &[]) {
            Err(ReportError::MissingColumn { column, .. }) => assert_eq!(&column, missing),
            other => panic!("without {missing}: {other:?}"),
        }
    }
}
