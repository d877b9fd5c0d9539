//! Statements that change the catalog: CREATE STREAM/TABLE (sources),
//! CREATE … AS SELECT (a source written by a persistent query), DROP;
//! and the session's SET/UNSET/DEFINE/UNDEFINE.

use runnel_streams::OffsetReset;

use super::persistent::QueryStart;
use super::props::{
    check_format_props, check_props, check_wrap, delimiter_prop, format_prop, prop_int,
    prop_string, protobuf_nullable, statement_settings, value_full_name, window_prop, wrap_single,
    DEFAULT_KEY_FORMAT, DEFAULT_VALUE_FORMAT, OUTPUT_TOPIC_PREFIX,
};
use super::result::Outcome;
use super::{backend_err, lock, Cmd, Engine, State};
use crate::ast::{ColumnDef, Ident, Props, Query, SelectItem, SourceKind};
use crate::catalog::{HeaderColumn, SourceInfo};
use crate::error::SqlError;
use crate::format::{CodecSpec, Format};
use crate::plan::{Planner, Sink};
use crate::schema::{Column, Schema, RESERVED};
use crate::types::SqlType;

/// A `CREATE [SOURCE] STREAM|TABLE` statement's parts.
pub(super) struct CreateSource<'a> {
    pub kind: &'a SourceKind,
    pub or_replace: &'a bool,
    pub if_not_exists: &'a bool,
    /// `CREATE SOURCE …`: read-only, and a table is materialized.
    pub source: &'a bool,
    pub name: &'a Ident,
    pub columns: &'a [ColumnDef],
    pub with: &'a Props,
}

/// A `CREATE STREAM|TABLE … AS SELECT` statement's parts.
pub(super) struct CreateAs<'a> {
    pub kind: &'a SourceKind,
    pub or_replace: &'a bool,
    pub if_not_exists: &'a bool,
    pub name: &'a Ident,
    pub with: &'a Props,
    pub query: &'a Query,
}

impl Engine {
    /// CREATE [SOURCE] STREAM|TABLE: a source over an existing (or new)
    /// topic; a source table is materialized for pull queries.
    pub(super) fn create_source(
        &self,
        s: &CreateSource<'_>,
        cmd: &Cmd<'_>,
    ) -> Result<Outcome, SqlError> {
        let CreateSource {
            kind,
            or_replace,
            if_not_exists,
            source,
            name,
            columns,
            with,
        } = *s;
        let Cmd {
            text,
            props,
            record,
        } = *cmd;
        let mut st = lock(&self.inner.state);
        if let Some(existing) = st.catalog.source(&name.name) {
            if *if_not_exists {
                return Ok(Outcome::exists(*kind, name, st.seq));
            }
            if !or_replace || existing.kind != *kind {
                return Err(exists_error(*kind, name, existing.kind));
            }
            if *source || existing.read_only {
                return Err(replace_source_error(*kind, name));
            }
        } else if *or_replace && *source {
            return Err(replace_source_error(*kind, name));
        }
        check_props(with)?;
        // Planned and recorded with the session's settings: a replay has
        // no session.
        let settings = statement_settings(&st.props, props);
        let info = self.define_source(
            &mut st, *kind, name, columns, with, text, *source, &settings,
        )?;
        let msg = format!(
            "{} created",
            if *kind == SourceKind::Stream {
                "Stream"
            } else {
                "Table"
            }
        );
        let seq = st.seq;
        st.catalog.sources.insert(info.name.clone(), info.clone());
        if *source && *kind == SourceKind::Table {
            // Source tables are materialized for pull queries.
            let qid = format!("CST_{}_{}", info.name, seq);
            let q = select_star(&info.name);
            // A source table's materialization reads the whole topic.
            let start = QueryStart {
                qid: &qid,
                text,
                reset: OffsetReset::Earliest,
                ..QueryStart::asked(&qid, text, &st.props, props)
            };
            self.start_query(&mut st, &start, &q, &info.name, None)?;
        }
        drop(st);
        self.record(record, text, &settings)?;
        Ok(Outcome::command(&msg, None, seq))
    }

    /// CREATE STREAM|TABLE … AS SELECT: the sink source and the
    /// persistent query writing it.
    pub(super) fn create_as_select(
        &self,
        s: &CreateAs<'_>,
        cmd: &Cmd<'_>,
    ) -> Result<Outcome, SqlError> {
        let CreateAs {
            kind,
            or_replace,
            if_not_exists,
            name,
            with,
            query,
        } = *s;
        let Cmd {
            text,
            props,
            record,
        } = *cmd;
        let mut st = lock(&self.inner.state);
        if let Some(existing) = st.catalog.source(&name.name) {
            if *if_not_exists {
                return Ok(Outcome::exists(*kind, name, st.seq));
            }
            if !or_replace {
                return Err(exists_error(*kind, name, existing.kind));
            }
            // OR REPLACE: the replacement is planned, and its schema checked
            // against ksqlDB's upgrade rule, before the old writer stops, so
            // a statement that cannot run leaves the old query running.
            let mut without = st.catalog.clone();
            without.sources.remove(&name.name);
            let planned = Planner::new(&without, &self.inner.functions, "REPLACE").plan(
                query,
                &name.name,
                Sink::Callback(std::sync::Arc::new(|_| {})),
            )?;
            check_upgrade(existing, &planned.schema).map_err(|m| SqlError::at(name.pos, m))?;
            if let Some(w) = existing.writer.clone() {
                self.stop_query(&mut st, &w);
            }
            st.catalog.sources.remove(&name.name);
        }
        check_props(with)?;
        let seq = st.seq;
        let prefix = if *kind == SourceKind::Stream {
            "CSAS"
        } else {
            "CTAS"
        };
        let qid = format!("{prefix}_{}_{}", name.name, seq);
        let start = QueryStart::asked(&qid, text, &st.props, props);
        self.create_as(&mut st, *kind, name, with, query, &start)?;
        drop(st);
        // Recorded with the session's settings: a replay has no session.
        self.record(record, text, &start.settings)?;
        Ok(Outcome::created(&qid, seq))
    }

    /// DROP STREAM|TABLE [IF EXISTS] [DELETE TOPIC]: refused while other
    /// queries read the source; stops the queries writing or serving it.
    /// CREATE TYPE: a name for a type, for column definitions and casts
    /// of later statements.
    pub(super) fn create_type(
        &self,
        name: &Ident,
        ty: &crate::types::SqlType,
        if_not_exists: bool,
        cmd: &Cmd<'_>,
    ) -> Result<Outcome, SqlError> {
        let mut st = lock(&self.inner.state);
        if let Some(existing) = st.types.get(&name.name) {
            if if_not_exists {
                return Ok(Outcome::command(
                    &format!("Type {} already exists.", name.name),
                    None,
                    st.seq,
                ));
            }
            return Err(SqlError::at(
                name.pos,
                format!(
                    "Cannot register custom type '{}' since it is already registered with type: {existing}",
                    name.name
                ),
            ));
        }
        st.types.insert(name.name.clone(), ty.clone());
        let seq = st.seq;
        drop(st);
        self.record(cmd.record, cmd.text, cmd.props)?;
        Ok(Outcome::command(
            &format!(
                "Registered custom type with name '{}' and SQL type {ty}",
                name.name
            ),
            None,
            seq,
        ))
    }

    /// DROP TYPE: statements after it no longer know the name (sources
    /// declared with it keep their columns).
    pub(super) fn drop_type(
        &self,
        name: &Ident,
        if_exists: bool,
        cmd: &Cmd<'_>,
    ) -> Result<Outcome, SqlError> {
        let mut st = lock(&self.inner.state);
        if st.types.remove(&name.name).is_none() {
            if if_exists {
                return Ok(Outcome::command(
                    &format!("Type {} does not exist.", name.name),
                    None,
                    st.seq,
                ));
            }
            return Err(SqlError::not_found(
                Some(name.pos),
                format!("Type {} does not exist.", name.name),
            ));
        }
        let seq = st.seq;
        drop(st);
        self.record(cmd.record, cmd.text, cmd.props)?;
        Ok(Outcome::command(
            &format!("Dropped type '{}'", name.name),
            None,
            seq,
        ))
    }

    /// ALTER STREAM|TABLE … ADD COLUMN: value columns appended to a source
    /// declared with CREATE (not a source one, not a query's sink); queries
    /// started afterwards read them.
    pub(super) fn alter_source(
        &self,
        kind: SourceKind,
        name: &Ident,
        columns: &[ColumnDef],
        cmd: &Cmd<'_>,
    ) -> Result<Outcome, SqlError> {
        let mut st = lock(&self.inner.state);
        let Some(info) = st.catalog.source(&name.name).cloned() else {
            return Err(self.not_found_as(
                &st,
                name,
                format!("Source {} does not exist.", name.name),
            ));
        };
        let kind_word = |k: SourceKind| match k {
            SourceKind::Stream => "stream",
            SourceKind::Table => "table",
        };
        if info.read_only {
            return Err(SqlError::at(
                name.pos,
                format!(
                    "Cannot alter {} '{}': ALTER operations are not supported on source {}s.",
                    kind_word(info.kind),
                    info.name,
                    kind_word(info.kind)
                ),
            ));
        }
        if info.kind != kind {
            return Err(SqlError::at(
                name.pos,
                format!(
                    "Incompatible data source type is {}, but statement was ALTER {kind}",
                    info.kind
                ),
            ));
        }
        if info.writer.is_some() {
            return Err(SqlError::at(
                name.pos,
                "ALTER command is not supported for CREATE ... AS statements.",
            ));
        }
        let mut altered = info.clone();
        for c in columns {
            let taken = altered.schema.columns().any(|x| x.name == c.name.name)
                || RESERVED.contains(&c.name.name.as_str());
            if taken {
                return Err(SqlError::at(
                    c.name.pos,
                    format!(
                        "Cannot add column {} to schema. A column with the same name already exists.",
                        c.name.name
                    ),
                ));
            }
            altered
                .schema
                .value
                .push(Column::new(&c.name.name, c.ty.clone()));
        }
        altered
            .value_format
            .get()
            .check(&altered.schema.value, "value")
            .map_err(|e| SqlError::at(name.pos, e))?;
        let shown = match info.kind {
            SourceKind::Stream => "Stream",
            SourceKind::Table => "Table",
        };
        let message = format!("{shown} {} altered.", info.name);
        st.catalog.sources.insert(info.name.clone(), altered);
        let seq = st.seq;
        drop(st);
        self.record(cmd.record, cmd.text, cmd.props)?;
        Ok(Outcome::command(&message, None, seq))
    }

    pub(super) fn drop_source(
        &self,
        kind: &SourceKind,
        if_exists: &bool,
        name: &Ident,
        delete_topic: &bool,
        cmd: &Cmd<'_>,
    ) -> Result<Outcome, SqlError> {
        let Cmd {
            text,
            props,
            record,
        } = *cmd;
        let mut st = lock(&self.inner.state);
        let Some(info) = st.catalog.source(&name.name).cloned() else {
            if *if_exists {
                return Ok(Outcome::command(
                    &format!("Source `{}` does not exist.", name.name),
                    None,
                    st.seq,
                ));
            }
            let kind_name = match kind {
                SourceKind::Stream => "Stream",
                SourceKind::Table => "Table",
            };
            return Err(self.not_found_as(
                &st,
                name,
                format!("{kind_name} {} does not exist.", name.name),
            ));
        };
        if info.kind != *kind {
            return Err(SqlError::at(
                name.pos,
                format!(
                    "Incompatible data source type is {}, but statement was DROP {kind}",
                    info.kind
                ),
            ));
        }
        if info.read_only && *delete_topic {
            return Err(SqlError::at(
                name.pos,
                format!("Cannot delete topic for read-only source: {}", info.name),
            ));
        }
        let readers: Vec<String> = st
            .catalog
            .readers_of(&info.name)
            .into_iter()
            .filter(|q| !q.id.starts_with("CST_"))
            .map(|q| q.id.clone())
            .collect();
        if !readers.is_empty() {
            return Err(SqlError::new(format!(
                "Cannot drop {}.\nThe following queries read from this source: [{}].\nYou need to terminate them before dropping {}.",
                info.name,
                readers.join(", "),
                info.name
            )));
        }
        let writers: Vec<String> = st
            .catalog
            .writers_of(&info.name)
            .into_iter()
            .map(|q| q.id.clone())
            .collect();
        for w in writers {
            self.drop_query(&mut st, &w);
        }
        let serving: Vec<String> = st
            .running
            .keys()
            .filter(|k| k.starts_with("CST_") && st.running[*k].info.sink == info.name)
            .cloned()
            .collect();
        for q in serving {
            self.drop_query(&mut st, &q);
        }
        st.catalog.sources.remove(&info.name);
        let seq = st.seq;
        drop(st);
        // Only when run fresh: replayed or run for another engine,
        // the topic is already gone, or is a newer one with data.
        if *delete_topic && record {
            self.inner
                .cluster
                .delete_topic(&info.topic)
                .map_err(backend_err)?;
        }
        self.record(record, text, props)?;
        Ok(Outcome::command(
            &format!(
                "Source `{}` (topic: {}) was dropped.",
                info.name, info.topic
            ),
            None,
            seq,
        ))
    }

    /// SET a session property.
    pub(super) fn set(&self, name: &str, value: &str) -> Result<Outcome, SqlError> {
        lock(&self.inner.state)
            .props
            .insert(name.to_string(), value.to_string());
        Ok(Outcome::done(format!("Successfully set {name} to {value}")))
    }

    /// UNSET a session property.
    pub(super) fn unset(&self, name: &str) -> Result<Outcome, SqlError> {
        lock(&self.inner.state).props.remove(name);
        Ok(Outcome::done(format!("Successfully unset {name}")))
    }

    /// DEFINE a variable.
    pub(super) fn define(&self, name: &Ident, value: &str) -> Result<Outcome, SqlError> {
        lock(&self.inner.state)
            .variables
            .insert(name.name.clone(), value.to_string());
        Ok(Outcome::done(format!("Defined variable {}", name.name)))
    }

    /// UNDEFINE a variable.
    pub(super) fn undefine(&self, name: &Ident) -> Result<Outcome, SqlError> {
        lock(&self.inner.state).variables.remove(&name.name);
        Ok(Outcome::done(format!("Undefined variable {}", name.name)))
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) fn define_source(
        &self,
        st: &mut State,
        kind: SourceKind,
        name: &Ident,
        columns: &[crate::ast::ColumnDef],
        with: &Props,
        text: &str,
        read_only: bool,
        config: &std::collections::BTreeMap<String, String>,
    ) -> Result<SourceInfo, SqlError> {
        let Some(topic) = prop_string(with, "KAFKA_TOPIC") else {
            return Err(SqlError::at(
                name.pos,
                "Missing required property \"KAFKA_TOPIC\" which has no default value.",
            ));
        };
        check_format_props(with)?;
        let formats = &self.inner.formats;
        // Missing formats come from ksql.persistence.default.format.key /
        // .value.
        let default_format = |name: &str| -> Result<Option<Format>, SqlError> {
            match config.get(name) {
                None => Ok(None),
                Some(f) => formats
                    .get(f.trim())
                    .map(Some)
                    .map_err(|e| SqlError::new(format!("{name}: {e}"))),
            }
        };
        let key_format = match format_prop(formats, with, "KEY_FORMAT", &topic)? {
            Some(f) => f,
            None => default_format(DEFAULT_KEY_FORMAT)?.unwrap_or(Format::KAFKA),
        };
        let value_format = match format_prop(formats, with, "VALUE_FORMAT", &topic)? {
            Some(f) => Some(f),
            None => default_format(DEFAULT_VALUE_FORMAT)?,
        };
        let Some(value_format) = value_format else {
            return Err(SqlError::at(
                name.pos,
                "Statement is missing the 'VALUE_FORMAT' property from the WITH clause. Either provide one or set a default via the 'ksql.persistence.default.format.value' config.",
            ));
        };
        value_full_name(with, value_format)?;
        let key_delimiter = delimiter_prop(with, "KEY", key_format)?.unwrap_or(',');
        let value_delimiter = delimiter_prop(with, "VALUE", value_format)?.unwrap_or(',');
        if columns.is_empty() && !value_format.get().needs_schema_registry() {
            if prop_int(with, "VALUE_SCHEMA_ID")?.is_some() {
                return Err(SqlError::at(
                    name.pos,
                    format!("VALUE_FORMAT should support schema inference when VALUE_SCHEMA_ID is provided. Current format is {value_format}."),
                ));
            }
            return Err(SqlError::at(name.pos, "No columns supplied."));
        }
        let mut wrap_single_value = wrap_single(with, value_format, config);
        let mut schema = Schema::default();
        let mut headers = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for c in columns {
            if RESERVED.contains(&c.name.name.as_str()) {
                return Err(SqlError::at(
                    c.name.pos,
                    format!(
                        "'{}' is a reserved column name. You cannot use it as a name for a column.",
                        c.name.name
                    ),
                ));
            }
            if !seen.insert(c.name.name.clone()) {
                return Err(SqlError::at(
                    c.name.pos,
                    format!("duplicate column name {}", c.name.name),
                ));
            }
            match c.key {
                crate::ast::KeyKind::Key if kind == SourceKind::Table => {
                    return Err(SqlError::at(
                        c.name.pos,
                        format!(
                            "Column `{}` is a 'KEY' column: please use 'PRIMARY KEY' for tables.",
                            c.name.name
                        ),
                    ))
                }
                crate::ast::KeyKind::PrimaryKey if kind == SourceKind::Stream => {
                    return Err(SqlError::at(
                        c.name.pos,
                        format!(
                            "Column `{}` is a 'PRIMARY KEY' column: please use 'KEY' for streams.",
                            c.name.name
                        ),
                    ))
                }
                crate::ast::KeyKind::Key | crate::ast::KeyKind::PrimaryKey => {
                    schema.key.push(Column::new(&c.name.name, c.ty.clone()))
                }
                crate::ast::KeyKind::Headers => {
                    let (want, what) = match &c.header {
                        Some(k) => (SqlType::Bytes, format!("HEADER('{k}')")),
                        None => (HeaderColumn::all_type(), "HEADERS".to_string()),
                    };
                    if c.ty != want {
                        return Err(SqlError::at(
                            c.name.pos,
                            format!(
                                "Invalid type for {what} column: expected {want}, got {}",
                                c.ty
                            ),
                        ));
                    }
                    headers.push(HeaderColumn {
                        column: Column::new(&c.name.name, c.ty.clone()),
                        key: c.header.clone(),
                    });
                }
                crate::ast::KeyKind::None => {
                    schema.value.push(Column::new(&c.name.name, c.ty.clone()))
                }
            }
        }
        // Columns a schema registry knows: inferred when none are declared.
        if schema.value.is_empty() && value_format.get().needs_schema_registry() {
            let id = prop_int(with, "VALUE_SCHEMA_ID")?;
            match value_format
                .get()
                .infer(&topic, false, id)
                .map_err(|e| SqlError::at(name.pos, e))?
            {
                Some((cols, wrapped)) => {
                    wrap_single_value = wrapped;
                    schema.value = cols;
                }
                None => {
                    return Err(SqlError::at(
                        name.pos,
                        format!("Schema for message values on topic '{topic}' does not exist in the Schema Registry. Subject: {topic}-value"),
                    ))
                }
            }
        }
        if schema.key.is_empty() && key_format.get().needs_schema_registry() {
            let id = prop_int(with, "KEY_SCHEMA_ID")?;
            if let Some((cols, _)) = key_format
                .get()
                .infer(&topic, true, id)
                .map_err(|e| SqlError::at(name.pos, e))?
            {
                schema.key = cols;
            }
        }
        if kind == SourceKind::Table && schema.key.is_empty() {
            return Err(SqlError::at(
                name.pos,
                "Tables require a PRIMARY KEY. Please define the PRIMARY KEY.",
            ));
        }
        // A source of key columns only is allowed, as in ksqlDB (its
        // values are read as no columns).
        check_wrap(with, value_format, schema.value.len())?;
        if let Some(c) = schema
            .key
            .iter()
            .find(|c| crate::plan::sink::contains_map(&c.ty))
        {
            return Err(SqlError::at(
                name.pos,
                crate::plan::sink::map_key_message(&c.name, &c.ty),
            ));
        }
        key_format
            .check(&schema.key, "key")
            .map_err(|e| SqlError::at(name.pos, e))?;
        value_format
            .check(&schema.value, "value")
            .map_err(|e| SqlError::at(name.pos, e))?;
        let timestamp = match prop_string(with, "TIMESTAMP") {
            None => None,
            Some(t) => {
                let t = t.to_ascii_uppercase();
                let pos = with.get_ident("TIMESTAMP").map_or(name.pos, |i| i.pos);
                let Some(c) = schema.columns().find(|c| c.name == t) else {
                    return Err(SqlError::at(
                        pos,
                        format!("The TIMESTAMP column set in the WITH clause does not exist in the schema: '{t}'"),
                    ));
                };
                let has_format = prop_string(with, "TIMESTAMP_FORMAT").is_some();
                crate::plan::check_timestamp_column(&t, &c.ty, has_format)
                    .map_err(|e| SqlError::at(pos, e.message))?;
                Some(t)
            }
        };
        let window = window_prop(with)?;
        if window.is_some() && schema.key.is_empty() {
            return Err(SqlError::at(
                name.pos,
                "Windowed sources require a key column.",
            ));
        }
        let partitions = prop_int(with, "PARTITIONS")?;
        let mut admin = lock(&self.inner.admin);
        let existing = admin.partition_count(&topic).map_err(backend_err)?;
        let partitions = match (existing, partitions) {
            (Some(n), Some(p)) if n != p => {
                return Err(SqlError::at(
                    name.pos,
                    format!("A Kafka topic with the name '{topic}' already exists, with different partition count: {n} (wanted {p})"),
                ))
            }
            (Some(n), _) => n,
            (None, Some(p)) => {
                if p <= 0 {
                    return Err(SqlError::at(name.pos, "PARTITIONS must be positive"));
                }
                admin.create_topic(&topic, p, &[]).map_err(backend_err)?;
                p
            }
            (None, None) => {
                return Err(SqlError::at(
                    name.pos,
                    format!("Topic '{topic}' does not exist. If you want to create a new topic for the {} please re-run the statement providing the required 'PARTITIONS' configuration in the WITH clause (and optionally 'REPLICAS'). For example: CREATE {kind} {} (...) WITH (KAFKA_TOPIC='{topic}', PARTITIONS=2, ...);", kind.to_string().to_lowercase(), name.name),
                ))
            }
        };
        drop(admin);
        let _ = st;
        Ok(SourceInfo {
            name: name.name.clone(),
            kind,
            topic,
            schema,
            key_format,
            value_format,
            wrap_single_value,
            window,
            timestamp,
            timestamp_format: prop_string(with, "TIMESTAMP_FORMAT"),
            partitions,
            sql: text.to_string(),
            read_only,
            writer: None,
            key_schema_id: prop_int(with, "KEY_SCHEMA_ID")?,
            value_schema_id: prop_int(with, "VALUE_SCHEMA_ID")?,
            key_protobuf_nullable: protobuf_nullable(with, "KEY", key_format)?,
            value_protobuf_nullable: protobuf_nullable(with, "VALUE", value_format)?,
            key_delimiter,
            value_delimiter,
            headers,
        })
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) fn create_as(
        &self,
        st: &mut State,
        kind: SourceKind,
        name: &Ident,
        with: &Props,
        query: &Query,
        start: &QueryStart<'_>,
    ) -> Result<SourceInfo, SqlError> {
        let (text, qid) = (start.text, start.qid);
        let settings = &start.settings;
        let from = st
            .catalog
            .source(&query.from.name.name)
            .cloned()
            .ok_or_else(|| self.not_found(st, &query.from.name))?;
        // A sink topic named after its stream or table takes the
        // configured prefix.
        let topic = prop_string(with, "KAFKA_TOPIC").unwrap_or_else(|| {
            let prefix = settings.get(OUTPUT_TOPIC_PREFIX).map_or("", String::as_str);
            format!("{prefix}{}", name.name)
        });
        check_format_props(with)?;
        let formats = &self.inner.formats;
        // A NONE key format is not inherited by a query that gives its
        // rows a key (join, PARTITION BY, GROUP BY): the configured
        // default key format takes its place, else KAFKA.
        let rekeyed = !query.joins.is_empty()
            || !query.group_by.is_empty()
            || query.partition_by.iter().any(|e| {
                !matches!(
                    e.kind,
                    crate::ast::ExprKind::Literal(crate::ast::Literal::Null)
                )
            });
        let inherited = if from.key_format == Format::NONE && rekeyed {
            match settings.get(DEFAULT_KEY_FORMAT) {
                Some(f) => formats
                    .get(f.trim())
                    .map_err(|e| SqlError::new(format!("{DEFAULT_KEY_FORMAT}: {e}")))?,
                None => Format::KAFKA,
            }
        } else {
            from.key_format
        };
        let asked_key_format = format_prop(formats, with, "KEY_FORMAT", &topic)?;
        let mut key_format = asked_key_format.unwrap_or(inherited);
        // PARTITION BY NULL leaves the rows without a key: key format NONE.
        if let [e] = query.partition_by.as_slice() {
            if matches!(
                e.kind,
                crate::ast::ExprKind::Literal(crate::ast::Literal::Null)
            ) {
                if asked_key_format.is_some_and(|f| f != Format::NONE) {
                    return Err(SqlError::at(
                        e.pos,
                        "Key format specified for stream without key columns.",
                    ));
                }
                key_format = Format::NONE;
            }
        }
        let value_format =
            format_prop(formats, with, "VALUE_FORMAT", &topic)?.unwrap_or(from.value_format);
        // A format kept from the source keeps its delimiter too.
        let key_delimiter =
            delimiter_prop(with, "KEY", key_format)?.unwrap_or(if key_format == from.key_format {
                from.key_delimiter
            } else {
                ','
            });
        let value_delimiter = delimiter_prop(with, "VALUE", value_format)?.unwrap_or(
            if value_format == from.value_format {
                from.value_delimiter
            } else {
                ','
            },
        );
        let partitions = prop_int(with, "PARTITIONS")?.unwrap_or(from.partitions);
        // Output schemas named by id are used as they are, not registered.
        let key_schema_id = prop_int(with, "KEY_SCHEMA_ID")?;
        let value_schema_id = prop_int(with, "VALUE_SCHEMA_ID")?;
        let key_protobuf_nullable = protobuf_nullable(with, "KEY", key_format)?;
        let value_protobuf_nullable = protobuf_nullable(with, "VALUE", value_format)?;
        let wrap = wrap_single(with, value_format, settings);
        let sink = Sink::Topic {
            topic: topic.clone(),
            key_format,
            value_format,
            wrap_single_value: wrap,
            key_schema_id,
            value_schema_id,
            key_protobuf_nullable,
            value_protobuf_nullable,
            key_delimiter,
            value_delimiter,
        };
        // Plan first to learn the schema; only then create the topic.
        let sink_ts = prop_string(with, "TIMESTAMP").map(|t| t.to_ascii_uppercase());
        let sink_ts_format = prop_string(with, "TIMESTAMP_FORMAT");
        let planned = {
            let mut planner = Planner::new(&st.catalog, &self.inner.functions, qid);
            planner.sink_timestamp = sink_ts.clone();
            planner.sink_timestamp_format = sink_ts_format.clone();
            planner.settings = settings.clone();
            planner.plan(query, &name.name, sink.clone())?
        };
        if planned.kind != kind {
            return Err(SqlError::at(
                query.pos,
                format!(
                    "Invalid result type. Your SELECT query produces a {}. Please use CREATE {} AS SELECT statement instead.",
                    planned.kind, planned.kind
                ),
            ));
        }
        check_wrap(with, value_format, planned.schema.value.len())?;
        // The output's schemas, registered as ksqlDB registers them.
        let value_name = value_full_name(with, value_format)?;
        let key_name = prop_string(with, "KEY_SCHEMA_FULL_NAME");
        for (format, columns, is_key, wrap, full_name, id, nullable) in [
            (
                key_format,
                &planned.schema.key,
                true,
                false,
                &key_name,
                key_schema_id,
                key_protobuf_nullable,
            ),
            (
                value_format,
                &planned.schema.value,
                false,
                wrap,
                &value_name,
                value_schema_id,
                value_protobuf_nullable,
            ),
        ] {
            if columns.is_empty() || planned.window.is_some() && is_key || id.is_some() {
                continue;
            }
            let spec = CodecSpec {
                topic: Some(&topic),
                is_key,
                full_name: full_name.as_deref(),
                protobuf_nullable: nullable,
                ..CodecSpec::new(columns, wrap)
            };
            format
                .get()
                .register(&spec)
                .map_err(|e| SqlError::at(name.pos, e))?;
        }
        {
            let mut admin = lock(&self.inner.admin);
            match admin.partition_count(&topic).map_err(backend_err)? {
                Some(_) => {}
                None => admin
                    .create_topic(&topic, partitions.max(1), &[])
                    .map_err(backend_err)?,
            }
        }
        let info = SourceInfo {
            name: name.name.clone(),
            kind,
            topic,
            schema: planned.schema.clone(),
            key_format,
            value_format,
            wrap_single_value: wrap,
            window: planned.window,
            timestamp: sink_ts,
            timestamp_format: sink_ts_format,
            partitions,
            sql: text.to_string(),
            read_only: false,
            writer: Some(qid.to_string()),
            key_schema_id,
            value_schema_id,
            key_protobuf_nullable,
            value_protobuf_nullable,
            key_delimiter,
            value_delimiter,
            headers: Vec::new(),
        };
        st.catalog.sources.insert(info.name.clone(), info.clone());
        if let Err(e) = self.start_query(st, start, query, &info.name, Some(&info)) {
            st.catalog.sources.remove(&info.name);
            return Err(e);
        }
        Ok(info)
    }
}

/// `CREATE OR REPLACE` of a source stream or table: refused, in ksqlDB's
/// words.
/// ksqlDB's rule for replacing a query's sink: the key columns identical,
/// every value column kept at its place with its type (new ones appended).
fn check_upgrade(old: &SourceInfo, new: &Schema) -> Result<(), String> {
    let show = |cols: &[&Column], key: bool| -> String {
        cols.iter()
            .map(|c| format!("`{}` {}{}", c.name, c.ty, if key { " KEY" } else { "" }))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let schema_text = |s: &Schema| {
        let keys: Vec<&Column> = s.key.iter().collect();
        let values: Vec<&Column> = s.value.iter().collect();
        [show(&keys, true), show(&values, false)]
            .into_iter()
            .filter(|p| !p.is_empty())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let differ =
        |a: &Column, b: Option<&Column>| b.is_none_or(|b| a.name != b.name || a.ty != b.ty);
    let key_changed: Vec<&Column> = (old.schema.key.iter().enumerate())
        .filter(|(i, c)| differ(c, new.key.get(*i)) || old.schema.key.len() != new.key.len())
        .map(|(_, c)| c)
        .collect();
    let value_changed: Vec<&Column> = (old.schema.value.iter().enumerate())
        .filter(|(i, c)| differ(c, new.value.get(*i)))
        .map(|(_, c)| c)
        .collect();
    let why = if !key_changed.is_empty() {
        format!(
            "Key columns must be identical. The following key columns are changed, missing or reordered: [{}]",
            show(&key_changed, true)
        )
    } else if !value_changed.is_empty() {
        format!(
            "The following columns are changed, missing or reordered: [{}]",
            show(&value_changed, false)
        )
    } else {
        return Ok(());
    };
    Err(format!(
        "Cannot upgrade data source: DataSource '`{}`' has schema = {} which is not upgradeable to {}. ({why})",
        old.name,
        schema_text(&old.schema),
        schema_text(new)
    ))
}

fn replace_source_error(kind: SourceKind, name: &Ident) -> SqlError {
    let k = kind.to_string().to_lowercase();
    SqlError::at(
        name.pos,
        format!(
            "Cannot add {k} '{}': CREATE OR REPLACE is not supported on source {k}s.",
            name.name
        ),
    )
}

/// CREATE of a name that exists (ksqlDB's wording).
pub(super) fn exists_error(kind: SourceKind, name: &Ident, existing: SourceKind) -> SqlError {
    SqlError::at(
        name.pos,
        format!(
            "Cannot add {} '{}': A {} with the same name already exists",
            kind.to_string().to_lowercase(),
            name.name,
            existing.to_string().to_lowercase()
        ),
    )
}

pub(super) fn select_star(name: &str) -> Query {
    let ident = Ident {
        name: name.to_string(),
        pos: Default::default(),
    };
    Query {
        select: vec![SelectItem::Star {
            qualifier: None,
            pos: Default::default(),
        }],
        from: crate::ast::Relation {
            name: ident,
            alias: None,
        },
        joins: Vec::new(),
        window: None,
        where_: None,
        group_by: Vec::new(),
        partition_by: Vec::new(),
        having: None,
        emit: Some(crate::ast::Emit::Changes),
        limit: None,
        pos: Default::default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_name_taken_says_by_what() {
        let name = Ident {
            name: "T".to_string(),
            pos: Default::default(),
        };
        let e = exists_error(SourceKind::Stream, &name, SourceKind::Table);
        assert_eq!(
            e.to_string(),
            "Cannot add stream 'T': A table with the same name already exists"
        );
    }

    #[test]
    fn a_source_tables_materialization_selects_everything_as_it_changes() {
        let q = select_star("T");
        assert_eq!(q.from.name.name, "T");
        assert!(matches!(
            q.select.as_slice(),
            [SelectItem::Star {
                qualifier: None,
                ..
            }]
        ));
        assert_eq!(q.emit, Some(crate::ast::Emit::Changes));
        assert!(super::super::push::stateless(&q) && q.where_.is_none() && q.limit.is_none());
    }
}
