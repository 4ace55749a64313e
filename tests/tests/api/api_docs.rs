//! The OpenAPI document and Swagger UI, as a running ingest serves them.

use std::collections::{BTreeSet, HashSet};

use http::Method;
use pipeline_tests::{spawn_app, TestApp};
use reqwest::StatusCode;
use serde_json::Value;

async fn served_document(app: &TestApp) -> (String, Value) {
    let response = app
        .http
        .get(app.url("/docs/swagger.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert!(response.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("application/json"));
    let text = response.text().await.unwrap();
    let json = serde_json::from_str(&text).expect("the document is JSON");
    (text, json)
}

/// (method, path) of every operation the document describes. The router registers each of
/// them together with its document entry (`ingest::api::routes::documented_router`), so these are
/// also exactly the routes it serves.
fn documented_routes() -> Vec<(Method, String)> {
    let doc = ingest::api::docs::openapi_json();
    let mut routes = Vec::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        let keys = item.as_object().expect("a path item").keys();
        for method in keys.filter(|k| METHODS.contains(&k.as_str())) {
            let method =
                Method::from_bytes(method.to_ascii_uppercase().as_bytes()).expect("an HTTP method");
            routes.push((method, path.clone()));
        }
    }
    routes
}

#[test]
fn the_document_lists_each_operation_once_including_latest() {
    let routes = documented_routes();
    let unique: HashSet<_> = routes.iter().collect();
    assert_eq!(unique.len(), routes.len());
    assert!(routes.contains(&(
        Method::GET,
        "/v1/users/{userId}/credit-scores/latest".into()
    )));
}

/// Each documented route answers from its own handler: not the 404 fallback, not a 405.
#[tokio::test]
async fn every_documented_route_is_served() {
    let app = spawn_app().await;
    // A service token may use every route, the batch endpoint included.
    let token = app.service_token();
    for (method, path) in documented_routes() {
        let concrete = path
            .replace("{userId}", "alice")
            .replace("{reportId}", "some-report");
        let mut request = app
            .http
            .request(method.clone(), app.url(&concrete))
            .bearer_auth(&token);
        if method == Method::POST && path == "/v1/credit-scores/batch" {
            let mut entry = pipeline_tests::score_body("experian", 700);
            entry["userId"] = "alice".into();
            request = request.json(&serde_json::json!({ "items": [entry] }));
        } else if method == Method::POST {
            request = request.json(&pipeline_tests::score_body("experian", 700));
        }
        let response = request.send().await.unwrap();
        let status = response.status();
        let body = response.text().await.unwrap_or_default();
        assert_ne!(status, StatusCode::METHOD_NOT_ALLOWED, "{method} {path}");
        assert!(
            !body.contains("no such route"),
            "{method} {path} fell through to the fallback: {status} {body}"
        );
        assert!(
            status.is_success() || status == StatusCode::NOT_FOUND,
            "{method} {path}: {status} {body}"
        );
    }
}

/// The binary serves `ingest/openapi.json` as it is; it must be what the code generates.
#[test]
fn the_checked_in_document_is_what_the_code_generates() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../ingest/openapi.json");
    let generated = ingest::api::docs::openapi_text();
    let mut checked_in = std::fs::read_to_string(&path).unwrap_or_default();
    // Written only when it changed, so a normal run never touches the file.
    if std::env::var_os("UPDATE_OPENAPI").is_some() && checked_in != generated {
        std::fs::write(&path, &generated).unwrap();
        checked_in.clone_from(&generated);
    }
    assert!(
        checked_in == generated,
        "ingest/openapi.json is out of date with the code; regenerate it with \
         `UPDATE_OPENAPI=1 cargo test -p pipeline-tests --test api api_docs::` and commit it"
    );
}

#[tokio::test]
async fn the_served_document_is_the_one_generated_from_the_code() {
    let app = spawn_app().await;
    let (_, served) = served_document(&app).await;
    // Compared as a whole but reported briefly: the documents are large.
    assert!(
        served == ingest::api::docs::openapi_json(),
        "served document differs"
    );
    // The only edit to what utoipa generates is the spelling of link keys.
    let (_, generated) = ingest::api::routes::documented_router().split_for_parts();
    let generated = serde_json::to_value(generated).unwrap();
    assert!(
        served["components"] == generated["components"],
        "components differ"
    );
    assert_eq!(served["info"], generated["info"]);
}

/// Every `$ref` in `value`, with where it was found.
fn refs(value: &Value, at: &str, out: &mut Vec<(String, String)>) {
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                if k == "$ref" {
                    if let Some(r) = v.as_str() {
                        out.push((at.to_owned(), r.to_owned()));
                    }
                } else {
                    refs(v, &format!("{at}/{k}"), out);
                }
            }
        }
        Value::Array(items) => {
            for (i, v) in items.iter().enumerate() {
                refs(v, &format!("{at}/{i}"), out);
            }
        }
        _ => {}
    }
}

const METHODS: [&str; 8] = [
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

fn operations(doc: &Value) -> Vec<(String, String, &Value)> {
    let mut out = Vec::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for method in METHODS {
            if let Some(op) = item.get(method) {
                out.push((method.to_owned(), path.clone(), op));
            }
        }
    }
    out
}

#[tokio::test]
async fn the_document_is_valid_openapi_3_1_with_every_reference_resolved() {
    let app = spawn_app().await;
    let (text, doc) = served_document(&app).await;

    let spec = oas3::from_json(&text).expect("parses as OpenAPI 3.1");
    let version = spec.validate_version().expect("a valid OpenAPI version");
    assert_eq!((version.major, version.minor), (3, 1));
    assert!(!spec.info.title.is_empty() && !spec.info.version.is_empty());

    let mut found = Vec::new();
    refs(&doc, "#", &mut found);
    assert!(!found.is_empty());
    for (at, reference) in &found {
        let pointer = reference
            .strip_prefix('#')
            .unwrap_or_else(|| panic!("{at}: external reference {reference}"));
        assert!(
            doc.pointer(pointer).is_some(),
            "{at}: {reference} resolves to nothing"
        );
    }

    let declared_tags: HashSet<&str> = doc["tags"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|t| t["name"].as_str())
        .collect();
    let mut operation_ids = HashSet::new();
    for (method, path, op) in operations(&doc) {
        let here = format!("{method} {path}");
        let id = op["operationId"]
            .as_str()
            .unwrap_or_else(|| panic!("{here}: no operationId"));
        assert!(
            operation_ids.insert(id.to_owned()),
            "{here}: duplicate operationId {id}"
        );
        assert!(op["summary"].is_string(), "{here}: no summary");
        for tag in op["tags"]
            .as_array()
            .unwrap_or_else(|| panic!("{here}: no tags"))
        {
            assert!(
                declared_tags.contains(tag.as_str().unwrap()),
                "{here}: undeclared tag {tag}"
            );
        }

        // Path templates and path parameters match one for one.
        let templated: BTreeSet<String> = path
            .split('/')
            .filter_map(|s| s.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
            .map(str::to_owned)
            .collect();
        let params: Vec<&Value> = op["parameters"]
            .as_array()
            .map(|p| p.iter().collect())
            .unwrap_or_default();
        let in_path: BTreeSet<String> = params
            .iter()
            .filter(|p| p["in"] == "path")
            .map(|p| {
                assert_eq!(
                    p["required"], true,
                    "{here}: path parameter {p} not required"
                );
                assert!(
                    p["schema"].is_object(),
                    "{here}: parameter {p} has no schema"
                );
                p["name"].as_str().unwrap().to_owned()
            })
            .collect();
        assert_eq!(templated, in_path, "{here}: path parameters");
        for p in &params {
            assert!(
                p["description"].is_string(),
                "{here}: parameter {} undescribed",
                p["name"]
            );
        }

        let responses = op["responses"]
            .as_object()
            .unwrap_or_else(|| panic!("{here}: no responses"));
        // Links name an existing operation, with OpenAPI's own key names.
        for response in responses.values() {
            for (name, link) in response["links"].as_object().into_iter().flatten() {
                let target = link["operationId"]
                    .as_str()
                    .unwrap_or_else(|| panic!("{here}: link {name} has no operationId: {link}"));
                assert!(
                    operations(&doc)
                        .iter()
                        .any(|(_, _, o)| o["operationId"] == target),
                    "{here}: link {name} points at no operation ({target})"
                );
            }
        }
        assert!(
            responses.keys().any(|s| s.starts_with('2')),
            "{here}: no success response"
        );
        for (status, response) in responses {
            assert!(
                response["description"].is_string(),
                "{here} {status}: no description"
            );
            // Every error is a problem document.
            if status.starts_with('4') || status.starts_with('5') {
                let content = response["content"]
                    .as_object()
                    .unwrap_or_else(|| panic!("{here} {status}: no body"));
                let keys: Vec<&String> = content.keys().collect();
                assert_eq!(keys, ["application/problem+json"], "{here} {status}");
                assert_eq!(
                    content["application/problem+json"]["schema"]["$ref"],
                    "#/components/schemas/Problem",
                    "{here} {status}"
                );
            }
        }
    }
}

#[tokio::test]
async fn api_operations_need_the_bearer_scheme_and_say_how_they_fail() {
    let app = spawn_app().await;
    let (_, doc) = served_document(&app).await;
    let scheme = &doc["components"]["securitySchemes"]["bearer"];
    assert_eq!(scheme["type"], "http");
    assert_eq!(scheme["scheme"], "bearer");

    let api: Vec<_> = operations(&doc)
        .into_iter()
        .filter(|(_, path, _)| path.starts_with("/v1/"))
        .collect();
    assert_eq!(
        api.len(),
        5,
        "{:?}",
        api.iter()
            .map(|(m, p, _)| format!("{m} {p}"))
            .collect::<Vec<_>>()
    );
    for (method, path, op) in api {
        let here = format!("{method} {path}");
        assert_eq!(
            op["security"],
            serde_json::json!([{"bearer": []}]),
            "{here}"
        );
        for status in ["400", "401", "403", "503"] {
            assert!(
                op["responses"][status].is_object(),
                "{here}: {status} undocumented"
            );
        }
        assert!(
            op["responses"]["503"]["headers"]["Retry-After"].is_object(),
            "{here}: Retry-After undocumented"
        );
    }
    let list = &doc["paths"]["/v1/users/{userId}/credit-scores"]["get"];
    let names: Vec<&str> = list["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["in"] == "query")
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["bureau", "limit", "cursor"]);
    let limit = list["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "limit")
        .unwrap();
    assert_eq!(limit["schema"]["minimum"], 1);
    assert_eq!(limit["schema"]["maximum"], 100);
    assert_eq!(limit["schema"]["default"], 20);
    let by_id = &doc["paths"]["/v1/users/{userId}/credit-scores/{reportId}"]["get"];
    assert!(by_id["responses"]["404"].is_object());
    // Examples: the list's success response shows one, and so does every read body schema.
    assert!(list["responses"]["200"]["content"]["application/json"]["example"].is_object());
    for schema in [
        "ScoreReportView",
        "ScoreReportPage",
        "LatestScores",
        "Problem",
    ] {
        let properties = doc["components"]["schemas"][schema]["properties"]
            .as_object()
            .unwrap_or_else(|| panic!("{schema} has no properties"));
        assert!(
            properties.values().any(|p| p.get("example").is_some()),
            "{schema} has no examples"
        );
    }
}

fn attribute_values<'a>(html: &'a str, attribute: &str) -> Vec<&'a str> {
    let needle = format!("{attribute}=\"");
    html.match_indices(&needle)
        .filter_map(|(i, _)| {
            let rest = &html[i + needle.len()..];
            rest.find('"').map(|end| &rest[..end])
        })
        .collect()
}

#[tokio::test]
async fn swagger_ui_loads_from_assets_in_the_binary_with_no_network() {
    let app = spawn_app().await;
    let no_redirects = pipeline_tests::http_client_builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let redirect = no_redirects.get(app.url("/docs")).send().await.unwrap();
    assert!(redirect.status().is_redirection());
    assert_eq!(redirect.headers()["location"], "/docs/");

    let page = app.http.get(app.url("/docs/")).send().await.unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    assert!(page.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/html"));
    let html = page.text().await.unwrap();
    assert!(html.contains("swagger-ui"), "{html}");

    let assets: Vec<&str> = attribute_values(&html, "src")
        .into_iter()
        .chain(attribute_values(&html, "href"))
        .collect();
    assert!(
        assets.iter().any(|a| a.contains("swagger-ui-bundle.js")),
        "{assets:?}"
    );
    for asset in &assets {
        assert!(
            !asset.contains("//"),
            "the page loads {asset} from elsewhere: it would need the network"
        );
        let url = app.url(&format!("/docs/{}", asset.trim_start_matches("./")));
        let response = app.http.get(&url).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{url}");
        let bytes = response.bytes().await.unwrap();
        assert!(!bytes.is_empty(), "{url} is empty");
        if asset.contains("swagger-ui-bundle.js") {
            // The real bundle, not a loader that fetches it from a CDN.
            assert!(bytes.len() > 500_000, "{url}: only {} bytes", bytes.len());
        }
    }

    let initializer = app
        .http
        .get(app.url("/docs/swagger-initializer.js"))
        .send()
        .await
        .unwrap();
    assert_eq!(initializer.status(), StatusCode::OK);
    let script = initializer.text().await.unwrap();
    assert!(script.contains("/docs/swagger.json"), "{script}");
    assert!(!script.contains("https://"), "{script}");
}

/// Swagger UI calls `validator.swagger.io` with the document's URL unless told not to: that
/// leaks the internal URL and shows a broken badge offline.
#[tokio::test]
async fn swagger_ui_never_sends_the_document_to_the_public_validator() {
    let app = spawn_app().await;
    let html = app
        .http
        .get(app.url("/docs/"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let scripts = attribute_values(&html, "src");
    assert!(
        scripts.iter().any(|s| s.contains("swagger-initializer.js")),
        "{scripts:?}"
    );
    let mut configured = false;
    for script in scripts {
        let url = app.url(&format!("/docs/{}", script.trim_start_matches("./")));
        let text = app
            .http
            .get(&url)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        if text.contains("SwaggerUIBundle({") {
            configured = true;
            let config: String = text.chars().filter(|c| !c.is_whitespace()).collect();
            assert!(config.contains("validatorUrl:null"), "{url}: {text}");
        }
    }
    assert!(configured, "no script on the page configures Swagger UI");
}

/// The large assets are stored compressed: sent as they are to clients that accept gzip,
/// inflated for the rest, and the same bytes either way.
#[tokio::test]
async fn compressed_assets_are_served_as_gzip_when_accepted_and_plain_otherwise() {
    let app = spawn_app().await;
    for asset in ["swagger-ui-bundle.js", "swagger-ui.css"] {
        let url = app.url(&format!("/docs/{asset}"));
        let plain = app.http.get(&url).send().await.unwrap();
        assert_eq!(plain.status(), StatusCode::OK, "{asset}");
        assert!(plain.headers().get("content-encoding").is_none(), "{asset}");
        assert_eq!(plain.headers()["vary"], "accept-encoding");
        let plain = plain.bytes().await.unwrap();

        let gzipped = app
            .http
            .get(&url)
            .header("accept-encoding", "gzip, deflate, br")
            .send()
            .await
            .unwrap();
        assert_eq!(gzipped.status(), StatusCode::OK, "{asset}");
        assert_eq!(gzipped.headers()["content-encoding"], "gzip", "{asset}");
        let gzipped = gzipped.bytes().await.unwrap();
        assert!(gzipped.len() * 3 < plain.len(), "{asset}: not compressed");
        let mut inflated = Vec::new();
        std::io::Read::read_to_end(
            &mut flate2::read::GzDecoder::new(&gzipped[..]),
            &mut inflated,
        )
        .unwrap();
        assert_eq!(inflated, plain, "{asset}: the two encodings differ");
    }
    let missing = app.http.get(app.url("/docs/nope.js")).send().await.unwrap();
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
}
