//! A lazy, bounded PDF object reader (ISO 32000-1 section 7).
//!
//! Only the objects asked for are parsed, an object stream is decoded only when an object in
//! it is asked for, and every step spends from budgets (parsed values, decoded bytes,
//! cross-reference entries, sections) so that no input can make the reader spend much memory
//! or time: running out of a budget reads as a damaged file.
//!
//! Numbers keep the token they were written with: an object that is read, changed and written
//! again (the page, the form, the catalog) says exactly what it said before in every value it
//! kept, whatever precision the producer used.

use std::borrow::Cow;
use std::cell::{Cell, OnceCell, RefCell};
use std::collections::{HashMap, HashSet};
use std::io::Read as _;
use std::rc::Rc;

pub type Id = (u32, u16);

/// Most values (of any kind, nested ones included) parsed over the life of one document.
pub const MAX_VALUES: usize = 250_000;
/// Most bytes decoded from streams (object and cross-reference streams) for one document.
pub const MAX_DECODED_BYTES: usize = 8 * 1024 * 1024;
/// Most cross-reference entries kept for one document.
pub const MAX_XREF_ENTRIES: usize = 300_000;
/// Most cross-reference sections followed through `/Prev` and `/XRefStm`.
const MAX_SECTIONS: usize = 512;
/// Deepest nesting of arrays and dictionaries.
const MAX_NESTING: usize = 96;
/// Most hops from a reference to the object it names.
const MAX_HOPS: usize = 16;
/// Largest object number a reader accepts (ISO 32000-1 annex C).
pub const MAX_OBJECT_NUMBER: u32 = 8_388_607;

/// The file cannot be read within the rules and budgets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bad;

type R<T> = Result<T, Bad>;

#[derive(Debug, Clone, PartialEq)]
pub enum Obj {
    Null,
    Bool(bool),
    Int(i64),
    /// The value and the token it was written as.
    Real(f64, Rc<[u8]>),
    Name(Rc<[u8]>),
    /// The bytes, and whether it was written in hexadecimal.
    Str(Rc<[u8]>, bool),
    Array(Rc<Vec<Obj>>),
    Dict(Rc<Dict>),
    Ref(Id),
    /// An indirect stream: its dictionary and where its data lies in the document's bytes.
    Stream(Rc<Dict>, usize, usize),
}

impl Obj {
    pub fn name(name: &[u8]) -> Obj {
        Obj::Name(Rc::from(name))
    }
    pub fn as_i64(&self) -> Option<i64> {
        match self {
            Obj::Int(i) => Some(*i),
            _ => None,
        }
    }
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Obj::Int(i) => Some(*i as f64),
            Obj::Real(r, _) if r.is_finite() => Some(*r),
            _ => None,
        }
    }
    pub fn as_name(&self) -> Option<&[u8]> {
        match self {
            Obj::Name(n) => Some(n),
            _ => None,
        }
    }
    pub fn as_dict(&self) -> Option<&Rc<Dict>> {
        match self {
            Obj::Dict(d) | Obj::Stream(d, _, _) => Some(d),
            _ => None,
        }
    }
    pub fn as_array(&self) -> Option<&Rc<Vec<Obj>>> {
        match self {
            Obj::Array(a) => Some(a),
            _ => None,
        }
    }
    pub fn as_ref_id(&self) -> Option<Id> {
        match self {
            Obj::Ref(id) => Some(*id),
            _ => None,
        }
    }
}

/// A dictionary, in the order its keys were written.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Dict(pub Vec<(Rc<[u8]>, Obj)>);

impl Dict {
    pub fn new() -> Dict {
        Dict(Vec::new())
    }
    /// The value of `key` (the last one, when a broken file repeats a key).
    pub fn get(&self, key: &[u8]) -> Option<&Obj> {
        self.0.iter().rev().find(|(k, _)| &**k == key).map(|(_, v)| v)
    }
    pub fn has(&self, key: &[u8]) -> bool {
        self.get(key).is_some()
    }
    /// Replaces the value of `key` where it stands, or appends it.
    pub fn set(&mut self, key: &[u8], value: Obj) {
        match self.0.iter_mut().rev().find(|(k, _)| &**k == key) {
            Some(entry) => entry.1 = value,
            None => self.0.push((Rc::from(key), value)),
        }
    }
    pub fn remove(&mut self, key: &[u8]) {
        self.0.retain(|(k, _)| &**k != key);
    }
    pub fn iter(&self) -> impl Iterator<Item = (&[u8], &Obj)> {
        self.0.iter().map(|(k, v)| (&**k, v))
    }
    pub fn len(&self) -> usize {
        self.0.len()
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

pub fn is_whitespace(b: u8) -> bool {
    matches!(b, 0 | b'\t' | b'\n' | 0x0C | b'\r' | b' ')
}

pub fn is_delimiter(b: u8) -> bool {
    matches!(b, b'(' | b')' | b'<' | b'>' | b'[' | b']' | b'{' | b'}' | b'/' | b'%')
}

fn is_regular(b: u8) -> bool {
    !is_whitespace(b) && !is_delimiter(b)
}

/// A cursor over bytes that reads PDF tokens and values, spending from a value budget.
pub struct Lexer<'a> {
    pub buf: &'a [u8],
    pub pos: usize,
    budget: &'a Cell<usize>,
}

impl<'a> Lexer<'a> {
    pub fn new(buf: &'a [u8], pos: usize, budget: &'a Cell<usize>) -> Lexer<'a> {
        Lexer { buf, pos, budget }
    }

    pub fn skip_whitespace(&mut self) {
        while let Some(&b) = self.buf.get(self.pos) {
            if is_whitespace(b) {
                self.pos += 1;
            } else if b == b'%' {
                while self.buf.get(self.pos).is_some_and(|&c| c != b'\n' && c != b'\r') {
                    self.pos += 1;
                }
            } else {
                break;
            }
        }
    }

    /// The run of regular characters at the cursor (after whitespace), consumed.
    pub fn word(&mut self) -> &'a [u8] {
        self.skip_whitespace();
        let start = self.pos;
        while self.buf.get(self.pos).is_some_and(|&b| is_regular(b)) {
            self.pos += 1;
        }
        // A cursor placed past the end (an xref offset beyond the file) reads nothing.
        self.buf.get(start..self.pos).unwrap_or_default()
    }

    /// Reads a non-negative integer word.
    pub fn unsigned(&mut self) -> R<u64> {
        let word = self.word();
        if word.is_empty() || word.len() > 18 || !word.iter().all(u8::is_ascii_digit) {
            return Err(Bad);
        }
        Ok(word.iter().fold(0u64, |n, d| n * 10 + u64::from(d - b'0')))
    }

    pub fn keyword(&mut self, expected: &[u8]) -> bool {
        let save = self.pos;
        if self.word() == expected {
            true
        } else {
            self.pos = save;
            false
        }
    }

    fn spend(&self) -> R<()> {
        let left = self.budget.get();
        if left == 0 {
            return Err(Bad);
        }
        self.budget.set(left - 1);
        Ok(())
    }

    /// One value (never a stream: that needs the enclosing indirect object).
    pub fn value(&mut self) -> R<Obj> {
        self.value_at(0)
    }

    fn value_at(&mut self, depth: usize) -> R<Obj> {
        if depth > MAX_NESTING {
            return Err(Bad);
        }
        self.spend()?;
        self.skip_whitespace();
        let Some(&b) = self.buf.get(self.pos) else { return Err(Bad) };
        match b {
            b'/' => {
                self.pos += 1;
                Ok(Obj::Name(Rc::from(self.name_body()?)))
            }
            b'(' => {
                self.pos += 1;
                Ok(Obj::Str(Rc::from(self.literal_body()?), false))
            }
            b'<' if self.buf.get(self.pos + 1) == Some(&b'<') => {
                self.pos += 2;
                Ok(Obj::Dict(Rc::new(self.dict_body(depth)?)))
            }
            b'<' => {
                self.pos += 1;
                Ok(Obj::Str(Rc::from(self.hex_body()?), true))
            }
            b'[' => {
                self.pos += 1;
                let mut items = Vec::new();
                loop {
                    self.skip_whitespace();
                    match self.buf.get(self.pos) {
                        Some(b']') => {
                            self.pos += 1;
                            return Ok(Obj::Array(Rc::new(items)));
                        }
                        Some(_) => items.push(self.value_at(depth + 1)?),
                        None => return Err(Bad),
                    }
                }
            }
            _ if is_regular(b) => self.word_value(),
            _ => Err(Bad),
        }
    }

    fn dict_body(&mut self, depth: usize) -> R<Dict> {
        let mut entries = Vec::new();
        loop {
            self.skip_whitespace();
            match (self.buf.get(self.pos), self.buf.get(self.pos + 1)) {
                (Some(b'>'), Some(b'>')) => {
                    self.pos += 2;
                    return Ok(Dict(entries));
                }
                (Some(b'/'), _) => {
                    self.pos += 1;
                    let key: Rc<[u8]> = Rc::from(self.name_body()?);
                    let value = self.value_at(depth + 1)?;
                    entries.push((key, value));
                }
                _ => return Err(Bad),
            }
        }
    }

    fn name_body(&mut self) -> R<Vec<u8>> {
        let mut name = Vec::new();
        while let Some(&b) = self.buf.get(self.pos) {
            if !is_regular(b) {
                break;
            }
            self.pos += 1;
            if b == b'#' {
                let hex = self.buf.get(self.pos..self.pos + 2).and_then(|h| std::str::from_utf8(h).ok()).and_then(|h| u8::from_str_radix(h, 16).ok());
                match hex {
                    Some(v) => {
                        name.push(v);
                        self.pos += 2;
                    }
                    None => name.push(b),
                }
            } else {
                name.push(b);
            }
        }
        Ok(name)
    }

    fn literal_body(&mut self) -> R<Vec<u8>> {
        let mut out = Vec::new();
        let mut depth = 1usize;
        loop {
            let Some(&b) = self.buf.get(self.pos) else { return Err(Bad) };
            self.pos += 1;
            match b {
                b'(' => {
                    depth += 1;
                    out.push(b);
                }
                b')' => {
                    depth -= 1;
                    if depth == 0 {
                        return Ok(out);
                    }
                    out.push(b);
                }
                b'\\' => {
                    let Some(&e) = self.buf.get(self.pos) else { return Err(Bad) };
                    self.pos += 1;
                    match e {
                        b'n' => out.push(b'\n'),
                        b'r' => out.push(b'\r'),
                        b't' => out.push(b'\t'),
                        b'b' => out.push(8),
                        b'f' => out.push(12),
                        b'0'..=b'7' => {
                            let mut v = u32::from(e - b'0');
                            for _ in 0..2 {
                                match self.buf.get(self.pos) {
                                    Some(&d @ b'0'..=b'7') => {
                                        v = v * 8 + u32::from(d - b'0');
                                        self.pos += 1;
                                    }
                                    _ => break,
                                }
                            }
                            out.push((v & 0xFF) as u8);
                        }
                        b'\r' => {
                            if self.buf.get(self.pos) == Some(&b'\n') {
                                self.pos += 1;
                            }
                        }
                        b'\n' => {}
                        other => out.push(other),
                    }
                }
                b'\r' => {
                    // An end of line in a string reads as a line feed.
                    if self.buf.get(self.pos) == Some(&b'\n') {
                        self.pos += 1;
                    }
                    out.push(b'\n');
                }
                other => out.push(other),
            }
        }
    }

    fn hex_body(&mut self) -> R<Vec<u8>> {
        let mut out = Vec::new();
        let mut high: Option<u8> = None;
        loop {
            let Some(&b) = self.buf.get(self.pos) else { return Err(Bad) };
            self.pos += 1;
            let digit = match b {
                b'>' => {
                    if let Some(h) = high {
                        out.push(h << 4);
                    }
                    return Ok(out);
                }
                b'0'..=b'9' => b - b'0',
                b'a'..=b'f' => b - b'a' + 10,
                b'A'..=b'F' => b - b'A' + 10,
                _ if is_whitespace(b) => continue,
                _ => return Err(Bad),
            };
            match high.take() {
                Some(h) => out.push((h << 4) | digit),
                None => high = Some(digit),
            }
        }
    }

    /// A number, a reference (`N G R`), `true`, `false` or `null`.
    fn word_value(&mut self) -> R<Obj> {
        let word = self.word();
        match word {
            b"true" => return Ok(Obj::Bool(true)),
            b"false" => return Ok(Obj::Bool(false)),
            b"null" => return Ok(Obj::Null),
            _ => {}
        }
        if let Some(int) = parse_int(word) {
            // A reference: two unsigned integers and R.
            if int >= 0 && word.iter().all(u8::is_ascii_digit) {
                let save = self.pos;
                let generation = self.word();
                let r = self.word();
                if r == b"R"
                    && !generation.is_empty()
                    && generation.len() <= 5
                    && generation.iter().all(u8::is_ascii_digit)
                    && let (Ok(number), Some(generation)) = (u32::try_from(int), parse_int(generation).and_then(|g| u16::try_from(g).ok()))
                {
                    return Ok(Obj::Ref((number, generation)));
                }
                self.pos = save;
            }
            return Ok(Obj::Int(int));
        }
        if let Some(real) = parse_real(word) {
            return Ok(Obj::Real(real, Rc::from(word)));
        }
        Err(Bad)
    }
}

fn parse_int(word: &[u8]) -> Option<i64> {
    let digits = word.strip_prefix(b"-").or_else(|| word.strip_prefix(b"+")).unwrap_or(word);
    if digits.is_empty() || digits.len() > 18 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let value = digits.iter().fold(0i64, |n, d| n * 10 + i64::from(d - b'0'));
    Some(if word.first() == Some(&b'-') { -value } else { value })
}

fn parse_real(word: &[u8]) -> Option<f64> {
    let body = word.strip_prefix(b"-").or_else(|| word.strip_prefix(b"+")).unwrap_or(word);
    let dots = body.iter().filter(|&&b| b == b'.').count();
    let digits = body.iter().filter(|b| b.is_ascii_digit()).count();
    if dots > 1 || digits == 0 || digits + dots != body.len() {
        // Integers too long for i64 are still numbers.
        return None;
    }
    let text = std::str::from_utf8(word).ok()?;
    let text = text.strip_prefix('+').unwrap_or(text);
    let value: f64 = text.parse().ok()?;
    value.is_finite().then_some(value)
}

/// Where an object lives, from the cross-reference data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Entry {
    Free,
    /// Byte offset (from the header) and generation.
    At(usize, u16),
    /// Object stream number and index in it.
    In(u32, u32),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum XrefKind {
    Table,
    Stream,
}

struct ObjectStream {
    data: Vec<u8>,
    /// (object number, offset into data) in stream order.
    offsets: Vec<(u32, usize)>,
}

/// A document read lazily from its bytes.
pub struct Doc<'a> {
    bytes: Cow<'a, [u8]>,
    /// Where `%PDF-` starts: offsets count from here.
    pub base: usize,
    pub trailer: Dict,
    entries: HashMap<u32, Entry>,
    /// Highest object number the cross-reference data names.
    pub max_number: u32,
    /// Objects read so far; `None` for those that could not be read (never tried twice).
    cache: RefCell<HashMap<Id, Option<Obj>>>,
    object_streams: RefCell<HashMap<u32, Option<Rc<ObjectStream>>>>,
    values_left: Cell<usize>,
    decoded_left: Cell<usize>,
    /// Object number -> offset of its last `N G obj`, found by scanning, for entries that lie.
    scanned: OnceCell<HashMap<u32, (usize, u16)>>,
    resolving: RefCell<HashSet<Id>>,
    filling_free: bool,
    /// The cross-reference data was rebuilt by scanning: an update must carry a complete
    /// cross-reference section and no `/Prev`.
    pub repaired: bool,
}

impl<'a> Doc<'a> {
    /// Reads the cross-reference chain that starts at `startxref` (relative to `base`).
    pub fn open(bytes: Cow<'a, [u8]>, base: usize, startxref: usize) -> R<Doc<'a>> {
        let mut doc = Doc::open_empty(bytes, base);
        doc.read_sections(startxref)?;
        Ok(doc)
    }

    /// A document whose cross-reference data cannot be used, read the way readers repair it:
    /// every `N G obj` found by scanning (the last one of each number wins) and the last
    /// `trailer` dictionary. Objects inside object streams cannot be found this way.
    pub fn open_repaired(bytes: Cow<'a, [u8]>, base: usize) -> R<Doc<'a>> {
        let found = scan_objects(&bytes);
        let budget = Cell::new(MAX_VALUES);
        let at = memchr::memmem::rfind(&bytes, b"trailer").ok_or(Bad)? + 7;
        let trailer = match Lexer::new(&bytes, at, &budget).value()? {
            Obj::Dict(d) => (*d).clone(),
            _ => return Err(Bad),
        };
        let mut doc = Doc::open_empty(bytes, base);
        doc.trailer = trailer;
        doc.repaired = true;
        for (number, (offset, generation)) in found {
            if let Some(relative) = offset.checked_sub(base) {
                doc.add_entry(number, Entry::At(relative, generation))?;
            }
        }
        Ok(doc)
    }

    fn open_empty(bytes: Cow<'a, [u8]>, base: usize) -> Doc<'a> {
        Doc {
            bytes,
            base,
            trailer: Dict::new(),
            entries: HashMap::new(),
            max_number: 0,
            cache: RefCell::new(HashMap::new()),
            object_streams: RefCell::new(HashMap::new()),
            values_left: Cell::new(MAX_VALUES),
            decoded_left: Cell::new(MAX_DECODED_BYTES),
            scanned: OnceCell::new(),
            resolving: RefCell::new(HashSet::new()),
            filling_free: false,
            repaired: false,
        }
    }

    /// Every object in use at a byte offset: (number, generation, offset from the header).
    pub fn objects_at_offsets(&self) -> Vec<(u32, u16, usize)> {
        let mut all: Vec<(u32, u16, usize)> = self
            .entries
            .iter()
            .filter_map(|(number, entry)| match entry {
                Entry::At(offset, generation) => Some((*number, *generation, *offset)),
                _ => None,
            })
            .collect();
        all.sort_unstable();
        all
    }

    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    pub fn is_rewritten(&self) -> bool {
        matches!(self.bytes, Cow::Owned(_))
    }

    pub fn entry(&self, number: u32) -> Option<Entry> {
        self.entries.get(&number).copied()
    }

    fn read_sections(&mut self, startxref: usize) -> R<()> {
        // (offset, whether it is a hybrid file's /XRefStm, whose entries fill the table's free ones)
        let mut pending = vec![(startxref, false)];
        let mut seen = HashSet::new();
        let mut first = true;
        while let Some((offset, hybrid)) = pending.pop() {
            if !seen.insert(offset) || seen.len() > MAX_SECTIONS {
                if first {
                    return Err(Bad);
                }
                continue;
            }
            self.filling_free = hybrid;
            let section = match self.read_section(offset) {
                Ok(trailer) => trailer,
                // An older section that cannot be read is what readers skip; the newest must be sound.
                Err(_) if !first => continue,
                Err(e) => return Err(e),
            };
            self.filling_free = false;
            if hybrid {
                continue;
            }
            for (key, value) in section.iter() {
                if !self.trailer.has(key) && key != b"Prev" && key != b"XRefStm" {
                    self.trailer.0.push((Rc::from(key), value.clone()));
                }
            }
            first = false;
            // Pushed so that /XRefStm (same revision) is read before /Prev.
            if let Some(prev) = section.get(b"Prev").and_then(Obj::as_i64).and_then(|p| usize::try_from(p).ok()) {
                pending.push((prev, false));
            }
            if let Some(stm) = section.get(b"XRefStm").and_then(Obj::as_i64).and_then(|p| usize::try_from(p).ok()) {
                pending.push((stm, true));
            }
        }
        self.filling_free = false;
        Ok(())
    }

    fn add_entry(&mut self, number: u32, entry: Entry) -> R<()> {
        if number > MAX_OBJECT_NUMBER {
            return Ok(());
        }
        let full = self.entries.len() >= MAX_XREF_ENTRIES;
        if self.filling_free && self.entries.get(&number) == Some(&Entry::Free) && entry != Entry::Free {
            self.entries.insert(number, entry);
            self.max_number = self.max_number.max(number);
            return Ok(());
        }
        if let std::collections::hash_map::Entry::Vacant(slot) = self.entries.entry(number) {
            if full {
                return Err(Bad);
            }
            slot.insert(entry);
            if entry != Entry::Free {
                self.max_number = self.max_number.max(number);
            }
        }
        Ok(())
    }

    /// One section (table or stream) at `offset`; its entries are added unless already known.
    fn read_section(&mut self, offset: usize) -> R<Dict> {
        let at = self.base.checked_add(offset).ok_or(Bad)?;
        if let Some((found, trailer)) = parse_table(&self.bytes, at, &self.values_left)? {
            for (number, entry) in found {
                self.add_entry(number, entry)?;
            }
            return Ok(trailer);
        }
        // A cross-reference stream.
        let (_, object) = self.indirect_at(at)?;
        let Obj::Stream(dict, start, end) = object else { return Err(Bad) };
        if dict.get(b"Type").and_then(Obj::as_name) != Some(b"XRef") {
            return Err(Bad);
        }
        let data = self.decode(&dict, start, end)?;
        let widths: Vec<usize> = dict
            .get(b"W")
            .and_then(Obj::as_array)
            .ok_or(Bad)?
            .iter()
            .map(|w| w.as_i64().and_then(|w| usize::try_from(w).ok()).filter(|w| *w <= 8).ok_or(Bad))
            .collect::<R<_>>()?;
        let [w0, w1, w2] = widths[..] else { return Err(Bad) };
        let row = w0 + w1 + w2;
        if row == 0 {
            return Err(Bad);
        }
        let size = dict.get(b"Size").and_then(Obj::as_i64).ok_or(Bad)?;
        let index: Vec<i64> = match dict.get(b"Index").and_then(Obj::as_array) {
            Some(items) => items.iter().map(|i| i.as_i64().ok_or(Bad)).collect::<R<_>>()?,
            None => vec![0, size],
        };
        let field = |bytes: &[u8]| bytes.iter().fold(0u64, |n, b| (n << 8) | u64::from(*b));
        let mut rows = data.chunks_exact(row);
        for pair in index.chunks(2) {
            let [start, count] = pair else { return Err(Bad) };
            let (start, count) = (u64::try_from(*start).map_err(|_| Bad)?, u64::try_from(*count).map_err(|_| Bad)?);
            for i in 0..count {
                let Some(r) = rows.next() else { break };
                let kind = if w0 == 0 { 1 } else { field(&r[..w0]) };
                let a = field(&r[w0..w0 + w1]);
                let b = field(&r[w0 + w1..]);
                let Ok(number) = u32::try_from(start + i) else { continue };
                let entry = match kind {
                    0 => Entry::Free,
                    1 => Entry::At(usize::try_from(a).map_err(|_| Bad)?, u16::try_from(b).unwrap_or(u16::MAX)),
                    2 => Entry::In(u32::try_from(a).map_err(|_| Bad)?, u32::try_from(b).map_err(|_| Bad)?),
                    _ => continue,
                };
                self.add_entry(number, entry)?;
            }
        }
        Ok((*dict).clone())
    }

    fn spend_decoded(&self, amount: usize) -> R<()> {
        let left = self.decoded_left.get();
        if amount > left {
            return Err(Bad);
        }
        self.decoded_left.set(left - amount);
        Ok(())
    }

    /// A stream's data, decoded (FlateDecode with PNG predictors, or no filter), within budget.
    pub fn decode(&self, dict: &Dict, start: usize, end: usize) -> R<Vec<u8>> {
        let raw = self.bytes.get(start..end).ok_or(Bad)?;
        let filters: Vec<Obj> = match dict.get(b"Filter").map(|f| self.resolve(f)).transpose()? {
            None | Some(Obj::Null) => Vec::new(),
            Some(Obj::Name(n)) => vec![Obj::Name(n)],
            Some(Obj::Array(items)) => items.to_vec(),
            _ => return Err(Bad),
        };
        let parms = match dict.get(b"DecodeParms").map(|p| self.resolve(p)).transpose()? {
            Some(Obj::Dict(d)) => Some(d),
            Some(Obj::Array(items)) => items.first().and_then(|p| self.resolve(p).ok()).and_then(|p| p.as_dict().cloned()),
            _ => None,
        };
        let mut data = match filters.as_slice() {
            [] => {
                self.spend_decoded(raw.len())?;
                raw.to_vec()
            }
            [Obj::Name(n)] if &**n == b"FlateDecode" || &**n == b"Fl" => {
                let limit = self.decoded_left.get();
                let mut out = Vec::new();
                let mut decoder = flate2::read::ZlibDecoder::new(raw).take(limit as u64 + 1);
                // A truncated or damaged tail still gives what was decoded before it.
                let _ = decoder.read_to_end(&mut out);
                self.spend_decoded(out.len())?;
                out
            }
            _ => return Err(Bad),
        };
        if let Some(parms) = parms {
            let predictor = parms.get(b"Predictor").and_then(Obj::as_i64).unwrap_or(1);
            if predictor >= 10 {
                let columns = parms.get(b"Columns").and_then(Obj::as_i64).unwrap_or(1);
                let colors = parms.get(b"Colors").and_then(Obj::as_i64).unwrap_or(1);
                let bits = parms.get(b"BitsPerComponent").and_then(Obj::as_i64).unwrap_or(8);
                let bpp_bits = colors.checked_mul(bits).ok_or(Bad)?;
                let row_bits = bpp_bits.checked_mul(columns).ok_or(Bad)?;
                if !(1..=1 << 20).contains(&row_bits) || !(1..=64).contains(&bpp_bits) {
                    return Err(Bad);
                }
                let row_len = usize::try_from((row_bits + 7) / 8).map_err(|_| Bad)?;
                let bpp = usize::try_from((bpp_bits + 7) / 8).map_err(|_| Bad)?;
                data = unpredict_png(&data, row_len, bpp)?;
            } else if predictor != 1 {
                return Err(Bad);
            }
        }
        Ok(data)
    }

    /// The indirect object at absolute position `at`: its id and value.
    fn indirect_at(&self, at: usize) -> R<(Id, Obj)> {
        let mut lx = Lexer::new(&self.bytes, at, &self.values_left);
        let number = u32::try_from(lx.unsigned()?).map_err(|_| Bad)?;
        let generation = u16::try_from(lx.unsigned()?).map_err(|_| Bad)?;
        if !lx.keyword(b"obj") {
            // "12 0 obj<<" has no space before the dictionary.
            lx.skip_whitespace();
            if !self.bytes.get(lx.pos..).is_some_and(|rest| rest.starts_with(b"obj")) {
                return Err(Bad);
            }
            lx.pos += 3;
        }
        let value = lx.value()?;
        let after = lx.pos;
        lx.skip_whitespace();
        if let Obj::Dict(dict) = &value
            && self.bytes.get(lx.pos..).is_some_and(|rest| rest.starts_with(b"stream"))
        {
            let mut start = lx.pos + 6;
            match (self.bytes.get(start), self.bytes.get(start + 1)) {
                (Some(b'\r'), Some(b'\n')) => start += 2,
                (Some(b'\n' | b'\r'), _) => start += 1,
                _ => {}
            }
            let declared = match dict.get(b"Length") {
                Some(Obj::Int(n)) => usize::try_from(*n).ok(),
                Some(Obj::Ref(id)) if *id != (number, generation) => self.get(*id).ok().and_then(|o| o.as_i64()).and_then(|n| usize::try_from(n).ok()),
                _ => None,
            };
            let fits = |len: usize| {
                let end = start.checked_add(len)?;
                let mut p = end;
                while self.bytes.get(p).is_some_and(|b| is_whitespace(*b)) {
                    p += 1;
                }
                self.bytes.get(p..)?.starts_with(b"endstream").then_some(end)
            };
            let end = match declared.and_then(fits) {
                Some(end) => end,
                None => {
                    let rest = self.bytes.get(start..).ok_or(Bad)?;
                    let found = memchr::memmem::find(rest, b"endstream").ok_or(Bad)?;
                    let mut end = start + found;
                    if self.bytes.get(end.wrapping_sub(1)) == Some(&b'\n') {
                        end -= 1;
                    }
                    if self.bytes.get(end.wrapping_sub(1)) == Some(&b'\r') {
                        end -= 1;
                    }
                    end.max(start)
                }
            };
            return Ok(((number, generation), Obj::Stream(dict.clone(), start, end)));
        }
        let _ = after;
        Ok(((number, generation), value))
    }

    fn scan_index(&self) -> &HashMap<u32, (usize, u16)> {
        self.scanned.get_or_init(|| scan_objects(&self.bytes))
    }

    /// The object `id` names (`Null` when it is free or absent, as readers take it).
    pub fn get(&self, id: Id) -> R<Obj> {
        if let Some(hit) = self.cache.borrow().get(&id) {
            return hit.clone().ok_or(Bad);
        }
        if !self.resolving.borrow_mut().insert(id) {
            return Err(Bad);
        }
        let result = self.load(id);
        self.resolving.borrow_mut().remove(&id);
        self.cache.borrow_mut().insert(id, result.clone().ok());
        result
    }

    fn load(&self, id: Id) -> R<Obj> {
        match self.entries.get(&id.0).copied() {
            None | Some(Entry::Free) => Ok(Obj::Null),
            Some(Entry::At(offset, _)) => {
                let direct = self.base.checked_add(offset).ok_or(Bad).and_then(|at| self.indirect_at(at));
                match direct {
                    Ok((found, object)) if found.0 == id.0 => Ok(object),
                    _ => {
                        let (at, _) = self.scan_index().get(&id.0).copied().ok_or(Bad)?;
                        let (found, object) = self.indirect_at(at)?;
                        if found.0 != id.0 {
                            return Err(Bad);
                        }
                        Ok(object)
                    }
                }
            }
            Some(Entry::In(container, index)) => {
                let stream = self.object_stream(container)?;
                let &(number, offset) = stream.offsets.get(usize::try_from(index).map_err(|_| Bad)?).ok_or(Bad)?;
                let found = if number == id.0 { Some(offset) } else { stream.offsets.iter().find(|(n, _)| *n == id.0).map(|(_, o)| *o) };
                let offset = found.ok_or(Bad)?;
                let mut lx = Lexer::new(&stream.data, offset, &self.values_left);
                lx.value()
            }
        }
    }

    fn object_stream(&self, container: u32) -> R<Rc<ObjectStream>> {
        if let Some(hit) = self.object_streams.borrow().get(&container) {
            return hit.clone().ok_or(Bad);
        }
        let result = self.read_object_stream(container);
        self.object_streams.borrow_mut().insert(container, result.clone().ok());
        result
    }

    fn read_object_stream(&self, container: u32) -> R<Rc<ObjectStream>> {
        let entry = self.entries.get(&container).copied();
        let Some(Entry::At(..)) = entry else { return Err(Bad) };
        let Obj::Stream(dict, start, end) = self.get((container, 0))? else { return Err(Bad) };
        let data = self.decode(&dict, start, end)?;
        let count = dict.get(b"N").and_then(Obj::as_i64).and_then(|n| usize::try_from(n).ok()).ok_or(Bad)?;
        let first = dict.get(b"First").and_then(Obj::as_i64).and_then(|n| usize::try_from(n).ok()).ok_or(Bad)?;
        if count > data.len() / 2 + 1 || first > data.len() {
            return Err(Bad);
        }
        let no_budget = Cell::new(0);
        let mut lx = Lexer::new(&data[..first], 0, &no_budget);
        let mut offsets = Vec::with_capacity(count);
        for _ in 0..count {
            let number = u32::try_from(lx.unsigned()?).map_err(|_| Bad)?;
            let offset = usize::try_from(lx.unsigned()?).map_err(|_| Bad)?;
            offsets.push((number, first.checked_add(offset).ok_or(Bad)?));
        }
        Ok(Rc::new(ObjectStream { data, offsets }))
    }

    /// Follows references to the value they name.
    pub fn resolve(&self, object: &Obj) -> R<Obj> {
        let mut current = object.clone();
        for _ in 0..MAX_HOPS {
            match current {
                Obj::Ref(id) => current = self.get(id)?,
                other => return Ok(other),
            }
        }
        Err(Bad)
    }
}

/// A classic cross-reference table at `at` (`None` when there is no `xref` keyword there):
/// its entries in order and its trailer.
fn parse_table(bytes: &[u8], at: usize, budget: &Cell<usize>) -> R<Option<(Vec<(u32, Entry)>, Dict)>> {
    let mut lx = Lexer::new(bytes, at, budget);
    lx.skip_whitespace();
    if !lx.keyword(b"xref") {
        return Ok(None);
    }
    let mut found = Vec::new();
    loop {
        if lx.keyword(b"trailer") {
            break;
        }
        let start = lx.unsigned()?;
        let count = lx.unsigned()?;
        if count > (bytes.len() as u64) / 2 {
            return Err(Bad);
        }
        for i in 0..count {
            let position = lx.unsigned()?;
            let generation = lx.unsigned()?;
            let kind = lx.word();
            let number = start.checked_add(i).ok_or(Bad)?;
            let Ok(number) = u32::try_from(number) else { continue };
            let entry = match kind {
                b"n" => Entry::At(usize::try_from(position).map_err(|_| Bad)?, u16::try_from(generation).unwrap_or(u16::MAX)),
                b"f" => Entry::Free,
                _ => return Err(Bad),
            };
            found.push((number, entry));
            if found.len() > MAX_XREF_ENTRIES {
                return Err(Bad);
            }
        }
    }
    match lx.value()? {
        Obj::Dict(d) => Ok(Some((found, (*d).clone()))),
        _ => Err(Bad),
    }
}

/// Every `N G obj` in `bytes`: object number -> (offset of N, G); the last one of a number wins.
fn scan_objects(bytes: &[u8]) -> HashMap<u32, (usize, u16)> {
    let mut found = HashMap::new();
    for hit in memchr::memmem::find_iter(bytes, b"obj") {
        if found.len() >= MAX_XREF_ENTRIES {
            break;
        }
        if bytes.get(hit + 3).is_some_and(|b| is_regular(*b)) {
            continue;
        }
        // Walk back over "N G " before "obj".
        let mut p = hit;
        let mut spans = Vec::with_capacity(2);
        while spans.len() < 2 {
            let gap = p;
            while p > 0 && is_whitespace(bytes[p - 1]) {
                p -= 1;
            }
            if p == gap && !spans.is_empty() {
                break; // numbers must be separated
            }
            let end = p;
            while p > 0 && end - p < 10 && bytes[p - 1].is_ascii_digit() {
                p -= 1;
            }
            if p == end {
                break;
            }
            spans.push((p, end));
        }
        let [(g0, g1), (n0, n1)] = spans[..] else { continue };
        if n0 > 0 && is_regular(bytes[n0 - 1]) {
            continue;
        }
        let digits = |a: usize, b: usize| std::str::from_utf8(&bytes[a..b]).ok()?.parse::<u32>().ok();
        if let (Some(number), Some(generation)) = (digits(n0, n1), digits(g0, g1).and_then(|g| u16::try_from(g).ok())) {
            found.insert(number, (n0, generation));
        }
    }
    found
}

fn unpredict_png(data: &[u8], row_len: usize, bpp: usize) -> R<Vec<u8>> {
    let mut out: Vec<u8> = Vec::with_capacity(data.len());
    let mut previous = vec![0u8; row_len];
    for chunk in data.chunks(row_len + 1) {
        let (&kind, row) = chunk.split_first().ok_or(Bad)?;
        let mut current = row.to_vec();
        current.resize(row_len, 0);
        for i in 0..row_len {
            let left = if i >= bpp { current[i - bpp] } else { 0 };
            let up = previous[i];
            let up_left = if i >= bpp { previous[i - bpp] } else { 0 };
            let add = match kind {
                0 => 0,
                1 => left,
                2 => up,
                3 => ((u16::from(left) + u16::from(up)) / 2) as u8,
                4 => {
                    let p = i16::from(left) + i16::from(up) - i16::from(up_left);
                    let (pa, pb, pc) = ((p - i16::from(left)).abs(), (p - i16::from(up)).abs(), (p - i16::from(up_left)).abs());
                    if pa <= pb && pa <= pc {
                        left
                    } else if pb <= pc {
                        up
                    } else {
                        up_left
                    }
                }
                _ => return Err(Bad),
            };
            current[i] = current[i].wrapping_add(add);
        }
        out.extend_from_slice(&current);
        previous = current;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Obj {
        let budget = Cell::new(1000);
        Lexer::new(text.as_bytes(), 0, &budget).value().expect("parses")
    }

    #[test]
    fn reads_each_kind_and_keeps_number_tokens() {
        let Obj::Dict(d) = parse("<</A [0 0 595.2756 841.8898] /B 3 0 R /C (a\\(b\\)\\101) /D <48 69> /E true /F null /G#20x -.5>>") else { panic!() };
        let Some(Obj::Array(a)) = d.get(b"A") else { panic!() };
        assert_eq!(a[2], Obj::Real(595.2756, Rc::from(&b"595.2756"[..])));
        assert_eq!(d.get(b"B"), Some(&Obj::Ref((3, 0))));
        assert_eq!(d.get(b"C"), Some(&Obj::Str(Rc::from(&b"a(b)A"[..]), false)));
        assert_eq!(d.get(b"D"), Some(&Obj::Str(Rc::from(&b"Hi"[..]), true)));
        assert_eq!(d.get(b"E"), Some(&Obj::Bool(true)));
        assert_eq!(d.get(b"F"), Some(&Obj::Null));
        assert_eq!(d.get(b"G x").and_then(Obj::as_f64), Some(-0.5));
    }

    #[test]
    fn a_cursor_past_the_end_reads_nothing() {
        // Found by `cargo fuzz run stamp`: a `/Prev` offset beyond the end of the file.
        let budget = Cell::new(1000);
        assert!(Lexer::new(b"xref", 10, &budget).word().is_empty());
        assert!(matches!(parse_table(b"%PDF-1.4\nxref", 1000, &budget), Ok(None)));
    }

    #[test]
    fn a_value_budget_ends_the_parse() {
        let text = format!("[{}]", "0 ".repeat(5000));
        let budget = Cell::new(1000);
        assert!(Lexer::new(text.as_bytes(), 0, &budget).value().is_err());
        let nested = "[".repeat(500);
        let budget = Cell::new(100_000);
        assert!(Lexer::new(nested.as_bytes(), 0, &budget).value().is_err());
    }
}
