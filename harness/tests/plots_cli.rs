//! Plot output beyond the run report: text drawn with the embedded font on
//! a machine without system fonts, and the history dashboard (trend plots
//! and index.html) opened in headless Chromium.

mod browser;
mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use capbench::report::trend::{ChangeMark, Dashboard, TrendCase, TrendPoint, write_dashboard};
use common::*;

/// A committed run: reporting it needs no measurement.
fn committed_run() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../results/published/2026-12-02-projection-validation/small")
}

/// Dark pixels in the bottom `rows` rows of an RGB(A) PNG: the figure's
/// source line is text only, so ink there is drawn glyphs.
fn dark_pixels_at_bottom(png_path: &Path, rows: usize) -> usize {
    let decoder = png::Decoder::new(std::fs::File::open(png_path).unwrap());
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut buf).unwrap();
    let ch = info.color_type.samples();
    let row_bytes = info.width as usize * ch;
    let h = info.height as usize;
    buf[(h - rows) * row_bytes..h * row_bytes]
        .chunks(ch)
        .filter(|p| p[..3].iter().map(|&v| v as u32).sum::<u32>() < 3 * 160)
        .count()
}

/// `capbench report` where no font can be found on the system: the system
/// font folders hidden in a private mount namespace (where `unshare` is
/// allowed), fontconfig pointed at an empty folder. The figures are still
/// drawn, with text, from the font compiled into the binary.
#[test]
fn plots_carry_text_without_any_system_font() {
    let tmp = tempfile::tempdir().unwrap();
    let empty = tmp.path().join("no-fonts");
    std::fs::create_dir(&empty).unwrap();
    let out = tmp.path().join("report");
    let bin = env!("CARGO_BIN_EXE_capbench");
    let report = format!(
        "exec '{bin}' report '{}' --out '{}' --format json",
        committed_run().display(),
        out.display()
    );
    let hide = "for d in /usr/share/fonts /usr/local/share/fonts; do [ -d $d ] && mount -t tmpfs none $d; done; ls -A /usr/share/fonts 2>/dev/null | wc -l";
    let probe = Command::new("unshare")
        .args(["-m", "sh", "-c", hide])
        .output();
    let hidden = matches!(&probe, Ok(o) if o.status.success()
        && String::from_utf8_lossy(&o.stdout).trim() == "0");
    let mut cmd = if hidden {
        let mut c = Command::new("unshare");
        c.args(["-m", "sh", "-c", &format!("{hide} >/dev/null; {report}")]);
        c
    } else {
        eprintln!(
            "note: cannot hide the system font folders here (unshare -m not permitted); fontconfig is pointed at an empty folder only"
        );
        let mut c = Command::new("sh");
        c.args(["-c", &report]);
        c
    };
    let o = cmd
        .env_remove("CAPBENCH_FONT")
        .env("FONTCONFIG_PATH", &empty)
        .env("FONTCONFIG_FILE", empty.join("fonts.conf"))
        .env("XDG_DATA_DIRS", &empty)
        .env("HOME", &empty)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let json = read_json(&out.join("report.json"));
    let figures = json["figures"].as_array().unwrap();
    let throughput = figures
        .iter()
        .find(|f| f["id"].as_str().unwrap().starts_with("throughput"))
        .unwrap_or_else(|| panic!("no throughput figure: {figures:#?}"));
    assert_eq!(throughput["status"], "drawn", "{throughput:#}");
    let png = out.join(throughput["files"][1].as_str().unwrap());
    let ink = dark_pixels_at_bottom(&png, 20);
    assert!(
        ink > 100,
        "no text in the figure's source line ({ink} dark pixels)"
    );
}

fn points(levels: &[f64]) -> Vec<TrendPoint> {
    levels
        .iter()
        .enumerate()
        .map(|(i, &m)| TrendPoint {
            commit: format!("{:040x}", 0xc0ffee00u64 + i as u64),
            time: format!("2026-12-{:02}T09:00:00Z", i + 1),
            median: m,
            ci95_low: m * 0.97,
            ci95_high: m * 1.03,
        })
        .collect()
}

/// The dashboard page with two trend plots, in a browser: both images load,
/// nothing is logged, the screenshot is not blank.
#[test]
fn the_history_dashboard_renders_in_headless_chromium() {
    let tmp = tempfile::tempdir().unwrap();
    let step: Vec<f64> = (0..14).map(|i| if i < 9 { 52.0 } else { 47.0 }).collect();
    let flat: Vec<f64> = (0..14).map(|i| 20.0 + (i % 3) as f64 * 0.2).collect();
    let step_points = points(&step);
    let d = Dashboard {
        title: "capbench history · main".into(),
        method: "test input".into(),
        cases: vec![
            TrendCase {
                case: "kernel/gemm-f32-256@cpu".into(),
                metric: "gflops_per_s".into(),
                higher_is_better: true,
                machine_id: "m".into(),
                branch: "main".into(),
                change_points: vec![ChangeMark {
                    index: 9,
                    commit: step_points[9].commit.clone(),
                    change_rel: 47.0 / 52.0 - 1.0,
                    confidence: 0.99,
                }],
                points: step_points,
                baseline_level: Some(52.0),
                current_level: Some(47.0),
                verdict: "regressed".into(),
            },
            TrendCase {
                case: "kernel/stream-1M@cpu".into(),
                metric: "gbytes_per_s".into(),
                higher_is_better: true,
                machine_id: "m".into(),
                branch: "main".into(),
                change_points: vec![],
                points: points(&flat),
                baseline_level: Some(20.2),
                current_level: Some(20.2),
                verdict: "stable".into(),
            },
        ],
    };
    let w = write_dashboard(&d, tmp.path()).unwrap();
    assert_eq!(w.figures.len(), 2);
    browser::check_page(&w.index, &["id=\"change-points\""], 2);
}
