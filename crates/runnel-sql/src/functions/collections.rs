//! Array and map functions, and the null functions COALESCE, IFNULL and
//! NULLIF.

use super::string::args_are;
use super::*;

const ARRAYS: &str = "ARRAY";
const MAPS: &str = "MAP";
const NULLS: &str = "NULL";

fn array_t(t: Ty) -> SqlType {
    SqlType::Array(Box::new(t.unwrap_or(SqlType::String)))
}

/// Two arrays with compatible elements: their common array type.
fn two_arrays(a: &[Ty]) -> Option<SqlType> {
    if !args_are(a, &[is_array, is_array]) {
        return None;
    }
    let e = common(&[elem(&a[0]), elem(&a[1])])?;
    Some(array_t(e))
}

/// An array of primitives (sorting, min and max).
fn primitive_array(t: &Ty) -> bool {
    is_array(t) && is_primitive(&elem(t))
}

/// Distinct values, in order of first appearance.
fn distinct(items: impl IntoIterator<Item = Value>) -> Vec<Value> {
    let mut out: Vec<Value> = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for v in items {
        if seen.insert(v.clone()) {
            out.push(v);
        }
    }
    out
}

fn map_key(t: &Ty) -> Ty {
    match t {
        Some(SqlType::Map(k, _)) => Some((**k).clone()),
        _ => None,
    }
}

fn map_value(t: &Ty) -> Ty {
    match t {
        Some(SqlType::Map(_, v)) => Some((**v).clone()),
        _ => None,
    }
}

pub(super) fn register(r: &mut FunctionRegistry) {
    register_arrays(r);
    register_set_ops(r);
    register_maps(r);
    register_nulls(r);
    register_special(r);
}

fn register_arrays(r: &mut FunctionRegistry) {
    r.add(
        Scalar::new(
            "ARRAY_CONTAINS",
            ARRAYS,
            "ARRAY_CONTAINS(ARRAY<T>, T) -> BOOLEAN",
            "Whether the array holds the value (false for a NULL array).",
            |a| {
                (args_are(a, &[is_array, |_| true]) && compatible(&elem(&a[0]), &a[1]))
                    .then_some(SqlType::Boolean)
            },
            |a| {
                Ok(Value::Boolean(match arg(a, 0) {
                    Value::Null => false,
                    v => array_of(v)?.contains(arg(a, 1)),
                }))
            },
        )
        .lenient(),
    );
    r.add(Scalar::new(
        "ARRAY_LENGTH",
        ARRAYS,
        "ARRAY_LENGTH(ARRAY) -> INT",
        "The number of elements.",
        |a| args_are(a, &[is_array]).then_some(SqlType::Int),
        |a| {
            Ok(Value::Int(
                i32::try_from(array_of(&a[0])?.len()).unwrap_or(i32::MAX),
            ))
        },
    ));
    r.add(Scalar::new(
        "ARRAY_DISTINCT",
        ARRAYS,
        "ARRAY_DISTINCT(ARRAY<T>) -> ARRAY<T>",
        "The distinct elements, in order of first appearance.",
        |a| args_are(a, &[is_array]).then(|| array_t(elem(&a[0]))),
        |a| Ok(Value::Array(distinct(array_of(&a[0])?.iter().cloned()))),
    ));
    r.add(Scalar::new(
        "ARRAY_MAX",
        ARRAYS,
        "ARRAY_MAX(ARRAY<T>) -> T",
        "The largest non-null element (NULL for an empty array).",
        |a| args_are(a, &[primitive_array]).then(|| elem(&a[0]).unwrap_or(SqlType::String)),
        |a| Ok(array_extreme(array_of(&a[0])?, std::cmp::Ordering::Greater)),
    ));
    r.add(Scalar::new(
        "ARRAY_MIN",
        ARRAYS,
        "ARRAY_MIN(ARRAY<T>) -> T",
        "The smallest non-null element (NULL for an empty array).",
        |a| args_are(a, &[primitive_array]).then(|| elem(&a[0]).unwrap_or(SqlType::String)),
        |a| Ok(array_extreme(array_of(&a[0])?, std::cmp::Ordering::Less)),
    ));
    r.add(
        Scalar::new(
            "ARRAY_REMOVE",
            ARRAYS,
            "ARRAY_REMOVE(ARRAY<T>, T) -> ARRAY<T>",
            "The array without the elements equal to the value (NULL removes NULLs).",
            |a| {
                (args_are(a, &[is_array, |_| true]) && compatible(&elem(&a[0]), &a[1]))
                    .then(|| array_t(elem(&a[0])))
            },
            |a| match arg(a, 0) {
                Value::Null => Ok(Value::Null),
                v => {
                    let x = arg(a, 1);
                    Ok(Value::Array(
                        array_of(v)?.iter().filter(|e| *e != x).cloned().collect(),
                    ))
                }
            },
        )
        .lenient(),
    );
    r.add(
        Scalar::new(
            "ARRAY_SORT",
            ARRAYS,
            "ARRAY_SORT(ARRAY<T> [, 'ASC' | 'DESC']) -> ARRAY<T>",
            "The elements sorted ascending (default) or descending; NULLs go last.",
            |a| {
                ((a.len() == 1 || a.len() == 2)
                    && primitive_array(&a[0])
                    && a[1..].iter().all(is_str))
                .then(|| array_t(elem(&a[0])))
            },
            |a| {
                let items = match arg(a, 0) {
                    Value::Null => return Ok(Value::Null),
                    v => array_of(v)?,
                };
                let desc = match arg(a, 1) {
                    Value::Null => false,
                    v => match str_of(v)?.to_ascii_uppercase().as_str() {
                        "ASC" => false,
                        "DESC" => true,
                        other => {
                            return Err(runtime(format!(
                                "ARRAY_SORT: unknown direction '{other}', expected ASC or DESC"
                            )))
                        }
                    },
                };
                let (mut present, nulls): (Vec<Value>, Vec<Value>) =
                    items.iter().cloned().partition(|v| !v.is_null());
                present.sort();
                if desc {
                    present.reverse();
                }
                present.extend(nulls);
                Ok(Value::Array(present))
            },
        )
        .lenient(),
    );
    r.add(
        Scalar::new(
            "ARRAY_CONCAT",
            ARRAYS,
            "ARRAY_CONCAT(ARRAY<T>, ARRAY<T>) -> ARRAY<T>",
            "The elements of both arrays; a NULL array counts as empty, two give NULL.",
            two_arrays,
            |a| match (arg(a, 0), arg(a, 1)) {
                (Value::Null, Value::Null) => Ok(Value::Null),
                (x, y) => {
                    let mut out = Vec::new();
                    for v in [x, y] {
                        if !v.is_null() {
                            out.extend(array_of(v)?.iter().cloned());
                        }
                    }
                    Ok(Value::Array(out))
                }
            },
        )
        .lenient(),
    );
    r.add(
        Scalar::new(
            "ARRAY_JOIN",
            ARRAYS,
            "ARRAY_JOIN(ARRAY [, delimiter]) -> STRING",
            "The elements' text joined by the delimiter (default ',').",
            |a| {
                ((a.len() == 1 || a.len() == 2)
                    && primitive_array(&a[0])
                    && a[1..].iter().all(is_str))
                .then_some(SqlType::String)
            },
            |a| {
                let items = match arg(a, 0) {
                    Value::Null => return Ok(Value::Null),
                    v => array_of(v)?,
                };
                let delim = match (a.len(), arg(a, 1)) {
                    (1, _) => ",",
                    (_, Value::Null) => "",
                    (_, v) => str_of(v)?,
                };
                Ok(Value::String(
                    items
                        .iter()
                        .map(Value::to_string)
                        .collect::<Vec<_>>()
                        .join(delim),
                ))
            },
        )
        .lenient(),
    );
    r.add(
        Scalar::new(
            "SLICE",
            ARRAYS,
            "SLICE(ARRAY<T>, from, to) -> ARRAY<T>",
            "The elements from 1-based position `from` to `to`, both included (a NULL bound is \
             the array's start or end).",
            |a| (args_are(a, &[is_array, is_int, is_int])).then(|| array_t(elem(&a[0]))),
            |a| {
                let items = match arg(a, 0) {
                    Value::Null => return Ok(Value::Null),
                    v => array_of(v)?,
                };
                let n = items.len() as i64;
                let from = arg(a, 1).as_i64().unwrap_or(1).clamp(1, n + 1);
                let to = arg(a, 2).as_i64().unwrap_or(n).clamp(0, n);
                if to < from {
                    return Ok(Value::Array(Vec::new()));
                }
                Ok(Value::Array(
                    items[(from - 1) as usize..to as usize].to_vec(),
                ))
            },
        )
        .lenient(),
    );
    r.add(Scalar::new(
        "GENERATE_SERIES",
        ARRAYS,
        "GENERATE_SERIES(start, end [, step]) -> ARRAY<INT | BIGINT>",
        "The numbers from start to end, both included, by step (default 1, or -1 when end is \
         below start).",
        |a| {
            if !(a.len() == 2 || a.len() == 3) || !a.iter().all(is_int) {
                return None;
            }
            let big = a.contains(&Some(SqlType::BigInt));
            Some(SqlType::Array(Box::new(if big {
                SqlType::BigInt
            } else {
                SqlType::Int
            })))
        },
        |a| {
            let (start, end) = (int_of(&a[0])?, int_of(&a[1])?);
            let step = match a.get(2) {
                Some(s) => int_of(s)?,
                None if end < start => -1,
                None => 1,
            };
            let diff = i128::from(end) - i128::from(start);
            if step == 0 || diff.signum() * i128::from(step.signum()) < 0 {
                return Err(runtime(format!(
                    "GENERATE_SERIES: step {step} never gets from {start} to {end}"
                )));
            }
            let count = diff / i128::from(step) + 1;
            if count > 1_000_000 {
                return Err(runtime("GENERATE_SERIES: more than 1000000 elements"));
            }
            let count = count as i64;
            let big = a.iter().any(|v| matches!(v, Value::BigInt(_)));
            Ok(Value::Array(
                (0..count)
                    .map(|i| {
                        let x = start + i * step;
                        if big {
                            Value::BigInt(x)
                        } else {
                            Value::Int(x as i32)
                        }
                    })
                    .collect(),
            ))
        },
    ));
}

fn array_extreme(items: &[Value], want: std::cmp::Ordering) -> Value {
    let mut best: Option<&Value> = None;
    for v in items.iter().filter(|v| !v.is_null()) {
        best = match best {
            Some(b) if v.sql_cmp(b) != Some(want) => Some(b),
            _ => Some(v),
        };
    }
    best.cloned().unwrap_or_default()
}

fn register_set_ops(r: &mut FunctionRegistry) {
    r.add(Scalar::new(
        "ARRAY_EXCEPT",
        ARRAYS,
        "ARRAY_EXCEPT(ARRAY<T>, ARRAY<T>) -> ARRAY<T>",
        "The distinct elements of the first array that are not in the second.",
        two_arrays,
        |a| {
            let other = array_of(&a[1])?;
            Ok(Value::Array(distinct(
                array_of(&a[0])?
                    .iter()
                    .filter(|v| !other.contains(v))
                    .cloned(),
            )))
        },
    ));
    r.add(Scalar::new(
        "ARRAY_INTERSECT",
        ARRAYS,
        "ARRAY_INTERSECT(ARRAY<T>, ARRAY<T>) -> ARRAY<T>",
        "The distinct elements in both arrays.",
        two_arrays,
        |a| {
            let other = array_of(&a[1])?;
            Ok(Value::Array(distinct(
                array_of(&a[0])?
                    .iter()
                    .filter(|v| other.contains(v))
                    .cloned(),
            )))
        },
    ));
    r.add(Scalar::new(
        "ARRAY_UNION",
        ARRAYS,
        "ARRAY_UNION(ARRAY<T>, ARRAY<T>) -> ARRAY<T>",
        "The distinct elements of either array.",
        two_arrays,
        |a| {
            Ok(Value::Array(distinct(
                array_of(&a[0])?.iter().chain(array_of(&a[1])?).cloned(),
            )))
        },
    ));
}

fn register_maps(r: &mut FunctionRegistry) {
    r.add(Scalar::new(
        "AS_MAP",
        MAPS,
        "AS_MAP(ARRAY<STRING>, ARRAY<V>) -> MAP<STRING, V>",
        "A map of the keys to the values at the same positions (NULL where values run out).",
        |a| {
            (args_are(a, &[is_array, is_array]) && is_str(&elem(&a[0]))).then(|| {
                SqlType::Map(
                    Box::new(SqlType::String),
                    Box::new(elem(&a[1]).unwrap_or(SqlType::String)),
                )
            })
        },
        |a| {
            let (keys, vals) = (array_of(&a[0])?, array_of(&a[1])?);
            let mut map: Vec<(Value, Value)> = Vec::new();
            for (i, k) in keys.iter().enumerate() {
                let v = vals.get(i).cloned().unwrap_or_default();
                match map.iter_mut().find(|(x, _)| x == k) {
                    Some(e) => e.1 = v,
                    None => map.push((k.clone(), v)),
                }
            }
            Ok(Value::Map(map))
        },
    ));
    r.add(Scalar::new(
        "MAP_KEYS",
        MAPS,
        "MAP_KEYS(MAP<K, V>) -> ARRAY<K>",
        "The map's keys.",
        |a| args_are(a, &[is_map]).then(|| array_t(map_key(&a[0]))),
        |a| {
            Ok(Value::Array(
                map_of(&a[0])?.iter().map(|(k, _)| k.clone()).collect(),
            ))
        },
    ));
    r.add(Scalar::new(
        "MAP_VALUES",
        MAPS,
        "MAP_VALUES(MAP<K, V>) -> ARRAY<V>",
        "The map's values.",
        |a| args_are(a, &[is_map]).then(|| array_t(map_value(&a[0]))),
        |a| {
            Ok(Value::Array(
                map_of(&a[0])?.iter().map(|(_, v)| v.clone()).collect(),
            ))
        },
    ));
    r.add(
        Scalar::new(
            "MAP_UNION",
            MAPS,
            "MAP_UNION(MAP<K, V>, MAP<K, V>) -> MAP<K, V>",
            "The entries of both maps, the second's value winning for a key in both; a NULL map \
             counts as empty, two give NULL.",
            |a| {
                if !args_are(a, &[is_map, is_map]) {
                    return None;
                }
                let k = common(&[map_key(&a[0]), map_key(&a[1])])?;
                let v = common(&[map_value(&a[0]), map_value(&a[1])])?;
                Some(SqlType::Map(
                    Box::new(k.unwrap_or(SqlType::String)),
                    Box::new(v.unwrap_or(SqlType::String)),
                ))
            },
            |a| match (arg(a, 0), arg(a, 1)) {
                (Value::Null, Value::Null) => Ok(Value::Null),
                (x, y) => {
                    let mut out: Vec<(Value, Value)> = Vec::new();
                    for m in [x, y] {
                        if m.is_null() {
                            continue;
                        }
                        for (k, v) in map_of(m)? {
                            match out.iter_mut().find(|(x, _)| x == k) {
                                Some(e) => e.1 = v.clone(),
                                None => out.push((k.clone(), v.clone())),
                            }
                        }
                    }
                    Ok(Value::Map(out))
                }
            },
        )
        .lenient(),
    );
    r.add(Scalar::new(
        "ENTRIES",
        MAPS,
        "ENTRIES(MAP<STRING, V>, sorted BOOLEAN) -> ARRAY<STRUCT<K STRING, V V>>",
        "The map's entries as structs with fields K and V, sorted by key when `sorted` is true.",
        |a| {
            (args_are(a, &[is_map, is_bool]) && is_str(&map_key(&a[0]))).then(|| {
                SqlType::Array(Box::new(SqlType::Struct(vec![
                    ("K".to_string(), SqlType::String),
                    ("V".to_string(), map_value(&a[0]).unwrap_or(SqlType::String)),
                ])))
            })
        },
        |a| {
            let mut entries: Vec<(Value, Value)> = map_of(&a[0])?.to_vec();
            if bool_of(&a[1])? {
                entries.sort_by(|x, y| x.0.cmp(&y.0));
            }
            Ok(Value::Array(
                entries
                    .into_iter()
                    .map(|(k, v)| Value::Struct(vec![("K".to_string(), k), ("V".to_string(), v)]))
                    .collect(),
            ))
        },
    ));
}

fn register_nulls(r: &mut FunctionRegistry) {
    r.add(
        Scalar::new(
            "COALESCE",
            NULLS,
            "COALESCE(value, value, …) -> common type",
            "The first argument that is not NULL.",
            |a| {
                if a.is_empty() {
                    return None;
                }
                common(a).map(|t| t.unwrap_or(SqlType::String))
            },
            |a| Ok(a.iter().find(|v| !v.is_null()).cloned().unwrap_or_default()),
        )
        .lenient(),
    );
    r.add(
        Scalar::new(
            "IFNULL",
            NULLS,
            "IFNULL(value, alternative) -> common type",
            "`value` unless it is NULL, else `alternative`.",
            |a| {
                if a.len() != 2 {
                    return None;
                }
                common(a).map(|t| t.unwrap_or(SqlType::String))
            },
            |a| {
                Ok(match arg(a, 0) {
                    Value::Null => arg(a, 1).clone(),
                    v => v.clone(),
                })
            },
        )
        .lenient(),
    );
    r.add(
        Scalar::new(
            "NULLIF",
            NULLS,
            "NULLIF(value, other) -> type of value",
            "NULL when `value` equals `other`, else `value`.",
            |a| {
                (a.len() == 2 && compatible(&a[0], &a[1])).then(|| {
                    a[0].clone()
                        .or_else(|| a[1].clone())
                        .unwrap_or(SqlType::String)
                })
            },
            |a| {
                let (x, y) = (arg(a, 0), arg(a, 1));
                Ok(if x.sql_cmp(y) == Some(std::cmp::Ordering::Equal) {
                    Value::Null
                } else {
                    x.clone()
                })
            },
        )
        .lenient(),
    );
}

/// Names the binder handles itself (lambdas, constructors): registered so
/// that SHOW FUNCTIONS and DESCRIBE FUNCTION know them and a call of the
/// wrong shape gets an error naming the expected form.
fn register_special(r: &mut FunctionRegistry) {
    const LAMBDA: &str = "LAMBDA";
    let never: TypeRule = |_| None;
    let unreachable: Eval = |_| Err(runtime("evaluated by the expression binder"));
    for (name, sig, desc) in [
        (
            "TRANSFORM",
            "TRANSFORM(ARRAY<T>, x => expr) -> ARRAY, TRANSFORM(MAP<K, V>, (k, v) => key, (k, v) => value) -> MAP",
            "Applies a lambda to each element of an array, or to each key and value of a map.",
        ),
        (
            "FILTER",
            "FILTER(ARRAY<T>, x => condition) -> ARRAY<T>, FILTER(MAP<K, V>, (k, v) => condition) -> MAP<K, V>",
            "Keeps the elements of an array, or entries of a map, for which the lambda is true.",
        ),
        (
            "REDUCE",
            "REDUCE(ARRAY<T>, initial S, (s, x) => expr) -> S",
            "Folds the array's elements into a state, starting from `initial`.",
        ),
    ] {
        r.add(Scalar::new(name, LAMBDA, sig, desc, never, unreachable));
    }
    r.add(Scalar::new(
        "ARRAY",
        ARRAYS,
        "ARRAY[value, …] -> ARRAY",
        "Builds an array of its values (written with square brackets).",
        never,
        unreachable,
    ));
    r.add(Scalar::new(
        "MAP",
        MAPS,
        "MAP(key := value, …) -> MAP",
        "Builds a map of its entries.",
        never,
        unreachable,
    ));
    r.add(
        Scalar::new(
            "AS_VALUE",
            NULLS,
            "AS_VALUE(column) -> type of column",
            "The column itself; used to copy a key column into the value of a query's result.",
            |a| (a.len() == 1).then(|| a[0].clone().unwrap_or(SqlType::String)),
            |a| Ok(arg(a, 0).clone()),
        )
        .lenient(),
    );
    r.add(
        Scalar::new(
            "ARRAYCONTAINS",
            ARRAYS,
            "ARRAYCONTAINS(ARRAY<T>, T) -> BOOLEAN",
            "Deprecated name of ARRAY_CONTAINS, from KSQL 5.",
            |a| {
                (args_are(a, &[is_array, |_| true]) && compatible(&elem(&a[0]), &a[1]))
                    .then_some(SqlType::Boolean)
            },
            |a| {
                Ok(Value::Boolean(match arg(a, 0) {
                    Value::Null => false,
                    v => array_of(v)?.contains(arg(a, 1)),
                }))
            },
        )
        .lenient(),
    );
}

#[cfg(test)]
mod tests {
    use super::super::test_util::*;
    use super::*;

    const N: Value = Value::Null;

    fn at(t: SqlType) -> Ty {
        Some(SqlType::Array(Box::new(t)))
    }
    fn mt(k: SqlType, v: SqlType) -> Ty {
        Some(SqlType::Map(Box::new(k), Box::new(v)))
    }
    fn ints(v: &[i32]) -> Value {
        arr(v.iter().map(|x| i(*x)).collect())
    }
    fn map(entries: &[(&str, i32)]) -> Value {
        Value::Map(entries.iter().map(|(k, v)| (s(k), i(*v))).collect())
    }

    #[test]
    fn contains_length_distinct() {
        assert_eq!(
            ok("ARRAY_CONTAINS", vec![ints(&[1, 2]), i(2)]),
            Value::Boolean(true)
        );
        assert_eq!(
            ok("ARRAY_CONTAINS", vec![ints(&[1]), l(1)]),
            Value::Boolean(true)
        );
        assert_eq!(ok("ARRAY_CONTAINS", vec![N, i(2)]), Value::Boolean(false));
        assert_eq!(
            ok("ARRAY_CONTAINS", vec![arr(vec![N]), N]),
            Value::Boolean(true)
        );
        assert!(ty("ARRAY_CONTAINS", &[at(SqlType::Int), st()]).is_err());
        assert!(ty("ARRAY_CONTAINS", &[it(), it()]).is_err());
        assert_eq!(ok("ARRAY_LENGTH", vec![ints(&[1, 2, 3])]), i(3));
        assert_eq!(ok("ARRAY_LENGTH", vec![N]), N);
        assert!(ty("ARRAY_LENGTH", &[st()]).is_err());
        assert_eq!(
            ok("ARRAY_DISTINCT", vec![arr(vec![i(2), i(1), i(2), N, N])]),
            arr(vec![i(2), i(1), N])
        );
        assert_eq!(ok("ARRAY_DISTINCT", vec![N]), N);
    }

    #[test]
    fn set_operations() {
        assert_eq!(
            ok("ARRAY_EXCEPT", vec![ints(&[1, 2, 2, 3]), ints(&[3])]),
            ints(&[1, 2])
        );
        assert_eq!(
            ok(
                "ARRAY_INTERSECT",
                vec![ints(&[1, 2, 2, 3]), ints(&[2, 3, 4])]
            ),
            ints(&[2, 3])
        );
        assert_eq!(
            ok("ARRAY_UNION", vec![ints(&[1, 2]), ints(&[2, 3])]),
            ints(&[1, 2, 3])
        );
        assert_eq!(ok("ARRAY_UNION", vec![ints(&[1]), N]), N);
        assert_eq!(
            ty("ARRAY_UNION", &[at(SqlType::Int), at(SqlType::BigInt)]),
            Ok(SqlType::Array(Box::new(SqlType::BigInt)))
        );
        assert!(ty("ARRAY_EXCEPT", &[at(SqlType::Int), at(SqlType::String)]).is_err());
    }

    #[test]
    fn min_max_sort_remove_concat_join() {
        assert_eq!(ok("ARRAY_MAX", vec![arr(vec![i(1), N, i(5)])]), i(5));
        assert_eq!(ok("ARRAY_MIN", vec![sarr(&["b", "a"])]), s("a"));
        assert_eq!(ok("ARRAY_MIN", vec![arr(vec![])]), N);
        assert!(ty("ARRAY_MAX", &[at(at(SqlType::Int).expect("t"))]).is_err());
        assert_eq!(
            ok("ARRAY_SORT", vec![arr(vec![i(3), N, i(1), i(2)])]),
            arr(vec![i(1), i(2), i(3), N])
        );
        assert_eq!(
            ok("ARRAY_SORT", vec![ints(&[3, 1, 2]), s("desc")]),
            ints(&[3, 2, 1])
        );
        assert!(call("ARRAY_SORT", vec![ints(&[1]), s("up")]).is_err());
        assert_eq!(ok("ARRAY_SORT", vec![N]), N);
        assert_eq!(
            ok("ARRAY_REMOVE", vec![arr(vec![i(1), N, i(1), i(2)]), i(1)]),
            arr(vec![N, i(2)])
        );
        assert_eq!(ok("ARRAY_REMOVE", vec![arr(vec![i(1), N]), N]), ints(&[1]));
        assert_eq!(ok("ARRAY_REMOVE", vec![N, i(1)]), N);
        assert_eq!(
            ok("ARRAY_CONCAT", vec![ints(&[1]), ints(&[2, 1])]),
            ints(&[1, 2, 1])
        );
        assert_eq!(ok("ARRAY_CONCAT", vec![N, ints(&[2])]), ints(&[2]));
        assert_eq!(ok("ARRAY_CONCAT", vec![N, N]), N);
        assert!(ty("ARRAY_CONCAT", &[at(SqlType::Int), it()]).is_err());
        assert_eq!(ok("ARRAY_JOIN", vec![ints(&[1, 2])]), s("1,2"));
        assert_eq!(ok("ARRAY_JOIN", vec![sarr(&["a", "b"]), s("|")]), s("a|b"));
        assert_eq!(ok("ARRAY_JOIN", vec![sarr(&["a", "b"]), N]), s("ab"));
        assert_eq!(ok("ARRAY_JOIN", vec![N]), N);
        assert!(ty("ARRAY_JOIN", &[st()]).is_err());
    }

    #[test]
    fn slice_and_series() {
        assert_eq!(
            ok("SLICE", vec![ints(&[1, 2, 3, 4]), i(2), i(3)]),
            ints(&[2, 3])
        );
        assert_eq!(ok("SLICE", vec![ints(&[1, 2, 3]), N, i(2)]), ints(&[1, 2]));
        assert_eq!(
            ok("SLICE", vec![ints(&[1, 2, 3]), i(2), i(9)]),
            ints(&[2, 3])
        );
        assert_eq!(ok("SLICE", vec![ints(&[1, 2, 3]), i(3), i(1)]), ints(&[]));
        assert_eq!(ok("SLICE", vec![N, i(1), i(2)]), N);
        assert!(ty("SLICE", &[at(SqlType::Int), st(), it()]).is_err());
        assert_eq!(ok("GENERATE_SERIES", vec![i(1), i(4)]), ints(&[1, 2, 3, 4]));
        assert_eq!(
            ok("GENERATE_SERIES", vec![i(5), i(1), i(-2)]),
            ints(&[5, 3, 1])
        );
        assert_eq!(ok("GENERATE_SERIES", vec![i(3), i(1)]), ints(&[3, 2, 1]));
        assert_eq!(
            ok("GENERATE_SERIES", vec![l(1), l(2)]),
            arr(vec![l(1), l(2)])
        );
        assert!(call("GENERATE_SERIES", vec![i(1), i(5), i(-1)]).is_err());
        assert!(call("GENERATE_SERIES", vec![i(1), i(5), i(0)]).is_err());
        assert_eq!(ok("GENERATE_SERIES", vec![N, i(5)]), N);
        assert!(call("GENERATE_SERIES", vec![l(i64::MIN), l(i64::MAX)]).is_err());
        assert!(ty("GENERATE_SERIES", &[dt(), it()]).is_err());
    }

    #[test]
    fn maps() {
        assert_eq!(
            ok("AS_MAP", vec![sarr(&["a", "b"]), ints(&[1])]),
            Value::Map(vec![(s("a"), i(1)), (s("b"), N)])
        );
        assert!(ty("AS_MAP", &[at(SqlType::Int), at(SqlType::Int)]).is_err());
        let m = map(&[("b", 2), ("a", 1)]);
        assert_eq!(ok("MAP_KEYS", vec![m.clone()]), sarr(&["b", "a"]));
        assert_eq!(ok("MAP_VALUES", vec![m.clone()]), ints(&[2, 1]));
        assert_eq!(ok("MAP_KEYS", vec![N]), N);
        assert!(ty("MAP_VALUES", &[at(SqlType::Int)]).is_err());
        assert_eq!(
            ty("MAP_KEYS", &[mt(SqlType::String, SqlType::Int)]),
            Ok(SqlType::Array(Box::new(SqlType::String)))
        );
        assert_eq!(
            ok("MAP_UNION", vec![m.clone(), map(&[("a", 9), ("c", 3)])]),
            map(&[("b", 2), ("a", 9), ("c", 3)])
        );
        assert_eq!(ok("MAP_UNION", vec![N, m.clone()]), m.clone());
        assert_eq!(ok("MAP_UNION", vec![N, N]), N);
        let entry =
            |k: &str, v: i32| Value::Struct(vec![("K".to_string(), s(k)), ("V".to_string(), i(v))]);
        assert_eq!(
            ok("ENTRIES", vec![m.clone(), Value::Boolean(true)]),
            arr(vec![entry("a", 1), entry("b", 2)])
        );
        assert_eq!(
            ok("ENTRIES", vec![m, Value::Boolean(false)]),
            arr(vec![entry("b", 2), entry("a", 1)])
        );
        assert!(ty("ENTRIES", &[mt(SqlType::String, SqlType::Int), it()]).is_err());
    }

    #[test]
    fn null_functions() {
        assert_eq!(ok("COALESCE", vec![N, i(2), i(3)]), i(2));
        assert_eq!(ok("COALESCE", vec![N, N]), N);
        assert_eq!(ty("COALESCE", &[None, it(), bt()]), Ok(SqlType::BigInt));
        assert!(ty("COALESCE", &[it(), st()]).is_err());
        assert_eq!(ok("IFNULL", vec![N, s("x")]), s("x"));
        assert_eq!(ok("IFNULL", vec![s("a"), s("x")]), s("a"));
        assert!(ty("IFNULL", &[it()]).is_err());
        assert_eq!(ok("NULLIF", vec![i(1), i(1)]), N);
        assert_eq!(ok("NULLIF", vec![i(1), i(2)]), i(1));
        assert_eq!(ok("NULLIF", vec![i(1), N]), i(1));
        assert!(ty("NULLIF", &[it(), st()]).is_err());
    }

    #[test]
    fn special_names() {
        assert!(ty("TRANSFORM", &[at(SqlType::Int)]).is_err());
        assert!(call("REDUCE", vec![ints(&[1]), i(0), i(0)]).is_err());
        assert_eq!(ok("AS_VALUE", vec![s("k")]), s("k"));
        assert_eq!(ok("AS_VALUE", vec![N]), N);
        assert_eq!(ty("AS_VALUE", &[it()]), Ok(SqlType::Int));
        assert!(ty("AS_VALUE", &[it(), it()]).is_err());
        assert_eq!(
            ok("ARRAYCONTAINS", vec![ints(&[1, 2]), i(2)]),
            Value::Boolean(true)
        );
        assert_eq!(ok("ARRAYCONTAINS", vec![N, i(2)]), Value::Boolean(false));
        assert!(ty("ARRAYCONTAINS", &[st(), it()]).is_err());
    }
}
