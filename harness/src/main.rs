//! The `capbench` binary: parses the command line and hands each subcommand
//! to its module in `capbench::commands`. Exit codes: 0 ok, 1 a case or the
//! harness failed, 2 bad input.

use std::process::ExitCode;

use capbench::cli::{Cli, Command};
use capbench::commands;
use clap::Parser;

/// Every heap byte is counted, so a worker can enforce `--mem-cap` and
/// report its peak (see `caps::alloc`).
#[global_allocator]
static ALLOC: capbench::caps::alloc::CappedAlloc = capbench::caps::alloc::CappedAlloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::List(a) => commands::list::run(&a),
        Command::Run(a) => commands::run::run(a),
        Command::Show(a) => commands::show::run(&a),
        Command::Compare(a) => commands::compare::run(&a),
        Command::Report(a) => commands::report::run(&a),
        Command::Calibrate(a) => commands::calibrate::run(a),
        Command::Probe(a) => commands::probe::run(a),
        Command::Check(a) => commands::check::run(a),
        Command::Merge(a) => commands::merge::run(&a),
        Command::Baseline(c) => commands::baseline::run(c),
        Command::Ab(a) => commands::ab::run(&a),
        Command::History(c) => commands::history::run(c),
        Command::ExportGguf(a) => commands::export_gguf::run(&a),
        Command::Worker(a) => capbench::worker::run(&a.job, &a.result).map(|_| ExitCode::SUCCESS),
    };
    result.unwrap_or_else(|e| {
        eprintln!("capbench: error: {e}");
        ExitCode::from(e.exit_code())
    })
}
