//! Whether a new `.proto` can read what an older one wrote, by Confluent's
//! rules for Protobuf (our own checker; its behaviour follows Confluent's
//! documentation and Karapace's tests, its code is ours).
//!
//! The rules, from the wire format: fields are matched by number, so a
//! renamed field is fine and a removed one is skipped as unknown data
//! (unless it was `required`). A field whose wire representation changes
//! is not: a scalar may change only within its group (int32, uint32,
//! int64, uint64, bool and enums; sint32 and sint64; fixed32 and sfixed32;
//! fixed64 and sfixed64; string and bytes), a message field keeps its
//! message (by name without the package; an imported message is compared
//! in turn), and numeric fields cannot switch between singular and
//! repeated (packed data does not parse as one value). A oneof may not
//! start to hold fields that were independent before, nor lose a member
//! while it lives on. Messages cannot disappear or change package;
//! messages may be added or reordered; enums and their values may change
//! freely. A change of syntax alone is not reported (Confluent does not).

use std::collections::{BTreeMap, BTreeSet, HashSet};

use prost_reflect::{Cardinality, FieldDescriptor, Kind, MessageDescriptor, Syntax};

use crate::protobuf::{kind_name, Protobuf};
use crate::Incompatibility;

pub(crate) fn check_backward(new: &Protobuf, previous: &Protobuf) -> Vec<Incompatibility> {
    let mut ctx = Ctx {
        out: Vec::new(),
        compared: HashSet::new(),
        main_new: new.file().name().to_string(),
        main_previous: previous.file().name().to_string(),
    };
    let (old_package, new_package) = (previous.file().package_name(), new.file().package_name());
    if old_package != new_package {
        ctx.add(
            "PACKAGE_CHANGED",
            "#/".into(),
            format!(
                "the package changed from '{old_package}' to '{new_package}': message names are part of what readers resolve; keep the package"
            ),
        );
    }
    let old: Vec<_> = previous.file().messages().collect();
    let new_messages: Vec<_> = new.file().messages().collect();
    ctx.compare_types(&old, &new_messages, "#");
    ctx.out
}

struct Ctx {
    out: Vec<Incompatibility>,
    /// Imported message pairs already compared (old name, new name).
    compared: HashSet<(String, String)>,
    main_new: String,
    main_previous: String,
}

/// A field's wire shape, as far as compatibility goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shape {
    Scalar,
    Message,
    Map,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ScalarGroup {
    Varint,
    Zigzag,
    Fixed32,
    Fixed64,
    Float,
    Double,
    StringOrBytes,
}

/// The label as written: proto3 fields without one have none (and are not
/// compared, as Confluent does not).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Label {
    Optional,
    Required,
    Repeated,
}

impl Ctx {
    fn add(&mut self, kind: &str, path: String, message: String) {
        self.out.push(Incompatibility {
            kind: kind.to_string(),
            path,
            message,
        });
    }

    /// Messages of one scope (a file's top level or a message's nested
    /// types), matched by name.
    fn compare_types(&mut self, old: &[MessageDescriptor], new: &[MessageDescriptor], path: &str) {
        for o in old.iter().filter(|m| !m.is_map_entry()) {
            let here = format!("{path}/{}", o.name());
            match new.iter().find(|n| n.name() == o.name() && !n.is_map_entry()) {
                None => self.add(
                    "MESSAGE_REMOVED",
                    here,
                    format!(
                        "message {} was removed (or moved to another file): data written with it can no longer be read; keep it",
                        o.full_name()
                    ),
                ),
                Some(n) => {
                    self.compare_message(o, n, &here);
                    let old_nested: Vec<_> = o.child_messages().collect();
                    let new_nested: Vec<_> = n.child_messages().collect();
                    self.compare_types(&old_nested, &new_nested, &here);
                }
            }
        }
    }

    fn compare_message(&mut self, old: &MessageDescriptor, new: &MessageDescriptor, path: &str) {
        let old_fields = Fields::of(old);
        let new_fields = Fields::of(new);

        // A oneof gone by name none of whose members lives on anywhere was
        // deleted whole, which is allowed.
        let deleted_oneofs: BTreeSet<&str> = old_fields
            .oneofs
            .iter()
            .filter(|(name, _)| !new_fields.oneofs.contains_key(*name))
            .filter(|(_, members)| {
                members
                    .iter()
                    .all(|n| !new_fields.by_number.contains_key(n))
            })
            .map(|(name, _)| name.as_str())
            .collect();

        // Fields that could be set together before must not end up in one
        // oneof, where setting one clears the other.
        for (oneof, members) in &new_fields.oneofs {
            let mut origins = BTreeSet::new();
            let mut moved_from_top = 0;
            for number in members {
                if let Some(old_oneof) = old_fields.oneof_of.get(number) {
                    origins.insert(format!("oneof {old_oneof}"));
                } else if old_fields.by_number.contains_key(number) {
                    origins.insert(format!("field {number}"));
                    moved_from_top += 1;
                }
            }
            if origins.len() > 1 {
                let list: Vec<_> = origins.into_iter().collect();
                let (kind, what) = if moved_from_top > 1 {
                    (
                        "MULTIPLE_FIELDS_MOVED_TO_ONEOF",
                        "several existing fields were moved into",
                    )
                } else {
                    (
                        "FIELD_MOVED_TO_EXISTING_ONEOF",
                        "an existing field was moved into",
                    )
                };
                self.add(
                    kind,
                    format!("{path}/{oneof}"),
                    format!(
                        "{what} oneof {oneof} together with fields it was independent of ({}): old data may set several of them, which a oneof cannot hold",
                        list.join(", ")
                    ),
                );
            }
        }

        let numbers: BTreeSet<u32> = old_fields
            .by_number
            .keys()
            .chain(new_fields.by_number.keys())
            .copied()
            .collect();
        for number in numbers {
            let old_field = old_fields.by_number.get(&number);
            let new_field = new_fields.by_number.get(&number);
            let old_oneof = old_fields.oneof_of.get(&number);
            let new_oneof = new_fields.oneof_of.get(&number);
            match (old_field, new_field) {
                (Some(o), None) => match old_oneof {
                    Some(oneof) if !deleted_oneofs.contains(oneof.as_str()) => self.add(
                        "ONEOF_FIELD_REMOVED",
                        format!("{path}/{oneof}/{number}"),
                        format!(
                            "field {} ({number}) was removed from oneof {oneof}, which lives on: old data that set it would read as if the oneof were unset; keep the field",
                            o.name()
                        ),
                    ),
                    Some(_) => {}
                    None => {
                        if o.cardinality() == Cardinality::Required {
                            self.add(
                                "REQUIRED_FIELD_REMOVED",
                                format!("{path}/{number}"),
                                format!(
                                    "required field {} ({number}) was removed; make it optional in a version of its own first",
                                    o.name()
                                ),
                            );
                        }
                    }
                },
                (None, Some(n)) => {
                    if new_oneof.is_none() && n.cardinality() == Cardinality::Required {
                        self.add(
                            "REQUIRED_FIELD_ADDED",
                            format!("{path}/{number}"),
                            format!(
                                "required field {} ({number}) was added: old data does not have it; add it as optional",
                                n.name()
                            ),
                        );
                    }
                }
                (Some(o), Some(n)) => {
                    let here = match new_oneof {
                        Some(oneof) => format!("{path}/{oneof}/{number}"),
                        None => format!("{path}/{number}"),
                    };
                    self.compare_field(o, n, &here);
                }
                (None, None) => {}
            }
        }
    }

    fn compare_field(&mut self, old: &FieldDescriptor, new: &FieldDescriptor, path: &str) {
        let old_shape = shape(old);
        let new_shape = shape(new);
        if old_shape != new_shape {
            self.add(
                "FIELD_KIND_CHANGED",
                path.to_string(),
                format!(
                    "field {} changed from {} to {}: the wire format differs; use a new field number",
                    new.name(),
                    describe(old),
                    describe(new)
                ),
            );
            return;
        }
        match old_shape {
            Shape::Scalar => self.compare_scalars(
                &old.kind(),
                &new.kind(),
                label(old),
                label(new),
                new.name(),
                path,
            ),
            Shape::Message => {
                self.compare_message_types(&old.kind(), &new.kind(), new.name(), path)
            }
            Shape::Map => {
                let (Kind::Message(o), Kind::Message(n)) = (old.kind(), new.kind()) else {
                    return;
                };
                for (o, n) in [
                    (o.map_entry_key_field(), n.map_entry_key_field()),
                    (o.map_entry_value_field(), n.map_entry_value_field()),
                ] {
                    self.compare_entry_part(&o, &n, new.name(), path);
                }
            }
        }
    }

    /// A map's key or value, compared like a field without a label.
    fn compare_entry_part(
        &mut self,
        old: &FieldDescriptor,
        new: &FieldDescriptor,
        name: &str,
        path: &str,
    ) {
        let (o, n) = (old.kind(), new.kind());
        match (is_scalar(&o), is_scalar(&n)) {
            (true, true) => self.compare_scalars(&o, &n, None, None, name, path),
            (false, false) => self.compare_message_types(&o, &n, name, path),
            _ => self.add(
                "FIELD_KIND_CHANGED",
                path.to_string(),
                format!(
                    "the map {name} changed its {} from {} to {}: the wire format differs; use a new field number",
                    old.name(),
                    kind_name(&o),
                    kind_name(&n)
                ),
            ),
        }
    }

    fn compare_scalars(
        &mut self,
        old: &Kind,
        new: &Kind,
        old_label: Option<Label>,
        new_label: Option<Label>,
        name: &str,
        path: &str,
    ) {
        let (og, ng) = (scalar_group(old), scalar_group(new));
        if og != ng {
            self.add(
                "FIELD_SCALAR_KIND_CHANGED",
                path.to_string(),
                format!(
                    "field {name} changed from {} to {}, which are encoded differently; types can change only within int32/uint32/int64/uint64/bool/enum, sint32/sint64, fixed32/sfixed32, fixed64/sfixed64 or string/bytes",
                    kind_name(old),
                    kind_name(new)
                ),
            );
            return;
        }
        if let (Some(ol), Some(nl)) = (old_label, new_label) {
            if ol != nl && og != Some(ScalarGroup::StringOrBytes) {
                self.add(
                    "FIELD_NUMERIC_LABEL_CHANGED",
                    path.to_string(),
                    format!(
                        "numeric field {name} changed from {} to {}: repeated numbers are packed and do not read as a single value; use a new field number",
                        label_name(ol),
                        label_name(nl)
                    ),
                );
            }
        }
    }

    fn compare_message_types(&mut self, old: &Kind, new: &Kind, name: &str, path: &str) {
        let (Kind::Message(o), Kind::Message(n)) = (old, new) else {
            return;
        };
        if local_name(o) != local_name(n) {
            self.add(
                "FIELD_NAMED_TYPE_CHANGED",
                path.to_string(),
                format!(
                    "field {name} changed its message type from {} to {}; use a new field number",
                    o.full_name(),
                    n.full_name()
                ),
            );
            return;
        }
        // Messages of the schema's own file are compared where they are
        // declared; imported ones here, once per pair.
        let imported =
            o.parent_file().name() != self.main_previous || n.parent_file().name() != self.main_new;
        if !imported
            || !self
                .compared
                .insert((o.full_name().into(), n.full_name().into()))
        {
            return;
        }
        let before = self.out.len();
        let here = format!("#/{}", local_name(n).replace('.', "/"));
        self.compare_message(o, n, &here);
        let nested_old: Vec<_> = o.child_messages().collect();
        let nested_new: Vec<_> = n.child_messages().collect();
        self.compare_types(&nested_old, &nested_new, &here);
        if self.out.len() > before {
            self.add(
                "FIELD_NAMED_TYPE_CHANGED",
                path.to_string(),
                format!(
                    "field {name} has the imported message {}, which changed incompatibly (see {here})",
                    n.full_name()
                ),
            );
        }
    }
}

/// A message's fields by number, with the (real) oneof each is in.
struct Fields {
    by_number: BTreeMap<u32, FieldDescriptor>,
    oneof_of: BTreeMap<u32, String>,
    oneofs: BTreeMap<String, Vec<u32>>,
}

impl Fields {
    fn of(message: &MessageDescriptor) -> Fields {
        let mut fields = Fields {
            by_number: BTreeMap::new(),
            oneof_of: BTreeMap::new(),
            oneofs: BTreeMap::new(),
        };
        for field in message.fields() {
            let number = field.number();
            if let Some(oneof) = field.containing_oneof().filter(|o| !o.is_synthetic()) {
                fields.oneof_of.insert(number, oneof.name().to_string());
                fields
                    .oneofs
                    .entry(oneof.name().to_string())
                    .or_default()
                    .push(number);
            }
            fields.by_number.insert(number, field);
        }
        fields
    }
}

fn is_scalar(kind: &Kind) -> bool {
    !matches!(kind, Kind::Message(_))
}

fn shape(field: &FieldDescriptor) -> Shape {
    if field.is_map() {
        Shape::Map
    } else if is_scalar(&field.kind()) {
        Shape::Scalar
    } else {
        Shape::Message
    }
}

fn describe(field: &FieldDescriptor) -> String {
    match shape(field) {
        Shape::Map => "a map".into(),
        Shape::Message => format!("the message {}", kind_name(&field.kind())),
        Shape::Scalar => kind_name(&field.kind()).trim_start_matches('.').to_string(),
    }
}

fn scalar_group(kind: &Kind) -> Option<ScalarGroup> {
    Some(match kind {
        Kind::Int32 | Kind::Int64 | Kind::Uint32 | Kind::Uint64 | Kind::Bool | Kind::Enum(_) => {
            ScalarGroup::Varint
        }
        Kind::Sint32 | Kind::Sint64 => ScalarGroup::Zigzag,
        Kind::Fixed32 | Kind::Sfixed32 => ScalarGroup::Fixed32,
        Kind::Fixed64 | Kind::Sfixed64 => ScalarGroup::Fixed64,
        Kind::Float => ScalarGroup::Float,
        Kind::Double => ScalarGroup::Double,
        Kind::String | Kind::Bytes => ScalarGroup::StringOrBytes,
        Kind::Message(_) => return None,
    })
}

fn label(field: &FieldDescriptor) -> Option<Label> {
    match field.cardinality() {
        Cardinality::Repeated => Some(Label::Repeated),
        Cardinality::Required => Some(Label::Required),
        Cardinality::Optional => {
            let explicit = field.parent_file().syntax() == Syntax::Proto2
                || field.field_descriptor_proto().proto3_optional();
            (explicit
                && field
                    .containing_oneof()
                    .filter(|o| !o.is_synthetic())
                    .is_none())
            .then_some(Label::Optional)
        }
    }
}

fn label_name(label: Label) -> &'static str {
    match label {
        Label::Optional => "optional",
        Label::Required => "required",
        Label::Repeated => "repeated",
    }
}

/// The name without its package (`outer.Inner` for `pkg.outer.Inner`).
fn local_name(message: &MessageDescriptor) -> &str {
    let package = message.package_name();
    if package.is_empty() {
        message.full_name()
    } else {
        message
            .full_name()
            .strip_prefix(package)
            .and_then(|rest| rest.strip_prefix('.'))
            .unwrap_or(message.full_name())
    }
}

#[cfg(test)]
mod tests {
    use crate::{check_backward, Incompatibility, ParsedSchema, Resolved, SchemaType};

    fn proto(text: &str) -> ParsedSchema {
        ParsedSchema::parse(SchemaType::Protobuf, text, &[]).unwrap()
    }

    fn with_refs(text: &str, refs: &[(&str, &str)]) -> ParsedSchema {
        let refs: Vec<Resolved> = refs
            .iter()
            .map(|(name, schema)| Resolved {
                name: name.to_string(),
                schema_type: SchemaType::Protobuf,
                schema: schema.to_string(),
                references: vec![],
            })
            .collect();
        ParsedSchema::parse(SchemaType::Protobuf, text, &refs).unwrap()
    }

    fn check(new: &str, old: &str) -> Vec<Incompatibility> {
        check_backward(&proto(new), &proto(old))
    }

    fn kinds(found: &[Incompatibility]) -> Vec<String> {
        found
            .iter()
            .map(|i| format!("{} {}", i.kind, i.path))
            .collect()
    }

    fn p3(body: &str) -> String {
        format!("syntax = \"proto3\";\npackage t;\n{body}")
    }

    fn p2(body: &str) -> String {
        format!("syntax = \"proto2\";\npackage t;\n{body}")
    }

    fn compatible(new: &str, old: &str) {
        let found = check(new, old);
        assert!(
            found.is_empty(),
            "expected compatible, got {found:?}\nnew: {new}\nold: {old}"
        );
    }

    fn incompatible(new: &str, old: &str, expected: &[&str]) {
        let found = check(new, old);
        assert_eq!(kinds(&found), expected, "new: {new}\nold: {old}");
        for i in &found {
            assert!(!i.message.is_empty());
        }
    }

    #[test]
    fn fields_may_be_added_removed_and_renamed() {
        let old = p3("message M { string a = 1; int32 b = 2; }");
        compatible(
            &p3("message M { string a = 1; int32 b = 2; bool c = 3; }"),
            &old,
        );
        compatible(&p3("message M { string a = 1; }"), &old);
        compatible(&p3("message M { string renamed = 1; int32 b = 2; }"), &old);
        // A new number is a removal plus an addition.
        compatible(&p3("message M { string a = 1; int32 b = 5; }"), &old);
    }

    #[test]
    fn a_reused_number_is_judged_by_its_new_type() {
        let old = p3("message M { string email = 1; }");
        // Same wire type under another name: fine (names are not on the wire).
        compatible(&p3("message M { bytes raw = 1; }"), &old);
        // Another wire type: old data would be misread.
        incompatible(
            &p3("message M { int64 count = 1; }"),
            &old,
            &["FIELD_SCALAR_KIND_CHANGED #/M/1"],
        );
    }

    #[test]
    fn required_fields_may_neither_come_nor_go() {
        let old = p2("message M { required string a = 1; }");
        incompatible(
            &p2("message M { }"),
            &old,
            &["REQUIRED_FIELD_REMOVED #/M/1"],
        );
        incompatible(
            &p2("message M { required string a = 1; required int32 b = 2; }"),
            &old,
            &["REQUIRED_FIELD_ADDED #/M/2"],
        );
        compatible(
            &p2("message M { required string a = 1; optional int32 b = 2; }"),
            &old,
        );
    }

    #[test]
    fn scalars_change_only_within_their_wire_group() {
        let groups: &[&[&str]] = &[
            &["int32", "uint32", "int64", "uint64", "bool"],
            &["sint32", "sint64"],
            &["fixed32", "sfixed32"],
            &["fixed64", "sfixed64"],
            &["string", "bytes"],
            &["float"],
            &["double"],
        ];
        for (i, group) in groups.iter().enumerate() {
            for a in *group {
                for b in *group {
                    compatible(
                        &p3(&format!("message M {{ {b} x = 1; }}")),
                        &p3(&format!("message M {{ {a} x = 1; }}")),
                    );
                }
                for (j, other) in groups.iter().enumerate() {
                    if i == j {
                        continue;
                    }
                    let b = other[0];
                    incompatible(
                        &p3(&format!("message M {{ {b} x = 1; }}")),
                        &p3(&format!("message M {{ {a} x = 1; }}")),
                        &["FIELD_SCALAR_KIND_CHANGED #/M/1"],
                    );
                }
            }
        }
    }

    #[test]
    fn enums_read_as_varints() {
        let with_enum = p3("enum E { A = 0; B = 1; } message M { E x = 1; }");
        compatible(&p3("message M { int32 x = 1; }"), &with_enum);
        compatible(&with_enum, &p3("message M { int64 x = 1; }"));
        incompatible(
            &with_enum,
            &p3("message M { string x = 1; }"),
            &["FIELD_SCALAR_KIND_CHANGED #/M/1"],
        );
    }

    #[test]
    fn enums_and_their_values_change_freely() {
        let old = p3("enum E { A = 0; B = 1; } message M { E e = 1; }");
        compatible(&p3("enum E { A = 0; } message M { E e = 1; }"), &old);
        compatible(
            &p3("enum E { A = 0; B = 1; C = 2; } message M { E e = 1; }"),
            &old,
        );
        compatible(
            &p3("enum E { A = 0; BEE = 1; } message M { E e = 1; }"),
            &old,
        );
    }

    #[test]
    fn scalar_message_and_map_do_not_mix() {
        incompatible(
            &p3("message N { int32 y = 1; } message M { N x = 1; }"),
            &p3("message M { int32 x = 1; }"),
            &["FIELD_KIND_CHANGED #/M/1"],
        );
        incompatible(
            &p3("message M { map<string, string> x = 1; }"),
            &p3("message M { string x = 1; }"),
            &["FIELD_KIND_CHANGED #/M/1"],
        );
        // An enum replaced by a message of the same name.
        incompatible(
            &p3("message M { message Status { int32 s = 1; } Status x = 1; }"),
            &p3("enum Status { A = 0; } message M { Status x = 1; }"),
            &["FIELD_KIND_CHANGED #/M/1"],
        );
    }

    #[test]
    fn map_keys_and_values_follow_the_scalar_rules() {
        let old = p3("message M { map<string, int32> x = 1; }");
        compatible(&p3("message M { map<string, int64> x = 1; }"), &old);
        compatible(&p3("message M { map<string, uint64> y = 1; }"), &old);
        incompatible(
            &p3("message M { map<int32, int32> x = 1; }"),
            &old,
            &["FIELD_SCALAR_KIND_CHANGED #/M/1"],
        );
        incompatible(
            &p3("message M { map<string, double> x = 1; }"),
            &old,
            &["FIELD_SCALAR_KIND_CHANGED #/M/1"],
        );
    }

    #[test]
    fn message_fields_keep_their_message() {
        let old = p3("message A { int32 v = 1; } message M { A x = 1; }");
        incompatible(
            &p3("message A { int32 v = 1; } message B { int32 v = 1; } message M { B x = 1; }"),
            &old,
            &["FIELD_NAMED_TYPE_CHANGED #/M/1"],
        );
        // The same message, named another way, is the same message.
        compatible(
            &p3("message A { int32 v = 1; } message M { .t.A x = 1; }"),
            &old,
        );
    }

    #[test]
    fn labels_of_numbers_are_fixed_but_strings_and_messages_may_repeat() {
        incompatible(
            &p2("message M { repeated int32 x = 1; }"),
            &p2("message M { optional int32 x = 1; }"),
            &["FIELD_NUMERIC_LABEL_CHANGED #/M/1"],
        );
        compatible(
            &p2("message M { repeated string x = 1; }"),
            &p2("message M { optional string x = 1; }"),
        );
        compatible(
            &p2("message M { repeated bytes x = 1; }"),
            &p2("message M { optional bytes x = 1; }"),
        );
        compatible(
            &p3("message N {} message M { repeated N x = 1; }"),
            &p3("message N {} message M { optional N x = 1; }"),
        );
        // proto3 fields without a label are not compared (as Confluent).
        compatible(
            &p3("message M { optional int32 x = 1; }"),
            &p3("message M { int32 x = 1; }"),
        );
    }

    #[test]
    fn messages_may_be_added_and_reordered_but_not_removed() {
        let old = p3("message A { int32 a = 1; } message B { int32 b = 1; }");
        compatible(
            &p3("message B { int32 b = 1; } message C {} message A { int32 a = 1; }"),
            &old,
        );
        incompatible(
            &p3("message A { int32 a = 1; }"),
            &old,
            &["MESSAGE_REMOVED #/B"],
        );
        incompatible(
            &p3("message A { int32 a = 1; } message BB { int32 b = 1; }"),
            &old,
            &["MESSAGE_REMOVED #/B"],
        );
        incompatible(
            &p3("message W { }"),
            &p3("message W { message Inner { int32 x = 1; } }"),
            &["MESSAGE_REMOVED #/W/Inner"],
        );
        // Nested changes are found.
        incompatible(
            &p3("message W { message Inner { string x = 1; } }"),
            &p3("message W { message Inner { int32 x = 1; } }"),
            &["FIELD_SCALAR_KIND_CHANGED #/W/Inner/1"],
        );
    }

    #[test]
    fn the_package_is_fixed_and_the_syntax_is_not_checked() {
        incompatible(
            "syntax = \"proto3\"; package b; message M { int32 x = 1; }",
            "syntax = \"proto3\"; package a; message M { int32 x = 1; }",
            &["PACKAGE_CHANGED #/"],
        );
        compatible(
            "syntax = \"proto2\"; package a; message M { optional int32 x = 1; }",
            "syntax = \"proto3\"; package a; message M { int32 x = 1; }",
        );
    }

    #[test]
    fn oneofs_may_gain_members_and_single_fields_but_not_merge_fields() {
        let old = p3("message M { string a = 1; string b = 2; }");
        // One existing field into a new oneof, with a brand-new one: fine.
        compatible(
            &p3("message M { string a = 1; oneof o { string b = 2; string c = 3; } }"),
            &old,
        );
        // Two existing independent fields into one oneof: not.
        incompatible(
            &p3("message M { oneof o { string a = 1; string b = 2; string c = 3; } }"),
            &old,
            &["MULTIPLE_FIELDS_MOVED_TO_ONEOF #/M/o"],
        );
        let with_oneof = p3("message M { string a = 1; oneof o { string b = 2; } }");
        compatible(
            &p3("message M { string a = 1; oneof o { string b = 2; int32 c = 3; } }"),
            &with_oneof,
        );
        incompatible(
            &p3("message M { oneof o { string a = 1; string b = 2; } }"),
            &with_oneof,
            &["FIELD_MOVED_TO_EXISTING_ONEOF #/M/o"],
        );
        // Moving a field out of a oneof only relaxes it.
        compatible(
            &p3("message M { string a = 1; string b = 2; oneof o { int32 c = 3; } }"),
            &p3("message M { string a = 1; oneof o { string b = 2; int32 c = 3; } }"),
        );
    }

    #[test]
    fn oneof_members_stay_while_the_oneof_lives() {
        let old = p3("message M { oneof o { string a = 1; string b = 2; } }");
        incompatible(
            &p3("message M { oneof o { string a = 1; } }"),
            &old,
            &["ONEOF_FIELD_REMOVED #/M/o/2"],
        );
        // Renamed but a member dropped.
        incompatible(
            &p3("message M { oneof o2 { string a = 1; } }"),
            &old,
            &["ONEOF_FIELD_REMOVED #/M/o/2"],
        );
        // Deleted whole, or renamed whole: fine.
        compatible(&p3("message M { }"), &old);
        compatible(
            &p3("message M { oneof o2 { string a = 1; string b = 2; } }"),
            &old,
        );
        // Field changes are found through a renamed oneof.
        incompatible(
            &p3("message M { oneof o2 { string a = 1; int32 b = 2; } }"),
            &old,
            &["FIELD_SCALAR_KIND_CHANGED #/M/o2/2"],
        );
        // Members of two oneofs merged into one.
        incompatible(
            &p3("message M { oneof c { string a = 1; string b = 2; } }"),
            &p3("message M { oneof x { string a = 1; } oneof y { string b = 2; } }"),
            &["FIELD_MOVED_TO_EXISTING_ONEOF #/M/c"],
        );
    }

    #[test]
    fn imported_messages_are_compared_through_the_fields_that_use_them() {
        let old_dep = "syntax = \"proto3\"; package dep; message Home { string city = 1; }";
        let new_dep = "syntax = \"proto3\"; package dep; message Home { int32 city = 1; }";
        let main =
            "syntax = \"proto3\"; package t; import \"dep.proto\"; message M { dep.Home h = 1; }";
        let old = with_refs(main, &[("dep.proto", old_dep)]);
        let new = with_refs(main, &[("dep.proto", new_dep)]);
        let found = check_backward(&new, &old);
        assert_eq!(
            kinds(&found),
            [
                "FIELD_SCALAR_KIND_CHANGED #/Home/1",
                "FIELD_NAMED_TYPE_CHANGED #/M/1"
            ]
        );
        assert!(check_backward(&old, &old).is_empty());
        // Moving a local message into an import removes it from the file.
        let local = proto(
            "syntax = \"proto3\"; package dep; message Home { string city = 1; } message M { Home h = 1; }",
        );
        let moved = with_refs(
            "syntax = \"proto3\"; package dep; import \"dep.proto\"; message M { Home h = 1; }",
            &[("dep.proto", old_dep)],
        );
        assert_eq!(
            kinds(&check_backward(&moved, &local)),
            ["MESSAGE_REMOVED #/Home"]
        );
        // The other way is fine.
        assert!(check_backward(&local, &moved).is_empty());
    }

    #[test]
    fn recursive_messages_terminate() {
        let dep = "syntax = \"proto3\"; package d; message Node { repeated Node children = 1; string v = 2; }";
        let dep2 = "syntax = \"proto3\"; package d; message Node { repeated Node children = 1; int32 v = 2; }";
        let main = "syntax = \"proto3\"; import \"d.proto\"; message T { d.Node root = 1; }";
        let a = with_refs(main, &[("d.proto", dep)]);
        let b = with_refs(main, &[("d.proto", dep2)]);
        assert!(check_backward(&a, &a).is_empty());
        assert!(!check_backward(&b, &a).is_empty());
    }

    #[test]
    fn every_problem_is_reported() {
        let found = check(
            &p3("message M { int32 a = 1; string b = 2; }"),
            &p3("message M { string a = 1; int32 b = 2; } message Gone {}"),
        );
        assert_eq!(
            kinds(&found),
            [
                "FIELD_SCALAR_KIND_CHANGED #/M/1",
                "FIELD_SCALAR_KIND_CHANGED #/M/2",
                "MESSAGE_REMOVED #/Gone"
            ]
        );
    }
}
