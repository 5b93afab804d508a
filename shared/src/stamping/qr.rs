//! The verification QR code as vector rectangles, quiet zone included.

use qrcode::{Color, EcLevel, QrCode};

/// Modules of light margin around the symbol (ISO/IEC 18004 asks for 4).
pub const QUIET_ZONE_MODULES: usize = 4;

/// PDF path operators drawing `text` as a QR code filling the square at (`x`, `y`) (lower-left)
/// of side `side`, with a white background over the quiet zone. `None` when the text is too
/// long for any QR version.
pub fn qr_operators(text: &str, x: f64, y: f64, side: f64) -> Option<String> {
    let code = QrCode::with_error_correction_level(text.as_bytes(), EcLevel::M).ok()?;
    let width = code.width();
    let colors = code.to_colors();
    let total = width + 2 * QUIET_ZONE_MODULES;
    let module = side / total as f64;
    let mut ops = String::with_capacity(width * width * 8);
    ops.push_str(&format!("q 1 g {} {} {} {} re f 0 g\n", num(x), num(y), num(side), num(side)));
    for row in 0..width {
        // Runs of dark modules in a row become one rectangle each: fewer operators, and no
        // hairline seams between neighbouring modules when rendered.
        let mut column = 0;
        while column < width {
            let dark = |c: usize| colors.get(row * width + c) == Some(&Color::Dark);
            if !dark(column) {
                column += 1;
                continue;
            }
            let start = column;
            while column < width && dark(column) {
                column += 1;
            }
            let left = x + (QUIET_ZONE_MODULES + start) as f64 * module;
            let top_row_from_bottom = total - QUIET_ZONE_MODULES - row - 1;
            let bottom = y + top_row_from_bottom as f64 * module;
            ops.push_str(&format!(
                "{} {} {} {} re\n",
                num(left),
                num(bottom),
                num((column - start) as f64 * module),
                num(module)
            ));
        }
    }
    ops.push_str("f Q\n");
    Some(ops)
}

/// A PDF number with at most 3 decimals and no exponent.
pub fn num(value: f64) -> String {
    let rounded = (value * 1000.0).round() / 1000.0;
    let text = format!("{rounded:.3}");
    let trimmed = text.trim_end_matches('0').trim_end_matches('.');
    if trimmed == "-0" || trimmed.is_empty() { "0".to_owned() } else { trimmed.to_owned() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_plain_decimals() {
        assert_eq!(num(1.0), "1");
        assert_eq!(num(0.1234), "0.123");
        assert_eq!(num(-0.0001), "0");
        assert_eq!(num(595.276), "595.276");
    }

    #[test]
    fn draws_some_modules_inside_the_square() {
        let ops = qr_operators("https://example.test/v1/verify/0123456789ABCDEFGHIJKL", 10.0, 20.0, 40.0).expect("fits");
        assert!(ops.matches(" re\n").count() > 20);
        assert!(qr_operators(&"x".repeat(5000), 0.0, 0.0, 10.0).is_none());
    }
}
