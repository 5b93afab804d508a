//! Creates on local services the table and bucket that `template.yaml` declares.

use std::time::Duration;

use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType, Projection,
    ProjectionType, ScalarAttributeType, TableStatus, TimeToLiveSpecification,
};

use crate::template::{self, TableDefinition};

#[derive(Debug, thiserror::Error)]
pub enum ProvisionError {
    // Boxed: the SDK errors are large and would bloat every Result on the happy path.
    #[error("DynamoDB: {0}")]
    DynamoDb(Box<aws_sdk_dynamodb::Error>),
    #[error("S3: {0}")]
    S3(Box<aws_sdk_s3::Error>),
    #[error("building the request: {0}")]
    Build(String),
    #[error("table {0} already exists")]
    TableExists(String),
    #[error("table {0} did not become ACTIVE within {1:?}")]
    NotActive(String, Duration),
}

impl From<aws_sdk_dynamodb::Error> for ProvisionError {
    fn from(e: aws_sdk_dynamodb::Error) -> Self {
        ProvisionError::DynamoDb(Box::new(e))
    }
}

impl From<aws_sdk_s3::Error> for ProvisionError {
    fn from(e: aws_sdk_s3::Error) -> Self {
        ProvisionError::S3(Box::new(e))
    }
}

/// How long to wait for a new table to become ACTIVE (DynamoDB Local is immediate).
const ACTIVE_TIMEOUT: Duration = Duration::from_secs(30);

/// AWS clients from the environment (`AWS_ENDPOINT_URL_DYNAMODB`, `AWS_ENDPOINT_URL_S3`, ...),
/// with S3 addressed by path as local S3 servers need.
pub async fn clients_from_env() -> (aws_sdk_dynamodb::Client, aws_sdk_s3::Client) {
    let shared = aws_config::load_from_env().await;
    let dynamodb = aws_sdk_dynamodb::Client::new(&shared);
    let s3_config = aws_sdk_s3::config::Builder::from(&shared).force_path_style(true).build();
    (dynamodb, aws_sdk_s3::Client::from_conf(s3_config))
}

fn key_schema(keys: &[template::KeyElement]) -> Result<Vec<KeySchemaElement>, ProvisionError> {
    keys.iter()
        .map(|k| {
            KeySchemaElement::builder()
                .attribute_name(&k.attribute_name)
                .key_type(match k.key_type {
                    template::KeyType::Hash => KeyType::Hash,
                    template::KeyType::Range => KeyType::Range,
                })
                .build()
                .map_err(|e| ProvisionError::Build(e.to_string()))
        })
        .collect()
}

/// Creates `table_name` as `def` describes (on-demand billing, every GSI with its projection),
/// waits until it is ACTIVE and enables TTL when the template does. Fails with
/// [`ProvisionError::TableExists`] when the table is already there.
pub async fn create_table(
    client: &aws_sdk_dynamodb::Client,
    def: &TableDefinition,
    table_name: &str,
) -> Result<(), ProvisionError> {
    let mut request = client
        .create_table()
        .table_name(table_name)
        .billing_mode(BillingMode::PayPerRequest)
        .set_key_schema(Some(key_schema(&def.key_schema)?));
    for attribute in &def.attribute_definitions {
        request = request.attribute_definitions(
            AttributeDefinition::builder()
                .attribute_name(&attribute.attribute_name)
                .attribute_type(ScalarAttributeType::from(attribute.attribute_type.as_str()))
                .build()
                .map_err(|e| ProvisionError::Build(e.to_string()))?,
        );
    }
    for gsi in &def.global_secondary_indexes {
        let non_key = (!gsi.projection.non_key_attributes.is_empty()).then(|| gsi.projection.non_key_attributes.clone());
        request = request.global_secondary_indexes(
            GlobalSecondaryIndex::builder()
                .index_name(&gsi.index_name)
                .set_key_schema(Some(key_schema(&gsi.key_schema)?))
                .projection(
                    Projection::builder()
                        .projection_type(ProjectionType::from(gsi.projection.projection_type.as_str()))
                        .set_non_key_attributes(non_key)
                        .build(),
                )
                .build()
                .map_err(|e| ProvisionError::Build(e.to_string()))?,
        );
    }
    match request.send().await.map_err(aws_sdk_dynamodb::Error::from) {
        Ok(_) => {}
        Err(aws_sdk_dynamodb::Error::ResourceInUseException(_)) => {
            return Err(ProvisionError::TableExists(table_name.to_owned()));
        }
        Err(e) => return Err(e.into()),
    }
    wait_until_active(client, table_name).await?;
    if let Some(attribute) = &def.ttl_attribute {
        let spec = TimeToLiveSpecification::builder()
            .attribute_name(attribute)
            .enabled(true)
            .build()
            .map_err(|e| ProvisionError::Build(e.to_string()))?;
        client
            .update_time_to_live()
            .table_name(table_name)
            .time_to_live_specification(spec)
            .send()
            .await
            .map_err(aws_sdk_dynamodb::Error::from)?;
    }
    Ok(())
}

async fn wait_until_active(client: &aws_sdk_dynamodb::Client, table_name: &str) -> Result<(), ProvisionError> {
    let deadline = tokio::time::Instant::now() + ACTIVE_TIMEOUT;
    loop {
        let described = client
            .describe_table()
            .table_name(table_name)
            .send()
            .await
            .map_err(aws_sdk_dynamodb::Error::from)?;
        let status = described.table().and_then(|t| t.table_status());
        if status == Some(&TableStatus::Active) {
            return Ok(());
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(ProvisionError::NotActive(table_name.to_owned(), ACTIVE_TIMEOUT));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Provisioned {
    Created,
    AlreadyThere,
}

/// Creates the table unless it exists (the local stack's data survives restarts).
pub async fn ensure_table(
    client: &aws_sdk_dynamodb::Client,
    def: &TableDefinition,
    table_name: &str,
) -> Result<Provisioned, ProvisionError> {
    match create_table(client, def, table_name).await {
        Ok(()) => Ok(Provisioned::Created),
        Err(ProvisionError::TableExists(_)) => Ok(Provisioned::AlreadyThere),
        Err(e) => Err(e),
    }
}

/// Creates the bucket unless it exists.
pub async fn ensure_bucket(client: &aws_sdk_s3::Client, bucket: &str) -> Result<Provisioned, ProvisionError> {
    match client.create_bucket().bucket(bucket).send().await.map_err(aws_sdk_s3::Error::from) {
        Ok(_) => Ok(Provisioned::Created),
        Err(aws_sdk_s3::Error::BucketAlreadyOwnedByYou(_) | aws_sdk_s3::Error::BucketAlreadyExists(_)) => {
            Ok(Provisioned::AlreadyThere)
        }
        Err(e) => Err(e.into()),
    }
}
