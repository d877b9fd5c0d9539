//! JSON Schemas: checked and compiled by the `jsonschema` crate (drafts 4,
//! 6, 7, 2019-09 and 2020-12, chosen by `$schema`), `$ref`s to other
//! schemas served from the references, and the canonical form (compact,
//! object keys sorted).

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use serde_json::Value;

use crate::{Resolved, SchemaError, SchemaType};

#[derive(Clone)]
pub(crate) struct Json {
    schema: Value,
    /// The referenced schemas by the name they are referenced under.
    references: Arc<BTreeMap<String, Value>>,
    validator: Arc<jsonschema::Validator>,
}

impl fmt::Debug for Json {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Json")
            .field("schema", &self.schema)
            .field("references", &self.references.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

/// Serves `$ref`s to other schemas from the references, by their name
/// (`other.json`, resolved against the default base to
/// `json-schema:///other.json`), by their full URL, or by a URL that ends
/// with `/` and their name (a relative `$ref` under a schema's `$id`).
struct Retriever(Arc<BTreeMap<String, Value>>);

impl Retriever {
    fn find(&self, uri: &str) -> Option<&Value> {
        let uri = uri.split('#').next().unwrap_or(uri);
        if let Some(v) = self.0.get(uri) {
            return Some(v);
        }
        if let Some(rest) = uri.strip_prefix("json-schema:///") {
            if let Some(v) = self.0.get(rest) {
                return Some(v);
            }
        }
        self.0.iter().find_map(|(name, v)| {
            let name = name.trim_start_matches("./");
            uri.strip_suffix(name)
                .filter(|head| head.ends_with('/'))
                .map(|_| v)
        })
    }
}

impl jsonschema::Retrieve for Retriever {
    fn retrieve(
        &self,
        uri: &jsonschema::Uri<String>,
    ) -> Result<Value, Box<dyn std::error::Error + Send + Sync>> {
        self.find(uri.as_str())
            .cloned()
            .ok_or_else(|| format!("reference {} was not given", uri.as_str()).into())
    }
}

impl Json {
    pub(crate) fn parse(text: &str, references: &[Resolved]) -> Result<Json, SchemaError> {
        let schema = parse_json(text)?;
        if !schema.is_object() && !schema.is_boolean() {
            return Err(SchemaError::invalid(
                "a JSON Schema is an object or a boolean",
            ));
        }
        let mut refs = BTreeMap::new();
        collect(references, &mut refs)?;
        let refs = Arc::new(refs);
        let validator = jsonschema::options()
            .with_retriever(Retriever(refs.clone()))
            .build(&schema)
            .map_err(|e| {
                let at = e.schema_path().as_str().to_string();
                if at.is_empty() {
                    SchemaError::invalid(e.to_string())
                } else {
                    SchemaError::invalid(format!("{e} (at {at})"))
                }
            })?;
        Ok(Json {
            schema,
            references: refs,
            validator: Arc::new(validator),
        })
    }

    pub(crate) fn value(&self) -> &Value {
        &self.schema
    }

    pub(crate) fn canonical(&self) -> String {
        canonical(&self.schema)
    }

    /// The `title`, which Confluent's JSON Schema serializers use as the
    /// record name.
    pub(crate) fn record_name(&self) -> Option<String> {
        self.schema
            .get("title")
            .and_then(Value::as_str)
            .map(str::to_string)
    }

    pub(crate) fn validate(&self, value: &Value) -> Result<(), String> {
        self.validator.validate(value).map_err(|e| {
            let at = e.instance_path().as_str().to_string();
            if at.is_empty() {
                e.to_string()
            } else {
                format!("{e} (at {at})")
            }
        })
    }
}

/// The text as JSON, or why not with the position.
pub(crate) fn parse_json(text: &str) -> Result<Value, SchemaError> {
    serde_json::from_str(text).map_err(|e| {
        let line = u32::try_from(e.line()).ok().filter(|l| *l > 0);
        let column = u32::try_from(e.column()).ok().filter(|c| *c > 0);
        SchemaError::Invalid {
            message: format!("invalid JSON: {e}"),
            line,
            column,
        }
    })
}

fn collect(refs: &[Resolved], out: &mut BTreeMap<String, Value>) -> Result<(), SchemaError> {
    for r in refs {
        if r.schema_type != SchemaType::Json {
            return Err(SchemaError::invalid(format!(
                "a JSON Schema cannot reference the {} schema {}",
                r.schema_type, r.name
            )));
        }
        collect(&r.references, out)?;
        if !out.contains_key(&r.name) {
            let value = parse_json(&r.schema).map_err(|e| match e {
                SchemaError::Invalid {
                    message,
                    line,
                    column,
                } => SchemaError::Invalid {
                    message: format!("reference {}: {message}", r.name),
                    line,
                    column,
                },
                other => other,
            })?;
            out.insert(r.name.clone(), value);
        }
    }
    Ok(())
}

/// Compact JSON with every object's keys sorted, whatever order the map
/// type keeps.
pub(crate) fn canonical(value: &Value) -> String {
    let mut out = String::new();
    write_canonical(value, &mut out);
    out
}

fn write_canonical(value: &Value, out: &mut String) {
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push('{');
            for (i, k) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(k.clone()).to_string());
                out.push(':');
                if let Some(v) = map.get(k) {
                    write_canonical(v, out);
                }
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, v) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(v, out);
            }
            out.push(']');
        }
        other => out.push_str(&other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::ParsedSchema;

    fn parse(text: &str) -> Result<ParsedSchema, SchemaError> {
        ParsedSchema::parse(SchemaType::Json, text, &[])
    }

    fn reference(name: &str, text: &str) -> Resolved {
        Resolved {
            name: name.into(),
            schema_type: SchemaType::Json,
            schema: text.into(),
            references: vec![],
        }
    }

    #[test]
    fn parses_validates_and_names_by_title() {
        let s = parse(
            r#"{"title": "Person", "type": "object",
                "properties": {"age": {"type": "integer", "minimum": 0}},
                "required": ["age"]}"#,
        )
        .unwrap();
        assert_eq!(s.schema_type(), SchemaType::Json);
        assert_eq!(s.record_name().as_deref(), Some("Person"));
        assert!(s.as_json().unwrap().is_object());
        assert!(s.validate(&json!({"age": 3})).is_ok());
        let err = s.validate(&json!({"age": -1})).unwrap_err();
        assert!(err.contains("/age"), "{err}");
        assert!(s.validate(&json!({})).is_err());
    }

    #[test]
    fn canonical_form_sorts_keys_and_drops_whitespace() {
        let a = parse(r#"{ "type": "object", "properties": { "b": {"type":"string"}, "a": {"type": "integer"} } }"#).unwrap();
        let b = parse(
            r#"{"properties":{"a":{"type":"integer"},"b":{"type":"string"}},"type":"object"}"#,
        )
        .unwrap();
        assert_eq!(a.canonical(), b.canonical());
        assert_eq!(
            a.canonical(),
            r#"{"properties":{"a":{"type":"integer"},"b":{"type":"string"}},"type":"object"}"#
        );
    }

    #[test]
    fn every_draft_is_known_by_its_schema_uri() {
        for (uri, ok) in [
            ("http://json-schema.org/draft-04/schema#", json!(1)),
            ("http://json-schema.org/draft-06/schema#", json!(1)),
            ("http://json-schema.org/draft-07/schema#", json!(1)),
            ("https://json-schema.org/draft/2019-09/schema", json!(1)),
            ("https://json-schema.org/draft/2020-12/schema", json!(1)),
        ] {
            let text = json!({"$schema": uri, "type": "integer"}).to_string();
            let s = parse(&text).unwrap_or_else(|e| panic!("{uri}: {e}"));
            assert!(s.validate(&ok).is_ok());
            assert!(s.validate(&json!("x")).is_err());
        }
        // Draft 4's boolean exclusiveMaximum, draft 6's numeric one.
        let d4 = parse(r#"{"$schema":"http://json-schema.org/draft-04/schema#","maximum":5,"exclusiveMaximum":true}"#).unwrap();
        assert!(d4.validate(&json!(5)).is_err());
        let d7 =
            parse(r#"{"$schema":"http://json-schema.org/draft-07/schema#","exclusiveMaximum":5}"#)
                .unwrap();
        assert!(d7.validate(&json!(5)).is_err());
        assert!(d7.validate(&json!(4)).is_ok());
    }

    #[test]
    fn refs_resolve_to_references_by_name_and_url() {
        let address = reference(
            "address.json",
            r#"{"type":"object","properties":{"zip":{"type":"string"}},"required":["zip"]}"#,
        );
        let text = r#"{"type":"object","properties":{"home":{"$ref":"address.json"}}}"#;
        let s =
            ParsedSchema::parse(SchemaType::Json, text, std::slice::from_ref(&address)).unwrap();
        assert!(s.validate(&json!({"home": {"zip": "1"}})).is_ok());
        assert!(s.validate(&json!({"home": {}})).is_err());

        let by_url = reference("https://example.com/schemas/address.json", &address.schema);
        let text = r#"{"$id":"https://example.com/schemas/person.json","type":"object",
                       "properties":{"home":{"$ref":"address.json"},
                                     "work":{"$ref":"https://example.com/schemas/address.json"}}}"#;
        let s = ParsedSchema::parse(SchemaType::Json, text, &[by_url]).unwrap();
        assert!(s.validate(&json!({"work": {}})).is_err());
        assert!(s.validate(&json!({"home": {}})).is_err());

        let missing = parse(r#"{"$ref":"nowhere.json"}"#).unwrap_err();
        assert!(missing.to_string().contains("nowhere.json"), "{missing}");
    }

    #[test]
    fn invalid_json_says_where() {
        match parse("{\n  \"type\": \"object\",\n  \"properties\": {,}\n}").unwrap_err() {
            SchemaError::Invalid { line, column, .. } => {
                assert_eq!(line, Some(3));
                assert!(column.is_some());
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn schemas_that_break_the_meta_schema_are_invalid() {
        assert!(parse(r#"{"type": "integr"}"#).is_err());
        assert!(parse(r#"{"minLength": -1}"#).is_err());
        assert!(parse(r#"[1, 2]"#).is_err());
        assert!(parse("true").is_ok());
    }
}
