//! Random sequences of checkouts and notifications (duplicated, reordered, concurrent) against
//! DynamoDB Local; afterwards the ledger's invariants must hold.

use std::collections::HashMap;

use emeterai::domain::ids::{AccountId, InvoiceId};
use emeterai_tests::{TestApp, spawn_app};
use futures::future::join_all;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};

#[derive(Debug, Clone)]
enum Op {
    Checkout { quantity: u32 },
    /// A batch of notifications for earlier invoices, delivered concurrently.
    Notify(Vec<(usize, &'static str, bool)>),
}

fn op() -> impl Strategy<Value = Op> {
    let status = prop_oneof![
        4 => Just("settlement"),
        1 => Just("expire"),
        1 => Just("cancel"),
        1 => Just("pending"),
        1 => Just("deny"),
    ];
    prop_oneof![
        (1u32..=5).prop_map(|quantity| Op::Checkout { quantity }),
        // (which invoice, status, wrong amount?)
        prop::collection::vec((0usize..8, status, prop::bool::weighted(0.1)), 1..6).prop_map(Op::Notify),
    ]
}

async fn run(app: &TestApp, account: &str, ops: &[Op]) {
    let mut invoices: Vec<serde_json::Value> = Vec::new();
    for op in ops {
        match op {
            Op::Checkout { quantity } => invoices.push(app.buy(account, *quantity).await),
            Op::Notify(batch) if !invoices.is_empty() => {
                let calls = batch.iter().map(|(i, status, wrong_amount)| {
                    let inv = &invoices[i % invoices.len()];
                    let amount = inv["amount"].as_u64().unwrap_or(0) + u64::from(*wrong_amount);
                    let order = inv["order_id"].as_str().unwrap_or_default().to_owned();
                    async move { app.notify(&order, status, &format!("{amount}.00")).await }
                });
                for r in join_all(calls).await {
                    assert!(matches!(r.status, 200 | 422), "{} {:?}", r.status, r.body);
                }
            }
            Op::Notify(_) => {}
        }
    }
    check_invariants(app, account, &invoices).await;
}

async fn check_invariants(app: &TestApp, account: &str, created: &[serde_json::Value]) {
    let acct = AccountId::parse(account).expect("account");
    let balance = app.ledger.balance(&acct).await.expect("balance");
    let totals = app.ledger.entry_totals(&acct).await.expect("entries");
    assert_eq!(balance.available, totals.available(), "available = credits - consumptions - refunds");
    let (mut paid_units, mut pending_units) = (0i64, 0i64);
    let mut statuses = HashMap::new();
    for inv in created {
        let id = InvoiceId::parse(inv["invoice_id"].as_str().expect("id")).expect("invoice id");
        let stored = app.ledger.invoice(&id).await.expect("read").expect("exists");
        assert!(stored.units_balance(), "quantity = used + remaining + refunded for {id}");
        match stored.status.as_str() {
            "PAID" => paid_units += i64::from(stored.quantity.get()),
            "PENDING" => pending_units += i64::from(stored.quantity.get()),
            _ => {}
        }
        statuses.insert(id, stored.status);
    }
    assert_eq!(balance.available, paid_units, "every paid invoice credited exactly once");
    assert_eq!(totals.credited, paid_units);
    assert_eq!(balance.pending, pending_units, "pending = units of PENDING invoices");
}

#[test]
fn ledger_invariants_hold_under_random_notification_sequences() {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let app = rt.block_on(spawn_app());
    let cases: u32 = std::env::var("EMETERAI_PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(24);
    let mut runner = TestRunner::new(Config { cases, failure_persistence: None, ..Config::default() });
    let case = std::sync::atomic::AtomicU32::new(0);
    runner
        .run(&prop::collection::vec(op(), 1..14), |ops| {
            // Each case (and each shrink step) gets an account of its own in the shared table.
            let n = case.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let account = format!("prop-{n}");
            rt.block_on(run(&app, &account, &ops));
            Ok(())
        })
        .expect("invariants hold");
}
