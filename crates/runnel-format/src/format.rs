//! Serialization formats of keys and values, as named in `KEY_FORMAT` /
//! `VALUE_FORMAT`, behind one trait, and [`RowSerde`], the stream engine's
//! serde of rows in a format.
//!
//! A format ([`RowFormat`]) says which columns it can carry and makes a
//! [`RowCodec`] for rows of given columns; encoding and decoding can fail,
//! and a failure is the caller's processing error, never a NULL. Formats
//! are found by name in a [`FormatRegistry`], as functions are in the
//! function registry: the built-in ones are KAFKA, JSON, DELIMITED and
//! NONE ([`crate::kafka`], [`crate::json`], [`crate::delimited`]); formats
//! that need a schema registry (AVRO, PROTOBUF, JSON_SR) register
//! themselves with a registry client, and keep per-query state (the schema
//! id a query writes with, fixed when it is planned) in their codec
//! through [`CodecSpec::schema_id`]. The internal encoding of repartition
//! topics and state is not a user format ([`InternalSerde`]).

use std::fmt;
use std::sync::{Arc, LazyLock};

use runnel_streams::serdes::{Serde, SerdeError, Serialized};

pub use crate::internal::{InternalKeySerde, InternalSerde};
pub use crate::json::{from_json, to_json, write_json_text};
use crate::schema::Column;
use crate::types::{SqlType, Value};

/// A row: the values of some columns, in the columns' order.
pub type Row = Vec<Value>;

/// Why a format refused columns, a row or bytes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FormatError {
    /// No format of this name is registered.
    #[error("Unknown format: {name}; expected one of {known}")]
    Unknown { name: String, known: String },
    /// A format that needs a schema registry, and none is configured.
    #[error("format {0} needs a schema registry: configure 'ksql.schema.registry.url'")]
    NeedsSchemaRegistry(String),
    /// The schema registry failed or refused a call.
    #[error("{0}")]
    Registry(String),
    /// The format cannot carry these columns.
    #[error("{0}")]
    Unsupported(String),
    /// A row the format cannot write.
    #[error("{0}")]
    Encode(String),
    /// Bytes that are not a row of the columns in this format.
    #[error("{0}")]
    Decode(String),
}

impl From<FormatError> for String {
    fn from(e: FormatError) -> String {
        e.to_string()
    }
}

/// What a codec is made for: the columns, the statement's options, and
/// per-query state.
#[derive(Debug, Clone, Copy)]
pub struct CodecSpec<'a> {
    pub columns: &'a [Column],
    /// One column: whether it is wrapped in a record (`WRAP_SINGLE_VALUE`).
    pub wrap_single: bool,
    /// The field delimiter of DELIMITED.
    pub delimiter: char,
    /// The schema id a query writes with, for formats that need a schema
    /// registry: registered or looked up when the query is planned, so a
    /// codec never blocks on the registry per record.
    pub schema_id: Option<i32>,
    /// The topic the rows are written to, for formats whose schemas live
    /// in a schema registry (its subject is `<topic>-key`/`<topic>-value`).
    pub topic: Option<&'a str>,
    /// Keys (not values) of `topic`.
    pub is_key: bool,
    /// The full name of the record a schema-registry format registers
    /// (`VALUE_AVRO_SCHEMA_FULL_NAME`); ksqlDB's default when `None`.
    pub full_name: Option<&'a str>,
    /// How a derived Protobuf schema makes scalars nullable
    /// (`…_PROTOBUF_NULLABLE_REPRESENTATION`).
    pub protobuf_nullable: Option<crate::protobuf::NullableRepresentation>,
}

impl<'a> CodecSpec<'a> {
    /// Rows of `columns`, wrapped as `wrap_single` says, nothing else set.
    pub fn new(columns: &'a [Column], wrap_single: bool) -> CodecSpec<'a> {
        CodecSpec {
            columns,
            wrap_single,
            delimiter: ',',
            schema_id: None,
            topic: None,
            is_key: false,
            full_name: None,
            protobuf_nullable: None,
        }
    }
}

/// One serialization format.
pub trait RowFormat: Send + Sync + 'static {
    /// Its name in `KEY_FORMAT` / `VALUE_FORMAT` (upper case).
    fn name(&self) -> &'static str;
    /// Whether it reads and writes schemas through a schema registry.
    fn needs_schema_registry(&self) -> bool {
        false
    }
    /// Whether `…_PROTOBUF_NULLABLE_REPRESENTATION` applies to it (the
    /// Protobuf formats).
    fn supports_protobuf_nullable(&self) -> bool {
        false
    }
    /// Checks that the format can carry these columns (`what`: "key" or
    /// "value", for the message).
    fn check(&self, columns: &[Column], what: &str) -> Result<(), FormatError>;
    /// A codec for rows as `spec` describes them.
    fn codec(&self, spec: &CodecSpec<'_>) -> Arc<dyn RowCodec>;
    /// Registers the schema rows of `spec` are written with under the
    /// subject of its topic, returning its id; `None` for formats without
    /// a schema registry.
    fn register(&self, spec: &CodecSpec<'_>) -> Result<Option<i32>, FormatError> {
        let _ = spec;
        Ok(None)
    }
    /// The columns of a topic's keys (`is_key`) or values, from the schema
    /// `schema_id` or the latest of the topic's subject, and whether they
    /// are wrapped in a record; `None` when the format has no schemas or
    /// the subject has none.
    fn infer(
        &self,
        topic: &str,
        is_key: bool,
        schema_id: Option<i32>,
    ) -> Result<Option<(Vec<Column>, bool)>, FormatError> {
        let _ = (topic, is_key, schema_id);
        Ok(None)
    }
}

/// Encodes and decodes the rows of one set of columns in one format.
pub trait RowCodec: Send + Sync {
    /// The record bytes of `row`; `None` for a null field.
    fn encode(&self, row: &[Value]) -> Result<Option<Vec<u8>>, FormatError>;
    /// The row of a (non-null) record field.
    fn decode(&self, bytes: &[u8]) -> Result<Row, FormatError>;
    /// Decodes into a row laid out for the planner: `prefix` NULLs (the
    /// key columns' slots), the columns, `suffix` more NULLs (the pseudo
    /// columns), with room for `spare` more values (a join appends the
    /// other side's columns). Columns flagged in `unread` may be left NULL
    /// when no one reads them. Formats that can decode in place override
    /// it; this one decodes and copies.
    fn decode_with_prefix(
        &self,
        bytes: &[u8],
        prefix: usize,
        suffix: usize,
        spare: usize,
        unread: &[bool],
    ) -> Result<Row, FormatError> {
        let _ = unread;
        Ok(padded(self.decode(bytes)?, prefix, suffix, spare))
    }
}

/// `values` with `prefix` NULLs before, `suffix` after, and room for
/// `spare` more (see [`RowCodec::decode_with_prefix`]).
pub fn padded(values: Row, prefix: usize, suffix: usize, spare: usize) -> Row {
    let mut row = Vec::with_capacity(prefix + values.len() + suffix + spare);
    row.resize_with(prefix, || Value::Null);
    row.extend(values);
    row.resize_with(row.len() + suffix, || Value::Null);
    row
}

/// A format, as named in `KEY_FORMAT` / `VALUE_FORMAT`: a handle to a
/// registered [`RowFormat`], compared by name.
#[derive(Clone, Copy)]
pub struct Format(&'static dyn RowFormat);

impl Format {
    /// A single primitive column in Kafka's own serializations.
    pub const KAFKA: Format = Format(&crate::kafka::KafkaFormat);
    /// JSON objects (or one unwrapped value).
    pub const JSON: Format = Format(&crate::json::JsonFormat);
    /// Comma-separated text.
    pub const DELIMITED: Format = Format(&crate::delimited::DelimitedFormat);
    /// No bytes at all: for keyless streams.
    pub const NONE: Format = Format(&NoneFormat);
    /// Protobuf messages of the schema derived from the columns, without
    /// a schema registry.
    pub const PROTOBUF_NOSR: Format = Format(&crate::protobuf::ProtobufNoSr);

    /// A format of `'static` lifetime (a registry leaks one per format it
    /// is given: formats are few and live as long as the process).
    pub fn new(format: &'static dyn RowFormat) -> Format {
        Format(format)
    }

    /// Looks a format name up among the built-in formats.
    pub fn parse(name: &str) -> Result<Format, FormatError> {
        BUILTIN.get(name)
    }

    /// Its name.
    pub fn name(&self) -> &'static str {
        self.0.name()
    }

    /// Checks that the format can carry these columns.
    /// A refusal reads as ksqlDB's: "Key format does not support schema."
    /// with the format, the columns and the format's reason.
    pub fn check(&self, columns: &[Column], what: &str) -> Result<(), FormatError> {
        self.0.check(columns, what).map_err(|e| match e {
            FormatError::Unsupported(reason) => FormatError::Unsupported(format!(
                "{} format does not support schema.\nformat: {}\nschema: Persistence{{columns=[{}], features=[]}}\nreason: {reason}",
                if what == "key" { "Key" } else { "Value" },
                self.name(),
                crate::schema::persisted_columns(columns, what)
            )),
            other => other,
        })
    }

    /// The format itself.
    pub fn get(&self) -> &'static dyn RowFormat {
        self.0
    }
}

impl PartialEq for Format {
    fn eq(&self, other: &Format) -> bool {
        self.name() == other.name()
    }
}

impl Eq for Format {}

impl std::hash::Hash for Format {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.name().hash(state)
    }
}

impl fmt::Debug for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Format({})", self.name())
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Names that are formats of ksqlDB's which need a schema registry.
const SCHEMA_REGISTRY_FORMATS: [&str; 3] = ["AVRO", "PROTOBUF", "JSON_SR"];

/// The formats statements may name, by name.
#[derive(Clone)]
pub struct FormatRegistry {
    formats: Vec<Format>,
}

impl fmt::Debug for FormatRegistry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.names()).finish()
    }
}

static BUILTIN: LazyLock<FormatRegistry> = LazyLock::new(FormatRegistry::builtin);

impl FormatRegistry {
    /// KAFKA, JSON, DELIMITED, NONE and PROTOBUF_NOSR.
    pub fn builtin() -> FormatRegistry {
        FormatRegistry {
            formats: vec![
                Format::KAFKA,
                Format::JSON,
                Format::DELIMITED,
                Format::NONE,
                Format::PROTOBUF_NOSR,
            ],
        }
    }

    /// The built-in formats and AVRO, PROTOBUF and JSON_SR, whose schemas live in
    /// the registry `client` talks to.
    pub fn with_schema_registry(client: runnel_registry_client::RegistryClient) -> FormatRegistry {
        use crate::registry::{Kind, RegistryFormat};
        let mut r = FormatRegistry::builtin();
        for kind in [Kind::Avro, Kind::Protobuf, Kind::JsonSr] {
            let format: &'static RegistryFormat =
                Box::leak(Box::new(RegistryFormat::new(kind, client.clone())));
            r.register(Format::new(format));
        }
        r
    }

    /// Adds a format, or replaces the one of the same name; returns the
    /// replaced one.
    pub fn register(&mut self, format: Format) -> Option<Format> {
        match self.formats.iter_mut().find(|f| **f == format) {
            Some(f) => Some(std::mem::replace(f, format)),
            None => {
                self.formats.push(format);
                None
            }
        }
    }

    /// The format named `name` (in any case).
    pub fn get(&self, name: &str) -> Result<Format, FormatError> {
        let upper = name.to_ascii_uppercase();
        if let Some(f) = self.formats.iter().find(|f| f.name() == upper) {
            return Ok(*f);
        }
        if SCHEMA_REGISTRY_FORMATS.contains(&upper.as_str()) {
            return Err(FormatError::NeedsSchemaRegistry(name.to_string()));
        }
        Err(FormatError::Unknown {
            name: name.to_string(),
            known: self.names().collect::<Vec<_>>().join(", "),
        })
    }

    /// The registered formats' names, in registration order.
    pub fn names(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.formats.iter().map(|f| f.name())
    }
}

/// NONE: no bytes at all, for keyless streams.
struct NoneFormat;

impl RowFormat for NoneFormat {
    fn name(&self) -> &'static str {
        "NONE"
    }
    fn check(&self, columns: &[Column], what: &str) -> Result<(), FormatError> {
        if columns.is_empty() {
            Ok(())
        } else {
            Err(FormatError::Unsupported(format!(
                "The 'NONE' format can only be used when no columns are defined. Got: [{}]",
                crate::schema::persisted_columns(columns, what)
            )))
        }
    }
    fn codec(&self, _: &CodecSpec<'_>) -> Arc<dyn RowCodec> {
        Arc::new(NoneCodec)
    }
}

struct NoneCodec;

impl RowCodec for NoneCodec {
    fn encode(&self, _: &[Value]) -> Result<Option<Vec<u8>>, FormatError> {
        Ok(None)
    }
    fn decode(&self, _: &[u8]) -> Result<Row, FormatError> {
        Ok(Vec::new())
    }
}

/// Encodes and decodes rows of given columns in a format: the stream
/// engine's serde of SQL rows.
#[derive(Clone)]
pub struct RowSerde {
    pub format: Format,
    pub columns: Vec<Column>,
    /// JSON with one column: whether it is wrapped in an object.
    pub wrap_single: bool,
    codec: Arc<dyn RowCodec>,
    /// KAFKA with one STRING column: the common key, written and read
    /// without the codec.
    kafka_string: bool,
}

impl fmt::Debug for RowSerde {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RowSerde")
            .field("format", &self.format)
            .field("columns", &self.columns)
            .field("wrap_single", &self.wrap_single)
            .finish_non_exhaustive()
    }
}

impl RowSerde {
    /// Rows of `columns` in `format`.
    pub fn new(format: Format, columns: Vec<Column>, wrap_single: bool) -> Self {
        RowSerde::with_spec(format, CodecSpec::new(&columns, wrap_single))
    }

    /// Rows as `spec` describes them (a delimiter, a schema id…).
    pub fn with_spec(format: Format, spec: CodecSpec<'_>) -> Self {
        let kafka_string = format == Format::KAFKA
            && matches!(
                spec.columns,
                [Column {
                    ty: SqlType::String,
                    ..
                }]
            );
        RowSerde {
            format,
            columns: spec.columns.to_vec(),
            wrap_single: spec.wrap_single,
            codec: format.get().codec(&spec),
            kafka_string,
        }
    }

    /// The record bytes of `row`; `None` for a null field.
    pub fn encode(&self, row: &[Value]) -> Result<Option<Vec<u8>>, FormatError> {
        self.codec.encode(row)
    }

    /// See [`RowCodec::decode_with_prefix`].
    #[inline]
    pub fn decode_with_prefix(
        &self,
        bytes: &[u8],
        prefix: usize,
        suffix: usize,
        spare: usize,
        unread: &[bool],
    ) -> Result<Row, FormatError> {
        self.codec
            .decode_with_prefix(bytes, prefix, suffix, spare, unread)
    }

    /// The row of a (non-null) record field.
    pub fn decode(&self, bytes: &[u8]) -> Result<Row, FormatError> {
        self.codec.decode(bytes)
    }
}

impl Serde<Row> for RowSerde {
    /// A row the format cannot carry is an error (the engine skips its
    /// record as a processing error), never a null: a null value on a
    /// table's topic is a tombstone.
    fn serialize(&self, row: &Row) -> Serialized {
        if self.kafka_string {
            if let Some(Value::String(text)) = row.first() {
                return Ok(Some(text.as_bytes().to_vec()));
            }
        }
        self.encode(row)
            .map_err(|e| SerdeError(format!("cannot write a {} row: {e}", self.format)))
    }
    fn deserialize(&self, bytes: Option<&[u8]>) -> Result<Row, SerdeError> {
        match bytes {
            None => Ok(vec![Value::Null; self.columns.len()]),
            Some(b) => {
                if self.kafka_string {
                    if let Ok(text) = std::str::from_utf8(b) {
                        return Ok(vec![Value::String(text.to_owned())]);
                    }
                }
                self.decode(b).map_err(|e| SerdeError(e.to_string()))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::internal::*;
    use crate::json::*;

    fn cols(spec: &[(&str, SqlType)]) -> Vec<Column> {
        spec.iter()
            .map(|(n, t)| Column::new(n, t.clone()))
            .collect()
    }

    #[test]
    fn json_rows_round_trip_and_match_names_case_insensitively() {
        let s = RowSerde::new(
            Format::JSON,
            cols(&[("USER_ID", SqlType::String), ("N", SqlType::Int)]),
            true,
        );
        let row = s.decode(br#"{"user_id":"u1","n":3}"#).unwrap();
        assert_eq!(row, vec![Value::String("u1".into()), Value::Int(3)]);
        let bytes = s.encode(&row).unwrap().unwrap();
        assert_eq!(bytes, br#"{"USER_ID":"u1","N":3}"#.to_vec());
        assert!(s.decode(b"{not json").is_err());
    }

    #[test]
    fn rows_decode_with_room_for_joined_columns() {
        let s = RowSerde::new(
            Format::JSON,
            cols(&[("S", SqlType::String), ("N", SqlType::BigInt)]),
            true,
        );
        let d = RowSerde::new(
            Format::DELIMITED,
            cols(&[("S", SqlType::String), ("N", SqlType::BigInt)]),
            true,
        );
        for (serde, bytes) in [(&s, &br#"{"S":"x","N":5}"#[..]), (&d, b"x,5")] {
            let row = serde.decode_with_prefix(bytes, 1, 3, 6, &[]);
            let row = row.unwrap_or_default();
            assert_eq!(row.len(), 1 + 2 + 3, "{bytes:?}");
            assert!(row.capacity() >= row.len() + 6, "{bytes:?}");
        }
    }

    #[test]
    fn unread_string_columns_are_skipped_but_other_columns_still_checked() {
        let s = RowSerde::new(
            Format::JSON,
            cols(&[("S", SqlType::String), ("N", SqlType::BigInt)]),
            true,
        );
        let all = s
            .decode_with_prefix(br#"{"S":"x","N":5}"#, 1, 2, 0, &[])
            .unwrap();
        assert_eq!(
            all,
            vec![
                Value::Null,
                Value::String("x".into()),
                Value::BigInt(5),
                Value::Null,
                Value::Null
            ]
        );
        let pruned = s
            .decode_with_prefix(br#"{"S":{"any":[1]},"N":5}"#, 1, 2, 0, &[true, true])
            .unwrap();
        assert_eq!(pruned[1], Value::Null, "the unread STRING is not built");
        assert_eq!(pruned[2], Value::BigInt(5));
        // A value that does not fit a (read or unread) non-STRING column
        // still fails the record, as without pruning.
        assert!(s
            .decode_with_prefix(br#"{"S":"x","N":"zz"}"#, 1, 2, 0, &[true, true])
            .is_err());
    }

    #[test]
    fn kafka_format_uses_kafka_serializations() {
        let s = RowSerde::new(Format::KAFKA, cols(&[("K", SqlType::BigInt)]), false);
        let b = s.encode(&[Value::BigInt(7)]).unwrap().unwrap();
        assert_eq!(b, 7i64.to_be_bytes());
        assert_eq!(s.decode(&b).unwrap(), vec![Value::BigInt(7)]);
        assert!(s.decode(b"abc").is_err());
        assert!(Format::KAFKA
            .check(&cols(&[("A", SqlType::Int), ("B", SqlType::Int)]), "key")
            .is_err());
    }

    /// A row the format cannot carry is an error, not a null: a null value
    /// on a table's topic would be a tombstone deleting the key's row.
    #[test]
    fn a_row_that_cannot_be_encoded_is_an_error_not_a_tombstone() {
        let s = RowSerde::new(Format::KAFKA, cols(&[("V", SqlType::BigInt)]), false);
        let err = Serde::serialize(&s, &vec![Value::Boolean(true)]).unwrap_err();
        assert!(err.0.contains("KAFKA"), "{err}");
        // A null stays a null.
        assert_eq!(Serde::serialize(&s, &vec![Value::Null]), Ok(None));
    }

    #[test]
    fn delimited_quotes_fields_with_delimiters() {
        let s = RowSerde::new(
            Format::DELIMITED,
            cols(&[("A", SqlType::String), ("B", SqlType::Int)]),
            true,
        );
        let b = s
            .encode(&[Value::String("x,y".into()), Value::Int(1)])
            .unwrap()
            .unwrap();
        assert_eq!(b, b"\"x,y\",1".to_vec());
        assert_eq!(
            s.decode(&b).unwrap(),
            vec![Value::String("x,y".into()), Value::Int(1)]
        );
        assert_eq!(s.decode(b",2").unwrap(), vec![Value::Null, Value::Int(2)]);
        assert!(s.decode(b"1").is_err());
    }

    #[test]
    fn internal_rows_round_trip() {
        let row = vec![
            Value::Decimal("1.50".parse().unwrap()),
            Value::Array(vec![Value::Null, Value::Double(0.5)]),
        ];
        let b = InternalSerde.serialize(&row).unwrap().unwrap();
        assert_eq!(InternalSerde.deserialize(Some(&b)).unwrap(), row);
    }

    #[test]
    fn scalar_rows_take_the_fixed_width_form() {
        let row = vec![
            Value::BigInt(-3),
            Value::Null,
            Value::Double(0.25),
            Value::Boolean(true),
            Value::Int(7),
            Value::Date(19_000),
            Value::Time(1_000),
            Value::Timestamp(1_700_000_000_000),
        ];
        let b = InternalSerde.serialize(&row).unwrap().unwrap();
        assert_eq!(&b[..2], &[SCALAR_FORM, 8]);
        assert_eq!(b.len(), 2 + 2 + 1 + 9 + 1 + 5 + 5 + 9 + 9);
        assert_eq!(InternalSerde.deserialize(Some(&b)).unwrap(), row);
        // A row with a string stays postcard.
        let mixed = vec![Value::BigInt(1), Value::String("a".into())];
        let b = InternalSerde.serialize(&mixed).unwrap().unwrap();
        assert_eq!(b, postcard::to_stdvec(&mixed).unwrap());
        assert_eq!(InternalSerde.deserialize(Some(&b)).unwrap(), mixed);
    }

    #[test]
    fn is_scalar_agrees_with_scalar_parts() {
        for v in [
            Value::Null,
            Value::Boolean(true),
            Value::Int(1),
            Value::BigInt(1),
            Value::Double(1.0),
            Value::Decimal(rust_decimal::Decimal::ONE),
            Value::String("a".into()),
            Value::Bytes(vec![1]),
            Value::Date(1),
            Value::Time(1),
            Value::Timestamp(1),
            Value::Array(vec![]),
            Value::Map(vec![]),
            Value::Struct(vec![]),
        ] {
            assert_eq!(is_scalar(&v), scalar_parts(&v).is_some(), "{v:?}");
        }
    }

    #[test]
    fn bigints_take_as_few_bytes_as_they_need_and_round_trip() {
        let size = |i: i64| {
            InternalSerde
                .serialize(&vec![Value::BigInt(i)])
                .unwrap()
                .unwrap()
                .len()
        };
        // Form, count, tag, then 1 byte up to ±63, 2 up to ±8191, … 10.
        assert_eq!(size(0), 4);
        assert_eq!(size(-64), 4);
        assert_eq!(size(64), 5);
        assert_eq!(size(i64::MAX), 13);
        assert_eq!(size(i64::MIN), 13);
        for i in [
            0,
            1,
            -1,
            63,
            -64,
            64,
            8191,
            -8192,
            1 << 40,
            i64::MAX,
            i64::MIN,
        ] {
            let row = vec![Value::BigInt(i)];
            let b = InternalSerde.serialize(&row).unwrap().unwrap();
            assert_eq!(InternalSerde.deserialize(Some(&b)).unwrap(), row, "{i}");
        }
        // The fixed-width BIGINT earlier builds wrote still reads.
        let mut old = vec![SCALAR_FORM, 1, T_BIGINT];
        old.extend_from_slice(&(-5i64).to_le_bytes());
        assert_eq!(
            InternalSerde.deserialize(Some(&old)).unwrap(),
            vec![Value::BigInt(-5)]
        );
    }

    #[test]
    fn postcard_rows_written_before_the_scalar_form_still_read() {
        for row in [
            vec![],
            vec![Value::BigInt(41)],
            vec![Value::Null, Value::Double(1.5), Value::Int(-2)],
        ] {
            let old = postcard::to_stdvec(&row).unwrap();
            assert_eq!(InternalSerde.deserialize(Some(&old)).unwrap(), row);
        }
    }

    #[test]
    fn broken_scalar_rows_are_errors() {
        for b in [
            &[SCALAR_FORM, 1][..],
            &[SCALAR_FORM, 1, T_BIGINT, 1, 2],
            // A varint that never ends, and one longer than 64 bits.
            &[SCALAR_FORM, 1, T_VARBIGINT, 0x80, 0x80],
            &[
                SCALAR_FORM,
                1,
                T_VARBIGINT,
                0xff,
                0xff,
                0xff,
                0xff,
                0xff,
                0xff,
                0xff,
                0xff,
                0xff,
                0x02,
            ],
            &[SCALAR_FORM, 1, 99],
            &[SCALAR_FORM, 1, T_NULL, T_NULL],
        ] {
            assert!(InternalSerde.deserialize(Some(b)).is_err(), "{b:?}");
        }
    }

    #[test]
    fn the_flat_scanner_reads_plain_objects_and_leaves_the_rest_to_serde() {
        let columns = cols(&[
            ("S", SqlType::String),
            ("N", SqlType::BigInt),
            ("I", SqlType::Int),
            ("B", SqlType::Boolean),
        ]);
        let read = |text: &str| scan_flat_object(&columns, text.as_bytes(), (1, 1, 0), &[]);
        let row =
            |s: Value, n: Value, i: Value, b: Value| vec![Value::Null, s, n, i, b, Value::Null];
        for (text, expected) in [
            (
                r#"{"S":"x","N":-12,"I":7,"B":true}"#,
                row(
                    Value::String("x".into()),
                    Value::BigInt(-12),
                    Value::Int(7),
                    Value::Boolean(true),
                ),
            ),
            (
                " { \"b\" : false , \"X\": 2.5e3, \"n\": null } ",
                row(Value::Null, Value::Null, Value::Null, Value::Boolean(false)),
            ),
            (
                "{\"N\":-9223372036854775808,\"S\":\"\u{e9}t\u{e9}\",\"I\":-0}",
                row(
                    Value::String("\u{e9}t\u{e9}".into()),
                    Value::BigInt(i64::MIN),
                    Value::Int(0),
                    Value::Null,
                ),
            ),
            (
                "{}",
                row(Value::Null, Value::Null, Value::Null, Value::Null),
            ),
        ] {
            assert_eq!(read(text), Some(expected.clone()), "{text}");
            assert_eq!(
                decode_object_serde(&columns, text.as_bytes(), (1, 1, 0), &[]),
                Ok(Some(expected)),
                "{text}"
            );
        }
        // Left to serde: escapes, floats and big numbers for integer
        // columns, leading zeros, another type's shape, nesting, broken
        // syntax, control characters.
        for text in [
            r#"{"S":"a\"b"}"#,
            r#"{"S":"\u00e9"}"#,
            r#"{"N":1.5}"#,
            r#"{"N":01}"#,
            r#"{"N":9223372036854775808}"#,
            r#"{"I":2147483648}"#,
            r#"{"S":12}"#,
            r#"{"N":"12"}"#,
            r#"{"X":[1]}"#,
            r#"{"S":"x",}"#,
            r#"{"S":"x"} x"#,
            r#"{"S" "x"}"#,
            "{\"S\":\"a\tb\"}",
            "[1]",
        ] {
            assert_eq!(read(text), None, "{text}");
        }
    }

    /// JSON objects mixing what the flat scanner reads with what it leaves
    /// to serde (escapes, non-ASCII, nesting, floats, big or malformed
    /// numbers, unknown and differently cased keys, broken syntax).
    fn json_object() -> impl proptest::strategy::Strategy<Value = String> {
        use proptest::prelude::*;
        let key = prop_oneof![
            Just("S"),
            Just("N"),
            Just("I"),
            Just("B"),
            Just("D"),
            Just("U"),
            Just("s"),
            Just("n"),
            Just("X"),
            Just(r"S\u0041"),
            Just("\u{e9}"),
        ];
        let value = prop_oneof![
            "[a-z]{0,6}".prop_map(|t| format!("\"{t}\"")),
            Just(r#""a\"b""#.to_string()),
            Just("\"\u{e9}t\u{e9}\"".to_string()),
            Just(r#""\u00e9""#.to_string()),
            proptest::num::i64::ANY.prop_map(|n| n.to_string()),
            proptest::num::i32::ANY.prop_map(|n| n.to_string()),
            Just("9223372036854775808".to_string()),
            Just("-9223372036854775809".to_string()),
            Just("01".to_string()),
            Just("-0".to_string()),
            Just("1.5".to_string()),
            Just("2e3".to_string()),
            Just("-".to_string()),
            Just("true".to_string()),
            Just("false".to_string()),
            Just("null".to_string()),
            Just("tru".to_string()),
            Just("[1,2]".to_string()),
            Just(r#"{"a":1}"#.to_string()),
            Just(r#""12""#.to_string()),
        ];
        let ws = prop_oneof![Just(""), Just(" "), Just("\n\t")];
        let tail = prop_oneof![
            Just(""),
            Just(""),
            Just(""),
            Just(","),
            Just("x"),
            Just("}")
        ];
        (
            proptest::collection::vec((key, value, ws.clone()), 0..6),
            ws,
            tail,
        )
            .prop_map(|(fields, w, tail)| {
                let body: Vec<String> = fields
                    .into_iter()
                    .map(|(k, v, w)| format!("{w}\"{k}\"{w}:{w}{v}{w}"))
                    .collect();
                format!("{w}{{{}}}{tail}{w}", body.join(","))
            })
    }

    fn flat_value() -> impl proptest::strategy::Strategy<Value = Value> {
        use proptest::prelude::*;
        prop_oneof![
            Just(Value::Null),
            proptest::bool::ANY.prop_map(Value::Boolean),
            proptest::num::i32::ANY.prop_map(Value::Int),
            proptest::num::i64::ANY.prop_map(Value::BigInt),
            proptest::num::i32::ANY.prop_map(Value::Date),
            proptest::num::i64::ANY.prop_map(Value::Time),
            proptest::num::i64::ANY.prop_map(Value::Timestamp),
            ".{0,8}".prop_map(Value::String),
            "[\\x00-\\x20\"\\\\/\u{7f}\u{e9}\u{2028}a]{0,8}".prop_map(Value::String),
            proptest::num::f64::ANY.prop_map(Value::Double),
        ]
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(2048))]
        #[test]
        fn the_flat_encoder_writes_what_serde_writes(
            row in proptest::collection::vec(flat_value(), 0..5),
            name in "[A-Z_\"\\\n\u{e9}]{1,6}",
        ) {
            let columns: Vec<Column> = (0..row.len())
                .map(|i| Column {
                    name: format!("{name}{i}"),
                    ty: SqlType::String,
                })
                .collect();
            let by_serde = serde_json::to_vec(&JsonRow { columns: &columns, row: &row });
            match encode_flat_object(&json_keys(&columns), &row) {
                Some(bytes) => proptest::prop_assert_eq!(Ok(bytes), by_serde.map_err(|e| e.to_string())),
                None => proptest::prop_assert!(row.iter().any(|v| matches!(v, Value::Double(_)))),
            }
        }

        #[test]
        fn the_flat_scanner_agrees_with_serde_whenever_it_answers(
            text in json_object(),
            unread in proptest::collection::vec(proptest::bool::ANY, 6),
        ) {
            let columns = cols(&[
                ("S", SqlType::String),
                ("N", SqlType::BigInt),
                ("I", SqlType::Int),
                ("B", SqlType::Boolean),
                ("D", SqlType::Double),
                ("U", SqlType::String),
            ]);
            let layout = (1, 2, 0);
            if let Some(row) = scan_flat_object(&columns, text.as_bytes(), layout, &unread) {
                let by_serde = decode_object_serde(&columns, text.as_bytes(), layout, &unread);
                proptest::prop_assert_eq!(by_serde, Ok(Some(row)), "{}", text);
            }
        }

        #[test]
        fn internal_rows_round_trip_in_either_form(
            ints in proptest::collection::vec(proptest::option::of(proptest::num::i64::ANY), 0..40),
            text in proptest::option::of("[a-z]{0,5}"),
        ) {
            let mut row: Row = ints
                .into_iter()
                .map(|i| i.map_or(Value::Null, Value::BigInt))
                .collect();
            if let Some(t) = text {
                row.push(Value::String(t));
            }
            let b = InternalSerde.serialize(&row).unwrap().unwrap();
            proptest::prop_assert_eq!(InternalSerde.deserialize(Some(&b)).unwrap(), row);
        }

        #[test]
        fn internal_decoding_never_panics(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..64)) {
            let _ = InternalSerde.deserialize(Some(&bytes));
        }
    }

    /// A format from outside the crate: one STRING column, written upside
    /// down, refusing what it cannot carry.
    struct Reversed;
    struct ReversedCodec;
    impl RowFormat for Reversed {
        fn name(&self) -> &'static str {
            "REVERSED"
        }
        fn check(&self, columns: &[Column], what: &str) -> Result<(), FormatError> {
            match columns {
                [Column {
                    ty: SqlType::String,
                    ..
                }] => Ok(()),
                _ => Err(FormatError::Unsupported(format!(
                    "REVERSED carries one STRING {what} column"
                ))),
            }
        }
        fn codec(&self, _: &CodecSpec<'_>) -> Arc<dyn RowCodec> {
            Arc::new(ReversedCodec)
        }
    }
    impl RowCodec for ReversedCodec {
        fn encode(&self, row: &[Value]) -> Result<Option<Vec<u8>>, FormatError> {
            match row.first() {
                Some(Value::String(s)) => {
                    Ok(Some(s.chars().rev().collect::<String>().into_bytes()))
                }
                Some(Value::Null) | None => Ok(None),
                Some(other) => Err(FormatError::Encode(format!("not a string: {other}"))),
            }
        }
        fn decode(&self, bytes: &[u8]) -> Result<Row, FormatError> {
            let text =
                std::str::from_utf8(bytes).map_err(|e| FormatError::Decode(e.to_string()))?;
            Ok(vec![Value::String(text.chars().rev().collect())])
        }
    }

    #[test]
    fn the_registry_finds_formats_by_name_and_takes_new_ones() {
        let mut registry = FormatRegistry::builtin();
        assert_eq!(
            registry.names().collect::<Vec<_>>(),
            ["KAFKA", "JSON", "DELIMITED", "NONE", "PROTOBUF_NOSR"]
        );
        assert_eq!(registry.get("json"), Ok(Format::JSON));
        assert_eq!(
            registry.get("xml").unwrap_err().to_string(),
            "Unknown format: xml; expected one of KAFKA, JSON, DELIMITED, NONE, PROTOBUF_NOSR"
        );
        assert!(matches!(
            registry.get("avro"),
            Err(FormatError::NeedsSchemaRegistry(_))
        ));
        assert!(registry.get("REVERSED").is_err());
        assert_eq!(registry.register(Format::new(&Reversed)), None);
        let reversed = registry.get("reversed").unwrap();
        assert_eq!(reversed.to_string(), "REVERSED");
        assert!(reversed
            .check(&cols(&[("V", SqlType::Int)]), "value")
            .is_err());
        let serde = RowSerde::new(reversed, cols(&[("V", SqlType::String)]), false);
        let bytes = Serde::serialize(&serde, &vec![Value::String("abc".into())])
            .unwrap()
            .unwrap();
        assert_eq!(bytes, b"cba");
        assert_eq!(
            Serde::deserialize(&serde, Some(&bytes)).unwrap(),
            vec![Value::String("abc".into())]
        );
        // A codec's refusal reaches the engine as an error, not a null.
        assert!(Serde::serialize(&serde, &vec![Value::Int(1)]).is_err());
        // Registering a name again replaces the format.
        assert_eq!(registry.register(Format::new(&Reversed)), Some(reversed));
    }
}
