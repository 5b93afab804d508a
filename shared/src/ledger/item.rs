//! Reading and writing DynamoDB attribute maps without panics: a missing or mistyped attribute
//! is a `Corrupt` error naming it.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;

use super::LedgerError;
use crate::domain::time::{self, Timestamp};

pub type Item = HashMap<String, AttributeValue>;

pub fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

pub fn n(v: impl ToString) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

pub fn ts(t: Timestamp) -> AttributeValue {
    AttributeValue::S(time::format(t))
}

pub struct Reader<'a> {
    item: &'a Item,
    what: &'static str,
}

impl<'a> Reader<'a> {
    pub fn new(item: &'a Item, what: &'static str) -> Self {
        Self { item, what }
    }

    fn corrupt(&self, attr: &str) -> LedgerError {
        LedgerError::Corrupt(format!("{} attribute {attr} is missing or malformed", self.what))
    }

    pub fn opt_str(&self, attr: &str) -> Option<&'a str> {
        match self.item.get(attr) {
            Some(AttributeValue::S(v)) => Some(v.as_str()),
            _ => None,
        }
    }

    pub fn str(&self, attr: &str) -> Result<&'a str, LedgerError> {
        self.opt_str(attr).ok_or_else(|| self.corrupt(attr))
    }

    pub fn opt_u64(&self, attr: &str) -> Result<Option<u64>, LedgerError> {
        match self.item.get(attr) {
            None | Some(AttributeValue::Null(_)) => Ok(None),
            Some(AttributeValue::N(v)) => v.parse().map(Some).map_err(|_| self.corrupt(attr)),
            Some(_) => Err(self.corrupt(attr)),
        }
    }

    /// A number attribute's text (for non-integer numbers).
    pub fn str_number(&self, attr: &str) -> Result<&'a str, LedgerError> {
        match self.item.get(attr) {
            Some(AttributeValue::N(v)) => Ok(v.as_str()),
            _ => Err(self.corrupt(attr)),
        }
    }

    pub fn u64(&self, attr: &str) -> Result<u64, LedgerError> {
        self.opt_u64(attr)?.ok_or_else(|| self.corrupt(attr))
    }

    pub fn u32(&self, attr: &str) -> Result<u32, LedgerError> {
        u32::try_from(self.u64(attr)?).map_err(|_| self.corrupt(attr))
    }

    /// A counter that may not exist yet (an item created by `ADD`).
    pub fn count(&self, attr: &str) -> Result<i64, LedgerError> {
        match self.item.get(attr) {
            None => Ok(0),
            Some(AttributeValue::N(v)) => v.parse().map_err(|_| self.corrupt(attr)),
            Some(_) => Err(self.corrupt(attr)),
        }
    }

    pub fn time(&self, attr: &str) -> Result<Timestamp, LedgerError> {
        time::parse(self.str(attr)?).ok_or_else(|| self.corrupt(attr))
    }

    pub fn opt_time(&self, attr: &str) -> Result<Option<Timestamp>, LedgerError> {
        match self.opt_str(attr) {
            None => Ok(None),
            Some(v) => time::parse(v).map(Some).ok_or_else(|| self.corrupt(attr)),
        }
    }

    pub fn opt_map(&self, attr: &str) -> Option<Reader<'a>> {
        match self.item.get(attr) {
            Some(AttributeValue::M(m)) => Some(Reader { item: m, what: self.what }),
            _ => None,
        }
    }
}
