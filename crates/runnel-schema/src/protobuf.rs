//! Protobuf schemas: `.proto` text compiled at run time (protox, no
//! protoc), imports served from the references, Google's well-known types
//! built in, and a canonical text rendering of the compiled file.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use miette::Diagnostic;
use prost_reflect::{
    Cardinality, DynamicMessage, EnumDescriptor, ExtensionDescriptor, FieldDescriptor,
    FileDescriptor, Kind as FieldKind, MessageDescriptor, ServiceDescriptor, Syntax, Value,
};
use protox::file::{File, FileResolver, GoogleFileResolver};

use crate::{Resolved, SchemaError, SchemaType};

/// The highest field number, printed `max` in ranges.
const MAX_FIELD_NUMBER: u32 = 536_870_911;

#[derive(Debug, Clone)]
pub(crate) struct Protobuf {
    file: FileDescriptor,
}

/// Serves the schema and its references by import path, then the files
/// Confluent knows built in, then Google's well-known types.
struct Sources {
    files: BTreeMap<String, String>,
    /// The schema as an encoded `FileDescriptorProto`, when it came so.
    descriptor: Option<(String, Vec<u8>)>,
    google: GoogleFileResolver,
}

impl FileResolver for Sources {
    fn open_file(&self, name: &str) -> Result<File, protox::Error> {
        if let Some((main, bytes)) = &self.descriptor {
            if name == main {
                return File::decode_file_descriptor_proto(bytes.as_slice())
                    .map_err(protox::Error::new);
            }
        }
        if let Some(source) = self.files.get(name) {
            return File::from_source(name, source);
        }
        match crate::protobuf_builtin::file(name) {
            Some(source) => File::from_source(name, source),
            None => self.google.open_file(name),
        }
    }
}

impl Protobuf {
    pub(crate) fn parse(text: &str, references: &[Resolved]) -> Result<Protobuf, SchemaError> {
        let mut files = BTreeMap::new();
        collect(references, &mut files)?;
        let main = main_file_name(&files);
        let mut with_text = files.clone();
        with_text.insert(main.clone(), text.to_string());
        match compile(&main, with_text.clone(), None) {
            Ok(file) => Ok(Protobuf { file }),
            Err(e) => {
                // As Confluent does: text that is not a .proto may be a
                // base64-encoded FileDescriptorProto.
                if let Some(bytes) = descriptor_bytes(text, &main) {
                    if let Ok(file) = compile(&main, files, Some(bytes)) {
                        return Ok(Protobuf { file });
                    }
                }
                Err(compile_error(&e, &with_text, &main))
            }
        }
    }

    pub(crate) fn file(&self) -> &FileDescriptor {
        &self.file
    }

    /// The file as a base64 `FileDescriptorProto`.
    pub(crate) fn serialized(&self) -> String {
        base64_encode(&self.file.encode_to_vec())
    }

    pub(crate) fn canonical(&self) -> String {
        render(&self.file)
    }

    pub(crate) fn first_message(&self) -> Option<MessageDescriptor> {
        self.file.messages().next()
    }

    pub(crate) fn record_name(&self) -> Option<String> {
        self.first_message().map(|m| m.full_name().to_string())
    }

    /// The message Confluent's wire format names by `indexes`: the first
    /// is the index of a top-level message in the file, each next one the
    /// index of a message nested in the previous. Empty means the first
    /// message.
    pub(crate) fn message_by_indexes(&self, indexes: &[i32]) -> Option<MessageDescriptor> {
        let Some((first, rest)) = indexes.split_first() else {
            return self.first_message();
        };
        let mut message = self.file.messages().nth(usize::try_from(*first).ok()?)?;
        for i in rest {
            let child = message
                .child_messages()
                .filter(|m| !m.is_map_entry())
                .nth(usize::try_from(*i).ok()?)?;
            message = child;
        }
        Some(message)
    }

    /// The indexes of the message named `full_name` in this file, the
    /// inverse of [`Protobuf::message_by_indexes`].
    pub(crate) fn message_indexes(&self, full_name: &str) -> Option<Vec<i32>> {
        let message = self.file.parent_pool().get_message_by_name(full_name)?;
        if message.parent_file().name() != self.file.name() {
            return None;
        }
        let mut indexes = Vec::new();
        let mut current = message;
        loop {
            let parent = current.parent_message();
            let index = match &parent {
                Some(p) => p
                    .child_messages()
                    .filter(|m| !m.is_map_entry())
                    .position(|m| m.full_name() == current.full_name())?,
                None => self
                    .file
                    .messages()
                    .position(|m| m.full_name() == current.full_name())?,
            };
            indexes.push(i32::try_from(index).ok()?);
            match parent {
                Some(p) => current = p,
                None => break,
            }
        }
        indexes.reverse();
        Some(indexes)
    }
}

fn compile(
    main: &str,
    files: BTreeMap<String, String>,
    descriptor: Option<Vec<u8>>,
) -> Result<FileDescriptor, protox::Error> {
    let mut compiler = protox::Compiler::with_file_resolver(Sources {
        files,
        descriptor: descriptor.map(|d| (main.to_string(), d)),
        google: GoogleFileResolver::new(),
    });
    compiler.include_imports(true).include_source_info(false);
    compiler.open_file(main)?;
    compiler
        .descriptor_pool()
        .get_file_by_name(main)
        .ok_or_else(|| protox::Error::new("the compiled schema is missing"))
}

/// The text as an encoded `FileDescriptorProto` named `main`, when it is
/// base64 of one that declares something.
fn descriptor_bytes(text: &str, main: &str) -> Option<Vec<u8>> {
    use prost_reflect::prost::Message;
    let bytes = base64_decode(text.trim())?;
    let mut proto =
        prost_reflect::prost_types::FileDescriptorProto::decode(bytes.as_slice()).ok()?;
    if proto.message_type.is_empty() && proto.enum_type.is_empty() && proto.service.is_empty() {
        return None;
    }
    proto.name = Some(main.to_string());
    // Re-encoded with the name changed; unknown fields (custom options)
    // survive the round trip.
    Some(proto.encode_to_vec())
}

/// Standard base64 with padding.
pub(crate) fn base64_encode(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let n = chunk.iter().fold(0u32, |n, b| (n << 8) | u32::from(*b)) << (8 * (3 - chunk.len()));
        for i in 0..=chunk.len() {
            let index = (n >> (18 - 6 * i)) & 63;
            out.push(char::from(ALPHABET[index as usize]));
        }
        for _ in chunk.len()..3 {
            out.push('=');
        }
    }
    out
}

/// Standard base64 with padding (what Confluent's clients send).
fn base64_decode(text: &str) -> Option<Vec<u8>> {
    fn value(c: u8) -> Option<u32> {
        Some(u32::from(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        }))
    }
    let bytes = text.as_bytes();
    if bytes.is_empty() || !bytes.len().is_multiple_of(4) {
        return None;
    }
    let mut out = Vec::with_capacity(bytes.len() / 4 * 3);
    for (i, chunk) in bytes.chunks(4).enumerate() {
        let last = i == bytes.len() / 4 - 1;
        let pad = chunk.iter().rev().take_while(|c| **c == b'=').count();
        if pad > 2 || (pad > 0 && !last) {
            return None;
        }
        let mut n = 0u32;
        for &c in &chunk[..4 - pad] {
            n = (n << 6) | value(c)?;
        }
        n <<= 6 * pad;
        let decoded = [(n >> 16) as u8, (n >> 8) as u8, n as u8];
        out.extend_from_slice(&decoded[..3 - pad]);
    }
    Some(out)
}

/// The main file's name: one no reference uses.
fn main_file_name(files: &BTreeMap<String, String>) -> String {
    let mut name = "schema.proto".to_string();
    let mut n = 0;
    while files.contains_key(&name) {
        n += 1;
        name = format!("schema{n}.proto");
    }
    name
}

/// Every referenced file by import path, recursively.
fn collect(refs: &[Resolved], out: &mut BTreeMap<String, String>) -> Result<(), SchemaError> {
    for r in refs {
        if r.schema_type != SchemaType::Protobuf {
            return Err(SchemaError::invalid(format!(
                "a Protobuf schema cannot import the {} schema {}",
                r.schema_type, r.name
            )));
        }
        collect(&r.references, out)?;
        out.entry(r.name.clone())
            .or_insert_with(|| r.schema.clone());
    }
    Ok(())
}

/// protox's error with the line and column of its first label, in the file
/// it names (the message says which file when it is not the schema).
fn compile_error(e: &protox::Error, sources: &BTreeMap<String, String>, main: &str) -> SchemaError {
    let file = e.file().unwrap_or(main);
    let mut message = e.to_string();
    if file != main {
        message = format!("{file}: {message}");
    }
    if let Some(help) = e.help() {
        message = format!("{message} ({help})");
    }
    let offset = e
        .labels()
        .and_then(|mut labels| labels.next())
        .map(|label| label.offset());
    let position = offset.and_then(|o| sources.get(file).map(|s| line_column(s, o)));
    match position {
        Some((line, column)) => SchemaError::Invalid {
            message: format!("{message} at line {line} column {column}"),
            line: Some(line),
            column: Some(column),
        },
        None => SchemaError::invalid(message),
    }
}

/// 1-based line and column (in characters) of a byte offset.
pub(crate) fn line_column(source: &str, offset: usize) -> (u32, u32) {
    let mut line = 1u32;
    let mut column = 1u32;
    for (i, c) in source.char_indices() {
        if i >= offset {
            break;
        }
        if c == '\n' {
            line = line.saturating_add(1);
            column = 1;
        } else {
            column = column.saturating_add(1);
        }
    }
    (line, column)
}

// ---------------------------------------------------------------------------
// Canonical rendering
// ---------------------------------------------------------------------------

/// The file as `.proto` text in one fixed layout: declarations in their
/// order, type names fully qualified, options as the compiler understood
/// them, no comments. Two texts that compile to the same file render alike.
pub(crate) fn render(file: &FileDescriptor) -> String {
    let mut out = String::new();
    let syntax = match file.syntax() {
        Syntax::Proto2 => "proto2",
        Syntax::Proto3 => "proto3",
    };
    let _ = writeln!(out, "syntax = \"{syntax}\";");
    if !file.package_name().is_empty() {
        let _ = writeln!(out, "package {};", file.package_name());
    }
    let proto = file.file_descriptor_proto();
    for (i, dep) in proto.dependency.iter().enumerate() {
        let index = i32::try_from(i).unwrap_or(i32::MAX);
        let modifier = if proto.public_dependency.contains(&index) {
            "public "
        } else if proto.weak_dependency.contains(&index) {
            "weak "
        } else {
            ""
        };
        let _ = writeln!(out, "import {modifier}{};", quote(dep.as_bytes()));
    }
    for (name, value) in options(&file.options()) {
        let _ = writeln!(out, "option {name} = {value};");
    }
    for message in file.messages() {
        out.push('\n');
        render_message(&mut out, &message, 0, file.syntax());
    }
    for e in file.enums() {
        out.push('\n');
        render_enum(&mut out, &e, 0);
    }
    render_extensions(&mut out, file.extensions(), 0, file.syntax());
    for service in file.services() {
        out.push('\n');
        render_service(&mut out, &service);
    }
    out
}

fn indent(out: &mut String, depth: usize) {
    for _ in 0..depth {
        out.push_str("  ");
    }
}

fn render_message(out: &mut String, message: &MessageDescriptor, depth: usize, syntax: Syntax) {
    indent(out, depth);
    let _ = writeln!(out, "message {} {{", message.name());
    render_message_body(out, message, depth + 1, syntax);
    indent(out, depth);
    out.push_str("}\n");
}

fn render_message_body(
    out: &mut String,
    message: &MessageDescriptor,
    depth: usize,
    syntax: Syntax,
) {
    for (name, value) in options(&message.options()) {
        indent(out, depth);
        let _ = writeln!(out, "option {name} = {value};");
    }
    let reserved: Vec<String> = message
        .reserved_ranges()
        .map(|r| range(r.start, r.end.saturating_sub(1)))
        .collect();
    if !reserved.is_empty() {
        indent(out, depth);
        let _ = writeln!(out, "reserved {};", reserved.join(", "));
    }
    let names: Vec<String> = message
        .reserved_names()
        .map(|n| quote(n.as_bytes()))
        .collect();
    if !names.is_empty() {
        indent(out, depth);
        let _ = writeln!(out, "reserved {};", names.join(", "));
    }
    let ranges: Vec<String> = message
        .extension_ranges()
        .map(|r| range(r.start, r.end.saturating_sub(1)))
        .collect();
    if !ranges.is_empty() {
        indent(out, depth);
        let _ = writeln!(out, "extensions {};", ranges.join(", "));
    }
    let mut oneofs_done = Vec::new();
    for field in message.fields() {
        match field.containing_oneof().filter(|o| !o.is_synthetic()) {
            Some(oneof) => {
                if oneofs_done.contains(&oneof.name().to_string()) {
                    continue;
                }
                oneofs_done.push(oneof.name().to_string());
                indent(out, depth);
                let _ = writeln!(out, "oneof {} {{", oneof.name());
                for (name, value) in options(&oneof.options()) {
                    indent(out, depth + 1);
                    let _ = writeln!(out, "option {name} = {value};");
                }
                for f in oneof.fields() {
                    render_field(out, &f, depth + 1, syntax, true);
                }
                indent(out, depth);
                out.push_str("}\n");
            }
            None => render_field(out, &field, depth, syntax, false),
        }
    }
    for child in message.child_messages() {
        if child.is_map_entry() || is_group_type(message, &child) {
            continue;
        }
        render_message(out, &child, depth, syntax);
    }
    for e in message.child_enums() {
        render_enum(out, &e, depth);
    }
    render_extensions(out, message.child_extensions(), depth, syntax);
}

/// Whether `child` is the message of a proto2 group field of `message`
/// (rendered with the field).
fn is_group_type(message: &MessageDescriptor, child: &MessageDescriptor) -> bool {
    message.fields().any(|f| {
        f.is_group()
            && matches!(f.kind(), FieldKind::Message(m) if m.full_name() == child.full_name())
    })
}

fn render_field(
    out: &mut String,
    field: &FieldDescriptor,
    depth: usize,
    syntax: Syntax,
    in_oneof: bool,
) {
    indent(out, depth);
    let proto = field.field_descriptor_proto();
    let label = if field.is_map() || in_oneof {
        ""
    } else {
        match field.cardinality() {
            Cardinality::Repeated => "repeated ",
            Cardinality::Required => "required ",
            Cardinality::Optional => match syntax {
                Syntax::Proto2 => "optional ",
                Syntax::Proto3 if proto.proto3_optional() => "optional ",
                Syntax::Proto3 => "",
            },
        }
    };
    let mut opts = Vec::new();
    if let Some(default) = &proto.default_value {
        opts.push(("default".to_string(), default_literal(field, default)));
    }
    if let Some(json) = &proto.json_name {
        if *json != default_json_name(field.name()) {
            opts.push(("json_name".to_string(), quote(json.as_bytes())));
        }
    }
    opts.extend(options(&field.options()));
    let opts = bracketed(&opts);
    if field.is_group() {
        if let FieldKind::Message(group) = field.kind() {
            let _ = writeln!(
                out,
                "{label}group {} = {}{opts} {{",
                group.name(),
                field.number()
            );
            render_message_body(out, &group, depth + 1, syntax);
            indent(out, depth);
            out.push_str("}\n");
            return;
        }
    }
    let _ = writeln!(
        out,
        "{label}{} {} = {}{opts};",
        type_name(field),
        field.name(),
        field.number()
    );
}

fn render_extensions(
    out: &mut String,
    extensions: impl Iterator<Item = ExtensionDescriptor>,
    depth: usize,
    syntax: Syntax,
) {
    // Grouped by extendee, in order of first appearance.
    let mut groups: Vec<(String, Vec<ExtensionDescriptor>)> = Vec::new();
    for ext in extensions {
        let extendee = ext.containing_message().full_name().to_string();
        match groups.iter_mut().find(|(name, _)| *name == extendee) {
            Some((_, list)) => list.push(ext),
            None => groups.push((extendee, vec![ext])),
        }
    }
    for (extendee, list) in groups {
        if depth == 0 {
            out.push('\n');
        }
        indent(out, depth);
        let _ = writeln!(out, "extend .{extendee} {{");
        for ext in list {
            indent(out, depth + 1);
            let proto = ext.field_descriptor_proto();
            let label = match ext.cardinality() {
                Cardinality::Repeated => "repeated ",
                Cardinality::Required => "required ",
                Cardinality::Optional => match syntax {
                    Syntax::Proto2 => "optional ",
                    Syntax::Proto3 if proto.proto3_optional() => "optional ",
                    Syntax::Proto3 => "",
                },
            };
            let mut opts = Vec::new();
            if let Some(default) = &proto.default_value {
                let literal = match ext.kind() {
                    FieldKind::String | FieldKind::Bytes => quote_escaped(default, &ext.kind()),
                    _ => default.clone(),
                };
                opts.push(("default".to_string(), literal));
            }
            opts.extend(options(&ext.options()));
            let _ = writeln!(
                out,
                "{label}{} {} = {}{};",
                kind_name(&ext.kind()),
                ext.name(),
                ext.number(),
                bracketed(&opts)
            );
        }
        indent(out, depth);
        out.push_str("}\n");
    }
}

fn render_enum(out: &mut String, e: &EnumDescriptor, depth: usize) {
    indent(out, depth);
    let _ = writeln!(out, "enum {} {{", e.name());
    for (name, value) in options(&e.options()) {
        indent(out, depth + 1);
        let _ = writeln!(out, "option {name} = {value};");
    }
    let reserved: Vec<String> = e
        .reserved_ranges()
        .map(|r| {
            if r.start() == r.end() {
                r.start().to_string()
            } else if *r.end() == i32::MAX {
                format!("{} to max", r.start())
            } else {
                format!("{} to {}", r.start(), r.end())
            }
        })
        .collect();
    if !reserved.is_empty() {
        indent(out, depth + 1);
        let _ = writeln!(out, "reserved {};", reserved.join(", "));
    }
    let names: Vec<String> = e.reserved_names().map(|n| quote(n.as_bytes())).collect();
    if !names.is_empty() {
        indent(out, depth + 1);
        let _ = writeln!(out, "reserved {};", names.join(", "));
    }
    // In declaration order (the descriptor sorts aliases by number).
    let values = e
        .enum_descriptor_proto()
        .value
        .iter()
        .filter_map(|v| e.get_value_by_name(v.name()));
    for value in values {
        indent(out, depth + 1);
        let _ = writeln!(
            out,
            "{} = {}{};",
            value.name(),
            value.number(),
            bracketed(&options(&value.options()))
        );
    }
    indent(out, depth);
    out.push_str("}\n");
}

fn render_service(out: &mut String, service: &ServiceDescriptor) {
    let _ = writeln!(out, "service {} {{", service.name());
    for (name, value) in options(&service.options()) {
        let _ = writeln!(out, "  option {name} = {value};");
    }
    for method in service.methods() {
        let stream_in = if method.is_client_streaming() {
            "stream "
        } else {
            ""
        };
        let stream_out = if method.is_server_streaming() {
            "stream "
        } else {
            ""
        };
        let _ = write!(
            out,
            "  rpc {}({stream_in}.{}) returns ({stream_out}.{})",
            method.name(),
            method.input().full_name(),
            method.output().full_name()
        );
        let opts = options(&method.options());
        if opts.is_empty() {
            out.push_str(";\n");
        } else {
            out.push_str(" {\n");
            for (name, value) in opts {
                let _ = writeln!(out, "    option {name} = {value};");
            }
            out.push_str("  }\n");
        }
    }
    out.push_str("}\n");
}

fn range(start: u32, end: u32) -> String {
    if start == end {
        start.to_string()
    } else if end >= MAX_FIELD_NUMBER {
        format!("{start} to max")
    } else {
        format!("{start} to {end}")
    }
}

fn bracketed(opts: &[(String, String)]) -> String {
    if opts.is_empty() {
        return String::new();
    }
    let inner: Vec<String> = opts.iter().map(|(n, v)| format!("{n} = {v}")).collect();
    format!(" [{}]", inner.join(", "))
}

/// The set options of an options message, standard ones by name, custom
/// ones as `(full.name)`; a repeated option once per value.
fn options(message: &DynamicMessage) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for (field, value) in message.fields() {
        if field.name() == "uninterpreted_option" {
            continue;
        }
        push_option(&mut out, field.name().to_string(), &field.kind(), value);
    }
    for (ext, value) in message.extensions() {
        push_option(
            &mut out,
            format!("({})", ext.full_name()),
            &ext.kind(),
            value,
        );
    }
    out
}

fn push_option(out: &mut Vec<(String, String)>, name: String, kind: &FieldKind, value: &Value) {
    match value {
        Value::List(values) => {
            for v in values {
                out.push((name.clone(), option_value(kind, v)));
            }
        }
        v => out.push((name, option_value(kind, v))),
    }
}

fn option_value(kind: &FieldKind, value: &Value) -> String {
    match value {
        Value::Bool(b) => b.to_string(),
        Value::I32(n) => n.to_string(),
        Value::I64(n) => n.to_string(),
        Value::U32(n) => n.to_string(),
        Value::U64(n) => n.to_string(),
        Value::F32(f) => float(f64::from(*f)),
        Value::F64(f) => float(*f),
        Value::String(s) => quote(s.as_bytes()),
        Value::Bytes(b) => quote(b),
        Value::EnumNumber(n) => match kind {
            FieldKind::Enum(e) => e
                .get_value(*n)
                .map(|v| v.name().to_string())
                .unwrap_or_else(|| n.to_string()),
            _ => n.to_string(),
        },
        Value::Message(m) => format!("{{ {m} }}"),
        Value::List(values) => {
            let items: Vec<String> = values.iter().map(|v| option_value(kind, v)).collect();
            format!("[{}]", items.join(", "))
        }
        Value::Map(_) => "{}".to_string(),
    }
}

fn float(f: f64) -> String {
    if f.is_nan() {
        "nan".to_string()
    } else if f.is_infinite() {
        if f > 0.0 { "inf" } else { "-inf" }.to_string()
    } else {
        format!("{f:?}")
    }
}

/// A string or bytes literal, C-escaped.
fn quote(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() + 2);
    out.push('"');
    for &b in bytes {
        match b {
            b'"' => out.push_str("\\\""),
            b'\\' => out.push_str("\\\\"),
            b'\n' => out.push_str("\\n"),
            b'\r' => out.push_str("\\r"),
            b'\t' => out.push_str("\\t"),
            0x20..=0x7e => out.push(char::from(b)),
            _ => {
                let _ = write!(out, "\\{b:03o}");
            }
        }
    }
    out.push('"');
    out
}

/// A default value as the descriptor stores it (bytes already C-escaped,
/// strings raw) rendered as a literal of the field's type.
fn default_literal(field: &FieldDescriptor, default: &str) -> String {
    quote_escaped(default, &field.kind())
}

fn quote_escaped(default: &str, kind: &FieldKind) -> String {
    match kind {
        FieldKind::String => quote(default.as_bytes()),
        // Already escaped by the compiler.
        FieldKind::Bytes => format!("\"{default}\""),
        _ => default.to_string(),
    }
}

/// protoc's JSON name: underscores dropped, the letter after each one
/// upper-cased.
fn default_json_name(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut upper = false;
    for c in name.chars() {
        if c == '_' {
            upper = true;
        } else if upper {
            out.push(c.to_ascii_uppercase());
            upper = false;
        } else {
            out.push(c);
        }
    }
    out
}

fn type_name(field: &FieldDescriptor) -> String {
    if field.is_map() {
        if let FieldKind::Message(entry) = field.kind() {
            return format!(
                "map<{}, {}>",
                kind_name(&entry.map_entry_key_field().kind()),
                kind_name(&entry.map_entry_value_field().kind())
            );
        }
    }
    kind_name(&field.kind())
}

pub(crate) fn kind_name(kind: &FieldKind) -> String {
    match kind {
        FieldKind::Double => "double".into(),
        FieldKind::Float => "float".into(),
        FieldKind::Int32 => "int32".into(),
        FieldKind::Int64 => "int64".into(),
        FieldKind::Uint32 => "uint32".into(),
        FieldKind::Uint64 => "uint64".into(),
        FieldKind::Sint32 => "sint32".into(),
        FieldKind::Sint64 => "sint64".into(),
        FieldKind::Fixed32 => "fixed32".into(),
        FieldKind::Fixed64 => "fixed64".into(),
        FieldKind::Sfixed32 => "sfixed32".into(),
        FieldKind::Sfixed64 => "sfixed64".into(),
        FieldKind::Bool => "bool".into(),
        FieldKind::String => "string".into(),
        FieldKind::Bytes => "bytes".into(),
        FieldKind::Message(m) => format!(".{}", m.full_name()),
        FieldKind::Enum(e) => format!(".{}", e.full_name()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{ParsedSchema, SchemaType};

    fn parse(text: &str) -> ParsedSchema {
        ParsedSchema::parse(SchemaType::Protobuf, text, &[]).unwrap()
    }

    fn reference(name: &str, text: &str) -> Resolved {
        Resolved {
            name: name.into(),
            schema_type: SchemaType::Protobuf,
            schema: text.into(),
            references: vec![],
        }
    }

    const ORDER: &str = r#"
        syntax = "proto3";
        package shop.v1;

        import "google/protobuf/timestamp.proto";

        // An order.
        message Order {
          string id = 1;
          repeated Line lines = 2;
          map<string, int64> tags = 3;
          google.protobuf.Timestamp at = 4;
          optional int32 priority = 5;
          oneof payment {
            string card = 6;
            string voucher = 7;
          }
          Status status = 8;
          message Line {
            string sku = 1;
            uint32 quantity = 2 [deprecated = true];
          }
          enum Status {
            STATUS_UNKNOWN = 0;
            STATUS_PAID = 1;
          }
          reserved 20 to 25, 30;
          reserved "old";
        }

        message Refund { string order_id = 1; }
    "#;

    #[test]
    fn parses_with_well_known_types_and_names_the_first_message() {
        let s = parse(ORDER);
        assert_eq!(s.schema_type(), SchemaType::Protobuf);
        assert_eq!(s.record_name().as_deref(), Some("shop.v1.Order"));
        assert_eq!(s.as_protobuf().unwrap().full_name(), "shop.v1.Order");
        assert!(s.as_avro().is_none());
    }

    #[test]
    fn canonical_form_ignores_whitespace_and_comments_and_reparses() {
        let a = parse(ORDER);
        let squeezed: String = ORDER
            .lines()
            .filter(|l| !l.trim_start().starts_with("//"))
            .map(|l| format!("{}  /* c */\n", l.trim()))
            .collect();
        let b = parse(&squeezed);
        assert_eq!(a.canonical(), b.canonical());
        // The canonical text is itself a schema with the same canonical form.
        let c = parse(a.canonical());
        assert_eq!(c.canonical(), a.canonical(), "{}", a.canonical());
        assert!(a.canonical().contains("map<string, int64> tags = 3;"));
        assert!(a.canonical().contains("optional int32 priority = 5;"));
        assert!(a.canonical().contains("oneof payment {"));
        assert!(a.canonical().contains("reserved 20 to 25, 30;"));
    }

    #[test]
    fn proto2_features_render_and_reparse() {
        let text = r#"
            syntax = "proto2";
            package p;
            option java_package = "com.example.p";
            message A {
              required string name = 1 [default = "x\"y"];
              optional bytes raw = 2 [default = "\001a"];
              optional double ratio = 3 [default = inf];
              optional E e = 4 [default = TWO];
              repeated int32 packed_ints = 5 [packed = true];
              optional int32 renamed = 6 [json_name = "other"];
              extensions 100 to max;
              optional group Inner = 7 { optional int32 x = 1; }
            }
            enum E { option allow_alias = true; ONE = 1; TWO = 2; DEUX = 2; reserved 10 to max; }
            extend A { optional int32 extra = 100; }
            service S { rpc Get(A) returns (stream A); }
        "#;
        let a = parse(text);
        let b = parse(a.canonical());
        assert_eq!(a.canonical(), b.canonical(), "{}", a.canonical());
        assert!(a
            .canonical()
            .contains("option java_package = \"com.example.p\";"));
        assert!(a.canonical().contains("[json_name = \"other\"]"));
    }

    #[test]
    fn imports_come_from_references() {
        let common = reference(
            "common/money.proto",
            "syntax = \"proto3\"; package common; message Money { int64 cents = 1; }",
        );
        let text = r#"
            syntax = "proto3";
            import "common/money.proto";
            message Price { common.Money amount = 1; }
        "#;
        let s = ParsedSchema::parse(SchemaType::Protobuf, text, &[common]).unwrap();
        assert_eq!(s.record_name().as_deref(), Some("Price"));
        assert!(s.canonical().contains(".common.Money amount = 1;"));
        let missing = ParsedSchema::parse(SchemaType::Protobuf, text, &[]).unwrap_err();
        assert!(
            missing.to_string().contains("common/money.proto"),
            "{missing}"
        );
    }

    #[test]
    fn nested_references_are_followed() {
        let inner = reference("a.proto", "syntax = \"proto3\"; message A { int32 x = 1; }");
        let mut middle = reference(
            "b.proto",
            "syntax = \"proto3\"; import \"a.proto\"; message B { A a = 1; }",
        );
        middle.references.push(inner);
        let s = ParsedSchema::parse(
            SchemaType::Protobuf,
            "syntax = \"proto3\"; import \"b.proto\"; message C { B b = 1; }",
            &[middle],
        )
        .unwrap();
        assert_eq!(s.record_name().as_deref(), Some("C"));
    }

    #[test]
    fn all_well_known_types_import() {
        let text = r#"
            syntax = "proto3";
            import "google/protobuf/any.proto";
            import "google/protobuf/duration.proto";
            import "google/protobuf/empty.proto";
            import "google/protobuf/struct.proto";
            import "google/protobuf/timestamp.proto";
            import "google/protobuf/wrappers.proto";
            import "google/protobuf/field_mask.proto";
            message W {
              google.protobuf.Any any = 1;
              google.protobuf.Duration d = 2;
              google.protobuf.Empty e = 3;
              google.protobuf.Struct s = 4;
              google.protobuf.Timestamp t = 5;
              google.protobuf.StringValue sv = 6;
              google.protobuf.FieldMask fm = 7;
            }
        "#;
        parse(text);
    }

    #[test]
    fn confluents_built_in_imports_need_no_references() {
        for (name, _) in crate::protobuf_builtin::FILES {
            let text =
                format!("syntax = \"proto3\";\nimport \"{name}\";\nmessage M {{ int32 x = 1; }}");
            ParsedSchema::parse(SchemaType::Protobuf, &text, &[])
                .unwrap_or_else(|e| panic!("{name}: {e}"));
        }
        let text = r#"
            syntax = "proto3";
            import "confluent/meta.proto";
            import "google/type/date.proto";
            message Event {
              option (confluent.message_meta) = { doc: "an event" };
              google.type.Date day = 1 [(confluent.field_meta) = { tags: ["PII"] }];
            }
        "#;
        let s = parse(text);
        assert!(
            s.canonical().contains("(confluent.field_meta)"),
            "{}",
            s.canonical()
        );
        let again = parse(s.canonical());
        assert_eq!(again.canonical(), s.canonical());
    }

    #[test]
    fn base64_descriptors_are_accepted_as_confluent_accepts_them() {
        use prost_reflect::prost::Message;
        let text = parse(ORDER);
        let bytes = text
            .file_descriptor()
            .unwrap()
            .file_descriptor_proto()
            .encode_to_vec();
        let b64 = text.serialized().unwrap();
        let from_descriptor = parse(&b64);
        assert_eq!(from_descriptor.canonical(), text.canonical());
        assert_eq!(base64_decode(&b64), Some(bytes));
        assert_eq!(base64_decode("abc"), None);
        for n in 0..8u8 {
            let data: Vec<u8> = (0..n).map(|i| i * 37 + 1).collect();
            assert_eq!(
                base64_decode(&base64_encode(&data)).unwrap_or_default(),
                data
            );
        }
        assert_eq!(base64_encode(b"Ma"), "TWE=");
        assert_eq!(base64_decode("a=bc"), None);
        // Text that is neither keeps the .proto parser's error.
        let err = ParsedSchema::parse(SchemaType::Protobuf, "QUJD", &[]).unwrap_err();
        assert!(
            matches!(err, SchemaError::Invalid { line: Some(_), .. }),
            "{err:?}"
        );
    }

    #[test]
    fn invalid_schemas_say_where() {
        let err = ParsedSchema::parse(
            SchemaType::Protobuf,
            "syntax = \"proto3\";\nmessage A {\n  int32 x = 1\n}\n",
            &[],
        )
        .unwrap_err();
        match err {
            SchemaError::Invalid { line, column, .. } => {
                assert_eq!(line, Some(4), "{err}");
                assert!(column.is_some());
            }
            other => panic!("{other:?}"),
        }
        let err = ParsedSchema::parse(
            SchemaType::Protobuf,
            "syntax = \"proto3\";\nmessage A {\n  Missing x = 1;\n}\n",
            &[],
        )
        .unwrap_err();
        match &err {
            SchemaError::Invalid { line, message, .. } => {
                assert_eq!(*line, Some(3), "{err}");
                assert!(message.contains("Missing"), "{message}");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn message_indexes_follow_confluents_wire_format() {
        let text = r#"
            syntax = "proto3";
            message A { message A1 { int32 x = 1; } map<string, string> m = 1; message A2 { message A21 {} } }
            message B {}
        "#;
        let s = parse(text);
        let at = |ix: &[i32]| s.message_by_indexes(ix).map(|m| m.full_name().to_string());
        assert_eq!(at(&[]).as_deref(), Some("A"));
        assert_eq!(at(&[0]).as_deref(), Some("A"));
        assert_eq!(at(&[1]).as_deref(), Some("B"));
        assert_eq!(at(&[0, 0]).as_deref(), Some("A.A1"));
        // The map entry is not counted.
        assert_eq!(at(&[0, 1]).as_deref(), Some("A.A2"));
        assert_eq!(at(&[0, 1, 0]).as_deref(), Some("A.A2.A21"));
        assert_eq!(at(&[2]), None);
        assert_eq!(at(&[-1]), None);
        assert_eq!(s.message_indexes("A.A2.A21"), Some(vec![0, 1, 0]));
        assert_eq!(s.message_indexes("B"), Some(vec![1]));
        assert_eq!(s.message_indexes("Nope"), None);
        assert_eq!(s.file_descriptor().unwrap().messages().len(), 2);
    }

    #[test]
    fn a_proto_cannot_import_an_avro_schema() {
        let r = Resolved {
            name: "a.proto".into(),
            schema_type: SchemaType::Avro,
            schema: "\"int\"".into(),
            references: vec![],
        };
        assert!(ParsedSchema::parse(SchemaType::Protobuf, "syntax = \"proto3\";", &[r]).is_err());
    }
}
