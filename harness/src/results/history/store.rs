//! The history on disk: `<root>/<machine_id>/<branch>/index.json` beside
//! `runs/<time>-<run_id>/` (each a copy of a run folder). Adds copy into a
//! hidden folder first and then, under the folder's lock file, rename it in
//! and rewrite the index atomically — two CI jobs adding at once both land,
//! and a crash leaves the index as it was.

use std::fs::{self, OpenOptions};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use super::{HistoryEntry, HistoryIndex};
use crate::error::{HarnessError, Result};
use crate::results::io::{load_run, parse_versioned, path_component, write_json_atomic};
use crate::results::{RunFile, SCHEMA_VERSION, now_rfc3339};

pub const INDEX_FILE: &str = "index.json";
const LOCK_FILE: &str = ".lock";
/// A lock older than this is left from a killed process: taken over.
const STALE_LOCK: Duration = Duration::from_secs(600);
const LOCK_WAIT: Duration = Duration::from_secs(120);

/// The folder of one machine × branch.
pub fn branch_dir(root: &Path, machine_id: &str, branch: &str) -> PathBuf {
    root.join(path_component(machine_id))
        .join(path_component(branch))
}

/// Holds `<dir>/.lock` (created exclusively) until dropped.
struct Lock(PathBuf);

impl Lock {
    fn take(dir: &Path) -> Result<Lock> {
        let path = dir.join(LOCK_FILE);
        let start = SystemTime::now();
        loop {
            match OpenOptions::new().write(true).create_new(true).open(&path) {
                Ok(_) => return Ok(Lock(path)),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    let age = fs::metadata(&path)
                        .and_then(|m| m.modified())
                        .ok()
                        .and_then(|t| t.elapsed().ok());
                    if age.is_some_and(|a| a > STALE_LOCK) {
                        let _ = fs::remove_file(&path);
                        continue;
                    }
                    if start.elapsed().unwrap_or_default() > LOCK_WAIT {
                        return Err(HarnessError::usage(format!(
                            "{} is held by another `history` command for over {} s; if none runs, delete the lock file",
                            path.display(),
                            LOCK_WAIT.as_secs()
                        )));
                    }
                    std::thread::sleep(Duration::from_millis(20));
                }
                Err(e) => return Err(HarnessError::io("create", &path)(e)),
            }
        }
    }
}

impl Drop for Lock {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.0);
    }
}

/// Reads a branch folder's index; a missing one is an empty history.
pub fn read_index(dir: &Path) -> Result<HistoryIndex> {
    let path = dir.join(INDEX_FILE);
    match fs::read_to_string(&path) {
        Ok(text) => parse_versioned(&path, "", &text),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(HistoryIndex {
            schema_version: SCHEMA_VERSION,
            entries: vec![],
        }),
        Err(e) => Err(HarnessError::io("read", &path)(e)),
    }
}

fn copy_tree(from: &Path, to: &Path) -> Result<()> {
    fs::create_dir_all(to).map_err(HarnessError::io("create", to))?;
    for e in fs::read_dir(from).map_err(HarnessError::io("read", from))? {
        let e = e.map_err(HarnessError::io("read", from))?;
        let (src, dst) = (e.path(), to.join(e.file_name()));
        let ty = e.file_type().map_err(HarnessError::io("read", &src))?;
        if ty.is_dir() {
            copy_tree(&src, &dst)?;
        } else if ty.is_file() {
            fs::copy(&src, &dst).map_err(HarnessError::io("copy", &src))?;
        }
    }
    Ok(())
}

/// Files a finished run folder: checked first (a damaged run is bad input
/// and nothing is written), copied, then indexed under the lock.
pub fn add(root: &Path, run_dir: &Path, commit: &str, branch: &str) -> Result<HistoryEntry> {
    if !run_dir.is_dir() {
        return Err(HarnessError::bad_input(
            run_dir,
            "whole folder",
            "not a folder",
            "give a finished run folder (the one `capbench run --out` wrote)",
        ));
    }
    let run: RunFile = load_run(run_dir)?;
    run.check_one_result_per_case(run_dir)?;
    let dir = branch_dir(root, &run.env.machine_id, branch);
    fs::create_dir_all(&dir).map_err(HarnessError::io("create", &dir))?;
    // Run ids start with the start time, so folders sort by time.
    let name = path_component(&run.run_id);
    let rel = Path::new(&path_component(&run.env.machine_id))
        .join(path_component(branch))
        .join("runs")
        .join(&name);
    let incoming = dir.join(format!(".incoming-{}-{name}", std::process::id()));
    copy_tree(run_dir, &incoming)?;
    let entry = HistoryEntry {
        machine_id: run.env.machine_id.clone(),
        branch: branch.to_string(),
        commit: commit.to_string(),
        time: run.started_at.clone(),
        run_id: run.run_id.clone(),
        path: rel.to_string_lossy().into_owned(),
        added_at: now_rfc3339(),
    };
    let placed = (|| {
        let _lock = Lock::take(&dir)?;
        let mut index = read_index(&dir)?;
        if index.entries.iter().any(|e| e.run_id == run.run_id) {
            return Err(HarnessError::usage(format!(
                "run {} is in the history already ({})",
                run.run_id,
                dir.join(INDEX_FILE).display()
            )));
        }
        let runs = dir.join("runs");
        fs::create_dir_all(&runs).map_err(HarnessError::io("create", &runs))?;
        let dst = runs.join(&name);
        fs::rename(&incoming, &dst).map_err(HarnessError::io("rename into", &dst))?;
        index.entries.push(entry.clone());
        index.entries.sort_by(|a, b| a.time.cmp(&b.time));
        write_json_atomic(&dir.join(INDEX_FILE), &index)
    })();
    if placed.is_err() {
        let _ = fs::remove_dir_all(&incoming);
    }
    placed.map(|_| entry)
}

/// Every branch folder under `root` (machine, branch, folder), filtered.
pub fn branches(
    root: &Path,
    machine: Option<&str>,
    branch: Option<&str>,
) -> Result<Vec<(String, PathBuf)>> {
    let mut out = vec![];
    if !root.is_dir() {
        return Ok(out);
    }
    let list = |d: &Path| -> Result<Vec<PathBuf>> {
        let mut v: Vec<PathBuf> = fs::read_dir(d)
            .map_err(HarnessError::io("read", d))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.is_dir())
            .collect();
        v.sort();
        Ok(v)
    };
    for m in list(root)? {
        for b in list(&m)? {
            if !b.join(INDEX_FILE).is_file() {
                continue;
            }
            let index = read_index(&b)?;
            let Some(first) = index.entries.first() else {
                continue;
            };
            if machine.is_some_and(|x| x != first.machine_id)
                || branch.is_some_and(|x| x != first.branch)
            {
                continue;
            }
            out.push((first.machine_id.clone(), b));
        }
    }
    Ok(out)
}

/// The entries of the selected branch folders with their runs, oldest
/// first per folder. A run that cannot be read is bad input naming it.
pub fn load(
    root: &Path,
    machine: Option<&str>,
    branch: Option<&str>,
) -> Result<Vec<Vec<(HistoryEntry, RunFile)>>> {
    let mut out = vec![];
    for (_, dir) in branches(root, machine, branch)? {
        let index = read_index(&dir)?;
        let mut runs = vec![];
        for e in index.entries {
            let path = root.join(&e.path);
            let run = load_run(&path).map_err(|err| {
                HarnessError::bad_input(
                    &path,
                    "history entry",
                    format!(
                        "run {} of commit {} cannot be read: {err}",
                        e.run_id, e.commit
                    ),
                    format!(
                        "restore the folder, or drop its entry from {}",
                        dir.join(INDEX_FILE).display()
                    ),
                )
            })?;
            runs.push((e, run));
        }
        out.push(runs);
    }
    Ok(out)
}

/// Drops, per branch folder, the entries beyond the newest `keep` and those
/// started before `cutoff` (RFC 3339); their run folders are deleted.
pub fn prune(
    root: &Path,
    machine: Option<&str>,
    branch: Option<&str>,
    keep: Option<usize>,
    cutoff: Option<&str>,
) -> Result<Vec<HistoryEntry>> {
    let mut dropped = vec![];
    for (_, dir) in branches(root, machine, branch)? {
        let _lock = Lock::take(&dir)?;
        let mut index = read_index(&dir)?;
        let n = index.entries.len();
        let too_many = keep.map(|k| n.saturating_sub(k)).unwrap_or(0);
        let (gone, kept): (Vec<_>, Vec<_>) = index
            .entries
            .into_iter()
            .enumerate()
            .partition(|(i, e)| *i < too_many || cutoff.is_some_and(|c| e.time.as_str() < c));
        index.entries = kept.into_iter().map(|(_, e)| e).collect();
        write_json_atomic(&dir.join(INDEX_FILE), &index)?;
        for (_, e) in gone {
            let p = root.join(&e.path);
            if p.starts_with(&dir) && p.is_dir() {
                fs::remove_dir_all(&p).map_err(HarnessError::io("remove", &p))?;
            }
            dropped.push(e);
        }
    }
    Ok(dropped)
}
