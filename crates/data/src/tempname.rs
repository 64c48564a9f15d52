//! Temporary names that carry their owner (`<base>.tmp-<pid>-<host>`), and the removal at
//! start of those whose owner died: a killed `data prepare` or `train` leaves its
//! half-written directory behind, and relaunches after a disk filled up must not pile them up.
//!
//! A name is stale when its pid is gone on this host. Names from another host are kept
//! (a shared file system may hold a live process's work), and so are names whose liveness
//! cannot be told (no `/proc`). Names of older synthscale versions, `<base>.tmp-<pid>`
//! without a host, are taken to be from this host.

use std::path::{Path, PathBuf};

use crate::error::{DataError, Result};

/// This machine's name as the kernel reports it, reduced to `[A-Za-z0-9._-]`.
pub fn hostname() -> String {
    let raw = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .ok()
        .filter(|s| !s.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "localhost".into());
    raw.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// `<base>.<what>-<pid>-<host>` for this process, e.g. `checkpoint.tmp-4242-node7`.
pub fn owned_name(base: &str, what: &str) -> String {
    format!("{base}.{what}-{}-{}", std::process::id(), hostname())
}

/// Whether a process with this pid exists on this host; `None` when that cannot be told.
fn pid_alive(pid: u32) -> Option<bool> {
    if !Path::new("/proc/self").exists() {
        return None;
    }
    Some(Path::new(&format!("/proc/{pid}")).exists())
}

/// The owner of `name` if it is `<base>.<what>-<pid>[-<host>]` for one of `whats`.
fn owner_of<'a>(name: &'a str, base: &str, whats: &[&str]) -> Option<(u32, Option<&'a str>)> {
    let rest = name.strip_prefix(base)?.strip_prefix('.')?;
    let rest = whats
        .iter()
        .find_map(|w| rest.strip_prefix(w).and_then(|r| r.strip_prefix('-')))?;
    let (pid, host) = match rest.split_once('-') {
        Some((p, h)) => (p, Some(h)),
        None => (rest, None),
    };
    if pid.is_empty() || !pid.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some((pid.parse().ok()?, host))
}

/// Removes the entries of `dir` named `<base>.<what>-<pid>[-<host>]` (for each of `whats`)
/// whose process is gone on this host; returns what it removed. A missing `dir` holds
/// nothing stale.
pub fn remove_stale(dir: &Path, base: &str, whats: &[&str]) -> Result<Vec<PathBuf>> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(DataError::read(dir, e)),
    };
    let me = std::process::id();
    let host = hostname();
    let mut removed = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| DataError::read(dir, e))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        let Some((pid, owner_host)) = owner_of(name, base, whats) else {
            continue;
        };
        let here = owner_host.is_none_or(|h| h == host);
        if !here || pid == me || pid_alive(pid) != Some(false) {
            continue;
        }
        let path = entry.path();
        let is_dir = entry.file_type().is_ok_and(|t| t.is_dir());
        let r = if is_dir {
            std::fs::remove_dir_all(&path)
        } else {
            std::fs::remove_file(&path)
        };
        match r {
            Ok(()) => removed.push(path),
            // Another process cleaning the same directory got there first.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(DataError::write(&path, e)),
        }
    }
    removed.sort();
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_with_and_without_a_host() {
        let w = &["tmp", "old"];
        assert_eq!(
            owner_of("checkpoint.tmp-42-node-7.lab", "checkpoint", w),
            Some((42, Some("node-7.lab")))
        );
        assert_eq!(
            owner_of("checkpoint.tmp-42", "checkpoint", w),
            Some((42, None))
        );
        assert_eq!(owner_of(".data.old-9-h", ".data", w), Some((9, Some("h"))));
        assert_eq!(owner_of("checkpoint.tmp-x42", "checkpoint", w), None);
        assert_eq!(owner_of("checkpoint.prev", "checkpoint", w), None);
        assert_eq!(owner_of("checkpointx.tmp-42", "checkpoint", w), None);
        assert_eq!(owner_of(".data2.tmp-42", ".data", w), None);
    }

    #[test]
    fn dead_owners_on_this_host_are_removed_and_the_rest_kept() {
        // Oracle: pid_max is at most 2^22 on Linux, so 2^22 + 7 names no process; our own
        // pid is alive.
        let dir = tempfile::tempdir().unwrap();
        let host = hostname();
        let dead = 4_194_304 + 7;
        let me = std::process::id();
        let names = [
            format!("checkpoint.tmp-{dead}-{host}"),
            format!("checkpoint.tmp-{dead}"),
            format!("checkpoint.tmp-{dead}-some-other-host"),
            format!("checkpoint.tmp-{me}-{host}"),
            "checkpoint".to_string(),
            format!("other.tmp-{dead}"),
        ];
        for n in &names {
            std::fs::create_dir(dir.path().join(n)).unwrap();
            std::fs::write(dir.path().join(n).join("f"), b"x").unwrap();
        }
        let removed = remove_stale(dir.path(), "checkpoint", &["tmp"]).unwrap();
        if pid_alive(1).is_none() {
            assert!(removed.is_empty(), "without /proc nothing is removed");
            return;
        }
        let mut want = vec![dir.path().join(&names[0]), dir.path().join(&names[1])];
        want.sort();
        assert_eq!(removed, want);
        for n in &names[2..] {
            assert!(dir.path().join(n).exists(), "{n} must be kept");
        }
        assert!(
            remove_stale(&dir.path().join("nope"), "checkpoint", &["tmp"])
                .unwrap()
                .is_empty()
        );
    }
}
