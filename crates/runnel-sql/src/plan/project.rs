//! Planning projections and filters: the select list (in place over rows
//! the step owns when it can), table functions, and PARTITION BY.

use super::*;

/// One output column: its name, type and expression over the input scope.
pub(super) struct OutCol {
    pub(super) name: String,
    pub(super) ty: SqlType,
    pub(super) expr: Compiled,
}

/// The projection of a query: key columns (by key position) and value
/// columns.
pub(super) struct Projection {
    pub(super) keys: Vec<(String, SqlType)>,
    pub(super) values: Vec<OutCol>,
}

impl Projection {
    pub(super) fn schema(&self) -> Schema {
        Schema {
            key: self
                .keys
                .iter()
                .map(|(n, t)| Column::new(n, t.clone()))
                .collect(),
            value: self
                .values
                .iter()
                .map(|c| Column::new(&c.name, c.ty.clone()))
                .collect(),
        }
    }
    pub(super) fn compiled(&self) -> Arc<Vec<Compiled>> {
        Arc::new(self.values.iter().map(|c| c.expr.clone()).collect())
    }
}

pub(super) fn eval_all(exprs: &[Compiled], row: &Row) -> Row {
    exprs.iter().map(|e| e.eval(row)).collect()
}

/// A projection over rows it owns: computed columns are evaluated first,
/// then plain column references *move* their value out of the input row
/// (copying only a column projected twice).
pub(super) struct OwnedProjection {
    pub(super) exprs: Vec<Compiled>,
    /// Per output: `Some(slot)` when it is a column moved out.
    pub(super) takes: Vec<Option<usize>>,
    /// Whether the output can be built inside the input row's buffer:
    /// every moved column comes from its output position or a later one,
    /// and at most one output is computed (held aside while columns move).
    pub(super) in_place: bool,
    /// The input row length the in-place path needs.
    pub(super) width: usize,
    /// For the in-place path: (output position, slot) of each moved
    /// column that changes place, in output order.
    pub(super) moves: Vec<(usize, usize)>,
    /// For the in-place path: (output position, expression) of the
    /// computed output, if there is one.
    pub(super) computed: Option<(usize, Compiled)>,
}

impl OwnedProjection {
    pub(super) fn new(exprs: &[Compiled]) -> Self {
        let mut uses: std::collections::HashMap<usize, usize> = Default::default();
        for e in exprs {
            if let Compiled::Column(i) = e {
                *uses.entry(*i).or_default() += 1;
            }
        }
        let takes: Vec<Option<usize>> = exprs
            .iter()
            .map(|e| match e {
                Compiled::Column(i) if uses.get(i) == Some(&1) => Some(*i),
                _ => None,
            })
            .collect();
        let in_place = takes
            .iter()
            .enumerate()
            .all(|(j, t)| t.is_none_or(|i| i >= j))
            && takes.iter().filter(|t| t.is_none()).count() <= 1;
        let width = takes
            .iter()
            .flatten()
            .max()
            .map_or(exprs.len(), |m| (m + 1).max(exprs.len()));
        let moves = takes
            .iter()
            .enumerate()
            .filter_map(|(j, t)| t.filter(|i| *i != j).map(|i| (j, i)))
            .collect();
        let computed = exprs
            .iter()
            .zip(&takes)
            .enumerate()
            .find(|(_, (_, t))| t.is_none())
            .map(|(j, (e, _))| (j, e.clone()));
        OwnedProjection {
            exprs: exprs.to_vec(),
            takes,
            in_place,
            width,
            moves,
            computed,
        }
    }

    pub(super) fn apply(&self, mut row: Row) -> Row {
        if self.in_place && self.width <= row.len() {
            // The computed output (if any) first, against the intact row;
            // then each output position j takes its column from slot
            // i >= j (no earlier step wrote there, no later one reads j).
            let held = self.computed.as_ref().map(|(j, e)| (*j, e.eval(&row)));
            for &(j, i) in &self.moves {
                row.swap(j, i);
            }
            if let Some((j, v)) = held {
                std::mem::replace(&mut row[j], v).discard();
            }
            crate::types::truncate_row(&mut row, self.exprs.len());
            return row;
        }
        let mut out: Row = self
            .exprs
            .iter()
            .zip(&self.takes)
            .map(|(e, t)| match t {
                Some(_) => Value::Null,
                None => e.eval(&row),
            })
            .collect();
        for (o, t) in out.iter_mut().zip(&self.takes) {
            if let Some(i) = t {
                if let Some(v) = row.get_mut(*i) {
                    o.set(std::mem::take(v));
                }
            }
        }
        crate::types::discard_row(row);
        out
    }
}

/// ksqlDB's refusals of a select item named after a pseudo or window
/// column (`name`: its alias, given or derived): an alias that renames
/// something else to one, and (in a persistent query) such a column
/// selected under its own name.
pub(super) fn check_reserved(
    name: &str,
    expr: &Expr,
    persistent: bool,
    pos: Pos,
) -> Result<(), SqlError> {
    if !crate::schema::RESERVED.contains(&name) {
        return Ok(());
    }
    let same = matches!(&expr.kind, ExprKind::Column { name: n, .. } if n.name == name);
    if !same {
        return Err(err(
            pos,
            format!(
                "`{name}` is a reserved column name. You cannot use it as an alias for a column."
            ),
        ));
    }
    if persistent {
        return Err(err(
            pos,
            format!("Reserved column name in select: `{name}`. Please remove or alias the column."),
        ));
    }
    Ok(())
}

impl<'a> Planner<'a> {
    /// Binds a select list against a relation: key columns must be
    /// projected (ksqlDB's rule for persistent queries), the rest become
    /// value columns.
    pub(super) fn projection(
        &self,
        items: &[SelectItem],
        rel: &Rel,
        sink: &str,
        require_keys: bool,
    ) -> Result<Projection, SqlError> {
        let scope = rel.scope();
        let multi = rel.parts.len() > 1;
        let mut keys: Vec<Option<(String, SqlType)>> = vec![None; rel.keys.len()];
        let mut values: Vec<OutCol> = Vec::new();
        let mut names: HashSet<String> = HashSet::new();
        let key_pos = |slot: Option<usize>, text: &str| -> Option<usize> {
            rel.keys.iter().position(|k| match &k.origin {
                KeyOrigin::Synthetic { slot: s, .. } => slot == Some(*s),
                _ => {
                    slot.is_some_and(|s| k.slots.contains(&s)) || k.texts.iter().any(|t| t == text)
                }
            })
        };
        let nkeys = rel.keys.len() - if rel.window.is_some() { 2 } else { 0 };
        // Which column took each key position (none: an expression), and
        // how many value columns were listed before it.
        let mut claimed: Vec<Option<usize>> = vec![None; rel.keys.len()];
        let mut claimed_at: Vec<usize> = vec![0; rel.keys.len()];
        // A join's key goes to the left source's join column when the
        // projection has it, even after another side's equal column (as
        // ksqlDB keys a join by its left side): (key position, where the
        // left column stands among the values) of the first such column.
        let mut to_swap: Vec<(usize, usize)> = Vec::new();
        let mut add = |name: String,
                       ty: SqlType,
                       expr: Compiled,
                       kp: Option<(usize, Option<usize>)>,
                       pos: Pos,
                       keys: &mut Vec<Option<(String, SqlType)>>|
         -> Result<(), SqlError> {
            if !names.insert(name.clone()) {
                return Err(err(
                    pos,
                    format!("duplicate column name {name} in the projection; give one an alias"),
                ));
            }
            if let Some((k, slot)) = kp {
                match &keys[k] {
                    None => {
                        keys[k] = Some((name, ty));
                        claimed[k] = slot;
                        claimed_at[k] = values.len();
                        return Ok(());
                    }
                    // A persistent query's key column projected again
                    // (another side's equal join column is a value).
                    Some((first, _)) if require_keys && k < nkeys && claimed[k] == slot => {
                        let key = rel.keys[k]
                            .slots
                            .first()
                            .and_then(|s| scope.column_at(*s))
                            .map_or_else(
                                || first.clone(),
                                |c| match (&c.qualifier, multi) {
                                    (Some(q), true) => format!("{q}_{}", c.name),
                                    _ => c.name.clone(),
                                },
                            );
                        let mut aliases = [first.clone(), name];
                        aliases.sort();
                        return Err(err(
                            pos,
                            format!(
                                "The projection contains a key column (`{key}`) more than once, aliased as: {} and {}.",
                                aliases[0], aliases[1]
                            ),
                        ));
                    }
                    Some(_) => {
                        let left_col = rel.keys[k].slots.first().copied();
                        if matches!(rel.keys[k].origin, KeyOrigin::Join(_))
                            && claimed[k].is_some()
                            && slot.is_some()
                            && slot == left_col
                            && !to_swap.iter().any(|(kk, _)| *kk == k)
                        {
                            to_swap.push((k, values.len()));
                        }
                    }
                }
            }
            values.push(OutCol { name, ty, expr });
            Ok(())
        };
        for (i, item) in items.iter().enumerate() {
            match item {
                SelectItem::Star { qualifier, pos } => {
                    if let Some(q) = qualifier {
                        if !rel.parts.contains(&q.name) {
                            return Err(err(q.pos, crate::expr::not_a_source(&q.name))
                                .in_stage(crate::error::ErrorKind::Prepare));
                        }
                    }
                    for c in &scope.columns {
                        if rel.pseudo.contains(&c.index) {
                            continue;
                        }
                        if qualifier
                            .as_ref()
                            .is_some_and(|q| c.qualifier.as_deref() != Some(q.name.as_str()))
                        {
                            continue;
                        }
                        // (A join's synthetic key has no source.)
                        let name = match (&c.qualifier, multi) {
                            (Some(q), true) => format!("{q}_{}", c.name),
                            _ => c.name.clone(),
                        };
                        let kp = key_pos(Some(c.index), "").map(|k| (k, Some(c.index)));
                        add(
                            name,
                            c.ty.clone(),
                            Compiled::Column(c.index),
                            kp,
                            *pos,
                            &mut keys,
                        )?;
                    }
                }
                SelectItem::Expr { expr, alias } => {
                    let (c, t) = self.binder(scope.clone().in_clause("SELECT")).bind(expr)?;
                    let slot = match &c {
                        Compiled::Column(s) => Some(*s),
                        _ => None,
                    };
                    let name = match (alias, &expr.kind) {
                        (Some(a), _) => a.name.clone(),
                        // Every source of a join has the pseudo columns:
                        // a qualified one is named after its source.
                        (
                            None,
                            ExprKind::Column {
                                qualifier: Some(q),
                                name,
                            },
                        ) if multi && crate::schema::RESERVED.contains(&name.name.as_str()) => {
                            format!("{}_{}", q.name, name.name)
                        }
                        (None, ExprKind::Column { name, .. }) => name.name.clone(),
                        (None, ExprKind::Deref { field, .. }) => field.name.clone(),
                        _ => format!("KSQL_COL_{i}"),
                    };
                    check_reserved(&name, expr, require_keys, expr.pos)?;
                    let Some(t) = t else {
                        return Err(err(
                            expr.pos,
                            "Can't infer a type of null. Please explicitly cast it to a required type, e.g. CAST(null AS VARCHAR).",
                        ));
                    };
                    let kp = key_pos(slot, &canon(expr, &scope)).map(|k| (k, slot));
                    add(name, t, c, kp, expr.pos, &mut keys)?;
                }
            }
        }
        for (k, at) in to_swap {
            if let (Some((key_name, key_ty)), Some(slot)) = (keys[k].take(), claimed[k]) {
                let left = values.remove(at);
                values.insert(
                    claimed_at[k],
                    OutCol {
                        name: key_name,
                        ty: key_ty,
                        expr: Compiled::Column(slot),
                    },
                );
                keys[k] = Some((left.name, left.ty));
                claimed[k] = rel.keys[k].slots.first().copied();
            }
        }
        let star = items.iter().any(|it| {
            matches!(
                it,
                SelectItem::Star {
                    qualifier: None,
                    ..
                }
            )
        });
        // The sink's TIMESTAMP column is looked for before the keys.
        if let Some(col) = &self.sink_timestamp {
            let named = values.iter().any(|v| v.name == *col)
                || keys.iter().flatten().any(|(n, _)| n == col);
            if !named {
                return Err(SqlError::new(format!(
                    "The TIMESTAMP column set in the WITH clause does not exist in the schema: '{col}'"
                )));
            }
        }
        let mut out_keys = Vec::new();
        let nk = rel.keys.len() - if rel.window.is_some() { 2 } else { 0 };
        let unclaimed: Vec<usize> = (0..nk).filter(|i| keys[*i].is_none()).collect();
        for (i, k) in keys.into_iter().enumerate() {
            if i >= nk {
                // The window travels in the key, not as a column.
                if let Some((n, t)) = k {
                    let slot = rel.keys[i].slots[0];
                    values.push(OutCol {
                        name: n,
                        ty: t,
                        expr: Compiled::Column(slot),
                    });
                }
                continue;
            }
            match k {
                Some(k) => out_keys.push(k),
                // `SELECT *` takes a PARTITION BY expression's key too.
                None if star => match &rel.keys[i].origin {
                    KeyOrigin::Partition { name, .. } if !names.contains(name) => {
                        out_keys.push((name.clone(), rel.key_types[i].clone()))
                    }
                    _ if require_keys => {
                        return Err(SqlError::new(
                            self.missing_key(rel, &scope, i, &unclaimed, sink),
                        ));
                    }
                    _ => out_keys.push((format!("KSQL_KEY_{i}"), rel.key_types[i].clone())),
                },
                None if require_keys => {
                    return Err(SqlError::new(
                        self.missing_key(rel, &scope, i, &unclaimed, sink),
                    ));
                }
                None => out_keys.push((format!("KSQL_KEY_{i}"), rel.key_types[i].clone())),
            }
        }
        if require_keys && values.is_empty() {
            return Err(SqlError::new("The projection contains no value columns."));
        }
        Ok(Projection {
            keys: out_keys,
            values,
        })
    }

    /// ksqlDB's words for key position `i` of `rel` missing from the
    /// projection of the persistent query building `sink`.
    fn missing_key(
        &self,
        rel: &Rel,
        scope: &Scope,
        i: usize,
        unclaimed: &[usize],
        sink: &str,
    ) -> String {
        match &rel.keys[i].origin {
            KeyOrigin::ForeignKey { table } => {
                let names: Vec<String> = unclaimed
                    .iter()
                    .filter_map(|k| rel.keys[*k].slots.first())
                    .filter_map(|s| scope.column_at(*s))
                    .map(|c| format!("`{}`", c.name))
                    .collect();
                let (s, verb) = if names.len() > 1 {
                    ("s", "columns")
                } else {
                    ("", "column")
                };
                format!(
                    "Primary key column{s} missing in projection. For foreign-key table-table joins, the projection must include all primary key columns from the left input table (`{table}`). Missing {verb}: {}.",
                    names.join(", ")
                )
            }
            KeyOrigin::Source => {
                let nk = rel.keys.len() - if rel.window.is_some() { 2 } else { 0 };
                let names: Vec<String> = rel.keys[..nk]
                    .iter()
                    .filter_map(|k| k.slots.first().and_then(|s| scope.column_at(*s)))
                    .map(|c| c.name.clone())
                    .collect();
                keys_missing(sink, "key column", &names, true, false)
            }
            KeyOrigin::Join(shown) if shown.is_empty() => keys_missing(
                sink,
                "join expression",
                &["ROWKEY".to_string()],
                false,
                true,
            ),
            KeyOrigin::Synthetic { name, .. } => keys_missing(
                sink,
                "join expression",
                std::slice::from_ref(name),
                false,
                true,
            ),
            KeyOrigin::Join(shown) => keys_missing(sink, "join expression", shown, false, false),
            KeyOrigin::Partition { .. } => {
                let all: Vec<String> = rel
                    .keys
                    .iter()
                    .filter_map(|k| match &k.origin {
                        KeyOrigin::Partition { shown, .. } => Some(shown.clone()),
                        _ => None,
                    })
                    .collect();
                keys_missing(sink, "partitioning expression", &all, true, false)
            }
        }
    }

    /// Table functions in the select list (`EXPLODE(arr) AS x`): each
    /// record becomes one row per element; several table functions zip,
    /// the shorter padded with NULL. Their values become extra columns.
    pub(super) fn table_functions(
        &mut self,
        mut rel: Rel,
        items: &[SelectItem],
    ) -> Result<(Rel, Vec<SelectItem>), SqlError> {
        let mut out = Vec::with_capacity(items.len());
        let mut calls: Vec<(Arc<dyn crate::functions::TableFunction>, Vec<Compiled>)> = Vec::new();
        for (i, item) in items.iter().enumerate() {
            let SelectItem::Expr { expr, alias } = item else {
                out.push(item.clone());
                continue;
            };
            let ExprKind::Function { name, args, .. } = &expr.kind else {
                out.push(item.clone());
                continue;
            };
            let Some(f) = self.functions.table_arc(&name.name) else {
                out.push(item.clone());
                continue;
            };
            let mut compiled = Vec::new();
            let mut types = Vec::new();
            for a in args {
                let (c, t) = self.binder(rel.scope().in_clause("SELECT")).bind(a)?;
                compiled.push(c);
                types.push(t);
            }
            let ty = f
                .return_type(&types)
                .map_err(|e| err(name.pos, e.to_string()))?;
            let slot = rel.columns.len();
            let col = format!("__T{slot}");
            rel.columns.push(ScopeColumn {
                qualifier: None,
                name: col.clone(),
                ty,
                index: slot,
            });
            rel.pseudo.insert(slot);
            calls.push((f, compiled));
            out.push(SelectItem::Expr {
                expr: column_ref(&col, expr.pos),
                alias: Some(alias.clone().unwrap_or(Ident {
                    name: format!("KSQL_COL_{i}"),
                    pos: expr.pos,
                })),
            });
        }
        if calls.is_empty() {
            return Ok((rel, out));
        }
        let Flow::Stream(s) = rel.flow else {
            return Err(err(
                items.first().map_or(Pos::default(), |_| Pos::default()),
                "Table source is not supported with table functions",
            ));
        };
        let calls = Arc::new(calls);
        let s = s.flat_map_values(move |_, v: Row| {
            let lists: Vec<Vec<Value>> = calls
                .iter()
                .map(|(f, args)| {
                    let a: Vec<Value> = args.iter().map(|c| c.eval(&v)).collect();
                    f.call(&a).unwrap_or_default()
                })
                .collect();
            let n = lists.iter().map(Vec::len).max().unwrap_or(0);
            (0..n)
                .map(|i| {
                    let mut row = v.clone();
                    row.extend(lists.iter().map(|l| l.get(i).cloned().unwrap_or_default()));
                    row
                })
                .collect::<Vec<Row>>()
        });
        rel.flow = Flow::Stream(s);
        Ok((rel, out))
    }

    pub(super) fn partition_by(&mut self, rel: Rel, exprs: &[Expr]) -> Result<Rel, SqlError> {
        let scope = rel.scope();
        let width = rel.width();
        let Flow::Stream(s) = rel.flow else {
            return Err(err(exprs[0].pos, "PARTITION BY applies to streams only"));
        };
        let mut compiled = Vec::new();
        let mut keys = Vec::new();
        let mut types = Vec::new();
        let mut generated = 0;
        let mut reads_value = Vec::new();
        // The source's key columns (slots): the old key after PARTITION BY.
        let key_slots: HashSet<usize> = rel.keys.iter().flat_map(|k| k.slots.clone()).collect();
        let is_null = |e: &Expr| matches!(e.kind, ExprKind::Literal(crate::ast::Literal::Null));
        if exprs.len() > 1 {
            if let Some(e) = exprs.iter().find(|e| is_null(e)) {
                return Err(err(
                    e.pos,
                    "Cannot PARTITION BY multiple columns including NULL",
                ));
            }
        }
        // PARTITION BY NULL: rows without a key.
        let exprs = if exprs.len() == 1 && is_null(&exprs[0]) {
            &[]
        } else {
            exprs
        };
        for e in exprs {
            let (c, t) = self
                .binder(scope.clone().in_clause("PARTITION BY"))
                .bind(e)?;
            let name = match &e.kind {
                ExprKind::Column { name, .. } => name.name.clone(),
                ExprKind::Deref { field, .. } => field.name.clone(),
                _ => {
                    generated += 1;
                    format!("KSQL_COL_{}", generated - 1)
                }
            };
            let mut alt = KeyAlt {
                texts: vec![canon(e, &scope)],
                slots: Vec::new(),
                origin: KeyOrigin::Partition {
                    shown: qualified(e, &scope),
                    name,
                },
            };
            if let Compiled::Column(slot) = c {
                alt.slots.push(slot);
            }
            keys.push(alt);
            types.push(t.unwrap_or(SqlType::String));
            compiled.push(c);
            // Whether it reads a value column (NULL for a null value).
            let (mut names, mut quals) = (Vec::new(), Vec::new());
            super::prune::collect_refs(e, &mut names, &mut quals);
            reads_value.push(names.iter().zip(&quals).any(|(n, q)| {
                scope
                    .resolve(q.as_ref(), n)
                    .is_ok_and(|c| !key_slots.contains(&c.index))
            }));
        }
        let compiled = Arc::new(compiled);
        let s = s
            .select_key(move |k: &Row, v: &Row| {
                if v.is_empty() {
                    // A null value: an expression over key columns only
                    // (a single source's first slots) is evaluated; one
                    // reading a value column is NULL, as in ksqlDB.
                    let mut row = vec![Value::Null; width];
                    for (slot, kv) in row.iter_mut().zip(k.iter()) {
                        *slot = kv.clone();
                    }
                    return compiled
                        .iter()
                        .zip(reads_value.iter())
                        .map(|(c, value)| if *value { Value::Null } else { c.eval(&row) })
                        .collect();
                }
                eval_all(&compiled, v)
            })
            .with_serdes(InternalKeySerde, InternalSerde);
        // The old key columns become value columns behind the others (as
        // ksqlDB's PARTITION BY schema has them): `SELECT *` lists them
        // last. Only the listing order changes, not the row slots.
        let mut columns = rel.columns.clone();
        if rel.parts.len() == 1 {
            let (olds, mut rest): (Vec<_>, Vec<_>) = columns
                .into_iter()
                .partition(|c| key_slots.contains(&c.index) && !rel.pseudo.contains(&c.index));
            let at = rest
                .iter()
                .rposition(|c| !rel.pseudo.contains(&c.index))
                .map_or(0, |p| p + 1);
            rest.splice(at..at, olds);
            columns = rest;
        }
        Ok(Rel {
            flow: Flow::Stream(s),
            columns,
            keys,
            key_types: types,
            key_serde: Arc::new(InternalKeySerde),
            raw_table: None,
            ..rel
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ast::BinaryOp;

    fn s(x: &str) -> Value {
        Value::String(x.to_string())
    }

    fn times_two(slot: usize) -> Compiled {
        Compiled::Arith(
            BinaryOp::Mul,
            Box::new(Compiled::Column(slot)),
            Box::new(Compiled::Const(Value::BigInt(2))),
            SqlType::BigInt,
        )
    }

    #[test]
    fn an_in_place_projection_moves_columns_and_computes_the_rest() {
        // [key, user, amount, rowtime] -> [user, amount * 2, key]
        let p = OwnedProjection::new(&[Compiled::Column(1), times_two(2), Compiled::Column(0)]);
        assert!(!p.in_place, "slot 0 moves to position 2: not in place");
        let row = vec![s("k1"), s("u1"), Value::BigInt(21), Value::BigInt(7)];
        assert_eq!(p.apply(row), vec![s("u1"), Value::BigInt(42), s("k1")]);

        // [key, user, amount, rowtime] -> [user, amount * 2, rowtime]
        let p = OwnedProjection::new(&[Compiled::Column(1), times_two(2), Compiled::Column(3)]);
        assert!(p.in_place);
        let row = vec![s("k1"), s("u1"), Value::BigInt(21), Value::BigInt(7)];
        assert_eq!(
            p.apply(row),
            vec![s("u1"), Value::BigInt(42), Value::BigInt(7)]
        );
        // NULL in, NULL out; a short row takes the general path.
        let row = vec![Value::Null, Value::Null, Value::Null, Value::Null];
        assert_eq!(p.apply(row), vec![Value::Null; 3]);
        assert_eq!(
            p.apply(vec![Value::Null, s("u2")]),
            vec![s("u2"), Value::Null, Value::Null]
        );
    }

    #[test]
    fn a_column_projected_twice_is_copied_not_moved() {
        // Both copies count as computed: more than one, so the general path.
        let p = OwnedProjection::new(&[Compiled::Column(1), Compiled::Column(1), times_two(0)]);
        assert!(!p.in_place);
        let row = vec![Value::BigInt(5), s("x"), Value::Null];
        assert_eq!(p.apply(row), vec![s("x"), s("x"), Value::BigInt(10)]);
    }

    #[test]
    fn more_than_one_computed_output_takes_the_general_path() {
        let p = OwnedProjection::new(&[times_two(0), times_two(0), Compiled::Column(2)]);
        assert!(!p.in_place);
        let row = vec![Value::BigInt(3), Value::Null, s("z")];
        assert_eq!(
            p.apply(row),
            vec![Value::BigInt(6), Value::BigInt(6), s("z")]
        );
    }
}
