//! Where the stamp goes: a page (1-based, default the last) and the stamp's top-left corner in
//! millimetres from the top-left corner of the page as displayed (after `/Rotate`).

use serde::Deserialize;

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
    #[error("x_mm and y_mm must be finite and not negative")]
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
        let usable = |v: f64| v.is_finite() && v >= 0.0;
        if !usable(x_mm) || !usable(y_mm) {
            return Err(InvalidPlacement::BadCoordinate);
        }
        Ok(Placement { page, x_mm, y_mm })
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
}
