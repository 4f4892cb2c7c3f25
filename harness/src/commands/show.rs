//! `capbench show`: a run's summary table or JSON; every run of a merged
//! folder, each with its source.

use std::process::ExitCode;

use crate::cli::ShowArgs;
use crate::error::HarnessError;
use crate::report::table;
use crate::results::merge::load_all;

use super::json;

pub fn run(a: &ShowArgs) -> Result<ExitCode, HarnessError> {
    let runs = load_all(std::slice::from_ref(&a.path))?;
    if let [one] = runs.as_slice() {
        if a.json {
            println!("{}", json(&one.run));
        } else {
            print!("{}", table::summary(&one.run));
        }
        return Ok(ExitCode::SUCCESS);
    }
    // A merged folder: every run, each with its source.
    if a.json {
        let all: Vec<_> = runs.iter().map(|r| &r.run).collect();
        println!("{}", json(&all));
    } else {
        for r in &runs {
            println!("== {} ==", r.source);
            print!("{}", table::summary(&r.run));
        }
    }
    Ok(ExitCode::SUCCESS)
}
