//! `capbench ab`: the interleaved A/B. Each side is a capbench binary (a git
//! revision is built first); each pair runs `run --repeat 1` of both, in an
//! order drawn per pair, and the pairs are compared with the paired analysis,
//! so drift of the machine between pairs cancels.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::analysis::compare::{Verdict, environment_mismatch};
use crate::analysis::paired::{self, AbSide, AbSummary, MIN_PAIRS};
use crate::cli::{AbArgs, CompareFormat};
use crate::error::{HarnessError, Result};
use crate::report::ab as report_ab;
use crate::results::io::{load_run, write_atomic, write_json_atomic};
use crate::results::now_rfc3339;
use crate::runner::plan::{compact_time, create_run_dir};

use super::exit_ok;

/// `run` flags that ab sets itself, per side and pair.
const RESERVED: [&str; 5] = ["--out", "--resume", "--repeat", "--json", "--report"];

pub fn run(a: &AbArgs) -> Result<ExitCode> {
    if !(MIN_PAIRS..=1000).contains(&a.pairs) {
        return Err(HarnessError::usage(format!(
            "--pairs {}: give {MIN_PAIRS}..=1000 (a 95% signed-rank CI needs {MIN_PAIRS} pairs)",
            a.pairs
        )));
    }
    if !(a.quantile > 0.0 && a.quantile <= 0.5) {
        return Err(HarnessError::usage(format!(
            "--quantile {}: give a fraction in (0, 0.5] (0.5 = the median)",
            a.quantile
        )));
    }
    if let Some(bad) = a.run_args.iter().find(|x| {
        RESERVED
            .iter()
            .any(|r| *x == r || x.starts_with(&format!("{r}=")))
    }) {
        return Err(HarnessError::usage(format!(
            "{bad} is set by ab for each side (use --out and --pairs of ab itself); drop it from the run arguments"
        )));
    }
    let out = match &a.out {
        Some(d) => d.clone(),
        None => PathBuf::from("results/local").join(format!("ab-{}", compact_time(&now_rfc3339()))),
    };
    if out.join("ab.json").exists() {
        return Err(HarnessError::usage(format!(
            "{} already holds an A/B (ab.json); choose another --out",
            out.display()
        )));
    }
    let build_dir = a
        .build_dir
        .clone()
        .unwrap_or_else(|| PathBuf::from("target/capbench-ab"));
    let base = resolve("base", &a.base, &build_dir)?;
    let new = resolve("new", &a.new, &build_dir)?;
    std::fs::create_dir_all(&out).map_err(HarnessError::io("create", &out))?;
    let seed = a.seed.unwrap_or_else(rand::random);
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let run_args: Vec<&String> = a
        .run_args
        .iter()
        .filter(|x| *x != "--quiet" && *x != "-q")
        .collect();
    let (mut base_runs, mut new_runs, mut orders) = (vec![], vec![], vec![]);
    for i in 0..a.pairs {
        let base_first = rng.random_bool(0.5);
        orders.push(if base_first { "AB" } else { "BA" }.to_string());
        eprintln!(
            "ab: pair {}/{} ({})",
            i + 1,
            a.pairs,
            if base_first { "base, new" } else { "new, base" }
        );
        let sides = if base_first {
            [(&base, None), (&new, a.inject_slowdown_new)]
        } else {
            [(&new, a.inject_slowdown_new), (&base, None)]
        };
        for (side, inject) in sides {
            let dir = out.join(&side.label).join(format!("pair-{:02}", i + 1));
            run_side(side, &run_args, &dir, inject)?;
            let r = load_run(&dir)?;
            if side.label == "base" {
                base_runs.push(r);
            } else {
                new_runs.push(r);
            }
        }
    }
    let cases = paired::compare_pairs(&base_runs, &new_runs, a.threshold, a.quantile);
    let side_record = |s: &Side, runs: &[crate::results::RunFile]| AbSide {
        spec: s.spec.clone(),
        binary: s.binary.display().to_string(),
        git_commit: runs
            .first()
            .map(|r| r.env.git_commit.clone())
            .unwrap_or_default(),
        run_ids: runs.iter().map(|r| r.run_id.clone()).collect(),
    };
    let summary = AbSummary::new(
        side_record(&base, &base_runs),
        side_record(&new, &new_runs),
        a.pairs,
        seed,
        orders,
        a.threshold,
        a.quantile,
        a.run_args.clone(),
        environment_mismatch(&base_runs[0], &new_runs[0]),
        cases,
    );
    write_json_atomic(&out.join("ab.json"), &summary)?;
    write_atomic(&out.join("ab.md"), report_ab::markdown(&summary).as_bytes())?;
    let text = match a.format {
        CompareFormat::Text => report_ab::text(&summary),
        CompareFormat::Md => report_ab::markdown(&summary),
        CompareFormat::Json => serde_json::to_string_pretty(&summary).expect("serialisable"),
    };
    println!("{text}");
    eprintln!("results: {}", out.display());
    Ok(exit_ok(
        !summary
            .cases
            .iter()
            .any(|c| c.verdict == Verdict::Regressed),
    ))
}

/// One build under test.
struct Side {
    label: String,
    spec: String,
    binary: PathBuf,
}

/// A file is a binary used as is; anything else must name a git commit,
/// which is built (once per commit: the binary is kept under the build dir).
fn resolve(label: &str, spec: &str, build_dir: &Path) -> Result<Side> {
    let side = |binary: PathBuf| Side {
        label: label.to_string(),
        spec: spec.to_string(),
        binary,
    };
    let p = Path::new(spec);
    if p.is_file() {
        let abs = p.canonicalize().map_err(HarnessError::io("resolve", p))?;
        return Ok(side(abs));
    }
    let sha = git(&["rev-parse", "--verify", "--quiet", &format!("{spec}^{{commit}}")])
        .ok_or_else(|| {
            HarnessError::usage(format!(
                "--{label} {spec}: neither a file nor a git revision of the repository here; give a capbench binary or a commit"
            ))
        })?;
    let cached = build_dir.join("bin").join(&sha).join("capbench");
    if cached.is_file() {
        eprintln!(
            "ab: {label} = {spec} ({sha:.10}), built before: {}",
            cached.display()
        );
        return Ok(side(absolute(&cached)?));
    }
    let src = build_dir.join(format!("src-{}", &sha[..12]));
    eprintln!(
        "ab: building {label} = {spec} ({sha:.10}) in {}",
        src.display()
    );
    let _ = git(&["worktree", "remove", "--force", &src.display().to_string()]);
    git(&[
        "worktree",
        "add",
        "--detach",
        "--force",
        &src.display().to_string(),
        &sha,
    ])
    .ok_or_else(|| {
        HarnessError::usage(format!(
            "--{label} {spec}: `git worktree add` failed for {}; is the build dir writable?",
            src.display()
        ))
    })?;
    let target = absolute(&build_dir.join("target"))?;
    let status = Command::new("cargo")
        .args(["build", "--release", "-p", "capbench", "--target-dir"])
        .arg(&target)
        .current_dir(&src)
        .status()
        .map_err(HarnessError::io("start cargo in", &src))?;
    if !status.success() {
        let _ = git(&["worktree", "remove", "--force", &src.display().to_string()]);
        return Err(HarnessError::usage(format!(
            "--{label} {spec}: `cargo build --release -p capbench` failed in {} (its output is above)",
            src.display()
        )));
    }
    let dir = cached.parent().expect("bin/<sha>");
    std::fs::create_dir_all(dir).map_err(HarnessError::io("create", dir))?;
    let built = target.join("release").join("capbench");
    std::fs::copy(&built, &cached).map_err(HarnessError::io("copy", &built))?;
    let _ = git(&["worktree", "remove", "--force", &src.display().to_string()]);
    Ok(side(absolute(&cached)?))
}

fn absolute(p: &Path) -> Result<PathBuf> {
    std::path::absolute(p).map_err(HarnessError::io("resolve", p))
}

/// Trimmed stdout of a successful git command, else `None`.
fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// One `run --repeat 1` of a side into `dir`. Exit 1 (a case failed) is
/// recorded in the run and judged per case; anything else stops the A/B.
fn run_side(side: &Side, args: &[&String], dir: &Path, inject: Option<f64>) -> Result<()> {
    create_run_dir(Some(dir.to_path_buf()))?;
    let mut cmd = Command::new(&side.binary);
    cmd.arg("run")
        .args(args)
        .args(["--repeat", "1", "--quiet", "--out"])
        .arg(dir);
    if let Some(f) = inject {
        cmd.arg("--inject-slowdown").arg(f.to_string());
    }
    let out = cmd
        .output()
        .map_err(HarnessError::io("start", &side.binary))?;
    match out.status.code() {
        Some(0 | 1) => Ok(()),
        code => Err(HarnessError::usage(format!(
            "the {} build ({}) ended `run` with {}: {}",
            side.label,
            side.binary.display(),
            code.map(|c| format!("exit code {c}"))
                .unwrap_or_else(|| "a signal".into()),
            String::from_utf8_lossy(&out.stderr).trim()
        ))),
    }
}
