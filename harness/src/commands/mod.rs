//! One module a subcommand: each turns its parsed flags into calls to the
//! library below and prints what they return. `main.rs` only dispatches.
//! Exit codes: 0 ok, 1 a case or the harness failed, 2 bad input.

pub mod ab;
pub mod baseline;
pub mod calibrate;
pub mod check;
pub mod compare;
pub mod export_gguf;
pub mod history;
pub mod list;
pub mod merge;
pub mod probe;
pub mod report;
pub mod run;
pub mod show;

use std::process::ExitCode;

/// Pretty JSON of a value the schema defines (always serialisable).
fn json<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_string_pretty(v).expect("serialisable")
}

/// 0 when everything ended ok, else 1.
fn exit_ok(ok: bool) -> ExitCode {
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}
