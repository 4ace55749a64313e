//! API Gateway events (REST v1, HTTP API v2) read into an `http::Request` without a panic.
//!
//! lambda_http converts events with `unwrap`/`expect` on what clients control: a `Host` that
//! is no URI authority, a path or query `http::Uri` refuses, a body marked base64 that is not.
//! Under `panic = "abort"` each of those killed the execution environment. Here every field
//! is read fallibly and a bad one is a 400 naming it, answered in the event's own shape.

use base64::Engine;
use contract::FieldError;
use http::header::{HeaderName, HeaderValue, COOKIE, HOST};
use http::uri::{Authority, PathAndQuery};
use http::{HeaderMap, Method, Uri};
use lambda_http::aws_lambda_events::apigw::{
    ApiGatewayProxyRequestContext, ApiGatewayV2httpRequestContext,
};
use lambda_http::request::RequestContext;
use lambda_http::{Body, RequestExt};
use serde_json::{Map, Value};

use crate::api::error::ApiError;

/// Which API Gateway sent the event: it decides the shape of the answer too.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    RestV1,
    HttpV2,
}

/// Why an event did not become a request.
#[derive(Debug)]
pub enum EventError {
    /// Not an API Gateway event at all: no answer shape fits, so the invocation fails.
    NotApiGateway,
    /// An API Gateway event with bad fields: a 400 in that gateway's shape.
    Bad(Origin, ApiError),
}

/// Longest field name echoed back in a problem (header names are chosen by clients).
const MAX_ECHOED_NAME: usize = 64;

/// Reads the event. Every problem found is named at once, as the API does for bodies.
pub fn into_request(event: Value) -> Result<(Origin, lambda_http::Request), EventError> {
    let Value::Object(mut event) = event else {
        return Err(EventError::NotApiGateway);
    };
    let origin = origin_of(&event).ok_or(EventError::NotApiGateway)?;
    let mut errors = Vec::new();
    let request = read(origin, &mut event, &mut errors);
    match request {
        Some(request) if errors.is_empty() => Ok((origin, request)),
        _ => {
            if errors.is_empty() {
                errors.push(FieldError::new("event", "could not be read"));
            }
            let detail = errors
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("; ");
            Err(EventError::Bad(
                origin,
                ApiError::BadRequest { detail, errors },
            ))
        }
    }
}

/// HTTP API (v2) events carry `requestContext.http`; REST (v1) events a top-level
/// `httpMethod`. lambda_http tells them apart by which type deserialises; these are the
/// fields that differ.
fn origin_of(event: &Map<String, Value>) -> Option<Origin> {
    let context = event.get("requestContext")?.as_object()?;
    if context.get("http").is_some_and(Value::is_object) {
        Some(Origin::HttpV2)
    } else if event.contains_key("httpMethod") {
        Some(Origin::RestV1)
    } else {
        None
    }
}

fn read(
    origin: Origin,
    event: &mut Map<String, Value>,
    errors: &mut Vec<FieldError>,
) -> Option<lambda_http::Request> {
    let (method_field, path_field) = match origin {
        Origin::RestV1 => ("httpMethod", "path"),
        Origin::HttpV2 => ("requestContext.http.method", "rawPath"),
    };
    let method_value = match origin {
        Origin::RestV1 => event.get("httpMethod"),
        Origin::HttpV2 => event
            .get("requestContext")
            .and_then(|c| c.get("http"))
            .and_then(|h| h.get("method")),
    };
    let method = method(method_value, method_field, errors);

    let mut headers = HeaderMap::new();
    if origin == Origin::RestV1 {
        // lambda_http's order: the multi-value map first, single values replacing.
        read_headers(event.get("multiValueHeaders"), &mut headers, errors);
    }
    read_headers(event.get("headers"), &mut headers, errors);
    if origin == Origin::HttpV2 {
        cookies(event.get("cookies"), &mut headers, errors);
    }

    let authority = authority(&headers, event, errors);
    let raw_path = path(event.get(path_field), path_field, errors);
    let query = match origin {
        Origin::RestV1 => rest_query(event, errors),
        Origin::HttpV2 => raw_query(event.get("rawQueryString"), errors),
    };
    let body = body(event, errors);
    let context = context(origin, event.remove("requestContext"), errors);

    let (method, raw_path, query, body, context) = (method?, raw_path?, query?, body?, context?);
    let path_and_query = match query.as_deref() {
        Some(q) if !q.is_empty() => format!("{raw_path}?{q}"),
        _ => raw_path.clone(),
    };
    let Ok(path_and_query) = path_and_query.parse::<PathAndQuery>() else {
        errors.push(FieldError::new(path_field, "is not a valid request path"));
        return None;
    };
    let mut uri = Uri::builder().path_and_query(path_and_query);
    if let Some(authority) = authority {
        // API Gateway serves HTTPS only; X-Forwarded-Proto adds nothing the router reads.
        uri = uri.scheme("https").authority(authority);
    }
    let uri = match uri.build() {
        Ok(uri) => uri,
        Err(_) => {
            errors.push(FieldError::new(path_field, "is not a valid request path"));
            return None;
        }
    };
    let mut request = match http::Request::builder().method(method).uri(uri).body(body) {
        Ok(request) => request,
        Err(_) => {
            errors.push(FieldError::new("event", "could not be read as a request"));
            return None;
        }
    };
    *request.headers_mut() = headers;
    let extensions = std::mem::take(request.extensions_mut())
        .with_raw_http_path(raw_path)
        .with_request_context(context);
    *request.extensions_mut() = extensions;
    Some(request)
}

fn method(value: Option<&Value>, field: &str, errors: &mut Vec<FieldError>) -> Option<Method> {
    let parsed = value
        .and_then(Value::as_str)
        .and_then(|m| Method::from_bytes(m.as_bytes()).ok());
    if parsed.is_none() {
        errors.push(FieldError::new(field, "must be an HTTP method"));
    }
    parsed
}

/// A header map from `{name: value}` or `{name: [values]}`; `null` is empty. Each bad name or
/// value is named (the name cut short: clients choose it).
fn read_headers(value: Option<&Value>, headers: &mut HeaderMap, errors: &mut Vec<FieldError>) {
    let map = match value {
        None | Some(Value::Null) => return,
        Some(Value::Object(map)) => map,
        Some(_) => {
            errors.push(FieldError::new("headers", "must be an object"));
            return;
        }
    };
    for (name, values) in map {
        let Ok(header) = HeaderName::from_bytes(name.as_bytes()) else {
            errors.push(FieldError::new(echoed(name), "is not a valid header name"));
            continue;
        };
        let values: Vec<&Value> = match values {
            Value::Array(items) => items.iter().collect(),
            Value::Null => Vec::new(),
            one => vec![one],
        };
        let mut first = true;
        for value in values {
            let parsed = value.as_str().and_then(|v| HeaderValue::from_str(v).ok());
            let Some(parsed) = parsed else {
                errors.push(FieldError::new(
                    echoed(name),
                    "must be a header value (text without control characters)",
                ));
                continue;
            };
            if first {
                headers.insert(header.clone(), parsed);
                first = false;
            } else {
                headers.append(header.clone(), parsed);
            }
        }
    }
}

/// HTTP API events carry cookies apart from the headers; they become one `Cookie` header.
fn cookies(value: Option<&Value>, headers: &mut HeaderMap, errors: &mut Vec<FieldError>) {
    let items = match value {
        None | Some(Value::Null) => return,
        Some(Value::Array(items)) => items,
        Some(_) => {
            errors.push(FieldError::new("cookies", "must be a list of cookies"));
            return;
        }
    };
    let cookies: Option<Vec<&str>> = items.iter().map(Value::as_str).collect();
    let joined = cookies.map(|c| c.join("; "));
    match joined.as_deref().map(HeaderValue::from_str) {
        Some(Ok(value)) if !items.is_empty() => {
            headers.insert(COOKIE, value);
        }
        Some(Ok(_)) => {}
        _ => errors.push(FieldError::new(
            "cookies",
            "must be text without control characters",
        )),
    }
}

/// The URI's authority: the `Host` header, else the gateway's domain name, else none (the
/// router reads only the path).
fn authority(
    headers: &HeaderMap,
    event: &Map<String, Value>,
    errors: &mut Vec<FieldError>,
) -> Option<Authority> {
    let (field, host) = match headers.get(HOST) {
        Some(host) => ("Host", host.to_str().ok()),
        None => {
            let domain = event
                .get("requestContext")
                .and_then(|c| c.get("domainName"));
            match domain {
                None | Some(Value::Null) => return None,
                Some(domain) => ("requestContext.domainName", domain.as_str()),
            }
        }
    };
    let parsed = host
        .and_then(|h| h.parse::<Authority>().ok())
        .filter(port_in_range);
    if parsed.is_none() {
        errors.push(FieldError::new(
            field,
            "must be a host name or address, with an optional port",
        ));
    }
    parsed
}

/// http takes any digits as a port; a port past 65535 is no address (the URL parser
/// lambda_http used panicked on it).
fn port_in_range(authority: &Authority) -> bool {
    authority.as_str().ends_with(authority.host()) || authority.port_u16().is_some()
}

/// The path as sent, with what a URI may not hold percent-encoded (REST events carry it
/// decoded: a space in a user id must reach the router as `%20` and be refused there).
fn path(value: Option<&Value>, field: &str, errors: &mut Vec<FieldError>) -> Option<String> {
    let raw = match value {
        None | Some(Value::Null) => return Some("/".to_owned()),
        Some(Value::String(s)) if s.is_empty() => return Some("/".to_owned()),
        Some(Value::String(s)) => s,
        Some(_) => {
            errors.push(FieldError::new(field, "must be a string"));
            return None;
        }
    };
    if !raw.starts_with('/') {
        errors.push(FieldError::new(field, "must start with /"));
        return None;
    }
    Some(encode(raw, false))
}

/// HTTP API events: the query string as the client sent it.
fn raw_query(value: Option<&Value>, errors: &mut Vec<FieldError>) -> Option<Option<String>> {
    match value {
        None | Some(Value::Null) => Some(None),
        Some(Value::String(s)) => Some(Some(encode(s, true))),
        Some(_) => {
            errors.push(FieldError::new("rawQueryString", "must be a string"));
            None
        }
    }
}

/// REST events: the decoded parameters, encoded again (the multi-value map when present, as
/// it holds every value of the single-value one).
fn rest_query(event: &Map<String, Value>, errors: &mut Vec<FieldError>) -> Option<Option<String>> {
    let mut pairs = Vec::new();
    let multi = event.get("multiValueQueryStringParameters");
    let single = event.get("queryStringParameters");
    let (field, map) = match (multi, single) {
        (Some(Value::Object(m)), _) if !m.is_empty() => ("multiValueQueryStringParameters", m),
        (_, Some(Value::Object(m))) => ("queryStringParameters", m),
        (Some(v), _) if !v.is_null() && !v.is_object() => {
            errors.push(FieldError::new(
                "multiValueQueryStringParameters",
                "must be an object",
            ));
            return None;
        }
        (_, Some(v)) if !v.is_null() => {
            errors.push(FieldError::new(
                "queryStringParameters",
                "must be an object",
            ));
            return None;
        }
        _ => return Some(None),
    };
    for (name, values) in map {
        let values: Vec<&Value> = match values {
            Value::Array(items) => items.iter().collect(),
            one => vec![one],
        };
        for value in values {
            let Some(value) = value.as_str() else {
                errors.push(FieldError::new(field, "values must be strings"));
                return None;
            };
            pairs.push(format!("{}={}", form_encode(name), form_encode(value)));
        }
    }
    Some(Some(pairs.join("&")))
}

/// The body, base64-decoded when the event says so.
fn body(event: &Map<String, Value>, errors: &mut Vec<FieldError>) -> Option<Body> {
    let encoded = match event.get("isBase64Encoded") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => {
            errors.push(FieldError::new("isBase64Encoded", "must be true or false"));
            return None;
        }
    };
    match event.get("body") {
        None | Some(Value::Null) => Some(Body::Empty),
        Some(Value::String(text)) if encoded => {
            match base64::engine::general_purpose::STANDARD.decode(text) {
                Ok(bytes) => Some(Body::Binary(bytes)),
                Err(_) => {
                    errors.push(FieldError::new(
                        "body",
                        "is marked base64-encoded but is not valid base64",
                    ));
                    None
                }
            }
        }
        Some(Value::String(text)) => Some(Body::Text(text.clone())),
        Some(_) => {
            errors.push(FieldError::new("body", "must be a string"));
            None
        }
    }
}

/// The gateway's request context, typed: the router reads the stage, request id and JWT
/// authorizer claims from it.
fn context(
    origin: Origin,
    value: Option<Value>,
    errors: &mut Vec<FieldError>,
) -> Option<RequestContext> {
    let value = value.unwrap_or(Value::Null);
    let context = match origin {
        Origin::RestV1 => serde_json::from_value::<ApiGatewayProxyRequestContext>(value)
            .map(RequestContext::ApiGatewayV1),
        Origin::HttpV2 => serde_json::from_value::<ApiGatewayV2httpRequestContext>(value)
            .map(RequestContext::ApiGatewayV2),
    };
    match context {
        Ok(context) => Some(context),
        Err(e) => {
            errors.push(FieldError::new(
                "requestContext",
                format!("is not an API Gateway request context: {e}"),
            ));
            None
        }
    }
}

/// Percent-encodes every byte a URI path (or, with `query`, a query) may not hold as it is;
/// `%` is kept, so an already encoded path is unchanged.
fn encode(raw: &str, query: bool) -> String {
    let mut out = String::with_capacity(raw.len());
    for &b in raw.as_bytes() {
        let keep = b.is_ascii_alphanumeric()
            || b"-._~!$&'()*+,;=:@/%".contains(&b)
            || (query && b == b'?');
        push_byte(&mut out, b, keep);
    }
    out
}

/// `application/x-www-form-urlencoded` for one name or value.
fn form_encode(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    for &b in raw.as_bytes() {
        push_byte(
            &mut out,
            b,
            b.is_ascii_alphanumeric() || b"-._~".contains(&b),
        );
    }
    out
}

fn push_byte(out: &mut String, b: u8, keep: bool) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    if keep {
        out.push(char::from(b));
    } else {
        out.push('%');
        out.push(char::from(HEX[usize::from(b >> 4)]));
        out.push(char::from(HEX[usize::from(b & 0x0f)]));
    }
}

/// A client-chosen name as a problem's field: printable and bounded.
fn echoed(name: &str) -> String {
    name.chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .take(MAX_ECHOED_NAME)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const MALFORMED: &str =
        include_str!("../../../tests/tests/fixtures/apigw_malformed_events.json");
    const REST_V1: &str =
        include_str!("../../../tests/tests/fixtures/apigw_v1_rest_post_score.json");
    const HTTP_V2: &str =
        include_str!("../../../tests/tests/fixtures/apigw_v2_http_post_score.json");

    fn v2_event() -> Value {
        let text = HTTP_V2
            .replace("__STAGE__", "$default")
            .replace("__RAW_PATH__", "/v1/users/alice/credit-scores")
            .replace("__BODY__", "{}");
        serde_json::from_str(&text).expect("the fixture is JSON")
    }

    fn bad_fields(event: Value) -> Vec<String> {
        match into_request(event) {
            Err(EventError::Bad(_, ApiError::BadRequest { errors, .. })) => {
                errors.into_iter().map(|e| e.field).collect()
            }
            Err(other) => panic!("expected a 400, got {other:?}"),
            Ok((_, request)) => panic!("expected a 400, got a request for {}", request.uri()),
        }
    }

    #[test]
    fn every_malformed_fixture_is_a_400_naming_its_field_or_a_request() {
        let cases: Vec<Value> = serde_json::from_str(MALFORMED).expect("the fixture is JSON");
        assert!(cases.len() >= 15);
        for case in cases {
            let name = &case["case"];
            let result = into_request(case["event"].clone());
            match case["field"].as_str() {
                Some(field) => match result {
                    Err(EventError::Bad(_, ApiError::BadRequest { errors, .. })) => {
                        assert!(
                            errors.iter().any(|e| e.field == field),
                            "{name}: {errors:?} names no {field}"
                        );
                    }
                    other => panic!("{name}: expected a 400 naming {field}, got {other:?}"),
                },
                None => assert!(result.is_ok(), "{name}: {result:?}"),
            }
        }
    }

    #[test]
    fn the_documented_events_become_requests_for_the_path_the_client_used() {
        let rest: Value = serde_json::from_str(REST_V1).expect("the fixture is JSON");
        let (origin, request) = into_request(rest).expect("a REST event reads");
        assert_eq!(origin, Origin::RestV1);
        assert_eq!(request.method(), Method::POST);
        assert_eq!(
            request.uri().to_string(),
            "https://1234567890.execute-api.us-east-1.amazonaws.com/v1/users/alice/credit-scores"
        );
        assert_eq!(request.raw_http_path(), "/v1/users/alice/credit-scores");
        assert!(matches!(
            request.request_context_ref(),
            Some(RequestContext::ApiGatewayV1(_))
        ));
        assert_eq!(request.headers()["idempotency-key"], "__REPORT_ID__");

        let (origin, request) = into_request(v2_event()).expect("an HTTP API event reads");
        assert_eq!(origin, Origin::HttpV2);
        assert!(matches!(request.body(), Body::Text(t) if t == "{}"));
        assert!(matches!(
            request.request_context_ref(),
            Some(RequestContext::ApiGatewayV2(_))
        ));
    }

    #[test]
    fn what_a_uri_cannot_hold_is_percent_encoded_not_refused() {
        let mut event = v2_event();
        event["rawPath"] = json!("/v1/users/al ice\"é/credit-scores");
        event["rawQueryString"] = json!("bureau=ex perian&x=\"#\"");
        let (_, request) = into_request(event).expect("reads");
        assert_eq!(
            request.uri().path_and_query().map(|pq| pq.as_str()),
            Some("/v1/users/al%20ice%22%C3%A9/credit-scores?bureau=ex%20perian&x=%22%23%22")
        );
    }

    #[test]
    fn rest_query_parameters_are_encoded_again_from_their_decoded_values() {
        let mut event: Value = serde_json::from_str(REST_V1).expect("JSON");
        event["multiValueQueryStringParameters"] = json!({"bureau": ["a b", "c&d"]});
        let (_, request) = into_request(event).expect("reads");
        assert_eq!(request.uri().query(), Some("bureau=a%20b&bureau=c%26d"));
    }

    #[test]
    fn a_base64_body_is_decoded() {
        let mut event = v2_event();
        event["isBase64Encoded"] = json!(true);
        event["body"] = json!("e30=");
        let (_, request) = into_request(event).expect("reads");
        assert!(matches!(request.body(), Body::Binary(b) if b == b"{}"));
    }

    #[test]
    fn every_bad_field_is_named_at_once() {
        let mut event = v2_event();
        event["headers"]["host"] = json!("a b");
        event["rawPath"] = json!(7);
        event["isBase64Encoded"] = json!(true);
        event["body"] = json!("!!");
        assert_eq!(bad_fields(event), ["Host", "rawPath", "body"]);
    }

    #[test]
    fn a_path_longer_than_a_uri_may_be_is_refused_naming_it() {
        let mut event = v2_event();
        event["rawPath"] = json!(format!("/{}", "a".repeat(70_000)));
        assert_eq!(bad_fields(event), ["rawPath"]);
    }

    #[test]
    fn a_client_chosen_header_name_is_echoed_printable_and_bounded() {
        let mut event = v2_event();
        let name = format!("bad\u{1}{}", "x".repeat(500));
        event["headers"][name] = json!("v");
        let fields = bad_fields(event);
        assert_eq!(fields.len(), 1);
        assert!(fields[0].starts_with("bad?x"));
        assert_eq!(fields[0].chars().count(), MAX_ECHOED_NAME);
    }

    #[test]
    fn events_from_no_api_gateway_fail_the_invocation_instead() {
        let sqs = json!({"Records": [{"messageId": "m-1", "body": "{}"}]});
        for event in [sqs, json!([]), json!("text"), json!({"httpMethod": "GET"})] {
            assert!(
                matches!(into_request(event.clone()), Err(EventError::NotApiGateway)),
                "{event}"
            );
        }
    }

    #[test]
    fn a_request_context_of_the_wrong_shape_is_named() {
        let mut event = v2_event();
        event["requestContext"]["stage"] = json!(5);
        assert_eq!(bad_fields(event), ["requestContext"]);
    }
}
