//! Reading a JSON object field by field, collecting every problem with the field's name.
//!
//! Typed serde deserialisation stops at the first error and names fields poorly; clients and
//! producers deserve the whole list, each with the field it concerns.

use serde_json::{Map, Value};

use crate::domain::{FieldError, ValidationErrors};

/// Why a body could not even be read as a JSON object.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BodyError {
    #[error("the body is empty")]
    Empty,
    #[error("the body is not valid JSON: {0}")]
    NotJson(String),
    #[error("the body must be a JSON object")]
    NotAnObject,
}

/// Parses bytes into a JSON object, or says plainly why not.
pub fn parse_object(bytes: &[u8]) -> Result<Map<String, Value>, BodyError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(BodyError::Empty);
    }
    match serde_json::from_slice::<Value>(bytes) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(BodyError::NotAnObject),
        // serde_json's message carries line and column, never the input itself.
        Err(e) => Err(BodyError::NotJson(e.to_string())),
    }
}

/// Reads fields from one JSON object, remembering every problem found.
pub struct FieldReader<'a> {
    object: &'a Map<String, Value>,
    errors: Vec<FieldError>,
}

impl<'a> FieldReader<'a> {
    pub fn new(object: &'a Map<String, Value>) -> Self {
        Self {
            object,
            errors: Vec::new(),
        }
    }

    /// Records a problem found by the caller (a value of the right type that is out of range).
    pub fn push(&mut self, error: FieldError) {
        self.errors.push(error);
    }

    pub fn has_errors(&self) -> bool {
        !self.errors.is_empty()
    }

    fn present(&self, name: &str) -> Option<&'a Value> {
        match self.object.get(name) {
            None | Some(Value::Null) => None,
            Some(v) => Some(v),
        }
    }

    pub fn required_str(&mut self, name: &str) -> Option<&'a str> {
        match self.present(name) {
            None => {
                self.push(FieldError::new(name, "is required"));
                None
            }
            Some(Value::String(s)) => Some(s.as_str()),
            Some(other) => {
                self.push(FieldError::new(
                    name,
                    format!("must be a string, not {}", type_name(other)),
                ));
                None
            }
        }
    }

    pub fn optional_str(&mut self, name: &str) -> Option<&'a str> {
        match self.present(name) {
            None => None,
            Some(Value::String(s)) => Some(s.as_str()),
            Some(other) => {
                self.push(FieldError::new(
                    name,
                    format!("must be a string, not {}", type_name(other)),
                ));
                None
            }
        }
    }

    /// A required non-negative whole number (`812`, not `812.5`, `"812"` or `-1`).
    pub fn required_u64(&mut self, name: &str) -> Option<u64> {
        match self.present(name) {
            None => {
                self.push(FieldError::new(name, "is required"));
                None
            }
            Some(Value::Number(n)) => match n.as_u64() {
                Some(v) => Some(v),
                None => {
                    self.push(FieldError::new(name, "must be a non-negative whole number"));
                    None
                }
            },
            Some(other) => {
                self.push(FieldError::new(
                    name,
                    format!("must be a number, not {}", type_name(other)),
                ));
                None
            }
        }
    }

    /// Rejects fields outside the contract, so typos (`scroe`) never pass silently.
    pub fn reject_unknown(&mut self, allowed: &[&str]) {
        let unknown: Vec<String> = self
            .object
            .keys()
            .filter(|k| !allowed.contains(&k.as_str()))
            .cloned()
            .collect();
        for key in unknown {
            let shown: String = key.chars().take(64).collect();
            self.push(FieldError::new(shown, "is not a known field"));
        }
    }

    pub fn finish(self) -> Result<(), ValidationErrors> {
        if self.errors.is_empty() {
            Ok(())
        } else {
            Err(ValidationErrors(self.errors))
        }
    }
}

fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn object(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            _ => unreachable!("test fixture is an object"),
        }
    }

    #[test]
    fn names_every_wrong_field_at_once() {
        let obj = object(json!({"a": 1, "b": "x", "c": -3, "zzz": true}));
        let mut r = FieldReader::new(&obj);
        assert_eq!(r.required_str("a"), None);
        assert_eq!(r.required_u64("b"), None);
        assert_eq!(r.required_u64("c"), None);
        assert_eq!(r.required_str("missing"), None);
        r.reject_unknown(&["a", "b", "c"]);
        let errors = r.finish().unwrap_err();
        let fields: Vec<&str> = errors.fields().collect();
        assert_eq!(fields, ["a", "b", "c", "missing", "zzz"]);
    }

    #[test]
    fn treats_null_optional_fields_as_absent() {
        let obj = object(json!({"o": null}));
        let mut r = FieldReader::new(&obj);
        assert_eq!(r.optional_str("o"), None);
        assert!(r.finish().is_ok());
    }

    #[test]
    fn rejects_fractional_numbers() {
        let obj = object(json!({"n": 812.5}));
        let mut r = FieldReader::new(&obj);
        assert_eq!(r.required_u64("n"), None);
        assert!(r.has_errors());
    }

    #[test]
    fn tells_empty_from_malformed_from_non_object_bodies() {
        assert_eq!(parse_object(b"  "), Err(BodyError::Empty));
        assert!(matches!(parse_object(b"{"), Err(BodyError::NotJson(_))));
        assert_eq!(parse_object(b"[1]"), Err(BodyError::NotAnObject));
        assert!(parse_object(b"{}").is_ok());
    }
}
