//! Canonical JSON: the whole report (runs with their fingerprints, one row
//! per case, figures with their sources), in a fixed field order with
//! sorted maps, so equal reports are equal bytes.

use super::Exporter;
use crate::report::model::Report;

pub struct Json;

impl Exporter for Json {
    fn file_name(&self) -> &'static str {
        "report.json"
    }

    fn render(&self, r: &Report) -> String {
        let mut s = serde_json::to_string_pretty(r).expect("report serialises");
        s.push('\n');
        s
    }
}
