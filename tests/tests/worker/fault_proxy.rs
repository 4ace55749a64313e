//! The fault proxy itself: each fault reaches the SDK the way the real service's would, and
//! what the proxy says it held back really was not written.

use std::collections::HashMap;
use std::time::Duration;

use aws_config::retry::RetryConfig;
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::types::{AttributeValue, PutRequest, WriteRequest};
use pipeline_tests::fault_proxy::{dynamodb, DYNAMODB};
use pipeline_tests::{Emulator, FaultProxy, Faults, Outage};

fn item(id: usize) -> HashMap<String, AttributeValue> {
    HashMap::from([
        (
            "pk".to_owned(),
            AttributeValue::S("USER#proxy-test".to_owned()),
        ),
        (
            "sk".to_owned(),
            AttributeValue::S(format!("REPORT#r{id:03}")),
        ),
    ])
}

/// A DynamoDB client through the proxy that tries once, like the worker's.
async fn single_attempt_client(proxy: &FaultProxy) -> aws_sdk_dynamodb::Client {
    let sdk = proxy
        .config_loader()
        .retry_config(RetryConfig::disabled())
        .load()
        .await;
    aws_sdk_dynamodb::Client::new(&sdk)
}

async fn put(client: &aws_sdk_dynamodb::Client, table: &str, id: usize) -> Result<(), String> {
    client
        .put_item()
        .table_name(table)
        .set_item(Some(item(id)))
        .send()
        .await
        .map(|_| ())
        .map_err(|e| match &e {
            SdkError::ServiceError(_) => format!("service:{}", e.code().unwrap_or_default()),
            SdkError::DispatchFailure(_) => "dispatch".to_owned(),
            SdkError::ResponseError(_) => "response".to_owned(),
            SdkError::TimeoutError(_) => "timeout".to_owned(),
            other => format!("other:{other:?}"),
        })
}

async fn stored(emulator: &Emulator, table: &str) -> usize {
    emulator.scan(table).await.len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_fault_reaches_the_sdk_as_the_real_service_would_send_it() {
    let emulator = Emulator::connect().await;
    let table = emulator.create_resources().await.table_name;
    let proxy = FaultProxy::start(&emulator.endpoint).await;
    let client = single_attempt_client(&proxy).await;

    proxy.set_faults(
        DYNAMODB,
        Faults {
            throttle: 1.0,
            ..Faults::default()
        },
    );
    assert_eq!(
        put(&client, &table, 1).await,
        Err("service:ProvisionedThroughputExceededException".to_owned())
    );

    proxy.set_faults(
        DYNAMODB,
        Faults {
            server_error: 1.0,
            ..Faults::default()
        },
    );
    assert_eq!(
        put(&client, &table, 2).await,
        Err("service:InternalServerError".to_owned())
    );

    proxy.set_faults(
        DYNAMODB,
        Faults {
            reset: 1.0,
            ..Faults::default()
        },
    );
    assert_eq!(put(&client, &table, 3).await, Err("dispatch".to_owned()));
    assert_eq!(
        stored(&emulator, &table).await,
        0,
        "no faulted call may land"
    );

    proxy.set_faults(
        DYNAMODB,
        Faults {
            lost_response: 1.0,
            ..Faults::default()
        },
    );
    assert!(put(&client, &table, 4).await.is_err());
    assert_eq!(
        stored(&emulator, &table).await,
        1,
        "a lost response still landed"
    );

    proxy.clear_faults();
    assert_eq!(put(&client, &table, 5).await, Ok(()));

    let stats = proxy.stats().op(&dynamodb("PutItem"));
    assert_eq!(stats.calls, 5);
    assert_eq!(
        (
            stats.throttled,
            stats.server_errors,
            stats.resets,
            stats.lost_responses
        ),
        (1, 1, 1, 1)
    );
    assert_eq!(stats.forwarded, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn held_back_batch_items_come_back_unprocessed_and_are_not_written() {
    let emulator = Emulator::connect().await;
    let table = emulator.create_resources().await.table_name;
    let proxy = FaultProxy::start_seeded(&emulator.endpoint, 7).await;
    let client = single_attempt_client(&proxy).await;
    proxy.set_faults(
        &dynamodb("BatchWriteItem"),
        Faults {
            unprocessed: 1.0,
            ..Faults::default()
        },
    );

    let requests: Vec<WriteRequest> = (0..25)
        .map(|i| {
            WriteRequest::builder()
                .put_request(
                    PutRequest::builder()
                        .set_item(Some(item(i)))
                        .build()
                        .unwrap(),
                )
                .build()
        })
        .collect();
    let out = client
        .batch_write_item()
        .request_items(&table, requests)
        .send()
        .await
        .expect("a partial batch is a success with UnprocessedItems");
    let unprocessed = out
        .unprocessed_items
        .unwrap_or_default()
        .remove(&table)
        .unwrap_or_default();

    let stats = proxy.stats().op(&dynamodb("BatchWriteItem"));
    assert!(!unprocessed.is_empty(), "at least one item is held back");
    assert_eq!(stats.partial_batches, 1);
    assert_eq!(stats.held_back_items, unprocessed.len() as u64);
    assert_eq!(
        stored(&emulator, &table).await,
        25 - unprocessed.len(),
        "exactly the items not handed back were written"
    );
    let written: Vec<String> = emulator
        .scan(&table)
        .await
        .iter()
        .map(|i| format!("{:?}", i["sk"]))
        .collect();
    for request in &unprocessed {
        let sk = &request.put_request.as_ref().unwrap().item["sk"];
        assert!(
            !written.contains(&format!("{sk:?}")),
            "{sk:?} was handed back but written"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outage_fails_every_call_of_that_service_until_it_ends() {
    let emulator = Emulator::connect().await;
    let resources = emulator.create_resources().await;
    let proxy = FaultProxy::start(&emulator.endpoint).await;
    let client = single_attempt_client(&proxy).await;
    let sqs = aws_sdk_sqs::Client::new(&proxy.sdk_config().await);

    proxy.set_outage(DYNAMODB, Some(Outage::Reset));
    assert_eq!(
        put(&client, &resources.table_name, 1).await,
        Err("dispatch".to_owned())
    );
    proxy.set_outage(DYNAMODB, Some(Outage::ServerError));
    assert_eq!(
        put(&client, &resources.table_name, 2).await,
        Err("service:InternalServerError".to_owned())
    );
    // SQS is not down: its calls go through.
    sqs.get_queue_attributes()
        .queue_url(&resources.queue_url)
        .send()
        .await
        .expect("SQS is up while DynamoDB is down");

    proxy.set_outage(DYNAMODB, Some(Outage::Blackhole));
    let timed = aws_sdk_dynamodb::Client::from_conf(
        aws_sdk_dynamodb::config::Builder::from(&proxy.sdk_config().await)
            .retry_config(RetryConfig::disabled())
            .timeout_config(
                aws_config::timeout::TimeoutConfig::builder()
                    .operation_attempt_timeout(Duration::from_millis(300))
                    .build(),
            )
            .build(),
    );
    assert_eq!(
        put(&timed, &resources.table_name, 3).await,
        Err("timeout".to_owned()),
        "a blackholed call only ends by the client's own timeout"
    );

    proxy.set_outage(DYNAMODB, None);
    assert_eq!(put(&client, &resources.table_name, 4).await, Ok(()));
    assert_eq!(stored(&emulator, &resources.table_name).await, 1);
    assert_eq!(proxy.stats().service(DYNAMODB).outage_failures, 3);
}
