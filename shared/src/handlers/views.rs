//! The JSON the API shows for domain objects (API.md shapes).

use serde_json::{Value, json};

use crate::domain::invoice::{CURRENCY, Invoice, RefundSummary};
use crate::domain::time;

pub fn invoice(i: &Invoice) -> Value {
    json!({
        "invoice_id": i.id.to_string(),
        "order_id": i.id.order_id().to_string(),
        "status": i.status.as_str(),
        "quantity": i.quantity.get(),
        "unit_price": i.unit_price.get(),
        "amount": i.amount.get(),
        "currency": CURRENCY,
        "created_at": time::format(i.created_at),
        "expires_at": time::format(i.expires_at),
        "payment": i.payment.as_ref().map(|p| json!({
            "gateway": "midtrans",
            "token": p.token,
            "redirect_url": p.redirect_url,
        })),
        "used": i.used,
        "remaining": i.remaining,
        "refunded": i.refunded,
        "paid_at": i.paid_at.map(time::format),
        "valid_until": i.valid_until.map(time::format),
        "refund": i.refund.as_ref().map(|r| refund(i, r)),
        "review": i.review.as_ref().map(|r| json!({
            "reason": r.reason,
            "flagged_at": time::format(r.flagged_at),
        })),
    })
}

pub fn refund(i: &Invoice, r: &RefundSummary) -> Value {
    json!({
        "refund_id": r.refund_id.to_string(),
        "invoice_id": i.id.to_string(),
        "units": r.units,
        "amount": r.amount.get(),
        "status": r.status.as_str(),
        "reason": r.reason.as_str(),
        "requested_at": time::format(r.requested_at),
        "updated_at": time::format(r.updated_at),
        "attempts": r.attempts,
        "note": r.note,
    })
}
