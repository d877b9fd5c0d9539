//! Planning aggregations: GROUP BY (windowed or not, on streams and
//! tables), HAVING, and the projection after the store that pull queries
//! share; one accumulator per aggregate call in a row.

use super::project::{eval_all, OutCol, OwnedProjection, Projection};
use super::*;

/// A bound aggregate call: its aggregator and argument expressions.
pub(super) struct AggCall {
    pub(super) agg: Arc<dyn Aggregator>,
    pub(super) args: Vec<Compiled>,
}

pub(super) fn agg_init(calls: &Arc<Vec<AggCall>>) -> Row {
    calls.iter().map(|c| c.agg.initial()).collect()
}

/// Folds a row into the accumulators; the row is consumed (dropped
/// without the drop glue for values that own nothing).
pub(super) fn agg_add(calls: &[AggCall], full: Row, mut acc: Row) -> Row {
    if acc.len() != calls.len() {
        acc = calls.iter().map(|c| c.agg.initial()).collect();
    }
    for (c, slot) in calls.iter().zip(acc.iter_mut()) {
        let args: Vec<Value> = c.args.iter().map(|a| a.eval(&full)).collect();
        let old = std::mem::take(slot);
        slot.set(c.agg.add(old, &args));
        crate::types::discard_row(args);
    }
    crate::types::discard_row(full);
    acc
}

/// Takes a row back out of the accumulators (table aggregations).
pub(super) fn agg_undo(calls: &[AggCall], full: Row, mut acc: Row) -> Row {
    for (c, slot) in calls.iter().zip(acc.iter_mut()) {
        let args: Vec<Value> = c.args.iter().map(|a| a.eval(&full)).collect();
        let old = std::mem::take(slot);
        slot.set(c.agg.undo(old.clone(), &args).unwrap_or(old));
        crate::types::discard_row(args);
    }
    crate::types::discard_row(full);
    acc
}

pub(super) fn agg_merge(calls: &[AggCall], a: Row, b: Row) -> Row {
    calls
        .iter()
        .zip(a.into_iter().zip(b))
        .map(|(c, (x, y))| {
            c.agg
                .merge(x.clone(), y.clone())
                .unwrap_or_else(|| if y.is_null() { x } else { y })
        })
        .collect()
}

/// Aggregates ksqlDB can undo, so they work on table sources.
pub(super) const UNDOABLE: [&str; 9] = [
    "ATTR",
    "SUM_LIST",
    "COUNT",
    "SUM",
    "AVG",
    "COLLECT_LIST",
    "HISTOGRAM",
    "STDDEV_SAMP",
    "CORRELATION",
];

/// A post-aggregation projection whose outputs are all plain columns of
/// the aggregate row (group columns, aggregates, window bounds), read from
/// the key and the accumulator without building that row.
pub(super) struct DirectPost {
    pub(super) cols: Vec<PostCol>,
    /// The outputs are exactly every aggregate's result in call order.
    pub(super) results_only: bool,
}

#[derive(Clone, Copy)]
pub(super) enum PostCol {
    Group(usize),
    Agg(usize),
    WindowStart,
    WindowEnd,
}

impl DirectPost {
    /// `None` when some output is computed: the general path applies.
    pub(super) fn new(exprs: &[Compiled], ngroups: usize, ncalls: usize) -> Option<Self> {
        exprs
            .iter()
            .map(|e| match e {
                Compiled::Column(i) if *i < ngroups => Some(PostCol::Group(*i)),
                Compiled::Column(i) if *i < ngroups + ncalls => Some(PostCol::Agg(*i - ngroups)),
                Compiled::Column(i) if *i == ngroups + ncalls => Some(PostCol::WindowStart),
                Compiled::Column(i) if *i == ngroups + ncalls + 1 => Some(PostCol::WindowEnd),
                _ => None,
            })
            .collect::<Option<Vec<_>>>()
            .map(|cols| DirectPost {
                results_only: cols.len() == ncalls
                    && cols
                        .iter()
                        .enumerate()
                        .all(|(i, c)| matches!(c, PostCol::Agg(j) if *j == i)),
                cols,
            })
    }

    /// Whether the output row is the accumulator row unchanged: exactly
    /// every aggregate's result in call order, each result being its
    /// accumulator.
    pub(super) fn is_identity(&self, calls: &[AggCall]) -> bool {
        self.results_only && calls.iter().all(|c| c.agg.result_is_acc())
    }

    /// [`apply`](Self::apply) taking the accumulators: when the output is
    /// exactly every aggregate's result in call order (the usual CTAS,
    /// whose group columns go to the key), the results replace the
    /// accumulators in their own row.
    pub(super) fn apply_owned(
        &self,
        key: &Row,
        w: Option<Window>,
        mut acc: Row,
        calls: &[AggCall],
    ) -> Row {
        if self.results_only && acc.len() == calls.len() {
            for (c, slot) in calls.iter().zip(acc.iter_mut()) {
                let r = c.agg.result(slot);
                slot.set(r);
            }
            return acc;
        }
        let out = self.apply(key, w, &acc, calls);
        crate::types::discard_row(acc);
        out
    }

    pub(super) fn apply(&self, key: &Row, w: Option<Window>, acc: &Row, calls: &[AggCall]) -> Row {
        self.cols
            .iter()
            .map(|c| match *c {
                PostCol::Group(i) => key.get(i).cloned().unwrap_or(Value::Null),
                PostCol::Agg(j) => match (calls.get(j), acc.get(j)) {
                    (Some(call), Some(a)) => call.agg.result(a),
                    _ => Value::Null,
                },
                PostCol::WindowStart => w.map_or(Value::Null, |w| Value::BigInt(w.start)),
                PostCol::WindowEnd => w.map_or(Value::Null, |w| Value::BigInt(w.end)),
            })
            .collect()
    }
}

pub(super) type AggTable = KTable<Windowed<Row>, Row>;

pub(super) fn window_aggregate(
    grouped: runnel_streams::KGroupedStream<Row, Row>,
    w: &WindowSpec,
    emit_final: bool,
    c1: Arc<Vec<AggCall>>,
    c2: Arc<Vec<AggCall>>,
    store: &str,
) -> Result<(AggTable, WindowType), SqlError> {
    let grace = w.grace.map_or(DEFAULT_GRACE_MS, |g| g.millis);
    match &w.kind {
        WindowKind::Tumbling { size } | WindowKind::Hopping { size, .. } => {
            if size.millis <= 0 {
                return Err(err(size.pos, "window size must be positive"));
            }
            let mut tw = TimeWindows::of(ms(size.millis)).grace(ms(grace));
            if let WindowKind::Hopping { advance, .. } = &w.kind {
                if advance.millis <= 0 || advance.millis > size.millis {
                    return Err(err(
                        advance.pos,
                        "ADVANCE BY must be positive and at most the window SIZE",
                    ));
                }
                tw = tw.advance_by(ms(advance.millis));
            }
            let mut ws = grouped.windowed_by(tw);
            if let Some(r) = &w.retention {
                if r.millis < size.millis + grace {
                    return Err(err(
                        r.pos,
                        format!(
                            "RETENTION must be at least the window size plus the grace period ({} ms)",
                            size.millis + grace
                        ),
                    ));
                }
                ws = ws.retention(ms(r.millis));
            }
            if emit_final {
                ws = ws.emit_final();
            }
            let t = ws.aggregate(
                move || agg_init(&c1),
                move |_, v: Row, acc: Row| agg_add(&c2, v, acc),
                InternalSerde,
                store,
            );
            Ok((
                t,
                WindowType::Time {
                    size_ms: size.millis,
                },
            ))
        }
        WindowKind::Session { gap } => {
            if gap.millis <= 0 {
                return Err(err(gap.pos, "session gap must be positive"));
            }
            let sw = SessionWindows::with_inactivity_gap(ms(gap.millis)).grace(ms(grace));
            let mut ws = grouped.windowed_by_session(sw);
            if emit_final {
                ws = ws.emit_final();
            }
            let c3 = c1.clone();
            let t = ws.aggregate(
                move || agg_init(&c1),
                move |_, v: Row, acc: Row| agg_add(&c2, v, acc),
                move |_, a: Row, b: Row| agg_merge(&c3, a, b),
                InternalSerde,
                store,
            );
            Ok((t, WindowType::Session))
        }
    }
}

impl<'a> Planner<'a> {
    pub(super) fn select_has_aggregate(&self, items: &[SelectItem]) -> bool {
        items.iter().any(|i| match i {
            SelectItem::Expr { expr, .. } => self.has_aggregate(expr),
            SelectItem::Star { .. } => false,
        })
    }

    pub(super) fn has_aggregate(&self, e: &Expr) -> bool {
        if let ExprKind::Function { name, .. } = &e.kind {
            if self.functions.aggregate(&name.name).is_some() {
                return true;
            }
        }
        let mut found = false;
        let mut e = e.clone();
        for_each_child(&mut e, &mut |c| found |= self.has_aggregate(c));
        found
    }

    /// The aggregate calls in `e` as ksqlDB shows them (`COUNT(*)` as
    /// `COUNT(ROWTIME)`), outermost first.
    /// A WINDOWSTART or WINDOWEND that a windowed aggregation reads
    /// before its windows exist: in an aggregate's arguments, GROUP BY or
    /// HAVING (only the SELECT list sees the windows' bounds).
    fn window_bound_outside_select(&self, q: &Query, select: &[SelectItem]) -> Option<Ident> {
        fn agg_args(p: &Planner<'_>, e: &Expr, out: &mut Vec<Ident>) {
            if let ExprKind::Function { name, args, .. } = &e.kind {
                if p.functions.aggregate(&name.name).is_some() {
                    for a in args {
                        super::columns_named(a, out);
                    }
                    return;
                }
            }
            let mut e = e.clone();
            super::for_each_child(&mut e, &mut |c| agg_args(p, c, out));
        }
        let mut named = Vec::new();
        for item in select {
            if let SelectItem::Expr { expr, .. } = item {
                agg_args(self, expr, &mut named);
            }
        }
        for g in &q.group_by {
            super::columns_named(g, &mut named);
        }
        if let Some(h) = &q.having {
            super::columns_named(h, &mut named);
        }
        named
            .into_iter()
            .find(|n| n.name == crate::schema::WINDOWSTART || n.name == crate::schema::WINDOWEND)
    }

    fn aggregate_calls(&self, e: &Expr, out: &mut Vec<String>) {
        if let ExprKind::Function { name, star, .. } = &e.kind {
            if self.functions.aggregate(&name.name).is_some() {
                out.push(if *star {
                    format!("{}(ROWTIME)", name.name.to_ascii_uppercase())
                } else {
                    e.to_string()
                });
                return;
            }
        }
        let mut e = e.clone();
        for_each_child(&mut e, &mut |c| self.aggregate_calls(c, out));
    }

    /// GROUP BY, windows, aggregates and HAVING.
    pub(super) fn aggregate(
        &mut self,
        q: &Query,
        rel: Rel,
        sink_name: &str,
        sink: Sink,
    ) -> Result<Planned, SqlError> {
        let scope = rel.scope();
        // `*` stands for the source's columns (pseudo columns aside).
        let select: Vec<SelectItem> = q
            .select
            .iter()
            .flat_map(|item| match item {
                SelectItem::Star {
                    qualifier: None,
                    pos,
                } => scope
                    .columns
                    .iter()
                    .filter(|c| !rel.pseudo.contains(&c.index))
                    .map(|c| SelectItem::Expr {
                        expr: Expr {
                            kind: ExprKind::Column {
                                qualifier: None,
                                name: Ident {
                                    name: c.name.clone(),
                                    pos: *pos,
                                },
                            },
                            pos: *pos,
                        },
                        alias: None,
                    })
                    .collect(),
                other => vec![other.clone()],
            })
            .collect();
        if q.group_by.is_empty() {
            let mut loose = Vec::new();
            let mut aggs = Vec::new();
            for item in &select {
                if let SelectItem::Expr { expr, .. } = item {
                    let before = aggs.len();
                    self.aggregate_calls(expr, &mut aggs);
                    if aggs.len() == before {
                        loose.push(expr.to_string());
                    }
                }
            }
            if !loose.is_empty() {
                return Err(err(q.pos, not_grouped("SELECT expression(s)", &loose)));
            }
            let statement = match sink {
                Sink::Topic { .. } => "CREATE TABLE AS SELECT",
                _ => "SELECT",
            };
            return Err(err(
                q.pos,
                format!(
                    "{statement} statement does not support aggregate function [{}] without a GROUP BY clause.",
                    aggs.join(", ")
                ),
            ));
        }
        if q.window.is_some() && rel.window.is_none() {
            if let Some(b) = self.window_bound_outside_select(q, &select) {
                return Err(err(
                    b.pos,
                    format!(
                        "Window bounds column {} can only be used in the SELECT clause of windowed aggregations",
                        b.name
                    ),
                ));
            }
        }
        // Without a window, a window bound selected under its own name is
        // refused before GROUP BY is resolved, as ksqlDB checks the
        // projection first.
        if q.window.is_none() {
            for item in &select {
                if let SelectItem::Expr {
                    expr:
                        Expr {
                            kind: ExprKind::Column { name, .. },
                            ..
                        },
                    alias: None,
                } = item
                {
                    if name.name == crate::schema::WINDOWSTART
                        || name.name == crate::schema::WINDOWEND
                    {
                        return Err(err(
                            name.pos,
                            format!(
                                "Reserved column name in select: `{}`. Please remove or alias the column.",
                                name.name
                            ),
                        ));
                    }
                }
            }
        }
        // Group expressions.
        let mut group_texts = Vec::new();
        let mut group_exprs = Vec::new();
        let mut group_types = Vec::new();
        for g in &q.group_by {
            let mut aggs = Vec::new();
            self.aggregate_calls(g, &mut aggs);
            if let Some(first) = aggs.first() {
                let name = first.split('(').next().unwrap_or_default();
                return Err(err(
                    g.pos,
                    format!(
                        "GROUP BY does not support aggregate functions: {name} is an aggregate function."
                    ),
                ));
            }
            let (c, t) = self.binder(scope.clone().in_clause("GROUP BY")).bind(g)?;
            let text = canon(g, &scope);
            if group_texts.contains(&text) {
                return Err(err(
                    g.pos,
                    format!(
                        "Duplicate GROUP BY expression: {}",
                        super::qualified(g, &scope)
                    ),
                ));
            }
            group_texts.push(text);
            group_exprs.push(c);
            group_types.push(t.unwrap_or(SqlType::String));
        }
        // Rewrite select and having: groups → __G<i>, aggregates → __A<j>.
        let mut calls: Vec<(String, Expr)> = Vec::new();
        let mut rewritten = Vec::new();
        for item in &select {
            match item {
                SelectItem::Star { pos, .. } => {
                    return Err(err(
                        *pos,
                        "SELECT * cannot be used with GROUP BY; list the columns",
                    ))
                }
                SelectItem::Expr { expr, alias } => {
                    let r = self.rewrite_agg(expr, &scope, &group_texts, &mut calls)?;
                    rewritten.push((r, alias.clone(), expr.clone()));
                }
            }
        }
        let having = match &q.having {
            Some(h) => Some(self.rewrite_agg(h, &scope, &group_texts, &mut calls)?),
            None => None,
        };
        // How the user wrote what the rewrite named __G<i> and __A<j>, for
        // HAVING's errors.
        let written: Vec<(String, String)> = (q.group_by.iter().enumerate())
            .map(|(i, g)| (format!("__G{i}"), g.to_string()))
            .chain(
                calls
                    .iter()
                    .enumerate()
                    .map(|(j, (_, e))| (format!("__A{j}"), e.to_string())),
            )
            .collect();
        // Bind the aggregate calls.
        let mut agg_calls = Vec::new();
        let mut agg_types = Vec::new();
        for (_, call) in &calls {
            let ExprKind::Function {
                name, args, star, ..
            } = &call.kind
            else {
                continue;
            };
            let Some(f) = self.functions.aggregate(&name.name) else {
                continue;
            };
            if matches!(rel.flow, Flow::Table(_))
                && !UNDOABLE.contains(&name.name.to_ascii_uppercase().as_str())
            {
                // ksqlDB names every such function of the query.
                let mut names: Vec<String> = Vec::new();
                for (_, c) in &calls {
                    if let ExprKind::Function { name: n, .. } = &c.kind {
                        let upper = n.name.to_ascii_uppercase();
                        if self.functions.aggregate(&upper).is_some()
                            && !UNDOABLE.contains(&upper.as_str())
                            && !names.contains(&upper)
                        {
                            names.push(upper);
                        }
                    }
                }
                let list = match names.split_last() {
                    Some((last, init)) if !init.is_empty() => {
                        format!("s {} and {last}", init.join(", "))
                    }
                    _ => format!(" {}", names.join("")),
                };
                return Err(err(
                    name.pos,
                    format!(
                        "The aggregation function{list} cannot be applied to a table source, only to a stream source."
                    ),
                ));
            }
            let nparams = f.literal_params(args.len());
            let ncols = args.len().saturating_sub(nparams);
            let mut compiled = Vec::new();
            let mut types = Vec::new();
            for a in &args[..ncols] {
                if self.has_aggregate(a) {
                    return Err(err(
                        a.pos,
                        format!("Aggregate functions can not be nested: {call}"),
                    ));
                }
                let (c, t) = self.binder(scope.clone().in_clause("SELECT")).bind(a)?;
                compiled.push(c);
                types.push(t);
            }
            let mut params = Vec::new();
            for (i, a) in args.iter().enumerate().skip(ncols) {
                match self.binder(Scope::default()).bind(a) {
                    Ok((Compiled::Const(v), _)) => params.push(v),
                    _ => {
                        return Err(err(
                            a.pos,
                            format!(
                                "Parameter {} passed to function {} must be a literal constant, but was expression: '{a}'",
                                i + 1,
                                name.name.to_ascii_uppercase()
                            ),
                        ))
                    }
                }
            }
            let _ = star;
            // ksqlDB keeps an aggregate's state in the source's value
            // format: one that cannot write a struct, list or map cannot
            // keep AVG, TOPK, ….
            if let (Some(state), Some(from)) = (
                f.intermediate().sql_type(),
                self.catalog.source(&q.from.name.name),
            ) {
                if from
                    .value_format
                    .get()
                    .check(&[Column::new("STATE", state)], "value")
                    .is_err()
                {
                    return Err(err(
                        name.pos,
                        "One of the functions used in the statement has an intermediate type that the value format can not handle. Please remove the function or change the format.",
                    ));
                }
            }
            let agg = f
                .bind(&types, &params, FunctionSettings::new(&self.settings))
                .map_err(|e| err(name.pos, e.to_string()))?;
            agg_types.push(agg.return_type());
            agg_calls.push(AggCall {
                agg: Arc::from(agg),
                args: compiled,
            });
        }
        let calls_arc = Arc::new(agg_calls);
        // The post-aggregation scope.
        let windowed = q.window.is_some();
        let mut post_cols = Vec::new();
        for (i, t) in group_types.iter().enumerate() {
            post_cols.push(ScopeColumn {
                qualifier: None,
                name: format!("__G{i}"),
                ty: t.clone(),
                index: post_cols.len(),
            });
        }
        for (j, t) in agg_types.iter().enumerate() {
            post_cols.push(ScopeColumn {
                qualifier: None,
                name: format!("__A{j}"),
                ty: t.clone(),
                index: post_cols.len(),
            });
        }
        if windowed {
            for n in [crate::schema::WINDOWSTART, crate::schema::WINDOWEND] {
                post_cols.push(ScopeColumn {
                    qualifier: None,
                    name: n.to_string(),
                    ty: SqlType::BigInt,
                    index: post_cols.len(),
                });
            }
        }
        let post_scope = Scope::new(post_cols);
        // ksqlDB's order: an unknown function first, then every select
        // expression that is neither grouped nor aggregated, in one message.
        for (_, _, orig) in &rewritten {
            if let Some(name) = first_unknown_function(orig, self.functions) {
                return Err(err(
                    name.pos,
                    format!("Can't find any functions with the name '{}'", name.name),
                ));
            }
        }
        if calls.is_empty() {
            return Err(err(
                q.group_by[0].pos,
                "GROUP BY requires aggregate functions in either the SELECT or HAVING clause.",
            ));
        }
        let loose: Vec<&Expr> = rewritten
            .iter()
            .filter(|(r, _, _)| {
                let mut named = Vec::new();
                columns_named(r, &mut named);
                named
                    .iter()
                    .any(|n| !post_scope.columns.iter().any(|c| c.name == n.name))
            })
            .map(|(_, _, orig)| orig)
            .collect();
        if let Some(first) = loose.first() {
            let shown: Vec<String> = loose.iter().map(|e| e.to_string()).collect();
            return Err(err(first.pos, not_grouped("SELECT expression(s)", &shown)));
        }
        if let (Some(h), Some(orig)) = (&having, &q.having) {
            let mut named = Vec::new();
            columns_named(h, &mut named);
            let mut shown: Vec<String> = Vec::new();
            for n in named {
                if !post_scope.columns.iter().any(|c| c.name == n.name) && !shown.contains(&n.name)
                {
                    shown.push(n.name);
                }
            }
            if !shown.is_empty() {
                return Err(err(orig.pos, not_grouped("HAVING expression", &shown)));
            }
        }
        let mut keys: Vec<Option<(String, SqlType)>> = vec![None; group_types.len()];
        let mut values = Vec::new();
        let mut names = HashSet::new();
        for (i, (r, alias, orig)) in rewritten.iter().enumerate() {
            let (c, t) = self.bind_post(&post_scope, r, orig)?;
            let name = match (alias, &orig.kind) {
                (Some(a), _) => a.name.clone(),
                (None, ExprKind::Column { name, .. }) => name.name.clone(),
                (None, ExprKind::Deref { field, .. }) => field.name.clone(),
                _ => format!("KSQL_COL_{i}"),
            };
            super::project::check_reserved(
                &name,
                orig,
                matches!(sink, Sink::Topic { .. }),
                orig.pos,
            )?;
            let ty = t.unwrap_or(SqlType::String);
            if !names.insert(name.clone()) {
                return Err(err(
                    orig.pos,
                    format!("Duplicate value columns found in schema: `{name}` {ty}"),
                ));
            }
            if let Compiled::Column(slot) = c {
                if slot < group_types.len() {
                    match &keys[slot] {
                        None => {
                            keys[slot] = Some((name, ty));
                            continue;
                        }
                        Some((first, _)) if matches!(sink, Sink::Topic { .. }) => {
                            return Err(err(
                                orig.pos,
                                format!(
                                    "The projection contains a key column more than once: `{first}` and `{name}`."
                                ),
                            ));
                        }
                        Some(_) => {}
                    }
                }
            }
            values.push(OutCol { name, ty, expr: c });
        }
        let missing: Vec<usize> = (0..keys.len()).filter(|i| keys[*i].is_none()).collect();
        if let (Some(first), Sink::Topic { .. }) = (missing.first(), &sink) {
            let shown: Vec<String> = missing.iter().map(|i| q.group_by[*i].to_string()).collect();
            return Err(err(
                q.group_by[*first].pos,
                keys_missing(sink_name, "grouping expression", &shown, true, false),
            ));
        }
        let out_keys: Vec<(String, SqlType)> = keys
            .into_iter()
            .enumerate()
            .map(|(i, k)| k.unwrap_or_else(|| (format!("KSQL_COL_{i}"), group_types[i].clone())))
            .collect();
        let having = match having {
            Some(h) => Some(Arc::new(
                self.binder(post_scope.clone().in_clause("HAVING"))
                    .bind_condition(&h, "HAVING")
                    .map_err(|mut e| {
                        e.message = as_written(&e.message, &written);
                        e
                    })?,
            )),
            None => None,
        };
        if values.is_empty() && matches!(sink, Sink::Topic { .. }) {
            return Err(SqlError::new("The projection contains no value columns."));
        }
        let proj = Projection {
            keys: out_keys,
            values,
        };
        let schema = proj.schema();
        let exprs = proj.compiled();
        // Key serde of the grouped table: the sink's key format when it can
        // carry the key (so pull queries and sinks agree), else internal.
        let key_serde: Arc<dyn Serde<Row>> = match &sink {
            Sink::Topic {
                key_format,
                topic,
                key_schema_id,
                key_protobuf_nullable,
                key_delimiter,
                ..
            } if key_format.check(&schema.key, "key").is_ok() && *key_format != Format::NONE => {
                Arc::new(RowSerde::with_spec(
                    *key_format,
                    crate::format::CodecSpec {
                        topic: Some(topic),
                        is_key: true,
                        schema_id: *key_schema_id,
                        protobuf_nullable: *key_protobuf_nullable,
                        delimiter: *key_delimiter,
                        ..crate::format::CodecSpec::new(&schema.key, false)
                    },
                ))
            }
            _ => Arc::new(InternalKeySerde),
        };
        let store = self.name("Aggregate-Materialize");
        // Grouping by exactly the current key needs no repartition (as in
        // ksqlDB): the stream's own key and serde are the group's.
        let by_key = rel.window.is_none()
            && group_exprs.len() == rel.keys.len()
            && group_exprs
                .iter()
                .zip(&rel.keys)
                .all(|(c, k)| matches!(c, Compiled::Column(slot) if k.slots.contains(slot)));
        let key_serde = if by_key {
            rel.key_serde.clone()
        } else {
            key_serde
        };
        let g = Arc::new(group_exprs);
        let group_exprs_for_tables = g.clone();
        let ngroups = group_types.len();
        self.post_groups = ngroups;
        let post = move |k: &Row, w: Option<Window>, acc: &Row, calls: &[AggCall]| -> Row {
            let mut row = Vec::with_capacity(ngroups + calls.len() + 2);
            row.extend(k.iter().cloned());
            if row.len() < ngroups {
                row.resize(ngroups, Value::Null);
            }
            for (c, a) in calls.iter().zip(acc) {
                row.push(c.agg.result(a));
            }
            if let Some(w) = w {
                row.push(Value::BigInt(w.start));
                row.push(Value::BigInt(w.end));
            }
            row
        };
        let post = Arc::new(post);
        let sources = self.sources.clone();
        let emit_final = q.emit == Some(Emit::Final);
        let (c1, c2) = (calls_arc.clone(), calls_arc.clone());
        let ks = key_serde.clone();
        // ksqlDB drops a row whose GROUP BY values include a NULL.
        let group_stream = move |s: KStream<Row, Row>| {
            if by_key {
                s.filter(|k: &Row, _| no_nulls(k))
                    .with_serdes(ks, InternalSerde)
                    .group_by_key()
            } else {
                let g2 = g.clone();
                s.filter(move |_, v: &Row| groups_not_null(&g2, v))
                    .group_by(move |_, v: &Row| eval_all(&g, v), ks)
            }
        };
        let (post_fn, window) = match (rel.flow, &q.window) {
            (Flow::Stream(s), None) => {
                if emit_final {
                    return Err(err(
                        q.pos,
                        "EMIT FINAL is only supported for windowed aggregations.",
                    ));
                }
                let table = group_stream(s).aggregate(
                    move || agg_init(&c1),
                    move |_, v: Row, acc: Row| agg_add(&c2, v, acc),
                    InternalSerde,
                    &store,
                );
                let f = self.finish_agg(
                    table, &post, &calls_arc, having, &exprs, &schema, None, sink,
                )?;
                (f, None)
            }
            (Flow::Table(t), None) => {
                let c3 = calls_arc.clone();
                let groups = group_exprs_for_tables;
                let g2 = groups.clone();
                let table = t
                    .filter(move |_, v: &Row| groups_not_null(&g2, v))
                    .group_by(
                        move |_, v: &Row| (eval_all(&groups, v), v.clone()),
                        key_serde.clone(),
                        InternalSerde,
                    )
                    .aggregate(
                        move || agg_init(&c1),
                        move |_, v: Row, acc: Row| agg_add(&c2, v, acc),
                        move |_, v: Row, acc: Row| agg_undo(&c3, v, acc),
                        InternalSerde,
                        &store,
                    );
                let f = self.finish_agg(
                    table, &post, &calls_arc, having, &exprs, &schema, None, sink,
                )?;
                (f, None)
            }
            (Flow::Table(_), Some(w)) => {
                return Err(err(
                    w.pos,
                    "WINDOW cannot be used on a table source; aggregate a stream",
                ))
            }
            (Flow::Stream(s), Some(w)) => {
                let (table, wt) = window_aggregate(group_stream(s), w, emit_final, c1, c2, &store)?;
                let f = self.finish_agg(
                    table,
                    &post,
                    &calls_arc,
                    having,
                    &exprs,
                    &schema,
                    Some(wt),
                    sink,
                )?;
                (f, Some(wt))
            }
        };
        Ok(Planned {
            kind: SourceKind::Table,
            schema,
            window,
            sources,
            materialization: Some(Materialization {
                store,
                window,
                key_serde,
                value_serde: Arc::new(InternalSerde),
                post: post_fn,
            }),
        })
    }

    /// Binds a rewritten select expression against the post-aggregation
    /// scope; a column left over was neither grouped nor aggregated.
    pub(super) fn bind_post(
        &self,
        post: &Scope,
        r: &Expr,
        orig: &Expr,
    ) -> Result<(Compiled, Option<SqlType>), SqlError> {
        let mut named = Vec::new();
        columns_named(r, &mut named);
        for n in named {
            if !post.columns.iter().any(|c| c.name == n.name) {
                return Err(err(
                    n.pos,
                    not_grouped("SELECT expression(s)", &[orig.to_string()]),
                ));
            }
        }
        self.binder(post.clone()).bind(r)
    }

    pub(super) fn rewrite_agg(
        &self,
        e: &Expr,
        scope: &Scope,
        groups: &[String],
        calls: &mut Vec<(String, Expr)>,
    ) -> Result<Expr, SqlError> {
        let text = canon(e, scope);
        if let Some(i) = groups.iter().position(|g| *g == text) {
            return Ok(column_ref(&format!("__G{i}"), e.pos));
        }
        if let ExprKind::Function { name, .. } = &e.kind {
            if self.functions.aggregate(&name.name).is_some() {
                let j = match calls.iter().position(|(t, _)| *t == text) {
                    Some(j) => j,
                    None => {
                        calls.push((text, e.clone()));
                        calls.len() - 1
                    }
                };
                return Ok(column_ref(&format!("__A{j}"), e.pos));
            }
        }
        let mut out = e.clone();
        let mut failure = None;
        for_each_child(&mut out, &mut |c| {
            if failure.is_some() {
                return;
            }
            match self.rewrite_agg(c, scope, groups, calls) {
                Ok(r) => *c = r,
                Err(e) => failure = Some(e),
            }
        });
        match failure {
            Some(e) => Err(e),
            None => Ok(out),
        }
    }

    /// HAVING, projection and sink of an aggregated table; returns the
    /// function pull queries apply to stored aggregates.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn finish_agg<K: KeyRow>(
        &mut self,
        table: KTable<K, Row>,
        post: &Arc<impl Fn(&Row, Option<Window>, &Row, &[AggCall]) -> Row + Send + Sync + 'static>,
        calls: &Arc<Vec<AggCall>>,
        having: Option<Arc<Compiled>>,
        exprs: &Arc<Vec<Compiled>>,
        schema: &Schema,
        window: Option<WindowType>,
        sink: Sink,
    ) -> Result<PostFn, SqlError> {
        let (p1, c1) = (post.clone(), calls.clone());
        let e1 = exprs.clone();
        let out = match &having {
            Some(h) => {
                let h = h.clone();
                table
                    .map_values(move |k: &K, acc: &Row| p1(k.row(), k.window(), acc, &c1))
                    .filter(move |_, v: &Row| h.test(v))
                    .map_values(move |_, v: &Row| eval_all(&e1, v))
            }
            // Without HAVING, the aggregate row and the projection are one
            // step; when every output is a group column, an aggregate or a
            // window bound, it is read straight from key and accumulator.
            None => match DirectPost::new(&e1, self.post_groups, c1.len()) {
                // The outputs are the accumulators as they are: no step.
                Some(direct) if direct.is_identity(&c1) => table,
                Some(direct) => table.map_values_owned(move |k: &K, acc: Row| {
                    direct.apply_owned(k.row(), k.window(), acc, &c1)
                }),
                None => {
                    let owned = OwnedProjection::new(&e1);
                    table.map_values(move |k: &K, acc: &Row| {
                        owned.apply(p1(k.row(), k.window(), acc, &c1))
                    })
                }
            },
        };
        let times = self.sink_time(schema)?;
        self.write_table(out, schema, window, sink, times)?;
        let (p2, c2, e2) = (post.clone(), calls.clone(), exprs.clone());
        let nkeys = schema.key.len();
        let f: PostFn = Arc::new(move |k: &Row, w: Option<Window>, acc: &Row| {
            let row = p2(k, w, acc, &c2);
            if let Some(h) = &having {
                if !h.test(&row) {
                    return None;
                }
            }
            let mut out: Row = k.iter().take(nkeys).cloned().collect();
            if let Some(w) = w {
                out.push(Value::BigInt(w.start));
                out.push(Value::BigInt(w.end));
            }
            out.extend(eval_all(&e2, &row));
            Some(out)
        });
        Ok(f)
    }
}

/// ksqlDB's refusal of expressions neither grouped nor aggregated.
fn not_grouped(what: &str, shown: &[String]) -> String {
    format!(
        "Non-aggregate {what} not part of GROUP BY: {}\nEither add the column(s) to the GROUP BY or remove them from the SELECT.",
        shown.join(", ")
    )
}

/// The first function `e` calls that is neither a scalar, an aggregate
/// nor a table function.
fn first_unknown_function(
    e: &Expr,
    functions: &crate::functions::FunctionRegistry,
) -> Option<crate::ast::Ident> {
    if let ExprKind::Function { name, .. } = &e.kind {
        let upper = name.name.to_ascii_uppercase();
        let n = upper.as_str();
        if functions.scalar(n).is_none()
            && functions.aggregate(n).is_none()
            && functions.table(n).is_none()
            && !BUILT_INS.contains(&n)
        {
            return Some(name.clone());
        }
    }
    let mut found = None;
    let mut copy = e.clone();
    for_each_child(&mut copy, &mut |c| {
        if found.is_none() {
            found = first_unknown_function(c, functions);
        }
    });
    found
}

/// Functions the binder knows without the registry (lambdas, special forms).
const BUILT_INS: &[&str] = &[
    "TRANSFORM",
    "FILTER",
    "REDUCE",
    "DATEADD",
    "DATESUB",
    "TIMEADD",
    "TIMESUB",
    "TIMESTAMPADD",
    "TIMESTAMPSUB",
];

/// `message` with the rewrite's names (`__G0`, `__A1`) replaced by the
/// expressions they stand for, longest names first (`__A10` before `__A1`).
fn as_written(message: &str, written: &[(String, String)]) -> String {
    let mut names: Vec<&(String, String)> = written.iter().collect();
    names.sort_by_key(|(n, _)| std::cmp::Reverse(n.len()));
    names.into_iter().fold(message.to_string(), |m, (n, text)| {
        m.replace(n.as_str(), text)
    })
}

/// Whether a row's GROUP BY values are all non-NULL (ksqlDB drops the
/// others: "Group-by column with index N resolved to null").
fn groups_not_null(groups: &[Compiled], row: &Row) -> bool {
    groups.iter().all(|e| !e.eval(row).is_null())
}

fn no_nulls(row: &Row) -> bool {
    row.iter().all(|v| !v.is_null())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(x: &str) -> Value {
        Value::String(x.to_string())
    }

    fn agg_call(name: &str, args: &[SqlType]) -> AggCall {
        let registry = FunctionRegistry::builtin();
        let types: Vec<Option<SqlType>> = args.iter().cloned().map(Some).collect();
        let f = registry.aggregate(name).expect("a built-in aggregate");
        AggCall {
            agg: Arc::from(
                f.bind(&types, &[], FunctionSettings::default())
                    .expect("valid arguments"),
            ),
            args: (0..args.len()).map(Compiled::Column).collect(),
        }
    }

    #[test]
    fn aggregate_results_replace_their_accumulators_in_place() {
        let calls = Arc::new(vec![
            agg_call("COUNT", &[]),
            agg_call("AVG", &[SqlType::BigInt]),
        ]);
        let folded = |xs: &[i64]| {
            xs.iter().fold(agg_init(&calls), |acc, x| {
                agg_add(&calls, vec![Value::BigInt(*x)], acc)
            })
        };
        let key = vec![s("k")];
        // One group column; outputs [COUNT(*), AVG(x)]: the key carries
        // the group, the results replace the accumulators.
        let direct = DirectPost::new(&[Compiled::Column(1), Compiled::Column(2)], 1, 2)
            .expect("plain columns");
        assert!(direct.results_only);
        // AVG's result is computed from its accumulator: a step remains.
        assert!(!direct.is_identity(&calls));
        let acc = folded(&[4, 8]);
        let buffer = acc.as_ptr();
        let out = direct.apply_owned(&key, None, acc, &calls);
        assert_eq!(out, vec![Value::BigInt(2), Value::Double(6.0)]);
        assert_eq!(out.as_ptr(), buffer, "the accumulator row is reused");

        // Outputs [group, AVG(x), COUNT(*)]: built from key and accumulators.
        let direct = DirectPost::new(
            &[
                Compiled::Column(0),
                Compiled::Column(2),
                Compiled::Column(1),
            ],
            1,
            2,
        )
        .expect("plain columns");
        assert!(!direct.results_only);
        assert_eq!(
            direct.apply_owned(&key, None, folded(&[3]), &calls),
            vec![s("k"), Value::Double(3.0), Value::BigInt(1)]
        );
    }

    #[test]
    fn results_that_are_their_accumulators_need_no_step() {
        let calls = Arc::new(vec![
            agg_call("COUNT", &[]),
            agg_call("SUM", &[SqlType::BigInt]),
            agg_call("MAX", &[SqlType::BigInt]),
        ]);
        let all = [
            Compiled::Column(1),
            Compiled::Column(2),
            Compiled::Column(3),
        ];
        let direct = DirectPost::new(&all, 1, 3).expect("plain columns");
        assert!(direct.is_identity(&calls));
        // The accumulator row is then the output as it is.
        let acc = [5, 9].iter().fold(agg_init(&calls), |acc, x| {
            agg_add(&calls, vec![Value::BigInt(*x)], acc)
        });
        assert_eq!(
            acc,
            vec![Value::BigInt(2), Value::BigInt(14), Value::BigInt(9)]
        );
        assert_eq!(
            direct.apply_owned(&vec![s("k")], None, acc.clone(), &calls),
            acc
        );
        // Reordered outputs, or a group column among them, are not.
        let reordered = [
            Compiled::Column(2),
            Compiled::Column(1),
            Compiled::Column(3),
        ];
        assert!(!DirectPost::new(&reordered, 1, 3)
            .expect("plain columns")
            .is_identity(&calls));
        let with_group = [Compiled::Column(0), Compiled::Column(1)];
        assert!(!DirectPost::new(&with_group, 1, 1)
            .expect("plain columns")
            .is_identity(&calls[..1]));
    }
}
