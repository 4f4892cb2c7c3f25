//! Flags of `capbench ab`: the interleaved A/B of two builds.

use std::path::PathBuf;

use clap::Args;

use super::{CompareFormat, parse_fraction};

#[derive(Debug, Args)]
pub struct AbArgs {
    /// The BASE build: a capbench binary, or a git revision (built with
    /// `cargo build --release -p capbench` in a temporary worktree).
    #[arg(long, value_name = "BINARY|REV")]
    pub base: String,

    /// The NEW build: a capbench binary, or a git revision.
    #[arg(long, value_name = "BINARY|REV")]
    pub new: String,

    /// Pairs of worker processes per case (one of each build per pair, in
    /// random order). At least 6 for a 95% CI.
    #[arg(long, value_name = "N", default_value_t = 10)]
    pub pairs: usize,

    /// Smallest relative change that counts. Lower than `compare`'s 5%:
    /// pairing cancels drift between pairs, so the CI is honest at 2%
    /// (docs/history.md has the measured false-alarm and detection rates).
    #[arg(long, value_name = "PCT", default_value = "2%", value_parser = parse_fraction)]
    pub threshold: f64,

    /// Per-process statistic: this quantile of the iteration times (0.5 =
    /// the median). The default 0.1 tracks the code's own cost on a shared
    /// machine, where contention only adds time.
    #[arg(long, value_name = "Q", default_value_t = crate::analysis::paired::DEFAULT_QUANTILE)]
    pub quantile: f64,

    /// Output folder: base/pair-NN and new/pair-NN run folders, ab.json,
    /// ab.md. Default: a fresh folder under results/local/.
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,

    /// Output format on stdout: text, md, json.
    #[arg(long, value_enum, default_value_t = CompareFormat::Text)]
    pub format: CompareFormat,

    /// Seed of the pair orders (recorded; the default draws one).
    #[arg(long, value_name = "N")]
    pub seed: Option<u64>,

    /// Where git revisions are built (a cargo target folder kept between
    /// calls, so only capbench recompiles). Default: target/capbench-ab.
    #[arg(long, value_name = "DIR")]
    pub build_dir: Option<PathBuf>,

    /// Test aid: NEW's GEMM iterations do this fraction more work (`run
    /// --inject-slowdown`), to measure the detection rate.
    #[arg(long, hide = true, value_name = "FRACTION")]
    pub inject_slowdown_new: Option<f64>,

    /// Arguments for `capbench run` of each side (after `--`), e.g.
    /// `-- --suite gate`. --out, --resume, --repeat and --json are set by ab.
    #[arg(last = true, value_name = "RUN ARGS")]
    pub run_args: Vec<String>,
}
