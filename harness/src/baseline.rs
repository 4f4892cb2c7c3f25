//! Baselines for the regression gate: run files stored under
//! `results/baselines/<machine_id>/<name>/` (raw samples included, so they can
//! be re-analysed), with the A/A calibration beside them.

use std::path::{Path, PathBuf};

use crate::analysis::calibration::{CALIBRATION_FILE, Calibration};
use crate::error::{HarnessError, Result};
use crate::results::io::{RUN_FILE, load_run, parse_versioned, path_component, write_json_atomic};
use crate::results::{RunFile, env::Env};

pub const DEFAULT_ROOT: &str = "results/baselines";

fn valid_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        && !name.starts_with('.');
    if ok {
        Ok(())
    } else {
        Err(HarnessError::usage(format!(
            "baseline name '{name}' may use letters, digits, '-', '_' and '.' only"
        )))
    }
}

/// The baseline's folder; the machine id (read from a run file) is made a
/// plain name first, so no id can lead outside `root`.
pub fn dir_of(root: &Path, machine_id: &str, name: &str) -> PathBuf {
    root.join(path_component(machine_id)).join(name)
}

/// Stores the run at `run_path` as baseline `name` for the machine that made
/// it, replacing an older one of that name (its calibration is kept).
pub fn save(root: &Path, name: &str, run_path: &Path) -> Result<(PathBuf, RunFile)> {
    valid_name(name)?;
    let run = load_run(run_path)?;
    if path_component(&run.env.machine_id) != run.env.machine_id {
        return Err(HarnessError::bad_input(
            run_path,
            "env.machine_id",
            format!(
                "{:?} is not a machine id (capbench writes 16 hex digits)",
                run.env.machine_id
            ),
            "save a run folder written by `capbench run` on the machine the baseline is for",
        ));
    }
    let dir = dir_of(root, &run.env.machine_id, name);
    std::fs::create_dir_all(&dir).map_err(HarnessError::io("create", &dir))?;
    write_json_atomic(&dir.join(RUN_FILE), &run)?;
    Ok((dir, run))
}

pub fn save_calibration(dir: &Path, cal: &Calibration) -> Result<()> {
    write_json_atomic(&dir.join(CALIBRATION_FILE), cal)
}

/// Reads `calibration.json` beside a run, if there is one.
pub fn read_calibration(dir: &Path) -> Result<Option<Calibration>> {
    let path = dir.join(CALIBRATION_FILE);
    if !path.exists() {
        return Ok(None);
    }
    let text = std::fs::read_to_string(&path).map_err(HarnessError::io("read", &path))?;
    parse_versioned(&path, "", &text).map(Some)
}

/// Loads baseline `name` for this machine. A baseline saved only on other
/// machines is an error that says so: it is never compared silently.
pub fn load(root: &Path, name: &str) -> Result<(PathBuf, RunFile, Option<Calibration>)> {
    valid_name(name)?;
    let here = Env::machine_id_now();
    let dir = dir_of(root, &here, name);
    if dir.join(RUN_FILE).exists() {
        let run = load_run(&dir)?;
        let cal = read_calibration(&dir)?;
        return Ok((dir, run, cal));
    }
    let elsewhere: Vec<String> = list(root)
        .into_iter()
        .filter(|(_, n)| n == name)
        .map(|(m, _)| m)
        .collect();
    Err(if elsewhere.is_empty() {
        HarnessError::usage(format!(
            "no baseline '{name}' under {}: save one with `capbench baseline save {name} RUN_DIR`",
            root.display()
        ))
    } else {
        HarnessError::usage(format!(
            "baseline '{name}' exists only for machine {} — this machine is {here}; a mismatch is not compared. Save a baseline here, or compare explicitly: capbench compare {} NEW --allow-machine-mismatch",
            elsewhere.join(", "),
            dir_of(root, &elsewhere[0], name).display()
        ))
    })
}

/// (machine_id, name) of every stored baseline.
pub fn list(root: &Path) -> Vec<(String, String)> {
    let mut out = vec![];
    let Ok(machines) = std::fs::read_dir(root) else {
        return out;
    };
    for m in machines.flatten().filter(|e| e.path().is_dir()) {
        let Ok(names) = std::fs::read_dir(m.path()) else {
            continue;
        };
        for n in names.flatten().filter(|e| e.path().join(RUN_FILE).exists()) {
            out.push((
                m.file_name().to_string_lossy().into_owned(),
                n.file_name().to_string_lossy().into_owned(),
            ));
        }
    }
    out.sort();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked() {
        assert!(valid_name("main-2026.11").is_ok());
        for bad in ["", "../x", "a/b", ".hidden", "sp ace"] {
            assert!(valid_name(bad).is_err(), "{bad}");
        }
    }
}
