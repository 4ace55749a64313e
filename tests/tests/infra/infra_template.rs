//! Invariants of the deployable stack, `infra/template.yaml` (AWS SAM), that the code and the
//! operations docs rely on. cfn-lint (`infra/lint.sh`) checks that the template is valid; this
//! checks that it is the template we mean: queue timing, partial batch failures, the DLQ, the
//! table's keys, least-privilege IAM, the runtime, the alarms, and the security controls the
//! IaC scan (checkov, in infra/lint.sh) asked for: encryption at rest, TLS-only queues, access
//! logs, throttling, reserved concurrency, log retention, and a reason for every skipped check.
//!
//! The template is parsed with `serde_yaml_ng`, which keeps CloudFormation's short-form tags:
//! `!Ref X`, `!GetAtt X.Arn`, `!Sub "..."` become `Value::Tagged`. Values the checks compare
//! (timeouts, retention) must be literals in the template, and the tests say so when not.

use std::collections::BTreeSet;

use serde_yaml_ng::{Mapping, Value};

/// Embedded at compile time, so editing the template re-runs these tests.
const TEMPLATE: &str = include_str!("../../../infra/template.yaml");
const TEMPLATE_PATH: &str = "infra/template.yaml";

const INGEST: &str = "IngestFunction";
const WORKER: &str = "WorkerFunction";

/// The table shape platform/src/item.rs derives keys for.
const PARTITION_KEY: &str = "pk";
const SORT_KEY: &str = "sk";
const LOCAL_INDEXES: [(&str, &str); 2] =
    [("byReportedAt", "lsi1sk"), ("byBureauReportedAt", "lsi2sk")];

// ------------------------------------------------------------------ reading the template

fn template() -> Value {
    serde_yaml_ng::from_str(TEMPLATE)
        .unwrap_or_else(|e| panic!("{TEMPLATE_PATH} is not valid YAML: {e}"))
}

fn resources(t: &Value) -> &Mapping {
    t.get("Resources")
        .and_then(Value::as_mapping)
        .unwrap_or_else(|| panic!("{TEMPLATE_PATH} has no Resources section"))
}

fn resource<'a>(t: &'a Value, id: &str) -> &'a Value {
    resources(t)
        .get(id)
        .unwrap_or_else(|| panic!("{TEMPLATE_PATH} has no resource `{id}`"))
}

fn resource_type(r: &Value) -> &str {
    r.get("Type").and_then(Value::as_str).unwrap_or("")
}

/// `Properties.<path...>` of a resource, if present.
fn prop<'a>(r: &'a Value, path: &[&str]) -> Option<&'a Value> {
    path.iter()
        .try_fold(r.get("Properties")?, |v, key| v.get(*key))
}

/// A function property, falling back to `Globals.Function` as SAM does.
fn function_prop<'a>(t: &'a Value, function: &str, key: &str) -> Option<&'a Value> {
    prop(resource(t, function), &[key]).or_else(|| t.get("Globals")?.get("Function")?.get(key))
}

/// A literal whole number (YAML number or numeric string); `what` names it in the failure.
fn literal_int(v: Option<&Value>, what: &str) -> i64 {
    let v = v.unwrap_or_else(|| panic!("{what} is not set in {TEMPLATE_PATH}"));
    v.as_i64()
        .or_else(|| v.as_str().and_then(|s| s.trim().parse().ok()))
        .unwrap_or_else(|| {
            panic!("{what} must be a literal whole number so this test can check it, found {v:?}")
        })
}

fn literal_str<'a>(v: Option<&'a Value>, what: &str) -> &'a str {
    let v = v.unwrap_or_else(|| panic!("{what} is not set in {TEMPLATE_PATH}"));
    v.as_str()
        .unwrap_or_else(|| panic!("{what} must be a literal string, found {v:?}"))
}

fn is_true(v: Option<&Value>) -> bool {
    matches!(v, Some(Value::Bool(true))) || v.and_then(Value::as_str) == Some("true")
}

/// The logical id behind `!Ref X` or `{Ref: X}`.
fn ref_target(v: &Value) -> Option<&str> {
    match v {
        Value::Tagged(tagged) if tagged.tag == "Ref" => tagged.value.as_str(),
        Value::Mapping(m) if m.len() == 1 => m.get("Ref").and_then(Value::as_str),
        _ => None,
    }
}

/// The template string of `!Sub "..."` or `{Fn::Sub: "..."}`.
fn sub_template(v: &Value) -> Option<&str> {
    match v {
        Value::Tagged(tagged) if tagged.tag == "Sub" => tagged.value.as_str(),
        Value::Mapping(m) if m.len() == 1 => m.get("Fn::Sub").and_then(Value::as_str),
        _ => None,
    }
}

/// `(logical id, attribute)` behind `!GetAtt X.Attr`, `!GetAtt [X, Attr]` or `{Fn::GetAtt: ...}`.
fn getatt_target(v: &Value) -> Option<(String, String)> {
    let arg = match v {
        Value::Tagged(tagged) if tagged.tag == "GetAtt" => &tagged.value,
        Value::Mapping(m) if m.len() == 1 => m.get("Fn::GetAtt")?,
        _ => return None,
    };
    match arg {
        Value::String(s) => {
            let (id, attr) = s.split_once('.')?;
            Some((id.to_owned(), attr.to_owned()))
        }
        Value::Sequence(parts) => match parts.as_slice() {
            [id, attr] => Some((id.as_str()?.to_owned(), attr.as_str()?.to_owned())),
            _ => None,
        },
        _ => None,
    }
}

/// A scalar or a list of scalars as a list (IAM's `Action` and `Resource` take either).
fn one_or_many(v: &Value) -> Vec<&Value> {
    match v {
        Value::Sequence(items) => items.iter().collect(),
        other => vec![other],
    }
}

/// The literal strings of a property that holds one string or a list of them (none if absent).
fn string_list(v: Option<&Value>) -> Vec<&str> {
    v.map(one_or_many)
        .unwrap_or_default()
        .into_iter()
        .filter_map(Value::as_str)
        .collect()
}

/// Every literal string anywhere inside `v`, including inside tags such as `!Sub` or `!If`.
fn strings_within(v: &Value) -> Vec<&str> {
    match v {
        Value::String(s) => vec![s.as_str()],
        Value::Sequence(items) => items.iter().flat_map(strings_within).collect(),
        Value::Mapping(m) => m.values().flat_map(strings_within).collect(),
        Value::Tagged(tagged) => strings_within(&tagged.value),
        _ => Vec::new(),
    }
}

/// Every IAM statement in the template (role policies, SAM inline policies, trust policies):
/// any mapping with an `Effect` and an `Action` or `NotAction`.
fn iam_statements(v: &Value) -> Vec<&Mapping> {
    let mut found = Vec::new();
    match v {
        Value::Mapping(m) => {
            if m.contains_key("Effect") && (m.contains_key("Action") || m.contains_key("NotAction"))
            {
                found.push(m);
            }
            found.extend(m.values().flat_map(iam_statements));
        }
        Value::Sequence(items) => found.extend(items.iter().flat_map(iam_statements)),
        Value::Tagged(tagged) => found.extend(iam_statements(&tagged.value)),
        _ => {}
    }
    found
}

/// A readable name for an IAM `Resource` entry: `Queue.Arn` for `!GetAtt Queue.Arn`, the
/// pattern for `!Sub`, the literal otherwise.
fn resource_name(v: &Value) -> String {
    if let Some((id, attr)) = getatt_target(v) {
        return format!("{id}.{attr}");
    }
    match v {
        Value::String(s) => s.clone(),
        Value::Tagged(tagged) if tagged.tag == "Sub" => strings_within(&tagged.value)
            .first()
            .map_or_else(|| format!("{v:?}"), |s| (*s).to_owned()),
        other => format!("{other:?}"),
    }
}

/// The role a function runs as: the logical id of its `Role: !GetAtt X.Arn`.
fn function_role(t: &Value, function: &str) -> String {
    let role = prop(resource(t, function), &["Role"]).unwrap_or_else(|| {
        panic!("{function} has no explicit Role: SAM would then create one and attach broad managed policies")
    });
    match getatt_target(role) {
        Some((id, attr)) if attr == "Arn" => id,
        _ => panic!(
            "{function}.Role should be `!GetAtt <role in this template>.Arn`, found {role:?}"
        ),
    }
}

/// Every `(action, resource)` pair a role's own policies allow.
fn allowed_pairs(t: &Value, role_id: &str) -> BTreeSet<(String, String)> {
    let role = resource(t, role_id);
    assert_eq!(
        resource_type(role),
        "AWS::IAM::Role",
        "{role_id} should be an AWS::IAM::Role"
    );
    let policies = prop(role, &["Policies"])
        .map(one_or_many)
        .unwrap_or_default();
    let mut pairs = BTreeSet::new();
    for policy in policies {
        let statements = policy
            .get("PolicyDocument")
            .and_then(|d| d.get("Statement"))
            .unwrap_or_else(|| panic!("a policy of {role_id} has no PolicyDocument.Statement"));
        for statement in one_or_many(statements) {
            if statement.get("Effect").and_then(Value::as_str) != Some("Allow") {
                continue;
            }
            let actions = statement.get("Action").map(one_or_many).unwrap_or_default();
            let targets = statement
                .get("Resource")
                .map(one_or_many)
                .unwrap_or_default();
            for action in &actions {
                let action = action.as_str().unwrap_or_else(|| {
                    panic!("{role_id} has a non-literal Action {action:?}: write actions out")
                });
                for target in &targets {
                    pairs.insert((action.to_owned(), resource_name(target)));
                }
            }
        }
    }
    pairs
}

fn pairs(expected: &[(&str, &str)]) -> BTreeSet<(String, String)> {
    expected
        .iter()
        .map(|(a, r)| ((*a).to_owned(), (*r).to_owned()))
        .collect()
}

fn assert_grants_exactly(t: &Value, function: &str, expected: &[(&str, &str)]) {
    let role = function_role(t, function);
    let actual = allowed_pairs(t, &role);
    let expected = pairs(expected);
    let extra: Vec<_> = actual.difference(&expected).collect();
    let missing: Vec<_> = expected.difference(&actual).collect();
    assert!(
        extra.is_empty() && missing.is_empty(),
        "{role} (the role of {function}) should allow exactly what the code needs.\n  \
         allowed but not needed: {extra:?}\n  needed but not allowed: {missing:?}"
    );
    assert!(
        prop(resource(t, &role), &["ManagedPolicyArns"]).is_none(),
        "{role} must not attach managed policies: they grant more than the code needs"
    );
}

/// The single SQS event source of the worker: `(event properties, queue logical id)`.
fn worker_sqs_event(t: &Value) -> (&Value, String) {
    let events = prop(resource(t, WORKER), &["Events"])
        .and_then(Value::as_mapping)
        .unwrap_or_else(|| panic!("{WORKER} has no Events"));
    let sqs: Vec<&Value> = events
        .values()
        .filter(|e| e.get("Type").and_then(Value::as_str) == Some("SQS"))
        .collect();
    let [event] = sqs.as_slice() else {
        panic!(
            "{WORKER} should have exactly one SQS event source, found {}",
            sqs.len()
        );
    };
    let props = event
        .get("Properties")
        .unwrap_or_else(|| panic!("the SQS event of {WORKER} has no Properties"));
    let queue = props
        .get("Queue")
        .and_then(getatt_target)
        .map(|(id, _)| id)
        .unwrap_or_else(|| {
            panic!("the SQS event of {WORKER} should name its queue with !GetAtt <Queue>.Arn")
        });
    (props, queue)
}

/// The dead-letter queue the worker's queue redrives to.
fn dead_letter_queue(t: &Value) -> String {
    let (_, queue) = worker_sqs_event(t);
    let target = prop(
        resource(t, &queue),
        &["RedrivePolicy", "deadLetterTargetArn"],
    )
    .unwrap_or_else(|| panic!("queue {queue} has no RedrivePolicy.deadLetterTargetArn"));
    getatt_target(target).map(|(id, _)| id).unwrap_or_else(|| {
        panic!("{queue}'s deadLetterTargetArn should be !GetAtt <dead-letter queue>.Arn, found {target:?}")
    })
}

fn environment<'a>(t: &'a Value, function: &str) -> &'a Value {
    function_prop(t, function, "Environment")
        .and_then(|e| e.get("Variables"))
        .unwrap_or_else(|| panic!("{function} has no Environment.Variables"))
}

// ------------------------------------------------------------------ queue and worker

#[test]
fn queue_visibility_timeout_is_at_least_six_times_the_worker_timeout() {
    let t = template();
    let (_, queue) = worker_sqs_event(&t);
    let visibility = literal_int(
        prop(resource(&t, &queue), &["VisibilityTimeout"]),
        &format!("{queue}.VisibilityTimeout"),
    );
    let timeout = literal_int(
        function_prop(&t, WORKER, "Timeout"),
        &format!("{WORKER}.Timeout"),
    );
    assert!(
        visibility >= 6 * timeout,
        "{queue}.VisibilityTimeout is {visibility} s but must be at least 6 x {WORKER}.Timeout \
         ({timeout} s) = {} s, or batches are redelivered while the worker still holds them",
        6 * timeout
    );
}

#[test]
fn worker_event_source_reports_batch_item_failures() {
    let t = template();
    let (event, _) = worker_sqs_event(&t);
    let types = string_list(event.get("FunctionResponseTypes"));
    assert!(
        types.contains(&"ReportBatchItemFailures"),
        "the SQS event of {WORKER} must have FunctionResponseTypes [ReportBatchItemFailures], \
         or one failed record makes SQS redeliver the whole batch; found {types:?}"
    );
}

#[test]
fn worker_event_source_batches_records_with_a_batching_window() {
    let t = template();
    let (event, _) = worker_sqs_event(&t);
    let batch = literal_int(event.get("BatchSize"), "the SQS event's BatchSize");
    assert!(
        (1..=10_000).contains(&batch),
        "SQS BatchSize {batch} is outside 1..=10000"
    );
    if batch > 10 {
        let window = literal_int(
            event.get("MaximumBatchingWindowInSeconds"),
            "the SQS event's MaximumBatchingWindowInSeconds (required when BatchSize > 10)",
        );
        assert!(
            window >= 1,
            "BatchSize {batch} > 10 needs MaximumBatchingWindowInSeconds >= 1, found {window}"
        );
    }
}

// ------------------------------------------------------------------ the worker's poller mode

const POLLER_MODE: &str = "WorkerPollerMode";
const POLLER_MODES: [&str; 2] = ["standard", "provisioned"];

/// Parameter values for deciding conditions; parameters not given take their default.
fn parameter_value(t: &Value, given: &[(&str, &str)], name: &str) -> String {
    if let Some((_, v)) = given.iter().find(|(k, _)| *k == name) {
        return (*v).to_owned();
    }
    let default = t
        .get("Parameters")
        .and_then(|p| p.get(name))
        .and_then(|p| p.get("Default"))
        .unwrap_or_else(|| panic!("parameter {name} is neither given here nor has a default"));
    match default {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        other => panic!("parameter {name} has a default that is not a scalar: {other:?}"),
    }
}

/// The value of a condition expression (`!Equals`, `!Not`, `!And`, `!Or`, `!Condition`, and
/// `!Ref` or literals as operands) with the parameters `given`.
fn condition_value(t: &Value, given: &[(&str, &str)], v: &Value) -> String {
    let (name, arg) = match v {
        Value::String(s) => return s.clone(),
        Value::Number(n) => return n.to_string(),
        Value::Bool(b) => return b.to_string(),
        Value::Tagged(tagged) => (tagged.tag.to_string(), &tagged.value),
        Value::Mapping(m) if m.len() == 1 => {
            let (k, a) = m.iter().next().unwrap();
            (k.as_str().unwrap_or_default().to_owned(), a)
        }
        other => panic!("cannot evaluate {other:?} in a condition"),
    };
    let name = name
        .trim_start_matches('!')
        .trim_start_matches("Fn::")
        .to_owned();
    let args: Vec<&Value> = arg
        .as_sequence()
        .map(|a| a.iter().collect())
        .unwrap_or_default();
    let holds = |c: &Value| condition_value(t, given, c) == "true";
    let truth = match name.as_str() {
        "Ref" => return parameter_value(t, given, arg.as_str().unwrap_or_default()),
        "Equals" => match args.as_slice() {
            [a, b] => condition_value(t, given, a) == condition_value(t, given, b),
            _ => panic!("Equals takes two values: {arg:?}"),
        },
        "Not" => !holds(args.first().expect("Not takes one condition")),
        "And" => args.iter().all(|c| holds(c)),
        "Or" => args.iter().any(|c| holds(c)),
        "Condition" => condition_holds(t, given, arg.as_str().unwrap_or_default()),
        other => panic!("cannot evaluate Fn::{other} in a condition"),
    };
    truth.to_string()
}

fn condition_holds(t: &Value, given: &[(&str, &str)], name: &str) -> bool {
    let definition = t
        .get("Conditions")
        .and_then(|c| c.get(name))
        .unwrap_or_else(|| panic!("{TEMPLATE_PATH} has no condition `{name}`"));
    condition_value(t, given, definition) == "true"
}

/// `v` as deployed with the parameters `given`: every `!If` decided, down through mappings
/// and lists; `None` where it comes to `!Ref AWS::NoValue` (a property left out).
fn rendered(t: &Value, given: &[(&str, &str)], v: &Value) -> Option<Value> {
    if let Some((condition, then, otherwise)) = if_parts(v) {
        let chosen = if condition_holds(t, given, condition) {
            then
        } else {
            otherwise
        };
        return rendered(t, given, chosen);
    }
    if ref_target(v) == Some("AWS::NoValue") {
        return None;
    }
    Some(match v {
        Value::Mapping(m) => Value::Mapping(
            m.iter()
                .filter_map(|(k, v)| Some((k.clone(), rendered(t, given, v)?)))
                .collect(),
        ),
        Value::Sequence(items) => {
            Value::Sequence(items.iter().filter_map(|v| rendered(t, given, v)).collect())
        }
        other => other.clone(),
    })
}

/// The worker's SQS event properties as deployed in one `WorkerPollerMode`.
fn worker_sqs_event_in_mode(t: &Value, mode: &str) -> Value {
    let (event, _) = worker_sqs_event(t);
    rendered(t, &[(POLLER_MODE, mode)], event)
        .unwrap_or_else(|| panic!("the SQS event of {WORKER} is left out in mode {mode}"))
}

fn number_parameter<'a>(t: &'a Value, name: &str) -> &'a Value {
    let p = t
        .get("Parameters")
        .and_then(|p| p.get(name))
        .unwrap_or_else(|| panic!("{TEMPLATE_PATH} has no parameter `{name}`"));
    assert_eq!(
        p.get("Type").and_then(Value::as_str),
        Some("Number"),
        "{name} should be a Number parameter"
    );
    p
}

/// `(MinValue, MaxValue, Default)` of a Number parameter.
fn number_bounds(t: &Value, name: &str) -> (i64, i64, i64) {
    let p = number_parameter(t, name);
    (
        literal_int(p.get("MinValue"), &format!("{name}.MinValue")),
        literal_int(p.get("MaxValue"), &format!("{name}.MaxValue")),
        literal_int(p.get("Default"), &format!("{name}.Default")),
    )
}

#[test]
fn the_worker_poller_mode_is_standard_by_default_or_provisioned() {
    let t = template();
    let mode = t
        .get("Parameters")
        .and_then(|p| p.get(POLLER_MODE))
        .unwrap_or_else(|| panic!("{TEMPLATE_PATH} has no parameter {POLLER_MODE}"));
    assert_eq!(literal_str(mode.get("Default"), POLLER_MODE), "standard");
    assert_eq!(string_list(mode.get("AllowedValues")), POLLER_MODES);
    // The limits Lambda accepts for an SQS mapping: MaximumConcurrency 2 to 1000; provisioned
    // pollers at least 2, a minimum of at most 200 and a maximum of at most 2000.
    assert_eq!(
        number_bounds(&t, "WorkerMaximumConcurrency"),
        (2, 1000, 10),
        "WorkerMaximumConcurrency (MinValue, MaxValue, Default)"
    );
    let (min_low, min_high, min_default) = number_bounds(&t, "WorkerMinimumPollers");
    assert_eq!((min_low, min_high), (2, 200), "WorkerMinimumPollers bounds");
    let (max_low, max_high, max_default) = number_bounds(&t, "WorkerMaximumPollers");
    assert_eq!(
        (max_low, max_high),
        (2, 2000),
        "WorkerMaximumPollers bounds"
    );
    assert!(
        min_default >= 2 && max_default >= min_default,
        "the default pollers must be a valid range: {min_default}..={max_default}"
    );
}

#[test]
fn in_standard_mode_the_worker_event_source_caps_concurrency_and_provisions_no_pollers() {
    let t = template();
    let event = worker_sqs_event_in_mode(&t, "standard");
    let concurrency = event
        .get("ScalingConfig")
        .and_then(|s| s.get("MaximumConcurrency"))
        .unwrap_or_else(|| {
            panic!("in standard mode the SQS event of {WORKER} has no ScalingConfig.MaximumConcurrency")
        });
    assert_eq!(
        ref_target(concurrency),
        Some("WorkerMaximumConcurrency"),
        "ScalingConfig.MaximumConcurrency should be !Ref WorkerMaximumConcurrency"
    );
    assert!(
        event.get("ProvisionedPollerConfig").is_none(),
        "in standard mode the SQS event of {WORKER} must not have ProvisionedPollerConfig, \
         found {:?}",
        event.get("ProvisionedPollerConfig")
    );
}

#[test]
fn in_provisioned_mode_the_worker_event_source_has_pollers_from_parameters_and_no_maximum_concurrency(
) {
    let t = template();
    let event = worker_sqs_event_in_mode(&t, "provisioned");
    let pollers = event.get("ProvisionedPollerConfig").unwrap_or_else(|| {
        panic!("in provisioned mode the SQS event of {WORKER} has no ProvisionedPollerConfig")
    });
    for (key, parameter) in [
        ("MinimumPollers", "WorkerMinimumPollers"),
        ("MaximumPollers", "WorkerMaximumPollers"),
    ] {
        assert_eq!(
            pollers.get(key).and_then(ref_target),
            Some(parameter),
            "ProvisionedPollerConfig.{key} should be !Ref {parameter}"
        );
    }
    assert!(
        event.get("ScalingConfig").is_none(),
        "in provisioned mode the SQS event of {WORKER} must not have ScalingConfig (Lambda \
         refuses MaximumConcurrency with provisioned pollers), found {:?}",
        event.get("ScalingConfig")
    );
}

/// Lambda refuses a mapping with both; one with neither would have no cap at all.
#[test]
fn every_poller_mode_gives_the_worker_event_source_exactly_one_scaling_setting() {
    let t = template();
    for mode in POLLER_MODES {
        let event = worker_sqs_event_in_mode(&t, mode);
        let has_concurrency = event
            .get("ScalingConfig")
            .and_then(|s| s.get("MaximumConcurrency"))
            .is_some();
        let has_pollers = event.get("ProvisionedPollerConfig").is_some();
        assert!(
            has_concurrency != has_pollers,
            "in {POLLER_MODE} {mode} the SQS event of {WORKER} should have exactly one of \
             ScalingConfig.MaximumConcurrency and ProvisionedPollerConfig; it has \
             MaximumConcurrency: {has_concurrency}, ProvisionedPollerConfig: {has_pollers}"
        );
    }
}

#[test]
fn the_worker_event_source_emits_its_event_count_metrics_in_every_mode() {
    let t = template();
    for mode in POLLER_MODES {
        let event = worker_sqs_event_in_mode(&t, mode);
        let metrics = string_list(event.get("MetricsConfig").and_then(|m| m.get("Metrics")));
        assert!(
            metrics.contains(&"EventCount"),
            "in {POLLER_MODE} {mode} the SQS event of {WORKER} should have MetricsConfig \
             {{Metrics: [EventCount]}} (the dashboard reads them); found {metrics:?}"
        );
    }
}

#[test]
fn queue_redrives_to_a_dead_letter_queue_after_max_receive_count() {
    let t = template();
    let (_, queue) = worker_sqs_event(&t);
    let dlq = dead_letter_queue(&t);
    assert_eq!(
        resource_type(resource(&t, &dlq)),
        "AWS::SQS::Queue",
        "the redrive target {dlq} should be an SQS queue"
    );
    let count = prop(resource(&t, &queue), &["RedrivePolicy", "maxReceiveCount"])
        .unwrap_or_else(|| panic!("{queue}.RedrivePolicy has no maxReceiveCount"));
    if let Some(parameter) = ref_target(count) {
        assert!(
            t.get("Parameters").and_then(|p| p.get(parameter)).is_some(),
            "maxReceiveCount refers to `{parameter}`, which is not a parameter"
        );
    } else {
        let n = literal_int(Some(count), "maxReceiveCount");
        assert!(n >= 1, "maxReceiveCount must be at least 1, found {n}");
    }
}

#[test]
fn dead_letter_queue_keeps_messages_for_fourteen_days_longer_than_the_queue() {
    let t = template();
    let (_, queue) = worker_sqs_event(&t);
    let dlq = dead_letter_queue(&t);
    let dlq_retention = literal_int(
        prop(resource(&t, &dlq), &["MessageRetentionPeriod"]),
        &format!("{dlq}.MessageRetentionPeriod"),
    );
    assert_eq!(
        dlq_retention, 1_209_600,
        "{dlq}.MessageRetentionPeriod should be 14 days (1209600 s)"
    );
    // A message keeps its original enqueue time when it moves to the DLQ, so the DLQ must
    // keep messages longer than the source queue or they can expire on arrival.
    let queue_retention = prop(resource(&t, &queue), &["MessageRetentionPeriod"])
        .map_or(345_600, |v| {
            literal_int(Some(v), &format!("{queue}.MessageRetentionPeriod"))
        });
    assert!(
        queue_retention < dlq_retention,
        "{queue} keeps messages {queue_retention} s, not less than its DLQ's {dlq_retention} s"
    );
}

// ------------------------------------------------------------------ table

#[test]
fn table_is_on_demand_with_point_in_time_recovery_and_deletion_protection() {
    let t = template();
    let table = resource(&t, "Table");
    assert_eq!(
        resource_type(table),
        "AWS::DynamoDB::Table",
        "`Table` should be an AWS::DynamoDB::Table"
    );
    assert_eq!(
        literal_str(prop(table, &["BillingMode"]), "Table.BillingMode"),
        "PAY_PER_REQUEST",
        "the table should be on demand (BillingMode PAY_PER_REQUEST)"
    );
    assert!(
        is_true(prop(
            table,
            &[
                "PointInTimeRecoverySpecification",
                "PointInTimeRecoveryEnabled"
            ]
        )),
        "the table needs PointInTimeRecoverySpecification.PointInTimeRecoveryEnabled: true"
    );
    assert!(
        is_true(prop(table, &["DeletionProtectionEnabled"])),
        "the table needs DeletionProtectionEnabled: true"
    );
}

fn key_schema(v: Option<&Value>, what: &str) -> Vec<(String, String)> {
    let v = v.unwrap_or_else(|| panic!("{what} has no KeySchema"));
    one_or_many(v)
        .into_iter()
        .map(|k| {
            (
                literal_str(k.get("AttributeName"), &format!("{what} AttributeName")).to_owned(),
                literal_str(k.get("KeyType"), &format!("{what} KeyType")).to_owned(),
            )
        })
        .collect()
}

fn key(name: &str, kind: &str) -> (String, String) {
    (name.to_owned(), kind.to_owned())
}

#[test]
fn table_keys_and_local_secondary_indexes_match_what_the_code_derives() {
    let t = template();
    let table = resource(&t, "Table");

    assert_eq!(
        key_schema(prop(table, &["KeySchema"]), "Table"),
        vec![key(PARTITION_KEY, "HASH"), key(SORT_KEY, "RANGE")],
        "the table's key schema should be pk (HASH), sk (RANGE), as platform/src/item.rs derives keys"
    );

    let indexes = prop(table, &["LocalSecondaryIndexes"])
        .map(one_or_many)
        .unwrap_or_else(|| panic!("the table has no LocalSecondaryIndexes"));
    let mut found = Vec::new();
    for index in indexes {
        let name = literal_str(
            index.get("IndexName"),
            "a local secondary index's IndexName",
        );
        found.push(name.to_owned());
        let Some((_, sort)) = LOCAL_INDEXES.iter().find(|(n, _)| *n == name) else {
            continue; // reported below as unexpected
        };
        assert_eq!(
            key_schema(index.get("KeySchema"), name),
            vec![key(PARTITION_KEY, "HASH"), key(sort, "RANGE")],
            "local secondary index {name} should be keyed pk (HASH), {sort} (RANGE)"
        );
        assert_eq!(
            literal_str(index.get("Projection").and_then(|p| p.get("ProjectionType")), name),
            "ALL",
            "local secondary index {name} should project ALL attributes (list reads return whole items)"
        );
    }
    found.sort();
    let mut expected: Vec<String> = LOCAL_INDEXES.iter().map(|(n, _)| (*n).to_owned()).collect();
    expected.sort();
    assert_eq!(
        found, expected,
        "the table's local secondary indexes differ from what the code queries"
    );

    // Every key attribute is declared as a string, and nothing else is declared (CloudFormation
    // rejects attribute definitions that no key uses).
    let mut declared: Vec<(String, String)> = prop(table, &["AttributeDefinitions"])
        .map(one_or_many)
        .unwrap_or_default()
        .into_iter()
        .map(|a| {
            (
                literal_str(a.get("AttributeName"), "an AttributeName").to_owned(),
                literal_str(a.get("AttributeType"), "an AttributeType").to_owned(),
            )
        })
        .collect();
    declared.sort();
    let mut wanted: Vec<(String, String)> = [PARTITION_KEY, SORT_KEY]
        .into_iter()
        .chain(LOCAL_INDEXES.iter().map(|(_, sort)| *sort))
        .map(|name| (name.to_owned(), "S".to_owned()))
        .collect();
    wanted.sort();
    assert_eq!(
        declared, wanted,
        "the table's AttributeDefinitions should declare pk, sk, lsi1sk, lsi2sk as S"
    );

    assert!(
        prop(table, &["GlobalSecondaryIndexes"]).is_none(),
        "the table has GlobalSecondaryIndexes the code does not use"
    );
    assert!(
        prop(table, &["TimeToLiveSpecification"]).is_none(),
        "the table has a TTL, but credit reports must not expire"
    );
}

// ------------------------------------------------------------------ IAM

#[test]
fn no_iam_action_uses_a_wildcard() {
    let t = template();
    let statements = iam_statements(&t);
    assert!(
        !statements.is_empty(),
        "found no IAM statements in {TEMPLATE_PATH}"
    );
    for statement in statements {
        // A Deny may cover every action (the queues' TLS-only policy denies `sqs:*`): denying
        // more never grants anything.
        if statement.get("Effect").and_then(Value::as_str) == Some("Deny") {
            continue;
        }
        for key in ["Action", "NotAction"] {
            if let Some(actions) = statement.get(key) {
                for action in strings_within(actions) {
                    assert!(
                        !action.contains('*'),
                        "IAM {key} `{action}` uses a wildcard: name the actions"
                    );
                }
            }
        }
    }
}

/// X-Ray's write actions take no resource: IAM only accepts `Resource: "*"` for them.
const RESOURCELESS_ACTIONS: [&str; 2] = ["xray:PutTraceSegments", "xray:PutTelemetryRecords"];

#[test]
fn no_iam_resource_is_a_wildcard() {
    let t = template();
    for statement in iam_statements(&t) {
        let actions = statement
            .get("Action")
            .map(strings_within)
            .unwrap_or_default();
        if !actions.is_empty() && actions.iter().all(|a| RESOURCELESS_ACTIONS.contains(a)) {
            continue;
        }
        if let Some(targets) = statement.get("Resource") {
            for target in strings_within(targets) {
                // Log group ARNs come from !GetAtt (their `:*` covers the log streams Lambda
                // names at run time), so no literal here needs a `*`.
                assert!(
                    !target.contains('*'),
                    "IAM Resource `{target}` uses a wildcard: name the resource"
                );
            }
        }
        assert!(
            statement.get("NotResource").is_none(),
            "an IAM statement uses NotResource, which grants everything else"
        );
    }
}

#[test]
fn ingest_may_only_enqueue_read_the_table_and_write_its_logs() {
    let t = template();
    let table_and_indexes = [
        "Table.Arn",
        "${Table.Arn}/index/byReportedAt",
        "${Table.Arn}/index/byBureauReportedAt",
    ];
    let mut expected = vec![
        ("logs:CreateLogStream", "IngestLogGroup.Arn"),
        ("logs:PutLogEvents", "IngestLogGroup.Arn"),
        ("sqs:SendMessage", "Queue.Arn"),
    ];
    for target in table_and_indexes {
        expected.push(("dynamodb:GetItem", target));
        expected.push(("dynamodb:Query", target));
    }
    // Keyed writes look up their keys in batches; BatchGetItem reads the table, no index.
    expected.push(("dynamodb:BatchGetItem", "Table.Arn"));
    assert_grants_exactly(&t, INGEST, &expected);
}

#[test]
fn worker_may_only_consume_the_queue_write_the_table_and_send_to_the_dlq() {
    let t = template();
    let (_, queue) = worker_sqs_event(&t);
    let dlq = dead_letter_queue(&t);
    let queue_arn = format!("{queue}.Arn");
    let dlq_arn = format!("{dlq}.Arn");
    let expected = [
        ("logs:CreateLogStream", "WorkerLogGroup.Arn"),
        ("logs:PutLogEvents", "WorkerLogGroup.Arn"),
        // What the SQS event source mapping does with the function's role.
        ("sqs:ReceiveMessage", queue_arn.as_str()),
        ("sqs:DeleteMessage", queue_arn.as_str()),
        ("sqs:GetQueueAttributes", queue_arn.as_str()),
        ("sqs:ChangeMessageVisibility", queue_arn.as_str()),
        ("sqs:SendMessage", dlq_arn.as_str()),
        ("dynamodb:BatchWriteItem", "Table.Arn"),
        ("dynamodb:PutItem", "Table.Arn"),
        ("dynamodb:UpdateItem", "Table.Arn"),
    ];
    assert_grants_exactly(&t, WORKER, &expected);
}

#[test]
fn functions_carry_no_sam_policies_besides_their_own_role() {
    let t = template();
    for function in [INGEST, WORKER] {
        function_role(&t, function); // panics with the reason when there is none
        assert!(
            function_prop(&t, function, "Policies").is_none(),
            "{function} has SAM Policies; with an explicit Role they are ignored or widen access: \
             grant through its role"
        );
    }
}

// ------------------------------------------------------------------ functions and API

#[test]
fn both_functions_run_on_provided_al2023_for_the_architecture_parameter_arm64_by_default() {
    let t = template();
    let parameter = t
        .get("Parameters")
        .and_then(|p| p.get("Architecture"))
        .expect("an Architecture parameter");
    assert_eq!(
        literal_str(parameter.get("Default"), "Architecture.Default"),
        "arm64",
        "Graviton by default: it costs less per GB-second"
    );
    let allowed: BTreeSet<&str> = string_list(parameter.get("AllowedValues"))
        .into_iter()
        .collect();
    assert_eq!(allowed, BTreeSet::from(["arm64", "x86_64"]));
    for function in [INGEST, WORKER] {
        assert_eq!(
            resource_type(resource(&t, function)),
            "AWS::Serverless::Function",
            "{function} should be an AWS::Serverless::Function"
        );
        assert_eq!(
            literal_str(
                function_prop(&t, function, "Runtime"),
                &format!("{function}.Runtime")
            ),
            "provided.al2023",
            "{function} should run on provided.al2023 (the Rust binary is the bootstrap)"
        );
        let architectures = function_prop(&t, function, "Architectures")
            .and_then(Value::as_sequence)
            .unwrap_or_else(|| panic!("{function} has no Architectures list"));
        assert_eq!(architectures.len(), 1, "{function}: one architecture");
        assert_eq!(
            ref_target(&architectures[0]),
            Some("Architecture"),
            "{function}.Architectures should be [!Ref Architecture]: the zips are built for it"
        );
    }
}

#[test]
fn functions_get_every_environment_variable_they_require() {
    let t = template();
    let required = [
        (
            INGEST,
            &[
                "QUEUE_URL",
                "TABLE_NAME",
                "USER_SERVICE_URL",
                "AUTH_SERVICE_SCOPE",
                "CURSOR_SIGNING_KEY",
            ][..],
        ),
        (WORKER, &["QUEUE_URL", "DLQ_URL", "TABLE_NAME"][..]),
    ];
    for (function, names) in required {
        let env = environment(&t, function);
        for name in names {
            assert!(
                env.get(*name).is_some(),
                "{function} is missing environment variable {name}"
            );
        }
    }
}

/// Scanning /etc/ssl/certs file by file was most of the init time; both functions read the
/// one bundle the provided.al2023 runtime ships.
#[test]
fn both_functions_read_tls_roots_from_the_runtime_bundle() {
    let t = template();
    for function in [INGEST, WORKER] {
        assert_eq!(
            environment(&t, function).get("SSL_CERT_FILE"),
            Some(&Value::from("/etc/pki/tls/certs/ca-bundle.crt")),
            "{function}"
        );
    }
}

#[test]
fn ingest_ignores_the_api_stage_in_request_paths() {
    let t = template();
    let env = environment(&t, INGEST);
    assert!(
        is_true(env.get("AWS_LAMBDA_HTTP_IGNORE_STAGE_IN_PATH")),
        "{INGEST} should set AWS_LAMBDA_HTTP_IGNORE_STAGE_IN_PATH=\"true\": lambda_http otherwise \
         prefixes paths with /<stage> on any stage but $default and no route matches"
    );
}

/// The one resource of `kind`, by logical id.
fn only_resource_of_type<'a>(t: &'a Value, kind: &str) -> (&'a str, &'a Value) {
    let found = resources_of_type(t, kind);
    assert_eq!(
        found.len(),
        1,
        "expected exactly one {kind}, found {}",
        found.len()
    );
    found[0]
}

#[test]
fn http_api_sends_every_request_to_the_ingest_alias_on_the_default_stage() {
    let t = template();
    let (api, _) = only_resource_of_type(&t, "AWS::ApiGatewayV2::Api");
    assert_eq!(
        prop(resource(&t, api), &["ProtocolType"]).and_then(Value::as_str),
        Some("HTTP")
    );
    // No OpenAPI Body: an API whose routes come from a Body loses explicit routes when the
    // Body is reimported (and some emulators never import it).
    assert!(
        prop(resource(&t, api), &["Body"]).is_none()
            && prop(resource(&t, api), &["BodyS3Location"]).is_none(),
        "{api} declares its routes as resources, not in an OpenAPI body"
    );
    assert!(
        resources_of_type(&t, "AWS::Serverless::HttpApi").is_empty(),
        "no SAM HttpApi: it generates an OpenAPI body"
    );
    assert!(
        function_prop(&t, INGEST, "Events").is_none(),
        "{INGEST} gets its requests from the explicit route, not a SAM event"
    );

    let (_, stage) = only_resource_of_type(&t, "AWS::ApiGatewayV2::Stage");
    assert_eq!(prop(stage, &["ApiId"]).and_then(ref_target), Some(api));
    assert_eq!(
        prop(stage, &["StageName"]).and_then(Value::as_str),
        Some("$default"),
        "the $default stage, so paths are not stage-prefixed"
    );
    assert!(
        is_true(prop(stage, &["AutoDeploy"])),
        "the stage deploys every change"
    );

    let (_, route) = only_resource_of_type(&t, "AWS::ApiGatewayV2::Route");
    assert_eq!(prop(route, &["ApiId"]).and_then(ref_target), Some(api));
    assert_eq!(
        prop(route, &["RouteKey"]).and_then(Value::as_str),
        Some("$default"),
        "one $default route: every method and path, `/` included, reaches the router"
    );
    let (integration_id, integration) = only_resource_of_type(&t, "AWS::ApiGatewayV2::Integration");
    let target = prop(route, &["Target"]).and_then(sub_template);
    assert_eq!(
        target,
        Some(format!("integrations/${{{integration_id}}}").as_str()),
        "the route targets the integration"
    );
    assert_eq!(
        prop(integration, &["ApiId"]).and_then(ref_target),
        Some(api)
    );
    assert_eq!(
        prop(integration, &["IntegrationType"]).and_then(Value::as_str),
        Some("AWS_PROXY")
    );
    assert_eq!(
        prop(integration, &["PayloadFormatVersion"]).and_then(Value::as_str),
        Some("2.0"),
        "lambda_http reads payload v2"
    );
    let alias = format!("{INGEST}.Alias");
    assert_eq!(
        prop(integration, &["IntegrationUri"]).and_then(ref_target),
        Some(alias.as_str()),
        "the API calls the `live` alias, so a rollback is one update-alias"
    );
    let timeout = literal_int(prop(integration, &["TimeoutInMillis"]), "TimeoutInMillis");
    let function_timeout = literal_int(function_prop(&t, INGEST, "Timeout"), "ingest Timeout");
    assert!(
        timeout > function_timeout * 1000 && timeout <= 30_000,
        "the integration waits longer than ingest runs ({function_timeout} s), within 30 s: {timeout} ms"
    );

    let (_, permission) = only_resource_of_type(&t, "AWS::Lambda::Permission");
    assert_eq!(
        prop(permission, &["FunctionName"]).and_then(ref_target),
        Some(alias.as_str())
    );
    assert_eq!(
        prop(permission, &["Principal"]).and_then(Value::as_str),
        Some("apigateway.amazonaws.com")
    );
    let source = prop(permission, &["SourceArn"])
        .and_then(sub_template)
        .expect("the permission's SourceArn is a !Sub of the API's ARN");
    assert!(
        source.contains(&format!(":${{{api}}}/")),
        "only this API may invoke ingest: {source}"
    );
}

// ------------------------------------------------------------------ alarms and outputs

/// The alarms on `metric` whose QueueName dimension is `!GetAtt <queue>.QueueName`.
fn queue_alarms<'a>(t: &'a Value, metric: &str, queue: &str) -> Vec<&'a Value> {
    resources(t)
        .values()
        .filter(|r| resource_type(r) == "AWS::CloudWatch::Alarm")
        .filter(|r| prop(r, &["MetricName"]).and_then(Value::as_str) == Some(metric))
        .filter(|r| {
            prop(r, &["Dimensions"])
                .map(one_or_many)
                .unwrap_or_default()
                .into_iter()
                .any(|d| {
                    d.get("Name").and_then(Value::as_str) == Some("QueueName")
                        && d.get("Value").and_then(getatt_target)
                            == Some((queue.to_owned(), "QueueName".to_owned()))
                })
        })
        .collect()
}

#[test]
fn an_alarm_fires_as_soon_as_the_dead_letter_queue_holds_a_message() {
    let t = template();
    let dlq = dead_letter_queue(&t);
    let alarms = queue_alarms(&t, "ApproximateNumberOfMessagesVisible", &dlq);
    assert!(
        alarms.iter().any(|a| {
            prop(a, &["ComparisonOperator"]).and_then(Value::as_str) == Some("GreaterThanThreshold")
                && prop(a, &["Threshold"]).and_then(Value::as_f64) == Some(0.0)
        }),
        "no alarm on {dlq} ApproximateNumberOfMessagesVisible > 0"
    );
}

#[test]
fn an_alarm_watches_the_age_of_the_oldest_queued_message() {
    let t = template();
    let (_, queue) = worker_sqs_event(&t);
    assert!(
        !queue_alarms(&t, "ApproximateAgeOfOldestMessage", &queue).is_empty(),
        "no alarm on {queue} ApproximateAgeOfOldestMessage"
    );
}

#[test]
fn outputs_give_the_api_url_queue_url_and_table_name() {
    let t = template();
    let outputs = t
        .get("Outputs")
        .and_then(Value::as_mapping)
        .unwrap_or_else(|| panic!("{TEMPLATE_PATH} has no Outputs"));
    for name in ["ApiUrl", "QueueUrl", "TableName"] {
        assert!(
            outputs.get(name).is_some(),
            "{TEMPLATE_PATH} has no output {name}"
        );
    }
}

#[test]
fn parameters_cover_the_user_service_url_and_the_service_scope() {
    let t = template();
    let env = environment(&t, INGEST);
    for variable in ["USER_SERVICE_URL", "AUTH_SERVICE_SCOPE"] {
        let value = env
            .get(variable)
            .unwrap_or_else(|| panic!("{INGEST} does not set {variable}"));
        let parameter = ref_target(value).unwrap_or_else(|| {
            panic!("{INGEST}'s {variable} should be !Ref to a parameter, found {value:?}")
        });
        assert!(
            t.get("Parameters").and_then(|p| p.get(parameter)).is_some(),
            "{variable} refers to `{parameter}`, which is not a parameter"
        );
    }
}

#[test]
fn the_cursor_signing_key_is_a_hidden_parameter_of_at_least_32_characters() {
    let t = template();
    let env = environment(&t, INGEST);
    let value = env
        .get("CURSOR_SIGNING_KEY")
        .unwrap_or_else(|| panic!("{INGEST} does not set CURSOR_SIGNING_KEY"));
    let parameter = ref_target(value).unwrap_or_else(|| {
        panic!("CURSOR_SIGNING_KEY should be !Ref to a parameter, found {value:?}")
    });
    let declared = t
        .get("Parameters")
        .and_then(|p| p.get(parameter))
        .unwrap_or_else(|| panic!("`{parameter}` is not a parameter"));
    assert!(
        is_true(declared.get("NoEcho")),
        "{parameter} must be NoEcho"
    );
    assert!(
        literal_int(declared.get("MinLength"), "MinLength") >= 32,
        "{parameter} must require at least 32 characters (ingest refuses shorter keys)"
    );
    assert!(
        declared.get("Default").is_none(),
        "{parameter} must have no default"
    );
}

// ------------------------------------------------------------------ CORS

/// `[condition, then, else]` of `!If [...]` or `{Fn::If: [...]}`.
fn if_parts(v: &Value) -> Option<(&str, &Value, &Value)> {
    let arg = match v {
        Value::Tagged(tagged) if tagged.tag == "If" => &tagged.value,
        Value::Mapping(m) if m.len() == 1 => m.get("Fn::If")?,
        _ => return None,
    };
    match arg.as_sequence()?.as_slice() {
        [condition, then, otherwise] => Some((condition.as_str()?, then, otherwise)),
        _ => None,
    }
}

#[test]
fn http_api_cors_comes_from_a_parameter_and_is_off_when_it_is_empty() {
    let t = template();
    let parameter = t
        .get("Parameters")
        .and_then(|p| p.get("CorsAllowedOrigins"))
        .unwrap_or_else(|| panic!("{TEMPLATE_PATH} has no CorsAllowedOrigins parameter"));
    assert_eq!(
        parameter.get("Type").and_then(Value::as_str),
        Some("CommaDelimitedList")
    );
    assert_eq!(
        parameter.get("Default").and_then(Value::as_str),
        Some(""),
        "no CORS unless origins are given, as CORS_ALLOWED_ORIGINS in server mode"
    );

    let cors = prop(resource(&t, "HttpApi"), &["CorsConfiguration"])
        .unwrap_or_else(|| panic!("HttpApi has no CorsConfiguration"));
    let (condition, on, off) = if_parts(cors).unwrap_or_else(|| {
        panic!("CorsConfiguration should be !If [<condition>, {{...}}, !Ref AWS::NoValue]")
    });
    assert_eq!(ref_target(off), Some("AWS::NoValue"), "no CORS when empty");
    let condition_body = t
        .get("Conditions")
        .and_then(|c| c.get(condition))
        .unwrap_or_else(|| panic!("no condition {condition}"));
    assert!(
        strings_within(condition_body).contains(&""),
        "{condition} should test CorsAllowedOrigins against empty: {condition_body:?}"
    );
    assert!(
        format!("{condition_body:?}").contains("CorsAllowedOrigins"),
        "{condition} should test CorsAllowedOrigins: {condition_body:?}"
    );
    let origins = on
        .get("AllowOrigins")
        .unwrap_or_else(|| panic!("CorsConfiguration has no AllowOrigins"));
    assert!(
        format!("{origins:?}").contains("CorsAllowedOrigins"),
        "AllowOrigins comes from the CorsAllowedOrigins parameter: {origins:?}"
    );
    let list = |key: &str| -> Vec<String> {
        on.get(key)
            .and_then(Value::as_sequence)
            .map(|items| {
                items
                    .iter()
                    .filter_map(Value::as_str)
                    .map(str::to_ascii_lowercase)
                    .collect()
            })
            .unwrap_or_default()
    };
    // What ingest's CorsLayer allows in server mode (ingest/src/lib.rs, cors_layer).
    for method in ["get", "post"] {
        assert!(
            list("AllowMethods").contains(&method.to_owned()),
            "{method}"
        );
    }
    for header in ["authorization", "content-type", "idempotency-key"] {
        assert!(
            list("AllowHeaders").contains(&header.to_owned()),
            "{header}"
        );
    }
    assert!(list("ExposeHeaders").contains(&"location".to_owned()));
}

// ------------------------------------------------------------------ security controls

const KMS_PARAMETER: &str = "KmsKeyArn";
const KMS_CONDITION: &str = "HasKmsKey";

/// Asserts `v` is `!If [HasKmsKey, <then>, <else>]` and returns `(then, else)`.
fn kms_if<'a>(v: Option<&'a Value>, what: &str) -> (&'a Value, &'a Value) {
    let v = v.unwrap_or_else(|| panic!("{what} is not set in {TEMPLATE_PATH}"));
    match if_parts(v) {
        Some((condition, then, otherwise)) if condition == KMS_CONDITION => (then, otherwise),
        _ => panic!("{what} should be !If [{KMS_CONDITION}, ..., ...], found {v:?}"),
    }
}

/// Asserts `v` is `!If [HasKmsKey, !Ref KmsKeyArn, !Ref AWS::NoValue]`: the key when one is
/// given, the service's own encryption otherwise.
fn assert_uses_optional_key(v: Option<&Value>, what: &str) {
    let (then, otherwise) = kms_if(v, what);
    assert_eq!(
        ref_target(then),
        Some(KMS_PARAMETER),
        "{what}: with a key it should be !Ref {KMS_PARAMETER}"
    );
    assert_eq!(
        ref_target(otherwise),
        Some("AWS::NoValue"),
        "{what}: without a key it should be left out (!Ref AWS::NoValue)"
    );
}

fn resources_of_type<'a>(t: &'a Value, kind: &str) -> Vec<(&'a str, &'a Value)> {
    resources(t)
        .iter()
        .filter(|(_, r)| resource_type(r) == kind)
        .filter_map(|(id, r)| Some((id.as_str()?, r)))
        .collect()
}

#[test]
fn the_kms_key_is_an_optional_parameter_and_its_condition_tests_it_against_empty() {
    let t = template();
    let parameter = t
        .get("Parameters")
        .and_then(|p| p.get(KMS_PARAMETER))
        .unwrap_or_else(|| panic!("{TEMPLATE_PATH} has no {KMS_PARAMETER} parameter"));
    assert_eq!(
        parameter.get("Default").and_then(Value::as_str),
        Some(""),
        "{KMS_PARAMETER} must default to empty: AWS-managed encryption unless a key is given"
    );
    let condition = t
        .get("Conditions")
        .and_then(|c| c.get(KMS_CONDITION))
        .unwrap_or_else(|| panic!("{TEMPLATE_PATH} has no condition {KMS_CONDITION}"));
    let text = format!("{condition:?}");
    assert!(
        text.contains("Not") && text.contains(KMS_PARAMETER) && strings_within(condition).contains(&""),
        "{KMS_CONDITION} should be !Not [!Equals [!Ref {KMS_PARAMETER}, \"\"]], found {condition:?}"
    );
}

/// The worker's queue and its dead-letter queue, by logical id.
fn both_queues(t: &Value) -> [String; 2] {
    let (_, queue) = worker_sqs_event(t);
    [queue, dead_letter_queue(t)]
}

#[test]
fn both_queues_are_encrypted_at_rest_with_sse_sqs_or_the_optional_key() {
    let t = template();
    for id in &both_queues(&t) {
        let q = resource(&t, id);
        assert_uses_optional_key(
            prop(q, &["KmsMasterKeyId"]),
            &format!("{id}.KmsMasterKeyId"),
        );
        // SQS refuses both at once: managed SSE exactly when no key is given.
        let (with_key, without_key) = kms_if(
            prop(q, &["SqsManagedSseEnabled"]),
            &format!("{id}.SqsManagedSseEnabled"),
        );
        assert_eq!(ref_target(with_key), Some("AWS::NoValue"), "{id}");
        assert!(
            is_true(Some(without_key)),
            "{id}: SqsManagedSseEnabled must be true when no key is given"
        );
    }
}

#[test]
fn the_table_is_encrypted_with_the_optional_key() {
    let t = template();
    let table = resource(&t, "Table");
    let (on, off) = kms_if(
        prop(table, &["SSESpecification", "SSEEnabled"]),
        "Table.SSESpecification.SSEEnabled",
    );
    assert!(is_true(Some(on)), "SSEEnabled must be true with a key");
    assert!(
        matches!(off, Value::Bool(false)),
        "SSEEnabled false without a key (DynamoDB's AWS owned key), found {off:?}"
    );
    let (kms, none) = kms_if(
        prop(table, &["SSESpecification", "SSEType"]),
        "Table.SSESpecification.SSEType",
    );
    assert_eq!(kms.as_str(), Some("KMS"));
    assert_eq!(ref_target(none), Some("AWS::NoValue"));
    assert_uses_optional_key(
        prop(table, &["SSESpecification", "KMSMasterKeyId"]),
        "Table.SSESpecification.KMSMasterKeyId",
    );
}

#[test]
fn log_groups_and_function_environments_use_the_optional_key() {
    let t = template();
    let groups = resources_of_type(&t, "AWS::Logs::LogGroup");
    assert!(
        groups.len() >= 3,
        "expected log groups for both functions and the API"
    );
    for (id, group) in groups {
        assert_uses_optional_key(prop(group, &["KmsKeyId"]), &format!("{id}.KmsKeyId"));
    }
    for function in [INGEST, WORKER] {
        assert_uses_optional_key(
            function_prop(&t, function, "KmsKeyArn"),
            &format!("{function}.KmsKeyArn"),
        );
    }
}

/// The statement a role holds only when the key is given: `!If [HasKmsKey, {...}, NoValue]`.
fn conditional_kms_statement<'a>(t: &'a Value, role_id: &str) -> &'a Value {
    let statements: Vec<&Value> = prop(resource(t, role_id), &["Policies"])
        .map(one_or_many)
        .unwrap_or_default()
        .into_iter()
        .filter_map(|p| p.get("PolicyDocument")?.get("Statement"))
        .flat_map(one_or_many)
        .filter(|s| matches!(if_parts(s), Some((c, _, _)) if c == KMS_CONDITION))
        .collect();
    let [statement] = statements.as_slice() else {
        panic!(
            "{role_id} should have exactly one !If [{KMS_CONDITION}, <statement>, !Ref AWS::NoValue] \
             statement, found {}",
            statements.len()
        );
    };
    let (then, otherwise) = kms_if(Some(*statement), &format!("{role_id}'s KMS statement"));
    assert_eq!(ref_target(otherwise), Some("AWS::NoValue"));
    then
}

#[test]
fn with_a_key_each_role_may_use_it_for_data_keys_and_nothing_more() {
    let t = template();
    for function in [INGEST, WORKER] {
        let role = function_role(&t, function);
        let statement = conditional_kms_statement(&t, &role);
        assert_eq!(
            statement.get("Effect").and_then(Value::as_str),
            Some("Allow")
        );
        let actions: BTreeSet<&str> = string_list(statement.get("Action")).into_iter().collect();
        assert_eq!(
            actions,
            BTreeSet::from(["kms:Decrypt", "kms:GenerateDataKey"]),
            "{role}: SQS SSE-KMS needs exactly these for send and receive"
        );
        let targets = statement
            .get("Resource")
            .map(one_or_many)
            .unwrap_or_default();
        assert!(
            matches!(targets.as_slice(), [only] if ref_target(only) == Some(KMS_PARAMETER)),
            "{role}: the KMS statement should name only !Ref {KMS_PARAMETER}, found {targets:?}"
        );
    }
}

#[test]
fn both_queues_deny_every_request_not_made_over_tls() {
    let t = template();
    let policies = resources_of_type(&t, "AWS::SQS::QueuePolicy");
    for id in &both_queues(&t) {
        let denied = policies.iter().any(|(_, policy)| {
            let covers_queue = prop(policy, &["Queues"])
                .map(one_or_many)
                .unwrap_or_default()
                .into_iter()
                .any(|q| ref_target(q) == Some(id));
            let statements = prop(policy, &["PolicyDocument", "Statement"])
                .map(one_or_many)
                .unwrap_or_default();
            covers_queue
                && statements.into_iter().any(|s| {
                    let resources: Vec<_> = s
                        .get("Resource")
                        .map(one_or_many)
                        .unwrap_or_default()
                        .into_iter()
                        .filter_map(getatt_target)
                        .collect();
                    s.get("Effect").and_then(Value::as_str) == Some("Deny")
                        && s.get("Principal").and_then(Value::as_str) == Some("*")
                        && s.get("Action").map(strings_within) == Some(vec!["sqs:*"])
                        && resources.contains(&(id.to_owned(), "Arn".to_owned()))
                        && s.get("Condition")
                            .and_then(|c| c.get("Bool"))
                            .and_then(|b| b.get("aws:SecureTransport"))
                            .is_some_and(|v| {
                                v.as_str() == Some("false") || matches!(v, Value::Bool(false))
                            })
                })
        });
        assert!(
            denied,
            "no AWS::SQS::QueuePolicy on {id} denies sqs:* to everyone when aws:SecureTransport is false"
        );
    }
}

#[test]
fn every_log_group_has_a_retention_and_each_function_has_its_own() {
    let t = template();
    for (id, group) in resources_of_type(&t, "AWS::Logs::LogGroup") {
        let retention = prop(group, &["RetentionInDays"])
            .unwrap_or_else(|| panic!("{id} has no RetentionInDays: logs would be kept forever"));
        assert_eq!(
            ref_target(retention),
            Some("LogRetentionDays"),
            "{id}.RetentionInDays should be !Ref LogRetentionDays"
        );
    }
    // Lambda writes to /aws/lambda/<function name>: the group must be that one, or Lambda
    // creates its own, unencrypted by our key and kept forever.
    for (function, group) in [(INGEST, "IngestLogGroup"), (WORKER, "WorkerLogGroup")] {
        let name = prop(resource(&t, function), &["FunctionName"])
            .map(strings_within)
            .and_then(|s| s.first().copied())
            .unwrap_or_else(|| panic!("{function} should have a FunctionName (!Sub ...)"));
        let log_group_name = prop(resource(&t, group), &["LogGroupName"])
            .map(strings_within)
            .and_then(|s| s.first().copied())
            .unwrap_or_else(|| panic!("{group} should have a LogGroupName"));
        assert_eq!(
            log_group_name,
            format!("/aws/lambda/{name}"),
            "{group} is not the log group of {function}"
        );
    }
}

#[test]
fn the_http_api_logs_every_request_without_headers_and_is_throttled() {
    let t = template();
    let (_, api) = only_resource_of_type(&t, "AWS::ApiGatewayV2::Stage");
    let destination = prop(api, &["AccessLogSettings", "DestinationArn"])
        .and_then(getatt_target)
        .unwrap_or_else(|| {
            panic!("the stage has no AccessLogSettings.DestinationArn: !GetAtt <log group>.Arn")
        });
    assert_eq!(
        resource_type(resource(&t, &destination.0)),
        "AWS::Logs::LogGroup",
        "the access logs should go to a log group of this stack"
    );
    let format = literal_str(
        prop(api, &["AccessLogSettings", "Format"]),
        "HttpApi.AccessLogSettings.Format",
    );
    for variable in [
        "$context.requestId",
        "$context.identity.sourceIp",
        "$context.status",
    ] {
        assert!(
            format.contains(variable),
            "the access log should record {variable}"
        );
    }
    // Bearer tokens travel in a header: no header may be logged.
    assert!(
        !format.to_ascii_lowercase().contains("header") && !format.contains("authorizer"),
        "the access log must not record headers or authorizer data: {format}"
    );
    for setting in ["ThrottlingRateLimit", "ThrottlingBurstLimit"] {
        let value = prop(api, &["DefaultRouteSettings", setting])
            .unwrap_or_else(|| panic!("the stage has no DefaultRouteSettings.{setting}"));
        let parameter = ref_target(value)
            .unwrap_or_else(|| panic!("{setting} should be !Ref to a parameter, found {value:?}"));
        let default = literal_int(
            t.get("Parameters")
                .and_then(|p| p.get(parameter))
                .and_then(|p| p.get("Default")),
            &format!("{parameter}.Default"),
        );
        assert!(default >= 1, "{parameter} should default to a real limit");
    }
}

#[test]
fn ingest_reserves_its_concurrency_from_a_parameter_and_does_so_by_default() {
    let t = template();
    let reserved = prop(resource(&t, INGEST), &["ReservedConcurrentExecutions"])
        .unwrap_or_else(|| panic!("{INGEST} has no ReservedConcurrentExecutions"));
    let (condition, then, otherwise) = if_parts(reserved).unwrap_or_else(|| {
        panic!("ReservedConcurrentExecutions should be !If [<condition>, !Ref <parameter>, !Ref AWS::NoValue]")
    });
    assert_eq!(ref_target(otherwise), Some("AWS::NoValue"));
    let parameter = ref_target(then).unwrap_or_else(|| panic!("!Ref <parameter>, found {then:?}"));
    let declared = t
        .get("Parameters")
        .and_then(|p| p.get(parameter))
        .unwrap_or_else(|| panic!("`{parameter}` is not a parameter"));
    assert!(
        literal_int(declared.get("Default"), &format!("{parameter}.Default")) > 0,
        "{parameter} should reserve (and cap) concurrency by default"
    );
    let condition_body = t
        .get("Conditions")
        .and_then(|c| c.get(condition))
        .unwrap_or_else(|| panic!("no condition {condition}"));
    assert!(
        format!("{condition_body:?}").contains(parameter),
        "{condition} should test {parameter}"
    );
}

/// checkov skips in resource Metadata: `(resource, check id, comment)`.
fn checkov_skips(t: &Value) -> Vec<(String, String, String)> {
    let mut found = Vec::new();
    for (id, r) in resources(t) {
        let id = id.as_str().unwrap_or_default();
        let skips = r
            .get("Metadata")
            .and_then(|m| m.get("checkov"))
            .and_then(|c| c.get("skip"))
            .map(one_or_many)
            .unwrap_or_default();
        for skip in skips {
            let check = skip.get("id").and_then(Value::as_str).unwrap_or_default();
            let comment = skip
                .get("comment")
                .and_then(Value::as_str)
                .unwrap_or_default();
            found.push((id.to_owned(), check.to_owned(), comment.trim().to_owned()));
        }
    }
    found
}

#[test]
fn every_skipped_checkov_check_says_why_and_none_undoes_a_fix() {
    let t = template();
    // What the template fixed: skipping these would hide a regression.
    const FIXED: [&str; 6] = [
        "CKV_AWS_27",  // SQS encryption
        "CKV_AWS_119", // DynamoDB encryption with a key
        "CKV_AWS_158", // log group encryption with a key
        "CKV_AWS_173", // Lambda environment encryption
        "CKV_AWS_95",  // HTTP API access logging
        "CKV_AWS_115", // reserved concurrency (ingest; the worker is capped by its event source)
    ];
    for (resource, check, comment) in checkov_skips(&t) {
        assert!(
            check.starts_with("CKV_"),
            "{resource}: a checkov skip without a check id"
        );
        assert!(
            comment.len() >= 20,
            "{resource}: skipping {check} needs a one-line reason, found {comment:?}"
        );
        let allowed =
            !FIXED.contains(&check.as_str()) || (check == "CKV_AWS_115" && resource == WORKER);
        assert!(
            allowed,
            "{resource} skips {check}, which the template fixes: fix the resource instead"
        );
    }
}

// ---------------------------------------------------------------- auth modes (issue 12)

/// The template in one auth mode: the parameter's allowed values include it, and ingest gets
/// every AUTH_* setting from a parameter of the same meaning.
#[test]
fn the_auth_mode_parameter_selects_each_mode_and_passes_its_settings() {
    let t = template();
    let parameters = t.get("Parameters").expect("parameters");
    let mode = parameters.get("AuthMode").expect("an AuthMode parameter");
    assert_eq!(
        literal_str(mode.get("Default"), "AuthMode default"),
        "user-service"
    );
    assert_eq!(
        string_list(mode.get("AllowedValues")),
        ["user-service", "jwks", "apigateway-jwt"],
        "every mode ingest accepts, and only those"
    );
    let env = environment(&t, INGEST);
    for (variable, parameter) in [
        ("AUTH_MODE", "AuthMode"),
        ("AUTH_ISSUER", "AuthIssuer"),
        ("AUTH_JWKS_URL", "AuthJwksUrl"),
        ("AUTH_AUDIENCE", "AuthAudience"),
        ("AUTH_CLIENT_IDS", "AuthClientIds"),
        ("AUTH_TOKEN_USE", "AuthTokenUse"),
        ("AUTH_SERVICE_GROUP", "AuthServiceGroup"),
        ("USER_SERVICE_URL", "UserServiceUrl"),
    ] {
        let value = env
            .get(variable)
            .unwrap_or_else(|| panic!("{INGEST} does not set {variable}"));
        assert_eq!(ref_target(value), Some(parameter), "{variable}");
        assert!(parameters.get(parameter).is_some(), "{parameter}");
    }
    // Optional settings default to empty, which ingest reads as unset (so jwks mode needs no
    // User Service URL, and user-service mode reads no AUTH_ISSUER).
    for optional in [
        "UserServiceUrl",
        "AuthIssuer",
        "AuthJwksUrl",
        "AuthAudience",
        "AuthClientIds",
        "AuthServiceGroup",
    ] {
        assert_eq!(
            literal_str(parameters[optional].get("Default"), optional),
            "",
            "{optional}"
        );
    }
    let token_use = &parameters["AuthTokenUse"];
    assert_eq!(
        literal_str(token_use.get("Default"), "AuthTokenUse"),
        "access"
    );
    assert_eq!(
        string_list(token_use.get("AllowedValues")),
        ["access", "id", "any"]
    );
}

/// The settings ingest would read in each mode parse: the template's defaults plus what an
/// operator must give, through ingest's own settings code.
#[test]
fn each_mode_as_deployed_passes_ingest_settings() {
    let with = |extra: &[(&str, &str)]| {
        let env: std::collections::HashMap<String, String> = [
            ("QUEUE_URL", "https://sqs.eu-west-1.amazonaws.com/1/q"),
            ("TABLE_NAME", "t"),
            ("AUTH_TOKEN_USE", "access"),
        ]
        .iter()
        .chain(extra)
        // Lambda passes empty parameters as empty variables, which ingest reads as unset.
        .filter(|(_, v)| !v.is_empty())
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
        ingest::settings::IngestSettings::from_source(&env)
    };
    let user_service = with(&[
        ("AUTH_MODE", "user-service"),
        ("USER_SERVICE_URL", "https://users.example"),
    ]);
    assert!(user_service.is_ok(), "{user_service:?}");
    let missing_url = with(&[("AUTH_MODE", "user-service"), ("USER_SERVICE_URL", "")]);
    assert!(missing_url
        .unwrap_err()
        .to_string()
        .contains("USER_SERVICE_URL"));
    let jwks = with(&[
        ("AUTH_MODE", "jwks"),
        (
            "AUTH_ISSUER",
            "https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_abc",
        ),
        ("AUTH_CLIENT_IDS", "app"),
        ("USER_SERVICE_URL", ""),
    ]);
    assert!(jwks.is_ok(), "{jwks:?}");
    let no_issuer = with(&[("AUTH_MODE", "jwks"), ("AUTH_CLIENT_IDS", "app")]);
    assert!(no_issuer.unwrap_err().to_string().contains("AUTH_ISSUER"));
    // Under Lambda (as deployed) apigateway-jwt needs nothing more: the authorizer has the
    // issuer and audience.
    let gateway = with(&[
        ("AUTH_MODE", "apigateway-jwt"),
        ("AWS_LAMBDA_RUNTIME_API", "127.0.0.1:9001"),
        ("USER_SERVICE_URL", ""),
    ]);
    assert!(gateway.is_ok(), "{gateway:?}");
}

/// The managed alternative: an HTTP API JWT authorizer on the one route, only when asked for
/// and only in jwks mode (ingest still verifies: it never trusts what it cannot check).
#[test]
fn the_edge_jwt_authorizer_is_optional_and_guards_the_default_route() {
    let t = template();
    let conditions = t.get("Conditions").expect("conditions");
    let condition = conditions
        .get("HasEdgeJwtAuthorizer")
        .expect("a HasEdgeJwtAuthorizer condition");
    let text = format!("{condition:?}");
    assert!(
        text.contains("EdgeJwtAuthorizer") && text.contains("jwks"),
        "{text}"
    );
    // apigateway-jwt trusts the authorizer's claims, so in that mode it is always there.
    assert!(text.contains("apigateway-jwt"), "{text}");
    let authorizer = resource(&t, "EdgeJwtAuthorizerResource");
    assert_eq!(resource_type(authorizer), "AWS::ApiGatewayV2::Authorizer");
    assert_eq!(
        authorizer.get("Condition").and_then(Value::as_str),
        Some("HasEdgeJwtAuthorizer")
    );
    assert_eq!(
        literal_str(prop(authorizer, &["AuthorizerType"]), "type"),
        "JWT"
    );
    assert_eq!(
        prop(authorizer, &["JwtConfiguration", "Issuer"]).and_then(ref_target),
        Some("AuthIssuer")
    );
    let (route_id, route) = only_resource_of_type(&t, "AWS::ApiGatewayV2::Route");
    let (cond, then, otherwise) = if_parts(prop(route, &["AuthorizationType"]).expect("type"))
        .unwrap_or_else(|| panic!("{route_id}'s AuthorizationType should be an !If"));
    assert_eq!(cond, "HasEdgeJwtAuthorizer");
    assert_eq!(
        (then.as_str(), otherwise.as_str()),
        (Some("JWT"), Some("NONE"))
    );
}

/// A client cannot run the function's concurrency out: the stage throttles every route.
#[test]
fn the_default_route_is_throttled_by_parameters_in_every_mode() {
    let t = template();
    let (_, stage) = only_resource_of_type(&t, "AWS::ApiGatewayV2::Stage");
    for (key, parameter) in [
        ("ThrottlingRateLimit", "ApiThrottlingRateLimit"),
        ("ThrottlingBurstLimit", "ApiThrottlingBurstLimit"),
    ] {
        assert_eq!(
            prop(stage, &["DefaultRouteSettings", key]).and_then(ref_target),
            Some(parameter),
            "{key}"
        );
    }
}
