//! Runs one worker process with a timeout and turns however it ended
//! (result file, panic, abort, allocation failure, signal, timeout) into a
//! `ProcessRecord`.

use std::collections::VecDeque;
use std::ffi::OsString;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::caps::{alloc, rss};
use crate::format::human_bytes;
use crate::results::{ExitInfo, ProcessRecord, Status, WorkerOutput};

/// Lines of worker stderr kept for the record: the first ones (panic and
/// allocation-failure messages come first, before any backtrace) and the last.
const STDERR_HEAD_LINES: usize = 12;
const STDERR_TAIL_LINES: usize = 20;
const STDERR_LINE_MAX: usize = 400;

pub struct SpawnSpec<'a> {
    /// Program and leading arguments: `capbench worker`, or an external
    /// backend's command; `--job J --result R` follow.
    pub command: &'a [OsString],
    pub job_path: PathBuf,
    pub result_path: PathBuf,
    /// RAYON_NUM_THREADS for the worker (its rayon pool and candle's kernels).
    pub threads: Option<usize>,
    pub timeout: Duration,
    pub index: usize,
    /// An external backend's worker (docs/worker-protocol.md).
    pub external: Option<ExternalSpawn<'a>>,
}

/// What the parent does for an external worker that capbench's own worker
/// does for itself: its caps, and the checks on its result.
pub struct ExternalSpawn<'a> {
    pub spec: &'a capbench_workloads::WorkloadSpec,
    pub caps: &'a crate::results::CapsRecord,
    pub tolerance: (f64, bool),
}

/// Threads a worker's pool gets: `--threads`, else one per `--cpus` CPU
/// (so candle does not size its kernels for CPUs the worker cannot use),
/// else the worker's default.
pub fn pool_threads(caps: &crate::results::CapsRecord) -> Option<usize> {
    caps.threads.or_else(|| {
        caps.cpus
            .as_deref()
            .and_then(|c| crate::caps::cpu::parse_cpu_list(c).ok())
            .map(|v| v.len())
    })
}

/// Spawns the worker, waits up to the timeout, and classifies the end.
pub fn run_process(spec: &SpawnSpec<'_>) -> ProcessRecord {
    let _ = std::fs::remove_file(&spec.result_path);
    let mut cmd = Command::new(&spec.command[0]);
    cmd.args(&spec.command[1..])
        .arg("--job")
        .arg(&spec.job_path)
        .arg("--result")
        .arg(&spec.result_path)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    if let Some(t) = spec.threads {
        // candle's f32/f16 kernels and rayon read this.
        cmd.env("RAYON_NUM_THREADS", t.to_string());
    }
    // candle's spin-barrier pool (its quantized matmul) stays on the calling
    // thread; capbench parallelises quantized weights by row blocks on
    // rayon instead (see `Lin::QuantRows`): on shared vCPUs the spinning
    // pool halved decode speed.
    cmd.env("CANDLE_NUM_THREADS", "1");
    let mut mem_cap = None;
    if let Some(x) = &spec.external {
        if let Some(t) = spec.threads {
            // The pools of PyTorch (OpenMP, MKL) and of Rust programs.
            for var in ["OMP_NUM_THREADS", "MKL_NUM_THREADS"] {
                cmd.env(var, t.to_string());
            }
        }
        if let Some(cpus) = x
            .caps
            .cpus
            .as_deref()
            .and_then(|c| crate::caps::cpu::parse_cpu_list(c).ok())
        {
            super::external::pin_child(&mut cmd, &cpus);
        }
        mem_cap = x.caps.mem_cap_bytes;
    }
    let cpu_before = children_cpu_s();
    let started = Instant::now();
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => {
            return record(
                spec.index,
                match spec.external {
                    Some(_) => Status::Error,
                    None => Status::HarnessError,
                },
                format!(
                    "could not start worker {}: {e}",
                    spec.command[0].to_string_lossy()
                ),
                ExitInfo::default(),
            );
        }
    };
    let kept = Arc::new(Mutex::new(StderrKeep::default()));
    let reader = child.stderr.take().map(|stderr| {
        let kept = Arc::clone(&kept);
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                kept.lock().expect("stderr lock").push(line);
            }
        })
    });

    let mut timed_out = false;
    // External workers: resident set (now, peak) read from outside, and
    // the size that passed the memory cap.
    let mut rss_peak = None;
    let mut over_cap = None;
    let status = loop {
        if spec.external.is_some()
            && let Some((now, peak)) = super::external::rss_of(child.id())
        {
            rss_peak = Some(peak);
            if let Some(cap) = mem_cap
                && now > cap
            {
                over_cap = Some((now, cap));
                let _ = child.kill();
                break child.wait().ok();
            }
        }
        match child.try_wait() {
            Ok(Some(s)) => break Some(s),
            Ok(None) if started.elapsed() >= spec.timeout => {
                timed_out = true;
                let _ = child.kill();
                break child.wait().ok();
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(10)),
            Err(_) => break None,
        }
    };
    let elapsed_s = started.elapsed().as_secs_f64();
    if let Some(r) = reader {
        let _ = r.join();
    }
    let stderr_tail = kept.lock().expect("stderr lock").lines();
    let exit = exit_info(status, elapsed_s, stderr_tail);

    if timed_out {
        return record(
            spec.index,
            Status::Timeout,
            format!(
                "killed after {elapsed_s:.1} s (--case-timeout {} s)",
                spec.timeout.as_secs_f64()
            ),
            exit,
        );
    }
    if let Some((rss, cap)) = over_cap {
        let mut r = record(
            spec.index,
            Status::Oom,
            format!(
                "memory cap: the worker's resident set reached {}, more than the cap of {} (read by capbench every 10 ms; killed)",
                human_bytes(rss),
                human_bytes(cap)
            ),
            exit,
        );
        r.oom_in_use_bytes = Some(rss);
        r.oom_cap_bytes = Some(cap);
        return r;
    }
    let mut r = classify(
        spec.index,
        status,
        exit,
        &spec.result_path,
        spec.external.as_ref(),
    );
    if let (Some(x), Some(w)) = (&spec.external, r.worker.as_mut()) {
        let mut caps = super::external::applied_caps(x.caps, spec.threads);
        if spec.threads.is_none() {
            caps.threads_pool = w.threads_used;
        }
        w.caps_applied = Some(caps);
        w.usage.peak_rss_bytes = rss_peak;
        if let (Some(a), Some(b)) = (cpu_before, children_cpu_s()) {
            w.usage.cpu_user_s = Some(b.0 - a.0);
            w.usage.cpu_sys_s = Some(b.1 - a.1);
        }
    }
    r
}

/// CPU time (user, system) of the children this process has waited for:
/// the difference around one worker is that worker's (runs are sequential).
#[cfg(unix)]
fn children_cpu_s() -> Option<(f64, f64)> {
    // SAFETY: getrusage only writes into the zeroed struct we pass.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    if unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut ru) } != 0 {
        return None;
    }
    let secs = |tv: libc::timeval| tv.tv_sec as f64 + tv.tv_usec as f64 * 1e-6;
    Some((secs(ru.ru_utime), secs(ru.ru_stime)))
}

#[cfg(not(unix))]
fn children_cpu_s() -> Option<(f64, f64)> {
    None
}

/// First and last lines of a stream, with a marker for what was skipped.
#[derive(Default)]
struct StderrKeep {
    head: Vec<String>,
    tail: VecDeque<String>,
    skipped: usize,
}

impl StderrKeep {
    fn push(&mut self, line: String) {
        let line: String = line.chars().take(STDERR_LINE_MAX).collect();
        if self.head.len() < STDERR_HEAD_LINES {
            self.head.push(line);
            return;
        }
        if self.tail.len() == STDERR_TAIL_LINES {
            self.tail.pop_front();
            self.skipped += 1;
        }
        self.tail.push_back(line);
    }

    fn lines(&self) -> Vec<String> {
        let mut v = self.head.clone();
        if self.skipped > 0 {
            v.push(format!("… {} lines omitted …", self.skipped));
        }
        v.extend(self.tail.iter().cloned());
        v
    }
}

/// A process's record with no OOM figures and no worker report: one that
/// failed to start or ended without a result (also the runner's record of a
/// case that could not start at all).
pub(super) fn record(
    index: usize,
    status: Status,
    detail: String,
    exit: ExitInfo,
) -> ProcessRecord {
    ProcessRecord {
        index,
        status,
        status_detail: detail,
        exit,
        oom_requested_bytes: None,
        oom_in_use_bytes: None,
        oom_cap_bytes: None,
        oom_peak_bytes: None,
        worker: None,
    }
}

#[cfg(unix)]
fn signal_of(s: &ExitStatus) -> Option<i32> {
    use std::os::unix::process::ExitStatusExt;
    s.signal()
}

#[cfg(not(unix))]
fn signal_of(_: &ExitStatus) -> Option<i32> {
    None
}

fn signal_name(sig: i32) -> String {
    match sig {
        1 => "SIGHUP".into(),
        2 => "SIGINT".into(),
        4 => "SIGILL".into(),
        6 => "SIGABRT".into(),
        7 => "SIGBUS".into(),
        8 => "SIGFPE".into(),
        9 => "SIGKILL".into(),
        11 => "SIGSEGV".into(),
        15 => "SIGTERM".into(),
        n => format!("signal {n}"),
    }
}

fn exit_info(status: Option<ExitStatus>, elapsed_s: f64, stderr_tail: Vec<String>) -> ExitInfo {
    let signal = status.as_ref().and_then(signal_of);
    ExitInfo {
        code: status.and_then(|s| s.code()),
        signal,
        signal_name: signal.map(signal_name),
        elapsed_s,
        stderr_tail,
    }
}

/// Rust's allocation-failure message: "memory allocation of N bytes failed".
pub fn parse_alloc_failure(lines: &[String]) -> Option<u64> {
    lines.iter().rev().find_map(|l| {
        let rest = l.split("memory allocation of ").nth(1)?;
        rest.split(" bytes failed").next()?.trim().parse().ok()
    })
}

fn panic_message(lines: &[String]) -> Option<String> {
    let i = lines.iter().position(|l| l.contains("panicked at"))?;
    let mut msg = lines[i].clone();
    if let Some(next) = lines.get(i + 1) {
        msg.push_str(": ");
        msg.push_str(next);
    }
    Some(msg)
}

fn classify(
    index: usize,
    status: Option<ExitStatus>,
    exit: ExitInfo,
    result: &Path,
    external: Option<&ExternalSpawn<'_>>,
) -> ProcessRecord {
    let Some(status) = status else {
        return record(
            index,
            Status::Crashed,
            "lost track of the worker process".into(),
            exit,
        );
    };
    // capbench's own files failed the worker (disk full, I/O error): not
    // the workload's doing, so the case is run again on --resume.
    if !status.success()
        && let Some(line) = exit
            .stderr_tail
            .iter()
            .find(|l| l.starts_with(crate::worker::HARNESS_ERROR_MARK))
    {
        let detail = line[crate::worker::HARNESS_ERROR_MARK.len()..]
            .trim()
            .to_string();
        return record(index, Status::HarnessError, detail, exit);
    }
    // The memory cap's own lines come first: they carry the numbers.
    if !status.success()
        && let Some((requested, in_use, cap, peak)) = alloc::parse_refusal(&exit.stderr_tail)
    {
        let mut r = record(
            index,
            Status::Oom,
            format!(
                "memory cap: an allocation of {} with {} in use would pass the cap of {} (peak {})",
                human_bytes(requested),
                human_bytes(in_use),
                human_bytes(cap),
                human_bytes(peak)
            ),
            exit,
        );
        r.oom_requested_bytes = Some(requested);
        r.oom_in_use_bytes = Some(in_use);
        r.oom_cap_bytes = Some(cap);
        r.oom_peak_bytes = Some(peak);
        return r;
    }
    if !status.success()
        && let Some((rss, cap, baseline)) = rss::parse_rss_line(&exit.stderr_tail)
    {
        let mut r = record(
            index,
            Status::Oom,
            format!(
                "memory cap: the resident set reached {}, more than the cap of {} over the {} resident at start (memory the allocator does not count: mapped files, stacks, drivers)",
                human_bytes(rss),
                human_bytes(cap),
                human_bytes(baseline)
            ),
            exit,
        );
        r.oom_in_use_bytes = Some(rss);
        r.oom_cap_bytes = Some(cap);
        return r;
    }
    if let Some(bytes) = parse_alloc_failure(&exit.stderr_tail) {
        let mut r = record(
            index,
            Status::Oom,
            format!("allocation of {bytes} bytes failed"),
            exit,
        );
        r.oom_requested_bytes = Some(bytes);
        return r;
    }
    if status.success()
        && let Some(x) = external
    {
        let read = std::fs::read_to_string(result)
            .map_err(|e| format!("no readable result file ({e})"))
            .and_then(|t| super::external::read_output(&t, x.spec, x.tolerance));
        return match read {
            Ok(w) => ProcessRecord {
                index,
                status: w.status,
                status_detail: w.status_detail.clone(),
                exit,
                oom_requested_bytes: None,
                oom_in_use_bytes: None,
                oom_cap_bytes: None,
                oom_peak_bytes: None,
                worker: Some(w),
            },
            // Another program's answer: its own fault, not capbench's I/O.
            Err(e) => record(
                index,
                Status::Error,
                format!(
                    "the worker exited 0 but its result breaks the worker protocol: {e} (docs/worker-protocol.md)"
                ),
                exit,
            ),
        };
    }
    if status.success() {
        return match std::fs::read_to_string(result)
            .map_err(|e| e.to_string())
            .and_then(|t| serde_json::from_str::<WorkerOutput>(&t).map_err(|e| e.to_string()))
        {
            Ok(w) => ProcessRecord {
                index,
                status: w.status,
                status_detail: w.status_detail.clone(),
                exit,
                oom_requested_bytes: w.oom.as_ref().map(|o| o.requested_bytes),
                oom_in_use_bytes: w.oom.as_ref().map(|o| o.in_use_bytes),
                oom_cap_bytes: w.oom.as_ref().map(|o| o.cap_bytes),
                oom_peak_bytes: None,
                worker: Some(w),
            },
            // The worker wrote its result and said so: a missing or torn
            // file is the harness's own I/O failing.
            Err(e) => record(
                index,
                Status::HarnessError,
                format!("worker exited 0 without a readable result: {e}"),
                exit,
            ),
        };
    }
    let detail = match (exit.signal, exit.code) {
        (Some(9), _) => "killed by SIGKILL (the kernel's OOM killer does this too)".to_string(),
        (Some(6), _) => match panic_message(&exit.stderr_tail) {
            Some(p) => format!("aborted (SIGABRT) after {p}"),
            None => "aborted (SIGABRT)".to_string(),
        },
        (Some(s), _) => format!("killed by {}", signal_name(s)),
        (None, Some(101)) => match panic_message(&exit.stderr_tail) {
            Some(p) => format!("panicked: {p}"),
            None => "panicked (exit code 101)".to_string(),
        },
        (None, Some(c)) => match external.and_then(|_| exit.stderr_tail.last()) {
            // An external worker's last word (a Python exception's line).
            Some(last) => format!("exited with code {c}: {last}"),
            None => format!("exited with code {c}"),
        },
        (None, None) => "ended without exit code or signal".to_string(),
    };
    record(index, Status::Crashed, detail, exit)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stderr_keeps_head_and_tail() {
        let mut k = StderrKeep::default();
        for i in 0..100 {
            k.push(format!("l{i}"));
        }
        let v = k.lines();
        assert_eq!(v.len(), STDERR_HEAD_LINES + 1 + STDERR_TAIL_LINES);
        assert_eq!(v[0], "l0");
        assert_eq!(v[STDERR_HEAD_LINES], "… 68 lines omitted …");
        assert_eq!(v.last().unwrap(), "l99");
    }

    #[test]
    fn alloc_failure_message_is_parsed() {
        let lines = vec![
            "noise".to_string(),
            "memory allocation of 70368744177664 bytes failed".to_string(),
        ];
        assert_eq!(parse_alloc_failure(&lines), Some(70368744177664));
        assert_eq!(parse_alloc_failure(&["all fine".to_string()]), None);
    }

    #[test]
    fn panic_message_takes_the_next_line() {
        let lines = vec![
            "thread 'main' panicked at src/x.rs:1:1:".to_string(),
            "boom".to_string(),
        ];
        assert_eq!(
            panic_message(&lines).unwrap(),
            "thread 'main' panicked at src/x.rs:1:1:: boom"
        );
    }
}
