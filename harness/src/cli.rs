//! Command-line definitions (clap derive). Parsing only; `main` dispatches.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

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

#[derive(Debug, Args)]
pub struct RunArgs {
    /// Built-in suite name (see `capbench list suites`) or a suite TOML file.
    #[arg(long, value_name = "NAME|FILE.toml", conflicts_with = "resume")]
    pub suite: Option<String>,

    /// Backends, comma-separated: cpu, cuda[:N], metal[:N], wgpu,
    /// wgpu:vulkan|metal|dx12|gl, wgpu:N. Default: every usable backend.
    #[arg(
        long,
        value_name = "LIST",
        value_delimiter = ',',
        conflicts_with = "resume"
    )]
    pub backend: Option<Vec<String>>,

    /// Only workloads whose name matches one of these globs (comma-separated),
    /// e.g. 'kernel/gemm-f32-*'.
    #[arg(
        long,
        value_name = "GLOB",
        value_delimiter = ',',
        conflicts_with = "resume"
    )]
    pub workload: Vec<String>,

    /// Run folder to write (must not hold a run). Default: a fresh folder
    /// under results/local/.
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,

    /// CPU threads for candle/rayon in each worker. Default: candle's choice
    /// (physical cores).
    #[arg(long, value_name = "N", conflicts_with = "resume")]
    pub threads: Option<usize>,

    /// Kill a worker process after this many seconds and record `timeout`.
    /// Default: the suite's case_timeout_s, else 600.
    #[arg(long, value_name = "SECS", conflicts_with = "resume")]
    pub case_timeout: Option<f64>,

    /// Worker processes per case (the between-process CI needs ≥ 2).
    /// Default: the suite's sampling.repeat (quick: 3).
    #[arg(long, value_name = "K", conflicts_with = "resume")]
    pub repeat: Option<usize>,

    /// Continue an interrupted run: run only the cases its cases.jsonl does
    /// not hold yet, with the plan stored in the folder. DIR defaults to --out.
    #[arg(long, value_name = "DIR", num_args = 0..=1, default_missing_value = "")]
    pub resume: Option<PathBuf>,

    /// No progress bar and no summary table; only the run folder's path.
    #[arg(long, short)]
    pub quiet: bool,

    /// Print run.json to stdout when done (progress and table go to stderr).
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct ShowArgs {
    /// A run folder or its run.json.
    pub path: PathBuf,
    /// Print the run as JSON (schema-checked) instead of a table.
    #[arg(long)]
    pub json: bool,
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
        assert_eq!(r.backend.unwrap(), ["cpu", "wgpu"]);
        assert_eq!(r.threads, Some(2));
        assert_eq!(r.case_timeout, Some(30.0));
        let c = Cli::parse_from(["capbench", "run", "--resume", "/tmp/x"]);
        let Command::Run(r) = c.command else { panic!() };
        assert_eq!(r.resume.unwrap(), PathBuf::from("/tmp/x"));
        assert!(
            Cli::try_parse_from(["capbench", "run", "--resume", "d", "--suite", "quick"]).is_err()
        );
    }
}
