//! Fuzzing of every parser of outside input, on stable Rust: `arbtest`
//! drives mutations of committed seed files (suites, profiles, claims, run
//! files, a GGUF header built here) and of generated names and sizes, for
//! a fixed time budget per target. Each input must end in Ok or an exit-2
//! error — never a panic, and never an allocation past `MAX_ALLOC` (the
//! global allocator below aborts the test binary on one).
//!
//! Budget: `CAPBENCH_FUZZ_MS` per target (default 4000 ms; README, "What
//! capbench promises about bad input and failures", says how to run it
//! longer). A failure prints arbtest's seed; replay it with
//! `CAPBENCH_FUZZ_SEED=0x… cargo test -p capbench --test fuzz_parsers NAME`,
//! then add the input as a regression test beside the parser.

use std::alloc::{GlobalAlloc, Layout, System};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use arbtest::arbitrary::{Result, Unstructured};
use serde_json::Value;

/// No single allocation of a parser may exceed this: counts read from a
/// file are checked before anything is allocated from them.
const MAX_ALLOC: usize = 1 << 30;

struct Bounded;

// SAFETY: forwards to the system allocator; only refuses (by aborting)
// requests past the bound, before they are made.
unsafe impl GlobalAlloc for Bounded {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        check(l.size());
        unsafe { System.alloc(l) }
    }
    unsafe fn alloc_zeroed(&self, l: Layout) -> *mut u8 {
        check(l.size());
        unsafe { System.alloc_zeroed(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, size: usize) -> *mut u8 {
        check(size);
        unsafe { System.realloc(p, l, size) }
    }
}

fn check(size: usize) {
    if size > MAX_ALLOC {
        let msg = b"fuzz_parsers: an allocation past MAX_ALLOC (1 GiB) from fuzzed input\n";
        // SAFETY: writes a static buffer to stderr; no allocation here.
        unsafe { libc::write(2, msg.as_ptr().cast(), msg.len()) };
        std::process::abort();
    }
}

#[global_allocator]
static ALLOC: Bounded = Bounded;

fn budget_ms() -> u64 {
    std::env::var("CAPBENCH_FUZZ_MS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(4000)
}

/// Runs `prop` for the budget (or once, on a replayed seed) and reports the
/// executions.
fn fuzz(name: &str, mut prop: impl FnMut(&mut Unstructured<'_>) -> Result<()>) {
    let runs = AtomicU64::new(0);
    let t = std::time::Instant::now();
    let counted = |u: &mut Unstructured<'_>| {
        runs.fetch_add(1, Ordering::Relaxed);
        prop(u)
    };
    let seed = std::env::var("CAPBENCH_FUZZ_SEED")
        .ok()
        .and_then(|s| u64::from_str_radix(s.trim_start_matches("0x"), 16).ok());
    match seed {
        Some(s) => arbtest::arbtest(counted).seed(s).run(),
        None => arbtest::arbtest(counted).budget_ms(budget_ms()).run(),
    }
    eprintln!(
        "fuzz {name}: {} executions in {:.1} s, 0 failures",
        runs.load(Ordering::Relaxed),
        t.elapsed().as_secs_f64()
    );
}

fn repo(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(rel)
}

/// The committed files of a kind: the seed corpus.
fn seeds(dirs: &[&str], ext: &str) -> Vec<(PathBuf, String)> {
    let mut out = vec![];
    for d in dirs {
        let mut files: Vec<_> = std::fs::read_dir(repo(d))
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.to_string_lossy().ends_with(ext))
            .collect();
        files.sort();
        for p in files {
            let text = std::fs::read_to_string(&p).unwrap();
            out.push((p, text));
        }
    }
    assert!(!out.is_empty(), "no seeds in {dirs:?}");
    out
}

const NUMBERS: [&str; 12] = [
    "0",
    "-1",
    "1e20",
    "1e300",
    "-0.0",
    "0.1",
    "4611686018427387904",
    "18446744073709551616",
    "99999999999999999999999",
    "nan",
    "inf",
    "1",
];
const STRINGS: [&str; 8] = [
    "",
    "..",
    "../../x",
    "/etc/passwd",
    "\u{1b}]0;t\u{7}",
    "=HYPERLINK(\"x\")",
    "kernel/stream-17179869184G",
    "ü\u{0}",
];

/// Byte-level mutations of a seed: bit flips, random and "interesting"
/// bytes, inserts, deletes, splices, and numbers swapped for edge values.
fn mutate_bytes(u: &mut Unstructured<'_>, seed: &[u8]) -> Result<Vec<u8>> {
    let mut b = seed.to_vec();
    for _ in 0..u.int_in_range(1..=6)? {
        let at = if b.is_empty() {
            0
        } else {
            u.choose_index(b.len())?
        };
        match u.int_in_range(0..=6)? {
            0 if !b.is_empty() => b[at] ^= 1 << u.int_in_range(0..=7)?,
            1 if !b.is_empty() => b[at] = u.arbitrary()?,
            2 => {
                let n = u.int_in_range(1..=16)?;
                let ins: Vec<u8> = (0..n).map(|_| u.arbitrary()).collect::<Result<_>>()?;
                b.splice(at..at, ins);
            }
            3 if !b.is_empty() => {
                let end = (at + u.int_in_range(1..=64)?).min(b.len());
                b.drain(at..end);
            }
            4 => {
                let v: u64 = *u.choose(&[0, 1, u32::MAX as u64, u64::MAX, 1 << 40, 1 << 62])?;
                let end = (at + 8).min(b.len());
                let bytes = v.to_le_bytes();
                b.splice(at..end, bytes[..end - at].iter().copied());
            }
            5 => {
                let n = u.choose(&NUMBERS)?;
                let end = b[at..]
                    .iter()
                    .position(|c| !c.is_ascii_digit())
                    .map_or(b.len(), |i| at + i);
                b.splice(at..end, n.bytes());
            }
            _ if b.len() > 2 => {
                let from = u.choose_index(b.len())?;
                let len = u.int_in_range(1..=32)?.min(b.len() - from);
                let piece = b[from..from + len].to_vec();
                b.splice(at..at, piece);
            }
            _ => {}
        }
    }
    Ok(b)
}

/// Every JSON pointer of a document (the places structured mutation hits).
fn pointers(v: &Value, here: String, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                let p = format!("{here}/{}", k.replace('~', "~0").replace('/', "~1"));
                out.push(p.clone());
                pointers(x, p, out);
            }
        }
        Value::Array(a) => {
            for (i, x) in a.iter().enumerate().take(4) {
                let p = format!("{here}/{i}");
                out.push(p.clone());
                pointers(x, p, out);
            }
        }
        _ => {}
    }
}

/// Structured mutations of a JSON document: values swapped for edge
/// numbers and hostile strings, members removed, arrays emptied or doubled
/// — schema-shaped input that reaches past the JSON syntax check.
fn mutate_json(u: &mut Unstructured<'_>, doc: &Value, ptrs: &[String]) -> Result<Value> {
    let mut v = doc.clone();
    for _ in 0..u.int_in_range(1..=4)? {
        let p = u.choose(ptrs)?;
        let Some(x) = v.pointer_mut(p) else { continue };
        match u.int_in_range(0..=5)? {
            0 => {
                let n = u.choose(&NUMBERS)?;
                *x = serde_json::from_str(n).unwrap_or(Value::Null);
            }
            1 => *x = Value::String(u.choose(&STRINGS)?.to_string()),
            2 => *x = Value::Null,
            3 => {
                if let Value::Array(a) = x {
                    a.clear()
                } else {
                    *x = Value::Array(vec![])
                }
            }
            4 => {
                if let Value::Array(a) = x {
                    let copy = a.clone();
                    a.extend(copy);
                }
            }
            _ => {
                let (parent, key) = p.rsplit_once('/').unwrap_or(("", ""));
                if let Some(Value::Object(m)) = v.pointer_mut(parent) {
                    m.remove(&key.replace("~1", "/").replace("~0", "~"));
                }
            }
        }
    }
    Ok(v)
}

fn is_exit_2(e: &capbench::error::HarnessError, input: &str) {
    assert_eq!(e.exit_code(), 2, "{e}\n--- input:\n{input}");
}

/// Text parsers (TOML): each seed mutated, then parsed.
fn fuzz_text(
    name: &str,
    dirs: &[&str],
    parse: impl Fn(&str, &Path) -> std::result::Result<(), capbench::error::HarnessError>,
) {
    let seeds = seeds(dirs, ".toml");
    fuzz(name, |u| {
        let (path, text) = u.choose(&seeds)?;
        let input = String::from_utf8_lossy(&mutate_bytes(u, text.as_bytes())?).into_owned();
        if let Err(e) = parse(&input, path) {
            is_exit_2(&e, &input);
        }
        Ok(())
    });
}

#[test]
fn fuzz_suite_toml() {
    fuzz_text("suite TOML", &["harness/suites"], |t, p| {
        capbench::suite::parse(t, p, "fuzz").map(|_| ())
    });
}

#[test]
fn fuzz_profile_toml() {
    // Profiles are read from files (`--profile FILE.toml`).
    let tmp = tempfile::tempdir().unwrap();
    let n = AtomicU64::new(0);
    fuzz_text("profile TOML", &["harness/profiles"], |t, _| {
        let f = tmp
            .path()
            .join(format!("p{}.toml", n.fetch_add(1, Ordering::Relaxed) % 4));
        std::fs::write(&f, t).unwrap();
        capbench::profiles::load_file(&f).map(|_| ())
    });
}

#[test]
fn fuzz_claims_toml() {
    fuzz_text("claims TOML", &["claims"], |t, p| {
        capbench::claims::parse(t, p).map(|_| ())
    });
}

/// run.json: structured and byte mutations of committed runs; what reads
/// back is also summarised and compared with itself (their readers).
#[test]
fn fuzz_run_json() {
    let docs: Vec<(Value, Vec<String>)> = [
        "results/published/2026-12-02-projection-validation/large/run.json",
        "results/published/2026-12-01-speed-floors/train/run.json",
    ]
    .iter()
    .map(|p| {
        let v: Value = serde_json::from_str(&std::fs::read_to_string(repo(p)).unwrap()).unwrap();
        let mut ptrs = vec![];
        pointers(&v, String::new(), &mut ptrs);
        (v, ptrs)
    })
    .collect();
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("run.json");
    let opts = capbench::analysis::compare::CompareOptions {
        threshold: 0.05,
        allow_machine_mismatch: true,
        calibration: None,
    };
    fuzz("run.json", |u| {
        let (doc, ptrs) = u.choose(&docs)?;
        let text = if u.ratio(1u8, 8)? {
            String::from_utf8_lossy(&mutate_bytes(u, doc.to_string().as_bytes())?).into_owned()
        } else {
            mutate_json(u, doc, ptrs)?.to_string()
        };
        std::fs::write(&path, &text).unwrap();
        match capbench::results::io::read_run_file(&path) {
            Ok(run) => {
                let _ = capbench::report::table::summary(&run);
                let _ = capbench::analysis::compare::compare_runs(&run, &run, &opts);
            }
            Err(e) => is_exit_2(&e, &text),
        }
        Ok(())
    });
}

/// cases.jsonl: lines of a committed journal mutated (structure and
/// bytes), read as `--resume` reads them.
#[test]
fn fuzz_cases_jsonl() {
    let text = std::fs::read_to_string(repo(
        "results/published/2026-12-02-projection-validation/large/cases.jsonl",
    ))
    .unwrap();
    let lines: Vec<(Value, Vec<String>)> = text
        .lines()
        .take(6)
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap();
            let mut ptrs = vec![];
            pointers(&v, String::new(), &mut ptrs);
            (v, ptrs)
        })
        .collect();
    let tmp = tempfile::tempdir().unwrap();
    fuzz("cases.jsonl", |u| {
        let mut out = String::new();
        for _ in 0..u.int_in_range(1..=3)? {
            let (doc, ptrs) = u.choose(&lines)?;
            out.push_str(&mutate_json(u, doc, ptrs)?.to_string());
            out.push('\n');
        }
        if u.ratio(1u8, 4)? {
            out = String::from_utf8_lossy(&mutate_bytes(u, out.as_bytes())?).into_owned();
        }
        std::fs::write(tmp.path().join("cases.jsonl"), &out).unwrap();
        if let Err(e) = capbench::results::io::read_journal(tmp.path()) {
            is_exit_2(&e, &out);
        }
        Ok(())
    });
}

/// GGUF header and tensor table: a small model exported here (no model
/// file is committed), its bytes mutated — counts, offsets, lengths,
/// types — and opened as `run --model` does before any worker starts.
#[test]
fn fuzz_gguf_header() {
    use capbench_workloads::models::{config, gguf};
    let mut cfg = config::shape("dense-tiny").unwrap();
    cfg.vocab = 16;
    cfg.d_model = 32;
    cfg.ffn = 32;
    cfg.n_layers = 1;
    cfg.n_heads = 2;
    cfg.n_kv_heads = 1;
    cfg.head_dim = 16;
    let tmp = tempfile::tempdir().unwrap();
    let seed_path = tmp.path().join("seed.gguf");
    gguf::export(
        &cfg,
        1,
        capbench_workloads::spec::WeightFmt::Q8_0,
        &seed_path,
    )
    .unwrap();
    let seed = std::fs::read(&seed_path).unwrap();
    gguf::GgufFile::open(&seed_path).unwrap();
    let path = tmp.path().join("fuzz.gguf");
    fuzz("GGUF", |u| {
        // Most interesting bytes are in the header: mutate it more often.
        let head = seed.len().min(2048);
        let mut b = mutate_bytes(u, &seed[..head])?;
        b.extend_from_slice(&seed[head..]);
        std::fs::write(&path, &b).unwrap();
        if let Err(e) = gguf::GgufFile::open(&path) {
            assert!(
                !e.fix.is_empty() && e.path == path.display().to_string(),
                "{e}"
            );
        }
        Ok(())
    });
}

/// Workload names, sizes, CPU lists and the bounded flags: generated from
/// valid forms with edge numbers spliced in; what parses must have sizes
/// computable without overflow.
#[test]
fn fuzz_names_and_sizes() {
    let names = [
        "kernel/gemm-f32-256",
        "kernel/gemm-bf16-64x32x16-tiled",
        "kernel/stream-4M",
        "kernel/attention-512",
        "train-step/dense-tiny/f32/b2t64",
        "train-quality/moe-mla-tiny/bf16/s10b2t32",
        "decode/dense-small/q4_0/p64g32b2d128",
        "prefill/openelm-tiny/f16/p128b1",
        "fault/slow-250ms",
    ];
    let sizes = ["8GiB", "512 MiB", "16GB", "1.5GiB", "1048576", "2K"];
    fuzz("names and sizes", |u| {
        let seed = u.choose(&names)?;
        let name = String::from_utf8_lossy(&mutate_bytes(u, seed.as_bytes())?).into_owned();
        if let Ok(spec) = capbench_workloads::WorkloadSpec::parse(&name) {
            assert!(spec.flops_per_iter().is_finite(), "{name}");
            assert!(spec.bytes_per_iter().is_finite(), "{name}");
            let _ = spec.memory_need_bytes();
        }
        let size_seed = *u.choose(&sizes)?;
        let size = String::from_utf8_lossy(&mutate_bytes(u, size_seed.as_bytes())?).into_owned();
        if let Ok(b) = capbench::caps::size::parse_bytes(&size) {
            assert!(b > 0, "{size}");
        }
        let cpus = String::from_utf8_lossy(&mutate_bytes(u, b"0-1,4")?).into_owned();
        if let Ok(v) = capbench::caps::cpu::parse_cpu_list(&cpus) {
            let _ = capbench::caps::cpu::format_cpu_list(&v);
        }
        use capbench::limits;
        let n = u.choose(&NUMBERS)?;
        let _ = limits::parse_repeat(n);
        let _ = limits::parse_case_timeout(n);
        let _ = limits::parse_calibrate_runs(n);
        Ok(())
    });
}
