//! How the ranks of one launch find each other: a token that tells this launch from any
//! other, and the file in the run directory through which rank 0 shares its bytes.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::World;
use crate::error::{Result, TrainError};

/// What makes this launch of the ranks different from any other, from the launcher's
/// environment: `SYNTHSCALE_LAUNCH_ID` (set by `synthscale train --nproc`), a Slurm job
/// step (`SLURM_JOB_ID`.`SLURM_STEP_ID`), torchrun's `TORCHELASTIC_RUN_ID`, PMIx's
/// namespace (OpenMPI 5), OpenMPI 4's job id, or `MASTER_ADDR`:`MASTER_PORT`. Every rank of
/// one launch sees the same token, and a relaunch a new one, so a rendezvous file left by
/// a killed launch is never read by the next.
pub fn launch_token(get: impl Fn(&str) -> Option<String>) -> Option<String> {
    let clean = |s: String| -> String {
        s.chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                    c
                } else {
                    '_'
                }
            })
            .collect()
    };
    if let Some(t) = get("SYNTHSCALE_LAUNCH_ID") {
        return Some(clean(t));
    }
    if let (Some(job), Some(step)) = (get("SLURM_JOB_ID"), get("SLURM_STEP_ID")) {
        return Some(clean(format!("slurm-{job}.{step}")));
    }
    for var in [
        "TORCHELASTIC_RUN_ID",
        "PMIX_NAMESPACE",
        "OMPI_MCA_ess_base_jobid",
    ] {
        if let Some(t) = get(var) {
            return Some(clean(t));
        }
    }
    match (get("MASTER_ADDR"), get("MASTER_PORT")) {
        (Some(a), Some(p)) => Some(clean(format!("{a}-{p}"))),
        _ => None,
    }
}

/// The file through which the ranks of launch `token` share rank 0's bytes.
pub fn rendezvous_file(dir: &Path, token: &str) -> PathBuf {
    dir.join(format!(".rendezvous.{token}"))
}

/// How long a rank waits for rank 0's rendezvous file (ranks of one `srun` step start
/// within seconds; a node's slow file system may take longer).
pub const RENDEZVOUS_TIMEOUT: Duration = Duration::from_secs(300);

/// Shares `make()`'s bytes (NCCL's unique id) from rank 0 with every rank of this launch
/// through a file in `dir`, which every rank sees (the run directory: the ranks of a run
/// read its checkpoints, so it is on storage they share). Rank 0 writes the file whole
/// (a temporary, then a rename); the others wait for it up to `timeout`. The caller removes
/// it once every rank has joined ([`std::fs::remove_file`] on [`rendezvous_file`]).
pub fn rendezvous<const N: usize>(
    world: World,
    dir: &Path,
    token: &str,
    timeout: Duration,
    make: impl FnOnce() -> Result<[u8; N]>,
) -> Result<[u8; N]> {
    let file = rendezvous_file(dir, token);
    let io = |what: &str, e: std::io::Error| TrainError::World {
        message: format!("rendezvous: {what} {}: {e}", file.display()),
    };
    if world.is_root() {
        let bytes = make()?;
        std::fs::create_dir_all(dir).map_err(|e| io("creating the directory of", e))?;
        let tmp = file.with_extension(format!("tmp{}", std::process::id()));
        std::fs::write(&tmp, bytes).map_err(|e| io("writing", e))?;
        std::fs::rename(&tmp, &file).map_err(|e| io("renaming into", e))?;
        return Ok(bytes);
    }
    let start = Instant::now();
    loop {
        match std::fs::read(&file) {
            Ok(b) if b.len() == N => {
                let mut out = [0u8; N];
                out.copy_from_slice(&b);
                return Ok(out);
            }
            Ok(b) => {
                return Err(TrainError::World {
                    message: format!(
                        "rendezvous: {} holds {} bytes, not {N}",
                        file.display(),
                        b.len()
                    ),
                })
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io("reading", e)),
        }
        if start.elapsed() > timeout {
            return Err(TrainError::World {
                message: format!(
                    "rank {} of {} waited {} s for rank 0's rendezvous file {}: is rank 0 \
                     running, and does this node see the run directory rank 0 writes?",
                    world.rank,
                    world.size,
                    timeout.as_secs(),
                    file.display()
                ),
            });
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}
