//! The e-Meterai serial number: 22 characters of `0-9 A-Z`.

use std::fmt;

/// Number of characters in a serial.
pub const SERIAL_LEN: usize = 22;

const ALPHABET: &[u8; 36] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ";

/// A valid e-Meterai serial (22 characters of `0-9 A-Z`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Serial(String);

/// Why a text is not a serial.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a serial is {SERIAL_LEN} characters of 0-9 A-Z")]
pub struct InvalidSerial;

impl Serial {
    pub fn parse(text: &str) -> Result<Serial, InvalidSerial> {
        let well_formed = text.len() == SERIAL_LEN
            && text.bytes().all(|b| b.is_ascii_digit() || b.is_ascii_uppercase());
        if well_formed { Ok(Serial(text.to_owned())) } else { Err(InvalidSerial) }
    }

    /// A uniformly random serial.
    pub fn random(rng: &mut impl rand::RngCore) -> Serial {
        use rand::Rng;
        let text = (0..SERIAL_LEN)
            .map(|_| char::from(ALPHABET[rng.gen_range(0..ALPHABET.len())]))
            .collect();
        Serial(text)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Serial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::str::FromStr for Serial {
    type Err = InvalidSerial;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Serial::parse(s)
    }
}

impl serde::Serialize for Serial {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl<'de> serde::Deserialize<'de> for Serial {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Serial::parse(&text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_22_digits_and_capitals() {
        let serial = Serial::parse("0123456789ABCDEFGHIJKL").map(|s| s.to_string());
        assert_eq!(serial, Ok("0123456789ABCDEFGHIJKL".to_owned()));
    }

    #[test]
    fn rejects_wrong_length_and_alphabet() {
        for bad in ["", "0123456789ABCDEFGHIJK", "0123456789ABCDEFGHIJKLM", "0123456789abcdefghijkl", "0123456789ABCDEFGHIJ-L", "0123456789ABCDEFGHIJÄ"] {
            assert_eq!(Serial::parse(bad), Err(InvalidSerial), "{bad:?}");
        }
    }

    #[test]
    fn random_serials_parse() {
        let mut rng = rand::thread_rng();
        for _ in 0..100 {
            let serial = Serial::random(&mut rng);
            assert_eq!(Serial::parse(serial.as_str()), Ok(serial.clone()));
        }
    }
}
