//! Merged folders: runs from several machines side by side (`capbench
//! merge`), each run kept byte for byte under `runs/<machine_id>/<run_id>/`,
//! indexed by `merged.json`. `load_runs` reads a run folder or a merged one.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::io::{RUN_FILE, load_run, parse_versioned, write_json_atomic};
use super::{RunFile, SCHEMA_VERSION, now_rfc3339};
use crate::error::{HarnessError, Result};

pub const MERGED_FILE: &str = "merged.json";
pub const RUNS_DIR: &str = "runs";

/// A run and where it was read from (a folder, or `merged/runs/…`).
#[derive(Debug, Clone)]
pub struct SourcedRun {
    pub source: String,
    pub run: RunFile,
}

/// One run of a merged folder.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MergedRun {
    /// Folder of its run.json, relative to the merged folder.
    pub path: String,
    /// Where it was merged from.
    pub merged_from: String,
    pub machine_id: String,
    pub hostname: String,
    pub run_id: String,
    pub capbench_version: String,
    pub git_commit: String,
    pub cases: usize,
}

/// One machine of a merged folder (by fingerprint, `env.machine_id`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MergedMachine {
    pub machine_id: String,
    pub hostnames: Vec<String>,
    pub cpu_model: String,
    pub runs: usize,
}

/// `merged.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MergedIndex {
    pub schema_version: u32,
    pub merged_at: String,
    pub machines: Vec<MergedMachine>,
    pub runs: Vec<MergedRun>,
    /// Fields whose values differ between the runs but stay readable
    /// (same schema_version), e.g. `env.capbench_version: 0.1.0, 0.2.0`;
    /// runs that lack an optional field read it as absent.
    pub differences: Vec<String>,
    /// Inputs left out because the same run (machine id + run id) was
    /// already merged.
    #[serde(default)]
    pub duplicates: Vec<String>,
}

fn is_merged(path: &Path) -> bool {
    path.is_dir() && path.join(MERGED_FILE).exists()
}

fn read_index(dir: &Path) -> Result<MergedIndex> {
    let p = dir.join(MERGED_FILE);
    let text = std::fs::read_to_string(&p).map_err(|e| {
        HarnessError::bad_input(&p, "whole file", e.to_string(), "check the folder")
    })?;
    parse_versioned(&p, "", &text)
}

/// The runs of a run folder (one) or of a merged folder (all, in index
/// order). Errors name the file and place, exit 2.
pub fn load_runs(path: &Path) -> Result<Vec<SourcedRun>> {
    if !is_merged(path) {
        return Ok(vec![SourcedRun {
            source: path.display().to_string(),
            run: load_run(path)?,
        }]);
    }
    let index = read_index(path)?;
    index
        .runs
        .iter()
        .map(|r| {
            let dir = path.join(&r.path);
            Ok(SourcedRun {
                source: dir.display().to_string(),
                run: load_run(&dir)?,
            })
        })
        .collect()
}

/// Loads every path (run or merged folder) in order.
pub fn load_all(paths: &[PathBuf]) -> Result<Vec<SourcedRun>> {
    let mut out = vec![];
    for p in paths {
        out.extend(load_runs(p)?);
    }
    Ok(out)
}

/// The env and option fields that differ across runs, as `field: a, b`.
fn differences(runs: &[SourcedRun]) -> Vec<String> {
    let mut seen: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for r in runs {
        let env = serde_json::to_value(&r.run.env).expect("env serialises");
        let fields = [
            "capbench_version",
            "git_commit",
            "build_profile",
            "rustc_version",
            "capbench_features",
            "os_version",
        ];
        for f in fields {
            let v = env.get(f).map(|v| v.to_string()).unwrap_or_default();
            let e = seen.entry(format!("env.{f}")).or_default();
            if !e.contains(&v) {
                e.push(v);
            }
        }
        let suite = format!("{:?}", r.run.options.suite);
        let e = seen.entry("options.suite".into()).or_default();
        if !e.contains(&suite) {
            e.push(suite);
        }
    }
    seen.into_iter()
        .filter(|(_, v)| v.len() > 1)
        .map(|(k, v)| format!("{k}: {}", v.join(", ")))
        .collect()
}

fn safe(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// Copies each input's runs into `out/runs/<machine_id>/<run_id>/run.json`
/// (bytes unchanged) and writes `merged.json`. `out` must not hold a run or
/// a merge already. Inputs may themselves be merged folders.
pub fn merge(inputs: &[PathBuf], out: &Path) -> Result<MergedIndex> {
    if out.join(MERGED_FILE).exists() || out.join(RUN_FILE).exists() {
        return Err(HarnessError::usage(format!(
            "{} already holds a run or a merge; choose another --out",
            out.display()
        )));
    }
    // Read everything first: a damaged input stops the merge before any
    // file is written.
    let mut runs: Vec<(SourcedRun, PathBuf)> = vec![];
    for p in inputs {
        for r in load_runs(p)? {
            let file = if Path::new(&r.source).is_dir() {
                Path::new(&r.source).join(RUN_FILE)
            } else {
                PathBuf::from(&r.source)
            };
            runs.push((r, file));
        }
    }
    let mut kept: Vec<(SourcedRun, PathBuf)> = vec![];
    let mut duplicates = vec![];
    for (r, file) in runs {
        let same = |k: &(SourcedRun, PathBuf)| {
            k.0.run.env.machine_id == r.run.env.machine_id && k.0.run.run_id == r.run.run_id
        };
        if kept.iter().any(same) {
            duplicates.push(format!(
                "{} (run {} of machine {} is already merged)",
                r.source, r.run.run_id, r.run.env.machine_id
            ));
        } else {
            kept.push((r, file));
        }
    }
    let mut index_runs = vec![];
    for (r, file) in &kept {
        let rel = format!(
            "{RUNS_DIR}/{}/{}",
            safe(&r.run.env.machine_id),
            safe(&r.run.run_id)
        );
        let dir = out.join(&rel);
        std::fs::create_dir_all(&dir).map_err(HarnessError::io("create", &dir))?;
        std::fs::copy(file, dir.join(RUN_FILE)).map_err(HarnessError::io("copy", file))?;
        index_runs.push(MergedRun {
            path: rel,
            merged_from: r.source.clone(),
            machine_id: r.run.env.machine_id.clone(),
            hostname: r.run.env.hostname.clone(),
            run_id: r.run.run_id.clone(),
            capbench_version: r.run.env.capbench_version.clone(),
            git_commit: r.run.env.git_commit.clone(),
            cases: r.run.cases.len(),
        });
    }
    let mut machines: Vec<MergedMachine> = vec![];
    for (r, _) in &kept {
        match machines
            .iter_mut()
            .find(|m| m.machine_id == r.run.env.machine_id)
        {
            Some(m) => {
                m.runs += 1;
                if !m.hostnames.contains(&r.run.env.hostname) {
                    m.hostnames.push(r.run.env.hostname.clone());
                }
            }
            None => machines.push(MergedMachine {
                machine_id: r.run.env.machine_id.clone(),
                hostnames: vec![r.run.env.hostname.clone()],
                cpu_model: r.run.env.cpu_model.clone(),
                runs: 1,
            }),
        }
    }
    let only: Vec<SourcedRun> = kept.into_iter().map(|(r, _)| r).collect();
    let index = MergedIndex {
        schema_version: SCHEMA_VERSION,
        merged_at: now_rfc3339(),
        machines,
        runs: index_runs,
        differences: differences(&only),
        duplicates,
    };
    write_json_atomic(&out.join(MERGED_FILE), &index)?;
    Ok(index)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::fixtures::{case, run};

    fn write_run(dir: &Path, r: &RunFile) {
        std::fs::create_dir_all(dir).unwrap();
        write_json_atomic(&dir.join(RUN_FILE), r).unwrap();
    }

    #[test]
    fn machines_stay_apart_and_duplicates_are_dropped() {
        let tmp = tempfile::tempdir().unwrap();
        let a = run(
            "aaaa",
            vec![case("kernel/gemm-f32-64", "cpu", vec![vec![1e-4; 3]])],
        );
        let mut b = run(
            "bbbb",
            vec![case("kernel/gemm-f32-64", "cpu", vec![vec![2e-4; 3]])],
        );
        b.env.capbench_version = "0.2.0".into();
        write_run(&tmp.path().join("a"), &a);
        write_run(&tmp.path().join("b"), &b);
        let out = tmp.path().join("m");
        let idx = merge(
            &[
                tmp.path().join("a"),
                tmp.path().join("b"),
                tmp.path().join("a"),
            ],
            &out,
        )
        .unwrap();
        assert_eq!(idx.machines.len(), 2);
        assert_eq!(idx.runs.len(), 2);
        assert_eq!(idx.duplicates.len(), 1);
        assert!(
            idx.differences
                .iter()
                .any(|d| d.starts_with("env.capbench_version")),
            "{:?}",
            idx.differences
        );
        let back = load_runs(&out).unwrap();
        assert_eq!(back.len(), 2);
        assert_eq!(back[1].run.env.machine_id, "bbbb");
        // A merged folder merges again (flattened), and refuses to be overwritten.
        let idx2 = merge(std::slice::from_ref(&out), &tmp.path().join("m2")).unwrap();
        assert_eq!(idx2.runs.len(), 2);
        assert_eq!(
            merge(std::slice::from_ref(&out), &out)
                .unwrap_err()
                .exit_code(),
            2
        );
    }
}
