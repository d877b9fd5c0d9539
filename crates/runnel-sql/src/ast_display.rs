//! Expressions printed back as SQL: for `DESCRIBE`/`EXPLAIN`, and to tell
//! whether two expressions are the same regardless of where they were
//! written.

use std::fmt;

use crate::ast::{Expr, ExprKind, Literal, UnaryOp};

fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

fn list(f: &mut fmt::Formatter<'_>, items: &[Expr]) -> fmt::Result {
    for (i, e) in items.iter().enumerate() {
        if i > 0 {
            f.write_str(", ")?;
        }
        write!(f, "{e}")?;
    }
    Ok(())
}

impl fmt::Display for Literal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Literal::Null => f.write_str("null"),
            Literal::Boolean(b) => f.write_str(if *b { "true" } else { "false" }),
            Literal::Integer(i) => write!(f, "{i}"),
            Literal::Decimal(d) => f.write_str(d),
            Literal::Double(d) => write!(f, "{d:e}"),
            Literal::String(s) => f.write_str(&quote(s)),
        }
    }
}

impl fmt::Display for Expr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            ExprKind::Literal(l) => write!(f, "{l}"),
            ExprKind::Column { qualifier, name } => match qualifier {
                Some(q) => write!(f, "{q}.{name}"),
                None => write!(f, "{name}"),
            },
            ExprKind::Deref { expr, field } => write!(f, "{expr}->{field}"),
            ExprKind::Subscript { expr, index } => write!(f, "{expr}[{index}]"),
            ExprKind::Unary { op, expr } => match op {
                UnaryOp::Not => write!(f, "(NOT {expr})"),
                UnaryOp::Neg => write!(f, "-{expr}"),
            },
            ExprKind::Binary { op, left, right } => write!(f, "({left} {op} {right})"),
            ExprKind::IsNull { expr, negated } => {
                write!(f, "({expr} IS {}NULL)", if *negated { "NOT " } else { "" })
            }
            ExprKind::IsDistinctFrom {
                left,
                right,
                negated,
            } => write!(
                f,
                "({left} IS {}DISTINCT FROM {right})",
                if *negated { "NOT " } else { "" }
            ),
            ExprKind::Between {
                expr,
                low,
                high,
                negated,
            } => write!(
                f,
                "({expr} {}BETWEEN {low} AND {high})",
                if *negated { "NOT " } else { "" }
            ),
            ExprKind::InList {
                expr,
                list: items,
                negated,
            } => {
                write!(f, "({expr} {}IN (", if *negated { "NOT " } else { "" })?;
                list(f, items)?;
                f.write_str("))")
            }
            ExprKind::Like {
                expr,
                pattern,
                escape,
                negated,
            } => {
                write!(
                    f,
                    "({expr} {}LIKE {pattern}",
                    if *negated { "NOT " } else { "" }
                )?;
                if let Some(c) = escape {
                    write!(f, " ESCAPE {}", quote(&c.to_string()))?;
                }
                f.write_str(")")
            }
            ExprKind::Case {
                operand,
                whens,
                else_,
            } => {
                f.write_str("(CASE")?;
                if let Some(o) = operand {
                    write!(f, " {o}")?;
                }
                for (w, t) in whens {
                    write!(f, " WHEN {w} THEN {t}")?;
                }
                if let Some(e) = else_ {
                    write!(f, " ELSE {e}")?;
                }
                f.write_str(" END)")
            }
            ExprKind::Cast { expr, ty } => write!(f, "CAST({expr} AS {ty})"),
            ExprKind::Function {
                name,
                args,
                star,
                distinct,
            } => {
                write!(f, "{name}(")?;
                if *distinct {
                    f.write_str("DISTINCT ")?;
                }
                if *star {
                    f.write_str("*")?;
                }
                list(f, args)?;
                f.write_str(")")
            }
            ExprKind::Lambda { params, body } => {
                if params.len() == 1 {
                    write!(f, "{} => {body}", params[0])
                } else {
                    f.write_str("(")?;
                    for (i, p) in params.iter().enumerate() {
                        if i > 0 {
                            f.write_str(", ")?;
                        }
                        write!(f, "{p}")?;
                    }
                    write!(f, ") => {body}")
                }
            }
            ExprKind::Array(items) => {
                f.write_str("ARRAY[")?;
                list(f, items)?;
                f.write_str("]")
            }
            ExprKind::Map(entries) => {
                f.write_str("MAP(")?;
                for (i, (k, v)) in entries.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{k}:={v}")?;
                }
                f.write_str(")")
            }
            ExprKind::Struct(fields) => {
                f.write_str("STRUCT(")?;
                for (i, (k, v)) in fields.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{k}:={v}")?;
                }
                f.write_str(")")
            }
        }
    }
}

impl Expr {
    /// Whether two expressions are the same, wherever they were written.
    pub fn same_as(&self, other: &Expr) -> bool {
        self.to_string() == other.to_string()
    }
}
