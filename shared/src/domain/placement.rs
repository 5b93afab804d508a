//! Where the stamp goes: a page (1-based, default the last) and the stamp's top-left corner in
//! millimetres from the top-left corner of the page as displayed (after `/Rotate`).

use serde::Deserialize;

/// The largest coordinate taken, in millimetres: a kilometre, far beyond any page (whether the
/// stamp fits is judged against the uploaded page: `placement_out_of_bounds` then), but a bound, so
/// that what the ledger stores is a number DynamoDB can hold (magnitude under 1e126: a 1e200 was
/// answered 503 by the write; found by schemathesis).
pub const MAX_COORDINATE_MM: f64 = 1_000_000.0;
/// Smaller coordinates are zero: a nanometre means nothing on paper, and DynamoDB refuses
/// magnitudes under 1e-130 (a 1e-200 would fail the write as 1e200 did).
const NEGLIGIBLE_MM: f64 = 1e-6;

#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(try_from = "RawPlacement")]
pub struct Placement {
    page: Option<u32>,
    x_mm: f64,
    y_mm: f64,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidPlacement {
    #[error("page numbers start at 1")]
    PageZero,
    #[error("x_mm and y_mm must be numbers from 0 to 1000000 (millimetres)")]
    BadCoordinate,
}

#[derive(Deserialize)]
struct RawPlacement {
    #[serde(default)]
    page: Option<u32>,
    x_mm: f64,
    y_mm: f64,
}

impl TryFrom<RawPlacement> for Placement {
    type Error = InvalidPlacement;
    fn try_from(raw: RawPlacement) -> Result<Self, Self::Error> {
        Placement::parse(raw.page, raw.x_mm, raw.y_mm)
    }
}

impl Placement {
    pub fn parse(page: Option<u32>, x_mm: f64, y_mm: f64) -> Result<Placement, InvalidPlacement> {
        if page == Some(0) {
            return Err(InvalidPlacement::PageZero);
        }
        let usable = |v: f64| v.is_finite() && (0.0..=MAX_COORDINATE_MM).contains(&v);
        if !usable(x_mm) || !usable(y_mm) {
            return Err(InvalidPlacement::BadCoordinate);
        }
        let snap = |v: f64| if v < NEGLIGIBLE_MM { 0.0 } else { v };
        Ok(Placement { page, x_mm: snap(x_mm), y_mm: snap(y_mm) })
    }

    /// The page, 1-based; `None` means the last page.
    pub fn page(&self) -> Option<u32> {
        self.page
    }
    pub fn x_mm(&self) -> f64 {
        self.x_mm
    }
    pub fn y_mm(&self) -> f64 {
        self.y_mm
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deserializes_with_and_without_page() {
        let with: Placement = serde_json::from_str(r#"{"page":1,"x_mm":120,"y_mm":220}"#).expect("valid");
        assert_eq!((with.page(), with.x_mm(), with.y_mm()), (Some(1), 120.0, 220.0));
        let without: Placement = serde_json::from_str(r#"{"x_mm":1.5,"y_mm":0}"#).expect("valid");
        assert_eq!(without.page(), None);
    }

    #[test]
    fn rejects_page_zero_and_negative_or_infinite() {
        assert!(serde_json::from_str::<Placement>(r#"{"page":0,"x_mm":1,"y_mm":1}"#).is_err());
        assert!(serde_json::from_str::<Placement>(r#"{"x_mm":-1,"y_mm":1}"#).is_err());
        assert_eq!(Placement::parse(None, f64::NAN, 1.0), Err(InvalidPlacement::BadCoordinate));
        assert_eq!(Placement::parse(None, 1.0, f64::INFINITY), Err(InvalidPlacement::BadCoordinate));
    }

    /// Every accepted coordinate is one DynamoDB can store as a number (magnitude within 1e-130 to
    /// 1e126, at most 38 significant digits), written as the ledger writes it (`to_string`).
    #[test]
    fn accepted_coordinates_fit_a_dynamodb_number() {
        assert_eq!(Placement::parse(None, 1e200, 1.0), Err(InvalidPlacement::BadCoordinate));
        assert_eq!(Placement::parse(None, 1.0, MAX_COORDINATE_MM * 1.5), Err(InvalidPlacement::BadCoordinate));
        assert!(Placement::parse(None, MAX_COORDINATE_MM, 300.0).is_ok(), "far off the page is the stamp's call");
        for v in [0.0, 1e-200, 5e-324, 1e-7, 1e-6, 0.1, 120.5, 1.0000000000000002e-6, 999_999.999_999_999_9, MAX_COORDINATE_MM] {
            let p = Placement::parse(None, v, v).expect("accepted");
            let written = p.x_mm().to_string();
            let digits: String = written.chars().filter(char::is_ascii_digit).collect();
            let significant = digits.trim_start_matches('0').trim_end_matches('0');
            assert!(significant.len() <= 38, "{v} is written {written}");
            assert!(p.x_mm() == 0.0 || (1e-130..1e126).contains(&p.x_mm()), "{v} is stored as {written}");
        }
        assert_eq!(Placement::parse(None, 1e-200, 2.0).map(|p| p.x_mm()), Ok(0.0));
    }
}
