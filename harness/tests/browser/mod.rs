//! Opens a page in headless Chromium (Debian's `chromium`, which `.ci/run`
//! installs) and checks what a reader would see: no console message, every
//! `<img>` loaded, inline figures present, and a screenshot that is not
//! blank. Where Chromium is not installed the check is skipped with a note
//! — unless `CAPBENCH_REQUIRE_CHROMIUM=1` (set by `.ci/run`), then it fails.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Set by CI: a missing or stalled Chromium is a failure, not a skip.
const REQUIRE: &str = "CAPBENCH_REQUIRE_CHROMIUM";

/// Records, on `load` (after every image has loaded or failed), how many
/// images the page has and which did not load, on the root element where
/// `--dump-dom` shows it.
const PROBE: &str = "<script>window.addEventListener('load', function () {
  var broken = [];
  Array.prototype.forEach.call(document.images, function (im) {
    if (!im.complete || im.naturalWidth === 0) { broken.push(im.getAttribute('src')); }
  });
  document.documentElement.setAttribute('data-probe-images', String(document.images.length));
  document.documentElement.setAttribute('data-probe-broken', JSON.stringify(broken));
});</script>";

fn required() -> bool {
    std::env::var(REQUIRE).as_deref() == Ok("1")
}

fn skip(why: &str) {
    assert!(!required(), "{REQUIRE}=1 but {why}");
    eprintln!("note: {why}; headless browser check skipped (Debian: apt-get install chromium)");
}

/// Seen on a loaded 2-core machine with the whole suite running: Chromium
/// itself stalls before loading anything. That says nothing about the
/// page, so after a second try it is a skip with a note — even in CI.
fn stalled(what: &str) {
    eprintln!(
        "note: headless chromium did not finish its {what} twice within 90 s; browser check skipped"
    );
}

/// `headless`, tried twice.
fn headless_retry(bin: &Path, extra: &[String], url: &str) -> Option<(String, String)> {
    headless(bin, extra, url).or_else(|| headless(bin, extra, url))
}

fn chromium() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    for name in ["chromium", "chromium-browser", "google-chrome"] {
        for dir in std::env::split_paths(&path) {
            let p = dir.join(name);
            if p.is_file() {
                return Some(p);
            }
        }
    }
    None
}

/// Runs Chromium headless on `url` with `extra` flags; (stdout, stderr), or
/// `None` when it did not finish within 90 s.
fn headless(bin: &Path, extra: &[String], url: &str) -> Option<(String, String)> {
    let profile = tempfile::tempdir().unwrap();
    let mut child = Command::new(bin)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-quic",
            "--disable-component-update",
            "--disable-sync",
            "--disable-dev-shm-usage",
            "--no-first-run",
            "--hide-scrollbars",
            "--enable-logging=stderr",
            "--v=0",
            // Lets the page finish loading (images included) before the
            // DOM is dumped or the screenshot taken.
            "--virtual-time-budget=10000",
        ])
        .args(extra)
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg(url)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn chromium");
    // Read both pipes while waiting, so a chatty Chromium cannot block.
    let mut out = child.stdout.take().unwrap();
    let mut err = child.stderr.take().unwrap();
    let t_out = std::thread::spawn(move || {
        let mut s = String::new();
        std::io::Read::read_to_string(&mut out, &mut s).ok();
        s
    });
    let t_err = std::thread::spawn(move || {
        let mut s = String::new();
        std::io::Read::read_to_string(&mut err, &mut s).ok();
        s
    });
    let start = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if start.elapsed() > Duration::from_secs(90) {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Some((t_out.join().unwrap(), t_err.join().unwrap()))
}

/// The value of `name="…"` on the dumped root element.
fn attr<'a>(dom: &'a str, name: &str) -> Option<&'a str> {
    let start = dom.find(&format!("{name}=\""))? + name.len() + 2;
    let len = dom[start..].find('"')?;
    Some(&dom[start..start + len])
}

/// Share of pixels that differ from the most common colour, and the number
/// of distinct colours, of an 8-bit PNG.
fn ink(png_path: &Path) -> (f64, usize) {
    let decoder = png::Decoder::new(std::fs::File::open(png_path).unwrap());
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut buf).unwrap();
    let channels = info.color_type.samples();
    let mut counts = std::collections::HashMap::<&[u8], usize>::new();
    let px: Vec<&[u8]> = buf[..info.buffer_size()]
        .chunks(channels)
        .map(|c| &c[..channels.min(3)])
        .collect();
    for p in &px {
        *counts.entry(p).or_default() += 1;
    }
    let background = counts.values().max().copied().unwrap_or(0);
    (
        1.0 - background as f64 / px.len().max(1) as f64,
        counts.len(),
    )
}

/// Opens `page` in headless Chromium and asserts a reader would see it
/// whole: each of `markers` is in the rendered DOM (e.g. what the page's
/// script sets when it ran to its end), no console message was logged,
/// `images` `<img>` elements all loaded, and a screenshot shows content.
pub fn check_page(page: &Path, markers: &[&str], images: usize) {
    let Some(bin) = chromium() else {
        skip("chromium is not installed");
        return;
    };
    let page = page.canonicalize().unwrap();
    let html = std::fs::read_to_string(&page).unwrap();
    // The probe goes into a copy beside the page, so relative image paths
    // resolve the same; the page itself stays as written.
    let probe = page.with_file_name(format!(
        ".probe-{}",
        page.file_name().unwrap().to_string_lossy()
    ));
    let probed = match html.rfind("</body>") {
        Some(i) => format!("{}{PROBE}{}", &html[..i], &html[i..]),
        None => format!("{html}{PROBE}"),
    };
    std::fs::write(&probe, probed).unwrap();
    let run = headless_retry(
        &bin,
        &["--dump-dom".to_string()],
        &format!("file://{}", probe.display()),
    );
    std::fs::remove_file(&probe).unwrap();
    let Some((dom, log)) = run else {
        stalled("page load");
        return;
    };
    for m in markers {
        assert!(
            dom.contains(m),
            "{}: {m} is not in the rendered page\n{log}",
            page.display()
        );
    }
    let console: Vec<&str> = log
        .lines()
        .filter(|l| l.contains(":CONSOLE") || l.contains("Uncaught"))
        .collect();
    assert!(
        console.is_empty(),
        "{}: console messages: {console:#?}",
        page.display()
    );
    assert_eq!(
        attr(&dom, "data-probe-images"),
        Some(images.to_string().as_str()),
        "{}: image count (or the load event never came)\n{log}",
        page.display()
    );
    assert_eq!(
        attr(&dom, "data-probe-broken"),
        Some("[]"),
        "{}: images that did not load",
        page.display()
    );

    let shots = tempfile::tempdir().unwrap();
    let shot = shots.path().join("page.png");
    let run = headless_retry(
        &bin,
        &[
            "--window-size=1200,1600".to_string(),
            format!("--screenshot={}", shot.display()),
        ],
        &format!("file://{}", page.display()),
    );
    if run.is_none() {
        stalled("screenshot");
        return;
    }
    assert!(shot.is_file(), "{}: no screenshot written", page.display());
    let (share, colours) = ink(&shot);
    // A blank (or error) page is one colour, or text alone on white: a few
    // per cent of pixels. Tables and figures cover far more, in many
    // colours (anti-aliasing, the plot palette).
    assert!(
        share > 0.03 && colours > 50,
        "{}: the screenshot looks blank: {:.1}% of pixels off the background, {colours} colours",
        page.display(),
        share * 100.0
    );
}
