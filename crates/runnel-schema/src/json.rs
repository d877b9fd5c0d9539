//! JSON Schemas: checked and compiled by the `jsonschema` crate (drafts 4,
//! 6, 7, 2019-09 and 2020-12, chosen by `$schema`; draft 7 without one,
//! as in Confluent's registry), `$ref`s to other
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

/// The referenced schema a `$ref` URL (its fragment aside) names.
pub(crate) fn find_reference<'a>(
    references: &'a BTreeMap<String, Value>,
    uri: &str,
) -> Option<&'a Value> {
    let uri = uri.split('#').next().unwrap_or(uri);
    if let Some(v) = references.get(uri) {
        return Some(v);
    }
    if let Some(rest) = uri.strip_prefix("json-schema:///") {
        if let Some(v) = references.get(rest) {
            return Some(v);
        }
    }
    references.iter().find_map(|(name, v)| {
        let name = name.trim_start_matches("./");
        uri.strip_suffix(name)
            .filter(|head| head.ends_with('/'))
            .map(|_| v)
    })
}

impl jsonschema::Retrieve for Retriever {
    fn retrieve(
        &self,
        uri: &jsonschema::Uri<String>,
    ) -> Result<Value, Box<dyn std::error::Error + Send + Sync>> {
        find_reference(&self.0, uri.as_str())
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
        let mut options = jsonschema::options().with_retriever(Retriever(refs.clone()));
        if schema.get("$schema").is_none() {
            // Confluent's default when a schema does not name its draft.
            options = options.with_draft(jsonschema::Draft::Draft7);
        }
        let validator = options.build(&schema).map_err(|e| {
            // Where in the schema (it is the instance its meta-schema
            // checked).
            let at = e.instance_path().as_str().to_string();
            if at.is_empty() {
                return SchemaError::invalid(e.to_string());
            }
            let position = locate(text, &at);
            let message = match position {
                Some((line, column)) => format!("{e} (at {at}, line {line} column {column})"),
                None => format!("{e} (at {at})"),
            };
            SchemaError::Invalid {
                message,
                line: position.map(|p| p.0),
                column: position.map(|p| p.1),
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

    pub(crate) fn references(&self) -> &BTreeMap<String, Value> {
        &self.references
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
            // Also under its own `$id`, which a `$ref` may use instead of
            // the name it was registered under.
            if let Some(id) = value.get("$id").and_then(Value::as_str) {
                let id = id.trim_end_matches('#').to_string();
                out.entry(id).or_insert_with(|| value.clone());
            }
            out.insert(r.name.clone(), value);
        }
    }
    Ok(())
}

/// Line and column (1-based) where the value a JSON pointer names starts
/// in `text` (valid JSON).
pub(crate) fn locate(text: &str, pointer: &str) -> Option<(u32, u32)> {
    let bytes = text.as_bytes();
    let mut pos = skip_ws(bytes, 0);
    for token in pointer.split('/').skip(1) {
        let token = token.replace("~1", "/").replace("~0", "~");
        pos = match bytes.get(pos)? {
            b'{' => member(text, pos, &token)?,
            b'[' => element(bytes, pos, token.parse().ok()?)?,
            _ => return None,
        };
    }
    Some(crate::protobuf::line_column(text, pos))
}

fn skip_ws(bytes: &[u8], mut pos: usize) -> usize {
    while bytes.get(pos).is_some_and(|b| b.is_ascii_whitespace()) {
        pos += 1;
    }
    pos
}

/// The end of the string starting at `pos` (its opening quote).
fn string_end(bytes: &[u8], pos: usize) -> Option<usize> {
    let mut i = pos + 1;
    loop {
        match bytes.get(i)? {
            b'\\' => i += 2,
            b'"' => return Some(i + 1),
            _ => i += 1,
        }
    }
}

/// The end of the value starting at `pos`.
fn value_end(bytes: &[u8], pos: usize) -> Option<usize> {
    match bytes.get(pos)? {
        b'"' => string_end(bytes, pos),
        b'{' | b'[' => {
            let mut depth = 0usize;
            let mut i = pos;
            loop {
                match bytes.get(i)? {
                    b'"' => {
                        i = string_end(bytes, i)?;
                        continue;
                    }
                    b'{' | b'[' => depth += 1,
                    b'}' | b']' => {
                        depth = depth.saturating_sub(1);
                        if depth == 0 {
                            return Some(i + 1);
                        }
                    }
                    _ => {}
                }
                i += 1;
            }
        }
        _ => {
            let mut i = pos;
            while bytes
                .get(i)
                .is_some_and(|b| !matches!(b, b',' | b'}' | b']') && !b.is_ascii_whitespace())
            {
                i += 1;
            }
            Some(i)
        }
    }
}

/// The start of the value of member `key` of the object at `pos`.
fn member(text: &str, pos: usize, key: &str) -> Option<usize> {
    let bytes = text.as_bytes();
    let mut i = skip_ws(bytes, pos + 1);
    while bytes.get(i)? == &b'"' {
        let end = string_end(bytes, i)?;
        let name: String = serde_json::from_str(text.get(i..end)?).ok()?;
        i = skip_ws(bytes, end);
        if bytes.get(i)? != &b':' {
            return None;
        }
        i = skip_ws(bytes, i + 1);
        if name == key {
            return Some(i);
        }
        i = skip_ws(bytes, value_end(bytes, i)?);
        if bytes.get(i)? == &b',' {
            i = skip_ws(bytes, i + 1);
        }
    }
    None
}

/// The start of element `index` of the array at `pos`.
fn element(bytes: &[u8], pos: usize, index: usize) -> Option<usize> {
    let mut i = skip_ws(bytes, pos + 1);
    for _ in 0..index {
        i = skip_ws(bytes, value_end(bytes, i)?);
        if bytes.get(i)? != &b',' {
            return None;
        }
        i = skip_ws(bytes, i + 1);
    }
    (bytes.get(i)? != &b']').then_some(i)
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

        // By the referenced schema's own $id.
        let with_id = reference(
            "customer",
            r#"{"$id":"https://example.com/customer.schema.json","type":"object","required":["id"]}"#,
        );
        let s = ParsedSchema::parse(
            SchemaType::Json,
            r#"{"properties":{"c":{"$ref":"https://example.com/customer.schema.json"}}}"#,
            &[with_id],
        )
        .unwrap();
        assert!(s.validate(&json!({"c": {}})).is_err());
        assert!(s.validate(&json!({"c": {"id": 1}})).is_ok());

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
    fn pointers_are_located_in_the_text() {
        let text = "{\n  \"a\": [1, {\"b\\\"\": \"x\"}],\n  \"c/d\": {\"e\": true}\n}";
        assert_eq!(locate(text, ""), Some((1, 1)));
        assert_eq!(locate(text, "/a"), Some((2, 8)));
        assert_eq!(locate(text, "/a/1"), Some((2, 12)));
        assert_eq!(locate(text, "/a/1/b\""), Some((2, 20)));
        assert_eq!(locate(text, "/c~1d/e"), Some((3, 16)));
        assert_eq!(locate(text, "/nope"), None);
        assert_eq!(locate(text, "/a/5"), None);
    }

    #[test]
    fn schemas_that_break_the_meta_schema_say_where() {
        match parse("{\n  \"properties\": {\n    \"a\": {\"minLength\": -1}\n  }\n}").unwrap_err() {
            SchemaError::Invalid {
                message,
                line,
                column,
            } => {
                assert_eq!((line, column), (Some(3), Some(24)), "{message}");
                assert!(message.contains("/properties/a/minLength"), "{message}");
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
