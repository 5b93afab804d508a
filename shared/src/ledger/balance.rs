//! An account's quota: one balance item per account, changed only inside transactions that also
//! write the matching ledger entry.

use aws_sdk_dynamodb::types::AttributeValue;

use super::item::{Reader, s};
use super::keys::{self, BALANCE_SK, EntryKind, LEDGER_PREFIX, PK, SK};
use super::{Ledger, LedgerError};
use crate::domain::ids::AccountId;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Balance {
    /// Usable units.
    pub available: i64,
    /// Units in unpaid (PENDING) invoices.
    pub pending: i64,
    /// Totals ever credited, consumed and refunded; `available` is their balance.
    pub credited: i64,
    pub consumed: i64,
    pub refunded: i64,
}

/// Sums of the append-only ledger entries of an account.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EntryTotals {
    pub credited: i64,
    pub consumed: i64,
    pub refunded: i64,
}

impl EntryTotals {
    pub fn available(&self) -> i64 {
        self.credited - self.consumed - self.refunded
    }
}

impl Ledger {
    pub async fn balance(&self, account: &AccountId) -> Result<Balance, LedgerError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key(PK, s(keys::account_pk(account)))
            .key(SK, s(BALANCE_SK))
            .consistent_read(true)
            .send()
            .await?;
        let Some(item) = out.item else { return Ok(Balance::default()) };
        let r = Reader::new(&item, "balance");
        Ok(Balance {
            available: r.count("available")?,
            pending: r.count("pending")?,
            credited: r.count("credited")?,
            consumed: r.count("consumed")?,
            refunded: r.count("refunded")?,
        })
    }

    /// Adds up every ledger entry of the account (audits and tests; not a hot path).
    pub async fn entry_totals(&self, account: &AccountId) -> Result<EntryTotals, LedgerError> {
        let mut totals = EntryTotals::default();
        let mut pages = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("#pk = :pk AND begins_with(#sk, :prefix)")
            .expression_attribute_names("#pk", PK)
            .expression_attribute_names("#sk", SK)
            .expression_attribute_values(":pk", s(keys::account_pk(account)))
            .expression_attribute_values(":prefix", AttributeValue::S(LEDGER_PREFIX.into()))
            .consistent_read(true)
            .into_paginator()
            .items()
            .send();
        while let Some(item) = pages.next().await {
            let item = item?;
            let r = Reader::new(&item, "ledger entry");
            let units = i64::from(r.u32("units")?);
            match EntryKind::parse(r.str("kind")?) {
                Some(EntryKind::Credit) => totals.credited += units,
                Some(EntryKind::Consume) => totals.consumed += units,
                Some(EntryKind::Refund) => totals.refunded += units,
                None => return Err(LedgerError::Corrupt("ledger entry kind is unknown".into())),
            }
        }
        Ok(totals)
    }
}
