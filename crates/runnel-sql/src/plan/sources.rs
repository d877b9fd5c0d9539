//! Planning the sources of a query: a stream or table read from its
//! topic into full rows (keys, values, pseudo columns), with the serdes
//! that decode them; FROM and its joins as one relation.

use super::*;
use crate::catalog::HeaderColumn;

/// Keys of a windowed source as one row: the key columns, then the
/// window's start and end (Kafka Streams' windowed key layout on the wire).
#[derive(Clone)]
pub struct WindowedRowSerde {
    pub inner: RowSerde,
    pub window: WindowType,
}

impl WindowedRowSerde {
    pub(super) fn tail(&self) -> usize {
        match self.window {
            WindowType::Time { .. } => 8,
            WindowType::Session => 16,
        }
    }
}

impl Serde<Row> for WindowedRowSerde {
    fn partition_bytes<'a>(&self, serialized: &'a [u8]) -> &'a [u8] {
        &serialized[..serialized.len().saturating_sub(self.tail())]
    }
    fn serialize(&self, v: &Row) -> Serialized {
        let n = v.len().saturating_sub(2);
        let mut out = self.inner.serialize(&v[..n].to_vec())?.unwrap_or_default();
        let start = v.get(n).and_then(Value::as_i64).unwrap_or(0);
        let end = v.get(n + 1).and_then(Value::as_i64).unwrap_or(0);
        match self.window {
            WindowType::Time { .. } => out.extend_from_slice(&start.to_be_bytes()),
            WindowType::Session => {
                out.extend_from_slice(&end.to_be_bytes());
                out.extend_from_slice(&start.to_be_bytes());
            }
        }
        Ok(Some(out))
    }
    fn deserialize(&self, b: Option<&[u8]>) -> Result<Row, SerdeError> {
        let b = b.ok_or_else(|| SerdeError("a windowed key cannot be null".into()))?;
        if b.len() < self.tail() {
            return Err(SerdeError("windowed key too short".into()));
        }
        let (k, w) = b.split_at(b.len() - self.tail());
        let word = |x: &[u8]| -> i64 {
            let mut a = [0u8; 8];
            a.copy_from_slice(&x[..8]);
            i64::from_be_bytes(a)
        };
        let mut row = self.inner.deserialize(Some(k))?;
        match self.window {
            WindowType::Time { size_ms } => {
                let start = word(w);
                row.push(Value::BigInt(start));
                row.push(Value::BigInt(start.saturating_add(size_ms)));
            }
            WindowType::Session => {
                row.push(Value::BigInt(word(&w[8..])));
                row.push(Value::BigInt(word(w)));
            }
        }
        Ok(row)
    }
}

/// A source's value serde whose rows come with `prefix` NULL slots in
/// front (for the key columns) and `suffix` behind (the pseudo columns):
/// the planner's full row, decoded in one allocation. A null value is an
/// empty row (see `Rel::fill`).
pub(super) struct PrefixedRowSerde {
    pub(super) inner: RowSerde,
    pub(super) prefix: usize,
    pub(super) suffix: usize,
    /// Room left in each row for the columns a join appends.
    pub(super) spare: usize,
    /// Per value column: whether no part of the query names it.
    pub(super) unread: Arc<[bool]>,
}

impl Serde<Row> for PrefixedRowSerde {
    fn serialize(&self, v: &Row) -> Serialized {
        self.inner
            .serialize(&v.get(self.prefix..).unwrap_or(&[]).to_vec())
    }
    fn deserialize(&self, b: Option<&[u8]>) -> Result<Row, SerdeError> {
        match b {
            // A tombstone: dropped by the source's fill.
            None => Ok(Vec::new()),
            Some(b) => self
                .inner
                .decode_with_prefix(b, self.prefix, self.suffix, self.spare, &self.unread)
                .map_err(|e| SerdeError(e.to_string())),
        }
    }
}

/// A source table's stored rows: written in the internal encoding, read
/// back from it, or from the topic's format when a row is not a row of
/// this table's width in it (stores written by builds that kept the
/// topic's bytes, so an upgrade keeps the table's contents).
pub(super) struct SourceTableSerde {
    pub(super) width: usize,
    pub(super) topic: RowSerde,
}

impl Serde<Row> for SourceTableSerde {
    fn serialize(&self, v: &Row) -> Serialized {
        InternalSerde.serialize(v)
    }
    fn deserialize(&self, b: Option<&[u8]>) -> Result<Row, SerdeError> {
        match InternalSerde.deserialize(b) {
            Ok(row) if row.len() == self.width => Ok(row),
            _ => self.topic.deserialize(b),
        }
    }
}

impl<'a> Planner<'a> {
    pub(super) fn lookup(&self, name: &Ident) -> Result<&'a SourceInfo, SqlError> {
        self.catalog.source(&name.name).ok_or_else(|| {
            let mut msg = format!("{} does not exist", name.name);
            if let Some(s) = self.catalog.suggest(&name.name) {
                msg.push_str(&format!("; did you mean {s}?"));
            }
            SqlError::not_found(Some(name.pos), msg)
        })
    }

    /// A source as a relation.
    pub(super) fn source(&mut self, name: &Ident, alias: Option<&Ident>) -> Result<Rel, SqlError> {
        let info = self.lookup(name)?;
        if !self.sources.contains(&info.name) {
            self.sources.push(info.name.clone());
        }
        let qualifier = alias.unwrap_or(name).name.clone();
        let mut columns = Vec::new();
        let mut pseudo = HashSet::new();
        for c in &info.schema.key {
            columns.push(ScopeColumn {
                qualifier: Some(qualifier.clone()),
                name: c.name.clone(),
                ty: c.ty.clone(),
                index: columns.len(),
            });
        }
        if info.window.is_some() {
            for n in [crate::schema::WINDOWSTART, crate::schema::WINDOWEND] {
                pseudo.insert(columns.len());
                columns.push(ScopeColumn {
                    qualifier: Some(qualifier.clone()),
                    name: n.to_string(),
                    ty: SqlType::BigInt,
                    index: columns.len(),
                });
            }
        }
        for c in info
            .schema
            .value
            .iter()
            .chain(info.headers.iter().map(|h| &h.column))
        {
            columns.push(ScopeColumn {
                qualifier: Some(qualifier.clone()),
                name: c.name.clone(),
                ty: c.ty.clone(),
                index: columns.len(),
            });
        }
        for (n, t) in [
            (ROWTIME, SqlType::BigInt),
            (ROWPARTITION, SqlType::Int),
            (ROWOFFSET, SqlType::BigInt),
        ] {
            pseudo.insert(columns.len());
            columns.push(ScopeColumn {
                qualifier: Some(qualifier.clone()),
                name: n.to_string(),
                ty: t,
                index: columns.len(),
            });
        }
        let wextra = if info.window.is_some() { 2 } else { 0 };
        let nkeys = info.schema.key.len() + wextra;
        let keys: Vec<KeyAlt> = (0..nkeys)
            .map(|i| KeyAlt {
                texts: Vec::new(),
                slots: vec![i],
                origin: KeyOrigin::Source,
            })
            .collect();
        let mut key_types: Vec<SqlType> = info.schema.key.iter().map(|c| c.ty.clone()).collect();
        key_types.extend(std::iter::repeat_n(SqlType::BigInt, wextra));
        let ks: Arc<dyn Serde<Row>> = match info.window {
            None => Arc::new(info.key_serde()),
            Some(w) => Arc::new(WindowedRowSerde {
                inner: info.key_serde(),
                window: w,
            }),
        };
        let vs = info.value_serde();
        let key_serde: Arc<dyn Serde<Row>> = ks.clone();
        let ks = ks;
        let ts_slot = match &info.timestamp {
            Some(col) => Some(columns.iter().position(|c| c.name == *col).ok_or_else(|| {
                SqlError::new(format!("TIMESTAMP column {col} not found in {}", info.name))
            })?),
            None => None,
        };
        let ts_parser: Option<Arc<TimestampParser>> = match &info.timestamp_format {
            Some(f) if ts_slot.is_some() => Some(Arc::new(
                TimestampParser::new(f).map_err(|e| SqlError::new(e.to_string()))?,
            )),
            _ => None,
        };
        let rowtime_slot = columns.len() - 3;
        let mut raw_table = None;
        let mut pending_fill = None;
        // Behind the value columns: the header columns, then the pseudo
        // columns unless no one reads them.
        let headers: Arc<[HeaderColumn]> = info.headers.clone().into();
        let pseudo_n = if self.short_rows && ts_slot.is_none() {
            0
        } else {
            3
        };
        let suffix = headers.len() + pseudo_n;
        let flow = match info.kind {
            SourceKind::Stream => {
                let head: Head = Arc::new(std::sync::OnceLock::new());
                let step = head.clone();
                let s = self.builder.stream_with_meta(
                    &info.topic,
                    ks,
                    PrefixedRowSerde {
                        unread: info
                            .schema
                            .value
                            .iter()
                            .map(|c| {
                                self.names_read
                                    .as_ref()
                                    .is_some_and(|n| !n.contains(&c.name))
                                    && info.timestamp.as_ref() != Some(&c.name)
                            })
                            .collect(),
                        inner: vs,
                        prefix: nkeys,
                        suffix,
                        // Only the first source (FROM) has joins appending
                        // to its rows.
                        spare: std::mem::take(&mut self.join_spare),
                    },
                    move |m: &runnel_streams::RecordMeta, k: &Row, v: Row| match step.get() {
                        Some(f) => f(m, k, v),
                        None => Some(v),
                    },
                );
                let key_read = match &self.reads {
                    None => true,
                    Some(_) if info.window.is_some() => true,
                    Some(r) => {
                        info.schema.key.iter().any(|c| r.contains(&c.name))
                            || info.timestamp.as_ref().is_some_and(|t| {
                                r.contains(t) || info.schema.key.iter().any(|c| c.name == *t)
                            })
                    }
                };
                let [read_time, read_partition, read_offset] = self.pseudo_reads;
                let hs = headers.clone();
                let fill: Fill = Arc::new(
                    move |m: &runnel_streams::RecordMeta, k: &Row, mut full: Row| {
                        // The value arrives with NULL key slots in front
                        // and NULL pseudo columns behind unless `suffix`
                        // is 0 (empty: a tombstone); only what the query
                        // reads is filled.
                        if full.is_empty() {
                            return None;
                        }
                        if key_read {
                            for (slot, kv) in full.iter_mut().zip(k.iter()) {
                                slot.set(kv.clone());
                            }
                        }
                        let hbase = full.len().saturating_sub(suffix);
                        for (i, h) in hs.iter().enumerate() {
                            if let Some(slot) = full.get_mut(hbase + i) {
                                *slot = h.read(m.headers);
                            }
                        }
                        let base = full.len().saturating_sub(pseudo_n);
                        let mut put = |i: usize, v: Value| {
                            if let Some(slot) = full.get_mut(base + i) {
                                slot.set(v);
                            }
                        };
                        if read_time {
                            put(0, Value::BigInt(m.timestamp));
                        }
                        if read_partition {
                            put(1, Value::Int(m.partition));
                        }
                        if read_offset {
                            put(2, Value::BigInt(m.offset));
                        }
                        Some(full)
                    },
                );
                let s = s.with_serdes(key_serde.clone(), InternalSerde);
                let pending = SourceFill { fill, head };
                if ts_slot.is_none() {
                    pending_fill = Some(pending);
                    Flow::Stream(s)
                } else {
                    let mut s = pending.run_alone(s);
                    if let Some(slot) = ts_slot {
                        // As ksqlDB's extractors: a record whose time
                        // cannot be read (null, unreadable text) or is
                        // negative is dropped.
                        let parser = ts_parser.clone();
                        s = s
                            .flat_map_values(move |_, mut v: Row| {
                                let ms = event_time(v.get(slot), parser.as_deref())?;
                                if let Some(r) = v.get_mut(rowtime_slot) {
                                    *r = Value::BigInt(ms);
                                }
                                Some(v)
                            })
                            .with_timestamps(move |_, v: &Row, ts| match v.get(rowtime_slot) {
                                Some(Value::BigInt(ms)) => *ms,
                                _ => ts,
                            });
                    }
                    Flow::Stream(s.with_serdes(key_serde.clone(), InternalSerde))
                }
            }
            SourceKind::Table => {
                // Stored in the internal encoding, not the topic's format:
                // every stream-table join lookup decodes a stored row,
                // and the internal one reads about twice as fast as JSON.
                let store = self.name("source");
                let stored = SourceTableSerde {
                    width: info.schema.value.len() + headers.len(),
                    topic: vs.clone(),
                };
                let changes = if headers.is_empty() {
                    self.builder
                        .stream(&info.topic, ks, OptionSerde(vs.clone()))
                } else {
                    // Header columns are stored with the row they came with.
                    let hs = headers.clone();
                    self.builder.stream_with_meta(
                        &info.topic,
                        ks,
                        OptionSerde(vs.clone()),
                        move |m: &runnel_streams::RecordMeta, _: &Row, v: Option<Row>| {
                            Some(v.map(|mut row| {
                                row.extend(hs.iter().map(|h| h.read(m.headers)));
                                row
                            }))
                        },
                    )
                };
                // A TIMESTAMP value column gives each update its time;
                // updates whose time cannot be read or is negative are
                // dropped (tombstones keep theirs).
                let changes = match ts_slot.and_then(|i| i.checked_sub(nkeys)) {
                    Some(i) => {
                        let (p1, p2) = (ts_parser.clone(), ts_parser.clone());
                        changes
                            .flat_map_values(move |_, v: Option<Row>| match v {
                                None => Some(None),
                                Some(row) => {
                                    event_time(row.get(i), p1.as_deref()).map(|_| Some(row))
                                }
                            })
                            .with_timestamps(move |_, v: &Option<Row>, ts| {
                                v.as_ref()
                                    .and_then(|r| event_time(r.get(i), p2.as_deref()))
                                    .unwrap_or(ts)
                            })
                            .with_serdes(key_serde.clone(), OptionSerde(vs))
                    }
                    None => changes,
                };
                // A record without a key updates no row: ksqlDB drops it.
                let changes = changes.filter(|k: &Row, _| k.iter().any(|v| !v.is_null()));
                let t = changes.to_table_nullable(&store, stored);
                raw_table = Some(t.clone());
                let t = t.map_values(move |k: &Row, v: &Row| {
                    let mut full = Vec::with_capacity(k.len() + v.len() + 3);
                    full.extend(k.iter().cloned());
                    full.extend(v.iter().cloned());
                    full.extend([Value::Null, Value::Null, Value::Null]);
                    full
                });
                Flow::Table(t.with_serdes(key_serde.clone(), InternalSerde))
            }
        };
        Ok(Rel {
            flow,
            columns,
            pseudo,
            keys,
            key_types,
            key_serde,
            parts: vec![qualifier],
            window: info.window,
            raw_table: if info.window.is_none() {
                raw_table
            } else {
                None
            },
            fill: pending_fill,
            tail: None,
        })
    }

    /// ksqlDB's checks of each join's ON before any join is planned: each
    /// side names one source, not both the same, one of them the source
    /// being joined; and the two sources have as many partitions.
    fn check_join_criteria(&self, q: &Query) -> Result<(), SqlError> {
        let refs: Vec<&crate::ast::Relation> = std::iter::once(&q.from)
            .chain(q.joins.iter().map(|j| &j.right))
            .collect();
        for (ji, j) in q.joins.iter().enumerate() {
            let ExprKind::Binary {
                op: crate::ast::BinaryOp::Eq,
                left: a,
                right: b,
            } = &j.on.kind
            else {
                continue;
            };
            let in_scope = &refs[..ji + 2];
            let (Some(sa), Some(sb)) = (
                self.source_named(a, in_scope),
                self.source_named(b, in_scope),
            ) else {
                continue;
            };
            let (na, nb) = (&sa.qualifier().name, &sb.qualifier().name);
            let joined = &j.right.qualifier().name;
            if na == nb {
                return Err(err(
                    j.on.pos,
                    format!(
                        "Each side of the join must reference exactly one source and not the same source. Left side references `{na}` and right references `{nb}`"
                    ),
                ));
            }
            if na != joined && nb != joined {
                return Err(err(
                    j.on.pos,
                    format!(
                        "A join criteria is expected to reference the source (`{joined}`) in the FROM clause, instead the right source references `{nb}` and the left source references `{na}`"
                    ),
                ));
            }
            let info = |r: &crate::ast::Relation| self.catalog.source(&r.name.name);
            // The side that is not the joined source is the left one.
            let ((l, le), (r, _)) = if na == joined {
                ((sb, b), (sa, a))
            } else {
                ((sa, a), (sb, b))
            };
            // A foreign-key join (a table's value column naming another
            // table's key) needs no co-partitioning.
            let is_key = |e: &Expr, i: &SourceInfo| match &e.kind {
                ExprKind::Column { name, .. } => i.schema.key.iter().any(|c| c.name == name.name),
                _ => false,
            };
            let foreign_key = matches!((info(l), info(r)), (Some(li), Some(ri))
                if li.kind == crate::ast::SourceKind::Table
                    && ri.kind == crate::ast::SourceKind::Table
                    && !is_key(le, li));
            if foreign_key {
                continue;
            }
            if let (Some(lp), Some(rp)) =
                (info(l).map(|i| i.partitions), info(r).map(|i| i.partitions))
            {
                if lp != rp {
                    return Err(err(
                        j.on.pos,
                        format!(
                            "Can't join `{}` with `{}` since the number of partitions don't match. `{}` partitions = {lp}; `{}` partitions = {rp}. Please repartition either one so that the number of partitions match.",
                            l.qualifier().name,
                            r.qualifier().name,
                            l.qualifier().name,
                            r.qualifier().name
                        ),
                    ));
                }
            }
        }
        Ok(())
    }

    /// The one source among `refs` whose columns `e` names (qualified, or
    /// found in exactly one source's schema); `None` otherwise.
    fn source_named<'r>(
        &self,
        e: &Expr,
        refs: &[&'r crate::ast::Relation],
    ) -> Option<&'r crate::ast::Relation> {
        let (mut names, mut quals) = (Vec::new(), Vec::new());
        super::prune::collect_refs(e, &mut names, &mut quals);
        let mut found: Option<&'r crate::ast::Relation> = None;
        for (name, qual) in names.iter().zip(&quals) {
            let src = match qual {
                Some(qual) => refs
                    .iter()
                    .find(|r| r.qualifier().name == qual.name)
                    .copied()?,
                None => {
                    let mut owners = refs.iter().filter(|r| {
                        self.catalog.source(&r.name.name).is_some_and(|i| {
                            i.schema
                                .key
                                .iter()
                                .chain(&i.schema.value)
                                .any(|c| c.name == name.name)
                        })
                    });
                    let one = owners.next().copied()?;
                    if owners.next().is_some() {
                        return None;
                    }
                    one
                }
            };
            match found {
                Some(f) if f.qualifier().name != src.qualifier().name => return None,
                _ => found = Some(src),
            }
        }
        found
    }

    /// FROM and JOINs.
    pub(super) fn relation(&mut self, q: &Query) -> Result<Rel, SqlError> {
        check_qualifiers(q)?;
        for (ji, j) in q.joins.iter().enumerate() {
            let earlier = std::iter::once(&q.from).chain(q.joins[..ji].iter().map(|j| &j.right));
            if let Some(same) = earlier
                .map(|s| &s.name.name)
                .find(|n| **n == j.right.name.name)
            {
                let message = if q.joins.len() > 1 {
                    format!(
                        "N-way joins do not support multiple occurrences of the same source. Source: '{same}'"
                    )
                } else {
                    format!("Can not join '{same}' to '{same}': self joins are not yet supported.")
                };
                return Err(err(j.right.name.pos, message));
            }
        }
        self.check_join_criteria(q)?;
        let mut rel = self.source(&q.from.name, q.from.alias.as_ref())?;
        for (ji, j) in q.joins.iter().enumerate() {
            let right = self.source(&j.right.name, j.right.alias.as_ref())?;
            let rq = j.right.qualifier().name.clone();
            if rel.parts.contains(&rq) {
                return Err(err(
                    j.right.name.pos,
                    format!("{rq} appears twice in this query; give it an alias"),
                ));
            }
            rel = self.join(rel, right, j, ji)?;
        }
        Ok(rel)
    }
}

/// ksqlDB's parser refuses a qualifier naming none of the query's sources
/// before any other check (so before an ambiguous column elsewhere).
fn check_qualifiers(q: &Query) -> Result<(), SqlError> {
    // As ksqlDB's parser: the sources' names and their aliases.
    let known: Vec<&str> = std::iter::once(&q.from)
        .chain(q.joins.iter().map(|j| &j.right))
        .flat_map(|r| [Some(&r.name), r.alias.as_ref()])
        .flatten()
        .map(|n| n.name.as_str())
        .collect();
    let unknown = |q: &Ident| {
        Err(SqlError::at(q.pos, crate::expr::not_a_source(&q.name))
            .in_stage(crate::error::ErrorKind::Prepare))
    };
    let mut exprs: Vec<&Expr> = Vec::new();
    for item in &q.select {
        match item {
            SelectItem::Star {
                qualifier: Some(qual),
                ..
            } if !known.contains(&qual.name.as_str()) => return unknown(qual),
            SelectItem::Star { .. } => {}
            SelectItem::Expr { expr, .. } => exprs.push(expr),
        }
    }
    exprs.extend(q.joins.iter().map(|j| &j.on));
    exprs.extend(q.where_.iter());
    exprs.extend(q.group_by.iter());
    exprs.extend(q.partition_by.iter());
    exprs.extend(q.having.iter());
    for e in exprs {
        let (mut names, mut quals) = (Vec::new(), Vec::new());
        super::prune::collect_refs(e, &mut names, &mut quals);
        if let Some(qual) = quals
            .iter()
            .flatten()
            .find(|qual| !known.contains(&qual.name.as_str()))
        {
            return unknown(qual);
        }
    }
    Ok(())
}

/// The event time in a TIMESTAMP column: BIGINT milliseconds, a
/// TIMESTAMP, or a STRING read with the TIMESTAMP_FORMAT (else as an ISO
/// timestamp). `None` where ksqlDB's extractor fails or gives a negative
/// time, which Kafka Streams drops: a null, unreadable text.
pub(super) fn event_time(v: Option<&Value>, format: Option<&TimestampParser>) -> Option<i64> {
    let ms = match v? {
        Value::BigInt(ms) => *ms,
        Value::Int(ms) => i64::from(*ms),
        Value::Timestamp(ms) => *ms,
        Value::String(s) => match format {
            Some(p) => p.parse(s).ok()?,
            None => crate::cast::parse_timestamp(s)?,
        },
        _ => return None,
    };
    (ms >= 0).then_some(ms)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(x: &str) -> Value {
        Value::String(x.to_string())
    }

    #[test]
    fn source_table_rows_read_back_from_either_encoding() {
        let cols = vec![
            Column::new("NAME", SqlType::String),
            Column::new("N", SqlType::BigInt),
        ];
        let serde = SourceTableSerde {
            width: 2,
            topic: RowSerde::new(Format::JSON, cols, true),
        };
        let row = vec![s("x"), Value::BigInt(3)];
        let stored = serde.serialize(&row).unwrap().unwrap();
        assert_eq!(stored, InternalSerde.serialize(&row).unwrap().unwrap());
        assert_eq!(serde.deserialize(Some(&stored)).unwrap(), row);
        // What an earlier build stored: the topic's JSON.
        let old = br#"{"NAME":"x","N":3}"#;
        assert_eq!(serde.deserialize(Some(old)).unwrap(), row);
    }
}
