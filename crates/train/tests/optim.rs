//! AdamW and clipping against PyTorch.

use candle_core::{Device, Tensor, Var};
use synthscale_train::config::OptimConfig;
use synthscale_train::optim::{clip, global_norm, AdamW};

/// Oracle: PyTorch 2.15 `torch.optim.AdamW` + `clip_grad_norm_`, produced by
/// `scripts/reference/adamw_reference.py` (run with `python3 adamw_reference.py`):
///
/// ```text
/// w = [[0.5, -1.0, 2.0], [0.0, 3.0, -0.25]] (decay 0.1), g = [1.0, 0.9, 1.1] (no decay)
/// grad[k][i] = sin(1.7k + 0.3i)·(1 + i mod 3) over the 9 values, w first
/// lr_k = 1e-2·(k+1)/4, betas (0.9, 0.95), eps 1e-8, clip at 1.0, four steps
/// ```
const NORMS: [f64; 4] = [4.92922211, 4.17940998, 4.95310593, 4.20721197];
const W: [[f64; 6]; 4] = [
    [
        0.499875009,
        -1.00225008,
        1.99699998,
        -0.00249999971,
        2.99674988,
        -0.252437502,
    ],
    [
        0.495950252,
        -1.00617814,
        1.99108636,
        -0.00744235562,
        2.99092078,
        -0.25543648,
    ],
    [
        0.49238351,
        -1.00805306,
        1.9877553,
        -0.0083943177,
        2.9886086,
        -0.25445044,
    ],
    [
        0.493195564,
        -1.00592709,
        1.9865706,
        -0.00802915078,
        2.98546028,
        -0.25483197,
    ],
];
const G: [[f64; 3]; 4] = [
    [0.997500002, 0.897499979, 1.09749997],
    [0.995857716, 0.897316754, 1.09862339],
    [0.997473598, 0.899683475, 1.10160446],
    [0.99647826, 0.898455143, 1.10024858],
];

#[test]
fn adamw_with_clipping_matches_pytorch() {
    let dev = Device::Cpu;
    let w =
        Var::from_tensor(&Tensor::new(&[[0.5f32, -1.0, 2.0], [0.0, 3.0, -0.25]], &dev).unwrap())
            .unwrap();
    let g = Var::from_tensor(&Tensor::new(&[1.0f32, 0.9, 1.1], &dev).unwrap()).unwrap();
    // The names decide decay: a matrix is decayed, a norm gain is not (decay_norms = false).
    let params = vec![
        ("model.layers.0.mlp.gate_proj.weight".to_string(), w.clone()),
        ("model.norm.weight".to_string(), g.clone()),
    ];
    let cfg = OptimConfig {
        beta1: 0.9,
        beta2: 0.95,
        eps: 1e-8,
        weight_decay: 0.1,
        ..OptimConfig::default()
    };
    let mut opt = AdamW::new(&params, &cfg).unwrap();
    assert!(opt.decays(0) && !opt.decays(1));
    for k in 0..4 {
        let grad = |i: usize| ((1.7 * k as f64 + 0.3 * i as f64).sin() * (1 + i % 3) as f64) as f32;
        let gw: Vec<f32> = (0..6).map(grad).collect();
        let gg: Vec<f32> = (6..9).map(grad).collect();
        let mut grads = vec![
            Tensor::from_vec(gw, (2, 3), &dev).unwrap(),
            Tensor::from_vec(gg, 3, &dev).unwrap(),
        ];
        let norm = global_norm(&grads).unwrap();
        assert!((norm - NORMS[k]).abs() < 1e-5, "step {k}: norm {norm}");
        clip(&mut grads, norm, 1.0).unwrap();
        opt.step(&params, &grads, 1e-2 * (k + 1) as f64 / 4.0)
            .unwrap();
        let wv: Vec<f32> = w.as_tensor().flatten_all().unwrap().to_vec1().unwrap();
        let gv: Vec<f32> = g.as_tensor().to_vec1().unwrap();
        for (a, b) in wv.iter().zip(&W[k]).chain(gv.iter().zip(&G[k])) {
            assert!(
                (*a as f64 - b).abs() < 2e-6,
                "step {}: {wv:?} {gv:?} vs {:?} {:?}",
                k + 1,
                W[k],
                G[k]
            );
        }
    }
}

#[test]
fn optimizer_state_round_trips_through_a_save() {
    let dev = Device::Cpu;
    let w = Var::from_tensor(&Tensor::new(&[1.0f32, 2.0, 3.0], &dev).unwrap()).unwrap();
    let params = vec![("model.layers.0.mlp.up_proj.weight".to_string(), w.clone())];
    let cfg = OptimConfig::default();
    let mut a = AdamW::new(&params, &cfg).unwrap();
    let grad = [Tensor::new(&[0.1f32, -0.2, 0.3], &dev).unwrap()];
    a.step(&params, &grad, 1e-2).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("opt.safetensors");
    candle_core::safetensors::save(&a.state(&params), &p).unwrap();
    let mut b = AdamW::load(
        &params,
        &cfg,
        candle_core::safetensors::load(&p, &dev).unwrap(),
        a.t(),
        &p,
    )
    .unwrap();
    // Two optimizers from the same state take the same next step.
    let w2 = Var::from_tensor(w.as_tensor()).unwrap();
    let params2 = vec![(params[0].0.clone(), w2.clone())];
    a.step(&params, &grad, 1e-2).unwrap();
    b.step(&params2, &grad, 1e-2).unwrap();
    let x: Vec<f32> = w.as_tensor().to_vec1().unwrap();
    let y: Vec<f32> = w2.as_tensor().to_vec1().unwrap();
    assert_eq!(x, y);
}

/// Oracle: the composed tensor-op update (pinned to PyTorch by the test above). The one-pass
/// CPU update must give the same parameters and moments to the bit, over several steps,
/// on a parameter larger than one parallel chunk (40,000 values) with and without decay.
#[test]
fn fused_cpu_update_equals_the_composed_ops_to_the_bit() {
    let dev = Device::Cpu;
    let vals = |n: usize, salt: f64| -> Vec<f32> {
        (0..n)
            .map(|i| ((i as f64 * 0.37 + salt).sin() * 0.8) as f32)
            .collect()
    };
    let make = || {
        vec![
            (
                "model.layers.0.mlp.gate_proj.weight".to_string(),
                Var::from_tensor(&Tensor::from_vec(vals(40_000, 0.1), (200, 200), &dev).unwrap())
                    .unwrap(),
            ),
            (
                "model.norm.weight".to_string(),
                Var::from_tensor(&Tensor::from_vec(vals(200, 0.7), 200, &dev).unwrap()).unwrap(),
            ),
        ]
    };
    let (pa, pb) = (make(), make());
    let cfg = OptimConfig {
        weight_decay: 0.1,
        ..OptimConfig::default()
    };
    let mut fused = AdamW::new(&pa, &cfg).unwrap();
    let mut composed = AdamW::new(&pb, &cfg).unwrap().composed();
    for k in 0..5 {
        let grads = vec![
            Tensor::from_vec(vals(40_000, 2.0 + k as f64), (200, 200), &dev).unwrap(),
            Tensor::from_vec(vals(200, 5.0 + k as f64), 200, &dev).unwrap(),
        ];
        let lr = 3e-3 * (k + 1) as f64;
        fused.step(&pa, &grads, lr).unwrap();
        composed.step(&pb, &grads, lr).unwrap();
    }
    let bits = |t: &Tensor| -> Vec<u32> {
        t.flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap()
            .iter()
            .map(|x| x.to_bits())
            .collect()
    };
    for ((name, a), (_, b)) in pa.iter().zip(&pb) {
        assert_eq!(bits(a.as_tensor()), bits(b.as_tensor()), "{name}");
    }
    let (sa, sb) = (fused.state(&pa), composed.state(&pb));
    for (k, t) in &sa {
        assert_eq!(bits(t), bits(&sb[k]), "{k}");
    }
    // And the update moved the parameters (the test would pass on a no-op otherwise).
    assert_ne!(
        bits(pa[0].1.as_tensor()),
        bits(&Tensor::from_vec(vals(40_000, 0.1), (200, 200), &dev).unwrap())
    );
}
