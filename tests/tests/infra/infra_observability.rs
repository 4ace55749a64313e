//! Observability invariants of `infra/template.yaml`: the dashboard and the alarms read the
//! metrics the code emits (names from `platform::metrics::names::ALL`, in the namespace the
//! functions are given, with the `Service` dimension each function emits), and X-Ray tracing
//! follows the `Tracing` parameter, permissions included.
//!
//! The template is parsed as in `infra_template.rs` (`serde_yaml_ng`, short-form tags kept as
//! `Value::Tagged`). The dashboard body is a `!Sub` string: every `${...}` is replaced (a
//! Number parameter by its default, anything else by `@@name@@`) and the result parsed as
//! JSON, so a widget the test cannot read fails here rather than in the console.

use std::collections::{BTreeMap, BTreeSet};

use platform::metrics::{names, DEFAULT_NAMESPACE};
use serde_json::Value as Json;
use serde_yaml_ng::{Mapping, Value};

/// Embedded at compile time, so editing the template re-runs these tests.
const TEMPLATE: &str = include_str!("../../../infra/template.yaml");
const TEMPLATE_PATH: &str = "infra/template.yaml";

const INGEST: &str = "IngestFunction";
const WORKER: &str = "WorkerFunction";
const NAMESPACE_PARAMETER: &str = "MetricsNamespace";
/// What `${MetricsNamespace}` becomes in the dashboard body before it is parsed.
const NAMESPACE_IN_BODY: &str = "@@MetricsNamespace@@";
const XRAY_ACTIONS: [&str; 2] = ["xray:PutTelemetryRecords", "xray:PutTraceSegments"];

/// Each metric of `names::ALL`: the binary that emits it (its `Service` dimension unless
/// `METRICS_SERVICE` says otherwise) and the dimensions it carries besides `Service`.
const EMITTED: &[(&str, &str, &[&str])] = &[
    (names::REQUESTS, "ingest", &["Route", "Status"]),
    (names::REQUESTS_ALL, "ingest", &[]),
    (names::ERRORS_4XX, "ingest", &[]),
    (names::ERRORS_5XX, "ingest", &[]),
    (names::REQUEST_LATENCY, "ingest", &[]),
    (names::ACCEPTED_WRITES, "ingest", &[]),
    (names::REJECTIONS, "ingest", &["Reason"]),
    (names::USER_SERVICE_LATENCY, "ingest", &[]),
    (names::USER_SERVICE_UNAVAILABLE, "ingest", &[]),
    (names::SQS_SEND_LATENCY, "ingest", &[]),
    (names::SQS_SEND_FAILURES, "ingest", &[]),
    (names::BATCH_RECORDS, "worker", &[]),
    (names::WRITTEN, "worker", &[]),
    (names::DEDUPLICATED, "worker", &[]),
    (names::DEAD_LETTERED, "worker", &["Reason"]),
    (names::RETRIED, "worker", &[]),
    (names::UNPROCESSED_AFTER_RETRIES, "worker", &[]),
    (names::BATCH_WRITE_REQUESTS, "worker", &[]),
    (names::BATCH_DURATION, "worker", &[]),
    (names::END_TO_END_LAG, "worker", &[]),
    (names::MESSAGE_AGE, "worker", &[]),
];

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

fn resources_of_type<'a>(t: &'a Value, kind: &str) -> Vec<(&'a str, &'a Value)> {
    resources(t)
        .iter()
        .filter(|(_, r)| r.get("Type").and_then(Value::as_str) == Some(kind))
        .map(|(id, r)| (id.as_str().unwrap_or_default(), r))
        .collect()
}

fn parameter<'a>(t: &'a Value, name: &str) -> &'a Value {
    t.get("Parameters")
        .and_then(|p| p.get(name))
        .unwrap_or_else(|| panic!("{TEMPLATE_PATH} has no parameter `{name}`"))
}

/// A parameter's default as text (YAML numbers included), if it has one.
fn parameter_default(t: &Value, name: &str) -> Option<String> {
    scalar_text(parameter(t, name).get("Default")?)
}

fn scalar_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// `Properties.<path...>` of a resource, if present.
fn prop<'a>(r: &'a Value, path: &[&str]) -> Option<&'a Value> {
    path.iter()
        .try_fold(r.get("Properties")?, |v, key| v.get(*key))
}

fn one_or_many(v: &Value) -> Vec<&Value> {
    match v {
        Value::Sequence(items) => items.iter().collect(),
        other => vec![other],
    }
}

/// `(function name, argument)` of an intrinsic in short (`!Ref x`) or long (`{Ref: x}`,
/// `{Fn::If: ...}`) form; the name without `Fn::`.
fn intrinsic(v: &Value) -> Option<(String, &Value)> {
    match v {
        Value::Tagged(tagged) => Some((
            tagged.tag.to_string().trim_start_matches('!').to_owned(),
            &tagged.value,
        )),
        Value::Mapping(m) if m.len() == 1 => {
            let (key, arg) = m.iter().next()?;
            let key = key.as_str()?;
            let name = key.strip_prefix("Fn::").unwrap_or(key);
            (key.starts_with("Fn::") || key == "Ref" || key == "Condition")
                .then(|| (name.to_owned(), arg))
        }
        _ => None,
    }
}

fn ref_target(v: &Value) -> Option<&str> {
    match intrinsic(v) {
        Some((name, arg)) if name == "Ref" => arg.as_str(),
        _ => None,
    }
}

fn sub_template(v: &Value) -> Option<&str> {
    match intrinsic(v) {
        Some((name, arg)) if name == "Sub" => arg.as_str(),
        _ => None,
    }
}

fn environment<'a>(t: &'a Value, function: &str) -> &'a Value {
    prop(resource(t, function), &["Environment", "Variables"])
        .unwrap_or_else(|| panic!("{function} has no Environment.Variables"))
}

// ------------------------------------------------------------------ conditions

/// Parameter values for evaluating conditions; parameters not given take their default.
struct Deployment<'a> {
    template: &'a Value,
    parameters: BTreeMap<&'a str, &'a str>,
}

enum Evaluated {
    Bool(bool),
    Text(String),
}

impl Deployment<'_> {
    fn condition(&self, name: &str) -> bool {
        let definition = self
            .template
            .get("Conditions")
            .and_then(|c| c.get(name))
            .unwrap_or_else(|| panic!("{TEMPLATE_PATH} has no condition `{name}`"));
        self.truth(definition, name)
    }

    fn truth(&self, v: &Value, what: &str) -> bool {
        match self.evaluate(v) {
            Evaluated::Bool(b) => b,
            Evaluated::Text(s) => panic!("condition {what}: expected a boolean, found {s:?}"),
        }
    }

    fn evaluate(&self, v: &Value) -> Evaluated {
        if let Some(text) = scalar_text(v) {
            return Evaluated::Text(text);
        }
        let Some((name, arg)) = intrinsic(v) else {
            panic!("cannot evaluate {v:?} in a condition")
        };
        let args = || arg.as_sequence().map(Vec::as_slice).unwrap_or_default();
        match name.as_str() {
            "Ref" => {
                let parameter_name = arg.as_str().unwrap_or_default();
                let value = self
                    .parameters
                    .get(parameter_name)
                    .map(|v| (*v).to_owned())
                    .or_else(|| parameter_default(self.template, parameter_name))
                    .unwrap_or_else(|| {
                        panic!("condition refers to {parameter_name}, which has no value here")
                    });
                Evaluated::Text(value)
            }
            "Equals" => match args() {
                [a, b] => Evaluated::Bool(self.text(a) == self.text(b)),
                _ => panic!("Equals takes two values: {arg:?}"),
            },
            "Not" => match args() {
                [c] => Evaluated::Bool(!self.truth(c, "Not")),
                _ => panic!("Not takes one condition: {arg:?}"),
            },
            "And" => Evaluated::Bool(args().iter().all(|c| self.truth(c, "And"))),
            "Or" => Evaluated::Bool(args().iter().any(|c| self.truth(c, "Or"))),
            "Condition" => Evaluated::Bool(self.condition(arg.as_str().unwrap_or_default())),
            other => panic!("cannot evaluate Fn::{other} in a condition"),
        }
    }

    fn text(&self, v: &Value) -> String {
        match self.evaluate(v) {
            Evaluated::Text(s) => s,
            Evaluated::Bool(b) => b.to_string(),
        }
    }

    /// `v` with every `!If` decided; `None` where it comes to `!Ref AWS::NoValue`.
    fn resolve<'v>(&self, v: &'v Value) -> Option<&'v Value> {
        match intrinsic(v) {
            Some((name, arg)) if name == "If" => match arg.as_sequence().map(Vec::as_slice) {
                Some([condition, then, otherwise]) => {
                    let chosen = if self.condition(condition.as_str().unwrap_or_default()) {
                        then
                    } else {
                        otherwise
                    };
                    self.resolve(chosen)
                }
                _ => panic!("Fn::If takes [condition, then, else]: {arg:?}"),
            },
            _ if ref_target(v) == Some("AWS::NoValue") => None,
            _ => Some(v),
        }
    }

    /// Every `(action, resource)` the role's policies allow in this deployment; resources
    /// as literals, or `<intrinsic>` when computed.
    fn allowed(&self, role: &str) -> BTreeSet<(String, String)> {
        let mut allowed = BTreeSet::new();
        let policies = prop(resource(self.template, role), &["Policies"])
            .map(one_or_many)
            .unwrap_or_default();
        for policy in policies {
            let statements = policy
                .get("PolicyDocument")
                .and_then(|d| d.get("Statement"))
                .map(one_or_many)
                .unwrap_or_default();
            for statement in statements.into_iter().filter_map(|s| self.resolve(s)) {
                if statement.get("Effect").and_then(Value::as_str) != Some("Allow") {
                    continue;
                }
                let actions = statement.get("Action").map(one_or_many).unwrap_or_default();
                let targets = statement
                    .get("Resource")
                    .map(one_or_many)
                    .unwrap_or_default();
                for action in actions.iter().filter_map(|a| a.as_str()) {
                    for target in &targets {
                        let target = target.as_str().unwrap_or("<intrinsic>");
                        allowed.insert((action.to_owned(), target.to_owned()));
                    }
                }
            }
        }
        allowed
    }
}

fn deployment<'a>(t: &'a Value, parameters: &[(&'a str, &'a str)]) -> Deployment<'a> {
    Deployment {
        template: t,
        parameters: parameters.iter().copied().collect(),
    }
}

fn role_of(t: &Value, function: &str) -> String {
    let role = prop(resource(t, function), &["Role"])
        .unwrap_or_else(|| panic!("{function} has no explicit Role"));
    match intrinsic(role) {
        Some((name, Value::String(s))) if name == "GetAtt" => {
            s.split('.').next().unwrap_or_default().to_owned()
        }
        Some((name, Value::Sequence(parts))) if name == "GetAtt" => parts
            .first()
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned(),
        _ => panic!("{function}.Role should be !GetAtt <role>.Arn, found {role:?}"),
    }
}

// ------------------------------------------------------------------ metrics named

#[derive(Debug, Clone, PartialEq, Eq)]
enum Namespace {
    /// `!Ref MetricsNamespace`: the functions' own metrics.
    Ours,
    /// `AWS/...`: a service's metrics.
    Aws(String),
    /// Anything else, e.g. a literal copy of the default namespace.
    Other(String),
}

/// One metric a widget or an alarm reads: `dimensions` maps a name to its literal value
/// (`None` for a SEARCH schema dimension matched by any value).
#[derive(Debug, Clone)]
struct MetricUse {
    /// The alarm's logical id, or the widget's title.
    owner: String,
    place: String,
    namespace: Namespace,
    name: String,
    dimensions: BTreeMap<String, Option<String>>,
    /// The statistic (`Sum`, `p99`, ...), when the use names one.
    stat: Option<String>,
    search: bool,
}

fn emitted(name: &str) -> Option<(&'static str, &'static [&'static str])> {
    EMITTED
        .iter()
        .find(|(n, _, _)| *n == name)
        .map(|(_, service, extra)| (*service, *extra))
}

/// The `Service` value a function's metrics carry: its `METRICS_SERVICE`, else the binary's
/// name, which is what the code defaults to.
fn service_of(t: &Value, function: &str) -> String {
    match environment(t, function).get("METRICS_SERVICE") {
        None => match function {
            INGEST => "ingest".to_owned(),
            WORKER => "worker".to_owned(),
            other => panic!("no default service for {other}"),
        },
        Some(v) => v
            .as_str()
            .unwrap_or_else(|| {
                panic!("{function}'s METRICS_SERVICE must be a literal so alarms can match it")
            })
            .to_owned(),
    }
}

fn alarm_namespace(v: Option<&Value>, place: &str) -> Namespace {
    let v = v.unwrap_or_else(|| panic!("{place} names no Namespace"));
    if ref_target(v) == Some(NAMESPACE_PARAMETER) {
        return Namespace::Ours;
    }
    match v.as_str() {
        Some(s) if s.starts_with("AWS/") => Namespace::Aws(s.to_owned()),
        _ => Namespace::Other(format!("{v:?}")),
    }
}

fn alarm_dimensions(v: Option<&Value>) -> BTreeMap<String, Option<String>> {
    v.map(one_or_many)
        .unwrap_or_default()
        .into_iter()
        .map(|d| {
            let name = d.get("Name").and_then(Value::as_str).unwrap_or_default();
            let value = d
                .get("Value")
                .and_then(Value::as_str)
                .unwrap_or("<intrinsic>");
            (name.to_owned(), Some(value.to_owned()))
        })
        .collect()
}

/// Every metric the alarms read: `MetricName` alarms and each `MetricStat` of metric math.
fn alarm_metrics(t: &Value) -> Vec<MetricUse> {
    let mut uses = Vec::new();
    for (id, alarm) in resources_of_type(t, "AWS::CloudWatch::Alarm") {
        if let Some(name) = prop(alarm, &["MetricName"]) {
            let stat = prop(alarm, &["Statistic"])
                .or_else(|| prop(alarm, &["ExtendedStatistic"]))
                .and_then(Value::as_str)
                .map(str::to_owned);
            uses.push(MetricUse {
                owner: id.to_owned(),
                place: format!("alarm {id}"),
                namespace: alarm_namespace(prop(alarm, &["Namespace"]), id),
                name: name.as_str().unwrap_or_default().to_owned(),
                dimensions: alarm_dimensions(prop(alarm, &["Dimensions"])),
                stat,
                search: false,
            });
        }
        let queries = prop(alarm, &["Metrics"])
            .map(one_or_many)
            .unwrap_or_default();
        for query in queries {
            let Some(stat) = query.get("MetricStat") else {
                continue;
            };
            let metric = stat
                .get("Metric")
                .unwrap_or_else(|| panic!("alarm {id}: a MetricStat without Metric"));
            let query_id = query.get("Id").and_then(Value::as_str).unwrap_or_default();
            let place = format!("alarm {id}, query {query_id}");
            uses.push(MetricUse {
                owner: id.to_owned(),
                namespace: alarm_namespace(metric.get("Namespace"), &place),
                name: metric
                    .get("MetricName")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned(),
                dimensions: alarm_dimensions(metric.get("Dimensions")),
                stat: stat.get("Stat").and_then(Value::as_str).map(str::to_owned),
                search: false,
                place,
            });
        }
    }
    uses
}

/// The dashboard body with every `${...}` replaced, parsed.
fn dashboard_body(t: &Value) -> Json {
    let dashboards = resources_of_type(t, "AWS::CloudWatch::Dashboard");
    let [(id, dashboard)] = dashboards.as_slice() else {
        panic!(
            "{TEMPLATE_PATH} should have one AWS::CloudWatch::Dashboard, found {}",
            dashboards.len()
        );
    };
    let body = prop(dashboard, &["DashboardBody"])
        .and_then(sub_template)
        .unwrap_or_else(|| panic!("{id}.DashboardBody should be a !Sub string"));
    let substituted = substitute(t, body);
    serde_json::from_str(&substituted).unwrap_or_else(|e| {
        panic!("{id}.DashboardBody is not JSON once substituted: {e}\n{substituted}")
    })
}

/// `${Number parameter}` becomes its default, `${!x}` the literal `${x}`, any other `${x}`
/// the marker `@@x@@`.
fn substitute(t: &Value, body: &str) -> String {
    let mut out = String::new();
    let mut rest = body;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after
            .find('}')
            .unwrap_or_else(|| panic!("an unclosed ${{ in the dashboard body"));
        let name = &after[..end];
        if let Some(literal) = name.strip_prefix('!') {
            out.push_str(&format!("${{{literal}}}"));
        } else {
            let number = t
                .get("Parameters")
                .and_then(|p| p.get(name))
                .filter(|p| p.get("Type").and_then(Value::as_str) == Some("Number"));
            match number {
                Some(_) => out.push_str(
                    &parameter_default(t, name)
                        .unwrap_or_else(|| panic!("Number parameter {name} has no default")),
                ),
                None => out.push_str(&format!("@@{name}@@")),
            }
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    out
}

fn metric_widgets(body: &Json) -> Vec<&Json> {
    body.get("widgets")
        .and_then(Json::as_array)
        .expect("the dashboard body has a `widgets` list")
        .iter()
        .filter(|w| w.get("type").and_then(Json::as_str) == Some("metric"))
        .collect()
}

fn widget_title(widget: &Json) -> String {
    widget
        .pointer("/properties/title")
        .and_then(Json::as_str)
        .unwrap_or("<untitled>")
        .to_owned()
}

fn body_namespace(s: &str) -> Namespace {
    if s == NAMESPACE_IN_BODY {
        Namespace::Ours
    } else if s.starts_with("AWS/") {
        Namespace::Aws(s.to_owned())
    } else {
        Namespace::Other(s.to_owned())
    }
}

/// Every metric the dashboard reads: each metric row, and each SEARCH in an expression.
fn dashboard_metrics(t: &Value) -> Vec<MetricUse> {
    let body = dashboard_body(t);
    let mut uses = Vec::new();
    for widget in metric_widgets(&body) {
        let title = widget_title(widget);
        let rows = widget
            .pointer("/properties/metrics")
            .and_then(Json::as_array)
            .unwrap_or_else(|| panic!("widget {title:?} has no metrics"));
        for row in rows {
            let row = row
                .as_array()
                .unwrap_or_else(|| panic!("widget {title:?}: a metrics row is not a list"));
            let place = format!("widget {title:?}");
            let options = row.iter().find(|v| v.is_object());
            if let Some(expression) = options
                .and_then(|o| o.get("expression"))
                .and_then(Json::as_str)
            {
                uses.extend(searches(expression, &title, &place));
                continue;
            }
            let parts: Vec<&str> = row.iter().filter_map(Json::as_str).collect();
            assert!(
                parts.len() >= 2 && parts.len().is_multiple_of(2),
                "{place}: a metric row should be namespace, name and dimension pairs, found {row:?}"
            );
            assert!(
                !parts.contains(&"."),
                "{place}: write metric rows out in full, not with \".\" (the row above's value), \
                 so each reads on its own: {row:?}"
            );
            let dimensions = parts[2..]
                .chunks(2)
                .map(|pair| (pair[0].to_owned(), Some(pair[1].to_owned())))
                .collect();
            uses.push(MetricUse {
                owner: title.clone(),
                place,
                namespace: body_namespace(parts[0]),
                name: parts[1].to_owned(),
                dimensions,
                stat: options
                    .and_then(|o| o.get("stat"))
                    .or_else(|| widget.pointer("/properties/stat"))
                    .and_then(Json::as_str)
                    .map(str::to_owned),
                search: false,
            });
        }
    }
    uses
}

/// The metrics of each `SEARCH('{namespace,dims...} MetricName="x" Dim="v"', ...)` in an
/// expression. Each must name its metric: a SEARCH over a whole namespace is not checkable.
fn searches(expression: &str, owner: &str, place: &str) -> Vec<MetricUse> {
    let mut uses = Vec::new();
    for part in expression.split("SEARCH(").skip(1) {
        let query = part
            .strip_prefix('\'')
            .and_then(|q| q.split('\'').next())
            .unwrap_or_else(|| panic!("{place}: SEARCH's first argument should be '...'"));
        let schema = query
            .strip_prefix('{')
            .and_then(|q| q.split('}').next())
            .unwrap_or_else(|| {
                panic!("{place}: SEARCH should start with a {{namespace,dimensions}} schema")
            });
        let mut fields = schema.split(',').map(|f| f.trim().trim_matches('"'));
        let namespace = body_namespace(fields.next().unwrap_or_default());
        let mut dimensions: BTreeMap<String, Option<String>> =
            fields.map(|d| (d.to_owned(), None)).collect();
        let terms = query
            .split_once('}')
            .map(|(_, terms)| terms)
            .unwrap_or_default();
        let mut name = None;
        for term in terms.split_whitespace() {
            let (key, value) = term
                .split_once('=')
                .unwrap_or_else(|| panic!("{place}: SEARCH term {term:?} is not Key=\"value\""));
            let value = value.trim_matches('"').to_owned();
            if key == "MetricName" {
                name = Some(value);
            } else {
                assert!(
                    dimensions.contains_key(key),
                    "{place}: SEARCH matches {key}, which its schema does not list"
                );
                dimensions.insert(key.to_owned(), Some(value));
            }
        }
        let name = name.unwrap_or_else(|| {
            panic!("{place}: SEARCH should name its metric (MetricName=\"...\"): {query}")
        });
        uses.push(MetricUse {
            owner: owner.to_owned(),
            place: place.to_owned(),
            namespace,
            name,
            dimensions,
            stat: None,
            search: true,
        });
    }
    uses
}

fn assert_named_by_the_code(uses: &[MetricUse], what: &str) {
    let ours: Vec<&MetricUse> = uses
        .iter()
        .filter(|u| u.namespace == Namespace::Ours)
        .collect();
    assert!(
        !ours.is_empty(),
        "{what} read no metric in !Ref {NAMESPACE_PARAMETER}: is the parsing wrong?"
    );
    for u in ours {
        assert!(
            names::ALL.contains(&u.name.as_str()),
            "{}: reads metric {:?}, which the code never emits (platform::metrics::names::ALL: {:?})",
            u.place,
            u.name,
            names::ALL
        );
    }
}

/// The dimensions a use must select for its metric as emitted: `Service` with the value of the
/// function that emits it, plus the metric's own extra dimensions.
fn assert_dimensions_as_emitted(t: &Value, u: &MetricUse) {
    let (binary, extra) =
        emitted(&u.name).unwrap_or_else(|| panic!("{}: {:?} is not in EMITTED", u.place, u.name));
    let function = if binary == "ingest" { INGEST } else { WORKER };
    let service = service_of(t, function);
    let expected: BTreeSet<&str> = extra.iter().copied().chain(["Service"]).collect();
    let actual: BTreeSet<&str> = u.dimensions.keys().map(String::as_str).collect();
    assert_eq!(
        actual, expected,
        "{}: {} is emitted with exactly the dimensions {:?}; CloudWatch matches the whole set",
        u.place, u.name, expected
    );
    assert_eq!(
        u.dimensions.get("Service").cloned().flatten().as_deref(),
        Some(service.as_str()),
        "{}: {} is emitted by {function} with Service={service}",
        u.place,
        u.name
    );
}

// ------------------------------------------------------------------ the code's list

#[test]
fn every_metric_the_code_emits_is_listed_here_once_with_its_service_and_dimensions() {
    let listed: Vec<&str> = EMITTED.iter().map(|(n, _, _)| *n).collect();
    let unique: BTreeSet<&str> = listed.iter().copied().collect();
    assert_eq!(unique.len(), listed.len(), "EMITTED lists a metric twice");
    let all: BTreeSet<&str> = names::ALL.iter().copied().collect();
    assert_eq!(
        unique, all,
        "EMITTED (this test) and platform::metrics::names::ALL (the code) should list the same metrics"
    );
}

// ------------------------------------------------------------------ alarms

#[test]
fn every_metric_an_alarm_reads_in_our_namespace_is_one_the_code_emits() {
    assert_named_by_the_code(&alarm_metrics(&template()), "the alarms");
}

#[test]
fn alarms_name_our_namespace_through_the_parameter_not_a_literal() {
    for u in alarm_metrics(&template()) {
        assert!(
            !matches!(u.namespace, Namespace::Other(_)),
            "{}: Namespace {:?} should be !Ref {NAMESPACE_PARAMETER} (or an AWS/ namespace): a \
             literal stops matching when the parameter changes",
            u.place,
            u.namespace
        );
    }
}

#[test]
fn every_alarm_selects_the_service_dimension_its_metric_is_emitted_with() {
    let t = template();
    for u in alarm_metrics(&t)
        .iter()
        .filter(|u| u.namespace == Namespace::Ours)
    {
        assert_dimensions_as_emitted(&t, u);
    }
}

#[test]
fn alarms_on_our_metrics_treat_missing_data_as_healthy_and_notify_the_optional_topic() {
    let t = template();
    let mut checked = 0;
    for (id, alarm) in resources_of_type(&t, "AWS::CloudWatch::Alarm") {
        let ours = alarm_metrics(&t)
            .iter()
            .any(|u| u.owner == id && u.namespace == Namespace::Ours);
        if !ours {
            continue;
        }
        checked += 1;
        assert_eq!(
            prop(alarm, &["TreatMissingData"]).and_then(Value::as_str),
            Some("notBreaching"),
            "{id}: counters are not emitted when zero, so missing data is the healthy state"
        );
        for key in ["AlarmActions", "OKActions"] {
            let action = prop(alarm, &[key]).unwrap_or_else(|| panic!("{id} has no {key}"));
            let condition = match intrinsic(action) {
                Some((name, arg)) if name == "If" => arg
                    .as_sequence()
                    .and_then(|a| a.first())
                    .and_then(Value::as_str),
                _ => None,
            };
            assert_eq!(
                condition,
                Some("HasAlarmTopic"),
                "{id}.{key} should be !If [HasAlarmTopic, [!Ref AlarmTopicArn], !Ref AWS::NoValue] \
                 like the queue alarms, found {action:?}"
            );
        }
    }
    assert!(
        checked >= 4,
        "expected at least 4 alarms on our metrics, found {checked}"
    );
}

/// The single alarm whose metrics include `metric` in our namespace.
fn alarm_reading<'a>(t: &'a Value, metric: &str) -> (&'a str, &'a Value) {
    let found: Vec<(&str, &Value)> = resources_of_type(t, "AWS::CloudWatch::Alarm")
        .into_iter()
        .filter(|(id, _)| {
            alarm_metrics(t)
                .iter()
                .any(|u| u.owner == *id && u.namespace == Namespace::Ours && u.name == metric)
        })
        .collect();
    let [one] = found.as_slice() else {
        panic!("expected one alarm on {metric}, found {}", found.len());
    };
    *one
}

fn threshold_parameter<'a>(alarm: &'a Value, id: &str) -> &'a str {
    prop(alarm, &["Threshold"])
        .and_then(ref_target)
        .unwrap_or_else(|| panic!("{id}.Threshold should come from a parameter"))
}

#[test]
fn the_5xx_alarm_divides_5xx_responses_by_all_requests_over_five_minutes_above_one_percent() {
    let t = template();
    let (id, alarm) = alarm_reading(&t, names::ERRORS_5XX);
    let queries = prop(alarm, &["Metrics"])
        .and_then(Value::as_sequence)
        .unwrap_or_else(|| panic!("{id} should be metric math (Metrics)"));
    let id_of = |metric: &str| -> String {
        let q = queries
            .iter()
            .find(|q| {
                q.get("MetricStat")
                    .and_then(|s| s.get("Metric"))
                    .and_then(|m| m.get("MetricName"))
                    .and_then(Value::as_str)
                    == Some(metric)
            })
            .unwrap_or_else(|| panic!("{id} reads no {metric}"));
        let stat = q.get("MetricStat").unwrap();
        assert_eq!(
            stat.get("Stat").and_then(Value::as_str),
            Some("Sum"),
            "{id}: {metric}"
        );
        assert_eq!(
            stat.get("Period").and_then(Value::as_i64),
            Some(300),
            "{id}: {metric}"
        );
        q.get("Id")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned()
    };
    let errors = id_of(names::ERRORS_5XX);
    let requests = id_of(names::REQUESTS_ALL);
    let returned: Vec<&Value> = queries
        .iter()
        .filter(|q| q.get("ReturnData").and_then(Value::as_bool) != Some(false))
        .collect();
    let [rate] = returned.as_slice() else {
        panic!(
            "{id}: exactly one query should return data (the rate), found {}",
            returned.len()
        );
    };
    let expression = rate
        .get("Expression")
        .and_then(Value::as_str)
        .unwrap_or_else(|| panic!("{id}: the returned query should be an expression"));
    let (numerator, denominator) = expression
        .split_once('/')
        .unwrap_or_else(|| panic!("{id}: {expression:?} should divide"));
    assert!(
        numerator.contains(&errors) && denominator.trim() == requests,
        "{id}: {expression:?} should be (a multiple of) {errors} / {requests}"
    );
    assert!(
        numerator.contains("100"),
        "{id}: {expression:?} should be a percentage, as its threshold parameter is"
    );
    let parameter = threshold_parameter(alarm, id);
    assert_eq!(
        parameter_default(&t, parameter).as_deref(),
        Some("1"),
        "{parameter}"
    );
    assert_eq!(
        prop(alarm, &["ComparisonOperator"]).and_then(Value::as_str),
        Some("GreaterThanThreshold")
    );
}

#[test]
fn the_user_service_alarm_fires_on_any_unavailability_in_consecutive_minutes() {
    let t = template();
    let (id, alarm) = alarm_reading(&t, names::USER_SERVICE_UNAVAILABLE);
    assert_eq!(
        prop(alarm, &["Statistic"]).and_then(Value::as_str),
        Some("Sum")
    );
    assert_eq!(
        prop(alarm, &["Period"]).and_then(Value::as_i64),
        Some(60),
        "{id}"
    );
    assert_eq!(
        prop(alarm, &["Threshold"]).and_then(Value::as_i64),
        Some(0),
        "{id}"
    );
    let periods = prop(alarm, &["EvaluationPeriods"])
        .and_then(ref_target)
        .unwrap_or_else(|| panic!("{id}.EvaluationPeriods should come from a parameter"));
    assert_eq!(
        prop(alarm, &["DatapointsToAlarm"]).and_then(ref_target),
        Some(periods),
        "{id}: every one of the periods must have failures (consecutive minutes)"
    );
    let default: i64 = parameter_default(&t, periods)
        .and_then(|d| d.parse().ok())
        .unwrap_or_else(|| panic!("{periods} needs a numeric default"));
    assert!(
        (2..=5).contains(&default),
        "{periods}: a default of {default} minutes"
    );
}

#[test]
fn an_alarm_fires_as_soon_as_records_stay_unprocessed_after_retries() {
    let t = template();
    let (id, alarm) = alarm_reading(&t, names::UNPROCESSED_AFTER_RETRIES);
    assert_eq!(
        prop(alarm, &["Statistic"]).and_then(Value::as_str),
        Some("Sum"),
        "{id}"
    );
    assert_eq!(
        prop(alarm, &["Threshold"]).and_then(Value::as_i64),
        Some(0),
        "{id}"
    );
    assert_eq!(
        prop(alarm, &["EvaluationPeriods"]).and_then(Value::as_i64),
        Some(1),
        "{id}"
    );
    assert_eq!(
        prop(alarm, &["ComparisonOperator"]).and_then(Value::as_str),
        Some("GreaterThanThreshold"),
        "{id}"
    );
}

#[test]
fn the_lag_alarm_watches_the_p99_of_end_to_end_lag_above_a_minute_by_default() {
    let t = template();
    let (id, alarm) = alarm_reading(&t, names::END_TO_END_LAG);
    assert_eq!(
        prop(alarm, &["ExtendedStatistic"]).and_then(Value::as_str),
        Some("p99"),
        "{id}"
    );
    let parameter = threshold_parameter(alarm, id);
    assert_eq!(
        parameter_default(&t, parameter).as_deref(),
        Some("60000"),
        "{parameter} (ms)"
    );
}

// ------------------------------------------------------------------ dashboard

#[test]
fn every_metric_the_dashboard_reads_in_our_namespace_is_one_the_code_emits() {
    let uses = dashboard_metrics(&template());
    assert!(
        uses.iter()
            .any(|u| u.search && u.namespace == Namespace::Ours),
        "the dashboard has no SEARCH in our namespace: is the expression parsing wrong?"
    );
    assert_named_by_the_code(&uses, "the dashboard");
}

#[test]
fn dashboard_metrics_select_the_dimensions_they_are_emitted_with() {
    let t = template();
    for u in dashboard_metrics(&t)
        .iter()
        .filter(|u| u.namespace == Namespace::Ours)
    {
        assert_dimensions_as_emitted(&t, u);
    }
}

#[test]
fn the_dashboard_names_our_namespace_only_through_the_parameter() {
    for u in dashboard_metrics(&template()) {
        assert!(
            !matches!(u.namespace, Namespace::Other(_)),
            "{}: namespace {:?} should be ${{{NAMESPACE_PARAMETER}}} (or an AWS/ namespace)",
            u.place,
            u.namespace
        );
    }
}

#[test]
fn metrics_with_route_or_reason_dimensions_appear_through_search() {
    // Their dimension values (routes, statuses, reasons) are open-ended: a fixed list of them
    // on the dashboard would miss new ones.
    for u in dashboard_metrics(&template())
        .iter()
        .filter(|u| u.namespace == Namespace::Ours)
    {
        let (_, extra) = emitted(&u.name).unwrap_or_default();
        assert!(
            extra.is_empty() || u.search,
            "{}: {} has per-value dimensions {extra:?}; read it with SEARCH",
            u.place,
            u.name
        );
    }
}

/// A metric the dashboard must show: namespace, name, statistic (if it matters) and one
/// dimension that must match (if any).
type Signal<'a> = (
    &'a Namespace,
    &'a str,
    Option<&'a str>,
    Option<(&'a str, &'a str)>,
);

#[test]
fn the_dashboard_shows_every_signal_the_runbooks_refer_to() {
    let t = template();
    let uses = dashboard_metrics(&t);
    let shows =
        |namespace: &Namespace, name: &str, stat: Option<&str>, dimension: Option<(&str, &str)>| {
            uses.iter().any(|u| {
                &u.namespace == namespace
                    && u.name == name
                    && (stat.is_none() || u.stat.as_deref() == stat)
                    && dimension.is_none_or(|(k, v)| {
                        u.dimensions.get(k).cloned().flatten().as_deref() == Some(v)
                    })
            })
        };
    let ours = Namespace::Ours;
    let sqs = Namespace::Aws("AWS/SQS".to_owned());
    let lambda = Namespace::Aws("AWS/Lambda".to_owned());
    let queue = Some(("QueueName", "@@Queue.QueueName@@"));
    let dlq = Some(("QueueName", "@@DeadLetterQueue.QueueName@@"));
    let mapping_body = format!("@@{}@@", worker_event_source_mapping(&t));
    let mapping = Some(("EventSourceMappingUUID", mapping_body.as_str()));
    let expected: Vec<Signal> = vec![
        (&ours, names::REQUESTS, None, None),
        (&ours, names::REQUESTS_ALL, Some("Sum"), None),
        (&ours, names::ERRORS_4XX, Some("Sum"), None),
        (&ours, names::ERRORS_5XX, Some("Sum"), None),
        (&ours, names::ACCEPTED_WRITES, Some("Sum"), None),
        (&ours, names::WRITTEN, Some("Sum"), None),
        (&ours, names::END_TO_END_LAG, Some("p50"), None),
        (&ours, names::END_TO_END_LAG, Some("p99"), None),
        (&ours, names::RETRIED, Some("Sum"), None),
        (&ours, names::USER_SERVICE_LATENCY, Some("p50"), None),
        (&ours, names::USER_SERVICE_LATENCY, Some("p99"), None),
        (&sqs, "ApproximateNumberOfMessagesVisible", None, queue),
        (&sqs, "ApproximateAgeOfOldestMessage", None, queue),
        (&sqs, "ApproximateNumberOfMessagesVisible", None, dlq),
        (
            &lambda,
            "Throttles",
            Some("Sum"),
            Some(("FunctionName", "@@IngestFunction@@")),
        ),
        (
            &lambda,
            "Throttles",
            Some("Sum"),
            Some(("FunctionName", "@@WorkerFunction@@")),
        ),
        (&lambda, "PolledEventCount", Some("Sum"), mapping),
        (&lambda, "InvokedEventCount", Some("Sum"), mapping),
        (&lambda, "FailedInvokeEventCount", Some("Sum"), mapping),
        (&lambda, "DeletedEventCount", Some("Sum"), mapping),
    ];
    for (namespace, name, stat, dimension) in expected {
        assert!(
            shows(namespace, name, stat, dimension),
            "the dashboard should show {namespace:?} {name} (stat {stat:?}, {dimension:?})"
        );
    }
}

#[test]
fn the_dashboard_follows_the_stack_and_region_it_is_deployed_in() {
    let t = template();
    let (id, dashboard) = resources_of_type(&t, "AWS::CloudWatch::Dashboard")[0];
    // Dashboard names are global to the account: two stacks or regions must not collide.
    let name = prop(dashboard, &["DashboardName"]).and_then(sub_template);
    assert!(
        name.is_some_and(|n| n.contains("${AWS::StackName}") && n.contains("${AWS::Region}")),
        "{id}.DashboardName should be a !Sub with the stack name and region, found {name:?}"
    );
    let body = dashboard_body(&t);
    for widget in metric_widgets(&body) {
        assert_eq!(
            widget.pointer("/properties/region").and_then(Json::as_str),
            Some("@@AWS::Region@@"),
            "widget {:?} should read the stack's region",
            widget_title(widget)
        );
    }
    // Service metrics select this stack's resources, by the names CloudFormation gives them.
    let mapping = worker_event_source_mapping(&t);
    for u in dashboard_metrics(&t) {
        for (dimension, targets) in [
            (
                "QueueName",
                &["Queue.QueueName", "DeadLetterQueue.QueueName"][..],
            ),
            ("FunctionName", &[INGEST, WORKER][..]),
            ("EventSourceMappingUUID", &[mapping.as_str()][..]),
        ] {
            if let Some(value) = u.dimensions.get(dimension).cloned().flatten() {
                assert!(
                    targets
                        .iter()
                        .any(|target| value == format!("@@{target}@@")),
                    "{}: {dimension} {value:?} should be one of this stack's {targets:?}",
                    u.place
                );
            }
        }
    }
}

// ------------------------------------------------------------------ event source mapping

/// What `MetricsConfig: {Metrics: [EventCount]}` makes an SQS event source mapping emit in
/// AWS/Lambda, by `EventSourceMappingUUID` (Lambda developer guide, "Event source mapping
/// metrics"), and the poller count it reports in provisioned mode.
const EVENT_COUNT_METRICS: [&str; 7] = [
    "PolledEventCount",
    "InvokedEventCount",
    "FilteredOutEventCount",
    "FailedInvokeEventCount",
    "DroppedEventCount",
    "DeletedEventCount",
    "OnFailureDestinationDeliveredEventCount",
];
const PROVISIONED_POLLERS_METRIC: &str = "ProvisionedPollers";

/// The worker's one SQS event, `(event name, its properties)`.
fn worker_sqs_event(t: &Value) -> (&str, &Value) {
    let events = prop(resource(t, WORKER), &["Events"])
        .and_then(Value::as_mapping)
        .unwrap_or_else(|| panic!("{WORKER} has no Events"));
    let sqs: Vec<(&str, &Value)> = events
        .iter()
        .filter(|(_, e)| e.get("Type").and_then(Value::as_str) == Some("SQS"))
        .map(|(name, e)| (name.as_str().unwrap_or_default(), e))
        .collect();
    let [(name, event)] = sqs.as_slice() else {
        panic!("{WORKER} should have one SQS event, found {}", sqs.len());
    };
    let properties = event
        .get("Properties")
        .unwrap_or_else(|| panic!("the SQS event {name} of {WORKER} has no Properties"));
    (name, properties)
}

/// The logical id SAM gives the event source mapping it generates for the worker's SQS event:
/// the function's id followed by the event's name. Its `Ref` is the mapping's UUID.
fn worker_event_source_mapping(t: &Value) -> String {
    format!("{WORKER}{}", worker_sqs_event(t).0)
}

#[test]
fn the_event_source_mapping_panel_reads_what_the_worker_mapping_is_configured_to_emit() {
    let t = template();
    let mapping = format!("@@{}@@", worker_event_source_mapping(&t));
    let uses: Vec<MetricUse> = dashboard_metrics(&t)
        .into_iter()
        .filter(|u| u.dimensions.contains_key("EventSourceMappingUUID"))
        .collect();
    assert!(
        uses.len() >= 4,
        "the dashboard should read the worker mapping's polled, invoked, failed and deleted \
         counts, found {} metrics by EventSourceMappingUUID",
        uses.len()
    );
    let (_, event) = worker_sqs_event(&t);
    let configured: Vec<&str> = event
        .get("MetricsConfig")
        .and_then(|m| m.get("Metrics"))
        .map(one_or_many)
        .unwrap_or_default()
        .into_iter()
        .filter_map(Value::as_str)
        .collect();
    for u in &uses {
        assert_eq!(
            u.namespace,
            Namespace::Aws("AWS/Lambda".to_owned()),
            "{}: {}",
            u.place,
            u.name
        );
        // CloudWatch matches the whole dimension set: the mapping's metrics carry only its UUID.
        assert_eq!(
            u.dimensions.keys().map(String::as_str).collect::<Vec<_>>(),
            ["EventSourceMappingUUID"],
            "{}: {} is published with the EventSourceMappingUUID dimension alone",
            u.place,
            u.name
        );
        assert_eq!(
            u.dimensions["EventSourceMappingUUID"].as_deref(),
            Some(mapping.as_str()),
            "{}: {} should select the worker's mapping, ${{{}}}",
            u.place,
            u.name,
            mapping.trim_matches('@')
        );
        if EVENT_COUNT_METRICS.contains(&u.name.as_str()) {
            assert!(
                configured.contains(&"EventCount"),
                "{}: {} is only emitted with MetricsConfig {{Metrics: [EventCount]}} on the \
                 worker's SQS event, which has {configured:?}: the panel would stay empty",
                u.place,
                u.name
            );
            assert_eq!(
                u.stat.as_deref(),
                Some("Sum"),
                "{}: {} is a count per period",
                u.place,
                u.name
            );
        } else {
            assert_eq!(
                u.name, PROVISIONED_POLLERS_METRIC,
                "{}: {} is not a metric an SQS event source mapping emits ({EVENT_COUNT_METRICS:?}, \
                 {PROVISIONED_POLLERS_METRIC})",
                u.place, u.name
            );
        }
    }
}

// ------------------------------------------------------------------ functions

#[test]
fn both_functions_emit_emf_metrics_in_the_namespace_parameter_the_code_defaults_to() {
    let t = template();
    assert_eq!(
        parameter_default(&t, NAMESPACE_PARAMETER).as_deref(),
        Some(DEFAULT_NAMESPACE),
        "{NAMESPACE_PARAMETER}'s default should be the code's"
    );
    for function in [INGEST, WORKER] {
        let env = environment(&t, function);
        assert_eq!(
            env.get("METRICS_NAMESPACE").and_then(ref_target),
            Some(NAMESPACE_PARAMETER),
            "{function}'s METRICS_NAMESPACE should be !Ref {NAMESPACE_PARAMETER}"
        );
        assert_eq!(
            env.get("METRICS").and_then(Value::as_str),
            Some("emf"),
            "{function} should set METRICS=emf"
        );
    }
}

#[test]
fn each_function_reports_its_own_service_dimension() {
    let t = template();
    assert_eq!(service_of(&t, INGEST), "ingest");
    assert_eq!(service_of(&t, WORKER), "worker");
}

#[test]
fn both_functions_trace_as_the_tracing_parameter_says_active_by_default() {
    let t = template();
    let declared = parameter(&t, "Tracing");
    assert_eq!(parameter_default(&t, "Tracing").as_deref(), Some("Active"));
    let allowed: BTreeSet<String> = declared
        .get("AllowedValues")
        .map(one_or_many)
        .unwrap_or_default()
        .into_iter()
        .filter_map(scalar_text)
        .collect();
    assert_eq!(
        allowed,
        BTreeSet::from(["Active".to_owned(), "PassThrough".to_owned()])
    );
    for function in [INGEST, WORKER] {
        assert_eq!(
            prop(resource(&t, function), &["Tracing"]).and_then(ref_target),
            Some("Tracing"),
            "{function}.Tracing should be !Ref Tracing"
        );
    }
}

fn xray_grants(d: &Deployment, role: &str) -> BTreeSet<(String, String)> {
    d.allowed(role)
        .into_iter()
        .filter(|(action, _)| action.starts_with("xray:"))
        .collect()
}

#[test]
fn with_tracing_active_both_roles_may_send_traces_and_nothing_else_of_x_ray() {
    let t = template();
    let d = deployment(&t, &[("Tracing", "Active")]);
    let expected: BTreeSet<(String, String)> = XRAY_ACTIONS
        .iter()
        .map(|a| ((*a).to_owned(), "*".to_owned()))
        .collect();
    for function in [INGEST, WORKER] {
        let role = role_of(&t, function);
        assert_eq!(
            xray_grants(&d, &role),
            expected,
            "{role}: with Tracing=Active, Lambda sends {function}'s segments with this role \
             (X-Ray takes no resource, hence \"*\")"
        );
    }
}

#[test]
fn with_tracing_pass_through_neither_role_may_use_x_ray() {
    let t = template();
    let d = deployment(&t, &[("Tracing", "PassThrough")]);
    for function in [INGEST, WORKER] {
        let role = role_of(&t, function);
        assert_eq!(
            xray_grants(&d, &role),
            BTreeSet::new(),
            "{role}: with Tracing=PassThrough the role needs no X-Ray actions"
        );
    }
}

#[test]
fn tracing_adds_only_x_ray_grants_to_the_roles() {
    let t = template();
    let active = deployment(&t, &[("Tracing", "Active")]);
    let pass_through = deployment(&t, &[("Tracing", "PassThrough")]);
    for function in [INGEST, WORKER] {
        let role = role_of(&t, function);
        let added: Vec<_> = active
            .allowed(&role)
            .difference(&pass_through.allowed(&role))
            .filter(|(action, _)| !action.starts_with("xray:"))
            .cloned()
            .collect();
        assert!(
            added.is_empty(),
            "{role}: Tracing=Active also grants {added:?}"
        );
    }
}

#[test]
fn both_functions_use_lambdas_json_log_format() {
    let t = template();
    for function in [INGEST, WORKER] {
        let format =
            prop(resource(&t, function), &["LoggingConfig", "LogFormat"]).and_then(scalar_text);
        assert_eq!(
            format.as_deref(),
            Some("JSON"),
            "{function} must set LoggingConfig.LogFormat: JSON (AWS_LAMBDA_LOG_FORMAT)"
        );
    }
}
