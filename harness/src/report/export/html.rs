//! One self-contained HTML page: figures inline as SVG with their source
//! labels, a results table sortable by a few lines of inline JS, the figures
//! left out and why, and each run's environment fingerprint. Every string
//! from a run (hostnames, adapter and workload names, details) is escaped.

use super::{Exporter, env_pairs, headline_text, latency_text, run_cells};
use crate::report::model::Report;

pub struct Html;

/// Escapes text for HTML element content and quoted attribute values.
pub fn escape(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for ch in s.chars() {
        match ch {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            c => o.push(c),
        }
    }
    o
}

const STYLE: &str = "body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;margin:2rem auto;max-width:1100px;padding:0 1rem;color:#222}
table{border-collapse:collapse;margin:1rem 0;font-size:0.9rem}th,td{border:1px solid #ccc;padding:0.3rem 0.5rem;text-align:left;vertical-align:top}
th{background:#f3f3f3}table.sortable th{cursor:pointer}th[aria-sort=ascending]::after{content:' ▲'}th[aria-sort=descending]::after{content:' ▼'}
td.num{text-align:right;font-variant-numeric:tabular-nums}figure{margin:2rem 0}figure svg{max-width:100%;height:auto}
figcaption{font-size:0.9rem;color:#444}.note{background:#fff8e1;border-left:4px solid #e69f00;padding:0.3rem 0.6rem}code{font-size:0.85rem}";

/// Sorts a table by the clicked column: numerically by `data-v` where
/// cells carry one, else by text. Marks the page when set up, so a
/// headless check can tell the script ran to the end.
const SCRIPT: &str = "(function () {
  document.querySelectorAll('table.sortable').forEach(function (table) {
    var heads = table.tHead.rows[0].cells;
    Array.prototype.forEach.call(heads, function (th) {
      th.addEventListener('click', function () {
        var body = table.tBodies[0];
        var rows = Array.prototype.slice.call(body.rows);
        var asc = th.getAttribute('aria-sort') !== 'ascending';
        Array.prototype.forEach.call(heads, function (h) { h.removeAttribute('aria-sort'); });
        th.setAttribute('aria-sort', asc ? 'ascending' : 'descending');
        var i = th.cellIndex;
        var key = function (row) {
          var c = row.cells[i];
          var v = c.getAttribute('data-v');
          return v !== null && v !== '' ? parseFloat(v) : c.textContent.trim();
        };
        rows.sort(function (a, b) {
          var x = key(a), y = key(b), d;
          if (typeof x === 'number' && typeof y === 'number') { d = x - y; }
          else if (typeof x === 'number') { d = -1; }
          else if (typeof y === 'number') { d = 1; }
          else { d = x.localeCompare(y); }
          return asc ? d : -d;
        });
        rows.forEach(function (r) { body.appendChild(r); });
      });
    });
  });
  document.documentElement.setAttribute('data-sortable', 'ready');
})();";

fn num_cell(v: Option<f64>, text: &str) -> String {
    match v {
        Some(x) if x.is_finite() => {
            format!("<td class=\"num\" data-v=\"{x}\">{}</td>", escape(text))
        }
        _ => format!("<td class=\"num\" data-v=\"\">{}</td>", escape(text)),
    }
}

impl Exporter for Html {
    fn file_name(&self) -> &'static str {
        "index.html"
    }

    fn render(&self, r: &Report) -> String {
        let e = escape;
        let mut o = String::new();
        o.push_str("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n");
        o.push_str("<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n");
        o.push_str(&format!(
            "<title>capbench report: {}</title>\n",
            e(&r.title)
        ));
        o.push_str(&format!("<style>\n{STYLE}\n</style>\n</head>\n<body>\n"));
        o.push_str(&format!("<h1>capbench report: {}</h1>\n", e(&r.title)));

        o.push_str("<table>\n<thead><tr><th>run</th><th>source</th><th>suite</th><th>machine</th><th>started</th><th>cases</th></tr></thead>\n<tbody>\n");
        for run in &r.runs {
            let [id, source, suite, machine, started, cases] = run_cells(run).map(|c| e(&c));
            o.push_str(&format!(
                "<tr><td><code>{id}</code></td><td><code>{source}</code></td><td>{suite}</td><td>{machine}</td><td>{started}</td><td>{cases}</td></tr>\n"
            ));
        }
        o.push_str("</tbody>\n</table>\n");

        o.push_str("<h2>Results</h2>\n<p>Median of worker-process medians with its 95% CI; latency percentiles pool every sample. Click a column to sort.</p>\n");
        o.push_str("<table class=\"sortable\" id=\"results\">\n<thead><tr><th>case</th><th>machine</th><th>backend</th><th>device</th><th>dtype</th><th>status</th><th>headline (median, 95% CI)</th><th>CI basis</th><th>p50 / p90 / p99 (ms)</th><th>verification (scaled max diff)</th><th>note</th></tr></thead>\n<tbody>\n");
        for c in &r.cases {
            let verif = c
                .verification_scaled_max_diff
                .map(|d| format!("{d:.1e}"))
                .unwrap_or_else(|| "—".into());
            o.push_str(&format!(
                "<tr><td><code>{}</code></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td>{}<td>{}</td>{}{}<td>{}</td></tr>\n",
                e(&c.id),
                e(&c.hostname),
                e(&c.backend),
                e(&c.device),
                e(&c.dtype),
                e(&c.status),
                num_cell(c.headline_value, &headline_text(c)),
                e(&c.ci_basis.clone().unwrap_or_else(|| "—".into()).replace('_', " ")),
                num_cell(c.metrics.get("wall_s_median").copied(), &latency_text(c)),
                num_cell(c.verification_scaled_max_diff, &verif),
                e(&c.status_detail.chars().take(200).collect::<String>()),
            ));
        }
        o.push_str("</tbody>\n</table>\n");

        o.push_str("<h2>Figures</h2>\n");
        for f in r.figures.iter().filter(|f| f.status == "drawn") {
            o.push_str(&format!("<figure id=\"fig-{}\">\n", e(&f.id)));
            // plotters' SVG backend escapes the text it writes; the SVG is
            // our own output, embedded as is.
            if let Some(svg) = &f.svg {
                o.push_str(svg);
                o.push('\n');
            }
            let links: Vec<String> = f
                .files
                .iter()
                .map(|p| {
                    format!(
                        "<a href=\"{}\">{}</a>",
                        e(p),
                        e(p.rsplit('.').next().unwrap_or(p))
                    )
                })
                .collect();
            o.push_str(&format!(
                "<figcaption><b>{}</b> — source: {} ({})</figcaption>\n",
                e(&f.title),
                e(&f.source),
                links.join(", ")
            ));
            if let Some(n) = &f.note {
                o.push_str(&format!("<p class=\"note\">{}</p>\n", e(n)));
            }
            o.push_str("</figure>\n");
        }
        let skipped: Vec<_> = r.figures.iter().filter(|f| f.status != "drawn").collect();
        if !skipped.is_empty() {
            o.push_str("<p>Not drawn — these runs hold no data for them:</p>\n<ul>\n");
            for f in skipped {
                o.push_str(&format!(
                    "<li><b>{}</b> (<code>{}</code>): {}</li>\n",
                    e(&f.title),
                    e(&f.id),
                    e(f.note.as_deref().unwrap_or(""))
                ));
            }
            o.push_str("</ul>\n");
        }

        o.push_str("<h2>Environment</h2>\n");
        for run in &r.runs {
            o.push_str(&format!(
                "<details open><summary>run <code>{}</code>, machine <code>{}</code></summary>\n<table>\n<tbody>\n",
                e(&run.run_id),
                e(&run.env.machine_id)
            ));
            for (k, v) in env_pairs(&run.env) {
                o.push_str(&format!("<tr><th>{}</th><td>{}</td></tr>\n", e(&k), e(&v)));
            }
            o.push_str("</tbody>\n</table>\n</details>\n");
        }
        o.push_str(&format!(
            "<script>\n{SCRIPT}\n</script>\n</body>\n</html>\n"
        ));
        o
    }
}
