//! Functions over JSON held in strings, and TO_JSON_STRING.

use serde_json::Value as Json;

use super::string::args_are;
use super::*;

const CAT: &str = "JSON";

/// One step of a JSONPath.
#[derive(Debug, PartialEq)]
enum Step {
    Field(String),
    Index(usize),
}

/// The supported JSONPath subset: `$`, `.name`, `['name']`, `["name"]` and
/// `[index]`.
fn parse_path(path: &str) -> Result<Vec<Step>, FunctionError> {
    let bad = |why: &str| runtime(format!("bad JSON path '{path}': {why}"));
    let chars: Vec<char> = path.trim().chars().collect();
    if chars.first() != Some(&'$') {
        return Err(bad("it must start with $"));
    }
    let mut steps = Vec::new();
    let mut i = 1;
    while i < chars.len() {
        match chars[i] {
            '.' => {
                let start = i + 1;
                let mut end = start;
                while end < chars.len() && chars[end] != '.' && chars[end] != '[' {
                    end += 1;
                }
                if end == start {
                    return Err(bad("empty field name"));
                }
                steps.push(Step::Field(chars[start..end].iter().collect()));
                i = end;
            }
            '[' => {
                let close = chars[i..]
                    .iter()
                    .position(|c| *c == ']')
                    .map(|p| p + i)
                    .ok_or_else(|| bad("unclosed ["))?;
                let inner: String = chars[i + 1..close].iter().collect();
                let inner = inner.trim();
                let quoted = inner.len() >= 2
                    && ((inner.starts_with('\'') && inner.ends_with('\''))
                        || (inner.starts_with('"') && inner.ends_with('"')));
                if quoted {
                    steps.push(Step::Field(inner[1..inner.len() - 1].to_string()));
                } else {
                    let n = inner
                        .parse::<usize>()
                        .map_err(|_| bad("an index must be a non-negative integer"))?;
                    steps.push(Step::Index(n));
                }
                i = close + 1;
            }
            c => return Err(bad(&format!("unexpected '{c}'"))),
        }
    }
    Ok(steps)
}

fn walk<'a>(mut j: &'a Json, steps: &[Step]) -> Option<&'a Json> {
    for s in steps {
        j = match (s, j) {
            (Step::Field(f), Json::Object(o)) => o.get(f)?,
            (Step::Index(n), Json::Array(a)) => a.get(*n)?,
            _ => return None,
        };
    }
    Some(j)
}

/// The first JSON value of `s`; what follows it is ignored, as ksqlDB's
/// JSON functions (Jackson's `readTree`) ignore it.
fn parse_json(s: &str) -> Option<Json> {
    serde_json::Deserializer::from_str(s)
        .into_iter::<Json>()
        .next()?
        .ok()
}

/// A JSON value compared with a SQL value (numbers by value).
fn json_equals(j: &Json, v: &Value) -> bool {
    match (j, v) {
        (Json::Null, Value::Null) => true,
        (Json::Bool(a), Value::Boolean(b)) => a == b,
        (Json::String(a), Value::String(b)) => a == b,
        (Json::Number(n), v) => match (n.as_i64(), v.as_i64()) {
            (Some(a), Some(b)) => a == b,
            _ => match (n.as_f64(), v.as_f64()) {
                (Some(a), Some(b)) => a == b,
                _ => false,
            },
        },
        _ => false,
    }
}

pub(super) fn register(r: &mut FunctionRegistry) {
    r.add(Scalar::new(
        "EXTRACTJSONFIELD",
        CAT,
        "EXTRACTJSONFIELD(STRING, path) -> STRING",
        "The part of a JSON text at a JSONPath such as '$.a.b[0]': a string as itself, \
         anything else as JSON text; NULL when missing or not JSON.",
        |a| args_are(a, &[is_str, is_str]).then_some(SqlType::String),
        |a| {
            let steps = parse_path(str_of(&a[1])?)?;
            let Some(j) = parse_json(str_of(&a[0])?) else {
                return Ok(Value::Null);
            };
            Ok(match walk(&j, &steps) {
                None | Some(Json::Null) => Value::Null,
                Some(Json::String(s)) => Value::String(s.clone()),
                Some(other) => Value::String(other.to_string()),
            })
        },
    ));
    r.add(
        Scalar::new(
            "JSON_ARRAY_CONTAINS",
            CAT,
            "JSON_ARRAY_CONTAINS(STRING, value) -> BOOLEAN",
            "Whether a JSON array holds the value (false when it is not a JSON array).",
            |a| (a.len() == 2 && is_str(&a[0]) && is_primitive(&a[1])).then_some(SqlType::Boolean),
            |a| {
                let found = match arg(a, 0) {
                    Value::Null => false,
                    v => match parse_json(str_of(v)?) {
                        Some(Json::Array(items)) => {
                            let x = arg(a, 1);
                            items.iter().any(|j| json_equals(j, x))
                        }
                        _ => false,
                    },
                };
                Ok(Value::Boolean(found))
            },
        )
        .lenient(),
    );
    r.add(Scalar::new(
        "JSON_ARRAY_LENGTH",
        CAT,
        "JSON_ARRAY_LENGTH(STRING) -> INT",
        "The number of elements of a JSON array (NULL when it is not one).",
        |a| args_are(a, &[is_str]).then_some(SqlType::Int),
        |a| {
            Ok(match parse_json(str_of(&a[0])?) {
                Some(Json::Array(items)) => {
                    Value::Int(i32::try_from(items.len()).unwrap_or(i32::MAX))
                }
                _ => Value::Null,
            })
        },
    ));
    r.add(Scalar::new(
        "JSON_CONCAT",
        CAT,
        "JSON_CONCAT(STRING, STRING, …) -> STRING",
        "Merges JSON objects (a later key wins), or else concatenates arrays, wrapping other \
         values as elements; NULL when an argument is not JSON.",
        |a| (a.len() >= 2 && a.iter().all(is_str)).then_some(SqlType::String),
        |a| {
            let mut docs = Vec::with_capacity(a.len());
            for v in a {
                match parse_json(str_of(v)?) {
                    Some(j) => docs.push(j),
                    None => return Ok(Value::Null),
                }
            }
            let out = if docs.iter().all(Json::is_object) {
                let mut merged = serde_json::Map::new();
                for d in docs {
                    if let Json::Object(o) = d {
                        merged.extend(o);
                    }
                }
                Json::Object(merged)
            } else {
                let mut items = Vec::new();
                for d in docs {
                    match d {
                        Json::Array(a) => items.extend(a),
                        other => items.push(other),
                    }
                }
                Json::Array(items)
            };
            Ok(Value::String(out.to_string()))
        },
    ));
    r.add(Scalar::new(
        "JSON_ITEMS",
        CAT,
        "JSON_ITEMS(STRING) -> ARRAY<STRING>",
        "The elements of a JSON array, each as JSON text (NULL when it is not one).",
        |a| args_are(a, &[is_str]).then(|| SqlType::Array(Box::new(SqlType::String))),
        |a| {
            Ok(match parse_json(str_of(&a[0])?) {
                Some(Json::Array(items)) => {
                    Value::Array(items.iter().map(|j| Value::String(j.to_string())).collect())
                }
                _ => Value::Null,
            })
        },
    ));
    r.add(Scalar::new(
        "JSON_KEYS",
        CAT,
        "JSON_KEYS(STRING) -> ARRAY<STRING>",
        "The keys of a JSON object (NULL when it is not one).",
        |a| args_are(a, &[is_str]).then(|| SqlType::Array(Box::new(SqlType::String))),
        |a| {
            Ok(match parse_json(str_of(&a[0])?) {
                Some(Json::Object(o)) => {
                    Value::Array(o.keys().map(|k| Value::String(k.clone())).collect())
                }
                _ => Value::Null,
            })
        },
    ));
    r.add(Scalar::new(
        "JSON_RECORDS",
        CAT,
        "JSON_RECORDS(STRING) -> MAP<STRING, STRING>",
        "The entries of a JSON object, each value as its JSON text, a string as its text (NULL \
         when it is not an object).",
        |a| {
            args_are(a, &[is_str])
                .then(|| SqlType::Map(Box::new(SqlType::String), Box::new(SqlType::String)))
        },
        |a| {
            Ok(match parse_json(str_of(&a[0])?) {
                Some(Json::Object(o)) => Value::Map(
                    o.iter()
                        .map(|(k, v)| {
                            // A string is its text; anything else its JSON.
                            let text = match v {
                                Json::String(t) => t.clone(),
                                v => v.to_string(),
                            };
                            (Value::String(k.clone()), Value::String(text))
                        })
                        .collect(),
                ),
                _ => Value::Null,
            })
        },
    ));
    r.add(
        Scalar::new(
            "IS_JSON_STRING",
            CAT,
            "IS_JSON_STRING(STRING) -> BOOLEAN",
            "Whether the text is valid JSON (false for NULL).",
            |a| args_are(a, &[is_str]).then_some(SqlType::Boolean),
            |a| {
                Ok(Value::Boolean(match arg(a, 0) {
                    Value::Null => false,
                    v => parse_json(str_of(v)?).is_some(),
                }))
            },
        )
        .lenient(),
    );
    r.add(
        Scalar::new(
            "TO_JSON_STRING",
            CAT,
            "TO_JSON_STRING(any) -> STRING",
            "The value written as JSON text ('null' for NULL).",
            |a| (a.len() == 1).then_some(SqlType::String),
            |a| Ok(Value::String(json_text(arg(a, 0)).to_string())),
        )
        .lenient(),
    );
}

/// A value as TO_JSON_STRING writes it: as the JSON format does, but
/// dates, times and timestamps as their text ("1972-09-27", "16:43:40",
/// "1971-11-28T23:46:40.000"), at any depth.
fn json_text(v: &Value) -> serde_json::Value {
    use serde_json::Value as Json;
    match v {
        Value::Date(_) | Value::Time(_) | Value::Timestamp(_) => Json::String(v.to_string()),
        Value::Array(items) => Json::Array(items.iter().map(json_text).collect()),
        Value::Struct(fields) => Json::Object(
            fields
                .iter()
                .map(|(k, x)| (k.clone(), json_text(x)))
                .collect(),
        ),
        Value::Map(entries) if entries.iter().any(|(_, x)| has_temporal(x)) => Json::Object(
            entries
                .iter()
                .map(|(k, x)| (k.to_string(), json_text(x)))
                .collect(),
        ),
        other => crate::format::to_json(other),
    }
}

fn has_temporal(v: &Value) -> bool {
    match v {
        Value::Date(_) | Value::Time(_) | Value::Timestamp(_) => true,
        Value::Array(items) => items.iter().any(has_temporal),
        Value::Struct(fields) => fields.iter().any(|(_, x)| has_temporal(x)),
        Value::Map(entries) => entries.iter().any(|(_, x)| has_temporal(x)),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_util::*;
    use super::*;

    const N: Value = Value::Null;
    const DOC: &str = r#"{"a": {"b": [10, {"c": "x"}], "s": "hi"}, "n": null, "k.y": 1}"#;

    #[test]
    fn paths() {
        assert_eq!(
            parse_path("$.a['b'][1]").ok(),
            Some(vec![
                Step::Field("a".into()),
                Step::Field("b".into()),
                Step::Index(1)
            ])
        );
        assert!(parse_path("a.b").is_err());
        assert!(parse_path("$.a[x]").is_err());
        assert!(parse_path("$.a[0").is_err());
    }

    #[test]
    fn extractjsonfield() {
        assert_eq!(ok("EXTRACTJSONFIELD", vec![s(DOC), s("$.a.s")]), s("hi"));
        assert_eq!(ok("EXTRACTJSONFIELD", vec![s(DOC), s("$.a.b[0]")]), s("10"));
        assert_eq!(
            ok("EXTRACTJSONFIELD", vec![s(DOC), s("$.a.b[1]")]),
            s(r#"{"c":"x"}"#)
        );
        assert_eq!(ok("EXTRACTJSONFIELD", vec![s(DOC), s("$['k.y']")]), s("1"));
        assert_eq!(ok("EXTRACTJSONFIELD", vec![s(DOC), s("$.n")]), N);
        assert_eq!(ok("EXTRACTJSONFIELD", vec![s(DOC), s("$.zz")]), N);
        assert_eq!(ok("EXTRACTJSONFIELD", vec![s("{oops"), s("$.a")]), N);
        // What follows the first JSON value is ignored.
        assert_eq!(
            ok("EXTRACTJSONFIELD", vec![s(r#"{"a": "x"}} tail"#), s("$.a")]),
            s("x")
        );
        assert_eq!(ok("EXTRACTJSONFIELD", vec![N, s("$.a")]), N);
        assert!(call("EXTRACTJSONFIELD", vec![s(DOC), s("a")]).is_err());
        assert!(ty("EXTRACTJSONFIELD", &[st(), it()]).is_err());
    }

    #[test]
    fn arrays() {
        let t = Value::Boolean(true);
        let f = Value::Boolean(false);
        assert_eq!(
            ok("JSON_ARRAY_CONTAINS", vec![s("[1, 2.5, \"a\"]"), i(1)]),
            t
        );
        assert_eq!(ok("JSON_ARRAY_CONTAINS", vec![s("[1, 2.5]"), d(2.5)]), t);
        assert_eq!(ok("JSON_ARRAY_CONTAINS", vec![s("[\"a\"]"), s("a")]), t);
        assert_eq!(ok("JSON_ARRAY_CONTAINS", vec![s("[null]"), N]), t);
        assert_eq!(ok("JSON_ARRAY_CONTAINS", vec![s("[\"1\"]"), i(1)]), f);
        assert_eq!(ok("JSON_ARRAY_CONTAINS", vec![s("{}"), i(1)]), f);
        assert_eq!(ok("JSON_ARRAY_CONTAINS", vec![N, i(1)]), f);
        assert!(ty("JSON_ARRAY_CONTAINS", &[it(), it()]).is_err());
        assert_eq!(ok("JSON_ARRAY_LENGTH", vec![s("[1, [2, 3]]")]), i(2));
        assert_eq!(ok("JSON_ARRAY_LENGTH", vec![s("7")]), N);
        assert_eq!(ok("JSON_ARRAY_LENGTH", vec![N]), N);
        assert!(ty("JSON_ARRAY_LENGTH", &[it()]).is_err());
    }

    #[test]
    fn concat_keys_records() {
        assert_eq!(
            ok(
                "JSON_CONCAT",
                vec![s(r#"{"a": 1, "b": 2}"#), s(r#"{"b": 3}"#)]
            ),
            s(r#"{"a":1,"b":3}"#)
        );
        assert_eq!(
            ok("JSON_CONCAT", vec![s("[1]"), s("[2]"), s("3")]),
            s("[1,2,3]")
        );
        assert_eq!(ok("JSON_CONCAT", vec![s("{}"), s("[1]")]), s("[{},1]"));
        assert_eq!(ok("JSON_CONCAT", vec![s("[1]"), s("nope")]), N);
        assert_eq!(ok("JSON_CONCAT", vec![s("[1]"), N]), N);
        assert!(ty("JSON_CONCAT", &[st()]).is_err());
        assert_eq!(ok("JSON_KEYS", vec![s(DOC)]), sarr(&["a", "n", "k.y"]));
        assert_eq!(ok("JSON_KEYS", vec![s("[1]")]), N);
        assert_eq!(
            ok("JSON_ITEMS", vec![s(r#"[1, "a", {"b": null}]"#)]),
            sarr(&["1", "\"a\"", r#"{"b":null}"#])
        );
        assert_eq!(ok("JSON_ITEMS", vec![s("{}")]), N);
        assert!(ty("JSON_ITEMS", &[it()]).is_err());
        assert!(ty("JSON_KEYS", &[it()]).is_err());
        assert_eq!(
            ok("JSON_RECORDS", vec![s(r#"{"a": "x", "b": {"c": 1}}"#)]),
            Value::Map(vec![(s("a"), s("x")), (s("b"), s(r#"{"c":1}"#))])
        );
        assert_eq!(ok("JSON_RECORDS", vec![s("1")]), N);
    }

    #[test]
    fn is_json_and_to_json() {
        assert_eq!(ok("IS_JSON_STRING", vec![s("[1]")]), Value::Boolean(true));
        assert_eq!(ok("IS_JSON_STRING", vec![s("{x")]), Value::Boolean(false));
        assert_eq!(ok("IS_JSON_STRING", vec![N]), Value::Boolean(false));
        assert!(ty("IS_JSON_STRING", &[it()]).is_err());
        assert_eq!(
            ok(
                "TO_JSON_STRING",
                vec![Value::Struct(vec![
                    ("A".to_string(), i(1)),
                    ("B".to_string(), sarr(&["x"]))
                ])]
            ),
            s(r#"{"A":1,"B":["x"]}"#)
        );
        assert_eq!(ok("TO_JSON_STRING", vec![N]), s("null"));
        assert_eq!(ok("TO_JSON_STRING", vec![s("q\"")]), s(r#""q\"""#));
        assert!(ty("TO_JSON_STRING", &[st(), st()]).is_err());
    }
}
