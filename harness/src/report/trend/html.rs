//! The dashboard page: a verdict table (one row per case), the change-point
//! table, then every case's trend plot as an image linked to its PNG. Static
//! HTML with no script, so it works from a file, a CI artifact or GitHub
//! Pages alike. Every string from the history is escaped.

use super::{Dashboard, TrendCase, TrendFigure, short};
use crate::format::sig3;
use crate::report::export::html_escape as e;

const STYLE: &str = "body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;margin:2rem auto;max-width:1100px;padding:0 1rem;color:#222}
table{border-collapse:collapse;margin:1rem 0;font-size:0.9rem}th,td{border:1px solid #ccc;padding:0.3rem 0.5rem;text-align:left;vertical-align:top}
th{background:#f3f3f3}td.num{text-align:right;font-variant-numeric:tabular-nums}figure{margin:2rem 0}figure img{max-width:100%;height:auto}
figcaption{font-size:0.9rem;color:#444}.regressed{color:#b00020;font-weight:bold}.improved{color:#00734d;font-weight:bold}.drifting{color:#a05a00}code{font-size:0.85rem}";

fn level(v: Option<f64>) -> String {
    v.filter(|x| x.is_finite())
        .map(sig3)
        .unwrap_or_else(|| "—".into())
}

/// An element id for a case's figure.
fn anchor(i: usize) -> String {
    format!("case-{i}")
}

fn verdict_cell(c: &TrendCase) -> String {
    let class: String = c
        .verdict
        .chars()
        .filter(|ch| ch.is_ascii_alphanumeric())
        .collect();
    format!("<td class=\"{}\">{}</td>", e(&class), e(&c.verdict))
}

fn verdict_table(o: &mut String, d: &Dashboard) {
    o.push_str("<h2>Cases</h2>\n<table id=\"verdicts\">\n<thead><tr><th>case</th><th>metric</th><th>runs</th><th>latest median [95% CI]</th><th>baseline level</th><th>current level</th><th>verdict</th></tr></thead>\n<tbody>\n");
    for (i, c) in d.cases.iter().enumerate() {
        let latest = c
            .points
            .last()
            .map(|p| {
                format!(
                    "{} [{}, {}]",
                    sig3(p.median),
                    sig3(p.ci95_low),
                    sig3(p.ci95_high)
                )
            })
            .unwrap_or_else(|| "—".into());
        o.push_str(&format!(
            "<tr><td><a href=\"#{}\"><code>{}</code></a></td><td>{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td>{}</tr>\n",
            anchor(i),
            e(&c.case),
            e(&c.metric),
            c.points.len(),
            e(&latest),
            level(c.baseline_level),
            level(c.current_level),
            verdict_cell(c),
        ));
    }
    o.push_str("</tbody>\n</table>\n");
}

fn change_table(o: &mut String, d: &Dashboard) {
    o.push_str("<h2>Change points</h2>\n");
    let rows: Vec<(usize, &TrendCase, &super::ChangeMark)> = d
        .cases
        .iter()
        .enumerate()
        .flat_map(|(i, c)| c.change_points.iter().map(move |m| (i, c, m)))
        .collect();
    if rows.is_empty() {
        o.push_str("<p>None found in any case.</p>\n");
    } else {
        o.push_str("<table id=\"change-points\">\n<thead><tr><th>case</th><th>first commit at the new level</th><th>run time</th><th>change</th><th>confidence</th></tr></thead>\n<tbody>\n");
        for (i, c, m) in rows {
            let time = c.points.get(m.index).map(|p| p.time.as_str()).unwrap_or("");
            o.push_str(&format!(
                "<tr><td><a href=\"#{}\"><code>{}</code></a></td><td><code>{}</code></td><td>{}</td><td class=\"num\">{:+.1}%</td><td class=\"num\">{:.3}</td></tr>\n",
                anchor(i),
                e(&c.case),
                e(short(&m.commit)),
                e(time),
                m.change_rel * 100.0,
                m.confidence,
            ));
        }
        o.push_str("</tbody>\n</table>\n");
    }
    o.push_str(&format!("<p>Method: {}</p>\n", e(&d.method)));
}

/// The whole page.
pub fn page(d: &Dashboard, figures: &[TrendFigure], skipped: &[(String, String)]) -> String {
    let mut o = String::new();
    o.push_str("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n");
    o.push_str("<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n");
    o.push_str(&format!("<title>{}</title>\n", e(&d.title)));
    o.push_str(&format!("<style>\n{STYLE}\n</style>\n</head>\n<body>\n"));
    o.push_str(&format!("<h1>{}</h1>\n", e(&d.title)));
    verdict_table(&mut o, d);
    change_table(&mut o, d);
    o.push_str("<h2>Trends</h2>\n");
    for (i, c) in d.cases.iter().enumerate() {
        let Some(f) = figures.iter().find(|f| f.index == i) else {
            continue;
        };
        let (svg, png) = (&f.files[0], &f.files[1]);
        o.push_str(&format!(
            "<figure id=\"{}\">\n<a href=\"{}\"><img src=\"{}\" width=\"1000\" height=\"600\" alt=\"{} over commits: median, 95% CI band, change points\"></a>\n<figcaption><b><code>{}</code></b> — {} · {} runs (<a href=\"{}\">svg</a>, <a href=\"{}\">png</a>)</figcaption>\n</figure>\n",
            anchor(i),
            e(png),
            e(svg),
            e(&c.metric),
            e(&c.case),
            e(&c.verdict),
            c.points.len(),
            e(svg),
            e(png),
        ));
    }
    if !skipped.is_empty() {
        o.push_str("<p>Not drawn:</p>\n<ul>\n");
        for (case, why) in skipped {
            o.push_str(&format!("<li><code>{}</code>: {}</li>\n", e(case), e(why)));
        }
        o.push_str("</ul>\n");
    }
    o.push_str("</body>\n</html>\n");
    o
}
