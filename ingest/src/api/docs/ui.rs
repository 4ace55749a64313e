//! Swagger UI and the OpenAPI document, served from bytes inside the binary: no network is
//! needed to view them, and nothing is built at start-up.
//!
//! Only the files the page loads are embedded (`assets/swagger-ui/`, see its README). The
//! large ones are stored gzip-compressed and sent as they are to clients that accept gzip,
//! inflated for the others, so the binary carries them once, small.

use std::io::Read;

use axum::body::Bytes;
use axum::extract::Path;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::api::error::ApiError;

/// Swagger UI's page (`/docs` redirects here; its assets live under it).
pub const UI_PATH: &str = "/docs/";
/// The document, as checked in.
pub const SPEC_PATH: &str = "/docs/swagger.json";

struct Asset {
    name: &'static str,
    content_type: &'static str,
    bytes: &'static [u8],
    /// `bytes` is gzip data.
    gzipped: bool,
}

macro_rules! asset {
    ($name:literal, $type:literal) => {
        Asset {
            name: $name,
            content_type: $type,
            bytes: include_bytes!(concat!("../../../assets/swagger-ui/", $name)),
            gzipped: false,
        }
    };
    ($name:literal, $type:literal, gzip) => {
        Asset {
            name: $name,
            content_type: $type,
            bytes: include_bytes!(concat!("../../../assets/swagger-ui/", $name, ".gz")),
            gzipped: true,
        }
    };
}

const PAGE: Asset = asset!("index.html", "text/html; charset=utf-8");

const ASSETS: [Asset; 6] = [
    asset!(
        "swagger-ui-bundle.js",
        "text/javascript; charset=utf-8",
        gzip
    ),
    asset!("swagger-ui.css", "text/css; charset=utf-8", gzip),
    asset!("swagger-initializer.js", "text/javascript; charset=utf-8"),
    asset!("index.css", "text/css; charset=utf-8"),
    asset!("favicon-32x32.png", "image/png"),
    asset!("favicon-16x16.png", "image/png"),
];

/// `/docs/` (the page) and `/docs/swagger.json`, documented; `/docs` (a redirect) and the
/// page's assets, which the document leaves out.
pub fn router<S: Clone + Send + Sync + 'static>() -> OpenApiRouter<S> {
    OpenApiRouter::new()
        .routes(routes!(swagger_ui_page))
        .routes(routes!(openapi_document))
        .route("/docs", get(|| async { Redirect::permanent(UI_PATH) }))
        .route("/docs/{asset}", get(asset))
}

/// Swagger UI for this document, from assets built into the binary: works with no network.
/// `/docs` redirects here.
#[utoipa::path(get, path = "/docs/", tag = "documentation",
    responses((status = 200, description = "The Swagger UI page", content_type = "text/html", body = String)))]
async fn swagger_ui_page(headers: HeaderMap) -> Response {
    serve(&PAGE, &headers, "no-cache")
}

async fn asset(Path(name): Path<String>, headers: HeaderMap) -> Response {
    match ASSETS.iter().find(|a| a.name == name) {
        // The files change only with a release; a day keeps reloads cheap.
        Some(asset) => serve(asset, &headers, "public, max-age=86400"),
        None => ApiError::NotFound("no such documentation file".into()).into_response(),
    }
}

/// This OpenAPI 3.1 document.
#[utoipa::path(get, path = "/docs/swagger.json", tag = "documentation",
    responses((status = 200, description = "The OpenAPI document", content_type = "application/json", body = serde_json::Value)))]
// Served as checked in ([`super::openapi_text`]); the test of that file keeps it current.
async fn openapi_document() -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        Bytes::from_static(include_bytes!("../../../openapi.json")),
    )
        .into_response()
}

fn serve(asset: &Asset, headers: &HeaderMap, cache_control: &'static str) -> Response {
    let mut response = if !asset.gzipped {
        Bytes::from_static(asset.bytes).into_response()
    } else if accepts_gzip(headers) {
        let mut response = Bytes::from_static(asset.bytes).into_response();
        response
            .headers_mut()
            .insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
        response
    } else {
        let mut plain = Vec::with_capacity(asset.bytes.len() * 4);
        match flate2::read::GzDecoder::new(asset.bytes).read_to_end(&mut plain) {
            Ok(_) => plain.into_response(),
            Err(e) => {
                tracing::error!(asset = asset.name, error = %e, "embedded asset does not inflate");
                return StatusCode::INTERNAL_SERVER_ERROR.into_response();
            }
        }
    };
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(asset.content_type),
    );
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static(cache_control),
    );
    if asset.gzipped {
        // Caches must keep the two encodings apart.
        h.insert(header::VARY, HeaderValue::from_static("accept-encoding"));
    }
    response
}

/// Whether `Accept-Encoding` admits gzip (`gzip`, `x-gzip` or `*`, with a non-zero `q`).
fn accepts_gzip(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|item| {
            let mut parts = item.split(';');
            let coding = parts.next().unwrap_or_default().trim();
            let refused = parts.any(|p| {
                p.trim()
                    .strip_prefix("q=")
                    .and_then(|q| q.trim().parse::<f32>().ok())
                    .is_some_and(|q| q <= 0.0)
            });
            !refused
                && ["gzip", "x-gzip", "*"]
                    .iter()
                    .any(|c| coding.eq_ignore_ascii_case(c))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(
            header::ACCEPT_ENCODING,
            HeaderValue::from_str(value).unwrap(),
        );
        h
    }

    #[test]
    fn reads_accept_encoding_as_browsers_and_tools_send_it() {
        assert!(accepts_gzip(&with("gzip, deflate, br, zstd")));
        assert!(accepts_gzip(&with("br;q=1.0, GZIP;q=0.5")));
        assert!(accepts_gzip(&with("*")));
        assert!(!accepts_gzip(&with("br")));
        assert!(!accepts_gzip(&with("gzip;q=0")));
        assert!(!accepts_gzip(&with("identity")));
        assert!(!accepts_gzip(&HeaderMap::new()));
    }

    #[test]
    fn every_compressed_asset_inflates() {
        for asset in ASSETS.iter().filter(|a| a.gzipped) {
            let mut plain = Vec::new();
            flate2::read::GzDecoder::new(asset.bytes)
                .read_to_end(&mut plain)
                .unwrap_or_else(|e| panic!("{}: {e}", asset.name));
            assert!(plain.len() > asset.bytes.len(), "{}", asset.name);
        }
    }
}
