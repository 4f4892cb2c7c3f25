//! The dashboard on a synthetic history: one SVG + PNG per case with the
//! band, the change point and the baseline drawn; the page's tables and
//! images; hostile case names escaped; a page snapshot.

use std::path::Path;

use super::synthetic::dashboard;
use super::*;
use crate::report::tests::check_snapshot;

#[test]
fn a_case_with_a_step_gets_a_band_a_marked_change_and_its_baseline() {
    let d = dashboard();
    let c = chart(&d.cases[0], &d.method).unwrap();
    assert_eq!(c.bands.len(), 1);
    assert_eq!(c.bands[0].points.len(), 12);
    assert_eq!(c.marks.len(), 1);
    // Between commit 7 (old level) and commit 8 (new level).
    assert_eq!(c.marks[0].x, 7.5);
    assert!(
        c.marks[0].label.starts_with("-10.0% a1b2c08"),
        "{}",
        c.marks[0].label
    );
    let baseline = c.series.iter().find(|s| s.line == Line::Dashed).unwrap();
    assert!(baseline.points.iter().all(|p| p.y == 110.0));
    assert_eq!(c.x.ticks[0], "a1b2c00");
    assert!(!c.y.from_zero, "a trend zooms to its data");
    assert_eq!(short("state-03"), "state-03");
    assert_eq!(short("0123456789abcdef"), "0123456");
    // The steady case: no marks.
    assert!(chart(&d.cases[1], &d.method).unwrap().marks.is_empty());
}

#[test]
fn the_dashboard_writes_a_plot_per_case_and_a_page_with_both_tables() {
    let tmp = tempfile::tempdir().unwrap();
    let d = dashboard();
    // CAPBENCH_KEEP_FIXTURE_REPORT=DIR keeps a copy to look at.
    if let Some(keep) = std::env::var_os("CAPBENCH_KEEP_FIXTURE_REPORT") {
        write_dashboard(&d, &Path::new(&keep).join("trend")).unwrap();
    }
    let w = write_dashboard(&d, tmp.path()).unwrap();
    assert_eq!(w.figures.len(), 2);
    assert!(w.skipped.is_empty());
    for f in &w.figures {
        let svg = std::fs::read_to_string(tmp.path().join(&f.files[0])).unwrap();
        let png = std::fs::read(tmp.path().join(&f.files[1])).unwrap();
        assert!(
            png.starts_with(b"\x89PNG\r\n\x1a\n"),
            "{} is no PNG",
            f.files[1]
        );
        assert!(
            svg.contains("a1b2c00"),
            "commit ticks missing in {}",
            f.files[0]
        );
        assert!(
            svg.contains("95% CI"),
            "band legend missing in {}",
            f.files[0]
        );
    }
    let first = std::fs::read_to_string(tmp.path().join(&w.figures[0].files[0])).unwrap();
    assert!(
        first.contains("-10.0% a1b2c08"),
        "change point label missing"
    );
    assert!(first.contains("change point") && first.contains("baseline level 110"));
    // The band is a filled polygon; plotters writes it as one.
    assert!(first.contains("<polygon"), "no band drawn");

    let page = std::fs::read_to_string(&w.index).unwrap();
    assert_eq!(page.matches("<img ").count(), 2, "{page}");
    assert!(page.contains("id=\"change-points\"") && page.contains("<code>a1b2c08</code>"));
    assert!(page.contains("class=\"regressed\""));
    check_snapshot("trend-index.html", &page);
}

#[test]
fn case_names_from_the_history_are_escaped_and_files_kept_apart() {
    let tmp = tempfile::tempdir().unwrap();
    let mut d = dashboard();
    d.cases[0].case = "<script>alert(1)</script>@cpu".into();
    d.cases[1].case = "<script>alert(1)</script>@cpu".into();
    d.cases[1].points.clear();
    let mut third = d.cases[0].clone();
    third.branch = "other".into();
    d.cases.push(third);
    let w = write_dashboard(&d, tmp.path()).unwrap();
    // Same name twice: two files, and the empty case is listed, not drawn.
    assert_eq!(w.figures.len(), 2);
    assert_ne!(w.figures[0].files[0], w.figures[1].files[0]);
    assert_eq!(w.skipped.len(), 1);
    for f in &w.figures {
        let stem = f.files[0].strip_prefix("plots/").unwrap();
        assert!(!stem.contains(['/', '<', '>']), "{stem}");
    }
    let page = std::fs::read_to_string(&w.index).unwrap();
    assert!(
        !page.contains("<script>"),
        "unescaped case name in the page"
    );
    assert!(page.contains("&lt;script&gt;"));
}
