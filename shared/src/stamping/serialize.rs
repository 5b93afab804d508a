//! Writing PDF objects (ISO 32000-1 7.3) for the appended update. Deterministic, and bounded in
//! depth so that a deeply nested object we copy cannot overflow the stack.

use std::io::Write as _;

use super::pdf::{Dict, Obj};

const MAX_DEPTH: usize = 128;

#[derive(Debug)]
pub struct TooDeep;

/// Writes a value. Numbers read from a document are written with the token they were read
/// as, so a value that is copied says exactly what it said before.
pub fn write_object(out: &mut Vec<u8>, object: &Obj) -> Result<(), TooDeep> {
    write_at(out, object, 0)
}

fn write_at(out: &mut Vec<u8>, object: &Obj, depth: usize) -> Result<(), TooDeep> {
    if depth > MAX_DEPTH {
        return Err(TooDeep);
    }
    match object {
        Obj::Null => out.extend_from_slice(b"null"),
        Obj::Bool(b) => out.extend_from_slice(if *b { b"true" } else { b"false" }),
        Obj::Int(i) => {
            let _ = write!(out, "{i}");
        }
        Obj::Real(_, token) => out.extend_from_slice(token),
        Obj::Name(name) => write_name(out, name),
        Obj::Str(bytes, hex) => write_string(out, bytes, *hex),
        Obj::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b' ');
                }
                write_at(out, item, depth + 1)?;
            }
            out.push(b']');
        }
        Obj::Dict(dict) => write_dict(out, dict, depth)?,
        // Streams are never copied: only dictionaries and arrays are rewritten.
        Obj::Stream(..) => return Err(TooDeep),
        Obj::Ref((id, generation)) => {
            let _ = write!(out, "{id} {generation} R");
        }
    }
    Ok(())
}

fn write_dict(out: &mut Vec<u8>, dict: &Dict, depth: usize) -> Result<(), TooDeep> {
    out.extend_from_slice(b"<<");
    for (key, value) in dict.iter() {
        write_name(out, key);
        out.push(b' ');
        write_at(out, value, depth + 1)?;
    }
    out.extend_from_slice(b">>");
    Ok(())
}

pub fn write_name(out: &mut Vec<u8>, name: &[u8]) {
    out.push(b'/');
    for &b in name {
        let delimiter = matches!(b, b'(' | b')' | b'<' | b'>' | b'[' | b']' | b'{' | b'}' | b'/' | b'%' | b'#');
        if (0x21..=0x7E).contains(&b) && !delimiter {
            out.push(b);
        } else {
            let _ = write!(out, "#{b:02X}");
        }
    }
}

fn write_string(out: &mut Vec<u8>, bytes: &[u8], hex: bool) {
    if hex {
        out.push(b'<');
        for b in bytes {
            let _ = write!(out, "{b:02X}");
        }
        out.push(b'>');
        return;
    }
    out.push(b'(');
    for &b in bytes {
        match b {
            b'(' | b')' | b'\\' => out.extend_from_slice(&[b'\\', b]),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\n' => out.extend_from_slice(b"\\n"),
            _ => out.push(b),
        }
    }
    out.push(b')');
}

/// A real number without exponent, at most 6 decimals.
pub fn real(value: f64) -> String {
    if !value.is_finite() {
        return "0".to_owned();
    }
    let text = format!("{value:.6}");
    let trimmed = text.trim_end_matches('0').trim_end_matches('.');
    if trimmed.is_empty() || trimmed == "-0" { "0".to_owned() } else { trimmed.to_owned() }
}

#[cfg(test)]
mod tests {
    use std::rc::Rc;

    use super::*;

    fn written(object: &Obj) -> String {
        let mut out = Vec::new();
        write_object(&mut out, object).expect("shallow");
        String::from_utf8_lossy(&out).into_owned()
    }

    #[test]
    fn writes_each_kind() {
        let mut dict = Dict::new();
        dict.set(b"A b", Obj::name(b"x/y"));
        dict.set(b"S", Obj::Str(Rc::from(&b"a(b)\\"[..]), false));
        dict.set(b"H", Obj::Str(Rc::from(&[0u8, 255][..]), true));
        let real = Obj::Real(595.2756, Rc::from(&b"595.2756"[..]));
        dict.set(b"R", Obj::Array(Rc::new(vec![Obj::Ref((3, 0)), real, Obj::Int(-2), Obj::Null, Obj::Bool(true)])));
        assert_eq!(written(&Obj::Dict(Rc::new(dict))), r"<</A#20b /x#2Fy/S (a\(b\)\\)/H <00FF>/R [3 0 R 595.2756 -2 null true]>>");
    }

    #[test]
    fn refuses_absurd_nesting() {
        let mut object = Obj::Null;
        for _ in 0..1000 {
            object = Obj::Array(Rc::new(vec![object]));
        }
        assert!(write_object(&mut Vec::new(), &object).is_err());
    }
}
