//! The harness's typed errors. `BadInput` and `Usage` map to exit code 2 at
//! the binary's edge; everything else is an internal failure (exit 1).

use std::path::Path;

use thiserror::Error;

#[derive(Debug, Error)]
pub enum HarnessError {
    /// A file the user gave us (suite TOML, run.json, cases.jsonl) is wrong.
    #[error("{path}: {place}: {message}\n  fix: {fix}")]
    BadInput {
        path: String,
        place: String,
        message: String,
        fix: String,
    },

    /// A flag value that cannot be used (unknown backend, empty selection, …).
    #[error("{message}")]
    Usage { message: String },

    #[error("{op} {path}: {source}")]
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
