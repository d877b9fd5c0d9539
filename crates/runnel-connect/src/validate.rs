//! Connector config validation as Kafka Connect answers it: the
//! runtime's common keys (name, class, tasks, converters, transforms,
//! error handling, sink topics) plus the plugin's own, one entry per key
//! with its errors.

use runnel_connect_api::{
    Config, ConfigDef, ConfigKey, ConfigType, ConfigValue, ConnectorKind, ConnectorPlugin,
    Importance, Validator,
};
use serde_json::{json, Value as Json};

use crate::convert;
use crate::transforms::{Chain, TransformError};

fn key(name: &str, kind: ConfigType, default: Option<&str>, doc: &str, group: &str) -> ConfigKey {
    ConfigKey::new(name, kind, default, Importance::High, doc).group(group)
}

/// The keys every connector has.
pub fn common_def(kind: ConnectorKind) -> ConfigDef {
    let mut d = ConfigDef::new()
        .define(key("name", ConfigType::String, None, "Globally unique name to use for this connector.", "Common").validator(Validator::NonEmpty))
        .define(key("connector.class", ConfigType::String, None, "Name or alias of the class for this connector.", "Common"))
        .define(
            key("tasks.max", ConfigType::Int, Some("1"), "Maximum number of tasks to use for this connector.", "Common")
                .validator(Validator::Range { min: Some(1), max: None }),
        )
        .define(key("key.converter", ConfigType::Class, Some(""), "Converter class used to convert between Kafka Connect format and the serialized form written to Kafka (keys).", "Common"))
        .define(key("value.converter", ConfigType::Class, Some(""), "Converter class used to convert between Kafka Connect format and the serialized form written to Kafka (values).", "Common"))
        .define(key("header.converter", ConfigType::Class, Some(""), "HeaderConverter class used to convert between Kafka Connect format and the serialized form written to Kafka (headers).", "Common"))
        .define(key("transforms", ConfigType::List, Some(""), "Aliases for the transformations to be applied to records.", "Transforms"))
        .define(key("predicates", ConfigType::List, Some(""), "Aliases for the predicates used by transformations.", "Predicates"))
        .define(
            key("errors.tolerance", ConfigType::String, Some("none"), "Behavior for tolerating errors during connector operation: 'none' or 'all'.", "Error Handling")
                .validator(Validator::one_of(&["none", "all"])),
        )
        .define(key("errors.log.enable", ConfigType::Boolean, Some("false"), "Log each error and its context.", "Error Handling"))
        .define(key("errors.log.include.messages", ConfigType::Boolean, Some("false"), "Include the failed record in the log.", "Error Handling"));
    if kind == ConnectorKind::Sink {
        d = d
            .define(key(
                "topics",
                ConfigType::List,
                Some(""),
                "List of topics to consume, separated by commas.",
                "Common",
            ))
            .define(key(
                "topics.regex",
                ConfigType::String,
                Some(""),
                "Regular expression giving topics to consume.",
                "Common",
            ))
            .define(key(
                "errors.deadletterqueue.topic.name",
                ConfigType::String,
                Some(""),
                "The topic to write failed records to.",
                "Error Handling",
            ))
            .define(key(
                "errors.deadletterqueue.context.headers.enable",
                ConfigType::Boolean,
                Some("false"),
                "Add __connect.errors.* headers to dead letter records.",
                "Error Handling",
            ));
    }
    d
}

fn add_error(values: &mut Vec<ConfigValue>, name: &str, value: Option<&String>, message: String) {
    match values.iter_mut().find(|v| v.name == name) {
        Some(v) => v.errors.push(message),
        None => {
            let mut v = ConfigValue::new(name, value.cloned());
            v.errors.push(message);
            values.push(v);
        }
    }
}

/// The validation body (`PUT /connector-plugins/{class}/config/validate`)
/// and its error count.
pub fn validate(plugin: &dyn ConnectorPlugin, config: &Config, defaults: &Config) -> (Json, usize) {
    let common = common_def(plugin.kind());
    let own = plugin.config_def();
    let mut values = common.validate(config);
    // Converters.
    for which in ["key.converter", "value.converter"] {
        if let Some(class) = config.get(which).filter(|c| !c.is_empty()) {
            let settings = crate::transforms::sub_config(config, &format!("{which}."));
            if let Err(e) = convert::converter(class, &settings, which == "key.converter") {
                add_error(
                    &mut values,
                    which,
                    config.get(which),
                    format!("Invalid value {class} for configuration {which}: {e}"),
                );
            }
        }
    }
    if let Some(class) = config.get("header.converter").filter(|c| !c.is_empty()) {
        let settings = crate::transforms::sub_config(config, "header.converter.");
        if let Err(e) = convert::header_converter(class, &settings) {
            add_error(
                &mut values,
                "header.converter",
                config.get("header.converter"),
                format!("Invalid value {class} for configuration header.converter: {e}"),
            );
        }
    }
    let _ = defaults;
    // Transforms and predicates.
    if let Err(e) = Chain::from_config(config) {
        match e {
            TransformError::Config {
                field,
                message,
                value,
            } => {
                let msg = format!("Invalid value {value} for configuration {field}: {message}");
                add_error(&mut values, &field, config.get(&field), msg);
            }
            TransformError::Data(m) => {
                add_error(&mut values, "transforms", config.get("transforms"), m)
            }
        }
    }
    if plugin.kind() == ConnectorKind::Sink {
        let has = |k: &str| config.get(k).is_some_and(|v| !v.trim().is_empty());
        match (has("topics"), has("topics.regex")) {
            (false, false) => {
                let m = "Must configure one of topics or topics.regex".to_string();
                add_error(&mut values, "topics", config.get("topics"), m.clone());
                add_error(&mut values, "topics.regex", config.get("topics.regex"), m);
            }
            (true, true) => {
                let m = "topics and topics.regex are mutually exclusive options, but both are set."
                    .to_string();
                add_error(&mut values, "topics", config.get("topics"), m.clone());
                add_error(&mut values, "topics.regex", config.get("topics.regex"), m);
            }
            (false, true) => {
                if let Some(r) = config.get("topics.regex") {
                    if let Err(e) = regex::Regex::new(r) {
                        add_error(
                            &mut values,
                            "topics.regex",
                            Some(r),
                            format!("Invalid value {r} for configuration topics.regex: {e}"),
                        );
                    }
                }
            }
            (true, false) => {
                if let (Some(t), Some(dlq)) = (
                    config.get("topics"),
                    config.get("errors.deadletterqueue.topic.name"),
                ) {
                    if !dlq.trim().is_empty() && t.split(',').any(|x| x.trim() == dlq.trim()) {
                        add_error(&mut values, "errors.deadletterqueue.topic.name", Some(dlq), format!("The DLQ topic '{dlq}' may not be included in the list of topics ('topics={t}') consumed by the connector"));
                    }
                }
            }
        }
    }
    let plugin_values = plugin.validate(config);
    let mut configs = Vec::new();
    let mut groups: Vec<String> = Vec::new();
    let mut errors = 0;
    let mut order = 0;
    let mut push = |def: Option<&ConfigKey>, v: &ConfigValue, groups: &mut Vec<String>| {
        order += 1;
        errors += v.errors.len();
        let group = def.and_then(|d| d.group.clone());
        if let Some(g) = &group {
            if !groups.contains(g) {
                groups.push(g.clone());
            }
        }
        let definition = def.map(|d| {
            json!({
                "name": d.name,
                "type": d.kind.as_str(),
                "required": d.required(),
                "default_value": d.default,
                "importance": d.importance.as_str(),
                "documentation": d.doc,
                "group": d.group,
                "width": "NONE",
                "display_name": d.display_name,
                "dependents": [],
                "order": order,
            })
        });
        configs.push(json!({
            "definition": definition.unwrap_or_else(|| json!({
                "name": v.name, "type": "STRING", "required": false, "default_value": null,
                "importance": "LOW", "documentation": "", "group": null, "width": "NONE",
                "display_name": v.name, "dependents": [], "order": -1
            })),
            "value": {
                "name": v.name,
                "value": v.value,
                "recommended_values": v.recommended_values,
                "errors": v.errors,
                "visible": v.visible,
            }
        }));
    };
    for v in &values {
        push(common.key(&v.name), v, &mut groups);
    }
    for v in &plugin_values {
        if common.key(&v.name).is_some() {
            continue;
        }
        let def = own.key(&v.name);
        push(def, v, &mut groups);
    }
    (
        json!({
            "name": plugin.class(),
            "error_count": errors,
            "groups": groups,
            "configs": configs,
        }),
        errors,
    )
}

/// Every error of a validation body, for a create's 400 message.
pub fn error_messages(body: &Json) -> Vec<String> {
    body["configs"]
        .as_array()
        .map(|cs| {
            cs.iter()
                .flat_map(|c| {
                    c["value"]["errors"]
                        .as_array()
                        .cloned()
                        .unwrap_or_default()
                        .into_iter()
                        .filter_map(|e| e.as_str().map(str::to_string))
                })
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::builtin::file::{FileSink, FileSource};

    fn cfg(pairs: &[(&str, &str)]) -> Config {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn validation_names_each_bad_field() {
        let (body, n) = validate(
            &FileSource,
            &cfg(&[
                ("connector.class", "FileStreamSource"),
                ("name", "x"),
                ("tasks.max", "zero"),
                ("transforms", "r"),
                ("transforms.r.type", "com.example.Missing"),
            ]),
            &Config::new(),
        );
        assert_eq!(
            body["name"],
            "org.apache.kafka.connect.file.FileStreamSourceConnector"
        );
        let errs = error_messages(&body);
        assert_eq!(n, errs.len());
        assert!(errs.iter().any(|e| e.contains("tasks.max")), "{errs:?}");
        assert!(
            errs.iter().any(|e| e.contains("transforms.r.type")),
            "{errs:?}"
        );
        // `file` is optional (standard input), as Kafka's.
        assert!(!errs.iter().any(|e| e.contains("\"file\"")), "{errs:?}");
        assert!(errs.iter().any(|e| e.contains("\"topic\"")), "{errs:?}");
        assert!(body["groups"]
            .as_array()
            .unwrap()
            .contains(&json!("Common")));
        let c = &body["configs"][0];
        assert_eq!(c["definition"]["name"], "name");
        assert_eq!(c["value"]["value"], "x");

        let (body, _) = validate(
            &FileSink,
            &cfg(&[
                ("connector.class", "FileStreamSink"),
                ("name", "s"),
                ("file", "/tmp/x"),
            ]),
            &Config::new(),
        );
        assert!(error_messages(&body)
            .iter()
            .any(|e| e.contains("topics or topics.regex")));
        let (_, n) = validate(
            &FileSink,
            &cfg(&[
                ("connector.class", "FileStreamSink"),
                ("name", "s"),
                ("file", "/tmp/x"),
                ("topics", "t"),
            ]),
            &Config::new(),
        );
        assert_eq!(n, 0);
    }
}
