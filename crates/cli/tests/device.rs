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
    // Gradient norms are compared too: bf16 moves them, within twice the loss tolerance.
    let g = j["max_rel_grad_norm_diff"].as_f64().unwrap();
    assert!(
        g > 0.0 && g <= j["grad_norm_tolerance"].as_f64().unwrap(),
        "{j}"
    );

    let (code, j, err) =
        bench(&[&["gpu-check", "--device", "cpu", "--dtype", "f32"], TINY].concat());
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        j["max_rel_diff"], 0.0,
        "the same f32 computation twice: {j}"
    );
    assert_eq!(j["max_rel_grad_norm_diff"], 0.0, "{j}");
}

#[test]
fn gpu_check_composed_runs_the_oracle_graph_on_the_device() {
    // Oracle: the fused f32 CPU graph (the reference side of the check) against the same
    // model composed from candle's ops: equal up to f32 summation order.
    let (code, j, err) = bench(
        &[
            &[
                "gpu-check",
                "--device",
                "cpu",
                "--dtype",
                "f32",
                "--composed",
            ],
            TINY,
        ]
        .concat(),
    );
    assert_eq!(code, 0, "{err}");
    assert_eq!(j["ops"], "composed", "{j}");
    assert!(j["max_rel_diff"].as_f64().unwrap() < 1e-5, "{j}");
    // The gradients are summed in another order: the composed graph really ran.
    let g = j["max_rel_grad_norm_diff"].as_f64().unwrap();
    assert!(g > 0.0 && g < 1e-5, "{j}");
}

#[test]
fn bench_kernels_checks_every_fused_op_against_its_composed_oracle() {
    // Oracle: each op composed from candle's differentiable ops in f32, differentiated by
    // candle's autograd. On the CPU the fused f32 ops run; on CUDA the same command runs
    // the bf16 kernels (scripts/gpu-check.sh).
    let out = Command::new(env!("CARGO_BIN_EXE_synthscale"))
        .args(["bench", "kernels"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rows: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let ops: Vec<&str> = rows.iter().map(|r| r["op"].as_str().unwrap()).collect();
    assert_eq!(
        ops,
        [
            "embedding",
            "rms_norm",
            "swiglu",
            "rope_to_heads",
            "causal_attention_hd64",
            "causal_attention_hd128",
            "linear_cross_entropy"
        ]
    );
    for r in &rows {
        assert_eq!(r["ok"], true, "{r}");
        assert_eq!(r["value_tolerance"], 1e-4, "{r}");
        let errs: Vec<f64> = std::iter::once(&r["value_err"])
            .chain(r["grad_err"].as_array().unwrap())
            .map(|e| e.as_f64().unwrap())
            .collect();
        assert!(errs.iter().all(|&e| e <= 1e-4), "{r}");
    }
    // The sums really were computed two ways: the attention and loss differ in order.
    for r in &rows[4..] {
        assert!(r["value_err"].as_f64().unwrap() > 0.0, "{r}");
    }
    let (code, _, err) = bench(&["kernels", "--dtype", "bf16"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("run in f32 on cpu"), "{err}");
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

#[test]
fn the_memory_model_holds_against_the_measured_peak_at_three_shapes() {
    // Oracle: the heap's own count of bytes held in tensor-sized allocations (≥ 64 KiB)
    // while two training steps run, per shape, for the fused f32 graph and the composed
    // bf16 graph that CUDA runs. The bound is ±20% on the peak; what the forward
    // pass keeps is a plain inventory of tensors and must match within 2%.
    let out = Command::new(env!("CARGO_BIN_EXE_synthscale"))
        .args(["bench", "memory"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let cases: Vec<serde_json::Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(cases.len(), 6, "3 shapes × 2 graphs: {stdout}");
    for c in &cases {
        let ratio = c["ratio"].as_f64().unwrap();
        assert!((ratio - 1.0).abs() <= 0.2, "peak off by more than 20%: {c}");
        let kept = c["forward_kept_mb"].as_f64().unwrap();
        let want = c["forward_kept_estimated_mb"].as_f64().unwrap();
        assert!(
            (kept / want - 1.0).abs() <= 0.02,
            "forward activations {kept} MB, the model says {want} MB: {c}"
        );
    }
    assert_eq!(out.status.code(), Some(0));
    let graphs: Vec<&str> = cases.iter().map(|c| c["graph"].as_str().unwrap()).collect();
    assert_eq!(graphs.iter().filter(|g| **g == "fused").count(), 3);
    assert_eq!(graphs.iter().filter(|g| **g == "composed").count(), 3);

    // A shape the model misjudges by more than the tolerance exits 1: a tolerance no
    // estimate can meet.
    let out = Command::new(env!("CARGO_BIN_EXE_synthscale"))
        .args([
            "bench",
            "memory",
            "--shapes",
            "64:1:2:512:32:2",
            "--tolerance",
            "1e-9",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
}

#[test]
fn bench_train_counts_the_launches_of_a_step_and_its_memory() {
    // Oracle for the forward count: the fused decoder's op list (decoder.rs), per layer
    // 16 operations — two RMSNorms, seven matmuls, v's copy to heads, rotary q and k,
    // attention, SwiGLU and two residual adds — plus the embedding lookup, the final norm
    // and the fused head-and-loss: 16·2 + 3 = 35 for two layers. Views (reshapes,
    // transposed weights) launch nothing and are not counted.
    let args = [
        &[
            "train",
            "--dtype",
            "f32",
            "--steps",
            "1",
            "--warmup",
            "0",
            "--seq-len",
            "64",
        ],
        &TINY[..TINY.len() - 4],
        &["--batch", "4"],
    ]
    .concat();
    let (code, j, err) = bench(&args);
    assert_eq!(code, 0, "{err}");
    let l = &j["launches"];
    assert_eq!(l["forward"], 35, "{j}");
    // Backward: at least one operation per forward one, and every gradient edge costs a
    // zero and an add in candle's autograd (the count the goal is about).
    let (fwd, bwd) = (35.0, l["backward"].as_f64().unwrap());
    assert!(bwd > 2.0 * fwd, "{j}");
    assert_eq!(l["per_layer"].as_f64().unwrap(), (fwd + bwd) / 2.0);
    // The memory model against the heap's peak over the whole run (weights included).
    let (est, heap) = (
        j["memory_estimate_mb"].as_f64().unwrap(),
        j["heap_peak_mb"].as_f64().unwrap(),
    );
    assert!(
        (heap / est - 1.0).abs() < 0.2,
        "{heap} MB measured, {est} MB estimated"
    );
}
