//! The appended update: the original bytes untouched (except the header digits when no
//! signature covers them), then the new and changed objects, a cross-reference section of the
//! same kind as the previous one with `/Prev`, and a trailer.

use std::io::Write as _;

use std::rc::Rc;

use super::pdf::{Dict, Obj};
use super::parse::ObjectId;

use super::appearance::{self, BOLD_FONT, MONO_FONT, STAMP_SIDE_PT, StampText};
use super::parse::{self, Loaded, XrefKind, contains};
use super::placement::upright_matrix;
use super::serialize::{real, write_object};
use super::{Rejection, reason_for};

/// Bytes reserved for the CMS signature (written as twice as many hex digits): our signed
/// attributes and signature (~300 bytes), the issuer's certificate and chain (at most
/// `issuer::MAX_CERTIFICATE_BYTES`) and a timestamp token with the authority's certificates
/// (typically 2 to 6 KB).
pub const SIGNATURE_RESERVED_BYTES: usize = 16384;
/// The minimum version the output declares.
const MIN_VERSION: (u8, u8) = (1, 6);
/// Width of each `/ByteRange` number placeholder.
const BYTE_RANGE_DIGITS: usize = 10;

pub struct Inputs<'a> {
    pub serial: &'a str,
    pub signing_time_pdf: String,
    pub date_line: String,
    pub verify_url: &'a str,
    pub page_index: usize,
    pub rect: parse::Rect,
}

/// An update ready to be signed: the whole output with zeroed `/Contents`.
pub struct Prepared {
    pub bytes: Vec<u8>,
    /// Offset of `<` and one past `>` of the `/Contents` hex string.
    pub contents_start: usize,
    pub contents_end: usize,
}

pub fn prepare(loaded: &Loaded<'_>, inputs: &Inputs<'_>) -> Result<Prepared, Rejection> {
    let doc = &loaded.doc;
    let original = doc.bytes();
    let page = loaded.pages.get(inputs.page_index).ok_or(Rejection::PageOutOfRange)?;
    let catalog = parse::dict_of(doc, loaded.root_id).ok_or(Rejection::Corrupt)?;

    let trailer_size = doc.trailer.get(b"Size").and_then(Obj::as_i64).unwrap_or(0);
    // PDF readers cap object numbers at 8,388,607 (ISO 32000-1 annex C).
    let first_new = u32::try_from(trailer_size.max(i64::from(doc.max_number) + 1))
        .ok()
        .filter(|n| *n < 8_388_600)
        .ok_or(Rejection::Corrupt)?;
    let value_id: ObjectId = (first_new, 0);
    let widget_id: ObjectId = (first_new + 1, 0);
    let appearance_id: ObjectId = (first_new + 2, 0);
    let xref_stream_id: ObjectId = (first_new + 3, 0);
    let widget_ref = Obj::Ref(widget_id);
    // An array with one more element; a value that is not an array becomes one.
    let appended = |existing: Option<Obj>| {
        let mut items = match existing {
            Some(Obj::Array(items)) => (*items).clone(),
            _ => Vec::new(),
        };
        items.push(widget_ref.clone());
        Obj::Array(Rc::new(items))
    };

    // Every changed object is the object as read, with only the keys we add or change: every
    // other value, numbers included, is written with the very tokens it was read with.
    let mut changed: Vec<(ObjectId, Obj)> = Vec::new();

    // The page lists the widget in /Annots (an indirect array is changed in place).
    let page_dict = parse::dict_of(doc, page.id).ok_or(Rejection::Corrupt)?;
    match page_dict.get(b"Annots") {
        Some(Obj::Ref(annots_id)) => {
            // An array the stamp extends must be read whole: one that cannot be is corrupt.
            let existing = Some(doc.get(*annots_id).map_err(|_| Rejection::Corrupt)?);
            changed.push((*annots_id, appended(existing)));
        }
        existing => {
            let mut page_copy = (*page_dict).clone();
            page_copy.set(b"Annots", appended(existing.cloned()));
            changed.push((page.id, Obj::Dict(Rc::new(page_copy))));
        }
    }

    // The form lists the field; /SigFlags 3 = SignaturesExist | AppendOnly.
    let mut catalog_copy = (*catalog).clone();
    let mut catalog_changed = false;
    let header_signed = contains(original, b"/ByteRange");
    let sig_flags = |form: &mut Dict| {
        // /NeedAppearances makes viewers redraw every field, and they draw signature fields
        // blank: the stamp would vanish. Dropped only where no signature covers the form.
        if !header_signed && form.has(b"NeedAppearances") {
            form.remove(b"NeedAppearances");
        }
        let old = form.get(b"SigFlags").and_then(|o| doc.resolve(o).ok()).and_then(|o| o.as_i64()).unwrap_or(0);
        if old | 3 != old {
            form.set(b"SigFlags", Obj::Int(old | 3));
        }
    };
    let add_field = |form: &mut Dict, changed: &mut Vec<(ObjectId, Obj)>| -> Result<(), Rejection> { match form.get(b"Fields") {
        Some(Obj::Ref(fields_id)) => {
            let existing = doc.get(*fields_id).map_err(|_| Rejection::Corrupt)?;
            changed.push((*fields_id, appended(Some(existing))));
            Ok(())
        }
        existing => {
            let value = appended(existing.cloned());
            form.set(b"Fields", value);
            Ok(())
        }
    } };
    match catalog.get(b"AcroForm") {
        Some(Obj::Ref(form_id)) if parse::dict_of(doc, *form_id).is_some() => {
            let mut form = parse::dict_of(doc, *form_id).map(|d| (*d).clone()).unwrap_or_default();
            add_field(&mut form, &mut changed)?;
            sig_flags(&mut form);
            changed.push((*form_id, Obj::Dict(Rc::new(form))));
        }
        Some(Obj::Dict(form)) => {
            let mut form = (**form).clone();
            add_field(&mut form, &mut changed)?;
            sig_flags(&mut form);
            catalog_copy.set(b"AcroForm", Obj::Dict(Rc::new(form)));
            catalog_changed = true;
        }
        _ => {
            let mut form = Dict::new();
            form.set(b"Fields", Obj::Array(Rc::new(vec![widget_ref.clone()])));
            form.set(b"SigFlags", Obj::Int(3));
            catalog_copy.set(b"AcroForm", Obj::Dict(Rc::new(form)));
            catalog_changed = true;
        }
    }

    // Version: header digits when no signature covers them, else the catalog's /Version.
    let header_version = loaded.header_version.unwrap_or((1, 0));
    let effective = header_version.max(parse::catalog_version(doc, &catalog).unwrap_or((1, 0)));
    let rewrite_header = effective < MIN_VERSION && !header_signed && loaded.header_version.is_some();
    if effective < MIN_VERSION && !rewrite_header {
        catalog_copy.set(b"Version", Obj::name(b"1.7"));
        catalog_changed = true;
    }
    if catalog_changed {
        changed.push((loaded.root_id, Obj::Dict(Rc::new(catalog_copy))));
    }

    // Same object changed twice (e.g. page is also the Annots holder) cannot happen, but a
    // hostile file can make the AcroForm and the page the same object: refuse it.
    let mut ids: Vec<ObjectId> = changed.iter().map(|(id, _)| *id).collect();
    ids.sort_unstable();
    ids.dedup();
    if ids.len() != changed.len() {
        return Err(Rejection::Corrupt);
    }

    let mut out = Vec::with_capacity(original.len() + SIGNATURE_RESERVED_BYTES * 2 + 32 * 1024);
    out.extend_from_slice(original);
    if rewrite_header && let Some(digits) = out.get_mut(loaded.header_offset + 5..loaded.header_offset + 8) {
        digits.copy_from_slice(b"1.7");
    }
    if !matches!(out.last(), Some(b'\n' | b'\r')) {
        out.push(b'\n');
    }
    let base = loaded.header_offset;
    let mut offsets: Vec<(ObjectId, usize)> = Vec::new();

    for (id, object) in &changed {
        offsets.push((*id, out.len() - base));
        let _ = writeln!(out, "{} {} obj", id.0, id.1);
        write_object(&mut out, object).map_err(|_| Rejection::Corrupt)?;
        out.extend_from_slice(b"\nendobj\n");
    }

    // The signature value, with placeholders filled in after the layout is known.
    offsets.push((value_id, out.len() - base));
    let _ = write!(out, "{} 0 obj\n<</Type/Sig/Filter/Adobe.PPKLite/SubFilter/ETSI.CAdES.detached/Name", value_id.0);
    write_literal(&mut out, b"e-Meterai");
    out.extend_from_slice(b"/Reason");
    write_literal(&mut out, reason_for(inputs.serial).as_bytes());
    out.extend_from_slice(b"/M");
    write_literal(&mut out, inputs.signing_time_pdf.as_bytes());
    out.extend_from_slice(b"/ByteRange[");
    let byte_range_at = out.len();
    for i in 0..4 {
        if i > 0 {
            out.push(b' ');
        }
        out.extend(std::iter::repeat_n(b'0', BYTE_RANGE_DIGITS));
    }
    out.extend_from_slice(b"]/Contents");
    let contents_start = out.len();
    out.push(b'<');
    out.extend(std::iter::repeat_n(b'0', SIGNATURE_RESERVED_BYTES * 2));
    out.push(b'>');
    let contents_end = out.len();
    out.extend_from_slice(b">>\nendobj\n");

    // The widget, merged with its signature field.
    offsets.push((widget_id, out.len() - base));
    let r = inputs.rect;
    let _ = write!(
        out,
        "{} 0 obj\n<</Type/Annot/Subtype/Widget/FT/Sig/T",
        widget_id.0
    );
    write_literal(&mut out, format!("e-Meterai {}", inputs.serial).as_bytes());
    let _ = write!(
        out,
        "/V {} 0 R/F 132/P {} {} R/Rect[{} {} {} {}]/AP<</N {} 0 R>>>>\nendobj\n",
        value_id.0,
        page.id.0,
        page.id.1,
        real(r.x0),
        real(r.y0),
        real(r.x1),
        real(r.y1),
        appearance_id.0
    );

    // The appearance: the stamp art, kept upright on rotated pages by /Matrix.
    let text = StampText { serial: inputs.serial, date: &inputs.date_line, verify_url: inputs.verify_url };
    let content = appearance::stamp_content(&text).ok_or(Rejection::Corrupt)?;
    let m = upright_matrix(page.rotate);
    offsets.push((appearance_id, out.len() - base));
    let side = real(STAMP_SIDE_PT);
    let _ = write!(
        out,
        "{} 0 obj\n<</Type/XObject/Subtype/Form/BBox[0 0 {side} {side}]/Matrix[{} {} {} {} {} {}]/Resources<</ProcSet[/PDF/Text]/Font<</{BOLD_FONT}<</Type/Font/Subtype/Type1/BaseFont/Helvetica-Bold/Encoding/WinAnsiEncoding>>/{MONO_FONT}<</Type/Font/Subtype/Type1/BaseFont/Courier/Encoding/WinAnsiEncoding>>>>>>/Length {}>>\nstream\n",
        appearance_id.0, m[0], m[1], m[2], m[3], m[4], m[5], content.len()
    );
    out.extend_from_slice(content.as_bytes());
    out.extend_from_slice(b"\nendstream\nendobj\n");

    // Cross-reference section and trailer.
    let mut trailer = Dict::new();
    let highest_new = match loaded.xref_kind {
        XrefKind::Table => appearance_id.0,
        XrefKind::Stream => xref_stream_id.0,
    };
    let size = i64::from(highest_new) + 1;
    trailer.set(b"Size", Obj::Int(size.max(trailer_size)));
    trailer.set(b"Root", Obj::Ref(loaded.root_id));
    for key in [&b"Info"[..], b"ID"] {
        if let Some(value) = doc.trailer.get(key) {
            trailer.set(key, value.clone());
        }
    }
    if doc.repaired {
        // The file's own cross-reference data is unusable: this section lists every object
        // found in it, where it stands, and names no earlier section.
        let ours: std::collections::HashSet<u32> = offsets.iter().map(|((number, _), _)| *number).collect();
        for (number, generation, offset) in doc.objects_at_offsets() {
            if !ours.contains(&number) && number != 0 {
                offsets.push(((number, generation), offset));
            }
        }
    } else {
        trailer.set(b"Prev", Obj::Int(loaded.startxref as i64));
    }
    let xref_at = out.len() - base;
    match loaded.xref_kind {
        XrefKind::Table => write_xref_table(&mut out, &mut offsets, &trailer, doc.repaired)?,
        XrefKind::Stream => write_xref_stream(&mut out, &mut offsets, trailer, xref_stream_id, xref_at)?,
    }
    let _ = write!(out, "startxref\n{xref_at}\n%%EOF\n");

    // Now the layout is final: fill in /ByteRange.
    let total = out.len();
    let numbers = [0, contents_start, contents_end, total - contents_end];
    let mut byte_range = String::new();
    for (i, n) in numbers.iter().enumerate() {
        if i > 0 {
            byte_range.push(' ');
        }
        byte_range.push_str(&format!("{n:<width$}", width = BYTE_RANGE_DIGITS));
    }
    let slot = out.get_mut(byte_range_at..byte_range_at + byte_range.len()).ok_or(Rejection::Corrupt)?;
    if byte_range.len() != 4 * BYTE_RANGE_DIGITS + 3 {
        return Err(Rejection::TooLarge);
    }
    slot.copy_from_slice(byte_range.as_bytes());
    Ok(Prepared { bytes: out, contents_start, contents_end })
}

/// Puts the DER signature into the reserved `/Contents` as upper-case hex.
pub fn fill_signature(prepared: &mut Prepared, cms: &[u8]) -> bool {
    if cms.len() > SIGNATURE_RESERVED_BYTES {
        return false;
    }
    let Some(slot) = prepared.bytes.get_mut(prepared.contents_start + 1..prepared.contents_end - 1) else { return false };
    let hex = hex::encode_upper(cms);
    match slot.get_mut(..hex.len()) {
        Some(dest) => {
            dest.copy_from_slice(hex.as_bytes());
            true
        }
        None => false,
    }
}

fn write_literal(out: &mut Vec<u8>, text: &[u8]) {
    let _ = write_object(out, &Obj::Str(Rc::from(text), false));
}

fn write_xref_table(out: &mut Vec<u8>, offsets: &mut [(ObjectId, usize)], trailer: &Dict, complete: bool) -> Result<(), Rejection> {
    offsets.sort_by_key(|(id, _)| id.0);
    out.extend_from_slice(b"xref\n");
    if complete {
        out.extend_from_slice(b"0 1\n0000000000 65535 f\r\n");
    }
    for run in runs(offsets) {
        let _ = writeln!(out, "{} {}", run[0].0.0, run.len());
        for ((_, generation), offset) in run {
            if *offset > 9_999_999_999 {
                return Err(Rejection::TooLarge);
            }
            let _ = write!(out, "{offset:010} {generation:05} n\r\n");
        }
    }
    out.extend_from_slice(b"trailer\n");
    write_object(out, &Obj::Dict(Rc::new(trailer.clone()))).map_err(|_| Rejection::Corrupt)?;
    out.push(b'\n');
    Ok(())
}

fn write_xref_stream(
    out: &mut Vec<u8>,
    offsets: &mut Vec<(ObjectId, usize)>,
    mut dict: Dict,
    stream_id: ObjectId,
    stream_offset: usize,
) -> Result<(), Rejection> {
    offsets.push((stream_id, stream_offset));
    offsets.sort_by_key(|(id, _)| id.0);
    let mut index = Vec::new();
    let mut data = Vec::new();
    for run in runs(offsets) {
        index.push(Obj::Int(i64::from(run[0].0.0)));
        index.push(Obj::Int(run.len() as i64));
        for ((_, generation), offset) in run {
            let offset = u32::try_from(*offset).map_err(|_| Rejection::TooLarge)?;
            data.push(1u8);
            data.extend_from_slice(&offset.to_be_bytes());
            data.extend_from_slice(&generation.to_be_bytes());
        }
    }
    dict.set(b"Type", Obj::name(b"XRef"));
    dict.set(b"W", Obj::Array(Rc::new(vec![Obj::Int(1), Obj::Int(4), Obj::Int(2)])));
    dict.set(b"Index", Obj::Array(Rc::new(index)));
    dict.set(b"Length", Obj::Int(data.len() as i64));
    let _ = writeln!(out, "{} 0 obj", stream_id.0);
    write_object(out, &Obj::Dict(Rc::new(dict))).map_err(|_| Rejection::Corrupt)?;
    out.extend_from_slice(b"\nstream\n");
    out.extend_from_slice(&data);
    out.extend_from_slice(b"\nendstream\nendobj\n");
    Ok(())
}

/// Consecutive object numbers grouped into subsections.
fn runs(sorted: &[(ObjectId, usize)]) -> Vec<&[(ObjectId, usize)]> {
    let mut result = Vec::new();
    let mut start = 0;
    for i in 1..=sorted.len() {
        let breaks = i == sorted.len() || sorted[i].0.0 != sorted[i - 1].0.0 + 1;
        if breaks {
            result.push(&sorted[start..i]);
            start = i;
        }
    }
    result
}

