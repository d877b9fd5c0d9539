//! Planning joins: stream-stream (windowed), stream-table and
//! table-table, re-keying a side by its join expression when needed and
//! copying only the columns the query names.

use super::prune::collect_refs;
use super::*;

/// Which columns of a join's two sides the query names: the others are
/// NULL in joined rows instead of copies.
#[derive(Clone)]
pub(super) struct Keep {
    pub(super) left: Arc<[bool]>,
    pub(super) right: Arc<[bool]>,
}

impl Keep {
    pub(super) fn concat(&self, a: &Row, b: &Row) -> Row {
        let mut out = Vec::with_capacity(a.len() + b.len());
        extend_kept(&mut out, a, &self.left);
        extend_kept(&mut out, b, &self.right);
        out
    }
}

/// Appends `src`, with NULL for each value whose `keep` flag is false
/// (values past the end of `keep` are copied).
pub(super) fn extend_kept(out: &mut Row, src: &[Value], keep: &[bool]) {
    out.extend(src.iter().enumerate().map(|(i, v)| {
        if keep.get(i).copied().unwrap_or(true) {
            v.clone()
        } else {
            Value::Null
        }
    }));
}

pub(super) fn concat_rows(a: &Row, b: &Row) -> Row {
    let mut out = Vec::with_capacity(a.len() + b.len());
    out.extend_from_slice(a);
    out.extend_from_slice(b);
    out
}

/// Re-keys a stream by a join expression unless it is keyed by it already.
pub(super) fn rekey(
    s: KStream<Row, Row>,
    keyed: bool,
    by: Compiled,
    ks: Arc<dyn Serde<Row>>,
) -> KStream<Row, Row> {
    if keyed {
        return s;
    }
    s.select_key(move |_, v: &Row| vec![by.eval(v)])
        .with_serdes(ks, InternalSerde)
}

impl<'a> Planner<'a> {
    pub(super) fn join(
        &mut self,
        left: Rel,
        right: Rel,
        j: &crate::ast::Join,
        index: usize,
    ) -> Result<Rel, SqlError> {
        let (left, right) = (left.settle(), right.settle());
        let mut tail = None;
        // The joined scope: left columns, then right columns shifted.
        let lw = left.width();
        let mut columns = left.columns.clone();
        for c in &right.columns {
            let mut c = c.clone();
            c.index += lw;
            columns.push(c);
        }
        let mut pseudo = left.pseudo.clone();
        pseudo.extend(right.pseudo.iter().map(|p| p + lw));
        let joined_scope = Scope::new(columns.clone()).in_clause("JOIN ON");
        // ON must be an equality between one side and the other.
        let ExprKind::Binary {
            op: crate::ast::BinaryOp::Eq,
            left: a,
            right: b,
        } = &j.on.kind
        else {
            if let ExprKind::Binary {
                op: crate::ast::BinaryOp::And,
                ..
            } = &j.on.kind
            {
                return Err(err(
                    j.on.pos,
                    format!(
                        "Invalid join condition: joins on multiple conditions are not yet supported. Got {}.",
                        j.on
                    ),
                ));
            }
            return Err(err(
                j.on.pos,
                "a join condition must be an equality between the two sides, such as a.id = b.id",
            ));
        };
        let side_of = |e: &Expr| -> Result<u8, SqlError> {
            let mut names = Vec::new();
            let mut quals = Vec::new();
            collect_refs(e, &mut names, &mut quals);
            let mut sides = HashSet::new();
            for (q, n) in quals.iter().zip(&names) {
                let c = joined_scope.resolve(q.as_ref(), n)?;
                sides.insert(u8::from(c.index >= lw));
            }
            match sides.len() {
                1 => Ok(sides.into_iter().next().unwrap_or(0)),
                0 => Err(err(
                    e.pos,
                    format!(
                        "Invalid comparison expression '{e}' in join '{}'. Each side of the join comparision must contain references from exactly one source.",
                        j.on
                    ),
                )),
                _ => Err(err(
                    e.pos,
                    "each side of a join condition must name columns of one source only",
                )),
            }
        };
        let (le, re) = match (side_of(a)?, side_of(b)?) {
            (0, 1) => (a.as_ref(), b.as_ref()),
            (1, 0) => (b.as_ref(), a.as_ref()),
            _ => {
                return Err(err(
                    j.on.pos,
                    "a join condition must compare a column of the left side with one of the right side",
                ))
            }
        };
        let (lc, lt) = self.binder(left.scope().in_clause("JOIN ON")).bind(le)?;
        let (rc, rt) = self.binder(right.scope().in_clause("JOIN ON")).bind(re)?;
        // FULL OUTER joins: the synthetic key ROWKEY is whichever side's
        // join expression is present.
        let rowkey = {
            let (l, r) = (lc.clone(), rc.clone());
            move |v: &Row| -> Value {
                let lv = l.eval(&v[..lw.min(v.len())]);
                if !lv.is_null() {
                    return lv;
                }
                r.eval(v.get(lw..).unwrap_or(&[]))
            }
        };
        let (lt, rt) = (lt.unwrap_or(SqlType::String), rt.unwrap_or(SqlType::String));
        // The condition as ksqlDB shows it in refusals: columns qualified,
        // sides as written.
        let (ql, qr) = (qualified(le, &joined_scope), qualified(re, &joined_scope));
        let written = format!(
            "{} = {}",
            qualified(a, &joined_scope),
            qualified(b, &joined_scope)
        );
        if lt != rt {
            return Err(err(
                j.on.pos,
                format!(
                    "Invalid join condition: types don't match. Got {ql}{{{lt}}} = {qr}{{{rt}}}."
                ),
            ));
        }
        // The sources the condition names: ksqlDB shows a join by them.
        let source_of = |e: &Expr, scope: &Scope| match &e.kind {
            ExprKind::Column { qualifier, name } => scope
                .resolve(qualifier.as_ref(), name)
                .ok()
                .and_then(|c| c.qualifier.clone()),
            _ => None,
        };
        let (l_source, r_source) = (source_of(le, &joined_scope), source_of(re, &joined_scope));
        // A key holding a map is refused where the join would key its
        // rows by it, named as ksqlDB's joined schema names it.
        if super::sink::contains_map(&lt) {
            if let Some(q) = &l_source {
                if let ExprKind::Column { name, .. } = &le.kind {
                    return Err(err(
                        j.on.pos,
                        super::sink::map_key_message(&format!("{q}_{}", name.name), &lt),
                    ));
                }
            }
        }
        let shown_join = |l: &Rel, r: &Rel| {
            let kind = match j.kind {
                JoinKind::Inner => "[INNER] JOIN",
                JoinKind::Left => "LEFT [OUTER] JOIN",
                JoinKind::Right => "RIGHT [OUTER] JOIN",
                JoinKind::Full => "[FULL] OUTER JOIN",
            };
            format!(
                "{} {kind} {}",
                l_source
                    .as_deref()
                    .or(l.parts.last().map(String::as_str))
                    .unwrap_or(""),
                r_source
                    .as_deref()
                    .or(r.parts.last().map(String::as_str))
                    .unwrap_or("")
            )
        };
        let key_slot = |rel: &Rel, e: &Expr| -> Option<usize> {
            let slot = match &e.kind {
                ExprKind::Column { qualifier, name } => {
                    rel.scope().resolve(qualifier.as_ref(), name).ok()?.index
                }
                _ => return None,
            };
            let nk = rel.keys.len() - if rel.window.is_some() { 2 } else { 0 };
            (nk == 1 && rel.keys[0].slots.contains(&slot)).then_some(slot)
        };
        let l_is_key = key_slot(&left, le);
        let r_is_key = key_slot(&right, re);
        let lw_right = right.width();
        let l_text = canon(le, &left.scope());
        let mut keys = vec![KeyAlt::default()];
        if let ExprKind::Column { qualifier, name } = &le.kind {
            if let Ok(c) = left.scope().resolve(qualifier.as_ref(), name) {
                keys[0].slots.push(c.index);
            }
        }
        if let ExprKind::Column { qualifier, name } = &re.kind {
            if let Ok(c) = right.scope().resolve(qualifier.as_ref(), name) {
                keys[0].slots.push(c.index + lw);
            }
        }
        keys[0].texts.push(l_text);
        keys[0].texts.push(canon(re, &joined_scope));
        // How ksqlDB names the viable keys: the left's own viable keys
        // when the left is already keyed by this side's expression (an
        // n-way join), then each side's column.
        let mut shown = Vec::new();
        if let (Some(slot), Some(k0)) = (key_slot(&left, le), left.keys.first()) {
            if k0.slots.contains(&slot) {
                // The left's other columns equal to its key stay viable.
                for s in &k0.slots {
                    if !keys[0].slots.contains(s) {
                        keys[0].slots.push(*s);
                    }
                }
                if let KeyOrigin::Join(prev) = &k0.origin {
                    shown.extend(prev.iter().cloned());
                }
            }
        }
        for (e, rel) in [(le, &left), (re, &right)] {
            if let ExprKind::Column { qualifier, name } = &e.kind {
                if let Ok(c) = rel.scope().resolve(qualifier.as_ref(), name) {
                    let q = c.qualifier.clone().unwrap_or_default();
                    let text = format!("{q}.{}", c.name);
                    if !shown.contains(&text) {
                        shown.push(text);
                    }
                }
            }
        }
        keys[0].origin = KeyOrigin::Join(shown);
        // ksqlDB's rules for windowed sources: both or neither, of one
        // kind, and joined on their keys with the same windows.
        let windowed = |rel: &Rel| {
            let name = rel.parts.last().map_or("", String::as_str);
            match rel.window {
                None => format!("`{name}` is not windowed"),
                Some(WindowType::Session) => format!("`{name}` is SESSION windowed"),
                Some(WindowType::Time { .. }) => {
                    format!("`{name}` is TUMBLING or HOPPING windowed")
                }
            }
        };
        match (left.window, right.window) {
            (None, None) => {}
            (Some(_), None) | (None, Some(_)) => {
                return Err(err(
                    j.pos,
                    format!(
                        "Can not join windowed source to non-windowed source.\n{}\n{}",
                        windowed(&left),
                        windowed(&right)
                    ),
                ))
            }
            (Some(a), Some(b)) => {
                let kind = |w: WindowType| match w {
                    WindowType::Session => "SESSION",
                    WindowType::Time { .. } => "TUMBLING or HOPPING",
                };
                if kind(a) != kind(b) {
                    return Err(err(
                        j.pos,
                        format!(
                            "Incompatible windowed sources.\nLeft source: {}\nRight source: {}\nSession windowed sources can only be joined to other session windowed sources, and may still not result in expected behaviour as session bounds must be an exact match for the join to work\nHopping and tumbling windowed sources can only be joined to other hopping and tumbling windowed sources",
                            kind(a),
                            kind(b)
                        ),
                    ));
                }
                if a != b || l_is_key.is_none() || r_is_key.is_none() {
                    return Err(err(
                        j.pos,
                        "Implicit repartitioning of windowed sources is not supported. See https://github.com/confluentinc/ksql/issues/4385.",
                    ));
                }
            }
        }
        let window = left.window;
        let mut key_types = vec![rt.clone()];
        if window.is_some() {
            let n = left.keys.len();
            keys.extend(left.keys[n - 2..].iter().cloned());
            key_types.extend([SqlType::BigInt, SqlType::BigInt]);
        }
        let mut parts = left.parts.clone();
        parts.extend(right.parts.iter().cloned());
        let null_right: Row = vec![Value::Null; lw_right];
        let null_left: Row = vec![Value::Null; lw];
        // Joined rows only carry the columns the query names, not counting
        // this join's own condition (both sides were keyed by it before
        // the join; a FULL join's ROWKEY reads it from joined rows though)
        // nor the select item the projection serves from the join's key.
        let full = j.kind == JoinKind::Full;
        let synthetic = full
            || !matches!(le.kind, ExprKind::Column { .. })
                && !matches!(re.kind, ExprKind::Column { .. });
        let foreign_key = matches!((&left.flow, &right.flow), (Flow::Table(_), Flow::Table(_)))
            && l_is_key.is_none();
        let key_item_free = !synthetic && !foreign_key;
        let kept = |cols: &[ScopeColumn]| -> Arc<[bool]> {
            cols.iter()
                .map(|c| match &self.col_refs {
                    None => true,
                    Some(refs) => refs.iter().any(|r| {
                        r.names(c)
                            && (synthetic || r.join_on != Some(index))
                            && !(key_item_free && r.join_key_item)
                    }),
                })
                .collect()
        };
        let keep = Keep {
            left: kept(&left.columns),
            right: kept(&right.columns),
        };
        let mut stream_key_serde: Option<Arc<dyn Serde<Row>>> = None;
        // How ksqlDB names the two sides of this join in refusals.
        let join_shown = shown_join(&left, &right);
        let flow = match (left.flow, right.flow) {
            (Flow::Stream(ls), Flow::Table(rt_)) => {
                if r_is_key.is_none() {
                    return Err(err(
                        re.pos,
                        format!(
                            "Invalid join condition: stream-table joins require to join on the table's primary key. Got {written}."
                        ),
                    ));
                }
                let key_of = lc.clone();
                let ls = rekey(ls, l_is_key.is_some(), lc, right.key_serde.clone());
                // The table as stored: its row is the join key, the stored
                // values and null pseudo columns, built once per match.
                // The stream row moves into the joined row; unread
                // columns are dropped rather than copied.
                let k1 = keep.clone();
                let right_key_kept = keep.right.first().copied().unwrap_or(true);
                let full_right = move |mut l: Row, values: Option<&Row>| -> Row {
                    // The right key (the left side's join value), read
                    // before unread left columns are cleared.
                    let key = (values.is_some() && right_key_kept).then(|| key_of.eval(&l));
                    for (v, keep) in l.iter_mut().zip(k1.left.iter()) {
                        if !keep && !v.is_null() {
                            std::mem::take(v).discard();
                        }
                    }
                    match values {
                        Some(values) => {
                            l.reserve(values.len() + 4);
                            l.push(key.unwrap_or_default());
                            extend_kept(&mut l, values, k1.right.get(1..).unwrap_or(&[]));
                            l.extend([Value::Null, Value::Null, Value::Null]);
                        }
                        None => l.resize_with(l.len() + lw_right, || Value::Null),
                    }
                    l
                };
                let raw = right.raw_table.clone().filter(|_| right.keys.len() == 1);
                let out = match (j.kind, raw) {
                    (JoinKind::Inner, Some(raw)) => {
                        let t: Tail = Arc::default();
                        tail = Some(t.clone());
                        ls.join_filter_map(&raw, move |l: Row, r| {
                            run_tail(&t, full_right(l, Some(r?)))
                        })
                    }
                    (JoinKind::Left, Some(raw)) => {
                        let t: Tail = Arc::default();
                        tail = Some(t.clone());
                        ls.join_filter_map(&raw, move |l: Row, r| run_tail(&t, full_right(l, r)))
                    }
                    (JoinKind::Inner, None) => {
                        ls.join(&rt_, move |l: &Row, r: &Row| keep.concat(l, r))
                    }
                    (JoinKind::Left, None) => {
                        ls.left_join(&rt_, move |l: &Row, r: Option<&Row>| {
                            keep.concat(l, r.unwrap_or(&null_right))
                        })
                    }
                    (other, _) => {
                        return Err(err(
                            j.pos,
                            format!(
                                "Invalid join type: {} join not supported for stream-table join. Got {}.",
                                other.to_string().to_lowercase().replace(' ', "-"),
                                join_shown
                            ),
                        ))
                    }
                };
                Flow::Stream(out.with_serdes(right.key_serde.clone(), InternalSerde))
            }
            (Flow::Table(lt_), Flow::Table(rt_)) => {
                if r_is_key.is_none() {
                    return Err(err(
                        re.pos,
                        format!(
                            "Invalid join condition: table-table joins require to join on the primary key of the right input table. Got {written}."
                        ),
                    ));
                }
                if l_is_key.is_none() && index > 0 {
                    return Err(err(
                        j.on.pos,
                        format!(
                            "Invalid join condition: foreign-key table-table joins are not supported as part of n-way joins. Got {written}."
                        ),
                    ));
                }
                let out = if l_is_key.is_some() {
                    match j.kind {
                        JoinKind::Inner => {
                            lt_.join(&rt_, move |l: &Row, r: &Row| keep.concat(l, r))
                        }
                        JoinKind::Left => lt_.left_join(&rt_, move |l: &Row, r: Option<&Row>| {
                            keep.concat(l, r.unwrap_or(&null_right))
                        }),
                        JoinKind::Full => {
                            let nl = null_left.clone();
                            lt_.outer_join(&rt_, move |l: Option<&Row>, r: Option<&Row>| {
                                keep.concat(l.unwrap_or(&nl), r.unwrap_or(&null_right))
                            })
                        }
                        // A LEFT join with the sides' roles swapped; rows
                        // keep the left side's columns first.
                        JoinKind::Right => {
                            let nl = null_left.clone();
                            rt_.left_join(&lt_, move |r: &Row, l: Option<&Row>| {
                                keep.concat(l.unwrap_or(&nl), r)
                            })
                        }
                    }
                } else {
                    // Foreign-key join: the left row names the right key.
                    let name = self.name("fkjoin");
                    let extract = move |v: &Row| vec![lc.eval(v)];
                    match j.kind {
                        JoinKind::Inner => lt_.join_foreign_key(
                            &rt_,
                            extract,
                            move |l: &Row, r: &Row| keep.concat(l, r),
                            &name,
                        ),
                        JoinKind::Left => lt_.left_join_foreign_key(
                            &rt_,
                            extract,
                            move |l: &Row, r: Option<&Row>| {
                                keep.concat(l, r.unwrap_or(&null_right))
                            },
                            &name,
                        ),
                        JoinKind::Right => {
                            return Err(err(
                                j.pos,
                                "RIGHT OUTER JOIN on a foreign key is not supported",
                            ))
                        }
                        other => {
                            return Err(err(
                                j.pos,
                                format!("{other} is not supported for foreign-key table joins; use INNER or LEFT"),
                            ))
                        }
                    }
                };
                // A foreign-key join keeps the left table's key.
                let out = out.with_serdes(left.key_serde.clone(), InternalSerde);
                if l_is_key.is_none() {
                    let table = left.parts.last().cloned().unwrap_or_default();
                    let keys = left
                        .keys
                        .into_iter()
                        .map(|mut k| {
                            if matches!(k.origin, KeyOrigin::Source) {
                                k.origin = KeyOrigin::ForeignKey {
                                    table: table.clone(),
                                };
                            }
                            k
                        })
                        .collect();
                    return Ok(Rel {
                        flow: Flow::Table(out),
                        columns,
                        pseudo,
                        keys,
                        key_types: left.key_types,
                        key_serde: left.key_serde,
                        parts,
                        window,
                        raw_table: None,
                        fill: None,
                        tail: None,
                    });
                }
                Flow::Table(out)
            }
            (Flow::Stream(ls), Flow::Stream(rs)) => {
                let Some(w) = &j.within else {
                    return Err(err(
                        j.pos,
                        "a stream-stream join needs a WITHIN clause, such as WITHIN 1 HOUR",
                    ));
                };
                // Both sides end up keyed the same way: the side already
                // keyed by the join expression keeps its key serde; with
                // neither, the internal one (a source's key serde is for
                // its own key column's type, not the expression's).
                let ks: Arc<dyn Serde<Row>> = match (l_is_key, r_is_key) {
                    (Some(_), _) => left.key_serde.clone(),
                    (None, Some(_)) => right.key_serde.clone(),
                    (None, None) => Arc::new(InternalKeySerde),
                };
                stream_key_serde = Some(ks.clone());
                let ls = rekey(ls, l_is_key.is_some(), lc, ks.clone());
                let rs = rekey(rs, r_is_key.is_some(), rc, ks.clone());
                let grace = w.grace.map_or(DEFAULT_GRACE_MS, |g| g.millis);
                // ksqlDB: without GRACE PERIOD, the pre-3.1 join (unmatched
                // records out at once); with one, out when the window closes.
                let timing = |jw: JoinWindows| {
                    if w.grace.is_none() {
                        jw.emit_unmatched_at_once()
                    } else {
                        jw
                    }
                };
                let windows = timing(
                    JoinWindows::of(ms(w.before.millis))
                        .before(ms(w.before.millis))
                        .after(ms(w.after.millis))
                        .grace(ms(grace)),
                );
                let prefix = self.name("join");
                let out = match j.kind {
                    JoinKind::Inner => ls.join_stream(
                        &rs,
                        move |l: &Row, r: &Row| keep.concat(l, r),
                        windows,
                        &prefix,
                    ),
                    JoinKind::Left => ls.left_join_stream(
                        &rs,
                        move |l: &Row, r: Option<&Row>| keep.concat(l, r.unwrap_or(&null_right)),
                        windows,
                        &prefix,
                    ),
                    JoinKind::Full => {
                        let nl = null_left.clone();
                        ls.outer_join_stream(
                            &rs,
                            move |l: Option<&Row>, r: Option<&Row>| {
                                keep.concat(l.unwrap_or(&nl), r.unwrap_or(&null_right))
                            },
                            windows,
                            &prefix,
                        )
                    }
                    // A LEFT join from the right side: its window looks
                    // the other way.
                    JoinKind::Right => {
                        let nl = null_left.clone();
                        let swapped = timing(
                            JoinWindows::of(ms(w.before.millis))
                                .before(ms(w.after.millis))
                                .after(ms(w.before.millis))
                                .grace(ms(grace)),
                        );
                        rs.left_join_stream(
                            &ls,
                            move |r: &Row, l: Option<&Row>| keep.concat(l.unwrap_or(&nl), r),
                            swapped,
                            &prefix,
                        )
                    }
                };
                Flow::Stream(out.with_serdes(ks, InternalSerde))
            }
            (Flow::Table(_), Flow::Stream(_)) => {
                return Err(err(
                    j.pos,
                    format!(
                        "Invalid join order: table-stream joins are not supported; only stream-table joins. Got {join_shown}."
                    ),
                ))
            }
        };
        let key_serde = stream_key_serde.unwrap_or_else(|| right.key_serde.clone());
        // A FULL join, or one on expressions rather than columns, is keyed
        // by a synthetic column (ksqlDB's ROWKEY): the only column that can
        // be the output's key.
        let (flow, columns) = if synthetic {
            let slot = columns.len();
            let mut columns = columns;
            let name = synthetic_key_name(&columns);
            // An earlier join's synthetic key is replaced by this one.
            for c in columns
                .iter_mut()
                .filter(|c| c.qualifier.is_none() && c.name == name)
            {
                c.name = format!("\u{0}{}", c.name);
                pseudo.insert(c.index);
            }
            columns.push(ScopeColumn {
                qualifier: None,
                name: name.clone(),
                ty: rt.clone(),
                index: slot,
            });
            keys[0].slots.push(slot);
            keys[0].origin = KeyOrigin::Synthetic { name, slot };
            let add = move |_: &Row, v: &Row| {
                let mut v = v.clone();
                let k = rowkey(&v);
                v.push(k);
                v
            };
            let flow = match flow {
                Flow::Stream(s) => Flow::Stream(
                    s.map_values(move |k, v: Row| add(k, &v))
                        .with_serdes(key_serde.clone(), InternalSerde),
                ),
                Flow::Table(t) => Flow::Table(t.map_values(add)),
            };
            (flow, columns)
        } else {
            (flow, columns)
        };
        Ok(Rel {
            flow,
            columns,
            pseudo,
            keys,
            key_types,
            key_serde,
            parts,
            window,
            raw_table: None,
            fill: None,
            tail,
        })
    }
}

/// The name of a join's synthetic key: ROWKEY, or ROWKEY_n past the
/// highest n of the sources' columns named so (as ksqlDB names it).
fn synthetic_key_name(columns: &[ScopeColumn]) -> String {
    let taken = columns
        .iter()
        .filter(|c| c.qualifier.is_some())
        .filter_map(|c| match c.name.strip_prefix("ROWKEY") {
            Some("") => Some(0),
            Some(rest) => rest.strip_prefix('_')?.parse::<u64>().ok(),
            None => None,
        })
        .max();
    match taken {
        None => "ROWKEY".to_string(),
        Some(n) => format!("ROWKEY_{}", n + 1),
    }
}
