//! Reading and writing run folders: `plan.json` (first), `cases.jsonl` (one
//! line per finished case, appended and flushed at once), `run.json` (last).
//! Every reader checks `schema_version` and names file and place on error;
//! writers never touch what is already on disk except through an atomic
//! rename of a complete file.

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::{CaseResult, Plan, RunFile, SCHEMA_VERSION};
use crate::error::{HarnessError, Result};

pub const PLAN_FILE: &str = "plan.json";
pub const CASES_FILE: &str = "cases.jsonl";
pub const RUN_FILE: &str = "run.json";

/// Writes `value` as pretty JSON to `path` via a temporary file and rename,
/// so a reader never sees half a file and a crash leaves the old one intact.
pub fn write_json_atomic<T: Serialize>(path: &Path, value: &T) -> Result<()> {
    let mut text = serde_json::to_string_pretty(value).expect("result types serialise");
    text.push('\n');
    write_atomic(path, text.as_bytes())
}

/// The temporary name `path` is written under before its rename: hidden,
/// beside it (a rename stays on one file system), and this process's own.
pub fn temp_path(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    path.with_file_name(format!(".{name}.{}.tmp", std::process::id()))
}

/// Writes `bytes` to `path` atomically: a temporary file, flushed to disk,
/// renamed over `path`, then the folder flushed so the rename itself
/// survives a power cut. On any error the temporary file is removed and
/// `path` is as it was.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = temp_path(path);
    let written = File::create(&tmp).and_then(|mut f| {
        f.write_all(bytes)?;
        f.sync_all()
    });
    if let Err(e) = written {
        let _ = fs::remove_file(&tmp);
        return Err(HarnessError::io("write", &tmp)(e));
    }
    if let Err(e) = fs::rename(&tmp, path) {
        let _ = fs::remove_file(&tmp);
        return Err(HarnessError::io("rename into", path)(e));
    }
    sync_dir(path.parent().unwrap_or(Path::new(".")))
}

/// Flushes a folder's entries (files created or renamed in it) to disk.
/// File systems that cannot sync a folder (EINVAL) are taken as done.
pub fn sync_dir(dir: &Path) -> Result<()> {
    let dir = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    #[cfg(unix)]
    match File::open(dir).and_then(|d| d.sync_all()) {
        Err(e) if e.raw_os_error() != Some(libc::EINVAL) => {
            return Err(HarnessError::io("sync folder", dir)(e));
        }
        _ => {}
    }
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}

/// `s` as one file-name component that stays inside the folder it is
/// joined to: characters other than letters, digits, '-', '_' and '.'
/// become '_', and a name that is empty or starts with '.' ("..", ".x")
/// gets a leading '_'. Names from run files (machine id, run id) pass
/// through this before they become paths.
pub fn path_component(s: &str) -> String {
    let mut out: String = s
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '_'
            }
        })
        .collect();
    if out.is_empty() || out.starts_with('.') {
        out.insert(0, '_');
    }
    out
}

fn read_text(path: &Path) -> Result<String> {
    let mut s = String::new();
    File::open(path)
        .and_then(|mut f| f.read_to_string(&mut s))
        .map_err(|e| {
            HarnessError::bad_input(
                path,
                "whole file",
                format!("cannot read: {e}"),
                "check the path; a run folder holds plan.json, cases.jsonl and run.json",
            )
        })?;
    Ok(s)
}

/// Parses one JSON document of a versioned schema. `place` prefixes the
/// position (e.g. "line 3" for a JSONL line).
pub fn parse_versioned<T: DeserializeOwned>(path: &Path, place: &str, text: &str) -> Result<T> {
    let value: serde_json::Value = serde_json::from_str(text).map_err(|e| {
        let at = if place.is_empty() {
            format!("line {}, column {}", e.line(), e.column())
        } else {
            format!("{place}, column {}", e.column())
        };
        // --resume reads the same line and would fail on it again: a
        // damaged journal line is deleted (its case is then run again).
        let fix = if place.is_empty() {
            "the file is damaged or truncated; restore it, or re-run".to_string()
        } else {
            format!(
                "delete {place} of this file (or restore the file); `capbench run --resume DIR` then runs that case again"
            )
        };
        HarnessError::bad_input(path, at, format!("malformed JSON: {e}"), fix)
    })?;
    let here = if place.is_empty() { "top level" } else { place };
    match value.get("schema_version").and_then(|v| v.as_u64()) {
        Some(v) if v == SCHEMA_VERSION as u64 => {}
        Some(v) => {
            return Err(HarnessError::bad_input(
                path,
                format!("{here}: schema_version"),
                format!(
                    "schema_version {v} is not supported; this capbench reads {SCHEMA_VERSION}"
                ),
                "read it with the capbench version that wrote it (see env.capbench_version), or re-run",
            ));
        }
        None => {
            return Err(HarnessError::bad_input(
                path,
                here,
                "no numeric schema_version field",
                "this is not a capbench result file",
            ));
        }
    }
    serde_path_to_error::deserialize(value).map_err(|e| {
        // serde_path_to_error names the top level ".": say so in words.
        let field = e.path().to_string();
        let at = if field == "." {
            here.to_string()
        } else {
            format!("{here}: field {field}")
        };
        let kind = match std::any::type_name::<T>().rsplit("::").next() {
            Some("RunFile") => "a run.json (run_id, env — the machine fingerprint —, options, cases, …)",
            Some("Plan") => "a plan.json (run_id, options, cases)",
            Some("CaseResult") => "a case record (id, workload, backend, status, processes, …)",
            _ => "this capbench result file",
        };
        HarnessError::bad_input(
            path,
            at,
            if e.inner().to_string().starts_with("missing field") {
                format!("{}, which {kind} must have", e.inner())
            } else {
                e.inner().to_string()
            },
            "the file does not match capbench's result schema (results/README.md); restore it from the run folder capbench wrote",
        )
    })
}

pub fn read_run_file(path: &Path) -> Result<RunFile> {
    let run: RunFile = parse_versioned(path, "", &read_text(path)?)?;
    for (i, c) in run.cases.iter().enumerate() {
        super::invariants::check_case(path, &format!("cases[{i}]"), c)?;
    }
    Ok(run)
}

pub fn read_plan(dir: &Path) -> Result<Plan> {
    let path = dir.join(PLAN_FILE);
    if !path.exists() {
        return Err(HarnessError::bad_input(
            &path,
            "whole file",
            "missing: this folder is not a capbench run",
            "pass the folder `capbench run` printed (it holds plan.json)",
        ));
    }
    let plan: Plan = parse_versioned(&path, "", &read_text(&path)?)?;
    check_plan(&path, &plan)?;
    Ok(plan)
}

/// The limits a fresh plan is held to, for a stored one: `--resume` of a
/// folder whose plan.json was edited (or written by a capbench without
/// them) is refused before any worker starts.
fn check_plan(path: &Path, plan: &Plan) -> Result<()> {
    use crate::limits::{self, MAX_CASE_TIMEOUT_S, MAX_THREADS};
    let bad = |place: String, m: String| {
        HarnessError::bad_input(
            path,
            place,
            m,
            "start a fresh run with `capbench run` (a plan.json is written by capbench, not by hand)",
        )
    };
    limits::seconds(
        "case_timeout_s",
        plan.options.case_timeout_s,
        MAX_CASE_TIMEOUT_S,
    )
    .map_err(|m| bad("options.case_timeout_s".into(), m))?;
    plan.options
        .sampling
        .validate()
        .map_err(|m| bad("options.sampling".into(), m))?;
    if let Some(t) = plan.options.threads {
        limits::count("threads", t, MAX_THREADS).map_err(|m| bad("options.threads".into(), m))?;
    }
    for c in &plan.cases {
        if let Some(s) = &c.sampling {
            s.validate()
                .map_err(|m| bad(format!("case {}: sampling", c.id), m))?;
        }
    }
    Ok(())
}

/// The journal's finished cases, plus the byte length of its complete part:
/// a last line without its newline is an interrupted write, not a result.
pub struct JournalContents {
    pub cases: Vec<CaseResult>,
    pub complete_len: u64,
    pub torn_tail_bytes: u64,
}

pub fn read_journal(dir: &Path) -> Result<JournalContents> {
    let path = dir.join(CASES_FILE);
    if !path.exists() {
        return Ok(JournalContents {
            cases: vec![],
            complete_len: 0,
            torn_tail_bytes: 0,
        });
    }
    let text = read_text(&path)?;
    let complete_len = text.rfind('\n').map(|i| i + 1).unwrap_or(0);
    let mut cases = Vec::new();
    for (i, line) in text[..complete_len].lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let place = format!("line {}", i + 1);
        let case: CaseResult = parse_versioned(&path, &place, line)?;
        super::invariants::check_case(&path, &place, &case)?;
        cases.push(case);
    }
    Ok(JournalContents {
        cases,
        complete_len: complete_len as u64,
        torn_tail_bytes: (text.len() - complete_len) as u64,
    })
}

/// Append-only writer for `cases.jsonl`.
pub struct Journal {
    path: PathBuf,
    file: File,
}

impl Journal {
    /// Opens for appending; drops a torn last line (an interrupted write)
    /// so the next record starts on a line of its own.
    pub fn open(dir: &Path, complete_len: u64) -> Result<Journal> {
        let path = dir.join(CASES_FILE);
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(HarnessError::io("open", &path))?;
        // A journal just created must survive a power cut as an entry too.
        sync_dir(dir)?;
        let len = file
            .metadata()
            .map_err(HarnessError::io("stat", &path))?
            .len();
        if len > complete_len {
            file.set_len(complete_len)
                .map_err(HarnessError::io("truncate torn line of", &path))?;
        }
        Ok(Journal { path, file })
    }

    /// Appends one case as one line and flushes it to disk before returning.
    pub fn append(&mut self, case: &CaseResult) -> Result<()> {
        let mut line = serde_json::to_string(case).expect("result types serialise");
        line.push('\n');
        self.file
            .write_all(line.as_bytes())
            .and_then(|_| self.file.sync_data())
            .map_err(HarnessError::io("append to", &self.path))
    }
}

/// Loads a run for reading: `run.json` if present, else the plan and the
/// journal of an interrupted run. Accepts the folder or the run.json path.
pub fn load_run(path: &Path) -> Result<RunFile> {
    let run_json = if path.is_dir() {
        path.join(RUN_FILE)
    } else {
        path.to_path_buf()
    };
    if run_json.exists() || !path.is_dir() {
        return read_run_file(&run_json);
    }
    Err(HarnessError::bad_input(
        &run_json,
        "whole file",
        "missing: the run did not finish",
        format!("finish it with `capbench run --resume {}`", path.display()),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn malformed_json_names_line_and_column() {
        let p = Path::new("x/run.json");
        let e = parse_versioned::<Plan>(p, "", "{\n  \"schema_version\": 1,\n  oops\n}")
            .unwrap_err()
            .to_string();
        assert!(e.contains("x/run.json: line 3, column"), "{e}");
        assert!(e.contains("fix:"), "{e}");
    }

    #[test]
    fn unknown_schema_version_is_refused() {
        let e = parse_versioned::<Plan>(Path::new("p.json"), "", "{\"schema_version\": 99}")
            .unwrap_err();
        assert_eq!(e.exit_code(), 2);
        assert!(e.to_string().contains("schema_version 99 is not supported"));
    }

    #[test]
    fn schema_mismatch_names_the_field() {
        let text = "{\"schema_version\": 1, \"run_id\": 5}";
        let e = parse_versioned::<Plan>(Path::new("p.json"), "", text)
            .unwrap_err()
            .to_string();
        assert!(e.contains("run_id"), "{e}");
    }
}
