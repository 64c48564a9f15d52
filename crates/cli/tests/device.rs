//! `bench gpu-check` and `bench train --device/--dtype` from the command line, on the CPU:
//! the bf16 path agrees with f32 within the check's tolerance, and a CPU-only binary
//! refuses `--device cuda` with exit code 2.

use std::process::Command;

fn bench(args: &[&str]) -> (i32, serde_json::Value, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_synthscale"))
        .arg("bench")
        .args(args)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let json = serde_json::from_str(stdout.trim()).unwrap_or(serde_json::Value::Null);
    (
        out.status.code().unwrap_or(-1),
        json,
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

const TINY: &[&str] = &[
    "--d-model",
    "64",
    "--layers",
    "2",
    "--heads",
    "2",
    "--vocab",
    "512",
    "--seq-len",
    "32",
    "--batch",
    "2",
];

#[test]
fn gpu_check_on_the_cpu_passes_in_bf16_and_matches_exactly_in_f32() {
    let (code, j, err) =
        bench(&[&["gpu-check", "--device", "cpu", "--dtype", "bf16"], TINY].concat());
    assert_eq!(code, 0, "{err}");
    assert_eq!(j["ok"], true, "{j}");
    assert_eq!(j["dtype"], "bf16");
    assert!(
        j["max_rel_diff"].as_f64().unwrap() > 0.0,
        "bf16 really ran: {j}"
    );

    let (code, j, err) =
        bench(&[&["gpu-check", "--device", "cpu", "--dtype", "f32"], TINY].concat());
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        j["max_rel_diff"], 0.0,
        "the same f32 computation twice: {j}"
    );
}

#[test]
fn bench_train_takes_a_dtype_and_reports_it() {
    let args = [
        &["train", "--dtype", "bf16", "--steps", "1", "--warmup", "0"],
        TINY,
    ]
    .concat();
    let (code, j, err) = bench(&args);
    assert_eq!(code, 0, "{err}");
    assert_eq!(j["device"], "cpu");
    assert_eq!(j["dtype"], "bf16");
    assert!(j["tokens_per_s"].as_f64().unwrap() > 0.0);
}

#[cfg(not(feature = "cuda"))]
#[test]
fn a_cpu_only_binary_refuses_cuda_with_a_clear_message() {
    let (code, _, err) = bench(&["train", "--device", "cuda"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("--features cuda"), "{err}");
}
