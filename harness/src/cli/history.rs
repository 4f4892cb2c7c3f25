//! Flags of `capbench history`: the run history, its list, pruning and change-point analysis.

use std::path::PathBuf;

use clap::{Args, Subcommand};

use super::{CompareFormat, parse_fraction};

#[derive(Debug, Subcommand)]
pub enum HistoryCommand {
    /// File a run folder in the history under its machine fingerprint and
    /// branch (copied; index.json updated under a lock).
    Add(HistoryAddArgs),
    /// List the runs of the history, oldest first, per machine and branch.
    List(HistoryListArgs),
    /// Drop the oldest runs of each machine × branch beyond --keep, or
    /// older than --max-age.
    Prune(HistoryPruneArgs),
    /// Change points per case (E-Divisive means with a permutation test)
    /// and a verdict: regressed, improved, stable, drifting, too few runs.
    /// Exit 1 when a case's latest change is a regression, 2 on bad input.
    Analyze(HistoryAnalyzeArgs),
    /// The static dashboard of the analysis: per case a trend plot (SVG +
    /// PNG: median and 95% CI over commits, change points, baseline level)
    /// and index.html with all of them and the change-point table — a
    /// folder to publish as is (GitHub Pages). Exit code as for analyze.
    Report(HistoryReportArgs),
}

/// Where the history lives and which part of it.
#[derive(Debug, Args)]
pub struct HistoryWhere {
    /// The history root.
    #[arg(long, value_name = "DIR", default_value = "results/history")]
    pub dir: PathBuf,
    /// Only this branch (default: every branch).
    #[arg(long, value_name = "NAME")]
    pub branch: Option<String>,
    /// Only this machine fingerprint (default: every machine).
    #[arg(long, value_name = "ID")]
    pub machine: Option<String>,
}

#[derive(Debug, Args)]
pub struct HistoryAddArgs {
    /// A finished run folder (with run.json).
    pub run: PathBuf,
    /// Commit measured. Default: the run's recorded commit, else `git rev-parse HEAD`.
    #[arg(long, value_name = "SHA")]
    pub commit: Option<String>,
    /// Branch. Default: `git rev-parse --abbrev-ref HEAD`, else `unknown`.
    #[arg(long, value_name = "NAME")]
    pub branch: Option<String>,
    /// The history root.
    #[arg(long, value_name = "DIR", default_value = "results/history")]
    pub dir: PathBuf,
}

#[derive(Debug, Args)]
pub struct HistoryListArgs {
    #[command(flatten)]
    pub at: HistoryWhere,
    /// Print the index entries as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct HistoryPruneArgs {
    #[command(flatten)]
    pub at: HistoryWhere,
    /// Keep only the newest N runs of each machine × branch.
    #[arg(long, value_name = "N")]
    pub keep: Option<usize>,
    /// Drop runs older than this (humantime: 90d, 12w, 720h).
    #[arg(long, value_name = "AGE")]
    pub max_age: Option<String>,
}

#[derive(Debug, Args)]
pub struct HistoryAnalyzeArgs {
    #[command(flatten)]
    pub at: HistoryWhere,
    /// Smallest relative step that counts as a change.
    #[arg(long, value_name = "PCT", default_value = "2%", value_parser = parse_fraction)]
    pub threshold: f64,
    /// Significance level of the permutation test.
    #[arg(long, value_name = "P", default_value_t = 0.03)]
    pub alpha: f64,
    /// Output format: text, md, json.
    #[arg(long, value_enum, default_value_t = CompareFormat::Text)]
    pub format: CompareFormat,
}

#[derive(Debug, Args)]
pub struct HistoryReportArgs {
    #[command(flatten)]
    pub at: HistoryWhere,
    /// Smallest relative step that counts as a change.
    #[arg(long, value_name = "PCT", default_value = "2%", value_parser = parse_fraction)]
    pub threshold: f64,
    /// Significance level of the permutation test.
    #[arg(long, value_name = "P", default_value_t = 0.01)]
    pub alpha: f64,
    /// Folder to write index.html and plots/ into (created; files in it are
    /// replaced).
    #[arg(
        long,
        value_name = "DIR",
        default_value = "results/local/history-report"
    )]
    pub out: PathBuf,
}
