//! Writing PDF objects (ISO 32000-1 7.3) for the appended update. Deterministic, and bounded in
//! depth so that a deeply nested object we copy cannot overflow the stack.

use std::io::Write as _;

use lopdf::{Dictionary, Object, StringFormat};

const MAX_DEPTH: usize = 128;

#[derive(Debug)]
pub struct TooDeep;

pub fn write_object(out: &mut Vec<u8>, object: &Object) -> Result<(), TooDeep> {
    write_at(out, object, 0)
}

fn write_at(out: &mut Vec<u8>, object: &Object, depth: usize) -> Result<(), TooDeep> {
    if depth > MAX_DEPTH {
        return Err(TooDeep);
    }
    match object {
        Object::Null => out.extend_from_slice(b"null"),
        Object::Boolean(b) => out.extend_from_slice(if *b { b"true" } else { b"false" }),
        Object::Integer(i) => {
            let _ = write!(out, "{i}");
        }
        Object::Real(r) => out.extend_from_slice(real(f64::from(*r)).as_bytes()),
        Object::Name(name) => write_name(out, name),
        Object::String(bytes, format) => write_string(out, bytes, *format),
        Object::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b' ');
                }
                write_at(out, item, depth + 1)?;
            }
            out.push(b']');
        }
        Object::Dictionary(dict) => write_dict(out, dict, depth)?,
        Object::Stream(stream) => {
            let mut dict = stream.dict.clone();
            dict.set("Length", Object::Integer(stream.content.len() as i64));
            write_dict(out, &dict, depth)?;
            out.extend_from_slice(b"\nstream\n");
            out.extend_from_slice(&stream.content);
            out.extend_from_slice(b"\nendstream");
        }
        Object::Reference((id, generation)) => {
            let _ = write!(out, "{id} {generation} R");
        }
    }
    Ok(())
}

fn write_dict(out: &mut Vec<u8>, dict: &Dictionary, depth: usize) -> Result<(), TooDeep> {
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

fn write_string(out: &mut Vec<u8>, bytes: &[u8], format: StringFormat) {
    if format == StringFormat::Hexadecimal {
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
    use super::*;

    fn written(object: &Object) -> String {
        let mut out = Vec::new();
        write_object(&mut out, object).expect("shallow");
        String::from_utf8_lossy(&out).into_owned()
    }

    #[test]
    fn writes_each_kind() {
        let mut dict = Dictionary::new();
        dict.set("A b", Object::Name(b"x/y".to_vec()));
        dict.set("S", Object::String(b"a(b)\\".to_vec(), StringFormat::Literal));
        dict.set("H", Object::String(vec![0, 255], StringFormat::Hexadecimal));
        dict.set("R", Object::Array(vec![Object::Reference((3, 0)), Object::Real(1.5), Object::Integer(-2), Object::Null, Object::Boolean(true)]));
        assert_eq!(written(&Object::Dictionary(dict)), r"<</A#20b /x#2Fy/S (a\(b\)\\)/H <00FF>/R [3 0 R 1.5 -2 null true]>>");
    }

    #[test]
    fn refuses_absurd_nesting() {
        let mut object = Object::Null;
        for _ in 0..1000 {
            object = Object::Array(vec![object]);
        }
        assert!(write_object(&mut Vec::new(), &object).is_err());
    }
}
