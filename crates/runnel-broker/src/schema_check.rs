//! Broker-side schema validation, as Confluent Server and Redpanda offer
//! it: on a topic with `confluent.value.schema.validation=true` (or the
//! key's), every produced value (key) must start with the schema
//! registry's wire header — magic byte 0 and a 4-byte schema id — naming
//! a schema registered under the topic's subject
//! (`confluent.value.subject.name.strategy`: `<topic>-value` by default).
//! A batch with a record that does not is refused as a whole with
//! `INVALID_RECORD`, the records at fault named (KIP-467). Tombstones (a
//! null value) pass.
//!
//! The broker knows no registry: the binary hands it a
//! [`SchemaValidator`] (`Broker::set_schema_validator`). Without one, a
//! topic asking for validation refuses every produce, saying why.

use runnel_log::codec;
use runnel_log::LogConfig;

use crate::handlers::produce::AppendFailure;

/// What the broker asks a schema registry.
pub trait SchemaValidator: Send + Sync {
    /// Whether schema `id` is registered under `subject`. `Err`: the
    /// registry could not answer.
    fn is_registered(&self, subject: &str, id: i32) -> Result<bool, String>;
    /// The full name of schema `id`'s record or message (for the
    /// RecordName strategies); `None` when it has none.
    fn record_name(&self, id: i32) -> Result<Option<String>, String>;
}

const RECORD_NAME: &str = "io.confluent.kafka.serializers.subject.RecordNameStrategy";
const TOPIC_RECORD_NAME: &str = "io.confluent.kafka.serializers.subject.TopicRecordNameStrategy";

/// Why a record's key or value fails; `Err` when the registry could not
/// answer.
fn check_field(
    validator: &dyn SchemaValidator,
    topic: &str,
    is_key: bool,
    strategy: &str,
    bytes: &[u8],
) -> Result<Option<String>, String> {
    let what = if is_key { "key" } else { "value" };
    let id = match bytes {
        [0, a, b, c, d, ..] => i32::from_be_bytes([*a, *b, *c, *d]),
        _ => {
            return Ok(Some(format!(
                "its {what} does not start with a schema id (magic byte 0 and 4 bytes)"
            )))
        }
    };
    let subject = match strategy {
        RECORD_NAME | TOPIC_RECORD_NAME => match validator.record_name(id)? {
            None => {
                return Ok(Some(format!(
                    "its {what}'s schema {id} is unknown or has no record name"
                )))
            }
            Some(name) if strategy == RECORD_NAME => name,
            Some(name) => format!("{topic}-{name}"),
        },
        _ => format!("{topic}-{what}"),
    };
    Ok((!validator.is_registered(&subject, id)?)
        .then(|| format!("its {what}'s schema id {id} is not registered under subject {subject}")))
}

/// Checks a produced payload for a topic whose config asks for schema
/// validation: `Ok` when every record passes (or nothing is asked).
pub(crate) fn check(
    validator: Option<&dyn SchemaValidator>,
    topic: &str,
    index: i32,
    cfg: &LogConfig,
    payload: &[u8],
) -> Result<(), AppendFailure> {
    use kafka_protocol::ResponseError;
    if !cfg.key_schema_validation && !cfg.value_schema_validation {
        return Ok(());
    }
    let Some(validator) = validator else {
        return Err(AppendFailure::new(
            ResponseError::InvalidRecord.code(),
            format!(
                "topic {topic} asks for schema validation, but this broker has no schema registry"
            ),
        ));
    };
    let limit = codec::decompression_limit(cfg.max_message_bytes);
    let mut faults: Vec<(i32, String)> = Vec::new();
    let mut unavailable: Option<String> = None;
    codec::for_each_record(payload, limit, |r| {
        let (i, key, value) = (r.index, r.key, r.value);
        if unavailable.is_some() {
            return;
        }
        let fields = [
            (
                cfg.key_schema_validation,
                true,
                key,
                &cfg.key_subject_name_strategy,
            ),
            (
                cfg.value_schema_validation,
                false,
                value,
                &cfg.value_subject_name_strategy,
            ),
        ];
        for (on, is_key, bytes, strategy) in fields {
            let (true, Some(bytes)) = (on, bytes) else {
                continue;
            };
            match check_field(validator, topic, is_key, strategy, bytes) {
                Ok(None) => {}
                Ok(Some(why)) => {
                    faults.push((i, format!("record {i} failed schema validation: {why}")));
                    break;
                }
                Err(e) => {
                    unavailable = Some(e);
                    return;
                }
            }
        }
    })
    .map_err(|e| AppendFailure::new(ResponseError::CorruptMessage.code(), e.to_string()))?;
    if let Some(e) = unavailable {
        tracing::warn!(topic, partition = index, error = %e, "schema validation: the registry did not answer");
        return Err(AppendFailure::new(
            ResponseError::UnknownServerError.code(),
            format!(
                "schema validation of {topic}-{index}: the schema registry did not answer: {e}"
            ),
        ));
    }
    if faults.is_empty() {
        return Ok(());
    }
    tracing::warn!(
        topic,
        partition = index,
        records = faults.len(),
        "produce rejected: schema validation"
    );
    Err(AppendFailure {
        code: ResponseError::InvalidRecord.code(),
        message: Some(format!(
            "{} of the batch's records failed schema validation on {topic}-{index}; the first: {}",
            faults.len(),
            faults[0].1
        )),
        record_errors: faults,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::ResponseError;
    use runnel_log::batch::build::{build_batch, TestRecord};
    use std::collections::BTreeMap;

    /// The registry as a map: (subject, id) pairs and record names.
    struct Registered {
        ids: Vec<(&'static str, i32)>,
        names: BTreeMap<i32, &'static str>,
    }

    impl SchemaValidator for Registered {
        fn is_registered(&self, subject: &str, id: i32) -> Result<bool, String> {
            Ok(self.ids.contains(&(subject, id)))
        }
        fn record_name(&self, id: i32) -> Result<Option<String>, String> {
            Ok(self.names.get(&id).map(|s| s.to_string()))
        }
    }

    struct Down;
    impl SchemaValidator for Down {
        fn is_registered(&self, _: &str, _: i32) -> Result<bool, String> {
            Err("connection refused".into())
        }
        fn record_name(&self, _: i32) -> Result<Option<String>, String> {
            Err("connection refused".into())
        }
    }

    fn framed(id: i32) -> Vec<u8> {
        let mut v = vec![0];
        v.extend_from_slice(&id.to_be_bytes());
        v.extend_from_slice(b"payload");
        v
    }

    fn batch(values: &[Option<Vec<u8>>]) -> Vec<u8> {
        let records: Vec<TestRecord> = values
            .iter()
            .map(|v| TestRecord {
                key: Some(b"k".to_vec()),
                value: v.clone(),
                ..TestRecord::default()
            })
            .collect();
        build_batch(0, &records)
    }

    fn validating(strategy: &str) -> LogConfig {
        LogConfig {
            value_schema_validation: true,
            value_subject_name_strategy: strategy.to_string(),
            ..LogConfig::default()
        }
    }

    fn registry() -> Registered {
        Registered {
            ids: vec![("t-value", 1), ("other-value", 2), ("a.B", 3), ("t-a.B", 3)],
            names: BTreeMap::from([(3, "a.B")]),
        }
    }

    #[test]
    fn only_records_with_an_id_registered_for_the_topic_pass() {
        let r = registry();
        let cfg = validating(runnel_log::TOPIC_NAME_STRATEGY);
        let ok = batch(&[Some(framed(1)), None, Some(framed(1))]);
        assert!(check(Some(&r), "t", 0, &cfg, &ok).is_ok());

        let bad = batch(&[
            Some(framed(1)),
            Some(b"{\"plain\":1}".to_vec()),
            Some(framed(2)),
        ]);
        let e = check(Some(&r), "t", 0, &cfg, &bad).unwrap_err();
        assert_eq!(e.code, ResponseError::InvalidRecord.code());
        let faults: Vec<i32> = e.record_errors.iter().map(|(i, _)| *i).collect();
        assert_eq!(faults, vec![1, 2]);
        assert!(
            e.record_errors[0]
                .1
                .contains("does not start with a schema id"),
            "{e}"
        );
        assert!(
            e.record_errors[1]
                .1
                .contains("not registered under subject t-value"),
            "{e}"
        );

        // Nothing asked, nothing checked.
        assert!(check(None, "t", 0, &LogConfig::default(), &bad).is_ok());
    }

    #[test]
    fn record_name_strategies_name_the_subject_by_the_schema() {
        let r = registry();
        let rn = validating("io.confluent.kafka.serializers.subject.RecordNameStrategy");
        assert!(check(Some(&r), "t", 0, &rn, &batch(&[Some(framed(3))])).is_ok());
        assert!(check(Some(&r), "t", 0, &rn, &batch(&[Some(framed(1))])).is_err());
        let trn = validating("io.confluent.kafka.serializers.subject.TopicRecordNameStrategy");
        assert!(check(Some(&r), "t", 0, &trn, &batch(&[Some(framed(3))])).is_ok());
        assert!(check(Some(&r), "u", 0, &trn, &batch(&[Some(framed(3))])).is_err());
    }

    #[test]
    fn without_a_registry_the_topic_refuses_and_says_why() {
        let cfg = validating(runnel_log::TOPIC_NAME_STRATEGY);
        let b = batch(&[Some(framed(1))]);
        let e = check(None, "t", 0, &cfg, &b).unwrap_err();
        assert_eq!(e.code, ResponseError::InvalidRecord.code());
        assert!(e.to_string().contains("no schema registry"), "{e}");
        let e = check(Some(&Down), "t", 0, &cfg, &b).unwrap_err();
        assert_eq!(e.code, ResponseError::UnknownServerError.code());
        assert!(e.to_string().contains("connection refused"), "{e}");
    }
}
