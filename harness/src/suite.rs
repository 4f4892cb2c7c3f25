//! Suites: named (built in, embedded TOML) or TOML files, expanded into cases
//! (workload × backend × caps). Bad files get errors with file, line and fix.

use std::path::Path;

use capbench_workloads::spec::WorkloadSpec;
use serde::{Deserialize, Serialize};
use toml::Spanned;

use crate::error::{HarnessError, Result};

/// How samples are taken in each worker process, and how many processes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Sampling {
    /// Worker processes per case; their spread gives the between-process CI.
    pub repeat: usize,
    /// Untimed iterations after verification, before sampling.
    pub warmup_iters: usize,
    /// Samples taken whatever the time budget says.
    pub min_samples: usize,
    pub max_samples: usize,
    /// Sampling time budget per process, seconds (after min_samples).
    pub max_time_s: f64,
    /// Stop once the 95% CI half-width of the median is within this fraction
    /// of the median.
    pub target_ci_rel: f64,
}

impl Default for Sampling {
    fn default() -> Self {
        Sampling {
            repeat: 3,
            warmup_iters: 3,
            min_samples: 10,
            max_samples: 10_000,
            max_time_s: 1.0,
            target_ci_rel: 0.01,
        }
    }
}

impl Sampling {
    /// Checks ranges; the message names the offending key.
    pub fn validate(&self) -> std::result::Result<(), String> {
        use crate::limits::{self, MAX_REPEAT, MAX_SAMPLES, MAX_SAMPLING_TIME_S};
        limits::count("sampling.repeat", self.repeat, MAX_REPEAT)?;
        limits::count("sampling.min_samples", self.min_samples, MAX_SAMPLES)?;
        limits::count("sampling.max_samples", self.max_samples, MAX_SAMPLES)?;
        if self.warmup_iters > MAX_SAMPLES {
            return Err(format!(
                "sampling.warmup_iters {} is beyond the limit of {MAX_SAMPLES}",
                self.warmup_iters
            ));
        }
        if self.max_samples < self.min_samples {
            return Err("sampling.max_samples must be ≥ sampling.min_samples".into());
        }
        limits::seconds("sampling.max_time_s", self.max_time_s, MAX_SAMPLING_TIME_S)?;
        if !(self.target_ci_rel > 0.0 && self.target_ci_rel < 1.0) {
            return Err("sampling.target_ci_rel must be in (0, 1), e.g. 0.02".into());
        }
        Ok(())
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SuiteFile {
    name: String,
    #[serde(default)]
    description: String,
    workloads: Vec<Spanned<String>>,
    #[serde(default)]
    backends: Option<Vec<Spanned<String>>>,
    #[serde(default)]
    case_timeout_s: Option<f64>,
    #[serde(default)]
    threads: Option<usize>,
    #[serde(default)]
    sampling: Sampling,
    /// Sampling for the workloads matching a glob (first match wins), e.g.
    /// fewer samples for multi-second quality runs.
    #[serde(default, rename = "override")]
    overrides: Vec<OverrideFile>,
    /// `[backend.NAME]`: backends run by another program (docs/worker-protocol.md).
    #[serde(default, rename = "backend")]
    external: std::collections::BTreeMap<String, Spanned<ExternalBackendFile>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ExternalBackendFile {
    command: Vec<String>,
    #[serde(default)]
    workloads: Vec<String>,
}

/// A backend whose workers are another program speaking the worker protocol
/// (docs/worker-protocol.md): PyTorch, or anything a user wires in.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExternalBackend {
    pub name: String,
    /// Program and leading arguments; capbench appends `--job J --result R`
    /// (or `--probe`). `{builtin}` stands for the folder where capbench
    /// writes the worker scripts it ships (`workers/` in the source tree).
    pub command: Vec<String>,
    /// Workload globs the program runs (empty: every workload; the worker
    /// answers `unsupported` for what it lacks).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub workloads: Vec<String>,
}

/// The external backends every build knows without a suite saying so.
/// `CAPBENCH_PYTHON` names the interpreter of the PyTorch worker.
pub fn built_in_external() -> Vec<ExternalBackend> {
    let python = std::env::var("CAPBENCH_PYTHON").unwrap_or_else(|_| "python3".into());
    vec![ExternalBackend {
        name: "torch".into(),
        command: vec![python, "{builtin}/torch_worker.py".into()],
        workloads: vec!["train-step/*".into(), "decode/*".into()],
    }]
}

/// Names an external backend may not take: capbench's own backends.
const RESERVED_BACKENDS: &[&str] = &["cpu", "cuda", "metal", "wgpu"];

impl ExternalBackend {
    pub fn runs(&self, workload: &str) -> bool {
        self.workloads.is_empty()
            || self
                .workloads
                .iter()
                .any(|g| glob::Pattern::new(g).is_ok_and(|p| p.matches(workload)))
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct OverrideFile {
    workloads: Spanned<String>,
    sampling: Sampling,
}

#[derive(Debug, Clone)]
pub struct Suite {
    pub name: String,
    pub description: String,
    /// `built-in` or the file's path.
    pub source: String,
    pub workloads: Vec<WorkloadSpec>,
    /// Backends the suite asks for (`None`: every usable one).
    pub backends: Option<Vec<String>>,
    pub case_timeout_s: Option<f64>,
    /// CPU threads per worker (`--threads` overrides).
    pub threads: Option<usize>,
    pub sampling: Sampling,
    /// (workload glob, sampling) pairs; the first matching glob applies.
    pub overrides: Vec<(glob::Pattern, Sampling)>,
    /// `[backend.NAME]` tables, then the built-in ones the suite does not
    /// redefine.
    pub external: Vec<ExternalBackend>,
}

impl Suite {
    /// The sampling a workload runs with.
    pub fn sampling_for(&self, workload: &str) -> &Sampling {
        self.overrides
            .iter()
            .find(|(g, _)| g.matches(workload))
            .map(|(_, s)| s)
            .unwrap_or(&self.sampling)
    }

    /// The external backend of that name, if it is one.
    pub fn external(&self, name: &str) -> Option<&ExternalBackend> {
        self.external.iter().find(|e| e.name == name)
    }
}

const BUILT_IN: &[(&str, &str)] = &[
    ("quick", include_str!("../suites/quick.toml")),
    ("standard", include_str!("../suites/standard.toml")),
    ("gate", include_str!("../suites/gate.toml")),
    ("probe", include_str!("../suites/probe.toml")),
];

pub fn built_in_names() -> Vec<&'static str> {
    BUILT_IN.iter().map(|(n, _)| *n).collect()
}

/// 1-based line and column of a byte offset.
fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let col = before.len() - before.rfind('\n').map(|i| i + 1).unwrap_or(0) + 1;
    (line, col)
}

/// Parses suite TOML; `path` is only used in messages.
pub fn parse(text: &str, path: &Path, source: &str) -> Result<Suite> {
    let file: SuiteFile = toml::from_str(text).map_err(|e| {
        let place = match e.span() {
            Some(span) => {
                let (l, c) = line_col(text, span.start);
                format!("line {l}, column {c}")
            }
            None => "whole file".to_string(),
        };
        HarnessError::bad_input(
            path,
            place,
            e.message().trim().to_string(),
            "a suite needs `name` and `workloads = [...]`, optionally `backends`, `case_timeout_s` and a [sampling] table (see docs/suites.md)",
        )
    })?;
    let at = |s: &Spanned<String>| {
        let (l, c) = line_col(text, s.span().start);
        format!("line {l}, column {c}")
    };
    let mut workloads = Vec::new();
    for w in &file.workloads {
        let spec = WorkloadSpec::parse(w.get_ref()).map_err(|e| {
            HarnessError::bad_input(
                path,
                at(w),
                e.to_string(),
                "use a name from `capbench list workloads`",
            )
        })?;
        workloads.push(spec);
    }
    if workloads.is_empty() {
        return Err(HarnessError::bad_input(
            path,
            "workloads",
            "the suite lists no workloads",
            "add at least one, e.g. workloads = [\"kernel/gemm-f32-256\"]",
        ));
    }
    let external = external_backends(&file, text, path)?;
    let backends = match &file.backends {
        None => None,
        Some(list) => {
            let mut out = Vec::new();
            for b in list {
                if external.iter().any(|e| &e.name == b.get_ref()) {
                    out.push(b.get_ref().clone());
                    continue;
                }
                capbench_workloads::Backend::parse(b.get_ref()).map_err(|e| {
                    HarnessError::bad_input(path, at(b), e.to_string(), "fix the backend name")
                })?;
                out.push(b.get_ref().clone());
            }
            Some(out)
        }
    };
    file.sampling
        .validate()
        .map_err(|m| HarnessError::bad_input(path, "[sampling]", m, "adjust the value"))?;
    let mut overrides = Vec::new();
    for o in &file.overrides {
        let g = glob::Pattern::new(o.workloads.get_ref()).map_err(|e| {
            HarnessError::bad_input(
                path,
                at(&o.workloads),
                format!("not a valid glob: {e}"),
                "fix the [[override]] workloads pattern",
            )
        })?;
        o.sampling.validate().map_err(|m| {
            HarnessError::bad_input(
                path,
                at(&o.workloads),
                m,
                "adjust the [[override]] sampling",
            )
        })?;
        overrides.push((g, o.sampling.clone()));
    }
    use crate::limits::{self, MAX_CASE_TIMEOUT_S, MAX_THREADS};
    if let Some(t) = file.threads
        && let Err(m) = limits::count("threads", t, MAX_THREADS)
    {
        return Err(HarnessError::bad_input(
            path,
            "threads",
            m,
            "e.g. threads = 1, or leave it out for candle's default",
        ));
    }
    if let Some(t) = file.case_timeout_s
        && let Err(m) = limits::seconds("case_timeout_s", t, MAX_CASE_TIMEOUT_S)
    {
        return Err(HarnessError::bad_input(
            path,
            "case_timeout_s",
            m,
            "e.g. case_timeout_s = 300 (at most a week)",
        ));
    }
    Ok(Suite {
        name: file.name,
        description: file.description,
        source: source.to_string(),
        workloads,
        backends,
        case_timeout_s: file.case_timeout_s,
        threads: file.threads,
        sampling: file.sampling,
        overrides,
        external,
    })
}

/// The suite's `[backend.NAME]` tables, checked, then the built-in external
/// backends it does not redefine.
fn external_backends(file: &SuiteFile, text: &str, path: &Path) -> Result<Vec<ExternalBackend>> {
    let mut out = Vec::new();
    for (name, table) in &file.external {
        let (l, c) = line_col(text, table.span().start);
        let at = format!("[backend.{name}] (line {l}, column {c})");
        let bad = |m: String, fix: &str| HarnessError::bad_input(path, &at, m, fix);
        let base = name.split(':').next().unwrap_or_default();
        if RESERVED_BACKENDS.contains(&base) {
            return Err(bad(
                format!("'{name}' is one of capbench's own backends"),
                "give the external backend another name, e.g. [backend.torch]",
            ));
        }
        if name.is_empty()
            || !name
                .chars()
                .all(|ch| ch.is_ascii_alphanumeric() || "-_:".contains(ch))
        {
            return Err(bad(
                format!("'{name}' is not a backend name"),
                "use letters, digits, '-', '_' and ':' only",
            ));
        }
        let t = table.get_ref();
        if t.command.is_empty() || t.command[0].is_empty() {
            return Err(bad(
                "`command` is empty".into(),
                "name the program and its arguments, e.g. command = [\"python3\", \"workers/torch_worker.py\"]",
            ));
        }
        for g in &t.workloads {
            glob::Pattern::new(g).map_err(|e| {
                bad(
                    format!("workloads: '{g}' is not a valid glob: {e}"),
                    "fix the pattern, e.g. \"decode/*\"",
                )
            })?;
        }
        out.push(ExternalBackend {
            name: name.clone(),
            command: t.command.clone(),
            workloads: t.workloads.clone(),
        });
    }
    for b in built_in_external() {
        if !out.iter().any(|e| e.name == b.name) {
            out.push(b);
        }
    }
    Ok(out)
}

/// Resolves `--suite`: a built-in name, or a path to a TOML file.
pub fn load(name_or_path: &str) -> Result<Suite> {
    if let Some((_, text)) = BUILT_IN.iter().find(|(n, _)| *n == name_or_path) {
        let p = Path::new(name_or_path);
        return parse(text, p, "built-in");
    }
    let path = Path::new(name_or_path);
    if path.extension().is_some_and(|e| e == "toml") || path.exists() {
        let text = std::fs::read_to_string(path).map_err(|e| {
            HarnessError::bad_input(
                path,
                "whole file",
                format!("cannot read suite file: {e}"),
                "check the path",
            )
        })?;
        return parse(&text, path, &path.display().to_string());
    }
    Err(HarnessError::usage(format!(
        "unknown suite '{name_or_path}': built-in suites are {}; or pass a path to a .toml file",
        built_in_names().join(", ")
    )))
}

pub fn built_in() -> Vec<Suite> {
    BUILT_IN
        .iter()
        .map(|(n, _)| load(n).expect("built-in suites parse"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn built_in_suites_parse() {
        let all = built_in();
        assert!(all.iter().any(|s| s.name == "quick"));
        for s in all {
            assert!(!s.workloads.is_empty(), "{}", s.name);
        }
    }

    #[test]
    fn syntax_error_names_file_and_line() {
        let e = parse(
            "name = \"x\"\nworkloads = [\n",
            Path::new("s.toml"),
            "s.toml",
        )
        .unwrap_err()
        .to_string();
        assert!(e.starts_with("s.toml: line "), "{e}");
    }

    #[test]
    fn unknown_workload_names_its_line() {
        let text = "name = \"x\"\nworkloads = [\n  \"kernel/gemm-f32-8\",\n  \"kernel/gemv\",\n]\n";
        let e = parse(text, Path::new("s.toml"), "s.toml").unwrap_err();
        assert_eq!(e.exit_code(), 2);
        let e = e.to_string();
        assert!(e.contains("line 4, column 3"), "{e}");
        assert!(e.contains("kernel/gemv"), "{e}");
    }

    #[test]
    fn unknown_keys_and_bad_values_are_refused() {
        let typo = "name = \"x\"\nworkloads = [\"kernel/gemm-f32-8\"]\nrepeats = 3\n";
        assert!(
            parse(typo, Path::new("s.toml"), "")
                .unwrap_err()
                .to_string()
                .contains("repeats")
        );
        let zero = "name = \"x\"\nworkloads = [\"kernel/gemm-f32-8\"]\n[sampling]\nrepeat = 0\n";
        assert!(
            parse(zero, Path::new("s.toml"), "")
                .unwrap_err()
                .to_string()
                .contains("repeat")
        );
        let bad_backend =
            "name = \"x\"\nworkloads = [\"kernel/gemm-f32-8\"]\nbackends = [\"tpu\"]\n";
        assert!(
            parse(bad_backend, Path::new("s.toml"), "")
                .unwrap_err()
                .to_string()
                .contains("tpu")
        );
    }

    #[test]
    fn counts_and_durations_beyond_the_limits_are_refused() {
        for (body, key) in [
            ("case_timeout_s = 1e20\n", "case_timeout_s"),
            ("case_timeout_s = inf\n", "case_timeout_s"),
            ("threads = 100000\n", "threads"),
            ("[sampling]\nrepeat = 1000000000\n", "sampling.repeat"),
            (
                "[sampling]\nmax_samples = 4611686018427387904\n",
                "sampling.max_samples",
            ),
            ("[sampling]\nmax_time_s = 1e300\n", "sampling.max_time_s"),
            (
                "[sampling]\nwarmup_iters = 4611686018427387904\n",
                "warmup_iters",
            ),
        ] {
            let text = format!("name = \"x\"\nworkloads = [\"kernel/gemm-f32-8\"]\n{body}");
            let e = parse(&text, Path::new("s.toml"), "").unwrap_err();
            assert_eq!(e.exit_code(), 2);
            let e = e.to_string();
            assert!(e.contains(key) && e.contains("s.toml"), "{body}: {e}");
        }
    }

    #[test]
    fn line_col_counts_from_one() {
        assert_eq!(line_col("ab\ncd", 0), (1, 1));
        assert_eq!(line_col("ab\ncd", 4), (2, 2));
    }
}
