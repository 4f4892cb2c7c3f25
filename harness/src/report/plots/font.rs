//! Text in plots goes through plotters' pure-Rust `ab_glyph` renderer with a
//! TrueType font compiled into the binary (DejaVu Sans cut to the characters
//! plots print; harness/assets/fonts/README.md), so every machine draws the
//! same text with no system fonts, fontconfig or freetype.
//! `CAPBENCH_FONT=/path/font.ttf` picks another font.

use std::sync::OnceLock;

use plotters::style::FontStyle;

/// Family name the charts ask for.
pub const FAMILY: &str = "sans-serif";

/// Set to a .ttf/.otf path to choose the font.
pub const FONT_ENV: &str = "CAPBENCH_FONT";

/// The font compiled in (about 94 KB).
pub const EMBEDDED: &[u8] = include_bytes!("../../../assets/fonts/DejaVuSans-subset.ttf");

/// Says which font plots use when the embedded one serves.
pub const EMBEDDED_NAME: &str = "DejaVu Sans (embedded subset)";

/// Registers the plot font with plotters (once per process): the file
/// `CAPBENCH_FONT` names, else the embedded one. Returns which font is
/// used, or why plots cannot carry text.
pub fn ensure() -> Result<&'static str, &'static str> {
    static FONT: OnceLock<Result<String, String>> = OnceLock::new();
    FONT.get_or_init(|| match std::env::var_os(FONT_ENV) {
        Some(p) if !p.is_empty() => {
            let path = std::path::PathBuf::from(&p);
            let bytes = std::fs::read(&path).map_err(|e| {
                format!(
                    "{FONT_ENV}={}: {e}; point it at a TrueType file, or unset it to use the embedded font",
                    path.display()
                )
            })?;
            // plotters keeps a 'static reference; one font per process.
            let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
            plotters::style::register_font(FAMILY, FontStyle::Normal, bytes)
                .map(|_| path.display().to_string())
                .map_err(|_| {
                    format!(
                        "{FONT_ENV}={}: not a TrueType/OpenType font; unset it to use the embedded font",
                        path.display()
                    )
                })
        }
        _ => plotters::style::register_font(FAMILY, FontStyle::Normal, EMBEDDED)
            .map(|_| EMBEDDED_NAME.to_string())
            .map_err(|_| "the embedded plot font did not load (a build fault)".to_string()),
    })
    .as_ref()
    .map(String::as_str)
    .map_err(String::as_str)
}

#[cfg(test)]
mod tests {
    use plotters::prelude::*;

    use super::*;

    const W: u32 = 40;
    const H: u32 = 30;

    /// `text` drawn black on white with the plot font, as RGB bytes.
    fn raster(text: &str) -> Vec<u8> {
        let mut buf = vec![255u8; (W * H * 3) as usize];
        {
            let root = BitMapBackend::with_buffer(&mut buf, (W, H)).into_drawing_area();
            root.draw_text(text, &(FAMILY, 20).into_font().color(&BLACK), (4, 2))
                .unwrap();
            root.present().unwrap();
        }
        buf
    }

    /// Every character the plots print (figure titles, axis labels, source
    /// lines, units) has a glyph of its own in the embedded font: it draws
    /// ink, and not the missing-glyph box a private-use character gets.
    #[test]
    fn the_embedded_font_draws_every_character_plots_print() {
        if std::env::var_os(FONT_ENV).is_some() {
            eprintln!("note: {FONT_ENV} is set; the embedded font is not the one under test");
            return;
        }
        assert_eq!(ensure(), Ok(EMBEDDED_NAME));
        let missing = raster("\u{E000}");
        let chars = "AZaz09%()[]/·—–→×±≥≤…³²µ√−σΣ≫≈▲▼éü€";
        for ch in chars.chars() {
            let r = raster(&ch.to_string());
            let ink = r.iter().filter(|&&b| b < 128).count();
            assert!(ink > 0, "{ch:?} draws nothing");
            assert_ne!(r, missing, "{ch:?} draws the missing-glyph box");
        }
    }
}
