//! Kafka Connect's data model: a [`Schema`] describes a [`Value`]; a
//! [`Struct`] is a value of a struct schema.
//!
//! The model is the one converters serialize (`JsonConverter`'s
//! `{"schema":…,"payload":…}` envelope names these types: `int8`…`int64`,
//! `float`, `double`, `boolean`, `string`, `bytes`, `array`, `map`,
//! `struct`) and the one transforms rewrite. Logical types are named
//! schemas over a primitive, as in Kafka Connect ([`Schema::decimal`],
//! [`Schema::date`], [`Schema::time`], [`Schema::timestamp`]); Debezium's
//! are named the same way (`io.debezium.time.MicroTimestamp` is an
//! `int64` with that name).

use std::sync::Arc;

/// The type of a schema (Kafka Connect's `Schema.Type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SchemaType {
    Int8,
    Int16,
    Int32,
    Int64,
    Float32,
    Float64,
    Boolean,
    String,
    Bytes,
    Array,
    Map,
    Struct,
}

impl SchemaType {
    /// The name `JsonConverter` writes in a schema's `type` field.
    pub fn json_name(self) -> &'static str {
        match self {
            SchemaType::Int8 => "int8",
            SchemaType::Int16 => "int16",
            SchemaType::Int32 => "int32",
            SchemaType::Int64 => "int64",
            SchemaType::Float32 => "float",
            SchemaType::Float64 => "double",
            SchemaType::Boolean => "boolean",
            SchemaType::String => "string",
            SchemaType::Bytes => "bytes",
            SchemaType::Array => "array",
            SchemaType::Map => "map",
            SchemaType::Struct => "struct",
        }
    }

    /// The type named `name` in a JSON schema envelope.
    pub fn from_json_name(name: &str) -> Option<SchemaType> {
        Some(match name {
            "int8" => SchemaType::Int8,
            "int16" => SchemaType::Int16,
            "int32" => SchemaType::Int32,
            "int64" => SchemaType::Int64,
            "float" => SchemaType::Float32,
            "double" => SchemaType::Float64,
            "boolean" => SchemaType::Boolean,
            "string" => SchemaType::String,
            "bytes" => SchemaType::Bytes,
            "array" => SchemaType::Array,
            "map" => SchemaType::Map,
            "struct" => SchemaType::Struct,
            _ => return None,
        })
    }

    /// Whether values of this type are primitives (not array, map, struct).
    pub fn is_primitive(self) -> bool {
        !matches!(
            self,
            SchemaType::Array | SchemaType::Map | SchemaType::Struct
        )
    }
}

/// Logical type names Kafka Connect defines.
pub mod logical {
    /// `bytes`: a big-endian two's-complement unscaled integer; parameter
    /// `scale`.
    pub const DECIMAL: &str = "org.apache.kafka.connect.data.Decimal";
    /// `int32`: days since the epoch.
    pub const DATE: &str = "org.apache.kafka.connect.data.Date";
    /// `int32`: milliseconds since midnight.
    pub const TIME: &str = "org.apache.kafka.connect.data.Time";
    /// `int64`: milliseconds since the epoch.
    pub const TIMESTAMP: &str = "org.apache.kafka.connect.data.Timestamp";
    /// The parameter of [`DECIMAL`] holding the scale.
    pub const SCALE_PARAM: &str = "scale";
}

/// A field of a struct schema.
#[derive(Debug, Clone, PartialEq)]
pub struct Field {
    pub name: String,
    pub index: usize,
    pub schema: Schema,
}

/// A Kafka Connect schema. Build with the constructors and the chained
/// setters: `Schema::int32().optional().named("x")`.
#[derive(Debug, Clone, PartialEq)]
pub struct Schema {
    pub kind: SchemaType,
    pub optional: bool,
    pub name: Option<String>,
    pub version: Option<i32>,
    pub doc: Option<String>,
    /// Parameters in insertion order (Connect keeps a linked map).
    pub parameters: Vec<(String, String)>,
    pub default: Option<Box<Value>>,
    /// The fields of a struct, in order.
    pub fields: Vec<Field>,
    /// The key schema of a map.
    pub key: Option<Box<Schema>>,
    /// The value schema of a map, or the element schema of an array.
    pub value: Option<Box<Schema>>,
}

impl Schema {
    /// A schema of `kind` with nothing else set (required, unnamed).
    pub fn of(kind: SchemaType) -> Schema {
        Schema {
            kind,
            optional: false,
            name: None,
            version: None,
            doc: None,
            parameters: Vec::new(),
            default: None,
            fields: Vec::new(),
            key: None,
            value: None,
        }
    }
    pub fn int8() -> Schema {
        Schema::of(SchemaType::Int8)
    }
    pub fn int16() -> Schema {
        Schema::of(SchemaType::Int16)
    }
    pub fn int32() -> Schema {
        Schema::of(SchemaType::Int32)
    }
    pub fn int64() -> Schema {
        Schema::of(SchemaType::Int64)
    }
    pub fn float32() -> Schema {
        Schema::of(SchemaType::Float32)
    }
    pub fn float64() -> Schema {
        Schema::of(SchemaType::Float64)
    }
    pub fn boolean() -> Schema {
        Schema::of(SchemaType::Boolean)
    }
    pub fn string() -> Schema {
        Schema::of(SchemaType::String)
    }
    pub fn bytes() -> Schema {
        Schema::of(SchemaType::Bytes)
    }
    /// An array of `element`.
    pub fn array(element: Schema) -> Schema {
        let mut s = Schema::of(SchemaType::Array);
        s.value = Some(Box::new(element));
        s
    }
    /// A map from `key` to `value`.
    pub fn map(key: Schema, value: Schema) -> Schema {
        let mut s = Schema::of(SchemaType::Map);
        s.key = Some(Box::new(key));
        s.value = Some(Box::new(value));
        s
    }
    /// An empty struct schema named `name`; add fields with [`Schema::field`].
    pub fn struct_named(name: impl Into<String>) -> Schema {
        Schema::of(SchemaType::Struct).named(name)
    }
    /// Connect's `Decimal` logical type with `scale`.
    pub fn decimal(scale: i32) -> Schema {
        Schema::bytes()
            .named(logical::DECIMAL)
            .version(1)
            .param(logical::SCALE_PARAM, scale.to_string())
    }
    /// Connect's `Date` logical type (days since the epoch).
    pub fn date() -> Schema {
        Schema::int32().named(logical::DATE).version(1)
    }
    /// Connect's `Time` logical type (milliseconds since midnight).
    pub fn time() -> Schema {
        Schema::int32().named(logical::TIME).version(1)
    }
    /// Connect's `Timestamp` logical type (milliseconds since the epoch).
    pub fn timestamp() -> Schema {
        Schema::int64().named(logical::TIMESTAMP).version(1)
    }

    pub fn optional(mut self) -> Schema {
        self.optional = true;
        self
    }
    pub fn required(mut self) -> Schema {
        self.optional = false;
        self
    }
    pub fn named(mut self, name: impl Into<String>) -> Schema {
        self.name = Some(name.into());
        self
    }
    pub fn version(mut self, version: i32) -> Schema {
        self.version = Some(version);
        self
    }
    pub fn doc(mut self, doc: impl Into<String>) -> Schema {
        self.doc = Some(doc.into());
        self
    }
    pub fn param(mut self, key: impl Into<String>, value: impl Into<String>) -> Schema {
        let key = key.into();
        let value = value.into();
        match self.parameters.iter_mut().find(|(k, _)| *k == key) {
            Some(slot) => slot.1 = value,
            None => self.parameters.push((key, value)),
        }
        self
    }
    pub fn default_value(mut self, value: Value) -> Schema {
        self.default = Some(Box::new(value));
        self
    }
    /// Appends a field to a struct schema.
    pub fn field(mut self, name: impl Into<String>, schema: Schema) -> Schema {
        let index = self.fields.len();
        self.fields.push(Field {
            name: name.into(),
            index,
            schema,
        });
        self
    }

    /// The field named `name` of a struct schema.
    pub fn field_named(&self, name: &str) -> Option<&Field> {
        self.fields.iter().find(|f| f.name == name)
    }

    /// A parameter's value.
    pub fn parameter(&self, key: &str) -> Option<&str> {
        self.parameters
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// Checks that `value` is a value of this schema (types, nullability,
    /// struct schemas), as Connect's `ConnectSchema.validateValue` does.
    pub fn validate(&self, value: &Value) -> Result<(), DataError> {
        self.validate_at(value, "")
    }

    fn validate_at(&self, value: &Value, path: &str) -> Result<(), DataError> {
        let at = |what: String| DataError {
            path: if path.is_empty() {
                "<root>".to_string()
            } else {
                path.to_string()
            },
            message: what,
        };
        let ok = match (self.kind, value) {
            (_, Value::Null) => {
                return if self.optional || self.default.is_some() {
                    Ok(())
                } else {
                    Err(at("a required value is null".into()))
                }
            }
            (SchemaType::Int8, Value::Int8(_))
            | (SchemaType::Int16, Value::Int16(_))
            | (SchemaType::Int32, Value::Int32(_))
            | (SchemaType::Int64, Value::Int64(_))
            | (SchemaType::Float32, Value::Float32(_))
            | (SchemaType::Float64, Value::Float64(_))
            | (SchemaType::Boolean, Value::Boolean(_))
            | (SchemaType::String, Value::String(_))
            | (SchemaType::Bytes, Value::Bytes(_)) => true,
            (SchemaType::Array, Value::Array(items)) => {
                if let Some(element) = &self.value {
                    for (i, item) in items.iter().enumerate() {
                        element.validate_at(item, &format!("{path}[{i}]"))?;
                    }
                }
                true
            }
            (SchemaType::Map, Value::Map(entries)) => {
                if let (Some(k), Some(v)) = (&self.key, &self.value) {
                    for (key, val) in entries {
                        k.validate_at(key, &format!("{path}.<key>"))?;
                        v.validate_at(val, &format!("{path}.<value>"))?;
                    }
                }
                true
            }
            (SchemaType::Struct, Value::Struct(s)) => {
                if s.schema.as_ref() != self {
                    return Err(at(format!(
                        "struct schema {} does not match {}",
                        s.schema.name.as_deref().unwrap_or("<unnamed>"),
                        self.name.as_deref().unwrap_or("<unnamed>")
                    )));
                }
                for field in &self.fields {
                    let child = if path.is_empty() {
                        field.name.clone()
                    } else {
                        format!("{path}.{}", field.name)
                    };
                    field
                        .schema
                        .validate_at(s.values.get(field.index).unwrap_or(&Value::Null), &child)?;
                }
                true
            }
            _ => false,
        };
        if ok {
            Ok(())
        } else {
            Err(at(format!(
                "a {} value where the schema wants {}",
                value.kind_name(),
                self.kind.json_name()
            )))
        }
    }
}

/// A value that does not fit its schema.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid value at {path}: {message}")]
pub struct DataError {
    pub path: String,
    pub message: String,
}

/// A Kafka Connect value. A value read without a schema (JSON without
/// the envelope) uses the same variants: objects become `Map`s with
/// `String` keys, integers `Int64`, other numbers `Float64`.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Boolean(bool),
    Int8(i8),
    Int16(i16),
    Int32(i32),
    Int64(i64),
    Float32(f32),
    Float64(f64),
    String(String),
    Bytes(Vec<u8>),
    Array(Vec<Value>),
    /// Entries in order.
    Map(Vec<(Value, Value)>),
    Struct(Struct),
}

impl Value {
    /// The name of the value's type, for error messages.
    pub fn kind_name(&self) -> &'static str {
        match self {
            Value::Null => "null",
            Value::Boolean(_) => "boolean",
            Value::Int8(_) => "int8",
            Value::Int16(_) => "int16",
            Value::Int32(_) => "int32",
            Value::Int64(_) => "int64",
            Value::Float32(_) => "float",
            Value::Float64(_) => "double",
            Value::String(_) => "string",
            Value::Bytes(_) => "bytes",
            Value::Array(_) => "array",
            Value::Map(_) => "map",
            Value::Struct(_) => "struct",
        }
    }

    pub fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }

    /// The struct this value is, if it is one.
    pub fn as_struct(&self) -> Option<&Struct> {
        match self {
            Value::Struct(s) => Some(s),
            _ => None,
        }
    }

    /// A string value's text.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::String(s) => Some(s),
            _ => None,
        }
    }

    /// An integer value of any width, widened.
    pub fn as_i64(&self) -> Option<i64> {
        match *self {
            Value::Int8(v) => Some(v.into()),
            Value::Int16(v) => Some(v.into()),
            Value::Int32(v) => Some(v.into()),
            Value::Int64(v) => Some(v),
            _ => None,
        }
    }

    /// The entry of a map value whose key is the string `key`.
    pub fn map_get(&self, key: &str) -> Option<&Value> {
        match self {
            Value::Map(entries) => entries
                .iter()
                .find(|(k, _)| k.as_str() == Some(key))
                .map(|(_, v)| v),
            _ => None,
        }
    }
}

/// A value of a struct schema: one value per field, in field order.
#[derive(Debug, Clone, PartialEq)]
pub struct Struct {
    pub schema: Arc<Schema>,
    pub values: Vec<Value>,
}

impl Struct {
    /// A struct of `schema` with every field null.
    pub fn new(schema: Arc<Schema>) -> Struct {
        let values = vec![Value::Null; schema.fields.len()];
        Struct { schema, values }
    }

    /// Sets field `name`; an unknown field is an error.
    pub fn put(&mut self, name: &str, value: Value) -> Result<&mut Struct, DataError> {
        let index = self
            .schema
            .field_named(name)
            .map(|f| f.index)
            .ok_or_else(|| DataError {
                path: name.to_string(),
                message: format!(
                    "{} is not a field of {}",
                    name,
                    self.schema.name.as_deref().unwrap_or("the struct")
                ),
            })?;
        self.values[index] = value;
        Ok(self)
    }

    /// Builder form of [`Struct::put`].
    pub fn with(mut self, name: &str, value: Value) -> Result<Struct, DataError> {
        self.put(name, value)?;
        Ok(self)
    }

    /// The value of field `name`; `None` when there is no such field.
    pub fn get(&self, name: &str) -> Option<&Value> {
        self.schema
            .field_named(name)
            .and_then(|f| self.values.get(f.index))
    }

    /// Checks every field against the schema.
    pub fn validate(&self) -> Result<(), DataError> {
        self.schema.validate(&Value::Struct(self.clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn person() -> Arc<Schema> {
        Arc::new(
            Schema::struct_named("person")
                .field("id", Schema::int32())
                .field("name", Schema::string().optional())
                .field("born", Schema::date().optional()),
        )
    }

    #[test]
    fn a_struct_takes_its_fields_and_validates() {
        let s = Struct::new(person())
            .with("id", Value::Int32(1))
            .unwrap()
            .with("name", Value::String("ann".into()))
            .unwrap();
        assert_eq!(s.get("name"), Some(&Value::String("ann".into())));
        assert!(s.validate().is_ok());
        assert!(Struct::new(person()).put("nope", Value::Null).is_err());
    }

    #[test]
    fn validation_names_the_field_that_is_wrong() {
        let missing = Struct::new(person());
        let err = missing.validate().unwrap_err();
        assert_eq!(err.path, "id");
        let wrong = Struct::new(person())
            .with("id", Value::String("x".into()))
            .unwrap();
        let err = wrong.validate().unwrap_err();
        assert!(err.message.contains("int32"), "{err}");
    }

    #[test]
    fn logical_types_are_named_primitives() {
        let d = Schema::decimal(2);
        assert_eq!(d.kind, SchemaType::Bytes);
        assert_eq!(d.name.as_deref(), Some(logical::DECIMAL));
        assert_eq!(d.parameter("scale"), Some("2"));
        for t in [SchemaType::Int8, SchemaType::Float32, SchemaType::Struct] {
            assert_eq!(SchemaType::from_json_name(t.json_name()), Some(t));
        }
    }
}
