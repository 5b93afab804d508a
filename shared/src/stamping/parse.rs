//! Reading a PDF just far enough to stamp it: header, the last cross-reference section, the
//! page tree with inherited boxes and rotation, and the signatures already on the document.
//! Every walk is bounded (depth, count, visited set) so hostile files cannot loop or blow up.

use std::borrow::Cow;
use std::collections::HashSet;
use std::rc::Rc;

pub use super::pdf::XrefKind;
use super::pdf::{Dict, Doc, Obj};
use super::Rejection;

pub type ObjectId = super::pdf::Id;

/// Most signature values looked at: enough for any real document, and a bound on the work a
/// file with thousands of signature fields can cause.
pub const MAX_SIGNATURE_VALUES: usize = 64;
/// Deepest page tree / field tree / parent chain we follow.
const MAX_TREE_DEPTH: usize = 64;
/// Most pages we accept in one document.
const MAX_PAGES: usize = 5_000;
/// Most field-tree nodes and annotations we look at.
const MAX_NODES: usize = 50_000;
/// How far the `%PDF-` header may sit from the start of the file.
const HEADER_SEARCH_WINDOW: usize = 1024;

/// A rectangle in default user space, normalised so that `x0 <= x1` and `y0 <= y1`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rect {
    pub x0: f64,
    pub y0: f64,
    pub x1: f64,
    pub y1: f64,
}

impl Rect {
    pub fn new(a: f64, b: f64, c: f64, d: f64) -> Rect {
        Rect { x0: a.min(c), y0: b.min(d), x1: a.max(c), y1: b.max(d) }
    }
    pub fn width(&self) -> f64 {
        self.x1 - self.x0
    }
    pub fn height(&self) -> f64 {
        self.y1 - self.y0
    }
    pub fn intersection(&self, other: &Rect) -> Option<Rect> {
        let r = Rect { x0: self.x0.max(other.x0), y0: self.y0.max(other.y0), x1: self.x1.min(other.x1), y1: self.y1.min(other.y1) };
        (r.x0 < r.x1 && r.y0 < r.y1).then_some(r)
    }
    pub fn has_area(&self) -> bool {
        self.width() > 0.0 && self.height() > 0.0
    }
}

#[derive(Debug, Clone)]
pub struct PageInfo {
    pub id: ObjectId,
    /// The visible area: the crop box clipped to the media box.
    pub visible: Rect,
    /// Clockwise display rotation: 0, 90, 180 or 270.
    pub rotate: u16,
    /// `/UserUnit` (PDF 1.6): the size of one user-space unit in points (1/72 inch); 1 unless
    /// the page says otherwise. A page with boxes of half an A4 and `/UserUnit 2` prints as A4.
    pub user_unit: f64,
}

impl PageInfo {
    /// Width and height in points (1/72 inch) of the page as displayed, `/UserUnit` applied.
    pub fn displayed_size(&self) -> (f64, f64) {
        let (w, h) = if self.rotate.is_multiple_of(180) {
            (self.visible.width(), self.visible.height())
        } else {
            (self.visible.height(), self.visible.width())
        };
        (w * self.user_unit, h * self.user_unit)
    }
}

/// A signature value dictionary found on the document.
#[derive(Debug, Clone)]
pub struct SignatureValue {
    pub reason: Option<Vec<u8>>,
    /// `/SubFilter` (`adbe.pkcs7.detached`, `ETSI.CAdES.detached`, ...).
    pub sub_filter: Option<Vec<u8>>,
    pub signing_time: Option<Vec<u8>>,
    pub byte_range: Option<Vec<i64>>,
    pub contents: Option<Rc<[u8]>>,
    /// `/P` of a DocMDP transform in this signature's `/Reference`, when there is one (default 2).
    pub docmdp_permission: Option<i64>,
}

/// A signature field widget with its rectangle, on some page.
#[derive(Debug, Clone)]
pub struct SignatureWidget {
    pub page: Option<ObjectId>,
    pub rect: Rect,
}

pub struct Loaded<'a> {
    /// The document (when its cross-reference data was damaged and no signature exists, read
    /// by scanning: `doc.repaired`).
    pub doc: Doc<'a>,
    /// Where `%PDF-` starts; cross-reference offsets count from here.
    pub header_offset: usize,
    pub header_version: Option<(u8, u8)>,
    /// The last `startxref` value (relative to the header), pointing at a real section.
    pub startxref: usize,
    pub xref_kind: XrefKind,
    pub root_id: ObjectId,
    pub pages: Vec<PageInfo>,
    pub signatures: Vec<SignatureValue>,
    pub signature_widgets: Vec<SignatureWidget>,
    /// The catalog's `/Perms /DocMDP` permission, when the document is certified.
    pub certification_permission: Option<i64>,
}

/// Finds `%PDF-` near the start; `None` means this is not a PDF.
pub fn find_header(pdf: &[u8]) -> Option<(usize, Option<(u8, u8)>)> {
    let window = &pdf[..pdf.len().min(HEADER_SEARCH_WINDOW)];
    let offset = window.windows(5).position(|w| w == b"%PDF-")?;
    let digits = pdf.get(offset + 5..offset + 8);
    let version = match digits {
        Some([major, b'.', minor]) if major.is_ascii_digit() && minor.is_ascii_digit() => Some((major - b'0', minor - b'0')),
        _ => None,
    };
    Some((offset, version))
}

/// Loads what stamping needs, or says why the file cannot be stamped. A file whose last
/// cross-reference section cannot be found has no sound `/Prev` for an incremental update: when
/// `allow_rewrite` and it is unsigned, it is read by scanning for its objects and the update
/// carries a complete cross-reference section; else it is corrupt.
pub fn load(pdf: &[u8], allow_rewrite: bool) -> Result<Loaded<'_>, Rejection> {
    let (header_offset, header_version) = find_header(pdf).ok_or(Rejection::NotPdf)?;
    let Some((startxref, xref_kind)) = last_section(pdf, header_offset) else {
        if contains(pdf, b"/Encrypt") {
            return Err(Rejection::Encrypted);
        }
        // Rewrite only what standard readers still repair: a classic trailer and a startxref
        // are there, just with a wrong offset. Truncated files and broken xref streams stay
        // corrupt, and signed files are never rewritten (that would break their signatures).
        // Object streams are refused here: scanning cannot find the objects inside them.
        let repairable = contains(pdf, b"trailer") && contains(pdf, b"startxref") && !contains(pdf, b"/ObjStm");
        if !allow_rewrite || !repairable || contains(pdf, b"/ByteRange") {
            return Err(Rejection::Corrupt);
        }
        // Read as readers repair it; the update then carries a complete cross-reference section
        // (no /Prev), and the original bytes stay as they are.
        let doc = Doc::open_repaired(Cow::Borrowed(pdf), header_offset).map_err(|_| Rejection::Corrupt)?;
        return finish(doc, header_version, 0, XrefKind::Table);
    };
    let doc = match Doc::open(Cow::Borrowed(pdf), header_offset, startxref) {
        Ok(doc) => doc,
        Err(_) if contains(pdf, b"/Encrypt") => return Err(Rejection::Encrypted),
        Err(_) => return Err(Rejection::Corrupt),
    };
    finish(doc, header_version, startxref, xref_kind)
}

fn finish(doc: Doc<'_>, header_version: Option<(u8, u8)>, startxref: usize, xref_kind: XrefKind) -> Result<Loaded<'_>, Rejection> {
    if doc.trailer.has(b"Encrypt") {
        return Err(Rejection::Encrypted);
    }
    let root_id = doc.trailer.get(b"Root").and_then(Obj::as_ref_id).ok_or(Rejection::Corrupt)?;
    let catalog = dict_of(&doc, root_id).ok_or(Rejection::Corrupt)?;
    let pages = collect_pages(&doc, &catalog)?;
    if pages.is_empty() {
        return Err(Rejection::Corrupt);
    }
    let (signatures, signature_widgets) = collect_signatures(&doc, &catalog, &pages);
    let certification_permission = certification_permission(&doc, &catalog);
    Ok(Loaded {
        header_offset: doc.base,
        doc,
        header_version,
        startxref,
        xref_kind,
        root_id,
        pages,
        signatures,
        signature_widgets,
        certification_permission,
    })
}

pub fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    memchr::memmem::find(haystack, needle).is_some()
}

fn rfind(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    memchr::memmem::rfind(haystack, needle)
}

/// The value of the last `startxref`, checked to point at a cross-reference table or stream
/// (whitespace before it is tolerated and skipped). Our `/Prev` must name a real section.
fn last_section(pdf: &[u8], header_offset: usize) -> Option<(usize, XrefKind)> {
    let keyword = rfind(pdf, b"startxref")?;
    let after = pdf.get(keyword + 9..)?;
    let digits: Vec<u8> = after.iter().skip_while(|b| b.is_ascii_whitespace()).take_while(|b| b.is_ascii_digit()).copied().collect();
    if digits.is_empty() || digits.len() > 10 {
        return None;
    }
    let value: usize = std::str::from_utf8(&digits).ok()?.parse().ok()?;
    let mut position = header_offset.checked_add(value)?;
    while pdf.get(position).is_some_and(|b| b.is_ascii_whitespace()) {
        position += 1;
    }
    let at = pdf.get(position..)?;
    if at.starts_with(b"xref") {
        return Some((position - header_offset, XrefKind::Table));
    }
    // "N G obj" whose dictionary is a cross-reference stream.
    let head = &at[..at.len().min(512)];
    let mut parts = head.split(|b| b.is_ascii_whitespace()).filter(|p| !p.is_empty());
    let number_ok = parts.next().is_some_and(|p| p.iter().all(u8::is_ascii_digit));
    let generation_ok = parts.next().is_some_and(|p| p.iter().all(u8::is_ascii_digit));
    let obj_ok = parts.next().is_some_and(|p| p.starts_with(b"obj"));
    if number_ok && generation_ok && obj_ok && contains(head, b"/XRef") {
        return Some((position - header_offset, XrefKind::Stream));
    }
    None
}

/// Follows references (a bounded number of hops) to the object they name.
pub fn resolve(doc: &Doc<'_>, object: &Obj) -> Option<Obj> {
    doc.resolve(object).ok()
}

pub fn dict_of(doc: &Doc<'_>, id: ObjectId) -> Option<Rc<Dict>> {
    doc.get(id).ok()?.as_dict().cloned()
}

pub fn get(doc: &Doc<'_>, dict: &Dict, key: &[u8]) -> Option<Obj> {
    resolve(doc, dict.get(key)?)
}

pub fn get_dict(doc: &Doc<'_>, dict: &Dict, key: &[u8]) -> Option<Rc<Dict>> {
    get(doc, dict, key)?.as_dict().cloned()
}

pub fn get_array(doc: &Doc<'_>, dict: &Dict, key: &[u8]) -> Option<Rc<Vec<Obj>>> {
    get(doc, dict, key)?.as_array().cloned()
}

pub fn number(doc: &Doc<'_>, object: &Obj) -> Option<f64> {
    resolve(doc, object)?.as_f64()
}

pub fn rect_of(doc: &Doc<'_>, object: &Obj) -> Option<Rect> {
    let items = resolve(doc, object)?.as_array()?.clone();
    if items.len() != 4 {
        return None;
    }
    let v: Vec<f64> = items.iter().filter_map(|o| number(doc, o)).collect();
    match v.as_slice() {
        [a, b, c, d] => Some(Rect::new(*a, *b, *c, *d)),
        _ => None,
    }
}

fn name_is(doc: &Doc<'_>, dict: &Dict, key: &[u8], expected: &[u8]) -> bool {
    get(doc, dict, key).is_some_and(|n| n.as_name() == Some(expected))
}

#[derive(Clone, Copy)]
struct Inherited {
    media: Option<Rect>,
    crop: Option<Rect>,
    rotate: Option<i64>,
}

/// Pages in order, with `/MediaBox`, `/CropBox` and `/Rotate` inherited down the tree.
fn collect_pages(doc: &Doc<'_>, catalog: &Dict) -> Result<Vec<PageInfo>, Rejection> {
    let root = catalog.get(b"Pages").and_then(Obj::as_ref_id).ok_or(Rejection::Corrupt)?;
    let mut pages = Vec::new();
    let mut visited = HashSet::new();
    // Explicit stack instead of recursion: (node, inherited attributes, depth).
    let mut stack = vec![(root, Inherited { media: None, crop: None, rotate: None }, 0usize)];
    while let Some((id, inherited, depth)) = stack.pop() {
        if depth > MAX_TREE_DEPTH || !visited.insert(id) || visited.len() > MAX_PAGES * 2 {
            return Err(Rejection::Corrupt);
        }
        let node = dict_of(doc, id).ok_or(Rejection::Corrupt)?;
        let here = Inherited {
            media: node.get(b"MediaBox").and_then(|o| rect_of(doc, o)).or(inherited.media),
            crop: node.get(b"CropBox").and_then(|o| rect_of(doc, o)).or(inherited.crop),
            rotate: node.get(b"Rotate").and_then(|o| number(doc, o)).map(|r| r as i64).or(inherited.rotate),
        };
        let is_page = name_is(doc, &node, b"Type", b"Page") || (!node.has(b"Kids") && node.has(b"Contents"));
        if is_page {
            // /UserUnit belongs to the page itself: it is not inherited down the tree.
            let user_unit = node.get(b"UserUnit").and_then(|o| number(doc, o));
            pages.push(page_info(id, here, user_unit)?);
            if pages.len() > MAX_PAGES {
                return Err(Rejection::Corrupt);
            }
            continue;
        }
        let kids = get_array(doc, &node, b"Kids").ok_or(Rejection::Corrupt)?;
        if kids.len() > MAX_PAGES * 2 {
            return Err(Rejection::Corrupt);
        }
        // Pushed in reverse so pages pop in document order.
        for kid in kids.iter().rev() {
            if let Obj::Ref(kid_id) = kid {
                stack.push((*kid_id, here, depth + 1));
            }
        }
    }
    Ok(pages)
}

fn page_info(id: ObjectId, attrs: Inherited, user_unit: Option<f64>) -> Result<PageInfo, Rejection> {
    // A page without a media box is broken; readers fall back to US Letter.
    let media = attrs.media.unwrap_or(Rect::new(0.0, 0.0, 612.0, 792.0));
    let visible = attrs.crop.and_then(|crop| crop.intersection(&media)).unwrap_or(media);
    if !visible.has_area() {
        return Err(Rejection::Corrupt);
    }
    let rotate = attrs.rotate.unwrap_or(0).rem_euclid(360);
    let rotate = match rotate {
        90 => 90,
        180 => 180,
        270 => 270,
        _ => 0, // readers ignore rotations that are not multiples of 90
    };
    // Readers ignore a unit that is not a positive number, as they do a bad /Rotate.
    let user_unit = user_unit.filter(|u| u.is_finite() && *u > 0.0).unwrap_or(1.0);
    Ok(PageInfo { id, visible, rotate, user_unit })
}

/// Signature values reachable from the form fields and page annotations, and the signature
/// widgets that sit on pages.
fn collect_signatures(doc: &Doc<'_>, catalog: &Dict, pages: &[PageInfo]) -> (Vec<SignatureValue>, Vec<SignatureWidget>) {
    let mut seen_values = HashSet::new();
    let mut values = Vec::new();
    let mut widgets = Vec::new();
    let mut budget = MAX_NODES;

    let mut note_value = |v: &Obj, values: &mut Vec<SignatureValue>| {
        if values.len() >= MAX_SIGNATURE_VALUES {
            return;
        }
        if let Obj::Ref(id) = v
            && !seen_values.insert(*id)
        {
            return;
        }
        if let Some(Obj::Dict(d)) = resolve(doc, v) {
            values.push(signature_value(doc, &d));
        }
    };

    // Field tree, without recursion.
    if let Some(acroform) = get_dict(doc, catalog, b"AcroForm")
        && let Some(fields) = get_array(doc, &acroform, b"Fields")
    {
        let mut visited = HashSet::new();
        let mut stack: Vec<(Obj, bool, usize)> = fields.iter().take(MAX_NODES).map(|f| (f.clone(), false, 0)).collect();
        while let Some((field, parent_is_sig, depth)) = stack.pop() {
            if budget == 0 || depth > MAX_TREE_DEPTH {
                break;
            }
            budget -= 1;
            if let Obj::Ref(id) = field
                && !visited.insert(id)
            {
                continue;
            }
            let Some(Obj::Dict(node)) = resolve(doc, &field) else { continue };
            let is_sig = match get(doc, &node, b"FT") {
                Some(Obj::Name(n)) => &*n == b"Sig",
                _ => parent_is_sig,
            };
            if is_sig && let Some(v) = node.get(b"V") {
                note_value(v, &mut values);
            }
            if let Some(kids) = get_array(doc, &node, b"Kids") {
                stack.extend(kids.iter().take(budget).map(|k| (k.clone(), is_sig, depth + 1)));
            }
        }
    }

    // Page annotations: signature widgets (for overlap) and values not listed in the fields.
    let mut seen_annots = HashSet::new();
    for page in pages {
        let Some(page_dict) = dict_of(doc, page.id) else { continue };
        let Some(annots) = get_array(doc, &page_dict, b"Annots") else { continue };
        for annot in annots.iter() {
            if budget == 0 {
                break;
            }
            budget -= 1;
            if let Obj::Ref(id) = annot
                && !seen_annots.insert((page.id, *id))
            {
                continue;
            }
            let Some(Obj::Dict(widget)) = resolve(doc, annot) else { continue };
            if !name_is(doc, &widget, b"Subtype", b"Widget") {
                continue;
            }
            let Some(field) = signature_field_of(doc, &widget) else { continue };
            if let Some(v) = field.get(b"V") {
                note_value(v, &mut values);
            }
            if let Some(rect) = widget.get(b"Rect").and_then(|r| rect_of(doc, r))
                && rect.has_area()
            {
                widgets.push(SignatureWidget { page: Some(page.id), rect });
            }
        }
    }

    // Usage-rights and certification signatures live under /Perms.
    if let Some(perms) = get_dict(doc, catalog, b"Perms") {
        for (_, v) in perms.iter().take(MAX_SIGNATURE_VALUES) {
            note_value(v, &mut values);
        }
    }
    (values, widgets)
}

/// The field dictionary (the widget itself or an ancestor) that makes `widget` a signature
/// field, if it is one.
fn signature_field_of(doc: &Doc<'_>, widget: &Rc<Dict>) -> Option<Rc<Dict>> {
    let mut node = widget.clone();
    for _ in 0..MAX_TREE_DEPTH {
        match get(doc, &node, b"FT") {
            Some(Obj::Name(n)) if &*n == b"Sig" => return Some(node),
            Some(Obj::Name(_)) => return None,
            _ => {}
        }
        node = get_dict(doc, &node, b"Parent")?;
    }
    None
}

fn signature_value(doc: &Doc<'_>, value: &Dict) -> SignatureValue {
    let string = |key: &[u8]| match get(doc, value, key) {
        Some(Obj::Str(bytes, _)) => Some(bytes),
        _ => None,
    };
    let byte_range = get_array(doc, value, b"ByteRange").map(|items| {
        items.iter().take(64).filter_map(|o| resolve(doc, o).and_then(|o| o.as_i64())).collect()
    });
    let docmdp_permission = get_array(doc, value, b"Reference").and_then(|refs| {
        refs.iter().take(64).find_map(|r| {
            let Some(Obj::Dict(reference)) = resolve(doc, r) else { return None };
            if !name_is(doc, &reference, b"TransformMethod", b"DocMDP") {
                return None;
            }
            let permission = get_dict(doc, &reference, b"TransformParams")
                .and_then(|params| params.get(b"P").and_then(|p| number(doc, p)))
                .map(|p| p as i64)
                .unwrap_or(2);
            Some(permission)
        })
    });
    SignatureValue {
        reason: string(b"Reason").map(|r| r.to_vec()),
        sub_filter: get(doc, value, b"SubFilter").and_then(|o| o.as_name().map(<[u8]>::to_vec)),
        signing_time: string(b"M").map(|m| m.to_vec()),
        byte_range,
        contents: string(b"Contents"),
        docmdp_permission,
    }
}

fn certification_permission(doc: &Doc<'_>, catalog: &Dict) -> Option<i64> {
    let perms = get_dict(doc, catalog, b"Perms")?;
    let docmdp = get_dict(doc, &perms, b"DocMDP")?;
    Some(signature_value(doc, &docmdp).docmdp_permission.unwrap_or(2))
}

/// The catalog's `/Version`, when it is a name like `1.7`.
pub fn catalog_version(doc: &Doc<'_>, catalog: &Dict) -> Option<(u8, u8)> {
    let name = get(doc, catalog, b"Version")?;
    match name.as_name()? {
        [major, b'.', minor] if major.is_ascii_digit() && minor.is_ascii_digit() => Some((major - b'0', minor - b'0')),
        _ => None,
    }
}
