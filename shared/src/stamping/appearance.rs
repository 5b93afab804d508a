//! What the stamp looks like: the appearance stream of the signature widget, drawn upright in
//! its own square (origin lower-left, side [`STAMP_SIDE_PT`]).

use super::qr::{num, qr_operators};

/// The stamp is a 32 mm square.
pub const STAMP_SIDE_MM: f64 = 32.0;
pub const POINTS_PER_MM: f64 = 72.0 / 25.4;
pub const STAMP_SIDE_PT: f64 = STAMP_SIDE_MM * POINTS_PER_MM;

/// Resource names used by the stream; the widget's appearance XObject must define them.
pub const BOLD_FONT: &str = "EMB";
pub const MONO_FONT: &str = "EMM";

pub struct StampText<'a> {
    pub serial: &'a str,
    /// The date line, e.g. `28-11-2026`.
    pub date: &'a str,
    pub verify_url: &'a str,
}

/// The content stream of the stamp, or `None` when the URL does not fit in a QR code.
pub fn stamp_content(text: &StampText<'_>) -> Option<String> {
    let side = STAMP_SIDE_PT;
    let centre = side / 2.0;
    let mut ops = String::with_capacity(16 * 1024);
    // White card with a double maroon frame.
    ops.push_str(&format!("q 1 g 0 0 {s} {s} re f Q\n", s = num(side)));
    ops.push_str(&format!(
        "q 0.55 0.05 0.1 RG 1.2 w 1.5 1.5 {i} {i} re S 0.4 w 3.2 3.2 {j} {j} re S Q\n",
        i = num(side - 3.0),
        j = num(side - 6.4)
    ));

    let mut y = side - 11.0;
    ops.push_str(&centred(BOLD_FONT, 6.2, "METERAI ELEKTRONIK", centre, y, helvetica_bold_width, (0.55, 0.05, 0.1)));
    let qr_side = 42.0;
    y -= 2.0 + qr_side;
    ops.push_str(&qr_operators(text.verify_url, centre - qr_side / 2.0, y, qr_side)?);
    y -= 10.5;
    ops.push_str(&centred(BOLD_FONT, 11.0, "10000", centre, y, helvetica_bold_width, (0.0, 0.0, 0.0)));
    y -= 6.5;
    ops.push_str(&centred(BOLD_FONT, 5.2, "SEPULUH RIBU RUPIAH", centre, y, helvetica_bold_width, (0.0, 0.0, 0.0)));
    y -= 6.5;
    ops.push_str(&centred(MONO_FONT, 5.4, text.serial, centre, y, courier_width, (0.0, 0.0, 0.0)));
    y -= 5.8;
    ops.push_str(&centred(MONO_FONT, 5.4, text.date, centre, y, courier_width, (0.0, 0.0, 0.0)));
    Some(ops)
}

fn centred(font: &str, size: f64, text: &str, centre: f64, baseline: f64, width_of: fn(char) -> u32, rgb: (f64, f64, f64)) -> String {
    let width: u32 = text.chars().map(width_of).sum();
    let left = centre - f64::from(width) * size / 1000.0 / 2.0;
    format!(
        "BT {} {} {} rg /{font} {} Tf {} {} Td ({}) Tj ET\n",
        num(rgb.0),
        num(rgb.1),
        num(rgb.2),
        num(size),
        num(left),
        num(baseline),
        escape_literal(text)
    )
}

fn escape_literal(text: &str) -> String {
    text.chars()
        .filter(|c| c.is_ascii() && !c.is_ascii_control())
        .flat_map(|c| match c {
            '(' | ')' | '\\' => vec!['\\', c],
            _ => vec![c],
        })
        .collect()
}

/// Glyph widths from the standard Helvetica-Bold metrics, per 1000 em.
fn helvetica_bold_width(c: char) -> u32 {
    match c {
        '0'..='9' => 556,
        ' ' => 278,
        'A' | 'B' | 'C' | 'D' | 'H' | 'K' | 'N' | 'R' | 'U' => 722,
        'E' | 'P' | 'S' | 'V' | 'X' | 'Y' => 667,
        'F' | 'L' | 'T' | 'Z' => 611,
        'G' | 'O' | 'Q' => 778,
        'I' => 278,
        'J' => 556,
        'M' => 833,
        'W' => 944,
        _ => 556,
    }
}

fn courier_width(_: char) -> u32 {
    600
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_carries_every_required_text() {
        let content = stamp_content(&StampText {
            serial: "0123456789ABCDEFGHIJKL",
            date: "28-11-2026",
            verify_url: "https://example.test/v1/verify/0123456789ABCDEFGHIJKL",
        })
        .expect("fits");
        for needle in ["(METERAI ELEKTRONIK)", "(10000)", "(SEPULUH RIBU RUPIAH)", "(0123456789ABCDEFGHIJKL)", "(28-11-2026)"] {
            assert!(content.contains(needle), "{needle}");
        }
        assert!((25.0..=35.0).contains(&STAMP_SIDE_MM));
    }
}
