//! Planning sinks: writing a query's stream or table to its topic (or a
//! callback), with the key and value serdes of its formats.

use super::*;

impl<'a> Planner<'a> {
    pub(super) fn write_stream(
        &mut self,
        s: KStream<Row, Row>,
        schema: &Schema,
        window: Option<WindowType>,
        sink: Sink,
    ) -> Result<(), SqlError> {
        match sink {
            Sink::Topic { ref topic, .. } => {
                let (ks, vs) = sink_serdes(&sink, schema)?;
                // An empty row is a record whose value was null.
                let vs = NullWhenEmpty {
                    inner: vs,
                    columns: schema.value.len(),
                };
                s.to_with(topic, key_serde_for::<Row>(ks, window), vs);
            }
            Sink::Callback(f) => s.foreach(move |k: &Row, v: &Row| {
                f(SinkRow {
                    key: k.clone(),
                    window: None,
                    value: Some(v.clone()),
                })
            }),
        }
        Ok(())
    }

    pub(super) fn write_table<K: KeyRow>(
        &mut self,
        t: KTable<K, Row>,
        schema: &Schema,
        window: Option<WindowType>,
        sink: Sink,
        times: Option<SinkTime>,
    ) -> Result<(), SqlError> {
        let mut s = t.to_stream();
        if let Some((i, parser)) = times {
            // Updates whose time cannot be read or is negative are not
            // written; deletions keep the time they have.
            let p2 = parser.clone();
            s = s
                .flat_map_values(move |_, v: Option<Row>| match v {
                    None => Some(None),
                    Some(row) => event_time(row.get(i), parser.as_deref()).map(|_| Some(row)),
                })
                .with_timestamps(move |_, v: &Option<Row>, ts| {
                    v.as_ref()
                        .and_then(|r| event_time(r.get(i), p2.as_deref()))
                        .unwrap_or(ts)
                });
        }
        match sink {
            Sink::Topic { ref topic, .. } => {
                let (ks, vs) = sink_serdes(&sink, schema)?;
                s.to_with(topic, key_serde_for::<K>(ks, window), OptionSerde(vs));
            }
            Sink::Callback(f) => s.foreach(move |k: &K, v: &Option<Row>| {
                f(SinkRow {
                    key: k.row().clone(),
                    window: k.window(),
                    value: v.clone(),
                })
            }),
        }
        Ok(())
    }
}

/// The key and value serdes of a topic sink, once its formats are known to
/// carry the schema's columns.
pub(super) fn sink_serdes(sink: &Sink, schema: &Schema) -> Result<(RowSerde, RowSerde), SqlError> {
    let Sink::Topic {
        topic,
        key_format,
        value_format,
        wrap_single_value,
        key_schema_id,
        value_schema_id,
        key_protobuf_nullable,
        value_protobuf_nullable,
        key_delimiter,
        value_delimiter,
    } = sink
    else {
        return Err(SqlError::server("a callback sink has no serdes"));
    };
    if let Some(c) = schema.key.iter().find(|c| contains_map(&c.ty)) {
        return Err(SqlError::new(map_key_message(&c.name, &c.ty)));
    }
    key_format
        .check(&schema.key, "key")
        .map_err(SqlError::new)?;
    value_format
        .check(&schema.value, "value")
        .map_err(SqlError::new)?;
    Ok((
        RowSerde::with_spec(
            *key_format,
            CodecSpec {
                topic: Some(topic),
                is_key: true,
                schema_id: *key_schema_id,
                protobuf_nullable: *key_protobuf_nullable,
                delimiter: *key_delimiter,
                ..CodecSpec::new(&schema.key, false)
            },
        ),
        RowSerde::with_spec(
            *value_format,
            CodecSpec {
                topic: Some(topic),
                schema_id: *value_schema_id,
                protobuf_nullable: *value_protobuf_nullable,
                delimiter: *value_delimiter,
                ..CodecSpec::new(&schema.value, *wrap_single_value)
            },
        ),
    ))
}

/// The sink key serde of a (possibly windowed) key: `Windowed<Row>` keys
/// of windowed aggregations, or rows that end with their window's bounds
/// (queries over windowed sources).
pub(super) fn key_serde_for<K: KeyRow>(
    ks: RowSerde,
    window: Option<WindowType>,
) -> Arc<dyn Serde<K>> {
    let as_row: Box<dyn std::any::Any> = Box::new(match window {
        None => Box::new(ks.clone()) as Box<dyn Serde<Row>>,
        Some(w) => Box::new(WindowedRowSerde {
            inner: ks.clone(),
            window: w,
        }) as Box<dyn Serde<Row>>,
    });
    if let Ok(b) = as_row.downcast::<Box<dyn Serde<K>>>() {
        return Arc::from(*b);
    }
    let windowed: Box<dyn std::any::Any> = match window {
        Some(WindowType::Session) => {
            Box::new(Box::new(WindowedSerde::session(ks)) as Box<dyn Serde<Windowed<Row>>>)
        }
        Some(WindowType::Time { size_ms }) => {
            Box::new(Box::new(WindowedSerde::time(ks, size_ms)) as Box<dyn Serde<Windowed<Row>>>)
        }
        None => Box::new(()),
    };
    match windowed.downcast::<Box<dyn Serde<K>>>() {
        Ok(b) => Arc::from(*b),
        Err(_) => Arc::new(NeverSerde),
    }
}

/// Only reached if a key type and its window disagree, which the planner
/// never builds; it refuses to write rather than panic.
pub(super) struct NeverSerde;

impl<K> Serde<K> for NeverSerde {
    fn serialize(&self, _: &K) -> Serialized {
        Err(SerdeError("key type and window type disagree".into()))
    }
    fn deserialize(&self, _: Option<&[u8]>) -> Result<K, SerdeError> {
        Err(SerdeError("key type and window type disagree".into()))
    }
}

/// A stream sink's value serde: an empty row where the schema has value
/// columns is a null value passed through (a tombstone on the topic).
struct NullWhenEmpty {
    inner: RowSerde,
    columns: usize,
}

impl Serde<Row> for NullWhenEmpty {
    fn serialize(&self, v: &Row) -> Serialized {
        if v.is_empty() && self.columns > 0 {
            return Ok(None);
        }
        self.inner.serialize(v)
    }
    fn deserialize(&self, b: Option<&[u8]>) -> Result<Row, SerdeError> {
        self.inner.deserialize(b)
    }
    fn partition_bytes<'a>(&self, serialized: &'a [u8]) -> &'a [u8] {
        self.inner.partition_bytes(serialized)
    }
}

/// Whether a type is a MAP or holds one (in an ARRAY, MAP or STRUCT).
pub(crate) fn contains_map(ty: &crate::types::SqlType) -> bool {
    use crate::types::SqlType;
    match ty {
        SqlType::Map(..) => true,
        SqlType::Array(t) => contains_map(t),
        SqlType::Struct(fields) => fields.iter().any(|(_, t)| contains_map(t)),
        _ => false,
    }
}

/// ksqlDB's refusal of a key column holding a MAP, in its words (a
/// map's serialized order is not stable, so equal keys could differ).
pub(crate) fn map_key_message(column: &str, ty: &crate::types::SqlType) -> String {
    format!(
        "Map keys, including types that contain maps, are not supported as they may lead to \
         unexpected behavior due to inconsistent serialization. Key column name: `{column}`. \
         Column type: {ty}. See https://github.com/confluentinc/ksql/issues/6621 for more."
    )
}
