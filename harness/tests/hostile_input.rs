//! The real binary on a table of hostile inputs (issue 16): each ends with
//! exit 2 and a message naming the file or flag and the place, never a
//! panic, writes nothing outside the folder it was given, and damages
//! nothing already written. Then fault injection: a case whose result
//! cannot be written is `harness_error`, and `--resume` measures it once.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use common::*;

/// Every file under `root` with its bytes, to see what a command touched.
fn tree(root: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut todo = vec![root.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                todo.push(p);
            } else {
                out.insert(p.clone(), std::fs::read(&p).unwrap_or_default());
            }
        }
    }
    out
}

/// Runs capbench, asserts exit 2, no panic and that every word of `names`
/// is in the message; returns stderr.
fn refused(args: &[String], names: &[&str]) -> String {
    let out = capbench()
        .args(args)
        .env("RUST_BACKTRACE", "1")
        .output()
        .unwrap();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "capbench {args:?}: {err}");
    assert!(!err.contains("panicked at"), "{args:?}: {err}");
    assert!(!err.contains("stack backtrace"), "{args:?}: {err}");
    for n in names {
        assert!(err.contains(n), "{args:?}: wanted {n:?} in: {err}");
    }
    err
}

fn s(v: &[&str]) -> Vec<String> {
    v.iter().map(|x| x.to_string()).collect()
}

/// A minimal GGUF v3 header: no tensors, one u32 metadata entry.
fn gguf_with_u32(key: &str, v: u32) -> Vec<u8> {
    let mut b = b"GGUF".to_vec();
    b.extend(3u32.to_le_bytes());
    b.extend(0u64.to_le_bytes());
    b.extend(1u64.to_le_bytes());
    b.extend((key.len() as u64).to_le_bytes());
    b.extend(key.as_bytes());
    b.extend(4u32.to_le_bytes());
    b.extend(v.to_le_bytes());
    b
}

#[test]
fn hostile_flags_and_files_exit_2_naming_the_place() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let out = root.join("out");
    let o = out.display().to_string();
    // A finished run to damage copies of.
    let good_dir = root.join("good");
    run_ok(&small_cpu_run(&good_dir));
    let good = std::fs::read_to_string(good_dir.join("run.json")).unwrap();
    let hostile = |name: &str, text: String| {
        let d = root.join(name);
        std::fs::create_dir_all(&d).unwrap();
        write(&d.join("run.json"), &text);
        d.display().to_string()
    };

    let suite = root.join("suite.toml");
    write(
        &suite,
        "name = \"x\"\nworkloads = [\"kernel/gemm-f32-64\"]\ncase_timeout_s = 1e20\n",
    );
    let gguf = root.join("align0.gguf");
    std::fs::write(&gguf, gguf_with_u32("general.alignment", 0)).unwrap();
    let machine_escape = hostile(
        "escape",
        good.replacen(
            &format!(
                "\"machine_id\": {}",
                serde_json::to_string(&read_json(&good_dir.join("run.json"))["env"]["machine_id"])
                    .unwrap()
            ),
            "\"machine_id\": \"../../x\"",
            1,
        ),
    );
    let no_samples = {
        let mut v: serde_json::Value = serde_json::from_str(&good).unwrap();
        v["cases"][0]["processes"][0]["worker"]["samples_wall_s"] = serde_json::json!([]);
        hostile("nosamples", serde_json::to_string_pretty(&v).unwrap())
    };
    let no_env = {
        let mut v: serde_json::Value = serde_json::from_str(&good).unwrap();
        v.as_object_mut().unwrap().remove("env");
        hostile("noenv", serde_json::to_string_pretty(&v).unwrap())
    };
    let cpu_run = |extra: &[&str]| {
        let mut v = s(&["run", "--quiet", "--backend", "cpu", "--out", &o]);
        v.extend(s(extra));
        v
    };

    let table: Vec<(&str, Vec<String>, Vec<&str>)> = vec![
        (
            "timeout 1e20",
            cpu_run(&["--case-timeout", "1e20"]),
            vec!["--case-timeout"],
        ),
        (
            "timeout NaN",
            cpu_run(&["--case-timeout", "NaN"]),
            vec!["--case-timeout"],
        ),
        (
            "repeat 2^62",
            cpu_run(&["--repeat", "4611686018427387904"]),
            vec!["--repeat"],
        ),
        (
            "repeat 1e9",
            cpu_run(&["--repeat", "1000000000"]),
            vec!["--repeat", "1000"],
        ),
        (
            "threads huge",
            cpu_run(&["--threads", "99999999"]),
            vec!["--threads"],
        ),
        (
            "calibrate runs",
            s(&["calibrate", "--runs", "1000000000", "--out", &o]),
            vec!["--runs", "100"],
        ),
        (
            "size suffix wrap",
            cpu_run(&["--workload", "kernel/stream-17179869184G"]),
            vec!["kernel/stream-17179869184G"],
        ),
        (
            "gemm 2^32",
            cpu_run(&["--workload", "kernel/gemm-f32-4294967296"]),
            vec!["kernel/gemm-f32-4294967296", "limit"],
        ),
        (
            "mem-cap 0.1",
            cpu_run(&["--mem-cap", "0.1"]),
            vec!["0.1", "less than one byte"],
        ),
        (
            "mem-cap 2^64",
            cpu_run(&["--mem-cap", "18446744073709551616"]),
            vec!["2^64"],
        ),
        (
            "mem-cap 99999EiB",
            cpu_run(&["--mem-cap", "99999EiB"]),
            vec!["99999EiB", "2^64"],
        ),
        (
            "suite timeout",
            s(&["run", "--suite", suite.to_str().unwrap(), "--out", &o]),
            vec![suite.to_str().unwrap(), "case_timeout_s"],
        ),
        (
            "gguf alignment 0",
            cpu_run(&["--model", gguf.to_str().unwrap()]),
            vec![gguf.to_str().unwrap(), "general.alignment"],
        ),
        (
            "baseline machine_id",
            s(&[
                "baseline",
                "save",
                "b",
                &machine_escape,
                "--baselines-dir",
                &o,
            ]),
            vec!["escape", "env.machine_id"],
        ),
        (
            "zero samples",
            s(&["show", &no_samples]),
            vec!["run.json", "samples_wall_s"],
        ),
        (
            "missing env",
            s(&["show", &no_env]),
            vec!["run.json", "missing field `env`"],
        ),
    ];
    for (what, args, names) in &table {
        let before = tree(root);
        let err = refused(args, names);
        eprintln!("{what}: exit 2: {}", err.lines().next().unwrap_or(""));
        // Nothing written outside --out, nothing damaged anywhere.
        let after = tree(root);
        for (p, bytes) in &before {
            assert_eq!(after.get(p), Some(bytes), "{what}: {} changed", p.display());
        }
        for p in after.keys().filter(|p| !before.contains_key(*p)) {
            assert!(p.starts_with(&out), "{what}: wrote {}", p.display());
        }
    }
}

#[test]
fn resume_of_a_hostile_plan_and_corrupt_journal_exit_2() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("run");
    run_ok(&small_cpu_run(&dir));
    std::fs::remove_file(dir.join("run.json")).unwrap();
    let journal = std::fs::read_to_string(dir.join("cases.jsonl")).unwrap();
    let plan_path = dir.join("plan.json");
    let plan = std::fs::read_to_string(&plan_path).unwrap();
    let d = dir.display().to_string();

    // A plan edited to a timeout Duration cannot hold: refused, not a panic.
    let mut v: serde_json::Value = serde_json::from_str(&plan).unwrap();
    v["options"]["case_timeout_s"] = serde_json::json!(1e20);
    write(&plan_path, &serde_json::to_string_pretty(&v).unwrap());
    refused(
        &s(&["run", "--resume", &d]),
        &["plan.json", "case_timeout_s"],
    );
    write(&plan_path, &plan);

    // A damaged journal line: the fix is to delete it, not --resume again.
    write(&dir.join("cases.jsonl"), &journal.replacen('{', "{oops", 1));
    let err = refused(&s(&["run", "--resume", &d]), &["cases.jsonl", "line 1"]);
    assert!(err.contains("delete line 1"), "{err}");
    assert_eq!(std::fs::read_to_string(&plan_path).unwrap(), plan);
}

#[test]
fn terminal_output_escapes_control_characters_from_run_files() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("run");
    run_ok(&small_cpu_run(&dir));
    let p = dir.join("run.json");
    let mut v = read_json(&p);
    v["env"]["cpu_model"] = serde_json::json!("\u{1b}]0;pwned\u{7}\u{1b}[2Jcpu");
    v["cases"][0]["status_detail"] = serde_json::json!("\u{9b}31mred\r");
    write(&p, &serde_json::to_string_pretty(&v).unwrap());
    let out = run_ok(&["show", dir.to_str().unwrap()]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        !text.chars().any(|c| c.is_control() && c != '\n'),
        "{text:?}"
    );
    assert!(text.contains("\\u{1b}]0;pwned"), "{text}");
}

/// Fault injection: the worker cannot write its result (a folder stands
/// where the file goes, as a full disk would refuse it). The case is
/// `harness_error`, not `crashed`; `--resume` measures it again and the
/// journal ends with the case exactly once, ok.
#[test]
fn harness_failure_is_its_own_status_and_resume_measures_it_once() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("run");
    let blocker = dir.join(".work/case0-p0.result.json");
    std::fs::create_dir_all(blocker.join("x")).unwrap();
    let out = capbench().args(small_cpu_run(&dir)).output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let run = read_json(&dir.join("run.json"));
    assert_eq!(run["cases"][0]["status"], "harness_error", "{run}");
    std::fs::remove_dir_all(&blocker).unwrap();

    run_ok(&["run", "--quiet", "--resume", dir.to_str().unwrap()]);
    let journal = std::fs::read_to_string(dir.join("cases.jsonl")).unwrap();
    let lines: Vec<serde_json::Value> = journal
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 1, "{journal}");
    assert_eq!(lines[0]["status"], "ok");
    let run = read_json(&dir.join("run.json"));
    assert_eq!(run["cases"].as_array().unwrap().len(), 1);
    assert_eq!(run["cases"][0]["status"], "ok");
    // No temporary file is left behind.
    let left: Vec<_> = tree(&dir)
        .into_keys()
        .filter(|p| p.to_string_lossy().ends_with(".tmp"))
        .collect();
    assert!(left.is_empty(), "{left:?}");
}

/// A real full disk (issue 16, findings 11 and 12): the run folder on a tmpfs
/// of a few hundred KiB, filled up but for a little room. Where a tmpfs can
/// be mounted (root on Linux, as CI runs) the run must end without a panic
/// however far it got, then — with the room back — `--resume` must finish
/// every case exactly once, ok, with no temporary file left. Elsewhere the
/// test says so and stops.
#[test]
fn a_full_disk_loses_no_case_and_resume_finishes_the_run() {
    let tmp = tempfile::tempdir().unwrap();
    let mnt = tmp.path().join("tiny");
    std::fs::create_dir_all(&mnt).unwrap();
    let mounted = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=512k", "tmpfs"])
        .arg(&mnt)
        .output()
        .is_ok_and(|o| o.status.success());
    if !mounted {
        eprintln!("skipped: cannot mount a tmpfs here (needs root on Linux)");
        return;
    }
    struct Unmount(PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = std::process::Command::new("umount").arg(&self.0).status();
        }
    }
    let _guard = Unmount(mnt.clone());
    // Leave ~24 KiB: room for the plan, not for every case's results.
    let filler = mnt.join("filler");
    let room = 24 * 1024;
    let free = {
        let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
        let c = std::ffi::CString::new(mnt.to_str().unwrap()).unwrap();
        assert_eq!(unsafe { libc::statvfs(c.as_ptr(), &mut st) }, 0);
        st.f_bavail as usize * st.f_frsize as usize
    };
    std::fs::write(&filler, vec![0u8; free.saturating_sub(room)]).unwrap();

    let dir = mnt.join("run");
    let args: Vec<String> = [
        "run",
        "--quiet",
        "--backend",
        "cpu",
        "--threads",
        "1",
        "--workload",
        "kernel/gemm-f32-128,kernel/stream-4M,kernel/attention-256",
        "--repeat",
        "2",
        "--out",
        dir.to_str().unwrap(),
    ]
    .map(String::from)
    .to_vec();
    let out = capbench().args(&args).output().unwrap();
    let err = stderr(&out);
    assert!(!err.contains("panicked at"), "{err}");
    // The disk did fill (seen: run.json's temporary file refused, exit 1).
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("No space left on device"), "{err}");

    std::fs::remove_file(&filler).unwrap();
    if dir.join("plan.json").exists() {
        run_ok(&["run", "--quiet", "--resume", dir.to_str().unwrap()]);
    } else {
        // Not even the plan fitted: the run refused to start; start it now.
        run_ok(&args);
    }
    let journal = std::fs::read_to_string(dir.join("cases.jsonl")).unwrap();
    let ids: Vec<String> = journal
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .inspect(|c| assert_eq!(c["status"], "ok", "{c}"))
        .map(|c| c["id"].as_str().unwrap().to_string())
        .collect();
    let mut unique = ids.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(ids.len(), 3, "{journal}");
    assert_eq!(unique.len(), 3, "each case exactly once: {journal}");
    let left: Vec<_> = tree(&dir)
        .into_keys()
        .filter(|p| p.to_string_lossy().ends_with(".tmp"))
        .collect();
    assert!(left.is_empty(), "{left:?}");
}
