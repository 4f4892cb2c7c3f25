//! Text in plots goes through plotters' pure-Rust `ab_glyph` renderer, which
//! needs a TrueType font registered once. We look for a common system font
//! rather than ship one (keeps the binary and repository small, and needs no
//! fontconfig/freetype at build time). CI installs `fonts-dejavu-core`.

use std::path::PathBuf;
use std::sync::OnceLock;

use plotters::style::FontStyle;

/// Family name the charts ask for.
pub const FAMILY: &str = "sans-serif";

/// Set to a .ttf/.otf path to choose the font.
pub const FONT_ENV: &str = "CAPBENCH_FONT";

const CANDIDATES: &[&str] = &[
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf", // Debian, Ubuntu
    "/usr/share/fonts/TTF/DejaVuSans.ttf",             // Arch
    "/usr/share/fonts/dejavu-sans-fonts/DejaVuSans.ttf", // Fedora
    "/usr/share/fonts/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
    "/usr/share/fonts/liberation-sans/LiberationSans-Regular.ttf",
    "/usr/share/fonts/truetype/noto/NotoSans-Regular.ttf",
    "/System/Library/Fonts/Supplemental/Arial.ttf", // macOS
    "/Library/Fonts/Arial.ttf",
    "C:\\Windows\\Fonts\\arial.ttf",
];

/// Registers a font with plotters (once per process). Returns the path used,
/// or why plots cannot carry text here.
pub fn ensure() -> Result<&'static str, &'static str> {
    static FONT: OnceLock<Result<String, String>> = OnceLock::new();
    FONT.get_or_init(|| {
        let mut paths: Vec<PathBuf> = vec![];
        if let Some(p) = std::env::var_os(FONT_ENV) {
            paths.push(p.into());
        }
        paths.extend(CANDIDATES.iter().map(PathBuf::from));
        for p in paths {
            let Ok(bytes) = std::fs::read(&p) else {
                continue;
            };
            // plotters keeps a 'static reference; one font per process.
            let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
            if plotters::style::register_font(FAMILY, FontStyle::Normal, bytes).is_ok() {
                return Ok(p.display().to_string());
            }
        }
        Err(format!(
            "no TrueType font found for plot text; install one (Debian: apt-get install fonts-dejavu-core) or set {FONT_ENV}=/path/to/font.ttf"
        ))
    })
    .as_ref()
    .map(String::as_str)
    .map_err(String::as_str)
}
