//! Command-line definitions (clap derive). Parsing only; `main` dispatches.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::limits;

mod ab;
mod history;
pub use ab::AbArgs;
pub use history::*;

/// capbench: fixed, versioned ML workloads on CPU, CUDA, Metal and wgpu,
/// measured honestly — verified against a CPU reference before timing, one
/// process per case, medians with confidence intervals, raw samples kept.
#[derive(Debug, Parser)]
#[command(name = "capbench", version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// List workloads, backends (compiled in / usable here), energy sources
    /// (readable here, or why not), profiles or suites.
    List(ListArgs),
    /// Run a suite: one worker process per case, results in a run folder.
    ///
    /// With no flags: the `quick` suite on every usable backend, written to a
    /// fresh folder under results/local/. Exit code 0 when every case is ok,
    /// 1 when any case crashed, timed out, ran out of memory or failed
    /// verification (all still recorded), 2 on bad input.
    Run(RunArgs),
    /// Print the summary table of a finished run folder (or run.json).
    Show(ShowArgs),
    /// Compare two runs (or a baseline and a run): ratios with 95% CIs and
    /// a verdict per case. Exit 1 if any case regressed beyond the threshold
    /// with confidence, 0 otherwise, 2 on bad input.
    Compare(CompareArgs),
    /// Turn run folders into figures and reports: plots (SVG + PNG) of
    /// throughput with 95% CIs, latency percentiles, energy, quality vs
    /// throughput, training loss, decode under memory caps and the roofline —
    /// each drawn only when the runs hold its data — plus index.html (one
    /// self-contained page), report.md, cases.csv and report.json.
    ///
    /// Exit code 0 when written, 2 when a run folder is missing or damaged.
    Report(ReportArgs),
    /// Measure this machine's A/A noise per case (the same suite run K
    /// times) so `compare` adapts its threshold to each case's noise.
    Calibrate(CalibrateArgs),
    /// Measure this machine's ceilings: STREAM triad bandwidth and peak GEMM
    /// FLOP/s per dtype (f32, f16, bf16) on each backend — the `probe` suite,
    /// stored as a run whose `ceilings` other runs of the machine borrow
    /// (`report` and `check` do, when given the probe's folder).
    ///
    /// Exit code 0 when every case is ok, 1 otherwise, 2 on bad input.
    Probe(ProbeArgs),
    /// Judge the claims of a claims file (TOML) against measured results:
    /// per claim `supported (measured)`, `supported (projected)`,
    /// `refuted (measured)`, `refuted (projected)` or `cannot tell`, with the
    /// evidence table, the assumptions, and why it cannot tell.
    ///
    /// Exit code 0 when every claim is supported, 1 when any is refuted or
    /// cannot be told, 2 on bad input (naming the claim and field).
    Check(CheckArgs),
    /// Join run folders from several machines into one folder (runs kept
    /// byte for byte under runs/<machine_id>/<run_id>/, indexed by
    /// merged.json); `report`, `show` and `check` read it like a run folder.
    Merge(MergeArgs),
    /// Save and list baselines for the regression gate.
    #[command(subcommand)]
    Baseline(BaselineCommand),
    /// Interleaved A/B of two builds (binaries or git revisions): worker
    /// processes alternate in pairs, compared pair by pair so drift cancels.
    /// Exit 1 if any case regressed beyond the threshold, 2 on bad input.
    Ab(AbArgs),
    /// The run history: add, list, prune, analyze (change points).
    #[command(subcommand)]
    History(HistoryCommand),
    /// Write a synthetic dense model as a GGUF file (llama.cpp tensor names
    /// and `llama.*` metadata), so other tools run the exact same weights;
    /// `capbench run --model FILE.gguf` decodes it (or any llama-family GGUF).
    ExportGguf(ExportGgufArgs),
    /// Run exactly one case-process (used by `run`; not for direct use).
    #[command(hide = true)]
    Worker(WorkerArgs),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ListWhat {
    Workloads,
    Backends,
    /// Energy sources (RAPL, NVML, IOReport, models) and why any is unavailable.
    Energy,
    Profiles,
    Suites,
}

#[derive(Debug, Args)]
pub struct ListArgs {
    /// What to list.
    pub what: ListWhat,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Also list the harness's own test workloads (fault/*).
    #[arg(long)]
    pub all: bool,
}

/// What to run: the flags `run` and `calibrate` share.
#[derive(Debug, Args, Default)]
pub struct PlanArgs {
    /// Built-in suite name (see `capbench list suites`) or a suite TOML file.
    #[arg(long, value_name = "NAME|FILE.toml")]
    pub suite: Option<String>,

    /// Backends, comma-separated: cpu, cuda[:N], metal[:N], wgpu,
    /// wgpu:vulkan|metal|dx12|gl, wgpu:N, llamacpp[:cuda|vulkan|metal]
    /// (built with --features llamacpp), torch or a suite's [backend.NAME].
    /// Default: every usable backend of capbench's own engines.
    #[arg(long, value_name = "LIST", value_delimiter = ',')]
    pub backend: Option<Vec<String>>,

    /// Only workloads whose name matches one of these globs (comma-separated),
    /// e.g. 'kernel/gemm-f32-*'. Without --suite, an exact name the quick
    /// suite lacks is run as given (e.g. decode/llama-2-7b/q4_0).
    #[arg(long, value_name = "GLOB", value_delimiter = ',')]
    pub workload: Vec<String>,

    /// CPU threads for candle/rayon in each worker. Default: candle's choice
    /// (physical cores).
    #[arg(long, value_name = "N", value_parser = limits::parse_threads)]
    pub threads: Option<usize>,

    /// Kill a worker process after this many seconds and record `timeout`.
    /// Default: the suite's case_timeout_s, else 600. At most a week.
    #[arg(long, value_name = "SECS", value_parser = limits::parse_case_timeout)]
    pub case_timeout: Option<f64>,

    /// Worker processes per case (the between-process CI needs ≥ 2).
    /// Default: the suite's sampling.repeat (quick: 3). At most 1000.
    #[arg(long, value_name = "K", value_parser = limits::parse_repeat)]
    pub repeat: Option<usize>,

    /// Train `train-quality/*` workloads on this UTF-8 text (byte-level
    /// tokens, last 10% held out) instead of the synthetic corpus.
    #[arg(long, value_name = "FILE")]
    pub corpus: Option<PathBuf>,

    /// Decode on this llama-family GGUF file: plans `decode/gguf/<format as
    /// stored>` and `prefill/gguf/<format>` (with no --suite, only those),
    /// verified against the file's weights dequantized to f32 on the CPU.
    /// The file is checked first: a damaged or unsupported one exits 2.
    #[arg(long, value_name = "FILE.gguf")]
    pub model: Option<PathBuf>,

    /// Host memory caps, comma-separated (8GiB, 512MiB, 16GB): one case per
    /// cap. Enforced in each worker by a counting allocator with a hard
    /// limit plus a resident-set watch; passing it records status `oom` with
    /// the requested bytes, bytes in use and the cap.
    #[arg(long, value_name = "SIZE[,SIZE…]", value_delimiter = ',')]
    pub mem_cap: Vec<String>,

    /// Device memory caps for GPU backends, comma-separated: one case per
    /// cap. wgpu: every buffer capbench's engine creates is counted against
    /// it. Not applied on CUDA/Metal in this build (the record says so).
    #[arg(long, value_name = "SIZE[,SIZE…]", value_delimiter = ',')]
    pub device_mem_cap: Vec<String>,

    /// Pin each worker to these CPUs (Linux CPU list, e.g. 0 or 0-1,4);
    /// without --threads the worker's pool gets one thread per CPU.
    #[arg(long, value_name = "LIST")]
    pub cpus: Option<String>,

    /// Request the wgpu device with reduced limits, as an older GPU offers:
    /// downlevel, webgl2, default, or a TOML file of wgpu limit names over
    /// `default` (e.g. max_storage_buffer_binding_size = 134217728).
    #[arg(long, value_name = "TIER|FILE")]
    pub wgpu_limits: Option<String>,

    /// NVIDIA (cuda backend, `nvml` feature): set the board power limit to
    /// WATTS through NVML in the worker before the workload is prepared,
    /// restored afterwards. Needs root; where it cannot be set (permission,
    /// not supported, no nvml, not cuda) the case records `not applied:
    /// <reason>` and runs on uncapped.
    #[arg(long, value_name = "WATTS")]
    pub power_limit: Option<f64>,

    /// NVIDIA (cuda backend, `nvml` feature): lock the GPU clock to MIN[:MAX]
    /// MHz through NVML for the case, reset afterwards; recorded as
    /// requested, applied or `not applied: <reason>`, and the clock observed.
    #[arg(long, value_name = "MIN[:MAX]")]
    pub lock_clocks: Option<String>,

    /// Run every case under each hardware profile's caps (comma-separated
    /// names from `capbench list profiles`, or profile .toml files): memory
    /// budget, threads, wgpu tier. Each case then reports whether the
    /// workload fits, with its predicted memory need.
    #[arg(long, value_name = "NAME[,NAME…]", value_delimiter = ',')]
    pub profile: Vec<String>,
}

impl PlanArgs {
    pub fn any_set(&self) -> bool {
        self.suite.is_some()
            || self.backend.is_some()
            || !self.workload.is_empty()
            || self.threads.is_some()
            || self.case_timeout.is_some()
            || self.repeat.is_some()
            || self.corpus.is_some()
            || self.model.is_some()
            || !self.mem_cap.is_empty()
            || !self.device_mem_cap.is_empty()
            || self.cpus.is_some()
            || self.wgpu_limits.is_some()
            || self.power_limit.is_some()
            || self.lock_clocks.is_some()
            || !self.profile.is_empty()
    }
}

#[derive(Debug, Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub plan: PlanArgs,

    /// Run folder to write (must not hold a run). Default: a fresh folder
    /// under results/local/.
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,

    /// Continue an interrupted run: run only the cases its cases.jsonl does
    /// not hold yet, with the plan stored in the folder. DIR defaults to --out.
    #[arg(long, value_name = "DIR", num_args = 0..=1, default_missing_value = "")]
    pub resume: Option<PathBuf>,

    /// Cache the synthetic models of decode and prefill cases in DIR
    /// (created; nothing is written outside it): each model is drawn from
    /// its seed once, stored with SHA-256 hashes, and loaded by every later
    /// worker process and run that names DIR; an entry that is stale or
    /// damaged is rebuilt. A 7B q4_0 model takes 4 GB. Default: the run
    /// folder's .work/models/, deleted when the run ends.
    #[arg(long, value_name = "DIR")]
    pub model_cache: Option<PathBuf>,

    /// Test-only: make every GEMM iteration do this fraction more work
    /// (gate trials); recorded in the results.
    #[arg(long, hide = true, value_name = "FRACTION")]
    pub inject_slowdown: Option<f64>,

    /// No progress bar and no summary table; only the run folder's path.
    #[arg(long, short)]
    pub quiet: bool,

    /// Print run.json to stdout when done (progress and table go to stderr).
    #[arg(long)]
    pub json: bool,

    /// When the run ends, write its report (figures, index.html, report.md,
    /// cases.csv, report.json) into the run folder's report/ — as
    /// `capbench report DIR` would.
    #[arg(long)]
    pub report: bool,
}

#[derive(Debug, Args)]
pub struct ReportArgs {
    /// Run folders (or their run.json) or merged folders; several are drawn
    /// together, e.g. to put two machines side by side.
    #[arg(value_name = "DIR", required = true, num_args = 1..)]
    pub runs: Vec<PathBuf>,

    /// Folder to write the report into (created; files in it are replaced).
    /// Default: DIR/report for one run, results/local/report-<time> for several.
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,

    /// Formats to write, comma-separated: md (report.md), html (index.html),
    /// csv (cases.csv), json (report.json); for dashboards also bmf
    /// (bmf.json, Bencher) and gab (gab-bigger.json, gab-smaller.json,
    /// github-action-benchmark). Figures are always drawn.
    #[arg(long, value_name = "LIST", value_enum, value_delimiter = ',',
          default_values_t = crate::report::Format::ALL)]
    pub format: Vec<crate::report::Format>,
}

#[derive(Debug, Args)]
pub struct ProbeArgs {
    /// Backends to probe, comma-separated (as for `run`). Default: every
    /// usable backend.
    #[arg(long, value_name = "LIST", value_delimiter = ',')]
    pub backend: Option<Vec<String>>,

    /// CPU threads per worker; ceilings apply to runs with the same cap.
    #[arg(long, value_name = "N", value_parser = limits::parse_threads)]
    pub threads: Option<usize>,

    /// Worker processes per case. Default: the probe suite's (3).
    #[arg(long, value_name = "K", value_parser = limits::parse_repeat)]
    pub repeat: Option<usize>,

    /// Run folder to write. Default: a fresh folder under results/local/.
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,

    /// Print the ceilings as JSON on stdout.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum CheckFormat {
    Text,
    Md,
    Json,
}

#[derive(Debug, Args)]
pub struct CheckArgs {
    /// The claims file (TOML; see claims/examples.toml).
    #[arg(value_name = "CLAIMS.toml")]
    pub claims: PathBuf,

    /// Run folders or merged folders holding the evidence (several: e.g. a
    /// `capbench probe` run and a workload run of the same machine).
    #[arg(long, value_name = "DIR", num_args = 1..)]
    pub results: Vec<PathBuf>,

    /// Run what the claims need and the results lack — each claim's workload
    /// not measured yet (on --backend) and the probe suite when this machine's
    /// ceilings are missing — into --out, then judge with it.
    #[arg(long)]
    pub run: bool,

    /// With --run: backends to run on (default: every usable one).
    #[arg(long, value_name = "LIST", value_delimiter = ',')]
    pub backend: Option<Vec<String>>,

    /// With --run: the run folder to write (default: results/local/<time>).
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,

    /// Cache the synthetic models of decode and prefill cases in DIR
    /// (created; nothing is written outside it): each model is drawn from
    /// its seed once, stored with SHA-256 hashes, and loaded by every later
    /// worker process and run that names DIR; an entry that is stale or
    /// damaged is rebuilt. A 7B q4_0 model takes 4 GB. Default: the run
    /// folder's .work/models/, deleted when the run ends.
    #[arg(long, value_name = "DIR")]
    pub model_cache: Option<PathBuf>,

    /// Relative error assumed for every projection on top of its source's
    /// CI. The default is the smallest multiple of 5 % at which every band
    /// of the validation table held (docs/claims.md, "How far off is a
    /// projection?": 10 % missed one of seven, 15 % held all); measure it
    /// for your machines with scripts/projection-validation-threads.sh. A
    /// projection from another size of the model is a bound: its band also
    /// reaches the target's roof at 100 % (and, from a larger size, down to 0).
    #[arg(long, value_name = "PCT", default_value = "15%", value_parser = parse_fraction)]
    pub projection_uncertainty: f64,

    /// Output format: text (terminal), md (GitHub summary), json.
    #[arg(long, value_enum, default_value_t = CheckFormat::Text)]
    pub format: CheckFormat,

    /// Also write the verdicts as JUnit XML to FILE, one test case per
    /// claim; refuted and cannot-tell claims fail (as the exit code does).
    #[arg(long, value_name = "FILE")]
    pub junit: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct MergeArgs {
    /// Run folders (or merged folders) from any machines.
    #[arg(value_name = "DIR", required = true, num_args = 1..)]
    pub runs: Vec<PathBuf>,

    /// The merged folder to write (must not hold a run or a merge).
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum CompareFormat {
    Text,
    Md,
    Json,
}

#[derive(Debug, Args)]
pub struct CompareArgs {
    /// BASE and NEW run folders (or run.json files); with --baseline, only NEW.
    #[arg(value_name = "BASE NEW", num_args = 1..=2, required = true)]
    pub runs: Vec<PathBuf>,

    /// Use the stored baseline NAME of this machine as BASE.
    #[arg(long, value_name = "NAME")]
    pub baseline: Option<String>,

    /// Where baselines live.
    #[arg(long, value_name = "DIR", default_value = crate::baseline::DEFAULT_ROOT)]
    pub baselines_dir: PathBuf,

    /// Smallest relative change that counts, e.g. 5% or 0.05. Raised per case
    /// to its calibrated A/A noise when a calibration is present.
    #[arg(long, value_name = "PCT", default_value = "5%", value_parser = parse_fraction)]
    pub threshold: f64,

    /// Output format: text (terminal), md (GitHub summary / PR comment), json.
    #[arg(long, value_enum, default_value_t = CompareFormat::Text)]
    pub format: CompareFormat,

    /// A/A calibration file. Default: calibration.json beside BASE, if any.
    #[arg(long, value_name = "FILE")]
    pub calibration: Option<PathBuf>,

    /// Compare even when machine fingerprints or build profiles differ
    /// (marked in the output). Default: such cases are `incomparable`.
    #[arg(long)]
    pub allow_machine_mismatch: bool,

    /// Exit 1 also when a case is incomparable (missing, failed, mismatched).
    #[arg(long)]
    pub fail_on_incomparable: bool,

    /// Also write the verdicts as JUnit XML to FILE, one test case per case,
    /// failed exactly where the exit code is 1 (for CI test reports).
    #[arg(long, value_name = "FILE")]
    pub junit: Option<PathBuf>,

    /// Engines side by side, e.g. cpu,llamacpp: each workload under the same
    /// caps on backend BASE paired with itself on backend NEW — in one run
    /// folder, or BASE's cases from the first folder and NEW's from the
    /// second — with NEW/BASE and its CI per workload, as for two runs. A
    /// comparison, not a gate: exit 0 (2 when no workload ran on both).
    #[arg(long, value_name = "BASE,NEW", value_parser = parse_engine_pair,
          conflicts_with_all = ["baseline", "calibration", "junit", "fail_on_incomparable"])]
    pub engines: Option<(String, String)>,
}

#[derive(Debug, Args)]
pub struct CalibrateArgs {
    #[command(flatten)]
    pub plan: PlanArgs,

    /// A/A runs of the plan to make (2 to 100). Ignored with --from.
    #[arg(long, value_name = "K", default_value_t = 3, value_parser = limits::parse_calibrate_runs)]
    pub runs: usize,

    /// Calibrate from these existing runs of one suite instead of running.
    #[arg(long, value_name = "DIR", num_args = 2..)]
    pub from: Vec<PathBuf>,

    /// Store the calibration with baseline NAME (saving the first run as
    /// that baseline if it does not exist yet).
    #[arg(long, value_name = "NAME")]
    pub baseline: Option<String>,

    #[arg(long, value_name = "DIR", default_value = crate::baseline::DEFAULT_ROOT)]
    pub baselines_dir: PathBuf,

    /// Folder for the A/A runs and calibration.json. Default: results/local/<time>-calibrate.
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum BaselineCommand {
    /// Store a run as baseline NAME for the machine that made it.
    Save {
        name: String,
        /// Run folder or run.json.
        run: PathBuf,
        #[arg(long, value_name = "DIR", default_value = crate::baseline::DEFAULT_ROOT)]
        baselines_dir: PathBuf,
    },
    /// Print the folder of baseline NAME for this machine (exit 2 if none).
    Show {
        name: String,
        #[arg(long, value_name = "DIR", default_value = crate::baseline::DEFAULT_ROOT)]
        baselines_dir: PathBuf,
    },
    /// List stored baselines (machine id / name).
    List {
        #[arg(long, value_name = "DIR", default_value = crate::baseline::DEFAULT_ROOT)]
        baselines_dir: PathBuf,
    },
}

/// "5%" → 0.05; "0.05" → 0.05.
pub fn parse_fraction(s: &str) -> Result<f64, String> {
    let v = match s.strip_suffix('%') {
        Some(p) => p.trim().parse::<f64>().map(|x| x / 100.0),
        None => s.trim().parse::<f64>(),
    }
    .map_err(|_| format!("'{s}' is not a number or percentage (e.g. 5% or 0.05)"))?;
    if v > 0.0 && v < 1.0 {
        Ok(v)
    } else {
        Err(format!("'{s}' must be between 0% and 100%"))
    }
}

#[derive(Debug, Args)]
pub struct ShowArgs {
    /// A run folder, its run.json, or a merged folder (every run in it).
    pub path: PathBuf,
    /// Print the run as JSON (schema-checked) instead of a table.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct ExportGgufArgs {
    /// A dense-family model shape, e.g. dense-tiny, dense-small, llama-2-7b,
    /// llama-3.2-1b (see `capbench list workloads`).
    #[arg(long, value_name = "SHAPE")]
    pub model: String,
    /// Storage format of the linear weights: f32, f16, q8_0 or q4_0 (norms
    /// are f32; the embedding f32, or f16 in an f16 file).
    #[arg(long, value_name = "FORMAT", default_value = "q8_0")]
    pub format: String,
    /// Weight seed. Default: the seed the decode workloads use, so the file
    /// holds the weights of `decode/<SHAPE>/<FORMAT>`.
    #[arg(long, value_name = "N")]
    pub seed: Option<u64>,
    /// The file to write (must not exist).
    #[arg(long, value_name = "FILE.gguf")]
    pub out: PathBuf,
}

#[derive(Debug, Args)]
pub struct WorkerArgs {
    /// Job file written by `capbench run`.
    #[arg(long)]
    pub job: PathBuf,
    /// Where to write the worker's result.
    #[arg(long)]
    pub result: PathBuf,
}

/// `--engines BASE,NEW`: two different backend names.
fn parse_engine_pair(s: &str) -> Result<(String, String), String> {
    match s.split(',').map(str::trim).collect::<Vec<_>>().as_slice() {
        [a, b] if !a.is_empty() && !b.is_empty() && a != b => Ok((a.to_string(), b.to_string())),
        _ => Err(format!(
            "expected two different backends as BASE,NEW (e.g. cpu,llamacpp), got {s:?}"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn run_flags_parse() {
        let c = Cli::parse_from([
            "capbench",
            "run",
            "--suite",
            "quick",
            "--backend",
            "cpu,wgpu",
            "--workload",
            "kernel/*",
            "--out",
            "/tmp/x",
            "--threads",
            "2",
            "--case-timeout",
            "30",
        ]);
        let Command::Run(r) = c.command else { panic!() };
        assert_eq!(r.plan.backend.unwrap(), ["cpu", "wgpu"]);
        assert_eq!(r.plan.threads, Some(2));
        assert_eq!(r.plan.case_timeout, Some(30.0));
        let c = Cli::parse_from(["capbench", "run", "--resume", "/tmp/x"]);
        let Command::Run(r) = c.command else { panic!() };
        assert_eq!(r.resume.unwrap(), PathBuf::from("/tmp/x"));
        let c = Cli::parse_from([
            "capbench",
            "run",
            "--mem-cap",
            "2GiB,4GiB",
            "--profile",
            "t4-16gb,m2-air-8gb",
            "--cpus",
            "0-1,3",
        ]);
        let Command::Run(r) = c.command else { panic!() };
        assert_eq!(r.plan.mem_cap, ["2GiB", "4GiB"]);
        assert_eq!(r.plan.profile, ["t4-16gb", "m2-air-8gb"]);
        assert_eq!(r.plan.cpus.as_deref(), Some("0-1,3"));
        assert_eq!(parse_fraction("5%"), Ok(0.05));
        assert_eq!(parse_fraction("0.1"), Ok(0.1));
        assert!(parse_fraction("150%").is_err() && parse_fraction("x").is_err());
    }

    #[test]
    fn report_flags_parse() {
        use crate::report::Format;
        let c = Cli::parse_from(["capbench", "report", "a", "b", "--format", "md,csv"]);
        let Command::Report(r) = c.command else {
            panic!()
        };
        assert_eq!(r.runs, [PathBuf::from("a"), PathBuf::from("b")]);
        assert_eq!(r.format, [Format::Md, Format::Csv]);
        let c = Cli::parse_from(["capbench", "report", "a"]);
        let Command::Report(r) = c.command else {
            panic!()
        };
        assert_eq!(r.format, Format::ALL);
        assert!(Cli::try_parse_from(["capbench", "report"]).is_err());
        assert!(Cli::try_parse_from(["capbench", "report", "a", "--format", "pdf"]).is_err());
        let c = Cli::parse_from([
            "capbench",
            "check",
            "c.toml",
            "--results",
            "a",
            "b",
            "--projection-uncertainty",
            "25%",
        ]);
        let Command::Check(k) = c.command else {
            panic!()
        };
        assert_eq!(k.results.len(), 2);
        assert_eq!(k.projection_uncertainty, 0.25);
        assert!(Cli::try_parse_from(["capbench", "merge", "a"]).is_err());
        let c = Cli::parse_from(["capbench", "run", "--report"]);
        let Command::Run(r) = c.command else { panic!() };
        assert!(r.report);
    }
}
