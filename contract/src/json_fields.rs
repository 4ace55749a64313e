//! Reading a JSON object field by field, collecting every problem with the field's name.
//!
//! Typed serde deserialisation stops at the first error and names fields poorly; clients and
//! producers deserve the whole list, each with the field it concerns. Two sources feed the
//! same reader: a parsed `serde_json` map (the HTTP API), and [`ObjectFields`], a flat view
//! of one object decoded straight from the bytes with no `Value` tree and borrowed strings
//! (the worker's hot path).
//!
//! The HTTP bodies are each one typed struct (in `ingest::api::bodies`) whose fields hold
//! the members as sent ([`Sent`]): [`read_typed`] fills it from any object, naming members
//! the struct does not declare, and the reader's `*_of` methods then check each field. The
//! struct is also what the OpenAPI document describes, so parser and document cannot drift.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, DeserializeOwned, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;
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

/// One member's value, as much of it as validation needs: the value itself for strings and
/// whole numbers, only the type for the rest (nested values are skipped, not built).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JsonScalar<'a> {
    Null,
    Bool,
    /// A number that fits `u64` (`812`); other numbers (`-1`, `812.5`, `1e3`) are `OtherNumber`.
    WholeNumber(u64),
    OtherNumber,
    String(Cow<'a, str>),
    Array,
    Object,
}

impl JsonScalar<'_> {
    fn of(value: &Value) -> JsonScalar<'_> {
        match value {
            Value::Null => JsonScalar::Null,
            Value::Bool(_) => JsonScalar::Bool,
            Value::Number(n) => n
                .as_u64()
                .map_or(JsonScalar::OtherNumber, JsonScalar::WholeNumber),
            Value::String(s) => JsonScalar::String(Cow::Borrowed(s)),
            Value::Array(_) => JsonScalar::Array,
            Value::Object(_) => JsonScalar::Object,
        }
    }

    fn type_name(&self) -> &'static str {
        match self {
            Self::Null => "null",
            Self::Bool => "a boolean",
            Self::WholeNumber(_) | Self::OtherNumber => "a number",
            Self::String(_) => "a string",
            Self::Array => "an array",
            Self::Object => "an object",
        }
    }
}

impl<'de> Deserialize<'de> for JsonScalar<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(ScalarVisitor)
    }
}

struct ScalarVisitor;

impl<'de> Visitor<'de> for ScalarVisitor {
    type Value = JsonScalar<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(JsonScalar::Null)
    }
    fn visit_none<E>(self) -> Result<Self::Value, E> {
        Ok(JsonScalar::Null)
    }
    fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
        Ok(JsonScalar::Bool)
    }
    fn visit_u64<E>(self, v: u64) -> Result<Self::Value, E> {
        Ok(JsonScalar::WholeNumber(v))
    }
    // serde_json hands non-negative integers to visit_u64; this is for other sources.
    fn visit_i64<E>(self, v: i64) -> Result<Self::Value, E> {
        Ok(u64::try_from(v).map_or(JsonScalar::OtherNumber, JsonScalar::WholeNumber))
    }
    fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
        Ok(JsonScalar::OtherNumber)
    }
    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(JsonScalar::String(Cow::Borrowed(v)))
    }
    // Strings with escapes cannot be borrowed from the input.
    fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
        Ok(JsonScalar::String(Cow::Owned(v.to_owned())))
    }
    fn visit_string<E>(self, v: String) -> Result<Self::Value, E> {
        Ok(JsonScalar::String(Cow::Owned(v)))
    }
    // Nested values are walked as scalars too, not skipped with `IgnoredAny`: that keeps
    // serde_json's nesting limit, so a body too deep for a `Value` is too deep here as well.
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        while seq.next_element::<JsonScalar<'de>>()?.is_some() {}
        Ok(JsonScalar::Array)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        while map.next_entry::<CowKey<'de>, JsonScalar<'de>>()?.is_some() {}
        Ok(JsonScalar::Object)
    }
}

/// The members of one JSON object, in the order sent, decoded without building a `Value`
/// tree. Looking a name up finds its last occurrence, as a parsed map keeps the last one.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ObjectFields<'a> {
    members: Vec<(Cow<'a, str>, JsonScalar<'a>)>,
}

impl<'a> ObjectFields<'a> {
    /// Decodes bytes that must hold one JSON object; errors are those of [`parse_object`],
    /// word for word.
    pub fn parse(bytes: &'a [u8]) -> Result<Self, BodyError> {
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Err(BodyError::Empty);
        }
        match serde_json::from_slice::<TopLevel<'a>>(bytes) {
            Ok(TopLevel::Object(fields)) => Ok(fields),
            Ok(TopLevel::Other) => Err(BodyError::NotAnObject),
            Err(e) => Err(BodyError::NotJson(e.to_string())),
        }
    }

    pub fn get(&self, name: &str) -> Option<&JsonScalar<'a>> {
        self.members
            .iter()
            .rev()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value)
    }

    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.members.iter().map(|(key, _)| key.as_ref())
    }
}

/// A document's top level: an object's members, or just "something else".
enum TopLevel<'a> {
    Object(ObjectFields<'a>),
    Other,
}

impl<'de> Deserialize<'de> for TopLevel<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct TopVisitor;
        impl<'de> Visitor<'de> for TopVisitor {
            type Value = TopLevel<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                // Messages carry 7 or 8 members.
                let mut members = Vec::with_capacity(map.size_hint().unwrap_or(8));
                while let Some(key) = map.next_key::<CowKey<'de>>()? {
                    members.push((key.0, map.next_value::<JsonScalar<'de>>()?));
                }
                Ok(TopLevel::Object(ObjectFields { members }))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                while seq.next_element::<JsonScalar<'de>>()?.is_some() {}
                Ok(TopLevel::Other)
            }
            fn visit_unit<E>(self) -> Result<Self::Value, E> {
                Ok(TopLevel::Other)
            }
            fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
                Ok(TopLevel::Other)
            }
            fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
                Ok(TopLevel::Other)
            }
            fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
                Ok(TopLevel::Other)
            }
            fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
                Ok(TopLevel::Other)
            }
            fn visit_str<E>(self, _: &str) -> Result<Self::Value, E> {
                Ok(TopLevel::Other)
            }
        }
        deserializer.deserialize_any(TopVisitor)
    }
}

/// An object key, borrowed from the input unless it holds escapes.
struct CowKey<'a>(Cow<'a, str>);

impl<'de> Deserialize<'de> for CowKey<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl<'de> Visitor<'de> for KeyVisitor {
            type Value = CowKey<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object key")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(CowKey(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(CowKey(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E>(self, v: String) -> Result<Self::Value, E> {
                Ok(CowKey(Cow::Owned(v)))
            }
        }
        deserializer.deserialize_str(KeyVisitor)
    }
}

/// A member of a typed body as it was sent: absent (or `null`), or any JSON value. A struct
/// of these deserializes from every object, so validation sees all of its fields.
pub type Sent = Option<Value>;

/// The member names `T`'s derived `Deserialize` reads, renames applied: taken from the
/// derive itself (it hands them to `deserialize_struct`), so no hand-kept list can drift
/// from the struct. Empty for anything that is not a struct.
pub fn field_names<'de, T: Deserialize<'de>>() -> &'static [&'static str] {
    struct Probe<'f>(&'f mut &'static [&'static str]);
    impl<'de> Deserializer<'de> for Probe<'_> {
        type Error = de::value::Error;
        fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Self::Error> {
            Err(de::Error::custom("not a struct"))
        }
        fn deserialize_struct<V: Visitor<'de>>(
            self,
            _name: &'static str,
            fields: &'static [&'static str],
            _visitor: V,
        ) -> Result<V::Value, Self::Error> {
            *self.0 = fields;
            Err(de::Error::custom("only the field names were wanted"))
        }
        serde::forward_to_deserialize_any! {
            bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes
            byte_buf option unit unit_struct newtype_struct seq tuple tuple_struct map enum
            identifier ignored_any
        }
    }
    let mut fields: &'static [&'static str] = &[];
    // It always fails: the probe answers no data, only records what the derive asked for.
    let _ = T::deserialize(Probe(&mut fields));
    fields
}

/// `object` as the typed body `T` (a struct of [`Sent`] fields that denies unknown ones):
/// members `T` does not declare are recorded in `r` (sorted, each once) and left out, so
/// the rest always fits. Only a `T` with fields of other types can fail here.
pub fn read_typed<T: DeserializeOwned>(
    mut object: Map<String, Value>,
    r: &mut FieldReader<'_>,
) -> Result<T, serde_json::Error> {
    let known = field_names::<T>();
    let mut unknown: Vec<String> = object
        .keys()
        .filter(|k| !known.contains(&k.as_str()))
        .cloned()
        .collect();
    unknown.sort_unstable();
    for key in &unknown {
        object.remove(key);
    }
    r.push_unknown(unknown.iter().map(String::as_str));
    T::deserialize(Value::Object(object))
}

/// Where a [`FieldReader`] reads from.
#[derive(Clone, Copy)]
enum Source<'a> {
    Map(&'a Map<String, Value>),
    Fields(&'a ObjectFields<'a>),
    /// The values are handed to the `*_of` methods (a typed body's fields).
    Detached,
}

impl<'a> Source<'a> {
    /// The member named `name`, absent when missing or `null`.
    fn present(self, name: &str) -> Option<Member<'a>> {
        match self {
            Self::Map(map) => map.get(name).and_then(Member::of_value),
            Self::Fields(fields) => fields.get(name).and_then(Member::of_scalar),
            Self::Detached => None,
        }
    }

    fn unknown_keys(self, allowed: &[&str]) -> Vec<&'a str> {
        let all_known = match self {
            Self::Map(map) => map.keys().all(|k| allowed.contains(&k.as_str())),
            Self::Fields(fields) => fields.keys().all(|k| allowed.contains(&k)),
            Self::Detached => true,
        };
        // The usual case, checked without allocating.
        if all_known {
            return Vec::new();
        }
        let mut unknown: Vec<&'a str> = match self {
            Self::Map(map) => map.keys().map(String::as_str).collect(),
            Self::Fields(fields) => fields.keys().collect(),
            Self::Detached => Vec::new(),
        };
        unknown.retain(|k| !allowed.contains(k));
        // Sorted and once each, whatever the source or the order sent.
        unknown.sort_unstable();
        unknown.dedup();
        unknown
    }
}

/// A present member as the reader sees it, strings borrowed from where it was read.
pub enum Member<'a> {
    Str(&'a str),
    WholeNumber(u64),
    OtherNumber,
    /// Neither a string nor a number: only its type name matters.
    Other(&'static str),
}

impl<'a> Member<'a> {
    /// A typed body's field: `None` when it was absent or `null`.
    pub fn sent(value: &'a Sent) -> Option<Self> {
        value.as_ref().and_then(Self::of_value)
    }

    fn of_value(value: &'a Value) -> Option<Self> {
        match value {
            Value::Null => None,
            Value::String(s) => Some(Member::Str(s)),
            Value::Number(n) => Some(n.as_u64().map_or(Member::OtherNumber, Member::WholeNumber)),
            other => Some(Member::Other(JsonScalar::of(other).type_name())),
        }
    }

    fn of_scalar(value: &'a JsonScalar<'a>) -> Option<Self> {
        match value {
            JsonScalar::Null => None,
            JsonScalar::String(s) => Some(Member::Str(s)),
            JsonScalar::WholeNumber(v) => Some(Member::WholeNumber(*v)),
            JsonScalar::OtherNumber => Some(Member::OtherNumber),
            other => Some(Member::Other(other.type_name())),
        }
    }

    fn type_name(&self) -> &'static str {
        match self {
            Self::Str(_) => "a string",
            Self::WholeNumber(_) | Self::OtherNumber => "a number",
            Self::Other(name) => name,
        }
    }
}

/// Reads fields from one JSON object, remembering every problem found.
pub struct FieldReader<'a> {
    source: Source<'a>,
    errors: Vec<FieldError>,
}

impl<'a> FieldReader<'a> {
    pub fn new(object: &'a Map<String, Value>) -> Self {
        Self {
            source: Source::Map(object),
            errors: Vec::new(),
        }
    }

    pub fn for_fields(fields: &'a ObjectFields<'a>) -> Self {
        Self {
            source: Source::Fields(fields),
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

    pub fn detached() -> Self {
        Self {
            source: Source::Detached,
            errors: Vec::new(),
        }
    }

    /// The member named `name` in the source, absent when missing or `null`.
    pub fn member(&self, name: &str) -> Option<Member<'a>> {
        self.source.present(name)
    }

    pub fn required_str(&mut self, name: &str) -> Option<&'a str> {
        let value = self.member(name);
        self.required_str_of(name, value)
    }

    pub fn optional_str(&mut self, name: &str) -> Option<&'a str> {
        let value = self.member(name);
        self.optional_str_of(name, value)
    }

    /// A required non-negative whole number (`812`, not `812.5`, `"812"` or `-1`).
    pub fn required_u64(&mut self, name: &str) -> Option<u64> {
        let value = self.member(name);
        self.required_u64_of(name, value)
    }

    /// [`Self::required_str`] of a value read elsewhere (a typed body's field).
    pub fn required_str_of<'v>(
        &mut self,
        name: &str,
        value: Option<Member<'v>>,
    ) -> Option<&'v str> {
        match value {
            None => {
                self.push(FieldError::new(name, "is required"));
                None
            }
            Some(value) => self.string(name, value),
        }
    }

    /// [`Self::optional_str`] of a value read elsewhere.
    pub fn optional_str_of<'v>(
        &mut self,
        name: &str,
        value: Option<Member<'v>>,
    ) -> Option<&'v str> {
        self.string(name, value?)
    }

    fn string<'v>(&mut self, name: &str, value: Member<'v>) -> Option<&'v str> {
        match value {
            Member::Str(s) => Some(s),
            other => {
                self.push(FieldError::new(
                    name,
                    format!("must be a string, not {}", other.type_name()),
                ));
                None
            }
        }
    }

    /// [`Self::required_u64`] of a value read elsewhere.
    pub fn required_u64_of(&mut self, name: &str, value: Option<Member<'_>>) -> Option<u64> {
        match value {
            None => {
                self.push(FieldError::new(name, "is required"));
                None
            }
            Some(Member::WholeNumber(v)) => Some(v),
            Some(Member::OtherNumber) => {
                self.push(FieldError::new(name, "must be a non-negative whole number"));
                None
            }
            Some(other) => {
                self.push(FieldError::new(
                    name,
                    format!("must be a number, not {}", other.type_name()),
                ));
                None
            }
        }
    }

    /// Rejects fields outside the contract, so typos (`scroe`) never pass silently. They are
    /// named in sorted order, each once.
    pub fn reject_unknown(&mut self, allowed: &[&str]) {
        let unknown = self.source.unknown_keys(allowed);
        self.push_unknown(unknown.into_iter());
    }

    /// Names each of `keys` (sorted, once each) as not a field of the contract.
    fn push_unknown<'k>(&mut self, keys: impl Iterator<Item = &'k str>) {
        for key in keys {
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
