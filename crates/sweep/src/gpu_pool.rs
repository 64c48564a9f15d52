//! Packing runs onto GPUs: how many runs share one GPU ([`runs_per_gpu`]), and the pool
//! the local executor takes GPUs from ([`GpuPool`]).
//!
//! A small run uses a few percent of a large GPU; a ladder of 10M–30M models trained one
//! per GPU leaves most of a node idle. When the memory model says k runs fit one GPU's
//! memory together, k of them train on it at once as separate processes (under CUDA MPS
//! when its daemon runs, which lets their kernels overlap; time-sliced otherwise). A
//! data-parallel run takes whole GPUs, one per rank.

use std::sync::Mutex;

use synthscale_train::config::DeviceSpec;

use crate::plan::{PlannedRun, Sweep};

/// GPU memory a CUDA process takes beyond what the memory model counts: the CUDA context
/// and cuBLAS's workspace. An allowance, not a measurement (scripts/gpu-check.sh measures a
/// run's memory in use against the model's estimate).
pub const CUDA_PROCESS_OVERHEAD_BYTES: f64 = (1u64 << 30) as f64;

/// How many runs needing `run_bytes` each share one GPU of `gpu_bytes`: as many as fit
/// together with [`CUDA_PROCESS_OVERHEAD_BYTES`] each, at most `max`, at least 1. On the
/// CPU, and for a data-parallel run (whose ranks take a GPU each), 1.
pub fn runs_per_gpu(
    device: DeviceSpec,
    gpu_bytes: f64,
    run_bytes: f64,
    ranks: u32,
    max: u32,
) -> u32 {
    if device != DeviceSpec::Cuda || ranks > 1 {
        return 1;
    }
    let fit = (gpu_bytes / (run_bytes + CUDA_PROCESS_OVERHEAD_BYTES)).floor();
    (fit.min(max as f64) as u32).max(1)
}

impl Sweep {
    /// [`runs_per_gpu`] for one of this sweep's runs.
    pub fn runs_per_gpu(&self, run: &PlannedRun) -> u32 {
        runs_per_gpu(
            self.config.device,
            self.gpu_bytes(),
            run.memory_bytes,
            run.ranks,
            self.config.max_runs_per_gpu,
        )
    }

    /// One GPU's memory as the sweep counts it (`sweep.device_memory_gib`, else an H100's).
    pub fn gpu_bytes(&self) -> f64 {
        synthscale_train::bounds::device_memory(DeviceSpec::Cuda, self.config.device_memory_gib)
    }
}

/// The GPUs of a local launch, each with the runs on it; a run takes its GPUs for as long
/// as it trains.
pub struct GpuPool {
    ids: Vec<String>,
    /// Per GPU: the shares of it in use, out of [`GpuPool::SHARES`].
    used: Mutex<Vec<u32>>,
}

/// What a run holds of the pool: its GPUs' indices and the share of each.
#[derive(Debug, PartialEq, Eq)]
pub struct Lease {
    pub gpus: Vec<usize>,
    share: u32,
}

impl GpuPool {
    /// A GPU is divided into this many shares; a run packed k to a GPU takes SHARES / k
    /// of it (so runs of different sizes pack together by their own k), a data-parallel
    /// rank all of it. k + 1 runs of SHARES / k never fit for any k up to 64.
    pub const SHARES: u32 = 1 << 20;

    pub fn new(ids: Vec<String>) -> GpuPool {
        let n = ids.len();
        GpuPool {
            ids,
            used: Mutex::new(vec![0; n]),
        }
    }

    pub fn len(&self) -> usize {
        self.ids.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// `ranks` GPUs with room for a run packed `per_gpu` to a GPU (the emptiest first), or
    /// None when they are not free now.
    pub fn try_take(&self, ranks: u32, per_gpu: u32) -> Option<Lease> {
        let share = Self::SHARES / per_gpu.max(1);
        let mut used = self.used.lock().expect("gpu pool");
        let mut order: Vec<usize> = (0..used.len()).collect();
        order.sort_by_key(|&g| (used[g], g));
        let gpus: Vec<usize> = order
            .into_iter()
            .filter(|&g| used[g] + share <= Self::SHARES)
            .take(ranks as usize)
            .collect();
        if gpus.len() < ranks as usize {
            return None;
        }
        for &g in &gpus {
            used[g] += share;
        }
        Some(Lease { gpus, share })
    }

    /// Gives a lease's GPUs back.
    pub fn give_back(&self, lease: Lease) {
        let mut used = self.used.lock().expect("gpu pool");
        for g in lease.gpus {
            used[g] -= lease.share;
        }
    }

    /// `CUDA_VISIBLE_DEVICES` for a lease: its GPUs' ids, rank r's GPU r-th.
    pub fn visible(&self, lease: &Lease) -> String {
        lease
            .gpus
            .iter()
            .map(|&g| self.ids[g].as_str())
            .collect::<Vec<_>>()
            .join(",")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GIB: f64 = (1u64 << 30) as f64;

    #[test]
    fn runs_pack_by_the_memory_model_up_to_the_cap() {
        // (device, GiB per run, ranks, cap, runs per GPU) on an 80 GiB GPU.
        let cases = [
            // 7 GiB + 1 GiB overhead → 10 fit, capped at 4.
            (DeviceSpec::Cuda, 7.0, 1, 4, 4),
            (DeviceSpec::Cuda, 7.0, 1, 64, 10),
            // 30 GiB + 1: two fit in 80 GiB, not three.
            (DeviceSpec::Cuda, 30.0, 1, 8, 2),
            // Too big to share, or bigger than the GPU (the plan refuses that): one.
            (DeviceSpec::Cuda, 60.0, 1, 8, 1),
            (DeviceSpec::Cuda, 90.0, 1, 8, 1),
            // Data-parallel runs and the CPU never pack.
            (DeviceSpec::Cuda, 1.0, 2, 8, 1),
            (DeviceSpec::Cpu, 1.0, 1, 8, 1),
        ];
        for (device, run_gib, ranks, cap, want) in cases {
            assert_eq!(
                runs_per_gpu(device, 80.0 * GIB, run_gib * GIB, ranks, cap),
                want,
                "{device:?}, {run_gib} GiB, {ranks} ranks, cap {cap}"
            );
        }
    }

    #[test]
    fn the_pool_packs_small_runs_and_gives_ranks_whole_gpus() {
        let pool = GpuPool::new(vec!["0".into(), "3".into()]);
        // Four runs packed 2 to a GPU fill both GPUs; a fifth waits.
        let a: Vec<Lease> = (0..4).map(|_| pool.try_take(1, 2).unwrap()).collect();
        assert_eq!(
            a.iter().map(|l| l.gpus[0]).collect::<Vec<_>>(),
            vec![0, 1, 0, 1]
        );
        assert!(pool.try_take(1, 2).is_none());
        assert_eq!(pool.visible(&a[1]), "3");
        // A 2-rank run needs both GPUs empty.
        let [l0, l1, l2, l3]: [Lease; 4] = a.try_into().unwrap();
        pool.give_back(l0);
        pool.give_back(l2);
        assert!(pool.try_take(2, 1).is_none());
        pool.give_back(l1);
        pool.give_back(l3);
        let ddp = pool.try_take(2, 1).unwrap();
        assert_eq!(pool.visible(&ddp), "0,3");
        assert!(pool.try_take(1, 4).is_none());
        pool.give_back(ddp);
        // Sizes of different k share GPUs by their shares: beside one run of k=2, two GPUs
        // hold six runs of k=4 (two of them on the big run's GPU), not seven.
        let big = pool.try_take(1, 2).unwrap();
        let small: Vec<Lease> = (0..6).map(|_| pool.try_take(1, 4).unwrap()).collect();
        assert_eq!(small.iter().filter(|l| l.gpus == big.gpus).count(), 2);
        assert!(pool.try_take(1, 4).is_none());
    }
}
