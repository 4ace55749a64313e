//! Property tests of the DynamoDB item mapping: every stored report reads back from its item,
//! keys come only from validated values, index sort keys order by time, and a hand-edited
//! attribute is named, never panicked on.

use contract::report::StoredReport;
use platform::item::{read_report, report_item, LSI1_SK, LSI2_SK, PK, SK};
use proptest::prelude::*;
use serde_json::Value;
use test_support::{config, json_value, plausible_reported_at, score_report, source};

fn stored_report() -> impl Strategy<Value = StoredReport> {
    (score_report(), source(), plausible_reported_at()).prop_map(|(report, source, received_at)| {
        StoredReport {
            report,
            source: source.to_string(),
            received_at,
        }
    })
}

proptest! {
    #![proptest_config(config(256))]

    #[test]
    fn stored_reports_read_back_from_their_items(s in stored_report()) {
        prop_assert_eq!(read_report(&report_item(&s)), Ok(s));
    }

    #[test]
    fn item_keys_come_only_from_validated_values(s in stored_report()) {
        let item = report_item(&s);
        let text = |name: &str| item[name].as_s().expect("string attribute").clone();
        let r = &s.report;
        prop_assert_eq!(text(PK), format!("USER#{}", r.user_id));
        prop_assert_eq!(text(SK), format!("REPORT#{}", r.report_id));
        // Time first, then id: two reports with the same timestamp still sort one way.
        let order = format!("{}#{}", r.reported_at, r.report_id);
        prop_assert_eq!(text(LSI1_SK), order.clone());
        prop_assert_eq!(text(LSI2_SK), format!("{}#{order}", r.bureau));
    }

    /// Lists read the index newest first, so index order must be `reportedAt` order.
    #[test]
    fn index_sort_keys_order_reports_by_time(a in stored_report(), b in stored_report()) {
        let key = |s: &StoredReport| report_item(s)[LSI1_SK].as_s().expect("string").clone();
        if a.report.reported_at < b.report.reported_at {
            prop_assert!(key(&a) < key(&b));
        }
    }

    #[test]
    fn a_hand_edited_attribute_is_named_not_panicked_on(
        s in stored_report(),
        attribute in prop::sample::select(vec!["userId", "reportId", "bureau", "score", "reportedAt", "source", "receivedAt"]),
        junk in json_value(),
    ) {
        let mut item = report_item(&s);
        let replacement = match &junk {
            Value::String(text) => aws_sdk_dynamodb::types::AttributeValue::S(text.clone()),
            Value::Number(n) => aws_sdk_dynamodb::types::AttributeValue::N(n.to_string()),
            Value::Bool(b) => aws_sdk_dynamodb::types::AttributeValue::Bool(*b),
            _ => aws_sdk_dynamodb::types::AttributeValue::Null(true),
        };
        item.insert(attribute.to_owned(), replacement);
        match read_report(&item) {
            Ok(read) => prop_assert_eq!(read_report(&report_item(&read)), Ok(read)),
            // A bad bureau may also surface as the score it no longer fits.
            Err(e) => prop_assert!(e.0 == attribute || (attribute == "bureau" && e.0 == "score"), "{:?} for {}", e, attribute),
        }
    }
}
