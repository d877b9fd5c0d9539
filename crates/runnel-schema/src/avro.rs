//! Avro schemas: parsing with named types from references, the parsing
//! canonical form, and reader/writer compatibility.
//!
//! The compatibility check is our own walk of the Avro specification's
//! schema resolution (the rules Java Avro's checker, and so Confluent,
//! apply), reporting every problem rather than the first: apache-avro's
//! checker stops at the first one.

use std::collections::{HashMap, HashSet};

use apache_avro::schema::{Alias, Name, RecordSchema, Schema};

use crate::{Incompatibility, Resolved, SchemaError, SchemaType};

#[derive(Debug, Clone)]
pub(crate) struct Avro {
    schema: Schema,
    /// Every named type the schema can reach (its own and its
    /// references'), by full name, to resolve `Schema::Ref`s.
    names: HashMap<String, Schema>,
}

impl Avro {
    pub(crate) fn parse(text: &str, references: &[Resolved]) -> Result<Avro, SchemaError> {
        let mut texts = Vec::new();
        collect(references, &mut texts)?;
        for (name, t) in &texts {
            check_json(t).map_err(|e| in_reference(e, name))?;
        }
        check_json(text)?;
        let (schema, others) = if texts.is_empty() {
            (
                Schema::parse_str(text).map_err(|e| SchemaError::invalid(e.to_string()))?,
                Vec::new(),
            )
        } else {
            Schema::parse_str_with_list(text, texts.iter().map(|(_, t)| *t))
                .map_err(|e| SchemaError::invalid(e.to_string()))?
        };
        let mut names = HashMap::new();
        for s in others.iter().chain(std::iter::once(&schema)) {
            collect_names(s, &mut names);
        }
        Ok(Avro { schema, names })
    }

    /// The schema as apache-avro writes it back (every attribute kept:
    /// doc, aliases, defaults, logical types, custom properties), compact
    /// with sorted keys. Not Avro's parsing canonical form, which drops
    /// doc, aliases and defaults: two registrations differing in a default
    /// are two versions, as in Confluent's registry.
    pub(crate) fn canonical(&self) -> String {
        match serde_json::to_value(&self.schema) {
            Ok(v) => crate::json::canonical(&v),
            Err(_) => self.schema.canonical_form(),
        }
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

    /// A `Ref` replaced by the type it names (others as they are).
    fn resolve<'a>(&'a self, schema: &'a Schema) -> &'a Schema {
        match schema {
            Schema::Ref { name } => self.names.get(&name.fullname(None)).unwrap_or(schema),
            other => other,
        }
    }
}

/// The text is JSON, or the error says where it is not.
fn check_json(text: &str) -> Result<(), SchemaError> {
    match serde_json::from_str::<serde_json::Value>(text) {
        Ok(_) => Ok(()),
        Err(e) => Err(SchemaError::Invalid {
            message: format!("invalid JSON: {e}"),
            line: u32::try_from(e.line()).ok().filter(|l| *l > 0),
            column: u32::try_from(e.column()).ok().filter(|c| *c > 0),
        }),
    }
}

fn in_reference(e: SchemaError, name: &str) -> SchemaError {
    match e {
        SchemaError::Invalid {
            message,
            line,
            column,
        } => SchemaError::Invalid {
            message: format!("reference {name}: {message}"),
            line,
            column,
        },
        other => other,
    }
}

/// Referenced texts with their names, dependencies first.
fn collect<'a>(refs: &'a [Resolved], out: &mut Vec<(&'a str, &'a str)>) -> Result<(), SchemaError> {
    for r in refs {
        if r.schema_type != SchemaType::Avro {
            return Err(SchemaError::invalid(format!(
                "an Avro schema cannot reference the {} schema {}",
                r.schema_type, r.name
            )));
        }
        collect(&r.references, out)?;
        if !out.iter().any(|(_, t)| *t == r.schema.as_str()) {
            out.push((&r.name, &r.schema));
        }
    }
    Ok(())
}

fn collect_names(schema: &Schema, names: &mut HashMap<String, Schema>) {
    match schema {
        Schema::Record(r) => {
            if names.contains_key(&r.name.fullname(None)) {
                return;
            }
            names.insert(r.name.fullname(None), schema.clone());
            for f in &r.fields {
                collect_names(&f.schema, names);
            }
        }
        Schema::Enum(e) => {
            names.insert(e.name.fullname(None), schema.clone());
        }
        Schema::Fixed(f) => {
            names.insert(f.name.fullname(None), schema.clone());
        }
        Schema::Array(a) => collect_names(&a.items, names),
        Schema::Map(m) => collect_names(&m.types, names),
        Schema::Union(u) => {
            for v in u.variants() {
                collect_names(v, names);
            }
        }
        Schema::Decimal(d) => collect_names(&d.inner, names),
        _ => {}
    }
}

pub(crate) fn check_backward(new: &Avro, previous: &Avro) -> Vec<Incompatibility> {
    let mut checker = Checker {
        reader: new,
        writer: previous,
        out: Vec::new(),
        seen: HashSet::new(),
    };
    checker.compare(&new.schema, &previous.schema, "");
    checker.out
}

struct Checker<'a> {
    reader: &'a Avro,
    writer: &'a Avro,
    out: Vec<Incompatibility>,
    /// Named pairs being compared, so recursive types end.
    seen: HashSet<(String, String)>,
}

/// What a type is written as, logical types aside (resolution ignores
/// them, as Java Avro does).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Base {
    Null,
    Boolean,
    Int,
    Long,
    Float,
    Double,
    Bytes,
    String,
    Array,
    Map,
    Union,
    Record,
    Enum,
    Fixed,
    /// A type we could not resolve (a dangling reference).
    Other,
}

fn base(schema: &Schema) -> Base {
    match schema {
        Schema::Null => Base::Null,
        Schema::Boolean => Base::Boolean,
        Schema::Int | Schema::Date | Schema::TimeMillis => Base::Int,
        Schema::Long
        | Schema::TimeMicros
        | Schema::TimestampMillis
        | Schema::TimestampMicros
        | Schema::TimestampNanos
        | Schema::LocalTimestampMillis
        | Schema::LocalTimestampMicros
        | Schema::LocalTimestampNanos => Base::Long,
        Schema::Float => Base::Float,
        Schema::Double => Base::Double,
        Schema::Bytes | Schema::BigDecimal => Base::Bytes,
        Schema::String | Schema::Uuid => Base::String,
        Schema::Array(_) => Base::Array,
        Schema::Map(_) => Base::Map,
        Schema::Union(_) => Base::Union,
        Schema::Record(_) => Base::Record,
        Schema::Enum(_) => Base::Enum,
        Schema::Fixed(_) | Schema::Duration => Base::Fixed,
        Schema::Decimal(d) => base(&d.inner),
        Schema::Ref { .. } => Base::Other,
    }
}

fn type_name(schema: &Schema) -> String {
    match schema {
        Schema::Record(r) => format!("record {}", r.name.fullname(None)),
        Schema::Enum(e) => format!("enum {}", e.name.fullname(None)),
        Schema::Fixed(f) => format!("fixed {}", f.name.fullname(None)),
        Schema::Ref { name } => name.fullname(None),
        Schema::Decimal(d) => format!("decimal on {}", type_name(&d.inner)),
        other => {
            let kind = base(other);
            format!("{kind:?}").to_lowercase()
        }
    }
}

/// Whether the writer's base type is promoted to the reader's.
fn promotes(reader: Base, writer: Base) -> bool {
    use Base::*;
    reader == writer
        || matches!(
            (reader, writer),
            (Long, Int)
                | (Float, Int | Long)
                | (Double, Int | Long | Float)
                | (String, Bytes)
                | (Bytes, String)
        )
}

/// The name and aliases of a named type.
fn names_of(schema: &Schema) -> Option<(&Name, Option<&Vec<Alias>>)> {
    match schema {
        Schema::Record(r) => Some((&r.name, r.aliases.as_ref())),
        Schema::Enum(e) => Some((&e.name, e.aliases.as_ref())),
        Schema::Fixed(f) => Some((&f.name, f.aliases.as_ref())),
        Schema::Decimal(d) => names_of(&d.inner),
        _ => None,
    }
}

/// The reader's named type matches the writer's: same unqualified name
/// (as the Avro spec and Java's checker say), or a reader alias naming
/// the writer.
fn names_match(reader: &Schema, writer: &Schema) -> bool {
    let (Some((rn, aliases)), Some((wn, _))) = (names_of(reader), names_of(writer)) else {
        return true;
    };
    if rn.name == wn.name {
        return true;
    }
    let writer_full = wn.fullname(None);
    aliases
        .into_iter()
        .flatten()
        .any(|a| a.fullname(rn.namespace.clone()) == writer_full || a.name() == wn.name)
}

impl Checker<'_> {
    fn add(&mut self, kind: &str, path: String, message: String) {
        self.out.push(Incompatibility {
            kind: kind.to_string(),
            path: if path.is_empty() { "/".into() } else { path },
            message,
        });
    }

    /// Whether the reader reads the writer, recording nothing.
    fn probe(&mut self, reader: &Schema, writer: &Schema) -> bool {
        let before = self.out.len();
        self.compare(reader, writer, "");
        let ok = self.out.len() == before;
        self.out.truncate(before);
        ok
    }

    fn compare(&mut self, reader: &Schema, writer: &Schema, path: &str) {
        let reader = self.reader.resolve(reader);
        let writer = self.writer.resolve(writer);
        let (rb, wb) = (base(reader), base(writer));

        if let Schema::Union(wu) = writer {
            // Every branch the writer could have written must be read.
            if let Schema::Union(_) = reader {
                for branch in wu.variants() {
                    self.compare_union_reader(reader, branch, path);
                }
            } else {
                for branch in wu.variants() {
                    self.compare(reader, branch, path);
                }
            }
            return;
        }
        if rb == Base::Union {
            self.compare_union_reader(reader, writer, path);
            return;
        }
        if !promotes(rb, wb) {
            self.add(
                "TYPE_MISMATCH",
                path.to_string(),
                format!(
                    "reader type {} cannot read writer type {}; Avro promotes only int to long/float/double, long to float/double, float to double and string to/from bytes",
                    type_name(reader),
                    type_name(writer)
                ),
            );
            return;
        }
        if matches!(rb, Base::Record | Base::Enum | Base::Fixed) && !names_match(reader, writer) {
            self.add(
                "NAME_MISMATCH",
                format!("{path}/name"),
                format!(
                    "expected name {}: the reader's {} has another name and no alias for it; add the old name to its aliases",
                    names_of(writer).map(|(n, _)| n.fullname(None)).unwrap_or_default(),
                    type_name(reader)
                ),
            );
            return;
        }
        match (reader, writer) {
            (Schema::Array(r), Schema::Array(w)) => {
                self.compare(&r.items, &w.items, &format!("{path}/items"))
            }
            (Schema::Map(r), Schema::Map(w)) => {
                self.compare(&r.types, &w.types, &format!("{path}/values"))
            }
            (Schema::Record(r), Schema::Record(w)) => self.compare_records(r, w, path),
            (Schema::Enum(r), Schema::Enum(w)) => {
                let missing: Vec<&str> = w
                    .symbols
                    .iter()
                    .filter(|s| !r.symbols.contains(s))
                    .map(String::as_str)
                    .collect();
                if !missing.is_empty() && r.default.is_none() {
                    self.add(
                        "MISSING_ENUM_SYMBOLS",
                        format!("{path}/symbols"),
                        format!(
                            "the reader's enum {} lacks symbols [{}] that the writer may have written; keep them or give the enum a default",
                            r.name.fullname(None),
                            missing.join(", ")
                        ),
                    );
                }
            }
            _ => {
                let (rs, ws) = (fixed_size(reader), fixed_size(writer));
                if let (Some(rs), Some(ws)) = (rs, ws) {
                    if rs != ws {
                        self.add(
                            "FIXED_SIZE_MISMATCH",
                            format!("{path}/size"),
                            format!(
                                "expected: {ws}, found: {rs}: the reader's {} must keep the writer's size",
                                type_name(reader)
                            ),
                        );
                    }
                }
            }
        }
    }

    /// A reader union must have a branch that reads the writer's type.
    fn compare_union_reader(&mut self, reader: &Schema, writer: &Schema, path: &str) {
        let Schema::Union(ru) = reader else {
            return;
        };
        let writer = self.writer.resolve(writer);
        let branches: Vec<&Schema> = ru.variants().iter().collect();
        if branches.iter().any(|b| self.probe(b, writer)) {
            return;
        }
        // One branch of the writer's type and name: say what is wrong with it.
        let same: Vec<usize> = branches
            .iter()
            .enumerate()
            .filter(|(_, b)| {
                let b = self.reader.resolve(b);
                base(b) == base(writer)
                    && (!matches!(base(b), Base::Record | Base::Enum | Base::Fixed)
                        || names_match(b, writer))
            })
            .map(|(i, _)| i)
            .collect();
        if let [i] = same[..] {
            self.compare(branches[i], writer, &format!("{path}/{i}"));
            return;
        }
        self.add(
            "MISSING_UNION_BRANCH",
            path.to_string(),
            format!(
                "the reader's union has no branch that reads the writer's {}; add one",
                type_name(writer)
            ),
        );
    }

    fn compare_records(&mut self, r: &RecordSchema, w: &RecordSchema, path: &str) {
        let key = (r.name.fullname(None), w.name.fullname(None));
        if !self.seen.insert(key.clone()) {
            return;
        }
        for (i, field) in r.fields.iter().enumerate() {
            let here = format!("{path}/fields/{i}");
            let writer_field = w
                .fields
                .iter()
                .find(|wf| wf.name == field.name)
                .or_else(|| {
                    w.fields.iter().find(|wf| {
                        field
                            .aliases
                            .iter()
                            .flatten()
                            .any(|alias| *alias == wf.name)
                    })
                });
            match writer_field {
                Some(wf) => self.compare(&field.schema, &wf.schema, &format!("{here}/type")),
                None if field.default.is_none() => self.add(
                    "READER_FIELD_MISSING_DEFAULT_VALUE",
                    here,
                    format!(
                        "{}: the reader's field {}.{} is not in the writer's record and has no default; give it a default or an alias for the old name",
                        field.name,
                        r.name.fullname(None),
                        field.name
                    ),
                ),
                None => {}
            }
        }
        self.seen.remove(&key);
    }
}

fn fixed_size(schema: &Schema) -> Option<usize> {
    match schema {
        Schema::Fixed(f) => Some(f.size),
        Schema::Duration => Some(12),
        Schema::Decimal(d) => fixed_size(&d.inner),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use crate::{check_backward, Incompatibility, ParsedSchema, Resolved, SchemaError, SchemaType};

    fn avro(text: &str) -> ParsedSchema {
        ParsedSchema::parse(SchemaType::Avro, text, &[]).unwrap()
    }

    fn check(new: &str, old: &str) -> Vec<Incompatibility> {
        check_backward(&avro(new), &avro(old))
    }

    fn kinds(found: &[Incompatibility]) -> Vec<String> {
        found
            .iter()
            .map(|i| format!("{} {}", i.kind, i.path))
            .collect()
    }

    #[track_caller]
    fn compatible(new: &str, old: &str) {
        let found = check(new, old);
        assert!(
            found.is_empty(),
            "expected compatible: {found:?}\nnew: {new}\nold: {old}"
        );
    }

    #[track_caller]
    fn incompatible(new: &str, old: &str, expected: &[&str]) {
        let found = check(new, old);
        assert_eq!(kinds(&found), expected, "new: {new}\nold: {old}");
        assert!(found.iter().all(|i| !i.message.is_empty()));
    }

    fn record(fields: &str) -> String {
        format!(r#"{{"type":"record","name":"R","namespace":"t","fields":[{fields}]}}"#)
    }

    #[test]
    fn fields_need_a_default_to_be_added() {
        let old = record(r#"{"name":"a","type":"int"}"#);
        compatible(
            &record(r#"{"name":"a","type":"int"},{"name":"b","type":"string","default":""}"#),
            &old,
        );
        incompatible(
            &record(r#"{"name":"a","type":"int"},{"name":"b","type":"string"}"#),
            &old,
            &["READER_FIELD_MISSING_DEFAULT_VALUE /fields/1"],
        );
        // Removing a field is fine: the reader skips it.
        compatible(
            &record(r#"{"name":"b","type":"string","default":""}"#),
            &old,
        );
    }

    #[test]
    fn field_aliases_read_old_names() {
        let old = record(r#"{"name":"old_name","type":"int"}"#);
        compatible(
            &record(r#"{"name":"new_name","type":"int","aliases":["old_name"]}"#),
            &old,
        );
        incompatible(
            &record(r#"{"name":"new_name","type":"int"}"#),
            &old,
            &["READER_FIELD_MISSING_DEFAULT_VALUE /fields/0"],
        );
    }

    #[test]
    fn promotions_go_one_way() {
        let pairs = [
            ("int", "long"),
            ("int", "float"),
            ("int", "double"),
            ("long", "float"),
            ("long", "double"),
            ("float", "double"),
            ("string", "bytes"),
            ("bytes", "string"),
        ];
        for (writer, reader) in pairs {
            compatible(&format!("\"{reader}\""), &format!("\"{writer}\""));
        }
        for (writer, reader) in pairs {
            if (writer, reader) == ("string", "bytes") || (writer, reader) == ("bytes", "string") {
                continue;
            }
            incompatible(
                &format!("\"{writer}\""),
                &format!("\"{reader}\""),
                &["TYPE_MISMATCH /"],
            );
        }
        incompatible("\"boolean\"", "\"int\"", &["TYPE_MISMATCH /"]);
        incompatible(
            &record(r#"{"name":"a","type":"int"}"#),
            &record(r#"{"name":"a","type":"string"}"#),
            &["TYPE_MISMATCH /fields/0/type"],
        );
    }

    #[test]
    fn logical_types_resolve_as_their_base() {
        compatible(
            r#"{"type":"long","logicalType":"timestamp-millis"}"#,
            r#"{"type":"long"}"#,
        );
        compatible(
            r#"{"type":"long","logicalType":"timestamp-micros"}"#,
            r#"{"type":"int","logicalType":"date"}"#,
        );
        compatible(r#"{"type":"string","logicalType":"uuid"}"#, r#""string""#);
    }

    #[test]
    fn unions_on_either_side() {
        // A field becoming nullable.
        compatible(r#"["null","int"]"#, r#""int""#);
        // Promotion through a union branch.
        compatible(r#"["null","long"]"#, r#""int""#);
        incompatible(
            r#"["null","string"]"#,
            r#""int""#,
            &["MISSING_UNION_BRANCH /"],
        );
        // A writer union needs every branch read.
        compatible(r#"["null","int","string"]"#, r#"["int","null"]"#);
        incompatible(r#""int""#, r#"["null","int"]"#, &["TYPE_MISMATCH /"]);
        incompatible(
            r#"["null","int"]"#,
            r#"["null","int","string"]"#,
            &["MISSING_UNION_BRANCH /"],
        );
        // A record branch that changed is explained, not just missing.
        let r1 = record(r#"{"name":"a","type":"int"}"#);
        let r2 = record(r#"{"name":"a","type":"int"},{"name":"b","type":"int"}"#);
        incompatible(
            &format!(r#"["null",{r2}]"#),
            &format!(r#"["null",{r1}]"#),
            &["READER_FIELD_MISSING_DEFAULT_VALUE /1/fields/1"],
        );
    }

    #[test]
    fn enums_need_old_symbols_or_a_default() {
        let old = r#"{"type":"enum","name":"E","symbols":["A","B","C"]}"#;
        compatible(
            r#"{"type":"enum","name":"E","symbols":["A","B","C","D"]}"#,
            old,
        );
        incompatible(
            r#"{"type":"enum","name":"E","symbols":["A","B"]}"#,
            old,
            &["MISSING_ENUM_SYMBOLS /symbols"],
        );
        compatible(
            r#"{"type":"enum","name":"E","symbols":["A","B"],"default":"A"}"#,
            old,
        );
    }

    #[test]
    fn named_types_match_by_name_or_alias() {
        incompatible(
            r#"{"type":"record","name":"Other","fields":[]}"#,
            r#"{"type":"record","name":"R","fields":[]}"#,
            &["NAME_MISMATCH /name"],
        );
        compatible(
            r#"{"type":"record","name":"Other","namespace":"n","aliases":["R"],"fields":[]}"#,
            r#"{"type":"record","name":"R","namespace":"n","fields":[]}"#,
        );
        compatible(
            r#"{"type":"record","name":"Other","namespace":"a","aliases":["b.R"],"fields":[]}"#,
            r#"{"type":"record","name":"R","namespace":"b","fields":[]}"#,
        );
        incompatible(
            r#"{"type":"fixed","name":"F2","size":4}"#,
            r#"{"type":"fixed","name":"F","size":4}"#,
            &["NAME_MISMATCH /name"],
        );
        incompatible(
            r#"{"type":"enum","name":"E2","symbols":["A"]}"#,
            r#"{"type":"enum","name":"E","symbols":["A"]}"#,
            &["NAME_MISMATCH /name"],
        );
    }

    #[test]
    fn fixed_sizes_must_match() {
        incompatible(
            r#"{"type":"fixed","name":"F","size":8}"#,
            r#"{"type":"fixed","name":"F","size":4}"#,
            &["FIXED_SIZE_MISMATCH /size"],
        );
    }

    #[test]
    fn arrays_and_maps_compare_their_items() {
        compatible(
            r#"{"type":"array","items":"long"}"#,
            r#"{"type":"array","items":"int"}"#,
        );
        incompatible(
            r#"{"type":"map","values":"int"}"#,
            r#"{"type":"map","values":"long"}"#,
            &["TYPE_MISMATCH /values"],
        );
        incompatible(
            r#"{"type":"array","items":"int"}"#,
            r#"{"type":"map","values":"int"}"#,
            &["TYPE_MISMATCH /"],
        );
    }

    #[test]
    fn every_problem_is_reported() {
        let old = record(
            r#"{"name":"a","type":"string"},{"name":"e","type":{"type":"enum","name":"E","symbols":["X","Y"]}}"#,
        );
        let new = record(
            r#"{"name":"a","type":"int"},{"name":"e","type":{"type":"enum","name":"E","symbols":["X"]}},{"name":"n","type":"int"}"#,
        );
        assert_eq!(
            kinds(&check(&new, &old)),
            [
                "TYPE_MISMATCH /fields/0/type",
                "MISSING_ENUM_SYMBOLS /fields/1/type/symbols",
                "READER_FIELD_MISSING_DEFAULT_VALUE /fields/2"
            ]
        );
    }

    #[test]
    fn recursive_records_terminate() {
        let list = |t: &str| {
            format!(
                r#"{{"type":"record","name":"Node","fields":[{{"name":"v","type":"{t}"}},{{"name":"next","type":["null","Node"]}}]}}"#
            )
        };
        compatible(&list("long"), &list("int"));
        incompatible(
            &list("int"),
            &list("long"),
            &["TYPE_MISMATCH /fields/0/type"],
        );
    }

    fn reference(name: &str, text: &str) -> Resolved {
        Resolved {
            name: name.into(),
            schema_type: SchemaType::Avro,
            schema: text.into(),
            references: vec![],
        }
    }

    #[test]
    fn named_types_come_from_references() {
        let address = |t: &str| {
            reference(
                "com.acme.Address",
                &format!(
                    r#"{{"type":"record","name":"Address","namespace":"com.acme","fields":[{{"name":"zip","type":"{t}"}}]}}"#
                ),
            )
        };
        let text = r#"{"type":"record","name":"Person","namespace":"com.acme","fields":[{"name":"home","type":"com.acme.Address"}]}"#;
        let old = ParsedSchema::parse(SchemaType::Avro, text, &[address("int")]).unwrap();
        let new = ParsedSchema::parse(SchemaType::Avro, text, &[address("long")]).unwrap();
        assert_eq!(old.record_name().as_deref(), Some("com.acme.Person"));
        assert!(check_backward(&new, &old).is_empty());
        assert_eq!(
            kinds(&check_backward(&old, &new)),
            ["TYPE_MISMATCH /fields/0/type/fields/0/type"]
        );
        assert!(ParsedSchema::parse(SchemaType::Avro, text, &[]).is_err());
        // A top-level union of referenced records (several event types
        // in one topic).
        let union = ParsedSchema::parse(
            SchemaType::Avro,
            r#"["com.acme.Address"]"#,
            &[address("int")],
        )
        .unwrap();
        assert!(union.record_name().is_none());
    }

    #[test]
    fn primitives_parse_and_have_no_record_name() {
        let s = avro("\"string\"");
        assert_eq!(s.canonical(), "\"string\"");
        assert!(s.record_name().is_none());
    }

    #[test]
    fn canonical_form_ignores_layout_but_keeps_what_means_something() {
        let a = avro(
            r#"{"type":"record","name":"R","namespace":"t","doc":"x","fields":[{"name":"a","type":"int","default":1}]}"#,
        );
        let b = avro(
            r#"{
                "fields": [ { "default": 1, "type": "int", "name": "a" } ],
                "doc": "x",
                "name": "t.R",
                "type": "record"
            }"#,
        );
        assert_eq!(a.canonical(), b.canonical());
        let other_default = avro(
            r#"{"type":"record","name":"R","namespace":"t","doc":"x","fields":[{"name":"a","type":"int","default":2}]}"#,
        );
        assert_ne!(a.canonical(), other_default.canonical());
        let other_doc = avro(
            r#"{"type":"record","name":"R","namespace":"t","doc":"y","fields":[{"name":"a","type":"int","default":1}]}"#,
        );
        assert_ne!(a.canonical(), other_doc.canonical());
        // A fixed point.
        assert_eq!(avro(a.canonical()).canonical(), a.canonical());
    }

    #[test]
    fn invalid_json_says_where() {
        match ParsedSchema::parse(
            SchemaType::Avro,
            "{\n \"type\": \"record\",\n \"name\" \"R\"\n}",
            &[],
        ) {
            Err(SchemaError::Invalid { line, column, .. }) => {
                assert_eq!(line, Some(3));
                assert!(column.is_some());
            }
            other => panic!("{other:?}"),
        }
        // Valid JSON, invalid Avro: the parser's message.
        let err = ParsedSchema::parse(SchemaType::Avro, r#"{"type":"record","name":"R"}"#, &[])
            .unwrap_err();
        assert!(
            matches!(err, SchemaError::Invalid { line: None, .. }),
            "{err:?}"
        );
    }
}
