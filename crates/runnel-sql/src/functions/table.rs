//! Table functions: EXPLODE and CUBE_EXPLODE turn one row into several.

use super::*;

const CAT: &str = "TABLE";

/// Evaluator of a table function: one output value per produced row.
pub type TableEval = fn(&[Value]) -> Result<Vec<Value>, FunctionError>;

/// A table function made of a type rule and an evaluator (the builder
/// behind every built-in table function, as [`Scalar`] is for scalars).
pub struct TableFn {
    info: FunctionInfo,
    ty: TypeRule,
    eval: TableEval,
}

impl TableFn {
    pub fn new(
        name: &'static str,
        signature: &'static str,
        description: &'static str,
        ty: TypeRule,
        eval: TableEval,
    ) -> TableFn {
        TableFn {
            info: FunctionInfo {
                name,
                kind: FunctionKind::Table,
                category: CAT,
                description,
                signature,
            },
            ty,
            eval,
        }
    }
}

impl TableFunction for TableFn {
    fn info(&self) -> FunctionInfo {
        self.info.clone()
    }
    fn return_type(&self, args: &[Option<SqlType>]) -> Result<SqlType, FunctionError> {
        (self.ty)(args).ok_or_else(|| bad_args(&self.info, args))
    }
    fn call(&self, args: &[Value]) -> Result<Vec<Value>, FunctionError> {
        (self.eval)(args)
    }
}

/// Past this many columns CUBE_EXPLODE would produce over a million rows.
const CUBE_MAX: usize = 20;

pub(super) fn register(r: &mut FunctionRegistry) {
    r.register_table(Box::new(TableFn::new(
        "EXPLODE",
        "EXPLODE(ARRAY<T>) -> T",
        "Produces one row per element of the array (none for an empty or NULL array).",
        |a| match a {
            [Some(SqlType::Array(e))] => Some((**e).clone()),
            [None] => Some(SqlType::String),
            _ => None,
        },
        |a| match arg(a, 0) {
            Value::Null => Ok(Vec::new()),
            v => Ok(array_of(v)?.to_vec()),
        },
    )));
    r.register_table(Box::new(TableFn::new(
        "CUBE_EXPLODE",
        "CUBE_EXPLODE(ARRAY<T>) -> ARRAY<T>",
        "Produces one row per combination of the array's elements and NULL (2^n rows for n \
         elements), from all NULL to all present.",
        |a| match a {
            [Some(t @ SqlType::Array(_))] => Some(t.clone()),
            [None] => Some(SqlType::Array(Box::new(SqlType::String))),
            _ => None,
        },
        |a| {
            let items = match arg(a, 0) {
                Value::Null => return Ok(Vec::new()),
                v => array_of(v)?,
            };
            if items.len() > CUBE_MAX {
                return Err(runtime(format!(
                    "CUBE_EXPLODE: {} elements would give too many rows (at most {CUBE_MAX})",
                    items.len()
                )));
            }
            let n = items.len();
            // A NULL element gives the same rows whether kept or not:
            // each combination once, as ksqlDB does.
            let nulls: u32 = (items.iter().enumerate())
                .filter(|(_, v)| v.is_null())
                .map(|(i, _)| 1 << (n - 1 - i))
                .sum();
            Ok((0u32..1 << n)
                .filter(|mask| mask & nulls == 0)
                .map(|mask| {
                    Value::Array(
                        items
                            .iter()
                            .enumerate()
                            .map(|(i, v)| {
                                // The first element varies slowest.
                                if mask & (1 << (n - 1 - i)) != 0 {
                                    v.clone()
                                } else {
                                    Value::Null
                                }
                            })
                            .collect(),
                    )
                })
                .collect())
        },
    )));
}

#[cfg(test)]
mod tests {
    use super::super::test_util::*;
    use super::*;

    fn table(name: &str, args: Vec<Value>) -> Result<Vec<Value>, FunctionError> {
        let r = reg();
        let f = r.table(name).expect("registered");
        f.call(&args)
    }

    #[test]
    fn explode_gives_a_row_per_element() {
        let r = reg();
        let f = r.table("EXPLODE").expect("registered");
        let at = Some(SqlType::Array(Box::new(SqlType::Int)));
        assert_eq!(f.return_type(&[at]), Ok(SqlType::Int));
        assert!(f.return_type(&[st()]).is_err());
        assert!(f.return_type(&[]).is_err());
        let explode = |a| table("EXPLODE", a);
        assert_eq!(
            explode(vec![arr(vec![i(1), Value::Null, i(3)])]),
            Ok(vec![i(1), Value::Null, i(3)])
        );
        assert_eq!(explode(vec![Value::Null]), Ok(vec![]));
        assert_eq!(explode(vec![arr(vec![])]), Ok(vec![]));
        assert!(explode(vec![s("x")]).is_err());
    }

    #[test]
    fn cube_explode_gives_every_combination() {
        let r = reg();
        let f = r.table("CUBE_EXPLODE").expect("registered");
        let at = Some(SqlType::Array(Box::new(SqlType::String)));
        assert_eq!(
            f.return_type(std::slice::from_ref(&at)),
            Ok(at.clone().expect("type"))
        );
        assert!(f.return_type(&[it()]).is_err());
        let cube = |a| table("CUBE_EXPLODE", a);
        let n = Value::Null;
        assert_eq!(
            cube(vec![sarr(&["a", "b"])]),
            Ok(vec![
                arr(vec![n.clone(), n.clone()]),
                arr(vec![n.clone(), s("b")]),
                arr(vec![s("a"), n.clone()]),
                sarr(&["a", "b"]),
            ])
        );
        assert_eq!(cube(vec![Value::Null]), Ok(vec![]));
        assert_eq!(
            cube(vec![arr(vec![s("a"), n.clone()])]),
            Ok(vec![
                arr(vec![n.clone(), n.clone()]),
                arr(vec![s("a"), n.clone()])
            ])
        );
        assert_eq!(cube(vec![arr(vec![])]), Ok(vec![arr(vec![])]));
        assert!(cube(vec![arr((0..30).map(i).collect())]).is_err());
    }
}
