//! Engine tests on documents built here; the third-party fixtures are exercised by the
//! integration tests in the tests crate.

use super::*;

pub(crate) fn a4_pdf(pages: usize) -> Vec<u8> {
    pdf_with(pages, "", 0)
}

/// A small PDF with `pages` A4 pages, `extra` added to the page tree root's dictionary, and a
/// comment of `padding` bytes to make it larger.
pub(crate) fn pdf_with(pages: usize, extra: &str, padding: usize) -> Vec<u8> {
    pdf_with_page(pages, extra, "", padding)
}

/// Like [`pdf_with`], with `page_extra` added to every page's dictionary.
pub(crate) fn pdf_with_page(pages: usize, extra: &str, page_extra: &str, padding: usize) -> Vec<u8> {
    let mut out = Vec::new();
    let mut offsets = Vec::new();
    out.extend_from_slice(b"%PDF-1.4\n%\xE2\xE3\xCF\xD3\n");
    if padding > 0 {
        out.push(b'%');
        out.extend(std::iter::repeat_n(b' ', padding));
        out.push(b'\n');
    }
    let kids: Vec<String> = (0..pages).map(|i| format!("{} 0 R", 3 + i)).collect();
    let mut objects = vec![
        "<</Type/Catalog/Pages 2 0 R>>".to_owned(),
        format!("<</Type/Pages/Kids[{}]/Count {pages}/MediaBox[0 0 595.276 841.89]{extra}>>", kids.join(" ")),
    ];
    let content_id = 3 + pages;
    for _ in 0..pages {
        objects.push(format!("<</Type/Page/Parent 2 0 R/Contents {content_id} 0 R/Resources<<>>{page_extra}>>"));
    }
    objects.push("<</Length 20>>\nstream\n0 0 1 rg 10 10 50 50 re f\nendstream".replace("20", "27"));
    for (i, body) in objects.iter().enumerate() {
        offsets.push(out.len());
        out.extend_from_slice(format!("{} 0 obj\n{body}\nendobj\n", i + 1).as_bytes());
    }
    let xref = out.len();
    out.extend_from_slice(format!("xref\n0 {}\n0000000000 65535 f \n", objects.len() + 1).as_bytes());
    for offset in offsets {
        out.extend_from_slice(format!("{offset:010} 00000 n \n").as_bytes());
    }
    out.extend_from_slice(format!("trailer\n<</Size {}/Root 1 0 R>>\nstartxref\n{xref}\n%%EOF\n", objects.len() + 1).as_bytes());
    out
}

/// Replaces every `from` with `to` (same length, so offsets stay right).
fn replace_bytes(haystack: &[u8], from: &[u8], to: &[u8]) -> Vec<u8> {
    assert_eq!(from.len(), to.len());
    let mut out = haystack.to_vec();
    let mut i = 0;
    while i + from.len() <= out.len() {
        if &out[i..i + from.len()] == from {
            out[i..i + from.len()].copy_from_slice(to);
            i += from.len();
        } else {
            i += 1;
        }
    }
    out
}

fn serial() -> Serial {
    Serial::parse("0123456789ABCDEFGHIJKL").expect("valid")
}

fn at() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-11-28T10:00:00Z").expect("valid").with_timezone(&Utc)
}

fn issuer() -> Issuer {
    Issuer::generate(&mut rand::thread_rng()).expect("issuer")
}

fn place(page: Option<u32>, x: f64, y: f64) -> Placement {
    Placement::parse(page, x, y).expect("valid")
}

fn stamp_with(pdf: &[u8], placement: &Placement, issuer: &Issuer) -> Result<Stamped, Rejection> {
    let serial = serial();
    let url = format!("https://emeterai.test/v1/verify/{serial}");
    stamp(pdf, &StampRequest { serial: &serial, placement, signed_at: at(), verify_url: &url }, issuer)
}

#[test]
fn stamps_keeping_original_bytes_and_verifies() {
    let pdf = a4_pdf(2);
    let issuer = issuer();
    let stamped = stamp_with(&pdf, &place(None, 150.0, 250.0), &issuer).expect("stamps");
    assert_eq!(stamped.page, 2);
    assert_eq!(&stamped.pdf[8..pdf.len()], &pdf[8..], "original bytes after the header kept");
    assert!(stamped.pdf.starts_with(b"%PDF-1.7"), "header raised to 1.7");
    assert_eq!(stamped.sha256, cms::sha256(&[&stamped.pdf]));
    let found = verify(&stamped.pdf, Some(&[issuer.certificate_der().to_vec()])).expect("reads");
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].serial, serial().to_string());
    assert!(found[0].signature_valid && found[0].unmodified_since_stamp);
    assert_eq!(found[0].issuer_trusted, Some(true));
    assert_eq!(found[0].signed_at, Some(at()));
    // lopdf can read the result back and sees the widget on page 2.
    let doc = lopdf::Document::load_mem(&stamped.pdf).expect("reloads");
    assert_eq!(doc.get_pages().len(), 2);
}

#[test]
fn same_inputs_give_identical_bytes() {
    let pdf = a4_pdf(1);
    let issuer = issuer();
    let one = stamp_with(&pdf, &place(Some(1), 20.0, 30.0), &issuer).expect("stamps");
    let two = stamp_with(&pdf, &place(Some(1), 20.0, 30.0), &issuer).expect("stamps");
    assert_eq!(one, two);
}

#[test]
fn a_stamped_document_is_final() {
    let issuer = issuer();
    let stamped = stamp_with(&a4_pdf(1), &place(None, 10.0, 10.0), &issuer).expect("stamps");
    assert_eq!(stamp_with(&stamped.pdf, &place(None, 100.0, 100.0), &issuer), Err(Rejection::AlreadyStamped));
    assert_eq!(check(&stamped.pdf, &place(None, 100.0, 100.0)), Err(Rejection::AlreadyStamped));
}

#[test]
fn tampering_after_stamp_is_detected() {
    let issuer = issuer();
    let mut pdf = stamp_with(&a4_pdf(1), &place(None, 10.0, 10.0), &issuer).expect("stamps").pdf;
    let blue = pdf.windows(8).position(|w| w == b"0 0 1 rg").expect("content present");
    pdf[blue] = b'1';
    let found = verify(&pdf, None).expect("reads");
    assert!(!found[0].signature_valid);
    // Appending after the stamp keeps the signature valid but no longer whole-file.
    let mut appended = stamp_with(&a4_pdf(1), &place(None, 10.0, 10.0), &issuer).expect("stamps").pdf;
    appended.extend_from_slice(b"1 0 obj\n<</Type/Catalog/Pages 2 0 R>>\nendobj\n");
    let found = verify(&appended, None).expect("reads");
    assert!(found[0].signature_valid && !found[0].unmodified_since_stamp);
}

#[test]
fn rejections_in_order() {
    let pdf = a4_pdf(1);
    let issuer = issuer();
    assert_eq!(check(b"hello", &place(None, 0.0, 0.0)), Err(Rejection::NotPdf));
    assert_eq!(check(b"", &place(None, 0.0, 0.0)), Err(Rejection::NotPdf));
    let mut big = pdf.clone();
    big.resize(MAX_PDF_BYTES + 1, b' ');
    assert_eq!(check(&big, &place(None, 0.0, 0.0)), Err(Rejection::TooLarge));
    assert_eq!(check(&pdf[..pdf.len() / 3], &place(None, 0.0, 0.0)), Err(Rejection::Corrupt));
    assert_eq!(check(&pdf, &place(Some(2), 0.0, 0.0)), Err(Rejection::PageOutOfRange));
    assert_eq!(check(&pdf, &place(None, 190.0, 0.0)), Err(Rejection::PlacementOutOfBounds));
    assert_eq!(check(&pdf, &place(None, 0.0, 270.0)), Err(Rejection::PlacementOutOfBounds));
    assert_eq!(check(&pdf, &place(None, 210.0 - 32.0, 297.0 - 32.0)), Ok(()));
    let letter = replace_bytes(&pdf, b"595.276 841.89", b"612.000 792.00");
    assert_eq!(check(&letter, &place(None, 0.0, 0.0)), Err(Rejection::NotA4));
    // Stamp result over the limit: an input just under the limit grows past it.
    let near = pdf_with(1, "", MAX_PDF_BYTES - 100 - pdf.len());
    assert!(near.len() <= MAX_PDF_BYTES);
    assert_eq!(stamp_with(&near, &place(None, 0.0, 0.0), &issuer), Err(Rejection::TooLarge));
}

#[test]
fn overlapping_an_existing_signature_is_refused() {
    let issuer = issuer();
    let stamped = stamp_with(&a4_pdf(1), &place(None, 10.0, 10.0), &issuer).expect("stamps");
    // Turn that signature into a plain approval signature so the overlap rule decides.
    let approval = replace_bytes(&stamped.pdf, b"] e-Meterai 10000", b"] approval 000000");
    assert_eq!(check(&approval, &place(None, 30.0, 30.0)), Err(Rejection::PlacementOverlapsSignature));
    assert_eq!(check(&approval, &place(None, 10.0 + 32.5, 10.0)), Ok(()));
    assert_eq!(check(&approval, &place(None, 10.0, 10.0 + 32.5)), Ok(()));
}

#[test]
fn rotated_pages_place_the_stamp_as_displayed() {
    let issuer = issuer();
    let rotated = pdf_with(1, "/Rotate 90", 0);
    // Displayed landscape: 297 mm wide, 210 mm tall.
    assert_eq!(check(&rotated, &place(None, 0.0, 200.0)), Err(Rejection::PlacementOutOfBounds));
    let stamped = stamp_with(&rotated, &place(None, 250.0, 10.0), &issuer).expect("stamps");
    let text = String::from_utf8_lossy(&stamped.pdf);
    assert!(text.contains("/Matrix[0 1 -1 0 0 0]"), "appearance turned to stay upright");
}

#[test]
fn default_placement_is_bottom_right_inside_the_page() {
    let placement = default_placement(&a4_pdf(1), None).expect("valid");
    assert!((placement.x_mm() - (210.0 - 32.0 - 15.0)).abs() < 0.1);
    assert!((placement.y_mm() - (297.0 - 32.0 - 15.0)).abs() < 0.1);
    // With a signature in the bottom-right corner, the default moves to a free corner.
    let issuer = issuer();
    let stamped = stamp_with(&a4_pdf(1), &place(None, placement.x_mm(), placement.y_mm()), &issuer).expect("stamps");
    let approval = replace_bytes(&stamped.pdf, b"] e-Meterai 10000", b"] approval 000000");
    let moved = default_placement(&approval, None).expect("valid");
    assert!(moved.x_mm() < 20.0, "moved to the left: {moved:?}");
    assert_eq!(check(&approval, &moved), Ok(()));
    let fallback = default_placement(b"not a pdf", Some(3)).expect("valid");
    assert_eq!((fallback.page(), fallback.x_mm(), fallback.y_mm()), (Some(3), 0.0, 0.0));
}

#[test]
fn hostile_documents_are_rejected_not_panicking() {
    let cyclic = replace_bytes(&a4_pdf(1), b"/Kids[3 0 R]", b"/Kids[2 0 R]");
    assert_eq!(check(&cyclic, &place(None, 0.0, 0.0)), Err(Rejection::Corrupt));
    let mut deep = b"%PDF-1.7\n1 0 obj\n".to_vec();
    deep.extend(std::iter::repeat_n(b'[', 100_000));
    deep.extend_from_slice(b"\nendobj\ntrailer\n<</Root 1 0 R>>\n%%EOF\n");
    assert!(check(&deep, &place(None, 0.0, 0.0)).is_err());
    for cut in [0, 9, 50, 200, 400] {
        let pdf = a4_pdf(1);
        let _ = check(&pdf[..cut.min(pdf.len())], &place(None, 0.0, 0.0));
    }
}

/// A PDF whose only object stream inflates to `inflated` bytes of zeros.
fn object_stream_bomb(inflated: usize) -> Vec<u8> {
    use std::io::Write as _;
    let mut encoder = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::best());
    let zeros = vec![b' '; 1 << 20];
    for _ in 0..inflated / zeros.len() {
        encoder.write_all(&zeros).expect("in memory");
    }
    let compressed = encoder.finish().expect("in memory");
    let mut out = b"%PDF-1.7\n".to_vec();
    let objstm_at = out.len();
    out.extend_from_slice(format!("1 0 obj\n<</Type/ObjStm/N 1/First 4/Filter/FlateDecode/Length {}>>\nstream\n", compressed.len()).as_bytes());
    out.extend_from_slice(&compressed);
    out.extend_from_slice(b"\nendstream\nendobj\n");
    let xref_at = out.len();
    let mut xref = Vec::new();
    for (kind, field2, field3) in [(0u8, 0u32, 65535u16), (1, objstm_at as u32, 0), (2, 1, 0)] {
        xref.push(kind);
        xref.extend_from_slice(&field2.to_be_bytes());
        xref.extend_from_slice(&field3.to_be_bytes());
    }
    out.extend_from_slice(format!("3 0 obj\n<</Type/XRef/Size 4/W[1 4 2]/Index[0 3]/Root 2 0 R/Length {}>>\nstream\n", xref.len()).as_bytes());
    out.extend_from_slice(&xref);
    out.extend_from_slice(format!("\nendstream\nendobj\nstartxref\n{xref_at}\n%%EOF\n").as_bytes());
    out
}

#[test]
fn compression_bombs_are_refused_without_inflating() {
    // 256 MiB of spaces compress to a few hundred KB; the loader stops at its per-stream cap.
    let bomb = object_stream_bomb(256 << 20);
    assert!(bomb.len() <= MAX_PDF_BYTES, "bomb fits the size limit: {}", bomb.len());
    let started = std::time::Instant::now();
    assert_eq!(check(&bomb, &place(None, 0.0, 0.0)), Err(Rejection::Corrupt));
    assert!(verify(&bomb, None).is_err());
    let _ = started; // no timing assertion: a hang would show as a stuck test
}

#[test]
fn truncations_of_a_stamped_document_never_panic() {
    let issuer = issuer();
    let stamped = stamp_with(&a4_pdf(1), &place(None, 10.0, 10.0), &issuer).expect("stamps").pdf;
    for cut in (0..stamped.len()).step_by(97) {
        let head = &stamped[..cut];
        let _ = check(head, &place(None, 100.0, 100.0));
        let _ = verify(head, None);
    }
}

#[test]
fn signed_documents_keep_their_header_and_get_a_catalog_version() {
    // Any /ByteRange means a signature covers the header: the version goes in the catalog.
    let pdf = pdf_with(1, "/Note(/ByteRange)", 0);
    let stamped = stamp_with(&pdf, &place(None, 10.0, 10.0), &issuer()).expect("stamps");
    assert!(stamped.pdf.starts_with(b"%PDF-1.4"));
    assert_eq!(&stamped.pdf[..pdf.len()], &pdf[..], "every original byte kept");
    let loaded = parse::load(&stamped.pdf, false).expect("reloads");
    let catalog = parse::dict_of(&loaded.doc, loaded.root_id).expect("catalog");
    assert_eq!(parse::catalog_version(&loaded.doc, &catalog), Some((1, 7)));
}

#[test]
fn rewritten_objects_keep_every_value_token_for_token() {
    // Fractional boxes as producers write them (reportlab's A4), a user unit, odd spellings.
    let page_extra = "/MediaBox[0 0 595.2756 841.8898]/CropBox[0.5 0.25 595.0000 841.5]/UserUnit 1.0/Rotate 0/X -.50";
    let pdf = pdf_with_page(1, "", page_extra, 0);
    let stamped = stamp_with(&pdf, &place(None, 10.0, 10.0), &issuer()).expect("stamps");
    let update = String::from_utf8_lossy(&stamped.pdf[pdf.len()..]).into_owned();
    let page_at = update.find("3 0 obj").expect("the page is rewritten");
    let page = &update[page_at..page_at + update[page_at..].find("endobj").expect("ends")];
    for kept in ["/MediaBox [0 0 595.2756 841.8898]", "/CropBox [0.5 0.25 595.0000 841.5]", "/UserUnit 1.0", "/X -.50", "/Annots ["] {
        assert!(page.contains(kept), "{kept} in {page}");
    }
}

#[test]
fn user_unit_scales_the_page_and_the_stamp() {
    // Half an A4 counted in units of 2 points prints as A4: accepted and placed as on A4.
    let half_a4 = pdf_with_page(1, "", "/MediaBox[0 0 297.638 420.945]/UserUnit 2", 0);
    assert_eq!(check(&half_a4, &place(None, 150.0, 250.0)), Ok(()));
    assert_eq!(check(&half_a4, &place(None, 190.0, 10.0)), Err(Rejection::PlacementOutOfBounds));
    let stamped = stamp_with(&half_a4, &place(None, 0.0, 0.0), &issuer()).expect("stamps");
    let loaded = parse::load(&stamped.pdf, false).expect("reloads");
    let widget = loaded.signature_widgets.last().expect("the stamp's widget");
    // 32 mm is 90.7 points, i.e. 45.35 units of 2 points, from the top-left corner.
    let side = appearance::STAMP_SIDE_PT / 2.0;
    assert!((widget.rect.width() - side).abs() < 1e-6, "{:?}", widget.rect);
    assert!(widget.rect.x0.abs() < 1e-6 && (widget.rect.y1 - 420.945).abs() < 1e-6, "{:?}", widget.rect);

    // A whole A4 box in units of 2 points is twice A4 on paper.
    let twice_a4 = pdf_with_page(1, "", "/UserUnit 2", 0);
    assert_eq!(check(&twice_a4, &place(None, 10.0, 10.0)), Err(Rejection::NotA4));
    // The unit belongs to the page: on the page tree node it is not inherited.
    assert_eq!(check(&pdf_with(1, "/UserUnit 2", 0), &place(None, 10.0, 10.0)), Ok(()));
    // A unit that is not a positive number is ignored, as readers do.
    for nonsense in ["/UserUnit -2", "/UserUnit 0", "/UserUnit /Two"] {
        let pdf = pdf_with_page(1, "", nonsense, 0);
        assert_eq!(check(&pdf, &place(None, 10.0, 10.0)), Ok(()), "{nonsense}");
    }
}

#[test]
fn a_hostile_user_unit_is_not_a4_and_never_places_absurdly() {
    // PDF has no exponents: 1e-300 and a box of 5.95e302 units, written out in full, make an A4
    // on paper by arithmetic, as do 1e300 and a box of 5.95e-298 units.
    let tiny_unit = format!("0.{}1", "0".repeat(299));
    let huge_box = format!("/MediaBox[0 0 595276{} 84189{}]/UserUnit {tiny_unit}", "0".repeat(297), "0".repeat(298));
    let tiny_side = |digits: &str| format!("0.{}{digits}", "0".repeat(297));
    let tiny_box = format!("/MediaBox[0 0 {} {}]/UserUnit 1{}", tiny_side("595276"), tiny_side("84189"), "0".repeat(300));
    for (name, page) in [("unit 1e-300", huge_box), ("unit 1e300", tiny_box)] {
        let pdf = pdf_with_page(1, "", &page, 0);
        assert_eq!(check(&pdf, &place(None, 10.0, 10.0)), Err(Rejection::NotA4), "{name}");
        assert!(stamp_with(&pdf, &place(None, 10.0, 10.0), &issuer()).is_err(), "{name}");
    }
}
