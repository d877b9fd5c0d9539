//! Avro schemas: parsing with named types from references, the parsing
//! canonical form, and reader/writer compatibility.

use apache_avro::schema::{Name, Schema};

use crate::{Incompatibility, Resolved, SchemaError, SchemaType};

#[derive(Debug, Clone)]
pub(crate) struct Avro {
    schema: Schema,
}

impl Avro {
    pub(crate) fn parse(text: &str, references: &[Resolved]) -> Result<Avro, SchemaError> {
        let mut texts = Vec::new();
        collect(references, &mut texts)?;
        texts.push(text);
        let mut schemas = Schema::parse_list(texts.iter().copied())
            .map_err(|e| SchemaError::invalid(e.to_string()))?;
        let schema = schemas
            .pop()
            .ok_or_else(|| SchemaError::invalid("empty schema"))?;
        Ok(Avro { schema })
    }

    pub(crate) fn canonical(&self) -> String {
        self.schema.canonical_form()
    }

    pub(crate) fn schema(&self) -> &Schema {
        &self.schema
    }

    pub(crate) fn record_name(&self) -> Option<String> {
        let name: &Name = match &self.schema {
            Schema::Record(r) => &r.name,
            Schema::Enum(e) => &e.name,
            Schema::Fixed(f) => &f.name,
            _ => return None,
        };
        Some(name.fullname(None))
    }
}

/// Referenced texts, dependencies first.
fn collect<'a>(refs: &'a [Resolved], out: &mut Vec<&'a str>) -> Result<(), SchemaError> {
    for r in refs {
        if r.schema_type != SchemaType::Avro {
            return Err(SchemaError::invalid(format!(
                "an Avro schema cannot reference the {} schema {}",
                r.schema_type, r.name
            )));
        }
        collect(&r.references, out)?;
        if !out.contains(&r.schema.as_str()) {
            out.push(&r.schema);
        }
    }
    Ok(())
}

pub(crate) fn check_backward(new: &Avro, previous: &Avro) -> Vec<Incompatibility> {
    match apache_avro::schema_compatibility::SchemaCompatibility::can_read(
        &previous.schema,
        &new.schema,
    ) {
        Ok(()) => Vec::new(),
        Err(e) => vec![Incompatibility {
            kind: "READER_WRITER_MISMATCH".into(),
            path: "/".into(),
            message: e.to_string(),
        }],
    }
}
