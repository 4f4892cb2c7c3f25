//! One process per case: panics, aborts, allocation failures, hangs, wrong
//! answers and a SIGKILLed parent are each recorded, and nothing else is lost.

mod common;

use std::time::{Duration, Instant};

use common::*;

fn fault_suite(dir: &std::path::Path, workloads: &[&str]) -> std::path::PathBuf {
    let list: Vec<String> = workloads.iter().map(|w| format!("\"{w}\"")).collect();
    let path = dir.join("faults.toml");
    write(
        &path,
        &format!(
            "name = \"faults\"\nworkloads = [{}]\nbackends = [\"cpu\"]\n[sampling]\nrepeat = 2\nmin_samples = 5\nmax_time_s = 0.05\n",
            list.join(", ")
        ),
    );
    path
}

#[test]
fn each_failure_is_recorded_with_its_status_and_the_run_goes_on() {
    let tmp = tempfile::tempdir().unwrap();
    let suite = fault_suite(
        tmp.path(),
        &[
            "fault/panic",
            "fault/abort",
            "fault/oom",
            "fault/hang",
            "fault/wrong",
            "fault/slow-10ms",
        ],
    );
    let dir = tmp.path().join("run");
    let out = capbench()
        .args([
            "run",
            "--suite",
            suite.to_str().unwrap(),
            "--case-timeout",
            "3",
            "--out",
        ])
        .arg(&dir)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(1),
        "non-ok cases give exit 1: {}",
        stderr(&out)
    );
    let run = read_json(&dir.join("run.json"));
    let case = |name: &str| {
        run["cases"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["workload"]["name"] == name)
            .unwrap_or_else(|| panic!("{name} not recorded"))
            .clone()
    };

    let panic = case("fault/panic");
    assert_eq!(panic["status"], "crashed");
    assert_eq!(panic["processes"][0]["exit"]["code"], 101);
    assert!(
        panic["status_detail"]
            .as_str()
            .unwrap()
            .contains("deliberate panic"),
        "{}",
        panic["status_detail"]
    );

    let abort = case("fault/abort");
    assert_eq!(abort["status"], "crashed");
    assert_eq!(abort["processes"][0]["exit"]["signal_name"], "SIGABRT");
    let tail = abort["processes"][0]["exit"]["stderr_tail"].to_string();
    assert!(tail.contains("aborting deliberately"), "{tail}");

    let oom = case("fault/oom");
    assert_eq!(oom["status"], "oom");
    assert_eq!(oom["processes"][0]["oom_requested_bytes"], 1u64 << 62);

    let hang = case("fault/hang");
    assert_eq!(hang["status"], "timeout");
    let elapsed = hang["processes"][0]["exit"]["elapsed_s"].as_f64().unwrap();
    assert!((3.0..10.0).contains(&elapsed), "{elapsed}");
    // A deterministic failure is not repeated.
    assert_eq!(hang["processes"].as_array().unwrap().len(), 1);

    let wrong = case("fault/wrong");
    assert_eq!(wrong["status"], "failed_verification");
    assert_eq!(wrong["verification"]["passed"], false);
    assert!(wrong["verification"]["max_abs_diff"].as_f64().unwrap() > 0.0);
    assert!(
        wrong["headline"].is_null(),
        "no timing after a failed check"
    );

    let slow = case("fault/slow-10ms");
    assert_eq!(slow["status"], "ok");
    assert_eq!(slow["processes"].as_array().unwrap().len(), 2);

    assert_eq!(run["totals"]["cases"], 6);
    let journal = std::fs::read_to_string(dir.join("cases.jsonl")).unwrap();
    assert_eq!(journal.lines().count(), 6);
}

#[test]
fn sigkill_of_the_parent_then_resume_loses_no_finished_case() {
    let tmp = tempfile::tempdir().unwrap();
    let names: Vec<String> = (0..6)
        .map(|i| format!("fault/slow-{}ms", 400 + i))
        .collect();
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let suite = fault_suite(tmp.path(), &refs);
    let dir = tmp.path().join("run");
    let mut parent = capbench()
        .args(suite_run(&suite, &dir))
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let journal = dir.join("cases.jsonl");
    let t = Instant::now();
    loop {
        let n = std::fs::read_to_string(&journal)
            .map(|s| s.matches('\n').count())
            .unwrap_or(0);
        if n >= 2 {
            break;
        }
        assert!(
            t.elapsed() < Duration::from_secs(60),
            "run made no progress"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    parent.kill().unwrap(); // SIGKILL
    parent.wait().unwrap();
    let before = std::fs::read_to_string(&journal).unwrap();
    let complete_before = &before[..before.rfind('\n').unwrap() + 1];
    let finished_before = complete_before.lines().count();
    assert!((2..6).contains(&finished_before), "{finished_before}");
    assert!(!dir.join("run.json").exists());

    let out = run_ok(&["run", "--quiet", "--resume", dir.to_str().unwrap()]);
    let msg = stderr(&out);
    assert!(
        msg.contains(&format!(
            "{} cases run now, 6 in total",
            6 - finished_before
        )),
        "{msg}"
    );
    let after = std::fs::read_to_string(&journal).unwrap();
    assert!(
        after.starts_with(complete_before),
        "finished cases must be kept byte for byte"
    );
    let run = read_json(&dir.join("run.json"));
    let cases = run["cases"].as_array().unwrap();
    assert_eq!(cases.len(), 6);
    let mut ids: Vec<&str> = cases.iter().map(|c| c["id"].as_str().unwrap()).collect();
    ids.dedup();
    assert_eq!(ids.len(), 6, "no case recorded twice");
    assert!(cases.iter().all(|c| c["status"] == "ok"));
}

#[test]
fn a_torn_last_line_is_dropped_and_rerun_on_resume() {
    let tmp = tempfile::tempdir().unwrap();
    let suite = fault_suite(tmp.path(), &["fault/slow-1ms", "fault/slow-2ms"]);
    let dir = tmp.path().join("run");
    run_ok(&suite_run(&suite, &dir));
    let journal = dir.join("cases.jsonl");
    let text = std::fs::read_to_string(&journal).unwrap();
    let first_end = text.find('\n').unwrap() + 1;
    // Simulate a crash mid-write of the second line.
    write(&journal, &text[..first_end + 40]);
    std::fs::remove_file(dir.join("run.json")).unwrap();
    run_ok(&["run", "--quiet", "--resume", dir.to_str().unwrap()]);
    let after = std::fs::read_to_string(&journal).unwrap();
    assert!(after.starts_with(&text[..first_end]));
    assert_eq!(after.lines().count(), 2);
    for line in after.lines() {
        serde_json::from_str::<serde_json::Value>(line).expect("every line complete");
    }
}
