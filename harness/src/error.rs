//! The harness's typed errors. `BadInput` and `Usage` map to exit code 2 at
//! the binary's edge; everything else is an internal failure (exit 1).

use std::path::Path;

use thiserror::Error;

#[derive(Debug, Error)]
pub enum HarnessError {
    /// A file the user gave us (suite TOML, run.json, cases.jsonl) is wrong.
    #[error(
        "{}: {}: {}\n  fix: {}",
        printable(.path),
        printable(.place),
        printable(.message),
        printable(.fix)
    )]
    BadInput {
        path: String,
        place: String,
        message: String,
        fix: String,
    },

    /// A flag value that cannot be used (unknown backend, empty selection, …).
    #[error("{}", printable(.message))]
    Usage { message: String },

    #[error("{op} {}: {source}", printable(.path))]
    Io {
        op: &'static str,
        path: String,
        #[source]
        source: std::io::Error,
    },
}

impl HarnessError {
    pub fn bad_input(
        path: &Path,
        place: impl Into<String>,
        message: impl Into<String>,
        fix: impl Into<String>,
    ) -> Self {
        HarnessError::BadInput {
            path: path.display().to_string(),
            place: place.into(),
            message: message.into(),
            fix: fix.into(),
        }
    }

    pub fn usage(message: impl Into<String>) -> Self {
        HarnessError::Usage {
            message: message.into(),
        }
    }

    pub fn io(op: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> Self + use<> {
        let path = path.display().to_string();
        move |source| HarnessError::Io { op, path, source }
    }

    /// Exit code for the process: 2 for input the user can fix, 1 otherwise.
    pub fn exit_code(&self) -> u8 {
        match self {
            HarnessError::BadInput { .. } | HarnessError::Usage { .. } => 2,
            HarnessError::Io { .. } => 1,
        }
    }
}

/// A GGUF file's own complaint already names the file, the place and the
/// fix; it is bad input like any other.
impl From<capbench_workloads::models::gguf::GgufError> for HarnessError {
    fn from(e: capbench_workloads::models::gguf::GgufError) -> Self {
        HarnessError::BadInput {
            path: e.path,
            place: e.place,
            message: e.message,
            fix: e.fix,
        }
    }
}

pub type Result<T, E = HarnessError> = std::result::Result<T, E>;

/// Text from a file (or an argument) made safe to print to a terminal:
/// control characters — C0 but the line break, DEL and C1, which start
/// escape sequences (window title, clear screen, cursor moves) — are shown
/// escaped (`\u{1b}`) instead of being sent to the terminal.
pub fn printable(s: &str) -> String {
    if !s.chars().any(is_unsafe) {
        return s.to_string();
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if is_unsafe(c) {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

fn is_unsafe(c: char) -> bool {
    c != '\n' && c.is_control()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_from_files_are_escaped() {
        // OSC window title, clear screen, a carriage return over the line.
        let hostile = "\u{1b}]0;pwned\u{7}\u{1b}[2J\r\u{9b}31m\u{7f}ok\nnext";
        let p = printable(hostile);
        assert!(!p.chars().any(|c| c.is_control() && c != '\n'), "{p:?}");
        assert!(
            p.contains("\\u{1b}]0;pwned") && p.contains("ok\nnext"),
            "{p}"
        );
        assert_eq!(printable("plain ü → text"), "plain ü → text");
        let e = HarnessError::bad_input(
            Path::new("run\u{1b}[2J.json"),
            "field \u{7}",
            "status \u{1b}]0;x",
            "fix",
        )
        .to_string();
        assert!(!e.chars().any(|c| c.is_control() && c != '\n'), "{e:?}");
    }
}
