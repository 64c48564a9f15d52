//! The ranks, the micro-batch split, the launch token and the rendezvous, without MPI or
//! NCCL.

use std::collections::HashMap;
use std::time::Duration;

use super::*;

fn world(vars: &[(&str, &str)]) -> std::result::Result<World, String> {
    let m: HashMap<String, String> = vars
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    World::from_vars(|k| m.get(k).cloned())
}

#[test]
fn world_from_each_launcher_and_none() {
    assert_eq!(world(&[]).unwrap(), World::SINGLE);
    let w = world(&[
        ("OMPI_COMM_WORLD_RANK", "1"),
        ("OMPI_COMM_WORLD_SIZE", "4"),
        ("OMPI_COMM_WORLD_LOCAL_RANK", "1"),
        // mpirun inside a Slurm allocation: OpenMPI's own variables win.
        ("SLURM_PROCID", "0"),
        ("SLURM_STEP_NUM_TASKS", "1"),
    ])
    .unwrap();
    assert_eq!((w.rank, w.size, w.local_rank), (1, 4, 1));
    let w = world(&[
        ("SLURM_PROCID", "3"),
        ("SLURM_STEP_NUM_TASKS", "8"),
        ("SLURM_LOCALID", "3"),
    ])
    .unwrap();
    assert_eq!((w.rank, w.size, w.local_rank), (3, 8, 3));
    // A batch script of a 2-task job is not a job step: one process.
    assert_eq!(
        world(&[("SLURM_PROCID", "0"), ("SLURM_NTASKS", "2")]).unwrap(),
        World::SINGLE
    );
    let w = world(&[("RANK", "1"), ("WORLD_SIZE", "2")]).unwrap();
    assert_eq!((w.rank, w.size, w.local_rank), (1, 2, 0));
    let e = world(&[("RANK", "2"), ("WORLD_SIZE", "2")]).unwrap_err();
    assert!(e.contains("RANK=2 is not below WORLD_SIZE=2"), "{e}");
    let e = world(&[("WORLD_SIZE", "2")]).unwrap_err();
    assert!(e.contains("WORLD_SIZE is set but RANK is not"), "{e}");
    let e = world(&[("RANK", "x"), ("WORLD_SIZE", "2")]).unwrap_err();
    assert!(e.contains("RANK=\"x\""), "{e}");
}

#[test]
fn each_rank_takes_its_own_gpu_or_the_one_it_sees() {
    use crate::device::gpu_ordinal;
    assert_eq!(gpu_ordinal(3, 8), Ok(3));
    assert_eq!(gpu_ordinal(3, 1), Ok(0)); // Slurm: --gpus-per-task=1
    assert_eq!(gpu_ordinal(0, 4), Ok(0));
    let e = gpu_ordinal(2, 2).unwrap_err();
    assert!(e.contains("local rank 2 but only 2 CUDA devices"), "{e}");
    assert!(gpu_ordinal(0, 0).is_err());
}

#[test]
fn micro_batches_split_round_robin_and_refuse_an_uneven_split() {
    let w = |rank, size| World {
        rank,
        size,
        local_rank: rank,
    };
    assert_eq!(my_micro_batches(w(0, 1), 3).unwrap(), vec![0, 1, 2]);
    assert_eq!(my_micro_batches(w(0, 2), 4).unwrap(), vec![0, 2]);
    assert_eq!(my_micro_batches(w(1, 2), 4).unwrap(), vec![1, 3]);
    let e = my_micro_batches(w(1, 2), 3).unwrap_err().to_string();
    assert!(
        e.contains("3 micro-batches") && e.contains("2 ranks"),
        "{e}"
    );
}

#[test]
fn a_launch_token_comes_from_the_launcher_and_differs_between_launches() {
    let tok = |vars: &[(&str, &str)]| {
        let m: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        launch_token(|k| m.get(k).cloned())
    };
    assert_eq!(tok(&[]), None);
    assert_eq!(
        tok(&[("SLURM_JOB_ID", "77"), ("SLURM_STEP_ID", "3")]).as_deref(),
        Some("slurm-77.3")
    );
    // Our own launcher's id wins over the Slurm job it runs in.
    assert_eq!(
        tok(&[
            ("SYNTHSCALE_LAUNCH_ID", "n-1"),
            ("SLURM_JOB_ID", "77"),
            ("SLURM_STEP_ID", "3")
        ])
        .as_deref(),
        Some("n-1")
    );
    // Nothing in a token can leave the directory.
    assert_eq!(
        tok(&[("MASTER_ADDR", "10.0.0.1"), ("MASTER_PORT", "29500")]).as_deref(),
        Some("10.0.0.1-29500")
    );
    assert_eq!(
        tok(&[("PMIX_NAMESPACE", "../x/y")]).as_deref(),
        Some(".._x_y")
    );
}

/// Four ranks as threads meet through one file: all get rank 0's bytes, whichever
/// starts first; a stale file of another launch is never read; a rank whose rank 0
/// never comes gives up with a message naming the file.
#[test]
fn ranks_meet_through_the_rendezvous_file() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(rendezvous_file(dir.path(), "old"), [9u8; 16]).unwrap();
    let got: Vec<[u8; 16]> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..4)
            .rev()
            .map(|rank| {
                let dir = dir.path();
                s.spawn(move || {
                    let w = World {
                        rank,
                        size: 4,
                        local_rank: rank,
                    };
                    if rank == 0 {
                        std::thread::sleep(Duration::from_millis(200));
                    }
                    rendezvous::<16>(w, dir, "new", Duration::from_secs(20), || {
                        Ok(core::array::from_fn(|i| i as u8))
                    })
                    .unwrap()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let want: [u8; 16] = core::array::from_fn(|i| i as u8);
    assert!(got.iter().all(|g| *g == want), "{got:?}");
    let w1 = World {
        rank: 1,
        size: 2,
        local_rank: 1,
    };
    let e = rendezvous::<16>(
        w1,
        dir.path(),
        "none",
        Duration::from_millis(100),
        || unreachable!(),
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.contains(".rendezvous.none") && e.contains("rank 1 of 2"),
        "{e}"
    );
}

/// A second rank simulated in-process: its gradients, flattened in parameter order.
struct TwoRanks(Vec<f32>);

impl Collective for TwoRanks {
    fn world(&self) -> World {
        World {
            rank: 0,
            size: 2,
            local_rank: 0,
        }
    }
    fn all_reduce_sum(&self, buf: &mut [f32]) -> Result<()> {
        assert_eq!(buf.len(), self.0.len());
        buf.iter_mut().zip(&self.0).for_each(|(a, b)| *a += b);
        Ok(())
    }
    fn all_reduce_sum_f64(&self, _: &mut [f64]) -> Result<()> {
        unreachable!()
    }
    fn barrier(&self) -> Result<()> {
        Ok(())
    }
    fn reduce_sum(&self, _: &mut [f32], _: usize) -> Result<()> {
        unreachable!()
    }
    fn broadcast(&self, _: &mut [f32], _: usize) -> Result<()> {
        unreachable!()
    }
}

/// The sum of two ranks' gradients, tensor by tensor, against the elementwise sum
/// (the oracle), through the one flattened buffer: shapes and order survive.
#[test]
fn gradients_sum_over_ranks_tensor_by_tensor() -> Result<()> {
    let dev = candle_core::Device::Cpu;
    let mine = vec![
        Tensor::new(&[[1f32, 2.], [3., 4.]], &dev)?,
        Tensor::new(&[5f32, 6., 7.], &dev)?,
    ];
    let theirs = [
        Tensor::new(&[[10f32, 20.], [30., 40.]], &dev)?,
        Tensor::new(&[50f32, 60., 70.], &dev)?,
    ];
    let flat: Vec<f32> = theirs
        .iter()
        .flat_map(|t| t.flatten_all().unwrap().to_vec1::<f32>().unwrap())
        .collect();
    let mut grads = mine.clone();
    all_reduce_grads(&TwoRanks(flat), &mut grads)?;
    for ((g, a), b) in grads.iter().zip(&mine).zip(&theirs) {
        assert_eq!(g.dims(), a.dims());
        let want = (a + b)?.flatten_all()?.to_vec1::<f32>()?;
        assert_eq!(g.flatten_all()?.to_vec1::<f32>()?, want);
    }
    Ok(())
}
