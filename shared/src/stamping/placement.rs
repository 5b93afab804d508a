//! From a placement on the page as displayed (millimetres from the top-left corner, after
//! `/Rotate`) to a rectangle in the page's default user space, and back.

use super::appearance::{POINTS_PER_MM, STAMP_SIDE_MM, STAMP_SIDE_PT};
use super::parse::{PageInfo, Rect};
use crate::domain::placement::Placement;

/// Margin from the right and bottom edges used when no position is given.
pub const DEFAULT_MARGIN_MM: f64 = 15.0;
/// Slack for rounding when deciding whether the stamp fits on the page.
const FIT_TOLERANCE_MM: f64 = 0.01;

/// Displayed page size in millimetres.
pub fn displayed_size_mm(page: &PageInfo) -> (f64, f64) {
    let (w, h) = page.displayed_size();
    (w / POINTS_PER_MM, h / POINTS_PER_MM)
}

/// Whether a stamp with its top-left corner at (`x_mm`, `y_mm`) lies inside the displayed page.
pub fn fits(page: &PageInfo, x_mm: f64, y_mm: f64) -> bool {
    let (w, h) = displayed_size_mm(page);
    x_mm + STAMP_SIDE_MM <= w + FIT_TOLERANCE_MM && y_mm + STAMP_SIDE_MM <= h + FIT_TOLERANCE_MM
}

/// The default position: bottom-right corner, [`DEFAULT_MARGIN_MM`] from both edges (or as
/// close as the page allows).
pub fn default_position_mm(page: &PageInfo) -> (f64, f64) {
    let (w, h) = displayed_size_mm(page);
    ((w - STAMP_SIDE_MM - DEFAULT_MARGIN_MM).max(0.0), (h - STAMP_SIDE_MM - DEFAULT_MARGIN_MM).max(0.0))
}

/// The stamp's rectangle in default user space. On a page with `/UserUnit` u, one unit is u
/// points, so the stamp (`STAMP_SIDE_MM` on paper) spans 1/u as many units (the viewer scales
/// the appearance to the rectangle).
pub fn user_rect(page: &PageInfo, placement: &Placement) -> Rect {
    let units_per_point = 1.0 / page.user_unit;
    let x = placement.x_mm() * POINTS_PER_MM * units_per_point;
    let y = placement.y_mm() * POINTS_PER_MM * units_per_point;
    let side = STAMP_SIDE_PT * units_per_point;
    let (ax, ay) = display_to_user(page, x, y);
    let (bx, by) = display_to_user(page, x + side, y + side);
    Rect::new(ax, ay, bx, by)
}

/// Maps a point of the displayed page (points, origin top-left, y down) to user space.
fn display_to_user(page: &PageInfo, dx: f64, dy: f64) -> (f64, f64) {
    let v = page.visible;
    match page.rotate {
        90 => (v.x0 + dy, v.y0 + dx),
        180 => (v.x1 - dx, v.y0 + dy),
        270 => (v.x1 - dy, v.y1 - dx),
        _ => (v.x0 + dx, v.y1 - dy),
    }
}

/// The appearance matrix that keeps the stamp upright on a page displayed with `rotate`.
pub fn upright_matrix(rotate: u16) -> [i64; 6] {
    match rotate {
        90 => [0, 1, -1, 0, 0, 0],
        180 => [-1, 0, 0, -1, 0, 0],
        270 => [0, -1, 1, 0, 0, 0],
        _ => [1, 0, 0, 1, 0, 0],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a4(rotate: u16) -> PageInfo {
        PageInfo { id: (1, 0), visible: Rect::new(0.0, 0.0, 595.276, 841.89), rotate, user_unit: 1.0 }
    }

    fn at(x_mm: f64, y_mm: f64) -> Placement {
        Placement::parse(None, x_mm, y_mm).expect("valid")
    }

    #[test]
    fn unrotated_top_left_maps_to_top_of_user_space() {
        let rect = user_rect(&a4(0), &at(0.0, 0.0));
        assert!((rect.x0 - 0.0).abs() < 1e-9 && (rect.y1 - 841.89).abs() < 1e-9);
        assert!((rect.width() - STAMP_SIDE_PT).abs() < 1e-9);
    }

    #[test]
    fn rotated_90_top_left_is_user_bottom_left() {
        // Displayed landscape: the display's top-left corner is the page's lower-left corner.
        let rect = user_rect(&a4(90), &at(0.0, 0.0));
        assert!(rect.x0.abs() < 1e-9 && rect.y0.abs() < 1e-9);
        let rect = user_rect(&a4(270), &at(0.0, 0.0));
        assert!((rect.x1 - 595.276).abs() < 1e-9 && (rect.y1 - 841.89).abs() < 1e-9);
        let rect = user_rect(&a4(180), &at(0.0, 0.0));
        assert!((rect.x1 - 595.276).abs() < 1e-9 && rect.y0.abs() < 1e-9);
    }

    #[test]
    fn fit_uses_displayed_orientation() {
        assert!(fits(&a4(0), 210.0 - STAMP_SIDE_MM, 297.0 - STAMP_SIDE_MM));
        assert!(!fits(&a4(90), 0.0, 297.0 - STAMP_SIDE_MM));
        assert!(fits(&a4(90), 297.0 - STAMP_SIDE_MM, 0.0));
        let (x, y) = default_position_mm(&a4(0));
        assert!(fits(&a4(0), x, y));
    }
}
