//! Whether a new JSON Schema accepts every document an older one accepted
//! (Confluent's BACKWARD for JSON Schema, its strict default): our own
//! checker, following the behaviour Confluent documents and Karapace tests.
//!
//! The new schema is the reader, the old one the writer: the reader must
//! accept at least what the writer accepted. So types may widen (integer to
//! number, a type added) but not narrow; bounds (`maximum`, `maxLength`,
//! `maxItems`…) may loosen but not tighten or appear; `enum`s may grow but
//! not shrink; a `pattern` may go but not come or change. Objects follow
//! the content model of the old schema: where it was open (no
//! `additionalProperties: false`), documents may hold any property, so a
//! new property with a schema restricts what was accepted; where it was
//! closed, new optional properties are fine. A property the new schema no
//! longer lists is fine where the new schema is open, not where it is
//! closed. A property may not become required (unless it has a default).
//! `allOf`/`anyOf`/`oneOf` are matched branch to branch, `$ref`s are
//! followed into the schema and its references.

use std::collections::{BTreeMap, BTreeSet, HashSet};

use serde_json::{Map, Value};

use crate::json::{find_reference, Json};
use crate::Incompatibility;

pub(crate) fn check_backward(new: &Json, previous: &Json) -> Vec<Incompatibility> {
    let mut checker = Checker {
        new_refs: new.references(),
        old_refs: previous.references(),
        out: Vec::new(),
        seen: HashSet::new(),
    };
    let reader = Node::new(new.value());
    let writer = Node::new(previous.value());
    checker.compare(reader, writer, "#");
    checker.out
}

/// A schema in the document it was found in (where its local `$ref`s
/// point).
#[derive(Clone, Copy)]
struct Node<'a> {
    value: &'a Value,
    root: &'a Value,
    /// Seen without its `allOf`/`anyOf`/`oneOf` (the keywords beside
    /// them, compared on their own).
    without_combined: bool,
}

const COMBINED: [&str; 3] = ["allOf", "anyOf", "oneOf"];

impl<'a> Node<'a> {
    fn new(value: &'a Value) -> Node<'a> {
        Node {
            value,
            root: value,
            without_combined: false,
        }
    }

    fn with(self, value: &'a Value) -> Node<'a> {
        Node {
            value,
            root: self.root,
            without_combined: false,
        }
    }

    fn siblings(self) -> Node<'a> {
        Node {
            without_combined: true,
            ..self
        }
    }

    fn obj(&self) -> Option<&'a Map<String, Value>> {
        self.value.as_object()
    }

    fn hidden(&self, key: &str) -> bool {
        self.without_combined && COMBINED.contains(&key)
    }

    fn get(&self, key: &str) -> Option<&'a Value> {
        if self.hidden(key) {
            return None;
        }
        self.obj().and_then(|o| o.get(key))
    }

    fn num(&self, key: &str) -> Option<f64> {
        self.get(key).and_then(Value::as_f64)
    }

    /// `true`, `{}` or a schema of annotations only: accepts anything.
    fn accepts_anything(&self) -> bool {
        match self.value {
            Value::Bool(b) => *b,
            Value::Object(o) => o
                .keys()
                .all(|k| ANNOTATIONS.contains(&k.as_str()) || self.hidden(k)),
            _ => true,
        }
    }

    fn accepts_nothing(&self) -> bool {
        matches!(self.value, Value::Bool(false))
    }
}

/// Keywords that do not constrain what a schema accepts.
const ANNOTATIONS: &[&str] = &[
    "$schema",
    "$id",
    "id",
    "$comment",
    "$anchor",
    "title",
    "description",
    "default",
    "examples",
    "deprecated",
    "readOnly",
    "writeOnly",
    "definitions",
    "$defs",
    "format",
    "connect.index",
    "connect.type",
    "connect.parameters",
];

const TYPES: &[&str] = &[
    "null", "boolean", "object", "array", "number", "integer", "string",
];

struct Checker<'a> {
    new_refs: &'a BTreeMap<String, Value>,
    old_refs: &'a BTreeMap<String, Value>,
    out: Vec<Incompatibility>,
    /// Pairs being compared (by address), so recursive schemas end.
    seen: HashSet<(usize, usize)>,
}

impl<'a> Checker<'a> {
    fn add(&mut self, kind: &str, path: &str, message: String) {
        self.out.push(Incompatibility {
            kind: kind.to_string(),
            path: path.to_string(),
            message,
        });
    }

    /// Whether `reader` accepts what `writer` did, recording nothing.
    fn probe(&mut self, reader: Node<'a>, writer: Node<'a>) -> bool {
        let before = self.out.len();
        self.compare(reader, writer, "#");
        let ok = self.out.len() == before;
        self.out.truncate(before);
        ok
    }

    /// Follows `$ref`s (local pointers and references by name or URL).
    fn resolve(&self, node: Node<'a>, new: bool) -> Node<'a> {
        let mut node = node;
        for _ in 0..32 {
            let Some(target) = node.get("$ref").and_then(Value::as_str) else {
                return node;
            };
            let (doc, pointer) = match target.split_once('#') {
                Some((doc, pointer)) => (doc, pointer),
                None => (target, ""),
            };
            let root = if doc.is_empty() {
                node.root
            } else {
                let refs = if new { self.new_refs } else { self.old_refs };
                match find_reference(refs, doc)
                    .or_else(|| find_reference(refs, &format!("json-schema:///{doc}")))
                {
                    Some(root) => root,
                    None => return node,
                }
            };
            let value = if pointer.is_empty() {
                Some(root)
            } else {
                root.pointer(pointer)
            };
            match value {
                Some(value) => {
                    node = Node {
                        value,
                        root,
                        without_combined: false,
                    }
                }
                None => return node,
            }
        }
        node
    }

    fn compare(&mut self, reader: Node<'a>, writer: Node<'a>, path: &str) {
        let reader = self.resolve(reader, true);
        let writer = self.resolve(writer, false);
        let key = (
            std::ptr::from_ref(reader.value) as usize,
            std::ptr::from_ref(writer.value) as usize,
        );
        if !self.seen.insert(key) {
            return;
        }
        self.compare_resolved(reader, writer, path);
        self.seen.remove(&key);
    }

    fn compare_resolved(&mut self, reader: Node<'a>, writer: Node<'a>, path: &str) {
        if reader.accepts_anything() || writer.accepts_nothing() {
            return;
        }
        if reader.accepts_nothing() {
            self.add(
                "TYPE_NARROWED",
                path,
                "the new schema is false and rejects everything the old one accepted".into(),
            );
            return;
        }
        if writer.accepts_anything() {
            self.add(
                "TYPE_NARROWED",
                path,
                "the old schema accepted any value here; the new one restricts it".into(),
            );
            return;
        }

        // A combination of one schema is that schema (Confluent too).
        let writer_alternatives = combined(writer).map_or(0, |(_, ws)| ws.len());
        if let (Some((_, [only])), 0 | 1) = (combined(reader), writer_alternatives) {
            self.compare(reader.with(only), writer, path);
            let siblings = reader.siblings();
            if !siblings.accepts_anything() {
                self.compare_resolved(siblings, writer, path);
            }
            return;
        }
        if let Some((_, [only])) = combined(writer) {
            if writer.siblings().accepts_anything() {
                self.compare(reader, writer.with(only), path);
                return;
            }
        }

        match (combined(reader), combined(writer)) {
            (None, None) => {}
            (Some(rc), _) => {
                self.compare_reader_combined(reader, rc, writer, path);
                let siblings = reader.siblings();
                if !siblings.accepts_anything() {
                    self.compare_resolved(siblings, writer, path);
                }
                return;
            }
            (None, Some(wc)) => {
                self.compare_writer_combined(reader, writer, wc, path);
                return;
            }
        }

        if let (Some(rn), Some(wn)) = (reader.get("not"), writer.get("not")) {
            // What the reader rejects must have been rejected already.
            if !self.probe(writer.with(wn), reader.with(rn)) {
                self.add(
                    "NOT_TYPE_EXTENDED",
                    &format!("{path}/not"),
                    "the new 'not' rejects values the old schema accepted".into(),
                );
            }
        } else if reader.get("not").is_some() {
            self.add(
                "NOT_TYPE_EXTENDED",
                &format!("{path}/not"),
                "a 'not' was added, which rejects values the old schema accepted".into(),
            );
        }

        self.compare_enum(reader, writer, path);

        let reader_types = types_of(reader);
        let writer_types = types_of(writer);
        let common = self.compare_types(&reader_types, &writer_types, path);
        for t in common {
            match t {
                "number" | "integer" => self.compare_number(reader, writer, path),
                "string" => self.compare_string(reader, writer, path),
                "array" => self.compare_array(reader, writer, path),
                "object" => self.compare_object(reader, writer, path),
                _ => {}
            }
        }
    }

    /// The types the writer may produce that the reader still accepts;
    /// reports those it does not.
    fn compare_types(
        &mut self,
        reader: &Option<BTreeSet<&'static str>>,
        writer: &Option<BTreeSet<&'static str>>,
        path: &str,
    ) -> Vec<&'static str> {
        let all: BTreeSet<&'static str> = TYPES.iter().copied().collect();
        let writer = writer.clone().unwrap_or_else(|| all.clone());
        let reader = reader.clone().unwrap_or(all);
        let accepted =
            |t: &str| reader.contains(t) || (t == "integer" && reader.contains("number"));
        let lost: Vec<&str> = writer.iter().copied().filter(|t| !accepted(t)).collect();
        let kept: Vec<&'static str> = writer.iter().copied().filter(|t| accepted(t)).collect();
        if !lost.is_empty() {
            let only_integers_left = lost == ["number"] && reader.contains("integer");
            let (kind, how) = if kept.is_empty() && !only_integers_left {
                ("TYPE_CHANGED", "changed")
            } else {
                ("TYPE_NARROWED", "narrowed")
            };
            self.add(
                kind,
                path,
                format!(
                    "the type {how} from {} to {}: values of type {} written before are no longer accepted",
                    list(&writer),
                    list(&reader),
                    lost.join(", ")
                ),
            );
        }
        // Number keywords are checked once for number and integer.
        let mut kept = kept;
        if kept.contains(&"number") {
            kept.retain(|t| *t != "integer");
        }
        kept
    }

    fn compare_enum(&mut self, reader: Node<'a>, writer: Node<'a>, path: &str) {
        let reader_values = enum_values(reader);
        let Some(reader_values) = reader_values else {
            return;
        };
        match enum_values(writer) {
            None => self.add(
                "ENUM_ARRAY_NARROWED",
                &format!("{path}/enum"),
                "an enum (or const) was added: values accepted before may not be in it".into(),
            ),
            Some(writer_values) => {
                let missing: Vec<String> = writer_values
                    .iter()
                    .filter(|v| !reader_values.contains(v))
                    .map(|v| v.to_string())
                    .collect();
                if !missing.is_empty() {
                    self.add(
                        "ENUM_ARRAY_NARROWED",
                        &format!("{path}/enum"),
                        format!(
                            "the enum lost {}, which old documents may hold; keep them",
                            missing.join(", ")
                        ),
                    );
                }
            }
        }
    }

    fn compare_number(&mut self, reader: Node<'a>, writer: Node<'a>, path: &str) {
        self.upper_bound(reader, writer, path, "maximum", "MAXIMUM");
        self.lower_bound(reader, writer, path, "minimum", "MINIMUM");
        // Draft 4 spells exclusive bounds as booleans beside maximum/minimum.
        for (keyword, name) in [
            ("exclusiveMaximum", "EXCLUSIVE_MAXIMUM"),
            ("exclusiveMinimum", "EXCLUSIVE_MINIMUM"),
        ] {
            match (reader.get(keyword), writer.get(keyword)) {
                (Some(Value::Bool(true)), w) if w != Some(&Value::Bool(true)) => self.add(
                    &format!("{name}_ADDED"),
                    &format!("{path}/{keyword}"),
                    format!("{keyword} was added: a value on the bound is no longer accepted"),
                ),
                (Some(Value::Number(_)), _) | (_, Some(Value::Number(_))) => {
                    if keyword == "exclusiveMaximum" {
                        self.upper_bound(reader, writer, path, keyword, name);
                    } else {
                        self.lower_bound(reader, writer, path, keyword, name);
                    }
                }
                _ => {}
            }
        }
        match (reader.num("multipleOf"), writer.num("multipleOf")) {
            (Some(r), None) => self.add(
                "MULTIPLE_OF_ADDED",
                &format!("{path}/multipleOf"),
                format!("multipleOf {r} was added: other numbers accepted before are not"),
            ),
            (Some(r), Some(w)) if r != w => {
                let ratio = w / r;
                if (ratio - ratio.round()).abs() > 1e-9 {
                    let kind = if r > w {
                        "MULTIPLE_OF_EXPANDED"
                    } else {
                        "MULTIPLE_OF_CHANGED"
                    };
                    self.add(
                        kind,
                        &format!("{path}/multipleOf"),
                        format!(
                            "multipleOf changed from {w} to {r}: {w} is not a multiple of {r}, so old values may not be"
                        ),
                    );
                }
            }
            _ => {}
        }
    }

    fn compare_string(&mut self, reader: Node<'a>, writer: Node<'a>, path: &str) {
        self.upper_bound(reader, writer, path, "maxLength", "MAX_LENGTH");
        self.lower_bound(reader, writer, path, "minLength", "MIN_LENGTH");
        match (reader.get("pattern"), writer.get("pattern")) {
            (Some(r), None) => self.add(
                "PATTERN_ADDED",
                &format!("{path}/pattern"),
                format!("the pattern {r} was added: strings accepted before may not match it"),
            ),
            (Some(r), Some(w)) if r != w => self.add(
                "PATTERN_CHANGED",
                &format!("{path}/pattern"),
                format!(
                    "the pattern changed from {w} to {r}: strings accepted before may not match it"
                ),
            ),
            _ => {}
        }
    }

    fn compare_array(&mut self, reader: Node<'a>, writer: Node<'a>, path: &str) {
        self.upper_bound(reader, writer, path, "maxItems", "MAX_ITEMS");
        self.lower_bound(reader, writer, path, "minItems", "MIN_ITEMS");
        self.upper_bound(reader, writer, path, "maxContains", "MAX_CONTAINS");
        self.lower_bound(reader, writer, path, "minContains", "MIN_CONTAINS");
        if reader.get("uniqueItems") == Some(&Value::Bool(true))
            && writer.get("uniqueItems") != Some(&Value::Bool(true))
        {
            self.add(
                "UNIQUE_ITEMS_ADDED",
                &format!("{path}/uniqueItems"),
                "uniqueItems was added: arrays with repeated items accepted before are not".into(),
            );
        }
        let r = Items::of(reader);
        let w = Items::of(writer);
        if r.prefix_key.is_none() && w.prefix_key.is_none() {
            // additionalItems means nothing without a tuple, but Confluent
            // compares it all the same; so do we, for the same verdicts.
            let here = format!("{path}/additionalItems");
            match (reader.get("additionalItems"), writer.get("additionalItems")) {
                (Some(Value::Bool(false)), w) if w != Some(&Value::Bool(false)) => self.add(
                    "ADDITIONAL_ITEMS_REMOVED",
                    &here,
                    "additionalItems became false".into(),
                ),
                (Some(ra), Some(wa)) => self.compare(reader.with(ra), writer.with(wa), &here),
                (Some(ra), None) if !reader.with(ra).accepts_anything() => self.add(
                    "ADDITIONAL_ITEMS_NARROWED",
                    &here,
                    "additionalItems now has a schema".into(),
                ),
                _ => {}
            }
        }
        let positions = r.prefix.len().max(w.prefix.len());
        for i in 0..positions {
            let rp = r.at(i);
            let wp = w.at(i);
            let here = match (r.prefix_key, i < r.prefix.len()) {
                (Some(key), true) => format!("{path}/{key}/{i}"),
                _ => format!("{path}/{}", r.rest_key),
            };
            match (rp, wp) {
                (Some(rp), Some(wp)) => {
                    let before = self.out.len();
                    self.compare(reader.with(rp), writer.with(wp), &here);
                    if self.out.len() > before && i >= r.prefix.len() {
                        // The writer's tuple item now falls under the
                        // reader's rest schema.
                        self.add(
                            "ITEM_REMOVED_NOT_COVERED_BY_PARTIALLY_OPEN_CONTENT_MODEL",
                            &here,
                            format!("item {i} of old arrays does not match the new schema for further items"),
                        );
                    }
                }
                // An old item that could not be there.
                (None, Some(wp)) if writer.with(wp).accepts_nothing() => {}
                (None, Some(_)) => {
                    self.add(
                        "ITEM_REMOVED_FROM_CLOSED_CONTENT_MODEL",
                        &here,
                        format!("arrays may no longer have an item at {i}, which old ones could"),
                    );
                    return;
                }
                _ => {}
            }
        }
        // The items beyond both tuples.
        match (r.rest, w.rest) {
            (Some(rr), Some(wr)) => self.compare(
                reader.with(rr),
                writer.with(wr),
                &format!("{path}/{}", r.rest_key),
            ),
            (Some(rr), None) if !reader.with(rr).accepts_anything() => {
                let kind = if r.prefix.is_empty() {
                    "TYPE_NARROWED"
                } else {
                    "ADDITIONAL_ITEMS_NARROWED"
                };
                self.add(
                    kind,
                    &format!("{path}/{}", r.rest_key),
                    "array items are now restricted: items accepted before may not be".into(),
                );
            }
            _ => {}
        }
    }

    fn compare_object(&mut self, reader: Node<'a>, writer: Node<'a>, path: &str) {
        self.upper_bound(reader, writer, path, "maxProperties", "MAX_PROPERTIES");
        self.lower_bound(reader, writer, path, "minProperties", "MIN_PROPERTIES");
        let reader_props = properties(reader);
        let writer_props = properties(writer);
        let reader_required = required(reader);
        let writer_required = required(writer);

        for (&name, &rp) in &reader_props {
            let here = format!("{path}/properties/{}", escape(name));
            match writer_props.get(name) {
                Some(wp) => {
                    if reader_required.contains(name)
                        && !writer_required.contains(name)
                        && !has_default(reader.with(rp))
                    {
                        self.add(
                            "REQUIRED_ATTRIBUTE_ADDED",
                            &here,
                            format!("property {name} became required: old documents may lack it; give it a default or keep it optional"),
                        );
                    }
                    self.compare(reader.with(rp), writer.with(wp), &here);
                }
                None => self.property_added(reader, writer, name, rp, &here, &reader_required),
            }
        }
        // A required name without a property schema is not checked:
        // Confluent judges required-ness per property, and we keep its
        // verdicts.
        for (&name, &wp) in &writer_props {
            if reader_props.contains_key(name) {
                continue;
            }
            let here = format!("{path}/properties/{}", escape(name));
            match extra_schema(reader, name) {
                Extra::Open => {}
                Extra::Closed => {
                    if !writer.with(wp).accepts_nothing() {
                        self.add(
                            "PROPERTY_REMOVED_FROM_CLOSED_CONTENT_MODEL",
                            &here,
                            format!("property {name} was removed while the new schema allows no other properties: old documents with it are rejected; keep it"),
                        );
                    }
                }
                Extra::Schema(rs) => {
                    if !self.probe(reader.with(rs), writer.with(wp)) {
                        self.add(
                            "PROPERTY_REMOVED_NOT_COVERED_BY_PARTIALLY_OPEN_CONTENT_MODEL",
                            &here,
                            format!("property {name} was removed, and the schema the new one gives other properties does not accept its old values"),
                        );
                    }
                }
            }
        }

        // Properties neither lists: what the writer allowed for them must
        // still be allowed.
        // (unevaluatedProperties plays the part where additionalProperties
        // is absent.)
        let (rkey, radd) = extra_keyword(reader);
        let (_, wadd) = extra_keyword(writer);
        let here = format!("{path}/{rkey}");
        let name = if rkey == "unevaluatedProperties" {
            "UNEVALUATED_PROPERTIES"
        } else {
            "ADDITIONAL_PROPERTIES"
        };
        match (radd, wadd) {
            (Some(Value::Bool(false)), w)
                if w != Some(&Value::Bool(false)) && reader.get("patternProperties").is_none() =>
            {
                self.add(
                    &format!("{name}_REMOVED"),
                    &here,
                    format!(
                        "{rkey} became false: old documents with other properties are rejected"
                    ),
                )
            }
            (Some(r @ Value::Object(_)), Some(w @ Value::Object(_)))
                if !self.probe(reader.with(r), writer.with(w)) =>
            {
                self.add(
                    &format!("{name}_NARROWED"),
                    &here,
                    format!("the schema of {rkey} is narrower than before"),
                );
            }
            (Some(r @ Value::Object(_)), None | Some(Value::Bool(true)))
                if !reader.with(r).accepts_anything() =>
            {
                self.add(
                    &format!("{name}_NARROWED"),
                    &here,
                    format!("other properties, free before, now have a schema ({rkey})"),
                );
            }
            _ => {}
        }

        // dependencies / dependentSchemas with a schema: what an object
        // with the property must also match, so new or narrower ones
        // reject old documents.
        for keyword in ["dependencies", "dependentSchemas"] {
            let Some(rdeps) = reader.get(keyword).and_then(Value::as_object) else {
                continue;
            };
            let wdeps = writer.get(keyword).and_then(Value::as_object);
            for (name, rdep) in rdeps {
                if rdep.is_array() {
                    continue;
                }
                let here = format!("{path}/{keyword}/{}", escape(name));
                match wdeps.and_then(|w| w.get(name)).filter(|w| !w.is_array()) {
                    Some(wdep) => self.compare(reader.with(rdep), writer.with(wdep), &here),
                    None if !reader.with(rdep).accepts_anything() => self.add(
                        "DEPENDENCY_SCHEMA_ADDED",
                        &here,
                        format!("objects with property {name} must now match a schema they did not before"),
                    ),
                    None => {}
                }
            }
        }

        // dependencies / dependentRequired: a new or longer list of
        // properties some property needs.
        for keyword in ["dependencies", "dependentRequired"] {
            let Some(rdeps) = reader.get(keyword).and_then(Value::as_object) else {
                continue;
            };
            let wdeps = writer.get(keyword).and_then(Value::as_object);
            for (name, rdep) in rdeps {
                let Some(rlist) = rdep.as_array() else {
                    continue;
                };
                let wlist = wdeps.and_then(|w| w.get(name)).and_then(Value::as_array);
                let here = format!("{path}/{keyword}/{}", escape(name));
                match wlist {
                    None => self.add(
                        "DEPENDENCY_ARRAY_ADDED",
                        &here,
                        format!("property {name} now requires other properties, which old documents may lack"),
                    ),
                    Some(wlist) => {
                        if rlist.iter().any(|d| !wlist.contains(d)) {
                            self.add(
                                "DEPENDENCY_ARRAY_EXTENDED",
                                &here,
                                format!("property {name} now requires more properties than before"),
                            );
                        }
                    }
                }
            }
        }
    }

    /// A property the new schema lists and the old one did not.
    fn property_added(
        &mut self,
        reader: Node<'a>,
        writer: Node<'a>,
        name: &str,
        rp: &'a Value,
        here: &str,
        reader_required: &BTreeSet<&str>,
    ) {
        let is_required = reader_required.contains(name);
        let with_default = has_default(reader.with(rp));
        match extra_schema(writer, name) {
            Extra::Open => {
                if reader.with(rp).accepts_anything() {
                    return;
                }
                let (kind, why) = match (is_required, with_default) {
                    (true, false) => (
                        "REQUIRED_PROPERTY_ADDED_TO_OPEN_CONTENT_MODEL",
                        "required property {} was added, and old documents may lack it or hold any value in it",
                    ),
                    (true, true) => (
                        "REQUIRED_PROPERTY_WITH_DEFAULT_ADDED_TO_OPEN_CONTENT_MODEL",
                        "property {} was added with a schema, but the old schema allowed any property, so old documents may hold other values in it",
                    ),
                    _ => (
                        "OPTIONAL_PROPERTY_ADDED_TO_OPEN_CONTENT_MODEL",
                        "property {} was added with a schema, but the old schema allowed any property, so old documents may hold other values in it; close the old schema (additionalProperties: false) first",
                    ),
                };
                self.add(kind, here, why.replace("{}", name));
            }
            Extra::Closed => {
                if is_required && !with_default {
                    self.add(
                        "REQUIRED_PROPERTY_ADDED_TO_UNOPEN_CONTENT_MODEL",
                        here,
                        format!("required property {name} was added without a default: old documents lack it"),
                    );
                }
            }
            Extra::Schema(ws) => {
                if !self.probe(reader.with(rp), writer.with(ws)) {
                    self.add(
                        "PROPERTY_ADDED_NOT_COVERED_BY_PARTIALLY_OPEN_CONTENT_MODEL",
                        here,
                        format!("property {name} was added with a schema that does not accept what the old schema allowed for other properties"),
                    );
                }
                if is_required && !with_default {
                    self.add(
                        "REQUIRED_PROPERTY_ADDED_TO_UNOPEN_CONTENT_MODEL",
                        here,
                        format!("required property {name} was added without a default: old documents may lack it"),
                    );
                }
            }
        }
    }

    /// The new schema combines schemas (`allOf`, `anyOf`, `oneOf`).
    fn compare_reader_combined(
        &mut self,
        reader: Node<'a>,
        (rk, rs): (&'static str, &'a [Value]),
        writer: Node<'a>,
        path: &str,
    ) {
        let here = format!("{path}/{rk}");
        let Some((wk, ws)) = combined(writer) else {
            if rk == "allOf" {
                // Every part must accept what was written.
                for (i, branch) in rs.iter().enumerate() {
                    self.compare(reader.with(branch), writer, &format!("{here}/{i}"));
                }
            } else if rs.len() == 1 {
                self.compare(reader.with(&rs[0]), writer, &format!("{here}/0"));
            } else if !rs.iter().any(|b| self.probe(reader.with(b), writer)) {
                self.add(
                    "TYPE_CHANGED",
                    &here,
                    format!("no schema of the new {rk} accepts everything the old schema did"),
                );
            }
            return;
        };
        if rk != wk && rk != "anyOf" {
            self.add(
                "COMBINED_TYPE_CHANGED",
                &here,
                format!("{wk} became {rk}, which accepts other documents"),
            );
            return;
        }
        if rk == "allOf" {
            if rs.len() > ws.len() {
                self.add(
                    "PRODUCT_TYPE_EXTENDED",
                    &here,
                    format!(
                        "allOf grew from {} to {} schemas: old documents need not match the new ones",
                        ws.len(),
                        rs.len()
                    ),
                );
                return;
            }
            // Each new part must accept what some old part required.
            if self.matching(reader, rs, writer, ws) < rs.len() {
                self.add(
                    "COMBINED_TYPE_SUBSCHEMAS_CHANGED",
                    &here,
                    "some schemas of the new allOf accept less than the old ones".into(),
                );
            }
        } else {
            if ws.len() > rs.len() {
                self.add(
                    "SUM_TYPE_NARROWED",
                    &here,
                    format!(
                        "{rk} shrank from {} to {} schemas: documents of the dropped ones are rejected",
                        ws.len(),
                        rs.len()
                    ),
                );
                return;
            }
            // Each old alternative must be read by a new one.
            if self.matching(reader, rs, writer, ws) < ws.len() {
                self.add(
                    "COMBINED_TYPE_SUBSCHEMAS_CHANGED",
                    &here,
                    format!(
                        "some schemas of the old {wk} are accepted by no schema of the new {rk}"
                    ),
                );
            }
        }
    }

    /// Only the old schema combines schemas: what it wrote matches one of
    /// its alternatives (`anyOf`, `oneOf`) or all its parts (`allOf`).
    fn compare_writer_combined(
        &mut self,
        reader: Node<'a>,
        writer: Node<'a>,
        (wk, ws): (&'static str, &'a [Value]),
        path: &str,
    ) {
        let siblings = writer.siblings();
        if !siblings.accepts_anything() && self.probe(reader, siblings) {
            return;
        }
        if wk == "allOf" {
            if !ws.iter().any(|b| self.probe(reader, writer.with(b))) {
                self.add(
                    "TYPE_CHANGED",
                    path,
                    "the new schema does not accept what the old allOf did".into(),
                );
            }
        } else if ws.len() == 1 {
            self.compare(reader, writer.with(&ws[0]), path);
        } else {
            for (i, branch) in ws.iter().enumerate() {
                if !self.probe(reader, writer.with(branch)) {
                    self.add(
                        "TYPE_NARROWED",
                        path,
                        format!("the new schema does not accept schema {i} of the old {wk}"),
                    );
                }
            }
        }
    }

    /// A maximum matching between branches: reader branch i may take
    /// writer branch j when reader i accepts writer j. Sizes are small.
    fn matching(
        &mut self,
        reader: Node<'a>,
        rs: &'a [Value],
        writer: Node<'a>,
        ws: &'a [Value],
    ) -> usize {
        let mut edges = vec![Vec::new(); rs.len()];
        for (i, r) in rs.iter().enumerate() {
            for (j, w) in ws.iter().enumerate() {
                if self.probe(reader.with(r), writer.with(w)) {
                    edges[i].push(j);
                }
            }
        }
        let mut owner: Vec<Option<usize>> = vec![None; ws.len()];
        let mut count = 0;
        for i in 0..rs.len() {
            let mut visited = vec![false; ws.len()];
            if augment(i, &edges, &mut owner, &mut visited) {
                count += 1;
            }
        }
        count
    }

    fn upper_bound(
        &mut self,
        reader: Node<'a>,
        writer: Node<'a>,
        path: &str,
        keyword: &str,
        name: &str,
    ) {
        match (reader.num(keyword), writer.num(keyword)) {
            (Some(r), None) => self.add(
                &format!("{name}_ADDED"),
                &format!("{path}/{keyword}"),
                format!("{keyword} {r} was added: larger values accepted before are not"),
            ),
            (Some(r), Some(w)) if r < w => self.add(
                &format!("{name}_DECREASED"),
                &format!("{path}/{keyword}"),
                format!("{keyword} decreased from {w} to {r}: values in between accepted before are not"),
            ),
            _ => {}
        }
    }

    fn lower_bound(
        &mut self,
        reader: Node<'a>,
        writer: Node<'a>,
        path: &str,
        keyword: &str,
        name: &str,
    ) {
        match (reader.num(keyword), writer.num(keyword)) {
            (Some(r), None) => self.add(
                &format!("{name}_ADDED"),
                &format!("{path}/{keyword}"),
                format!("{keyword} {r} was added: smaller values accepted before are not"),
            ),
            (Some(r), Some(w)) if r > w => self.add(
                &format!("{name}_INCREASED"),
                &format!("{path}/{keyword}"),
                format!("{keyword} increased from {w} to {r}: values in between accepted before are not"),
            ),
            _ => {}
        }
    }
}

fn augment(
    i: usize,
    edges: &[Vec<usize>],
    owner: &mut [Option<usize>],
    visited: &mut [bool],
) -> bool {
    for &j in &edges[i] {
        if visited[j] {
            continue;
        }
        visited[j] = true;
        let free = match owner[j] {
            None => true,
            Some(k) => augment(k, edges, owner, visited),
        };
        if free {
            owner[j] = Some(i);
            return true;
        }
    }
    false
}

fn combined<'a>(node: Node<'a>) -> Option<(&'static str, &'a [Value])> {
    COMBINED.into_iter().find_map(|k| {
        node.get(k)
            .and_then(Value::as_array)
            .map(|a| (k, a.as_slice()))
    })
}

/// The keyword that governs properties an object schema does not list:
/// additionalProperties, else unevaluatedProperties (2019-09 on).
fn extra_keyword<'a>(node: Node<'a>) -> (&'static str, Option<&'a Value>) {
    match node.get("additionalProperties") {
        Some(v) => ("additionalProperties", Some(v)),
        None => match node.get("unevaluatedProperties") {
            Some(v) => ("unevaluatedProperties", Some(v)),
            None => ("additionalProperties", None),
        },
    }
}

/// How an object schema treats a property it does not list.
enum Extra<'a> {
    /// Any value.
    Open,
    /// Rejected.
    Closed,
    /// Checked against this schema.
    Schema(&'a Value),
}

fn extra_schema<'a>(node: Node<'a>, name: &str) -> Extra<'a> {
    if let Some(patterns) = node.get("patternProperties").and_then(Value::as_object) {
        for (pattern, schema) in patterns {
            if simple_match(pattern, name) {
                return Extra::Schema(schema);
            }
        }
    }
    match extra_keyword(node).1 {
        // Names matching no pattern (or patterns we cannot read) are free.
        None | Some(Value::Bool(true)) => Extra::Open,
        Some(Value::Bool(false)) => Extra::Closed,
        Some(schema) => {
            if node.with(schema).accepts_anything() {
                Extra::Open
            } else {
                Extra::Schema(schema)
            }
        }
    }
}

/// A small subset of regular expressions: `^prefix`, `suffix$`, `.*`
/// and literal text (patternProperties rarely need more).
fn simple_match(pattern: &str, name: &str) -> bool {
    let anchored_start = pattern.starts_with('^');
    let anchored_end = pattern.ends_with('$') && !pattern.ends_with("\\$");
    let core = pattern
        .trim_start_matches('^')
        .trim_end_matches('$')
        .replace(".*", "\u{0}");
    if core.chars().any(|c| "[](){}+?|\\.".contains(c)) {
        return false;
    }
    let parts: Vec<&str> = core.split('\u{0}').collect();
    let mut rest = name;
    for (i, part) in parts.iter().enumerate() {
        if i == 0 && anchored_start {
            match rest.strip_prefix(part) {
                Some(r) => rest = r,
                None => return false,
            }
        } else if let Some(at) = rest.find(part) {
            rest = &rest[at + part.len()..];
        } else {
            return false;
        }
    }
    !anchored_end || rest.is_empty() || parts.last().is_some_and(|p| p.is_empty())
}

fn types_of(node: Node<'_>) -> Option<BTreeSet<&'static str>> {
    match node.get("type") {
        Some(Value::String(t)) => Some(TYPES.iter().copied().filter(|x| x == t).collect()),
        Some(Value::Array(ts)) => Some(
            ts.iter()
                .filter_map(Value::as_str)
                .filter_map(|t| TYPES.iter().copied().find(|x| *x == t))
                .collect(),
        ),
        _ => {
            if let Some(values) = enum_values(node) {
                // The types of the values it allows.
                return Some(values.iter().map(|v| value_type(v)).collect());
            }
            let o = node.obj()?;
            let has = |keys: &[&str]| keys.iter().any(|k| o.contains_key(*k));
            let mut inferred = BTreeSet::new();
            if has(&[
                "properties",
                "required",
                "additionalProperties",
                "patternProperties",
                "maxProperties",
                "minProperties",
                "dependencies",
            ]) {
                inferred.insert("object");
            }
            if has(&[
                "items",
                "prefixItems",
                "additionalItems",
                "maxItems",
                "minItems",
                "uniqueItems",
            ]) {
                inferred.insert("array");
            }
            if has(&["maxLength", "minLength", "pattern"]) {
                inferred.insert("string");
            }
            if has(&[
                "maximum",
                "minimum",
                "exclusiveMaximum",
                "exclusiveMinimum",
                "multipleOf",
            ]) {
                inferred.insert("number");
            }
            if inferred.is_empty() {
                None
            } else {
                // Keywords of one type do not constrain values of others,
                // but a schema written this way means its type.
                Some(inferred)
            }
        }
    }
}

fn properties(node: Node<'_>) -> BTreeMap<&str, &Value> {
    node.get("properties")
        .and_then(Value::as_object)
        .map(|o| o.iter().map(|(k, v)| (k.as_str(), v)).collect())
        .unwrap_or_default()
}

fn value_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn enum_values(node: Node<'_>) -> Option<Vec<&Value>> {
    if let Some(values) = node.get("enum").and_then(Value::as_array) {
        return Some(values.iter().collect());
    }
    node.get("const").map(|c| vec![c])
}

fn required(node: Node<'_>) -> BTreeSet<&str> {
    node.get("required")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default()
}

fn has_default(node: Node<'_>) -> bool {
    node.get("default").is_some()
}

fn list(types: &BTreeSet<&str>) -> String {
    let v: Vec<&str> = types.iter().copied().collect();
    v.join("|")
}

/// A property name as a JSON pointer token.
fn escape(name: &str) -> String {
    name.replace('~', "~0").replace('/', "~1")
}

/// The item schemas of an array schema, old (`items: [...]`,
/// `additionalItems`) or 2020-12 (`prefixItems`, `items`) style.
struct Items<'a> {
    prefix: &'a [Value],
    prefix_key: Option<&'static str>,
    rest: Option<&'a Value>,
    rest_key: &'static str,
}

impl<'a> Items<'a> {
    fn of(node: Node<'a>) -> Items<'a> {
        if let Some(prefix) = node.get("prefixItems").and_then(Value::as_array) {
            return Items {
                prefix,
                prefix_key: Some("prefixItems"),
                rest: node.get("items").or_else(|| node.get("unevaluatedItems")),
                rest_key: if node.get("items").is_none() && node.get("unevaluatedItems").is_some() {
                    "unevaluatedItems"
                } else {
                    "items"
                },
            };
        }
        match node.get("items") {
            Some(Value::Array(prefix)) => Items {
                prefix,
                prefix_key: Some("items"),
                rest: node.get("additionalItems"),
                rest_key: "additionalItems",
            },
            other => Items {
                prefix: &[],
                prefix_key: None,
                rest: other,
                rest_key: "items",
            },
        }
    }

    /// The schema of item `i`: `None` when no item may be there.
    fn at(&self, i: usize) -> Option<&'a Value> {
        match self.prefix.get(i) {
            Some(v) => Some(v),
            None => match self.rest {
                Some(Value::Bool(false)) => None,
                Some(v) => Some(v),
                None => Some(&Value::Bool(true)),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use crate::{check_backward, Incompatibility, ParsedSchema, Resolved, SchemaType};

    fn schema(v: &serde_json::Value) -> ParsedSchema {
        ParsedSchema::parse(SchemaType::Json, &v.to_string(), &[]).unwrap()
    }

    fn check(new: serde_json::Value, old: serde_json::Value) -> Vec<Incompatibility> {
        check_backward(&schema(&new), &schema(&old))
    }

    fn kinds(found: &[Incompatibility]) -> Vec<String> {
        found
            .iter()
            .map(|i| format!("{} {}", i.kind, i.path))
            .collect()
    }

    #[track_caller]
    fn compatible(new: serde_json::Value, old: serde_json::Value) {
        let found = check(new.clone(), old.clone());
        assert!(
            found.is_empty(),
            "expected compatible: {found:?}\nnew: {new}\nold: {old}"
        );
    }

    #[track_caller]
    fn incompatible(new: serde_json::Value, old: serde_json::Value, expected: &[&str]) {
        let found = check(new.clone(), old.clone());
        assert_eq!(kinds(&found), expected, "new: {new}\nold: {old}");
        assert!(found.iter().all(|i| !i.message.is_empty()));
    }

    fn obj(props: serde_json::Value) -> serde_json::Value {
        json!({"type": "object", "properties": props})
    }

    fn closed(props: serde_json::Value) -> serde_json::Value {
        json!({"type": "object", "properties": props, "additionalProperties": false})
    }

    #[test]
    fn types_may_widen_but_not_narrow() {
        compatible(json!({"type": "number"}), json!({"type": "integer"}));
        compatible(
            json!({"type": ["string", "null"]}),
            json!({"type": "string"}),
        );
        incompatible(
            json!({"type": "integer"}),
            json!({"type": "number"}),
            &["TYPE_NARROWED #"],
        );
        incompatible(
            json!({"type": "string"}),
            json!({"type": ["string", "null"]}),
            &["TYPE_NARROWED #"],
        );
        incompatible(
            json!({"type": "string"}),
            json!({"type": "boolean"}),
            &["TYPE_CHANGED #"],
        );
        // An empty schema reads anything; a typed one cannot read "anything".
        compatible(json!({}), json!({"type": "string"}));
        incompatible(json!({"type": "string"}), json!({}), &["TYPE_NARROWED #"]);
    }

    #[test]
    fn bounds_may_loosen_but_not_tighten() {
        let old = json!({"type": "string", "maxLength": 10, "minLength": 2});
        compatible(
            json!({"type": "string", "maxLength": 20, "minLength": 1}),
            old.clone(),
        );
        compatible(json!({"type": "string"}), old.clone());
        incompatible(
            json!({"type": "string", "maxLength": 5, "minLength": 3}),
            old,
            &[
                "MAX_LENGTH_DECREASED #/maxLength",
                "MIN_LENGTH_INCREASED #/minLength",
            ],
        );
        incompatible(
            json!({"type": "integer", "maximum": 5, "minimum": 0}),
            json!({"type": "integer"}),
            &["MAXIMUM_ADDED #/maximum", "MINIMUM_ADDED #/minimum"],
        );
        compatible(
            json!({"type": "number", "exclusiveMaximum": 10}),
            json!({"type": "number", "exclusiveMaximum": 5}),
        );
        incompatible(
            json!({"type": "number", "exclusiveMinimum": 3}),
            json!({"type": "number", "exclusiveMinimum": 1}),
            &["EXCLUSIVE_MINIMUM_INCREASED #/exclusiveMinimum"],
        );
        incompatible(
            json!({"type": "array", "items": {"type": "string"}, "maxItems": 3}),
            json!({"type": "array", "items": {"type": "string"}, "maxItems": 4}),
            &["MAX_ITEMS_DECREASED #/maxItems"],
        );
        incompatible(
            json!({"type": "object", "maxProperties": 3}),
            json!({"type": "object"}),
            &["MAX_PROPERTIES_ADDED #/maxProperties"],
        );
    }

    #[test]
    fn patterns_may_go_but_not_come_or_change() {
        compatible(
            json!({"type": "string"}),
            json!({"type": "string", "pattern": "^a"}),
        );
        incompatible(
            json!({"type": "string", "pattern": "^a"}),
            json!({"type": "string"}),
            &["PATTERN_ADDED #/pattern"],
        );
        incompatible(
            json!({"type": "string", "pattern": "^b"}),
            json!({"type": "string", "pattern": "^a"}),
            &["PATTERN_CHANGED #/pattern"],
        );
    }

    #[test]
    fn multiples_may_only_get_finer() {
        compatible(
            json!({"type": "number", "multipleOf": 2}),
            json!({"type": "number", "multipleOf": 4}),
        );
        incompatible(
            json!({"type": "number", "multipleOf": 4}),
            json!({"type": "number", "multipleOf": 2}),
            &["MULTIPLE_OF_EXPANDED #/multipleOf"],
        );
        incompatible(
            json!({"type": "number", "multipleOf": 3}),
            json!({"type": "number"}),
            &["MULTIPLE_OF_ADDED #/multipleOf"],
        );
    }

    #[test]
    fn enums_may_grow_but_not_shrink() {
        compatible(
            json!({"enum": ["a", "b", "c"]}),
            json!({"enum": ["a", "b"]}),
        );
        incompatible(
            json!({"enum": ["a"]}),
            json!({"enum": ["a", "b"]}),
            &["ENUM_ARRAY_NARROWED #/enum"],
        );
        incompatible(
            json!({"type": "string", "enum": ["a"]}),
            json!({"type": "string"}),
            &["ENUM_ARRAY_NARROWED #/enum"],
        );
        compatible(json!({"enum": ["a", "b"]}), json!({"const": "a"}));
        // An enum of strings was only ever strings.
        compatible(json!({"type": "string"}), json!({"enum": ["a", "b"]}));
        compatible(json!({"type": "number"}), json!({"enum": [1, 2.5]}));
        incompatible(
            json!({"type": "string"}),
            json!({"enum": ["a", 1]}),
            &["TYPE_NARROWED #"],
        );
    }

    #[test]
    fn open_content_models_accept_removals_not_additions() {
        let old = obj(json!({"a": {"type": "string"}, "b": {"type": "integer"}}));
        compatible(obj(json!({"a": {"type": "string"}})), old.clone());
        incompatible(
            obj(
                json!({"a": {"type": "string"}, "b": {"type": "integer"}, "c": {"type": "string"}}),
            ),
            old.clone(),
            &["OPTIONAL_PROPERTY_ADDED_TO_OPEN_CONTENT_MODEL #/properties/c"],
        );
        // A property that accepts anything restricts nothing.
        compatible(
            obj(json!({"a": {"type": "string"}, "b": {"type": "integer"}, "c": {}})),
            old,
        );
    }

    #[test]
    fn closed_content_models_accept_additions_not_removals() {
        let old = closed(json!({"a": {"type": "string"}, "b": {"type": "integer"}}));
        compatible(
            closed(
                json!({"a": {"type": "string"}, "b": {"type": "integer"}, "c": {"type": "string"}}),
            ),
            old.clone(),
        );
        incompatible(
            closed(json!({"a": {"type": "string"}})),
            old.clone(),
            &["PROPERTY_REMOVED_FROM_CLOSED_CONTENT_MODEL #/properties/b"],
        );
        let mut required = closed(
            json!({"a": {"type": "string"}, "b": {"type": "integer"}, "c": {"type": "string"}}),
        );
        required["required"] = json!(["c"]);
        incompatible(
            required.clone(),
            old.clone(),
            &["REQUIRED_PROPERTY_ADDED_TO_UNOPEN_CONTENT_MODEL #/properties/c"],
        );
        required["properties"]["c"]["default"] = json!("x");
        compatible(required, old);
    }

    #[test]
    fn closing_an_open_model_is_not_backward_compatible() {
        let props = json!({"a": {"type": "string"}});
        incompatible(
            closed(props.clone()),
            obj(props.clone()),
            &["ADDITIONAL_PROPERTIES_REMOVED #/additionalProperties"],
        );
        compatible(obj(props.clone()), closed(props));
    }

    #[test]
    fn partially_open_models_check_against_their_schema() {
        let old = json!({"type": "object", "properties": {"a": {"type": "string"}},
                         "additionalProperties": {"type": "string"}});
        compatible(
            json!({"type": "object", "properties": {"a": {"type": "string"}, "b": {"type": "string"}},
                   "additionalProperties": {"type": "string"}}),
            old.clone(),
        );
        incompatible(
            json!({"type": "object", "properties": {"a": {"type": "string"}, "b": {"type": "integer"}},
                   "additionalProperties": {"type": "string"}}),
            old.clone(),
            &["PROPERTY_ADDED_NOT_COVERED_BY_PARTIALLY_OPEN_CONTENT_MODEL #/properties/b"],
        );
        incompatible(
            json!({"type": "object", "properties": {},
                   "additionalProperties": {"type": "integer"}}),
            old,
            &[
                "PROPERTY_REMOVED_NOT_COVERED_BY_PARTIALLY_OPEN_CONTENT_MODEL #/properties/a",
                "ADDITIONAL_PROPERTIES_NARROWED #/additionalProperties",
            ],
        );
    }

    #[test]
    fn required_may_be_dropped_but_not_added_without_default() {
        let mut old = obj(json!({"a": {"type": "string"}}));
        old["required"] = json!(["a"]);
        compatible(obj(json!({"a": {"type": "string"}})), old.clone());
        let mut new = obj(json!({"a": {"type": "string"}}));
        new["required"] = json!(["a"]);
        incompatible(
            new,
            obj(json!({"a": {"type": "string"}})),
            &["REQUIRED_ATTRIBUTE_ADDED #/properties/a"],
        );
        let mut new = obj(json!({"a": {"type": "string", "default": ""}}));
        new["required"] = json!(["a"]);
        compatible(new, obj(json!({"a": {"type": "string"}})));
    }

    #[test]
    fn required_names_without_a_schema_are_not_judged_as_confluent_does() {
        compatible(
            json!({"properties": {"foo": {"type": "string"}}, "required": ["bar"]}),
            json!({"properties": {"foo": {"type": "string"}}, "required": ["foo"]}),
        );
    }

    #[test]
    fn unevaluated_keywords_close_content_like_additional_ones() {
        let d = "https://json-schema.org/draft/2020-12/schema";
        let old = json!({"$schema": d, "type": "object", "properties": {"a": {"type": "string"}},
                         "unevaluatedProperties": false});
        compatible(
            json!({"$schema": d, "type": "object", "properties": {"a": {"type": "string"}, "b": {"type": "string"}},
                   "unevaluatedProperties": false}),
            old.clone(),
        );
        incompatible(
            json!({"$schema": d, "type": "object", "properties": {}, "unevaluatedProperties": false}),
            old,
            &["PROPERTY_REMOVED_FROM_CLOSED_CONTENT_MODEL #/properties/a"],
        );
        incompatible(
            json!({"$schema": d, "type": "array", "prefixItems": [{"type": "string"}], "unevaluatedItems": {"type": "string"}}),
            json!({"$schema": d, "type": "array", "prefixItems": [{"type": "string"}, {"type": "integer"}], "unevaluatedItems": false}),
            &[
                "TYPE_CHANGED #/unevaluatedItems",
                "ITEM_REMOVED_NOT_COVERED_BY_PARTIALLY_OPEN_CONTENT_MODEL #/unevaluatedItems",
            ],
        );
    }

    #[test]
    fn singleton_combinations_are_their_schema() {
        compatible(
            json!({"allOf": [{"type": "string"}]}),
            json!({"oneOf": [{"type": "string"}]}),
        );
        incompatible(
            json!({"anyOf": [{"type": "integer"}]}),
            json!({"type": "string"}),
            &["TYPE_CHANGED #"],
        );
    }

    #[test]
    fn dependency_schemas_may_go_but_not_come_or_narrow() {
        let old = json!({"dependencies": {"foo": {"type": "string"}}});
        compatible(json!({"type": "object"}), old.clone());
        incompatible(
            json!({"dependencies": {"foo": {"type": "number"}}}),
            old.clone(),
            &["TYPE_CHANGED #/dependencies/foo"],
        );
        incompatible(
            json!({"dependencies": {"foo": {"type": "string"}, "bar": {"type": "string"}}}),
            old,
            &["DEPENDENCY_SCHEMA_ADDED #/dependencies/bar"],
        );
    }

    #[test]
    fn nested_changes_are_reported_where_they_are() {
        incompatible(
            obj(json!({"a": obj(json!({"b": {"type": "string"}}))})),
            obj(json!({"a": obj(json!({"b": {"type": "integer"}}))})),
            &["TYPE_CHANGED #/properties/a/properties/b"],
        );
        incompatible(
            json!({"type": "array", "items": {"type": "string"}}),
            json!({"type": "array", "items": {"type": "integer"}}),
            &["TYPE_CHANGED #/items"],
        );
        compatible(
            json!({"type": "array", "items": {"type": "number"}}),
            json!({"type": "array", "items": {"type": "integer"}}),
        );
    }

    #[test]
    fn tuples_compare_position_by_position() {
        let d7 = "http://json-schema.org/draft-07/schema#";
        let old = json!({"$schema": d7, "type": "array", "items": [{"type": "string"}, {"type": "integer"}]});
        compatible(
            json!({"$schema": d7, "type": "array", "items": [{"type": "string"}, {"type": "number"}]}),
            old.clone(),
        );
        incompatible(
            json!({"$schema": d7, "type": "array", "items": [{"type": "string"}, {"type": "string"}]}),
            old.clone(),
            &["TYPE_CHANGED #/items/1"],
        );
        incompatible(
            json!({"$schema": d7, "type": "array", "items": [{"type": "string"}], "additionalItems": false}),
            old,
            &["ITEM_REMOVED_FROM_CLOSED_CONTENT_MODEL #/additionalItems"],
        );
        // 2020-12 spells tuples with prefixItems.
        incompatible(
            json!({"type": "array", "prefixItems": [{"type": "string"}, {"type": "boolean"}]}),
            json!({"type": "array", "prefixItems": [{"type": "string"}, {"type": "integer"}]}),
            &["TYPE_CHANGED #/prefixItems/1"],
        );
    }

    #[test]
    fn combined_schemas_match_branch_to_branch() {
        let old = json!({"anyOf": [{"type": "string"}, {"type": "integer"}]});
        compatible(
            json!({"anyOf": [{"type": "integer"}, {"type": "string"}, {"type": "null"}]}),
            old.clone(),
        );
        incompatible(
            json!({"anyOf": [{"type": "string"}]}),
            old.clone(),
            &["SUM_TYPE_NARROWED #/anyOf"],
        );
        incompatible(
            json!({"anyOf": [{"type": "string"}, {"type": "boolean"}]}),
            old.clone(),
            &["COMBINED_TYPE_SUBSCHEMAS_CHANGED #/anyOf"],
        );
        incompatible(
            json!({"allOf": [{"type": "string"}, {"type": "integer"}]}),
            old.clone(),
            &["COMBINED_TYPE_CHANGED #/allOf"],
        );
        // A plain type becoming one alternative of several.
        compatible(old.clone(), json!({"type": "string"}));
        // Alternatives collapsing into one type that reads both.
        compatible(json!({"type": ["string", "integer"]}), old.clone());
        incompatible(json!({"type": "string"}), old, &["TYPE_NARROWED #"]);
        // allOf may lose parts but not gain them.
        let parts = json!({"allOf": [{"type": "object"}, {"required": ["a"]}]});
        compatible(json!({"allOf": [{"type": "object"}]}), parts.clone());
        incompatible(
            json!({"allOf": [{"type": "object"}, {"required": ["a"]}, {"required": ["b"]}]}),
            parts,
            &["PRODUCT_TYPE_EXTENDED #/allOf"],
        );
    }

    #[test]
    fn refs_are_followed_locally_and_into_references() {
        let local = |t: &str| {
            json!({"type": "object", "properties": {"a": {"$ref": "#/definitions/A"}},
                   "definitions": {"A": {"type": t}}})
        };
        compatible(local("number"), local("integer"));
        incompatible(
            local("string"),
            local("integer"),
            &["TYPE_CHANGED #/properties/a"],
        );

        let with_ref = |target: &str| {
            let r = Resolved {
                name: "a.json".into(),
                schema_type: SchemaType::Json,
                schema: json!({"type": target}).to_string(),
                references: vec![],
            };
            ParsedSchema::parse(
                SchemaType::Json,
                &obj(json!({"a": {"$ref": "a.json"}})).to_string(),
                &[r],
            )
            .unwrap()
        };
        assert!(check_backward(&with_ref("number"), &with_ref("integer")).is_empty());
        assert_eq!(
            kinds(&check_backward(&with_ref("integer"), &with_ref("number"))),
            ["TYPE_NARROWED #/properties/a"]
        );
    }

    #[test]
    fn recursive_schemas_terminate() {
        let tree = |t: &str| {
            json!({"type": "object", "properties": {
                "value": {"type": t},
                "children": {"type": "array", "items": {"$ref": "#"}}}})
        };
        compatible(tree("string"), tree("string"));
        incompatible(
            tree("integer"),
            tree("string"),
            &["TYPE_CHANGED #/properties/value"],
        );
    }

    #[test]
    fn every_problem_is_reported() {
        let found = check(
            closed(json!({"a": {"type": "integer"}, "b": {"type": "string", "maxLength": 3}})),
            closed(json!({"a": {"type": "string"}, "b": {"type": "string"}, "c": {}})),
        );
        assert_eq!(
            kinds(&found),
            [
                "TYPE_CHANGED #/properties/a",
                "MAX_LENGTH_ADDED #/properties/b/maxLength",
                "PROPERTY_REMOVED_FROM_CLOSED_CONTENT_MODEL #/properties/c"
            ]
        );
    }
}
