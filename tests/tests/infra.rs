//! Proves the test services work as the functions will use them: a table created from
//! template.yaml on DynamoDB Local, a bucket and a presigned upload on SeaweedFS.

use std::time::Duration;

use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_s3::presigning::PresigningConfig;
use emeterai_local::provision::{Provisioned, clients_from_env, create_table, ensure_bucket, ensure_table};
use emeterai_local::template::Template;
use emeterai_local::testing::{require_test_services, unique_name};

fn template() -> Template {
    Template::load(concat!(env!("CARGO_MANIFEST_DIR"), "/../template.yaml")).expect("template.yaml")
}

#[tokio::test]
async fn table_from_template_stores_items_and_serves_its_indexes() {
    require_test_services();
    let (dynamodb, _) = clients_from_env().await;
    let def = template().table_definition().expect("table definition");
    let table = unique_name("infra");
    create_table(&dynamodb, &def, &table).await.expect("create table");
    assert_eq!(ensure_table(&dynamodb, &def, &table).await.expect("ensure"), Provisioned::AlreadyThere);

    let described = dynamodb.describe_table().table_name(&table).send().await.expect("describe");
    let gsis: Vec<_> = described
        .table()
        .map(|t| t.global_secondary_indexes().iter().filter_map(|g| g.index_name()).collect())
        .unwrap_or_default();
    assert_eq!(gsis.len(), def.global_secondary_indexes.len(), "{gsis:?}");

    dynamodb
        .put_item()
        .table_name(&table)
        .item("pk", AttributeValue::S("ACCOUNT#alice".into()))
        .item("sk", AttributeValue::S("INVOICE#1".into()))
        .item("account_pk", AttributeValue::S("ACCOUNT#alice".into()))
        .item("created_sk", AttributeValue::S("2026-01-01T00:00:00Z".into()))
        .item("quantity", AttributeValue::N("3".into()))
        // Conditional, as every ledger write is.
        .condition_expression("attribute_not_exists(pk)")
        .send()
        .await
        .expect("put");
    let got = dynamodb
        .get_item()
        .table_name(&table)
        .key("pk", AttributeValue::S("ACCOUNT#alice".into()))
        .key("sk", AttributeValue::S("INVOICE#1".into()))
        .consistent_read(true)
        .send()
        .await
        .expect("get");
    assert_eq!(got.item().and_then(|i| i.get("quantity")), Some(&AttributeValue::N("3".into())));

    let by_account = dynamodb
        .query()
        .table_name(&table)
        .index_name("by_account")
        .key_condition_expression("account_pk = :a")
        .expression_attribute_values(":a", AttributeValue::S("ACCOUNT#alice".into()))
        .send()
        .await
        .expect("query by_account");
    assert_eq!(by_account.count(), 1);

    let ttl = dynamodb.describe_time_to_live().table_name(&table).send().await.expect("describe ttl");
    assert_eq!(ttl.time_to_live_description().and_then(|d| d.attribute_name()), def.ttl_attribute.as_deref());
}

#[tokio::test]
async fn bucket_accepts_a_presigned_put_and_checks_signatures() {
    require_test_services();
    let (_, s3) = clients_from_env().await;
    let bucket = unique_name("infra");
    assert_eq!(ensure_bucket(&s3, &bucket).await.expect("create bucket"), Provisioned::Created);
    assert_eq!(ensure_bucket(&s3, &bucket).await.expect("again"), Provisioned::AlreadyThere);

    let key = "incoming/alice/doc 1.pdf";
    let body = b"%PDF-1.7\n% test body\n".to_vec();
    let presigned = s3
        .put_object()
        .bucket(&bucket)
        .key(key)
        .content_type("application/pdf")
        .presigned(PresigningConfig::expires_in(Duration::from_secs(300)).expect("config"))
        .await
        .expect("presign");
    let http = reqwest::Client::builder().timeout(Duration::from_secs(10)).build().expect("client");
    let put = http
        .put(presigned.uri())
        .header("content-type", "application/pdf")
        .body(body.clone())
        .send()
        .await
        .expect("presigned PUT");
    assert!(put.status().is_success(), "presigned PUT answered {}", put.status());

    let got = s3.get_object().bucket(&bucket).key(key).send().await.expect("get");
    assert_eq!(got.content_type(), Some("application/pdf"));
    let bytes = got.body.collect().await.expect("body").into_bytes();
    assert_eq!(bytes.as_ref(), body.as_slice());

    // A tampered signature is refused: the server really checks SigV4.
    let tampered = presigned.uri().replace("X-Amz-Signature=", "X-Amz-Signature=0");
    let refused = http.put(tampered).header("content-type", "application/pdf").body(body).send().await.expect("PUT");
    assert_eq!(refused.status().as_u16(), 403);
}
