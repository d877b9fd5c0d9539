//! DescribeConfigs and IncrementalAlterConfigs for topics and the broker.

use std::collections::BTreeMap;
use std::sync::Arc;

use kafka_protocol::messages::alter_configs_request::AlterableConfig as LegacyConfig;
use kafka_protocol::messages::alter_configs_response::AlterConfigsResourceResponse as LegacyResourceResponse;
use kafka_protocol::messages::describe_configs_response::{
    DescribeConfigsResourceResult, DescribeConfigsResult, DescribeConfigsSynonym,
};
use kafka_protocol::messages::incremental_alter_configs_response::AlterConfigsResourceResponse;
use kafka_protocol::messages::{
    AlterConfigsRequest, AlterConfigsResponse, DescribeConfigsRequest, DescribeConfigsResponse,
    IncrementalAlterConfigsRequest, IncrementalAlterConfigsResponse,
};
use kafka_protocol::ResponseError;
use runnel_log::{ConfigEntry, LogError};

use super::{blocking, str_bytes};
use crate::context::ConnectionContext;
use crate::error::{log_error_code, BrokerError};
use crate::Broker;

const RESOURCE_TOPIC: i8 = 2;
const RESOURCE_BROKER: i8 = 4;
const RESOURCE_GROUP: i8 = 32;

/// Config sources as Kafka numbers them.
const SOURCE_DYNAMIC_TOPIC: i8 = 1;
const SOURCE_STATIC_BROKER: i8 = 4;
const SOURCE_DEFAULT: i8 = 5;
const SOURCE_GROUP: i8 = 8;

/// Config types as Kafka numbers them (DescribeConfigs v3+).
fn config_type(name: &str) -> i8 {
    const BOOLEAN: i8 = 1;
    const STRING: i8 = 2;
    const INT: i8 = 3;
    const LONG: i8 = 5;
    const LIST: i8 = 7;
    match name {
        "cleanup.policy" => LIST,
        "max.message.bytes"
        | "index.interval.bytes"
        | "min.insync.replicas"
        | "segment.bytes"
        | "segment.index.bytes"
        | "num.partitions"
        | "broker.id"
        | "socket.request.max.bytes" => INT,
        "auto.create.topics.enable" => BOOLEAN,
        "group.consumer.assignors" => LIST,
        // Group coordinator and group configs are INT in Kafka.
        n if n.starts_with("group.consumer.")
            || n.starts_with("consumer.")
            || n == "share.record.lock.duration.ms"
            || n == "share.delivery.count.limit" =>
        {
            INT
        }
        n if n.ends_with(".ms") || n.ends_with(".bytes") || n.ends_with(".messages") => LONG,
        _ => STRING,
    }
}

fn entry(name: &str, value: &str, source: i8, version: i16) -> DescribeConfigsResourceResult {
    let mut e = DescribeConfigsResourceResult::default()
        .with_name(str_bytes(name))
        .with_value(Some(str_bytes(value)))
        .with_config_source(source);
    if version >= 3 {
        e.config_type = config_type(name);
    }
    e
}

/// The broker-level name of a topic config (Kafka's `LogConfig` synonyms).
fn broker_name(topic_key: &str) -> &str {
    match topic_key {
        "segment.bytes" => "log.segment.bytes",
        "segment.ms" => "log.roll.ms",
        "segment.index.bytes" => "log.index.size.max.bytes",
        "flush.messages" => "log.flush.interval.messages",
        "flush.ms" => "log.flush.interval.ms",
        "retention.bytes" => "log.retention.bytes",
        "retention.ms" => "log.retention.ms",
        "max.message.bytes" => "message.max.bytes",
        "index.interval.bytes" => "log.index.interval.bytes",
        "delete.retention.ms" => "log.cleaner.delete.retention.ms",
        "min.compaction.lag.ms" => "log.cleaner.min.compaction.lag.ms",
        "max.compaction.lag.ms" => "log.cleaner.max.compaction.lag.ms",
        "min.cleanable.dirty.ratio" => "log.cleaner.min.cleanable.ratio",
        "cleanup.policy" => "log.cleanup.policy",
        "message.timestamp.type" => "log.message.timestamp.type",
        other => other,
    }
}

/// One synonym of a described config.
fn synonym(name: &str, value: &str, source: i8) -> DescribeConfigsSynonym {
    DescribeConfigsSynonym::default()
        .with_name(str_bytes(name))
        .with_value(Some(str_bytes(value)))
        .with_source(source)
}

/// A topic config's synonyms in precedence order, as Kafka lists them: the
/// topic's own value, the broker-wide one (under its broker name), and,
/// when neither is set, the default.
fn topic_synonyms(
    e: &ConfigEntry,
    defaults: &BTreeMap<String, String>,
) -> Vec<DescribeConfigsSynonym> {
    let mut out = Vec::new();
    if e.is_topic_override {
        out.push(synonym(&e.name, &e.value, SOURCE_DYNAMIC_TOPIC));
    }
    if let Some(v) = defaults.get(&e.name) {
        out.push(synonym(broker_name(&e.name), v, SOURCE_STATIC_BROKER));
    } else if !e.is_topic_override {
        if let Some(v) = runnel_log::builtin_default(&e.name) {
            out.push(synonym(broker_name(&e.name), v, SOURCE_DEFAULT));
        }
    }
    out
}

/// The synonyms of a group config, as Kafka lists them: the group's own
/// value when it has one, then the broker's default (under the broker
/// config's name, `group.consumer.*`, `group.share.*`).
fn group_synonyms(
    broker: &Broker,
    name: &str,
    value: &str,
    set: bool,
) -> Vec<DescribeConfigsSynonym> {
    let mut out = Vec::new();
    if set {
        out.push(synonym(name, value, SOURCE_GROUP));
    }
    if let Some((broker_name, default)) = broker.groups().group_config_default(name) {
        out.push(synonym(&broker_name, &default, SOURCE_DEFAULT));
    }
    out
}

fn broker_entries(broker: &Broker) -> Vec<(String, String)> {
    let cfg = broker.config();
    let mut out = vec![
        ("broker.id".to_string(), cfg.node_id.to_string()),
        (
            "advertised.listeners".to_string(),
            format!(
                "PLAINTEXT://{}:{}",
                cfg.advertised_host, cfg.advertised_port
            ),
        ),
        (
            "auto.create.topics.enable".to_string(),
            cfg.auto_create_topics.to_string(),
        ),
        (
            "num.partitions".to_string(),
            cfg.default_partitions.to_string(),
        ),
        (
            "socket.request.max.bytes".to_string(),
            cfg.max_request_bytes.to_string(),
        ),
    ];
    let c = &cfg.group.consumer;
    out.extend([
        (
            "group.consumer.session.timeout.ms".to_string(),
            c.session_timeout.as_millis().to_string(),
        ),
        (
            "group.consumer.heartbeat.interval.ms".to_string(),
            c.heartbeat_interval.as_millis().to_string(),
        ),
        (
            "group.consumer.min.session.timeout.ms".to_string(),
            c.min_session_timeout.as_millis().to_string(),
        ),
        (
            "group.consumer.max.session.timeout.ms".to_string(),
            c.max_session_timeout.as_millis().to_string(),
        ),
        (
            "group.consumer.min.heartbeat.interval.ms".to_string(),
            c.min_heartbeat_interval.as_millis().to_string(),
        ),
        (
            "group.consumer.max.heartbeat.interval.ms".to_string(),
            c.max_heartbeat_interval.as_millis().to_string(),
        ),
        (
            "group.consumer.assignors".to_string(),
            c.assignors.join(","),
        ),
        (
            "group.consumer.max.size".to_string(),
            c.max_size.to_string(),
        ),
    ]);
    out.extend(
        cfg.topic_defaults
            .iter()
            .map(|(k, v)| (k.clone(), v.clone())),
    );
    out
}

pub(crate) fn describe_configs(
    broker: &Arc<Broker>,
    _ctx: &ConnectionContext,
    req: DescribeConfigsRequest,
    version: i16,
) -> DescribeConfigsResponse {
    let res_include_synonyms = req.include_synonyms;
    let results = req
        .resources
        .into_iter()
        .map(|res| {
            let mut r = DescribeConfigsResult::default()
                .with_resource_type(res.resource_type)
                .with_resource_name(res.resource_name.clone());
            let wanted = |name: &str| {
                res.configuration_keys
                    .as_ref()
                    .is_none_or(|keys| keys.iter().any(|k| &**k == name))
            };
            match res.resource_type {
                RESOURCE_TOPIC => match broker.log().topic(&res.resource_name) {
                    None => {
                        r.error_code = ResponseError::UnknownTopicOrPartition.code();
                        r.error_message =
                            Some(str_bytes(&format!("unknown topic {}", &*res.resource_name)));
                    }
                    Some(topic) => {
                        let defaults = &broker.config().topic_defaults;
                        r.configs = topic
                            .describe_configs()
                            .into_iter()
                            .filter(|e: &ConfigEntry| wanted(&e.name))
                            .map(|e| {
                                let source = if e.is_topic_override {
                                    SOURCE_DYNAMIC_TOPIC
                                } else if defaults.contains_key(&e.name) {
                                    SOURCE_STATIC_BROKER
                                } else {
                                    SOURCE_DEFAULT
                                };
                                let mut out = entry(&e.name, &e.value, source, version);
                                if version >= 1 && res_include_synonyms {
                                    out.synonyms = topic_synonyms(&e, defaults);
                                }
                                out
                            })
                            .collect();
                    }
                },
                RESOURCE_BROKER => {
                    let name = &*res.resource_name;
                    if !name.is_empty() && name != broker.config().node_id.to_string() {
                        r.error_code = ResponseError::InvalidRequest.code();
                        r.error_message = Some(str_bytes(&format!("unknown broker {name}")));
                    } else {
                        r.configs = broker_entries(broker)
                            .iter()
                            .filter(|(k, _)| wanted(k))
                            .map(|(k, v)| entry(k, v, SOURCE_STATIC_BROKER, version))
                            .collect();
                    }
                }
                RESOURCE_GROUP => {
                    r.configs = broker
                        .groups()
                        .group_configs(&res.resource_name)
                        .iter()
                        .filter(|(k, _, _)| wanted(k))
                        .map(|(k, v, set)| {
                            let source = if *set { SOURCE_GROUP } else { SOURCE_DEFAULT };
                            let mut out = entry(k, v, source, version);
                            if version >= 1 && res_include_synonyms {
                                out.synonyms = group_synonyms(broker, k, v, *set);
                            }
                            out
                        })
                        .collect();
                }
                other => {
                    r.error_code = ResponseError::InvalidRequest.code();
                    r.error_message = Some(str_bytes(&format!(
                        "unsupported config resource type {other}"
                    )));
                }
            }
            r
        })
        .collect();
    DescribeConfigsResponse::default().with_results(results)
}

/// AlterConfigs (the legacy API librdkafka's `AlterConfigs` and older
/// tools use): the given configs become the resource's whole set of
/// overrides, the ones not named are removed, all or nothing.
pub(crate) async fn alter_configs(
    broker: &Arc<Broker>,
    _ctx: &ConnectionContext,
    req: AlterConfigsRequest,
) -> Result<AlterConfigsResponse, BrokerError> {
    let b = broker.clone();
    blocking(move || {
        let responses = req
            .resources
            .into_iter()
            .map(|res| {
                let mut r = LegacyResourceResponse::default()
                    .with_resource_type(res.resource_type)
                    .with_resource_name(res.resource_name.clone());
                let outcome = alter_resource(res.resource_type, || {
                    replace_topic_configs(&b, &res.resource_name, &res.configs, req.validate_only)
                });
                if let Err((code, message)) = outcome {
                    r.error_code = code.code();
                    r.error_message = Some(str_bytes(&message));
                }
                r
            })
            .collect();
        AlterConfigsResponse::default().with_responses(responses)
    })
    .await
}

/// Runs `alter_topic` for a topic resource; refuses the others (broker
/// settings are static).
fn alter_resource(
    resource_type: i8,
    alter_topic: impl FnOnce() -> Result<(), (ResponseError, String)>,
) -> Result<(), (ResponseError, String)> {
    match resource_type {
        RESOURCE_TOPIC => alter_topic(),
        RESOURCE_BROKER => Err((
            ResponseError::InvalidRequest,
            "broker settings are static: set them with runnel serve flags or its config file"
                .to_string(),
        )),
        other => Err((
            ResponseError::InvalidRequest,
            format!("unsupported config resource type {other}"),
        )),
    }
}

fn replace_topic_configs(
    broker: &Broker,
    name: &str,
    configs: &[LegacyConfig],
    validate_only: bool,
) -> Result<(), (ResponseError, String)> {
    let log_err = |e: LogError| (log_error_code(&e), e.to_string());
    let topic = broker
        .log()
        .topic(name)
        .ok_or_else(|| log_err(LogError::UnknownTopic(name.to_string())))?;
    let mut wanted: BTreeMap<String, String> = BTreeMap::new();
    for c in configs {
        match &c.value {
            Some(v) => {
                wanted.insert(c.name.to_string(), v.to_string());
            }
            None => {
                return Err((
                    ResponseError::InvalidConfig,
                    format!("{} needs a value", &*c.name),
                ))
            }
        }
    }
    if validate_only {
        return broker
            .log()
            .validate_configs(&wanted)
            .map(|_| ())
            .map_err(log_err);
    }
    let mut changes: Vec<(String, Option<String>)> = topic
        .overrides()
        .into_keys()
        .filter(|k| !wanted.contains_key(k))
        .map(|k| (k, None))
        .collect();
    changes.extend(wanted.into_iter().map(|(k, v)| (k, Some(v))));
    topic.alter_configs(&changes).map_err(log_err)
}

/// IncrementalAlterConfigs operations.
const OP_SET: i8 = 0;
const OP_DELETE: i8 = 1;
const OP_APPEND: i8 = 2;
const OP_SUBTRACT: i8 = 3;

pub(crate) async fn incremental_alter_configs(
    broker: &Arc<Broker>,
    _ctx: &ConnectionContext,
    req: IncrementalAlterConfigsRequest,
) -> Result<IncrementalAlterConfigsResponse, BrokerError> {
    let b = broker.clone();
    blocking(move || {
        let responses = req
            .resources
            .into_iter()
            .map(|res| {
                let mut r = AlterConfigsResourceResponse::default()
                    .with_resource_type(res.resource_type)
                    .with_resource_name(res.resource_name.clone());
                let outcome = if res.resource_type == RESOURCE_GROUP {
                    alter_group(&b, &res.resource_name, &res.configs, req.validate_only)
                } else {
                    alter_resource(res.resource_type, || {
                        alter_topic(&b, &res.resource_name, &res.configs, req.validate_only)
                    })
                };
                if let Err((code, message)) = outcome {
                    r.error_code = code.code();
                    r.error_message = Some(str_bytes(&message));
                }
                r
            })
            .collect();
        IncrementalAlterConfigsResponse::default().with_responses(responses)
    })
    .await
}

type AlterOp = kafka_protocol::messages::incremental_alter_configs_request::AlterableConfig;

/// Group configs (`consumer.*`, `share.*`), SET and DELETE only.
fn alter_group(
    broker: &Broker,
    name: &str,
    ops: &[AlterOp],
    validate_only: bool,
) -> Result<(), (ResponseError, String)> {
    let mut changes = Vec::with_capacity(ops.len());
    for op in ops {
        match op.config_operation {
            OP_SET => changes.push((
                op.name.to_string(),
                op.value.as_ref().map(|v| v.to_string()),
            )),
            OP_DELETE => changes.push((op.name.to_string(), None)),
            _ => {
                return Err((
                    ResponseError::InvalidConfig,
                    format!("{} is not a list config", &*op.name),
                ))
            }
        }
    }
    broker
        .groups()
        .alter_group_configs(name, &changes, validate_only)
        .map_err(|m| (ResponseError::InvalidConfig, m))?;
    broker
        .groups()
        .share()
        .flush()
        .map_err(|e| (ResponseError::KafkaStorageError, e.to_string()))
}

fn alter_topic(
    broker: &Broker,
    name: &str,
    ops: &[AlterOp],
    validate_only: bool,
) -> Result<(), (ResponseError, String)> {
    let log_err = |e: LogError| (log_error_code(&e), e.to_string());
    let topic = broker
        .log()
        .topic(name)
        .ok_or_else(|| log_err(LogError::UnknownTopic(name.to_string())))?;
    let effective: BTreeMap<String, String> = topic
        .describe_configs()
        .into_iter()
        .map(|e| (e.name, e.value))
        .collect();
    let mut changes: Vec<(String, Option<String>)> = Vec::with_capacity(ops.len());
    for op in ops {
        let key = op.name.to_string();
        let value = op.value.as_ref().map(|v| v.to_string());
        let change = match op.config_operation {
            OP_SET => match value {
                Some(v) => Some(v),
                None => {
                    return Err((
                        ResponseError::InvalidConfig,
                        format!("SET {key} needs a value"),
                    ))
                }
            },
            OP_DELETE => None,
            OP_APPEND | OP_SUBTRACT if key == "cleanup.policy" => {
                let mut items: Vec<String> = effective
                    .get(&key)
                    .map(|v| {
                        v.split(',')
                            .map(|s| s.trim().to_string())
                            .filter(|s| !s.is_empty())
                            .collect()
                    })
                    .unwrap_or_default();
                for item in value
                    .unwrap_or_default()
                    .split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                {
                    if op.config_operation == OP_APPEND {
                        if !items.iter().any(|i| i == item) {
                            items.push(item.to_string());
                        }
                    } else {
                        items.retain(|i| i != item);
                    }
                }
                Some(items.join(","))
            }
            OP_APPEND | OP_SUBTRACT => {
                return Err((
                    ResponseError::InvalidConfig,
                    format!("{key} is not a list config"),
                ));
            }
            other => {
                return Err((
                    ResponseError::InvalidRequest,
                    format!("unknown config operation {other}"),
                ))
            }
        };
        changes.push((key, change));
    }
    if validate_only {
        let mut merged = topic.overrides();
        for (k, v) in &changes {
            match v {
                Some(v) => merged.insert(k.clone(), v.clone()),
                None => merged.remove(k),
            };
        }
        broker
            .log()
            .validate_configs(&merged)
            .map(|_| ())
            .map_err(log_err)
    } else {
        topic.alter_configs(&changes).map_err(log_err)
    }
}
