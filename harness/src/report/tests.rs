//! Report tests: exporter snapshots on the fixed fixture run, figures drawn
//! or skipped from what the runs hold, and escaping of run strings in HTML.
//! `UPDATE_SNAPSHOTS=1 cargo test -p capbench report::` rewrites the
//! snapshots under harness/tests/snapshots/ (review the diff).

use std::path::{Path, PathBuf};

use super::fixture;
use super::*;

fn snapshot_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/snapshots")
}

fn require_font() {
    if let Err(why) = plots::font::ensure() {
        panic!("plot tests need a TrueType font: {why}");
    }
}

/// The report of `inputs` drawn into `dir`, with each inline SVG replaced by
/// a stub so snapshots do not depend on the font's glyph metrics.
fn report_with_stub_svgs(inputs: &[ReportInput], dir: &Path) -> Report {
    require_font();
    let mut r = write_report(inputs, dir, &[]).unwrap().report;
    for f in &mut r.figures {
        if f.svg.is_some() {
            f.svg = Some(format!("<svg data-figure=\"{}\"></svg>", f.id));
        }
    }
    r
}

pub(crate) fn check_snapshot(name: &str, actual: &str) {
    let path = snapshot_dir().join(name);
    if std::env::var("UPDATE_SNAPSHOTS").as_deref() == Ok("1") {
        std::fs::create_dir_all(snapshot_dir()).unwrap();
        std::fs::write(&path, actual).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e}; run with UPDATE_SNAPSHOTS=1 to create it",
            path.display()
        )
    });
    if expected != actual {
        let line = expected
            .lines()
            .zip(actual.lines())
            .position(|(a, b)| a != b)
            .unwrap_or_else(|| expected.lines().count().min(actual.lines().count()));
        panic!(
            "{name} differs from its snapshot at line {}:\n  expected: {:?}\n  actual:   {:?}\nrun with UPDATE_SNAPSHOTS=1 to accept",
            line + 1,
            expected.lines().nth(line),
            actual.lines().nth(line)
        );
    }
}

#[test]
fn exporters_match_their_snapshots() {
    let dir = tempfile::tempdir().unwrap();
    let r = report_with_stub_svgs(&fixture::full(), dir.path());
    for ex in Format::EVERY.iter().flat_map(|f| f.exporters()) {
        check_snapshot(ex.file_name(), &ex.render(&r));
    }
}

fn png_size(path: &Path) -> (u32, u32) {
    let b = std::fs::read(path).unwrap();
    assert_eq!(
        &b[..8],
        b"\x89PNG\r\n\x1a\n",
        "{} is not a PNG",
        path.display()
    );
    assert_eq!(&b[12..16], b"IHDR");
    let be = |i: usize| u32::from_be_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
    (be(16), be(20))
}

#[test]
fn every_figure_is_drawn_from_the_full_fixture_as_svg_and_png() {
    require_font();
    let dir = tempfile::tempdir().unwrap();
    // CAPBENCH_KEEP_FIXTURE_REPORT=DIR keeps a copy to look at.
    if let Some(keep) = std::env::var_os("CAPBENCH_KEEP_FIXTURE_REPORT") {
        write_report(&fixture::full(), Path::new(&keep), &Format::ALL).unwrap();
    }
    let w = write_report(&fixture::full(), dir.path(), &Format::ALL).unwrap();
    let drawn: Vec<&str> = w
        .report
        .figures
        .iter()
        .filter(|f| f.status == "drawn")
        .map(|f| f.id.as_str())
        .collect();
    for id in [
        "throughput-gflops_per_s",
        "throughput-tokens_per_s",
        "latency",
        "energy-per-token",
        "energy-per-iter",
        "pareto-loss",
        "pareto-error",
        "training-loss",
        "decode-memory-cap",
        "roofline",
    ] {
        assert!(drawn.contains(&id), "{id} not drawn; drawn: {drawn:?}");
    }
    for f in w.report.figures.iter().filter(|f| f.status == "drawn") {
        let svg_path = dir.path().join(&f.files[0]);
        let png_path = dir.path().join(&f.files[1]);
        let svg = std::fs::read_to_string(&svg_path).unwrap();
        assert!(
            svg.len() > 3_000,
            "{} is only {} bytes",
            svg_path.display(),
            svg.len()
        );
        assert!(svg.contains(&f.title), "{}: no title", f.id);
        for s in &f.series {
            assert!(
                svg.contains(s.as_str()),
                "{}: series {s:?} not in the SVG",
                f.id
            );
        }
        assert_eq!(
            png_size(&png_path),
            (plots::draw::WIDTH_PX, plots::draw::HEIGHT_PX)
        );
        let png_bytes = std::fs::metadata(&png_path).unwrap().len();
        assert!(
            png_bytes > 10_000,
            "{} is only {png_bytes} bytes",
            png_path.display()
        );
    }
    for name in ["index.html", "report.md", "cases.csv", "report.json"] {
        assert!(dir.path().join(name).is_file(), "{name} missing");
    }
}

fn figure<'a>(r: &'a Report, id: &str) -> &'a model::FigureEntry {
    r.figures
        .iter()
        .find(|f| f.id == id)
        .unwrap_or_else(|| panic!("no figure {id}"))
}

#[test]
fn measured_and_estimated_figures_never_share_a_series() {
    let dir = tempfile::tempdir().unwrap();
    let r = report_with_stub_svgs(&fixture::full(), dir.path());
    let energy = figure(&r, "energy-per-iter");
    assert!(
        energy.series.contains(&"cpu · measured".to_string()),
        "{:?}",
        energy.series
    );
    assert!(
        energy.series.contains(&"wgpu · modelled".to_string()),
        "{:?}",
        energy.series
    );
    let memcap = figure(&r, "decode-memory-cap");
    assert!(
        memcap.series.iter().any(|s| s.ends_with("ran (projected)")),
        "{:?}",
        memcap.series
    );
    assert!(
        memcap
            .series
            .iter()
            .any(|s| s.ends_with("did not fit (oom)"))
    );
    assert!(
        memcap
            .series
            .iter()
            .any(|s| s.contains("fits from 2.00 GiB (oom at 1.00)"))
    );
    assert!(
        figure(&r, "throughput-tokens_per_s")
            .source
            .contains("hollow = projected")
    );
    // The frontier is drawn over measured points only.
    assert!(
        figure(&r, "pareto-error")
            .series
            .iter()
            .any(|s| s.starts_with("Pareto frontier"))
    );
}

#[test]
fn figures_without_data_are_skipped_with_a_reason_and_no_files() {
    require_font();
    let dir = tempfile::tempdir().unwrap();
    // A report of richer data first: its energy figure must not linger.
    write_report(&fixture::full(), dir.path(), &[]).unwrap();
    assert!(dir.path().join("plots/energy-per-iter.svg").exists());
    let w = write_report(&fixture::kernels_only(), dir.path(), &Format::ALL).unwrap();
    assert!(!dir.path().join("plots/energy-per-iter.svg").exists());
    for id in ["energy", "training-loss", "decode-memory-cap"] {
        let f = figure(&w.report, id);
        assert_eq!(f.status, "skipped", "{id}");
        assert!(f.files.is_empty());
        assert!(
            f.note.as_deref().unwrap_or("").contains("no "),
            "{id}: {:?}",
            f.note
        );
        assert!(!dir.path().join(format!("plots/{id}.svg")).exists());
    }
    let roof = figure(&w.report, "roofline");
    assert_eq!(roof.status, "drawn");
    assert!(
        roof.note
            .as_deref()
            .unwrap()
            .contains("no measured ceilings")
    );
    let md = std::fs::read_to_string(dir.path().join("report.md")).unwrap();
    assert!(md.contains("Not drawn"), "{md}");
    assert!(md.contains("energy_j_per_token"), "{md}");
}

#[test]
fn html_escapes_every_string_from_the_run() {
    require_font();
    let evil = "<script>alert(1)</script>";
    let mut inputs = fixture::full();
    let run = &mut inputs[0].run;
    run.env.hostname = format!("host{evil}");
    run.env.cpu_model = format!("cpu{evil}");
    run.run_id = format!("id{evil}");
    run.cases[0].workload.name = format!("kernel/gemm{evil}");
    run.cases[0].id = format!("case{evil}");
    run.cases[0].status_detail = format!("detail \"quoted\" {evil}");
    run.cases[1].backend = format!("wgpu{evil}");
    run.cases[1]
        .tags
        .insert("energy_source".into(), format!("meter{evil}"));
    inputs[0].source = format!("dir{evil}");
    let dir = tempfile::tempdir().unwrap();
    let w = write_report(&inputs, dir.path(), &[Format::Html]).unwrap();
    let page = std::fs::read_to_string(dir.path().join("index.html")).unwrap();
    assert!(!page.contains(evil), "raw <script> in the page");
    assert!(!page.contains("<script>alert"), "raw <script> in the page");
    assert_eq!(
        page.matches("<script").count(),
        1,
        "only our own script tag"
    );
    assert!(page.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
    assert!(page.contains("detail &quot;quoted&quot;"));
    // The planted backend name is in the table and the figures (escaped by
    // the SVG writer), never raw.
    assert!(w.report.figures.iter().any(|f| f.status == "drawn"));
    assert!(
        page.contains("wgpu&lt;script&gt;"),
        "backend name not in a figure"
    );
}

#[test]
fn escape_covers_the_five_html_specials() {
    assert_eq!(
        export::html_escape("<a href=\"x\">'&'</a>"),
        "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;"
    );
}

#[test]
fn several_runs_are_drawn_together_labelled_by_host() {
    let mut inputs = fixture::kernels_only();
    let mut other = fixture::kernels_only().remove(0);
    other.run.env.machine_id = "0ther".into();
    other.run.env.hostname = "laptop".into();
    other.run.run_id = "fixture-0ther".into();
    other.run.started_at = "2026-01-03T00:00:00Z".into();
    inputs.push(other);
    let dir = tempfile::tempdir().unwrap();
    let r = report_with_stub_svgs(&inputs, dir.path());
    assert_eq!(r.title, "2 machines · 2026-01-01 – 2026-01-03");
    assert_eq!(r.cases.len(), 4);
    let t = figure(&r, "throughput");
    assert_eq!(t.series, ["cpu @ fixture-host", "cpu @ laptop"]);
    assert!(
        t.source.starts_with("runs fixture-k3rnels, fixture-0ther"),
        "{}",
        t.source
    );
}

#[test]
fn several_runs_of_one_machine_keep_their_own_series() {
    let mut inputs = fixture::kernels_only();
    let mut again = fixture::kernels_only().remove(0);
    again.run.run_id = "fixture-again".into();
    inputs.push(again);
    let dir = tempfile::tempdir().unwrap();
    let r = report_with_stub_svgs(&inputs, dir.path());
    assert_eq!(
        figure(&r, "throughput").series,
        ["cpu · run fixture-k3rnels", "cpu · run fixture-again"]
    );
}
