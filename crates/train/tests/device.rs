//! Device selection: the compute dtype per device, the GPU peak table MFU divides by
//! (oracle: NVIDIA's datasheets, dense BF16 tensor-core figures), and the clear error a
//! CPU-only build gives for `device = "cuda"`.

use candle_core::DType;
use synthscale_train::config::DeviceSpec;
use synthscale_train::trainer::{compute_dtype, device_peak, gpu_peak_flops, open_device};

#[test]
fn cpu_computes_in_f32_and_cuda_in_bf16() {
    assert_eq!(compute_dtype(DeviceSpec::Cpu), DType::F32);
    assert_eq!(compute_dtype(DeviceSpec::Cuda), DType::BF16);
}

#[test]
fn gpus_are_looked_up_by_the_name_the_driver_reports() {
    for (name, peak) in [
        ("NVIDIA H100 80GB HBM3", Some(989e12)),
        ("NVIDIA H100 PCIe", Some(756e12)),
        ("NVIDIA H100 NVL", Some(835e12)),
        ("NVIDIA H200", Some(989e12)),
        ("NVIDIA GH200 480GB", Some(989e12)),
        ("NVIDIA H20", Some(148e12)),
        ("NVIDIA A100-SXM4-80GB", Some(312e12)),
        ("NVIDIA L40S", Some(362e12)),
        ("NVIDIA L40", Some(181e12)),
        ("NVIDIA L4", Some(121e12)),
        ("NVIDIA GeForce RTX 4090", None),
    ] {
        assert_eq!(gpu_peak_flops(name), peak, "{name}");
    }
}

#[test]
fn the_cpu_opens_and_names_itself() {
    let dev = open_device(DeviceSpec::Cpu).unwrap();
    assert!(dev.is_cpu());
    let (name, peak) = device_peak(&dev);
    assert_eq!(name, "cpu");
    assert!(peak > 0.0);
}

#[cfg(not(feature = "cuda"))]
#[test]
fn cuda_without_the_feature_is_a_clear_error() {
    let err = open_device(DeviceSpec::Cuda).unwrap_err();
    assert!(err.contains("--features cuda"), "{err}");
}
