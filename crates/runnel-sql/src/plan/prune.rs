//! Pruning: which columns a query reads, so that what it does not read
//! is not built (not decoded, not copied into joined rows).

use super::*;

/// The column names a single-source query reads from its full rows, or
/// `None` when it may read every column (joins, `*`). A bare column in the
/// select list is not a read: a key column there is served from the record
/// key, a value column is named anyway. GROUP BY on bare columns only reads
/// them when it is not exactly a grouping by the key (which the planner
/// decides later), so its columns count as read.
pub(super) fn reads_of(q: &Query, key: &[String]) -> Option<HashSet<String>> {
    if !q.joins.is_empty() || !q.partition_by.is_empty() {
        return None;
    }
    let mut names: Vec<Ident> = Vec::new();
    let mut bare: Vec<&Ident> = Vec::new();
    for item in &q.select {
        match item {
            SelectItem::Star { .. } => return None,
            SelectItem::Expr { expr, .. } => match &expr.kind {
                ExprKind::Column { name, .. } => bare.push(name),
                _ => columns_named(expr, &mut names),
            },
        }
    }
    // A column projected twice is read from the row the second time.
    for (i, b) in bare.iter().enumerate() {
        if bare[..i].iter().any(|x| x.name == b.name) {
            names.push((*b).clone());
        }
    }
    let by_key = q.group_by.len() == key.len()
        && q.group_by
            .iter()
            .zip(key)
            .all(|(g, k)| matches!(&g.kind, ExprKind::Column { name, .. } if name.name == *k));
    let groups = if by_key { &[][..] } else { &q.group_by[..] };
    for e in q.where_.iter().chain(q.having.iter()).chain(groups.iter()) {
        columns_named(e, &mut names);
    }
    Some(names.into_iter().map(|i| i.name).collect())
}

/// A column reference of a query (see [`col_refs_of`]).
pub(super) struct ColRef {
    pub(super) qualifier: Option<String>,
    pub(super) name: String,
    /// In select item number `i`.
    pub(super) select_item: Option<usize>,
    /// In the ON condition of join number `i`.
    pub(super) join_on: Option<usize>,
    /// The select item the projection takes from a single join's key
    /// rather than from joined rows: a bare column that is a side of the
    /// join's equality, and the first item naming any column of it.
    pub(super) join_key_item: bool,
}

impl ColRef {
    /// Whether this reference may name `c` (no qualifier: any source's).
    pub(super) fn names(&self, c: &ScopeColumn) -> bool {
        self.name == c.name
            && self
                .qualifier
                .as_ref()
                .is_none_or(|q| c.qualifier.as_ref() == Some(q))
    }
}

/// Every column reference of a query, with qualifiers (`None` when it
/// selects `*`).
pub(super) fn col_refs_of(q: &Query) -> Option<Vec<ColRef>> {
    let mut out = Vec::new();
    let push = |e: &Expr, select_item, join_on, out: &mut Vec<ColRef>| {
        let (mut names, mut quals) = (Vec::new(), Vec::new());
        collect_refs(e, &mut names, &mut quals);
        for (n, q) in names.into_iter().zip(quals) {
            out.push(ColRef {
                qualifier: q.map(|q| q.name),
                name: n.name,
                select_item,
                join_on,
                join_key_item: false,
            });
        }
    };
    for (i, item) in q.select.iter().enumerate() {
        match item {
            SelectItem::Star { .. } => return None,
            SelectItem::Expr { expr, .. } => push(expr, Some(i), None, &mut out),
        }
    }
    for e in q
        .where_
        .iter()
        .chain(q.having.iter())
        .chain(q.group_by.iter())
        .chain(q.partition_by.iter())
    {
        push(e, None, None, &mut out);
    }
    for (i, j) in q.joins.iter().enumerate() {
        push(&j.on, None, Some(i), &mut out);
    }
    // One join, and nothing after it changes the key: the first select
    // item naming a column of the condition, when it is one side of the
    // equality as a bare column, becomes the output key.
    if let ([j], true, true) = (
        q.joins.as_slice(),
        q.group_by.is_empty(),
        q.partition_by.is_empty(),
    ) {
        let on: Vec<(Option<String>, String)> = out
            .iter()
            .filter(|r| r.join_on == Some(0))
            .map(|r| (r.qualifier.clone(), r.name.clone()))
            .collect();
        let may_be_on = |r: &ColRef| {
            on.iter().any(|(q, n)| {
                *n == r.name && (q.is_none() || r.qualifier.is_none() || *q == r.qualifier)
            })
        };
        let sides: Vec<Option<(Option<&str>, &str)>> = match &j.on.kind {
            ExprKind::Binary { left, right, .. } => vec![bare_column(left), bare_column(right)],
            _ => Vec::new(),
        };
        // Select items that are a side of the equality as written.
        let bare_sides: Vec<usize> = out
            .iter()
            .enumerate()
            .filter(|(_, r)| r.select_item.is_some() && may_be_on(r))
            .filter(|(_, r)| {
                let item = match q.select.get(r.select_item.unwrap_or(usize::MAX)) {
                    Some(SelectItem::Expr { expr, .. }) => bare_column(expr),
                    _ => None,
                };
                item.is_some() && sides.contains(&item)
            })
            .map(|(i, _)| i)
            .collect();
        // The projection keys a join by the left source's column when it
        // has it (see `projection`); an unqualified one among several
        // could be either side: then no item is taken from the key.
        let left = q.from.qualifier().name.as_str();
        let left_item = bare_sides
            .iter()
            .copied()
            .find(|i| out[*i].qualifier.as_deref() == Some(left));
        if bare_sides.len() > 1 && bare_sides.iter().any(|i| out[*i].qualifier.is_none()) {
            return Some(out);
        }
        if let Some(i) = left_item {
            out[i].join_key_item = true;
            return Some(out);
        }
        // References are in select order: the first match is the item's.
        let first = out
            .iter()
            .position(|r| r.select_item.is_some() && may_be_on(r));
        if let Some(i) = first {
            let item = match q.select.get(out[i].select_item.unwrap_or(usize::MAX)) {
                Some(SelectItem::Expr { expr, .. }) => bare_column(expr),
                _ => None,
            };
            let bare_side = match &j.on.kind {
                ExprKind::Binary { left, right, .. } => {
                    item.is_some() && (bare_column(left) == item || bare_column(right) == item)
                }
                _ => false,
            };
            out[i].join_key_item = bare_side;
        }
    }
    Some(out)
}

/// A bare column reference as (qualifier, name).
pub(super) fn bare_column(e: &Expr) -> Option<(Option<&str>, &str)> {
    match &e.kind {
        ExprKind::Column { qualifier, name } => Some((
            qualifier.as_ref().map(|q| q.name.as_str()),
            name.name.as_str(),
        )),
        _ => None,
    }
}

pub(super) fn collect_refs(e: &Expr, names: &mut Vec<Ident>, quals: &mut Vec<Option<Ident>>) {
    if let ExprKind::Column { qualifier, name } = &e.kind {
        names.push(name.clone());
        quals.push(qualifier.clone());
        return;
    }
    let mut e = e.clone();
    for_each_child(&mut e, &mut |c| collect_refs(c, names, quals));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(text: &str) -> Query {
        match crate::parser::parse_one(text).map(|p| p.statement) {
            Ok(crate::ast::Statement::Select(q)) => q,
            other => panic!("{text}: {other:?}"),
        }
    }

    fn reads(text: &str) -> Option<Vec<String>> {
        reads_of(&query(text), &["K".to_string()]).map(|s| {
            let mut v: Vec<String> = s.into_iter().collect();
            v.sort();
            v
        })
    }

    #[test]
    fn bare_select_columns_are_not_reads_but_expressions_and_filters_are() {
        assert_eq!(
            reads("SELECT K, A, UCASE(B) AS U FROM S WHERE C > 1 EMIT CHANGES;"),
            Some(vec!["B".to_string(), "C".to_string()])
        );
        // Projected twice: the second is read from the row.
        assert_eq!(
            reads("SELECT A, A AS A2 FROM S EMIT CHANGES;"),
            Some(vec!["A".to_string()])
        );
    }

    #[test]
    fn grouping_by_the_key_reads_nothing_else_grouping_reads_its_columns() {
        assert_eq!(
            reads("SELECT K, COUNT(*) FROM S GROUP BY K EMIT CHANGES;"),
            Some(Vec::new())
        );
        assert_eq!(
            reads("SELECT G, COUNT(*) FROM S GROUP BY G HAVING SUM(V) > 1 EMIT CHANGES;"),
            Some(vec!["G".to_string(), "V".to_string()])
        );
    }

    #[test]
    fn star_joins_and_partition_by_may_read_everything() {
        for q in [
            "SELECT * FROM S EMIT CHANGES;",
            "SELECT S.A FROM S JOIN T ON S.K = T.K EMIT CHANGES;",
            "SELECT A FROM S PARTITION BY A EMIT CHANGES;",
        ] {
            assert_eq!(reads(q), None, "{q}");
        }
    }
}
