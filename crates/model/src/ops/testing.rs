//! Shared inputs and comparisons for the ops' tests.

use candle_core::{Device, Tensor};

pub fn rand(shape: &[usize], seed: u32) -> Tensor {
    let n: usize = shape.iter().product();
    let v: Vec<f32> = (0..n as u32)
        .map(|i| {
            (((i.wrapping_mul(2654435761) ^ seed.wrapping_mul(40503)) % 2000) as f32 / 1000.0 - 1.0)
                * 2.0
        })
        .collect();
    Tensor::from_vec(v, shape, &Device::Cpu).unwrap()
}

pub fn max_diff(a: &Tensor, b: &Tensor) -> f32 {
    (a - b)
        .unwrap()
        .abs()
        .unwrap()
        .flatten_all()
        .unwrap()
        .max(0)
        .unwrap()
        .to_scalar()
        .unwrap()
}
