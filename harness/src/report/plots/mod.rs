//! Plots: each figure module turns the runs into a `Chart` (plain data, or
//! the reason the runs cannot support it); `draw` renders every chart the
//! same way, as SVG and PNG. A figure whose data is absent is skipped with a
//! note — never drawn empty.

pub mod chart;
mod common;
pub mod draw;
mod energy;
mod engines;
pub mod font;
mod latency;
mod memcap;
mod pareto;
mod roofline;
mod throughput;
mod training;

use std::path::Path;

use plotters::prelude::*;

use crate::error::{HarnessError, Result};
use crate::report::model::{FigureEntry, ReportInput};
pub use common::Planned;

/// Folder inside the report folder that holds the figures.
pub const PLOTS_DIR: &str = "plots";

/// A figure module's entry point: the figures it can draw from the runs.
type Builder = fn(&[ReportInput]) -> Vec<Planned>;

/// Every figure the report knows, in report order.
pub fn plan(inputs: &[ReportInput]) -> Vec<Planned> {
    let builders: [Builder; 8] = [
        throughput::plan,
        engines::plan,
        latency::plan,
        energy::plan,
        pareto::plan,
        training::plan,
        memcap::plan,
        roofline::plan,
    ];
    builders.iter().flat_map(|b| b(inputs)).collect()
}

/// Renders `chart` to `dir/<id>.svg` and `dir/<id>.png`; returns the SVG text.
pub(crate) fn render_chart(chart: &chart::Chart, dir: &Path, id: &str) -> Result<String> {
    let size = (draw::WIDTH_PX, draw::HEIGHT_PX);
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, size).into_drawing_area();
        draw::draw(&root, chart).map_err(|e| plot_error(dir, id, "svg", e))?;
        root.present()
            .map_err(|e| plot_error(dir, id, "svg", e.to_string()))?;
    }
    let svg_path = dir.join(format!("{id}.svg"));
    crate::results::io::write_atomic(&svg_path, svg.as_bytes())?;
    // The PNG is drawn under a temporary name (the backend picks the
    // encoder by the extension) and renamed: a full disk leaves the old
    // figure or none, never a truncated one.
    let png_path = dir.join(format!("{id}.png"));
    let tmp = dir.join(format!(".{id}.{}.partial.png", std::process::id()));
    let drawn = draw_png(chart, &tmp, size, dir, id).and_then(|_| {
        std::fs::rename(&tmp, &png_path).map_err(HarnessError::io("rename into", &png_path))
    });
    if let Err(e) = drawn {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    crate::results::io::sync_dir(dir)?;
    Ok(svg)
}

fn draw_png(chart: &chart::Chart, to: &Path, size: (u32, u32), dir: &Path, id: &str) -> Result<()> {
    let root = BitMapBackend::new(to, size).into_drawing_area();
    draw::draw(&root, chart).map_err(|e| plot_error(dir, id, "png", e))?;
    root.present()
        .map_err(|e| plot_error(dir, id, "png", e.to_string()))
}

fn plot_error(dir: &Path, id: &str, ext: &str, e: String) -> HarnessError {
    HarnessError::Io {
        op: "draw",
        path: dir.join(format!("{id}.{ext}")).display().to_string(),
        source: std::io::Error::other(e),
    }
}

/// Removes the SVG and PNG files a previous report left in `plots/`, so a
/// figure these runs cannot support does not linger from older data.
fn remove_old_figures(dir: &Path) -> Result<()> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Ok(());
    };
    for e in entries.flatten() {
        let p = e.path();
        let ours = matches!(p.extension().and_then(|x| x.to_str()), Some("svg" | "png"));
        if ours && p.is_file() {
            std::fs::remove_file(&p).map_err(HarnessError::io("remove old figure", &p))?;
        }
    }
    Ok(())
}

/// Draws every figure the runs support into `out/plots/`; lists the rest as
/// skipped with the reason.
pub fn render_all(inputs: &[ReportInput], out: &Path) -> Result<Vec<FigureEntry>> {
    let planned = plan(inputs);
    let font = font::ensure();
    let dir = out.join(PLOTS_DIR);
    remove_old_figures(&dir)?;
    if font.is_ok() && planned.iter().any(|p| p.chart.is_ok()) {
        std::fs::create_dir_all(&dir).map_err(HarnessError::io("create", &dir))?;
    }
    let mut entries = vec![];
    for p in planned {
        let entry = match (&p.chart, font) {
            (Ok(chart), Ok(_)) => {
                let svg = render_chart(chart, &dir, &p.id)?;
                FigureEntry {
                    id: p.id.clone(),
                    title: p.title,
                    source: chart.source.clone(),
                    status: "drawn".into(),
                    files: vec![
                        format!("{PLOTS_DIR}/{}.svg", p.id),
                        format!("{PLOTS_DIR}/{}.png", p.id),
                    ],
                    series: chart.series_names(),
                    note: p.note,
                    svg: Some(svg),
                }
            }
            (Ok(chart), Err(why)) => FigureEntry {
                id: p.id,
                title: p.title,
                source: chart.source.clone(),
                status: "skipped".into(),
                files: vec![],
                series: vec![],
                note: Some(why.to_string()),
                svg: None,
            },
            (Err(why), _) => FigureEntry {
                id: p.id,
                title: p.title,
                source: String::new(),
                status: "skipped".into(),
                files: vec![],
                series: vec![],
                note: Some(why.clone()),
                svg: None,
            },
        };
        entries.push(entry);
    }
    Ok(entries)
}
