//! Strict, field-by-field decoding of native InvokeModel bodies, so the
//! simulator can answer a bad body with the ValidationException text Bedrock
//! uses ("Malformed input request: …", PROTOCOL.md §4.3) naming the field.

use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

/// A native body that Bedrock would reject with a ValidationException.
///
/// `detail` is in the JSON-schema validator's wording Bedrock echoes:
/// `#: required key [max_tokens] not found`, `#/max_tokens: …`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("Malformed input request: {detail}, please reformat your input and try again.")]
pub struct MalformedInput {
    /// What is wrong, starting with the JSON pointer (`#`, `#/field`).
    pub detail: String,
    /// The top-level field at fault, when one is.
    pub field: Option<String>,
}

impl MalformedInput {
    pub(crate) fn at(field: &str, problem: impl std::fmt::Display) -> Self {
        MalformedInput {
            detail: format!("#/{field}: {problem}"),
            field: Some(field.to_owned()),
        }
    }

    fn root(problem: impl std::fmt::Display, field: Option<&str>) -> Self {
        MalformedInput {
            detail: format!("#: {problem}"),
            field: field.map(str::to_owned),
        }
    }
}

/// The JSON-schema type name of a value, as the validator prints it.
fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "Null",
        Value::Bool(_) => "Boolean",
        Value::Number(_) => "Number",
        Value::String(_) => "String",
        Value::Array(_) => "JSONArray",
        Value::Object(_) => "JSONObject",
    }
}

/// The top-level object of a native body, taken apart one field at a time.
pub(crate) struct Fields {
    obj: Map<String, Value>,
}

impl Fields {
    /// Parses `body` as a JSON object and checks its keys against the
    /// family's schema: every required key present, no key outside `allowed`.
    /// More than one violation is reported as a count, as Bedrock does.
    pub(crate) fn parse(
        body: &[u8],
        required: &[&str],
        allowed: &[&str],
    ) -> Result<Self, MalformedInput> {
        let value: Value = serde_json::from_slice(body).map_err(|e| {
            MalformedInput::root(format_args!("body is not valid JSON ({e})"), None)
        })?;
        let Value::Object(obj) = value else {
            return Err(MalformedInput::root(
                format_args!("expected type: JSONObject, found: {}", type_name(&value)),
                None,
            ));
        };
        let mut violations: Vec<MalformedInput> = required
            .iter()
            .filter(|key| !obj.contains_key(**key))
            .map(|key| {
                MalformedInput::root(format_args!("required key [{key}] not found"), Some(key))
            })
            .collect();
        violations.extend(
            obj.keys()
                .filter(|key| !allowed.contains(&key.as_str()))
                .map(|key| {
                    MalformedInput::root(
                        format_args!("extraneous key [{key}] is not permitted"),
                        Some(key),
                    )
                }),
        );
        match violations.len() {
            0 => Ok(Fields { obj }),
            1 => Err(violations.remove(0)),
            n => Err(MalformedInput {
                detail: format!("{n} schema violations found"),
                field: None,
            }),
        }
    }

    /// Takes a key that [`Fields::parse`] has checked is present.
    pub(crate) fn required<T: DeserializeOwned>(&mut self, key: &str) -> Result<T, MalformedInput> {
        match self.optional(key)? {
            Some(v) => Ok(v),
            None => Err(MalformedInput::at(key, "expected a value, found: Null")),
        }
    }

    /// Takes an optional key; `null` counts as absent.
    pub(crate) fn optional<T: DeserializeOwned>(
        &mut self,
        key: &str,
    ) -> Result<Option<T>, MalformedInput> {
        match self.obj.remove(key) {
            None | Some(Value::Null) => Ok(None),
            Some(v) => {
                let found = type_name(&v);
                serde_json::from_value(v)
                    .map(Some)
                    .map_err(|e| MalformedInput::at(key, format_args!("{e} (found: {found})")))
            }
        }
    }

    /// Takes an optional list; absent or `null` is empty.
    pub(crate) fn list<T: DeserializeOwned>(
        &mut self,
        key: &str,
    ) -> Result<Vec<T>, MalformedInput> {
        Ok(self.optional(key)?.unwrap_or_default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn violations() {
        let err = Fields::parse(b"[1]", &[], &[]).err().unwrap();
        assert_eq!(err.detail, "#: expected type: JSONObject, found: JSONArray");
        let err = Fields::parse(b"{", &[], &[]).err().unwrap();
        assert!(err.detail.starts_with("#: body is not valid JSON"));
        let err = Fields::parse(br#"{"a":1}"#, &["a", "b"], &["a", "b"])
            .err()
            .unwrap();
        assert_eq!(err.detail, "#: required key [b] not found");
        assert_eq!(err.field.as_deref(), Some("b"));
        assert_eq!(
            err.to_string(),
            "Malformed input request: #: required key [b] not found, please reformat your input and try again."
        );
        let err = Fields::parse(br#"{"a":1,"foo":2}"#, &["a"], &["a"])
            .err()
            .unwrap();
        assert_eq!(err.detail, "#: extraneous key [foo] is not permitted");
        let err = Fields::parse(br#"{"foo":2}"#, &["a"], &["a"])
            .err()
            .unwrap();
        assert_eq!(err.detail, "2 schema violations found");
    }

    #[test]
    fn typed_fields_name_themselves() {
        let mut f = Fields::parse(br#"{"n":"x","m":null}"#, &["n"], &["n", "m"])
            .ok()
            .unwrap();
        let err = f.required::<u32>("n").unwrap_err();
        assert!(
            err.detail.starts_with("#/n: invalid type: string \"x\""),
            "{}",
            err.detail
        );
        assert!(err.detail.ends_with("(found: String)"));
        assert_eq!(f.optional::<u32>("m").unwrap(), None);
        assert_eq!(f.list::<u32>("absent").unwrap(), Vec::<u32>::new());
    }
}
