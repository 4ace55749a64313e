//! Invariants of `infra/ecs.yaml` (the Fargate services) and of `deploy/k8s` that the worker
//! and the scaling docs rely on: the backlog-per-task metric math, one scaling target shared by
//! ECS and KEDA, shutdown grace inside the orchestrators' stop timeouts, non-root read-only
//! containers, least-privilege task roles, JSON logs, and ingest behind an HTTPS ALB that
//! checks `/health`. cfn-lint and checkov (infra/lint.sh) check the template is valid;
//! deploy/k8s/validate.py (make lint-deploy) the manifests' schemas.

use std::collections::{BTreeMap, BTreeSet};

use serde_yaml_ng::Value;

const ECS: &str = include_str!("../../../infra/ecs.yaml");
const K8S_WORKER: &str = include_str!("../../../deploy/k8s/base/worker.yaml");

fn template() -> Value {
    serde_yaml_ng::from_str(ECS).unwrap_or_else(|e| panic!("infra/ecs.yaml is not YAML: {e}"))
}

fn resource<'a>(t: &'a Value, id: &str) -> &'a Value {
    t.get("Resources")
        .and_then(|r| r.get(id))
        .unwrap_or_else(|| panic!("infra/ecs.yaml has no resource `{id}`"))
}

fn prop<'a>(r: &'a Value, path: &[&str]) -> Option<&'a Value> {
    path.iter()
        .try_fold(r.get("Properties")?, |v, key| v.get(*key))
}

/// The one container of a task definition.
fn container<'a>(t: &'a Value, task: &str) -> &'a Value {
    let defs = prop(resource(t, task), &["ContainerDefinitions"])
        .and_then(Value::as_sequence)
        .unwrap_or_else(|| panic!("{task} has no ContainerDefinitions"));
    assert_eq!(defs.len(), 1, "{task}: one container per task");
    &defs[0]
}

/// `!Ref X` -> "X"; a literal string -> itself.
fn text(v: &Value) -> String {
    match v {
        Value::Tagged(tagged) => tagged.value.as_str().unwrap_or_default().to_owned(),
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        other => format!("{other:?}"),
    }
}

fn environment(c: &Value) -> BTreeMap<String, String> {
    c.get("Environment")
        .and_then(Value::as_sequence)
        .into_iter()
        .flatten()
        .filter_map(|e| Some((text(e.get("Name")?), text(e.get("Value")?))))
        .collect()
}

fn int(v: Option<&Value>, what: &str) -> i64 {
    let v = v.unwrap_or_else(|| panic!("{what} is not set"));
    v.as_i64()
        .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
        .unwrap_or_else(|| panic!("{what} must be a literal whole number, found {v:?}"))
}

/// Every (action, resource) an inline policy of `role` allows; conditional statements
/// (`!If [cond, statement, !Ref AWS::NoValue]`) count as allowed.
fn grants(t: &Value, role: &str) -> BTreeSet<(String, String)> {
    let mut out = BTreeSet::new();
    let policies = prop(resource(t, role), &["Policies"]).and_then(Value::as_sequence);
    for policy in policies.into_iter().flatten() {
        let statements = policy
            .get("PolicyDocument")
            .and_then(|d| d.get("Statement"))
            .and_then(Value::as_sequence);
        for statement in statements.into_iter().flatten() {
            let statement = match statement {
                Value::Tagged(t) if t.tag == "If" => &t.value.as_sequence().expect("!If list")[1],
                s => s,
            };
            assert_eq!(
                statement.get("Effect").and_then(Value::as_str),
                Some("Allow")
            );
            let list = |key: &str| -> Vec<String> {
                match statement.get(key) {
                    Some(Value::Sequence(items)) => items.iter().map(text).collect(),
                    Some(v) => vec![text(v)],
                    None => panic!("{role}: a statement without {key}"),
                }
            };
            for action in list("Action") {
                for res in list("Resource") {
                    out.insert((action.clone(), res));
                }
            }
        }
    }
    out
}

fn actions(t: &Value, role: &str) -> BTreeSet<String> {
    grants(t, role).into_iter().map(|(a, _)| a).collect()
}

fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| (*s).to_owned()).collect()
}

fn k8s_docs() -> Vec<Value> {
    serde_yaml_ng::Deserializer::from_str(K8S_WORKER)
        .map(|d| serde::Deserialize::deserialize(d).expect("deploy/k8s/base/worker.yaml is YAML"))
        .collect()
}

fn k8s_kind(docs: &[Value], kind: &str) -> Value {
    docs.iter()
        .find(|d| d.get("kind").and_then(Value::as_str) == Some(kind))
        .cloned()
        .unwrap_or_else(|| panic!("deploy/k8s/base/worker.yaml has no {kind}"))
}

fn k8s_worker_env(docs: &[Value]) -> BTreeMap<String, String> {
    let deployment = k8s_kind(docs, "Deployment");
    let containers = deployment["spec"]["template"]["spec"]["containers"]
        .as_sequence()
        .expect("containers");
    containers[0]["env"]
        .as_sequence()
        .into_iter()
        .flatten()
        .filter_map(|e| Some((text(e.get("name")?), text(e.get("value")?))))
        .collect()
}

#[test]
fn the_worker_scales_on_visible_messages_divided_by_running_tasks() {
    let t = template();
    let policy = resource(&t, "WorkerBacklogScaling");
    assert_eq!(
        prop(policy, &["PolicyType"]).and_then(Value::as_str),
        Some("TargetTrackingScaling")
    );
    let spec = prop(
        policy,
        &[
            "TargetTrackingScalingPolicyConfiguration",
            "CustomizedMetricSpecification",
        ],
    )
    .expect("a customized metric");
    let metrics = spec["Metrics"].as_sequence().expect("metric math queries");
    let by_id: BTreeMap<String, &Value> = metrics.iter().map(|m| (text(&m["Id"]), m)).collect();
    let metric = |id: &str| by_id.get(id).unwrap_or_else(|| panic!("no metric `{id}`"));
    let visible = &metric("visible")["MetricStat"]["Metric"];
    assert_eq!(text(&visible["Namespace"]), "AWS/SQS");
    assert_eq!(
        text(&visible["MetricName"]),
        "ApproximateNumberOfMessagesVisible"
    );
    let tasks = &metric("tasks")["MetricStat"]["Metric"];
    assert_eq!(text(&tasks["Namespace"]), "ECS/ContainerInsights");
    assert_eq!(text(&tasks["MetricName"]), "RunningTaskCount");
    let dims: Vec<String> = tasks["Dimensions"]
        .as_sequence()
        .expect("dimensions")
        .iter()
        .map(|d| text(&d["Value"]))
        .collect();
    assert!(dims.contains(&"Cluster".to_owned()), "{dims:?}");
    assert_eq!(
        text(&metric("backlogPerTask")["Expression"]),
        "visible / tasks"
    );
    let returned: Vec<String> = metrics
        .iter()
        .filter(|m| m["ReturnData"].as_bool() == Some(true))
        .map(|m| text(&m["Id"]))
        .collect();
    assert_eq!(
        returned,
        ["backlogPerTask"],
        "target tracking follows the ratio only"
    );
    // RunningTaskCount is published only with Container Insights on.
    let settings = prop(resource(&t, "Cluster"), &["ClusterSettings"]).expect("cluster settings");
    assert!(
        settings
            .as_sequence()
            .into_iter()
            .flatten()
            .any(|s| text(&s["Name"]) == "containerInsights" && text(&s["Value"]) == "enabled"),
        "Container Insights must be enabled"
    );
    // The divisor is never zero.
    assert!(
        int(
            prop(resource(&t, "WorkerScalableTarget"), &["MinCapacity"]),
            "MinCapacity"
        ) >= 1
    );
}

#[test]
fn ecs_backlog_per_task_and_keda_queue_length_are_the_same_documented_target() {
    let t = template();
    let target = prop(
        resource(&t, "WorkerBacklogScaling"),
        &["TargetTrackingScalingPolicyConfiguration", "TargetValue"],
    )
    .expect("a target value");
    assert_eq!(text(target), "WorkerBacklogPerTaskTarget");
    let ecs_target = int(
        t["Parameters"]["WorkerBacklogPerTaskTarget"].get("Default"),
        "WorkerBacklogPerTaskTarget's default",
    );
    let docs = k8s_docs();
    let scaled = k8s_kind(&docs, "ScaledObject");
    let trigger = &scaled["spec"]["triggers"][0];
    assert_eq!(text(&trigger["type"]), "aws-sqs-queue");
    let queue_length: i64 = text(&trigger["metadata"]["queueLength"])
        .parse()
        .expect("queueLength is a whole number");
    assert_eq!(
        ecs_target, queue_length,
        "one figure, derived once in docs/beyond-lambda.md"
    );
    let doc = include_str!("../../../docs/beyond-lambda.md");
    let written = format!("{:},{:03}", queue_length / 1000, queue_length % 1000);
    assert!(
        doc.contains(&written) || doc.contains(&queue_length.to_string()),
        "docs/beyond-lambda.md derives {queue_length}"
    );
}

#[test]
fn ecs_and_keda_cap_the_worker_at_the_same_documented_replica_count() {
    let t = template();
    let max_tasks = int(
        t["Parameters"]["WorkerMaxTasks"].get("Default"),
        "WorkerMaxTasks's default",
    );
    assert_eq!(
        text(prop(resource(&t, "WorkerScalableTarget"), &["MaxCapacity"]).expect("a MaxCapacity")),
        "WorkerMaxTasks"
    );
    let docs = k8s_docs();
    let scaled = k8s_kind(&docs, "ScaledObject");
    let max_replicas = int(scaled["spec"].get("maxReplicaCount"), "maxReplicaCount");
    assert_eq!(
        max_tasks, max_replicas,
        "one figure, derived once in docs/beyond-lambda.md"
    );
    let doc = include_str!("../../../docs/beyond-lambda.md");
    assert!(
        doc.contains(&format!("= {max_replicas}.**")),
        "docs/beyond-lambda.md derives the most replicas, {max_replicas}"
    );
}

/// The scaling targets are derived from the poller measured at its defaults, so the manifests
/// run it at those defaults: an override would make the measurement describe another worker.
#[test]
fn the_manifests_run_the_poller_at_its_measured_defaults() {
    let t = template();
    let ecs = environment(container(&t, "WorkerTaskDefinition"));
    let k8s = k8s_worker_env(&k8s_docs());
    for (what, env) in [("infra/ecs.yaml", &ecs), ("deploy/k8s", &k8s)] {
        let overrides: Vec<&String> = env.keys().filter(|k| k.starts_with("POLLER_")).collect();
        assert!(
            overrides.is_empty(),
            "{what} overrides the poller's measured defaults: {overrides:?}"
        );
    }
}

#[test]
fn the_worker_shutdown_grace_is_shorter_than_the_orchestrators_stop_timeouts() {
    let t = template();
    let worker = container(&t, "WorkerTaskDefinition");
    let grace: i64 = environment(worker)["SHUTDOWN_GRACE_SECONDS"]
        .parse()
        .expect("a whole number of seconds");
    let stop = int(worker.get("StopTimeout"), "the worker's StopTimeout");
    assert!(
        grace < stop,
        "grace {grace} s must end before ECS's SIGKILL at {stop} s"
    );

    let docs = k8s_docs();
    let k8s_grace: i64 = k8s_worker_env(&docs)["SHUTDOWN_GRACE_SECONDS"]
        .parse()
        .expect("a whole number of seconds");
    let deployment = k8s_kind(&docs, "Deployment");
    let termination = int(
        deployment["spec"]["template"]["spec"].get("terminationGracePeriodSeconds"),
        "terminationGracePeriodSeconds",
    );
    assert!(
        k8s_grace < termination,
        "grace {k8s_grace} s must end before the kubelet's SIGKILL at {termination} s"
    );
}

#[test]
fn both_containers_run_as_the_nonroot_user_on_a_read_only_root_and_log_json() {
    let t = template();
    for (task, group) in [
        ("IngestTaskDefinition", "IngestLogGroup"),
        ("WorkerTaskDefinition", "WorkerLogGroup"),
    ] {
        let c = container(&t, task);
        assert_eq!(text(&c["User"]), "65532:65532", "{task}");
        assert_eq!(c["ReadonlyRootFilesystem"].as_bool(), Some(true), "{task}");
        assert_eq!(c["Privileged"].as_bool(), Some(false), "{task}");
        assert_eq!(
            environment(c).get("LOG_FORMAT").map(String::as_str),
            Some("json"),
            "{task}"
        );
        let log = &c["LogConfiguration"];
        assert_eq!(text(&log["LogDriver"]), "awslogs", "{task}");
        assert_eq!(text(&log["Options"]["awslogs-group"]), group, "{task}");
        assert!(
            prop(resource(&t, group), &["RetentionInDays"]).is_some(),
            "{group} keeps logs for a bounded time"
        );
        assert_eq!(
            prop(resource(&t, task), &["RequiresCompatibilities"])
                .and_then(Value::as_sequence)
                .map(|s| s.iter().map(text).collect::<Vec<_>>()),
            Some(vec!["FARGATE".to_owned()])
        );
    }
}

#[test]
fn task_roles_allow_only_what_each_service_calls() {
    let t = template();
    assert_eq!(
        actions(&t, "IngestTaskRole"),
        set(&[
            "sqs:SendMessage",
            "dynamodb:GetItem",
            "dynamodb:BatchGetItem",
            "dynamodb:Query",
            "kms:Decrypt",
            "kms:GenerateDataKey"
        ])
    );
    assert_eq!(
        actions(&t, "WorkerTaskRole"),
        set(&[
            "sqs:ReceiveMessage",
            "sqs:DeleteMessage",
            "sqs:GetQueueAttributes",
            "sqs:ChangeMessageVisibility",
            "sqs:SendMessage",
            "dynamodb:BatchWriteItem",
            "kms:Decrypt",
            "kms:GenerateDataKey",
        ])
    );
    // The worker sends to the DLQ only, never to the queue it consumes.
    let worker = grants(&t, "WorkerTaskRole");
    assert!(worker.contains(&("sqs:SendMessage".into(), "DeadLetterQueueArn".into())));
    assert!(!worker.contains(&("sqs:SendMessage".into(), "QueueArn".into())));
    for role in ["IngestTaskRole", "WorkerTaskRole", "ExecutionRole"] {
        for (action, res) in grants(&t, role) {
            assert!(!action.contains('*'), "{role}: wildcard action {action}");
            // ecr:GetAuthorizationToken has no resource-level permissions.
            if res == "*" {
                assert_eq!(action, "ecr:GetAuthorizationToken", "{role}: {action} on *");
            }
        }
    }
}

#[test]
fn ingest_is_served_over_https_by_an_alb_that_checks_health_and_the_worker_by_nothing() {
    let t = template();
    let listener = resource(&t, "HttpsListener");
    assert_eq!(
        prop(listener, &["Protocol"]).map(text).as_deref(),
        Some("HTTPS")
    );
    assert_eq!(int(prop(listener, &["Port"]), "listener port"), 443);
    let group = resource(&t, "IngestTargetGroup");
    assert_eq!(
        prop(group, &["HealthCheckPath"]).map(text).as_deref(),
        Some("/health")
    );
    let ingest_port = int(
        container(&t, "IngestTaskDefinition")["PortMappings"][0].get("ContainerPort"),
        "ingest's container port",
    );
    assert_eq!(
        int(prop(group, &["Port"]), "target group port"),
        ingest_port
    );
    assert_eq!(
        environment(container(&t, "IngestTaskDefinition")).get("PORT"),
        Some(&ingest_port.to_string())
    );
    let lbs =
        prop(resource(&t, "IngestService"), &["LoadBalancers"]).expect("ingest behind the ALB");
    assert_eq!(text(&lbs[0]["TargetGroupArn"]), "IngestTargetGroup");
    assert!(prop(resource(&t, "WorkerService"), &["LoadBalancers"]).is_none());
    for service in ["IngestService", "WorkerService"] {
        let breaker = prop(
            resource(&t, service),
            &["DeploymentConfiguration", "DeploymentCircuitBreaker"],
        )
        .unwrap_or_else(|| panic!("{service}: no deployment circuit breaker"));
        assert_eq!(
            breaker["Rollback"].as_bool(),
            Some(true),
            "{service} rolls back failed deployments"
        );
        assert_eq!(
            prop(
                resource(&t, service),
                &[
                    "NetworkConfiguration",
                    "AwsvpcConfiguration",
                    "AssignPublicIp"
                ]
            )
            .map(text)
            .as_deref(),
            Some("DISABLED"),
            "{service} tasks have no public address"
        );
    }
}

#[test]
fn only_the_alb_reaches_ingest_and_nothing_reaches_the_worker() {
    let t = template();
    let ingress_of = |group: &str| -> Vec<Value> {
        let inline = prop(resource(&t, group), &["SecurityGroupIngress"])
            .and_then(Value::as_sequence)
            .cloned()
            .unwrap_or_default();
        let standalone = t["Resources"]
            .as_mapping()
            .into_iter()
            .flatten()
            .filter(|(_, r)| text(&r["Type"]) == "AWS::EC2::SecurityGroupIngress")
            .filter(|(_, r)| prop(r, &["GroupId"]).map(text).as_deref() == Some(group))
            .filter_map(|(_, r)| r.get("Properties").cloned());
        inline.into_iter().chain(standalone).collect()
    };
    assert!(
        ingress_of("WorkerSecurityGroup").is_empty(),
        "the worker accepts no connections"
    );
    let ingest = ingress_of("IngestSecurityGroup");
    assert_eq!(ingest.len(), 1, "{ingest:?}");
    assert_eq!(
        text(&ingest[0]["SourceSecurityGroupId"]),
        "LoadBalancerSecurityGroup"
    );
    assert!(
        ingest[0].get("CidrIp").is_none(),
        "no address range reaches ingest directly"
    );
    // The ALB may connect to the ingest tasks and nowhere else.
    let egress = prop(
        resource(&t, "LoadBalancerSecurityGroup"),
        &["SecurityGroupEgress"],
    )
    .and_then(Value::as_sequence)
    .expect("inline egress, replacing the default allow-all rule");
    assert_eq!(egress.len(), 1);
    assert_eq!(
        text(&egress[0]["DestinationSecurityGroupId"]),
        "IngestSecurityGroup"
    );
}
