//! The published v1 contract: the checked-in JSON Schema must be exactly what the Rust types
//! generate, and the schema and the worker's parser must agree on every example.
//!
//! Regenerate the schema after changing `ScoreMessageV1`:
//! `UPDATE_SCHEMA=1 cargo test -p contract --test schema_contract`
//! (or `cargo run -p worker -- schema > schemas/score-message-v1.schema.json`).

use std::path::{Path, PathBuf};

use contract::message::{json_schema, json_schema_text, ScoreMessage};

fn schemas_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../schemas")
}

fn schema_path() -> PathBuf {
    schemas_dir().join("score-message-v1.schema.json")
}

/// Every `*.json` file in `schemas/examples/<kind>`, sorted, with its text.
fn examples(kind: &str) -> Vec<(String, String)> {
    let dir = schemas_dir().join("examples").join(kind);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|p| {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            (name, std::fs::read_to_string(&p).unwrap())
        })
        .collect()
}

fn validator() -> jsonschema::Validator {
    let checked_in: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(schema_path()).unwrap())
            .expect("the checked-in schema is JSON");
    jsonschema::options()
        .should_validate_formats(true)
        .build(&checked_in)
        .expect("the checked-in schema is a valid JSON Schema")
}

#[test]
fn checked_in_schema_matches_the_rust_types() {
    let generated = json_schema_text();
    let mut checked_in = std::fs::read_to_string(schema_path()).unwrap_or_default();
    // Written only when it changed, so a normal run never touches the file.
    if std::env::var_os("UPDATE_SCHEMA").is_some() && checked_in != generated {
        std::fs::write(schema_path(), &generated).unwrap();
        checked_in.clone_from(&generated);
    }
    assert!(
        checked_in == generated,
        "schemas/score-message-v1.schema.json is out of date with ScoreMessageV1; regenerate it \
         with `UPDATE_SCHEMA=1 cargo test -p contract --test schema_contract` and commit it"
    );
}

#[test]
fn schema_is_draft_2020_12_and_closed() {
    let schema = json_schema();
    assert_eq!(
        schema["$schema"],
        "https://json-schema.org/draft/2020-12/schema"
    );
    assert_eq!(schema["additionalProperties"], false);
    assert_eq!(schema["properties"]["version"]["const"], 1);
    assert_eq!(
        schema["properties"]["bureau"]["enum"],
        serde_json::json!(["experian", "equifax", "transunion"])
    );
    let mut required: Vec<&str> = schema["required"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    required.sort_unstable();
    assert_eq!(
        required,
        [
            "bureau",
            "reportId",
            "reportedAt",
            "score",
            "source",
            "userId",
            "version"
        ]
    );
}

#[test]
fn every_valid_example_passes_the_schema_and_the_parser() {
    let validator = validator();
    let now = time::OffsetDateTime::now_utc();
    let valid = examples("valid");
    assert!(valid.len() >= 3, "too few valid examples: {}", valid.len());
    for (name, text) in valid {
        let value: serde_json::Value = serde_json::from_str(&text).unwrap();
        let errors: Vec<String> = validator
            .iter_errors(&value)
            .map(|e| e.to_string())
            .collect();
        assert!(errors.is_empty(), "{name} fails the schema: {errors:?}");
        if let Err(e) = ScoreMessage::parse(&text, now) {
            panic!("{name} passes the schema but the worker rejects it: {e}");
        }
    }
}

#[test]
fn every_invalid_example_fails_the_schema_and_the_parser() {
    let validator = validator();
    let now = time::OffsetDateTime::now_utc();
    let invalid = examples("invalid");
    assert!(
        invalid.len() >= 10,
        "too few invalid examples: {}",
        invalid.len()
    );
    for (name, text) in invalid {
        // Examples that are not even JSON are for the parser only: no schema can see them.
        if let Ok(value) = serde_json::from_str::<serde_json::Value>(&text) {
            assert!(
                !validator.is_valid(&value),
                "{name} passes the schema but should not"
            );
        }
        assert!(
            ScoreMessage::parse(&text, now).is_err(),
            "{name} passes the worker's parser but should not"
        );
    }
}
