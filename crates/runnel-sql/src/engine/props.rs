//! Reading statement properties: the WITH clause of DDL (`KAFKA_TOPIC`,
//! formats, `PARTITIONS`, …) and the request/session properties that
//! decide where a query starts (`auto.offset.reset`).

use std::collections::BTreeMap;

use runnel_streams::OffsetReset;

use crate::ast::{PropValue, Props};
use crate::error::SqlError;
use crate::format::{Format, FormatError, FormatRegistry};
use crate::schema::WindowType;
use runnel_format::protobuf::NullableRepresentation;

pub(super) fn prop_string(props: &Props, name: &str) -> Option<String> {
    props.get(name).map(|v| match v {
        PropValue::String(s) | PropValue::Number(s) => s.clone(),
        PropValue::Boolean(b) => b.to_string(),
    })
}

/// Where a WITH clause names property `name` (the start when it does not).
fn prop_pos(props: &Props, name: &str) -> crate::ast::Pos {
    props
        .get_ident(name)
        .map_or_else(Default::default, |i| i.pos)
}

/// A property's text and where the WITH clause names it.
fn prop_at(props: &Props, name: &str) -> Option<(String, crate::ast::Pos)> {
    prop_string(props, name).map(|text| (text, prop_pos(props, name)))
}

pub(super) fn prop_int(props: &Props, name: &str) -> Result<Option<i32>, SqlError> {
    match props.get(name) {
        None => Ok(None),
        Some(PropValue::Number(n)) => n.parse::<i32>().map(Some).map_err(|_| {
            SqlError::at(
                prop_pos(props, name),
                format!("{name} must be a whole number, got {n}"),
            )
        }),
        Some(v) => Err(SqlError::at(
            prop_pos(props, name),
            format!("{name} must be a number, got '{v}'"),
        )),
    }
}

/// The format a WITH clause names for keys or values (`name`), looked up
/// in `formats`; `topic` is for ksqlDB's message when the format needs a
/// schema registry and none is configured.
pub(super) fn format_prop(
    formats: &FormatRegistry,
    props: &Props,
    name: &str,
    topic: &str,
) -> Result<Option<Format>, SqlError> {
    let both = prop_string(props, "FORMAT");
    let pos = props
        .get_ident(name)
        .or_else(|| props.get_ident("FORMAT"))
        .map_or_else(Default::default, |i| i.pos);
    match prop_string(props, name).or(both) {
        None => Ok(None),
        Some(f) => formats.get(&f).map(Some).map_err(|e| match e {
            FormatError::NeedsSchemaRegistry(f) => SqlError::at(
                pos,
                format!(
                    "Cannot create topic '{topic}' with format {} without configuring '{SCHEMA_REGISTRY_URL}'",
                    f.to_ascii_uppercase()
                ),
            ),
            e => SqlError::at(pos, e),
        }),
    }
}

/// The record name a WITH clause gives a value schema
/// (`VALUE_AVRO_SCHEMA_FULL_NAME`, or `VALUE_SCHEMA_FULL_NAME`), refused
/// when empty or for a format without registry schemas, in ksqlDB's words.
pub(super) fn value_full_name(props: &Props, format: Format) -> Result<Option<String>, SqlError> {
    let key = ["VALUE_AVRO_SCHEMA_FULL_NAME", "VALUE_SCHEMA_FULL_NAME"]
        .into_iter()
        .find(|k| props.get(k).is_some());
    let Some(key) = key else {
        return Ok(None);
    };
    let pos = prop_pos(props, key);
    let name = prop_string(props, key).unwrap_or_default();
    if !format.get().needs_schema_registry() {
        return Err(SqlError::at(
            pos,
            format!("{format} does not support the following configs: [fullSchemaName]"),
        ));
    }
    if name.trim().is_empty() {
        return Err(SqlError::at(
            pos,
            "fullSchemaName cannot be empty. Format configuration: {fullSchemaName=}",
        ));
    }
    Ok(Some(name.trim().to_string()))
}

/// `<side>_DELIMITER` (`side`: KEY or VALUE): the field delimiter of the
/// DELIMITED format, one character or `TAB`/`SPACE`; refused for other
/// formats, in ksqlDB's words.
pub(super) fn delimiter_prop(
    props: &Props,
    side: &str,
    format: Format,
) -> Result<Option<char>, SqlError> {
    let key = format!("{side}_DELIMITER");
    let Some((text, pos)) = prop_at(props, &key) else {
        return Ok(None);
    };
    if format != Format::DELIMITED {
        return Err(SqlError::at(
            pos,
            format!("{format} does not support the following configs: [delimiter]"),
        ));
    }
    let invalid = |why: String| {
        SqlError::at(
            pos,
            format!(
                "Failed to prepare statement: Configuration {key} is invalid: {why}\nExample valid value: ';'"
            ),
        )
    };
    if text.trim().is_empty() {
        return Err(invalid(
            "Delimiter cannot be empty, if you meant to have a tab or space for delimiter, please use the special values 'TAB' or 'SPACE'".to_string(),
        ));
    }
    match text.as_str() {
        t if t.eq_ignore_ascii_case("TAB") => Ok(Some('\t')),
        t if t.eq_ignore_ascii_case("SPACE") => Ok(Some(' ')),
        t => {
            let mut chars = t.chars();
            match (chars.next(), chars.next()) {
                (Some(c), None) => Ok(Some(c)),
                _ => Err(invalid(format!(
                    "Invalid delimiter value: '{t}'. Delimiter must be a single character or TAB,SPACE"
                ))),
            }
        }
    }
}

/// `WRAP_SINGLE_VALUE`, when given: only for one value column, and only
/// the settings the value format supports (ksqlDB's words).
pub(super) fn check_wrap(
    props: &Props,
    format: Format,
    value_columns: usize,
) -> Result<(), SqlError> {
    let Some((text, pos)) = prop_at(props, "WRAP_SINGLE_VALUE") else {
        return Ok(());
    };
    let wrap = !text.eq_ignore_ascii_case("false");
    let refused = match format.name() {
        "KAFKA" | "DELIMITED" => wrap,
        "PROTOBUF" | "PROTOBUF_NOSR" => !wrap,
        _ => false,
    };
    if refused {
        return Err(SqlError::at(
            pos,
            format!(
                "Format '{}' does not support 'WRAP_SINGLE_VALUE' set to '{wrap}'.",
                format.name()
            ),
        ));
    }
    if value_columns != 1 {
        return Err(SqlError::at(
            pos,
            "'WRAP_SINGLE_VALUE' is only valid for single-field value schemas",
        ));
    }
    Ok(())
}

/// `FORMAT` sets both sides: naming a side's format too is refused, in
/// ksqlDB's words.
pub(super) fn check_format_props(props: &Props) -> Result<(), SqlError> {
    if props.get("FORMAT").is_none() {
        return Ok(());
    }
    for side in ["KEY_FORMAT", "VALUE_FORMAT"] {
        if let Some(k) = props.get_ident(side) {
            return Err(SqlError::at(
                k.pos,
                format!(
                    "Cannot supply both '{side}' and 'FORMAT' properties, as 'FORMAT' sets both key and value formats. Either use just 'FORMAT', or use 'KEY_FORMAT' and 'VALUE_FORMAT'."
                ),
            ));
        }
    }
    Ok(())
}

/// `<side>_PROTOBUF_NULLABLE_REPRESENTATION` (`side`: KEY or VALUE):
/// OPTIONAL or WRAPPER, for the Protobuf formats only.
pub(super) fn protobuf_nullable(
    props: &Props,
    side: &str,
    format: Format,
) -> Result<Option<NullableRepresentation>, SqlError> {
    let key = format!("{side}_PROTOBUF_NULLABLE_REPRESENTATION");
    let Some((text, pos)) = prop_at(props, &key) else {
        return Ok(None);
    };
    if !format.get().supports_protobuf_nullable() {
        return Err(SqlError::at(
            pos,
            format!("{format} does not support the following configs: [nullableRepresentation]"),
        ));
    }
    NullableRepresentation::parse(&text)
        .map(Some)
        .ok_or_else(|| {
            SqlError::at(
                pos,
                format!("Invalid value {text} for property {key}: expected OPTIONAL or WRAPPER"),
            )
        })
}

/// The engine property naming the schema registry.
pub const SCHEMA_REGISTRY_URL: &str = "ksql.schema.registry.url";
/// The key format of a source whose WITH clause names none (else KAFKA).
pub const DEFAULT_KEY_FORMAT: &str = "ksql.persistence.default.format.key";
/// The value format of a source whose WITH clause names none.
pub const DEFAULT_VALUE_FORMAT: &str = "ksql.persistence.default.format.value";
/// Whether a single value column is wrapped in an object (or record) when
/// the WITH clause does not say (`WRAP_SINGLE_VALUE`); true by default.
pub const WRAP_SINGLE_VALUES: &str = "ksql.persistence.wrap.single.values";
/// The prefix of a sink topic named after its stream or table.
pub const OUTPUT_TOPIC_PREFIX: &str = "ksql.output.topic.name.prefix";

/// The engine settings a CREATE statement's meaning depends on: a replay
/// has no session, so the session's values are recorded with the statement.
/// Also every `ksql.functions.*` setting (FUNCTION_SETTINGS).
const STATEMENT_SETTINGS: [&str; 4] = [
    DEFAULT_KEY_FORMAT,
    DEFAULT_VALUE_FORMAT,
    WRAP_SINGLE_VALUES,
    OUTPUT_TOPIC_PREFIX,
];
/// The prefix of the settings of functions (`ksql.functions.collect_list.limit`).
const FUNCTION_SETTINGS: &str = "ksql.functions.";

/// A setting from the request's properties, else the session's (SET).
pub(super) fn prop_value<'a>(
    session: &'a BTreeMap<String, String>,
    props: &'a BTreeMap<String, String>,
    name: &str,
) -> Option<&'a str> {
    props
        .get(name)
        .or_else(|| session.get(name))
        .map(String::as_str)
}

/// The request's properties with the session's values of the settings a
/// CREATE statement depends on: what the statement is planned and recorded
/// with.
pub(super) fn statement_settings(
    session: &BTreeMap<String, String>,
    props: &BTreeMap<String, String>,
) -> BTreeMap<String, String> {
    let mut settings = props.clone();
    for (name, value) in session {
        if STATEMENT_SETTINGS.contains(&name.as_str()) || name.starts_with(FUNCTION_SETTINGS) {
            settings
                .entry(name.clone())
                .or_insert_with(|| value.clone());
        }
    }
    settings
}

/// Whether a single value column is wrapped: `WRAP_SINGLE_VALUE` when
/// given, else [`WRAP_SINGLE_VALUES`] where the format can write a bare
/// value (Protobuf cannot), else wrapped.
pub(super) fn wrap_single(
    props: &Props,
    format: Format,
    settings: &BTreeMap<String, String>,
) -> bool {
    if let Some(v) = prop_string(props, "WRAP_SINGLE_VALUE") {
        return !v.eq_ignore_ascii_case("false");
    }
    let unwrapped = settings
        .get(WRAP_SINGLE_VALUES)
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("false"));
    !unwrapped || matches!(format.name(), "PROTOBUF" | "PROTOBUF_NOSR")
}

pub(super) const KNOWN_PROPS: [&str; 20] = [
    "KAFKA_TOPIC",
    "KEY_FORMAT",
    "VALUE_FORMAT",
    "FORMAT",
    "PARTITIONS",
    "REPLICAS",
    "TIMESTAMP",
    "TIMESTAMP_FORMAT",
    "WRAP_SINGLE_VALUE",
    "KEY_DELIMITER",
    "VALUE_DELIMITER",
    "RETENTION_MS",
    "CLEANUP_POLICY",
    "KEY_SCHEMA_ID",
    "VALUE_SCHEMA_ID",
    "VALUE_AVRO_SCHEMA_FULL_NAME",
    "KEY_SCHEMA_FULL_NAME",
    "VALUE_SCHEMA_FULL_NAME",
    "KEY_PROTOBUF_NULLABLE_REPRESENTATION",
    "VALUE_PROTOBUF_NULLABLE_REPRESENTATION",
];

pub(super) fn check_props(props: &Props) -> Result<(), SqlError> {
    for (k, _) in &props.0 {
        if !KNOWN_PROPS.contains(&k.name.as_str())
            && k.name != "WINDOW_TYPE"
            && k.name != "WINDOW_SIZE"
            && k.name != "QUERY_ID"
        {
            return Err(SqlError::at(
                k.pos,
                format!(
                    "unknown property {}; known: {}",
                    k.name,
                    KNOWN_PROPS.join(", ")
                ),
            ));
        }
    }
    Ok(())
}

/// A source's windowed key from `WINDOW_TYPE` and `WINDOW_SIZE` (a topic
/// another windowed query wrote), with ksqlDB's refusals: a size is
/// needed for TUMBLING and HOPPING and refused for SESSION.
pub(super) fn window_prop(props: &Props) -> Result<Option<WindowType>, SqlError> {
    let size = match prop_at(props, "WINDOW_SIZE") {
        None => None,
        Some((text, pos)) => Some(parse_duration_ms(&text).map_err(|e| {
            SqlError::at(pos, format!("Configuration WINDOW_SIZE is invalid: {e}"))
        })?),
    };
    let Some((kind, pos)) = prop_at(props, "WINDOW_TYPE") else {
        return Ok(None);
    };
    let kind = kind.to_ascii_uppercase();
    match (kind.as_str(), size) {
        ("SESSION", None) => Ok(Some(WindowType::Session)),
        ("SESSION", Some(_)) => Err(SqlError::at(
            prop_pos(props, "WINDOW_SIZE"),
            "'WINDOW_SIZE' should not be set for SESSION windows.",
        )),
        ("TUMBLING" | "HOPPING", Some(size_ms)) => Ok(Some(WindowType::Time { size_ms })),
        ("TUMBLING" | "HOPPING", None) => Err(SqlError::at(
            pos,
            format!("{kind} windows require 'WINDOW_SIZE' to be provided in the WITH clause. For example: 'WINDOW_SIZE'='10 SECONDS'"),
        )),
        _ => Err(SqlError::at(
            pos,
            format!("Error in WITH clause property 'WINDOW_TYPE': Unknown window type: '{kind}' Valid values are: SESSION, HOPPING, TUMBLING"),
        )),
    }
}

/// A duration as ksqlDB's WITH clauses write it ('30 SECONDS', '1 minute'),
/// in milliseconds; the error in ksqlDB's words.
pub(super) fn parse_duration_ms(text: &str) -> Result<i64, String> {
    let invalid = |why: String| format!("Invalid duration: '{text}'. {why}");
    let parts: Vec<&str> = text.split(char::is_whitespace).collect();
    let [n, unit] = parts.as_slice() else {
        return Err(invalid(format!("Expected 2 tokens, got: {}", parts.len())));
    };
    let n: i64 = n
        .parse()
        .map_err(|_| invalid(format!("Not numeric: '{n}'")))?;
    let unit = unit.to_ascii_uppercase();
    let plural = if unit.ends_with('S') {
        unit.clone()
    } else {
        format!("{unit}S")
    };
    // (multiplier, divisor) to milliseconds.
    let (mul, div): (i64, i64) = match plural.as_str() {
        "NANOSECONDS" => (1, 1_000_000),
        "MICROSECONDS" => (1, 1_000),
        "MILLISECONDS" => (1, 1),
        "SECONDS" => (1_000, 1),
        "MINUTES" => (60_000, 1),
        "HOURS" => (3_600_000, 1),
        "DAYS" => (86_400_000, 1),
        _ => {
            return Err(invalid(format!("Unknown time unit: '{unit}'\nSupported time units are: NANOSECONDS, MICROSECONDS, MILLISECONDS, SECONDS, MINUTES, HOURS, DAYS")))
        }
    };
    Ok(n.saturating_mul(mul) / div)
}

/// The `auto.offset.reset` a statement asked for: its request's
/// properties first, then the session's `SET`.
pub(super) fn offset_reset_prop(
    session: &BTreeMap<String, String>,
    props: &BTreeMap<String, String>,
) -> Option<String> {
    let find = |m: &BTreeMap<String, String>| {
        ["auto.offset.reset", "ksql.streams.auto.offset.reset"]
            .iter()
            .find_map(|k| m.get(*k).cloned())
    };
    find(props).or_else(|| find(session))
}

/// A boolean setting from the request's properties, else the session's
/// (SET); `None` when neither names it or the value is not a boolean.
pub(super) fn prop_flag(
    session: &BTreeMap<String, String>,
    props: &BTreeMap<String, String>,
    name: &str,
) -> Option<bool> {
    prop_value(session, props, name).and_then(|v| match v.trim().to_ascii_lowercase().as_str() {
        "true" => Some(true),
        "false" => Some(false),
        _ => None,
    })
}

/// A persistent query's processing guarantee: exactly-once when the
/// statement's request or the session asked for it (`processing.guarantee`,
/// also under its `ksql.streams.` name), at-least-once otherwise.
pub(super) fn persistent_guarantee(
    session: &BTreeMap<String, String>,
    props: &BTreeMap<String, String>,
) -> runnel_streams::Guarantee {
    let find = |m: &BTreeMap<String, String>| {
        ["processing.guarantee", "ksql.streams.processing.guarantee"]
            .iter()
            .find_map(|k| m.get(*k).cloned())
    };
    match find(props).or_else(|| find(session)).as_deref() {
        Some("exactly_once" | "exactly_once_v2") => runnel_streams::Guarantee::ExactlyOnce,
        _ => runnel_streams::Guarantee::AtLeastOnce,
    }
}

/// A persistent query's [`OffsetReset`]: earliest unless `latest` was asked.
pub(super) fn persistent_reset(
    session: &BTreeMap<String, String>,
    props: &BTreeMap<String, String>,
) -> OffsetReset {
    match offset_reset_prop(session, props) {
        Some(v) if v.eq_ignore_ascii_case("latest") => OffsetReset::Latest,
        _ => OffsetReset::Earliest,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ast::Statement;

    /// The WITH clause of a CREATE STREAM.
    fn with(clause: &str) -> Props {
        let text = format!("CREATE STREAM S (V INT) WITH ({clause});");
        match crate::parser::parse_one(&text).map(|p| p.statement) {
            Ok(Statement::CreateSource { props, .. }) => props,
            other => panic!("{text}: {other:?}"),
        }
    }

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn statements_keep_the_session_settings_they_depend_on() {
        let session = map(&[
            (DEFAULT_KEY_FORMAT, "JSON"),
            (WRAP_SINGLE_VALUES, "false"),
            ("ksql.functions.collect_list.limit", "5"),
            ("auto.offset.reset", "latest"),
        ]);
        let request = map(&[(DEFAULT_KEY_FORMAT, "DELIMITED")]);
        let kept = statement_settings(&session, &request);
        // The request wins; unrelated session settings stay behind.
        assert_eq!(
            kept,
            map(&[
                (DEFAULT_KEY_FORMAT, "DELIMITED"),
                (WRAP_SINGLE_VALUES, "false"),
                ("ksql.functions.collect_list.limit", "5"),
            ])
        );
        let unwrapped = with("KAFKA_TOPIC='t'");
        assert!(!wrap_single(&unwrapped, Format::JSON, &kept));
        // Protobuf cannot write a bare value: the setting does not apply.
        assert!(wrap_single(&unwrapped, Format::PROTOBUF_NOSR, &kept));
        // WRAP_SINGLE_VALUE in the WITH clause wins over the setting.
        assert!(wrap_single(
            &with("WRAP_SINGLE_VALUE=true"),
            Format::JSON,
            &kept
        ));
    }

    #[test]
    fn strings_numbers_and_booleans_read_as_text() {
        let p = with("KAFKA_TOPIC='t', PARTITIONS=3, WRAP_SINGLE_VALUE=false");
        assert_eq!(prop_string(&p, "KAFKA_TOPIC").as_deref(), Some("t"));
        assert_eq!(prop_string(&p, "kafka_topic").as_deref(), Some("t"));
        assert_eq!(prop_string(&p, "PARTITIONS").as_deref(), Some("3"));
        assert_eq!(
            prop_string(&p, "WRAP_SINGLE_VALUE").as_deref(),
            Some("false")
        );
        assert_eq!(prop_string(&p, "VALUE_FORMAT"), None);
    }

    #[test]
    fn whole_numbers_only() {
        assert_eq!(
            prop_int(&with("PARTITIONS=3"), "PARTITIONS").ok(),
            Some(Some(3))
        );
        assert_eq!(
            prop_int(&with("KAFKA_TOPIC='t'"), "PARTITIONS").ok(),
            Some(None)
        );
        let e = prop_int(&with("PARTITIONS=1.5"), "PARTITIONS").expect_err("not whole");
        assert!(e.to_string().contains("whole number"), "{e}");
        let e = prop_int(&with("PARTITIONS='3'"), "PARTITIONS").expect_err("a string");
        assert!(e.to_string().contains("must be a number"), "{e}");
    }

    #[test]
    fn format_falls_back_to_format_for_both() {
        let p = with("FORMAT='JSON', KEY_FORMAT='KAFKA'");
        assert_eq!(
            format_prop(&FormatRegistry::builtin(), &p, "KEY_FORMAT", "t").ok(),
            Some(Some(Format::KAFKA))
        );
        assert_eq!(
            format_prop(&FormatRegistry::builtin(), &p, "VALUE_FORMAT", "t").ok(),
            Some(Some(Format::JSON))
        );
        assert_eq!(
            format_prop(
                &FormatRegistry::builtin(),
                &with("KAFKA_TOPIC='t'"),
                "VALUE_FORMAT",
                "t"
            )
            .ok(),
            Some(None)
        );
        assert!(format_prop(
            &FormatRegistry::builtin(),
            &with("VALUE_FORMAT='XML'"),
            "VALUE_FORMAT",
            "t"
        )
        .is_err());
    }

    #[test]
    fn unknown_properties_are_refused_with_the_known_ones() {
        assert!(check_props(&with("KAFKA_TOPIC='t', VALUE_FORMAT='JSON', QUERY_ID='q'")).is_ok());
        let e = check_props(&with("KAFKA_TOPC='t'")).expect_err("a typo");
        assert!(e.to_string().contains("unknown property KAFKA_TOPC"), "{e}");
        assert!(e.to_string().contains("KAFKA_TOPIC"), "{e}");
    }

    #[test]
    fn the_request_overrides_the_session() {
        let session = map(&[("auto.offset.reset", "latest")]);
        assert_eq!(
            offset_reset_prop(&session, &map(&[])).as_deref(),
            Some("latest")
        );
        assert_eq!(
            offset_reset_prop(
                &session,
                &map(&[("ksql.streams.auto.offset.reset", "earliest")])
            )
            .as_deref(),
            Some("earliest")
        );
        assert_eq!(offset_reset_prop(&map(&[]), &map(&[])), None);
    }

    #[test]
    fn persistent_queries_start_at_the_earliest_unless_latest_is_asked() {
        assert_eq!(
            persistent_reset(&map(&[]), &map(&[])),
            OffsetReset::Earliest
        );
        assert_eq!(
            persistent_reset(&map(&[]), &map(&[("auto.offset.reset", "LATEST")])),
            OffsetReset::Latest
        );
        assert_eq!(
            persistent_reset(&map(&[("auto.offset.reset", "nonsense")]), &map(&[])),
            OffsetReset::Earliest
        );
    }
}
