//! Reports: formatting only, over data `stats`/`runner`/`analysis` already
//! computed. `write_report` turns run folders into figures (SVG + PNG) and
//! the exporters' files in one report folder:
//!
//! ```text
//! report/
//!   index.html   report.md   cases.csv   report.json
//!   bmf.json   gab-bigger.json   gab-smaller.json     (dashboards, on request)
//!   plots/<figure>.svg  plots/<figure>.png
//! ```

pub mod ab;
pub mod changes;
pub mod claims;
pub mod compare;
pub mod export;
pub mod junit;
pub mod model;
pub mod plots;
pub mod table;
pub mod trend;

use std::path::{Path, PathBuf};

use crate::error::{HarnessError, Result};
pub use export::Format;
pub use model::{Report, ReportInput};

/// Folder name of the report inside a run folder (`run --report`).
pub const REPORT_DIR: &str = "report";

/// What `write_report` produced.
pub struct Written {
    pub dir: PathBuf,
    pub files: Vec<PathBuf>,
    pub report: Report,
}

/// Writes a file through a temporary name and a rename, so a reader never
/// sees half a file (and a failed write leaves no temporary file).
fn write_atomic(path: &Path, text: &str) -> Result<()> {
    crate::results::io::write_atomic(path, text.as_bytes())
}

/// Draws the figures and writes each format into `out` (created if needed).
pub fn write_report(inputs: &[ReportInput], out: &Path, formats: &[Format]) -> Result<Written> {
    std::fs::create_dir_all(out).map_err(HarnessError::io("create", out))?;
    let mut report = model::build(inputs);
    report.figures = plots::render_all(inputs, out)?;
    let mut files: Vec<PathBuf> = report
        .figures
        .iter()
        .flat_map(|f| f.files.iter().map(|p| out.join(p)))
        .collect();
    for ex in formats.iter().flat_map(|f| f.exporters()) {
        let path = out.join(ex.file_name());
        write_atomic(&path, &ex.render(&report))?;
        files.push(path);
    }
    Ok(Written {
        dir: out.to_path_buf(),
        files,
        report,
    })
}

#[cfg(test)]
pub(crate) mod fixture;
#[cfg(test)]
mod tests;
