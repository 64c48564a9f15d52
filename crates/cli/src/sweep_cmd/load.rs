//! The manifest's sweep, expanded against the prepared data: the arguments every `sweep`
//! subcommand shares and the checks that run before any of them acts.

use std::path::PathBuf;

use clap::Args;
use synthscale_sweep::data_check::check_data_matches;
use synthscale_sweep::Sweep;

use crate::manifest::LoadedManifest;
use crate::util::BadInput;

#[derive(Args, Debug)]
pub struct Common {
    /// The experiment manifest (TOML with [data], [sweep] and optionally [slurm]).
    pub manifest: PathBuf,
    /// The sweep's folder [default: sweep.out_dir, else results/<manifest name>].
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// The prepared data directory [default: data.out_dir, else results/<manifest name>/data].
    #[arg(long)]
    pub data: Option<PathBuf>,
}

/// Loads the manifest and expands its grid against the prepared data.
pub fn load(c: &Common) -> anyhow::Result<Sweep> {
    plan_loaded(&LoadedManifest::load(&c.manifest)?, c)
}

/// The manifest's `[sweep]` section, or the error that it has none.
pub(super) fn sweep_section(m: &LoadedManifest) -> anyhow::Result<&synthscale_sweep::SweepConfig> {
    m.manifest.sweep.as_ref().ok_or_else(|| {
        BadInput(format!(
            "{}: no [sweep] section (sizes, budgets, mixtures, seeds)",
            m.path.display()
        ))
        .into()
    })
}

/// [`load`] of a manifest already loaded and checked (`synthscale run` loads it once).
pub fn plan_loaded(m: &LoadedManifest, c: &Common) -> anyhow::Result<Sweep> {
    let cfg = sweep_section(m)?;
    let data = c.data.clone().unwrap_or_else(|| m.data_dir());
    let sweep = Sweep::plan(
        &c.manifest,
        &data,
        cfg,
        m.manifest.slurm.as_ref(),
        c.out.as_deref(),
    )?;
    // The data trained on is the data the manifest describes, --data or not.
    check_data_matches(&c.manifest, &m.manifest.data, &sweep.data_dir)?;
    Ok(sweep)
}
