//! Numeric functions: ABS, CEIL, FLOOR, ROUND, TRUNC, SQRT, LOG, trigonometry, …

use std::str::FromStr;

use rust_decimal::{Decimal, RoundingStrategy};

use super::*;

const CAT: &str = "MATHEMATICAL";

/// One numeric argument, any return type.
fn unary_num(a: &[Ty], out: SqlType) -> Option<SqlType> {
    (a.len() == 1 && is_num(&a[0])).then_some(out)
}
fn unary_double(a: &[Ty]) -> Option<SqlType> {
    unary_num(a, SqlType::Double)
}
/// One numeric argument, returning its own type (DOUBLE for a NULL literal).
fn same_num(a: &[Ty]) -> Option<SqlType> {
    (a.len() == 1 && is_num(&a[0])).then(|| a[0].clone().unwrap_or(SqlType::Double))
}

fn dbl(f: fn(f64) -> f64) -> impl Fn(&[Value]) -> Result<Value, FunctionError> {
    move |a| Ok(Value::Double(f(f64_of(arg(a, 0))?)))
}

macro_rules! unary_double_fn {
    ($r:expr, $name:literal, $sig:literal, $desc:literal, $f:expr) => {
        $r.add(Scalar::new($name, CAT, $sig, $desc, unary_double, |a| {
            dbl($f)(a)
        }));
    };
}

pub(super) fn register(r: &mut FunctionRegistry) {
    r.add(Scalar::new(
        "ABS",
        CAT,
        "ABS(INT | BIGINT | DOUBLE | DECIMAL) -> same type",
        "Returns the absolute value of its argument.",
        same_num,
        |a| {
            Ok(match arg(a, 0) {
                Value::Int(v) => Value::Int(v.wrapping_abs()),
                Value::BigInt(v) => Value::BigInt(v.wrapping_abs()),
                Value::Decimal(d) => Value::Decimal(d.abs()),
                v => Value::Double(f64_of(v)?.abs()),
            })
        },
    ));
    r.add(Scalar::new(
        "CEIL",
        CAT,
        "CEIL(INT | BIGINT | DOUBLE | DECIMAL) -> same type",
        "Returns the smallest integer value greater than or equal to the argument.",
        same_num,
        |a| round_like(arg(a, 0), f64::ceil, RoundingStrategy::ToPositiveInfinity),
    ));
    r.add(Scalar::new(
        "FLOOR",
        CAT,
        "FLOOR(INT | BIGINT | DOUBLE | DECIMAL) -> same type",
        "Returns the largest integer value less than or equal to the argument.",
        same_num,
        |a| round_like(arg(a, 0), f64::floor, RoundingStrategy::ToNegativeInfinity),
    ));
    r.add(Scalar::new(
        "ROUND",
        CAT,
        "ROUND(INT) -> INT, ROUND(BIGINT | DOUBLE) -> BIGINT, ROUND(DECIMAL(p,s)) -> DECIMAL(p-s,0), \
         ROUND(DOUBLE, INT) -> DOUBLE, ROUND(DECIMAL, INT) -> DECIMAL",
        "Rounds to `scale` decimal places (default 0; negative rounds left of the point). Halves \
         round up, towards positive infinity, as ksqlDB (Java Math.round) does.",
        |a| round_type(a, true),
        |a| round_or_trunc(a, true),
    ));
    r.add(Scalar::new(
        "TRUNC",
        CAT,
        "TRUNC(INT) -> INT, TRUNC(BIGINT | DOUBLE) -> BIGINT, TRUNC(DECIMAL(p,s)) -> DECIMAL(p-s,0), \
         TRUNC(DOUBLE, INT) -> DOUBLE, TRUNC(DECIMAL, INT) -> DECIMAL",
        "Truncates (rounds towards zero) to `scale` decimal places (default 0; negative truncates \
         left of the point).",
        |a| round_type(a, false),
        |a| round_or_trunc(a, false),
    ));
    r.add(Scalar::new(
        "SIGN",
        CAT,
        "SIGN(INT | BIGINT | DOUBLE | DECIMAL) -> INT",
        "Returns -1, 0 or 1 as the argument is negative, zero or positive.",
        |a| unary_num(a, SqlType::Int),
        |a| {
            let v = arg(a, 0);
            let s = match v {
                Value::Decimal(d) => {
                    if d.is_zero() {
                        0
                    } else if d.is_sign_negative() {
                        -1
                    } else {
                        1
                    }
                }
                Value::Int(_) | Value::BigInt(_) => int_of(v)?.signum() as i32,
                _ => {
                    let f = f64_of(v)?;
                    if f > 0.0 {
                        1
                    } else if f < 0.0 {
                        -1
                    } else {
                        0
                    }
                }
            };
            Ok(Value::Int(s))
        },
    ));
    unary_double_fn!(
        r,
        "SQRT",
        "SQRT(number) -> DOUBLE",
        "Returns the square root.",
        f64::sqrt
    );
    unary_double_fn!(
        r,
        "CBRT",
        "CBRT(number) -> DOUBLE",
        "Returns the cube root.",
        f64::cbrt
    );
    unary_double_fn!(
        r,
        "EXP",
        "EXP(number) -> DOUBLE",
        "Returns e raised to the argument.",
        f64::exp
    );
    unary_double_fn!(
        r,
        "LN",
        "LN(number) -> DOUBLE",
        "Returns the natural logarithm.",
        f64::ln
    );
    unary_double_fn!(
        r,
        "ACOS",
        "ACOS(number) -> DOUBLE",
        "Returns the arc cosine, in radians (NaN outside [-1, 1]).",
        f64::acos
    );
    unary_double_fn!(
        r,
        "ASIN",
        "ASIN(number) -> DOUBLE",
        "Returns the arc sine, in radians (NaN outside [-1, 1]).",
        f64::asin
    );
    unary_double_fn!(
        r,
        "ATAN",
        "ATAN(number) -> DOUBLE",
        "Returns the arc tangent, in radians.",
        f64::atan
    );
    unary_double_fn!(
        r,
        "COS",
        "COS(radians) -> DOUBLE",
        "Returns the cosine.",
        f64::cos
    );
    unary_double_fn!(
        r,
        "COSH",
        "COSH(number) -> DOUBLE",
        "Returns the hyperbolic cosine.",
        f64::cosh
    );
    unary_double_fn!(
        r,
        "COT",
        "COT(radians) -> DOUBLE",
        "Returns the cotangent.",
        |x| 1.0 / x.tan()
    );
    unary_double_fn!(
        r,
        "SIN",
        "SIN(radians) -> DOUBLE",
        "Returns the sine.",
        f64::sin
    );
    unary_double_fn!(
        r,
        "SINH",
        "SINH(number) -> DOUBLE",
        "Returns the hyperbolic sine.",
        f64::sinh
    );
    unary_double_fn!(
        r,
        "TAN",
        "TAN(radians) -> DOUBLE",
        "Returns the tangent.",
        f64::tan
    );
    unary_double_fn!(
        r,
        "TANH",
        "TANH(number) -> DOUBLE",
        "Returns the hyperbolic tangent.",
        f64::tanh
    );
    unary_double_fn!(
        r,
        "DEGREES",
        "DEGREES(radians) -> DOUBLE",
        "Converts radians to degrees.",
        f64::to_degrees
    );
    unary_double_fn!(
        r,
        "RADIANS",
        "RADIANS(degrees) -> DOUBLE",
        "Converts degrees to radians.",
        f64::to_radians
    );
    r.add(Scalar::new(
        "LOG",
        CAT,
        "LOG(value) -> DOUBLE, LOG(base, value) -> DOUBLE",
        "Natural logarithm of `value` (as ksqlDB's), or its logarithm in `base` (-Infinity for 0, \
         NaN for negative values or a base that is negative, 0 or 1).",
        |a| ((a.len() == 1 || a.len() == 2) && a.iter().all(is_num)).then_some(SqlType::Double),
        |a| {
            Ok(Value::Double(if a.len() == 2 {
                let (b, x) = (f64_of(&a[0])?, f64_of(&a[1])?);
                if b <= 0.0 || b == 1.0 || x < 0.0 {
                    f64::NAN
                } else {
                    x.ln() / b.ln()
                }
            } else {
                // ksqlDB's one-argument LOG is the natural logarithm.
                f64_of(arg(a, 0))?.ln()
            }))
        },
    ));
    r.add(Scalar::new(
        "POWER",
        CAT,
        "POWER(base, exponent) -> DOUBLE",
        "Raises `base` to `exponent` (Infinity on overflow).",
        |a| (a.len() == 2 && a.iter().all(is_num)).then_some(SqlType::Double),
        |a| Ok(Value::Double(f64_of(&a[0])?.powf(f64_of(&a[1])?))),
    ));
    r.add(Scalar::new(
        "ATAN2",
        CAT,
        "ATAN2(y, x) -> DOUBLE",
        "Returns the arc tangent of y / x, in radians.",
        |a| (a.len() == 2 && a.iter().all(is_num)).then_some(SqlType::Double),
        |a| Ok(Value::Double(f64_of(&a[0])?.atan2(f64_of(&a[1])?))),
    ));
    r.add(Scalar::new(
        "PI",
        CAT,
        "PI() -> DOUBLE",
        "Returns an approximate value of π.",
        |a| a.is_empty().then_some(SqlType::Double),
        |_| Ok(Value::Double(std::f64::consts::PI)),
    ));
    r.add(Scalar::new(
        "RANDOM",
        CAT,
        "RANDOM() -> DOUBLE",
        "Returns a random DOUBLE in [0.0, 1.0).",
        |a| a.is_empty().then_some(SqlType::Double),
        |_| {
            Ok(Value::Double(
                (random_u64() >> 11) as f64 / (1u64 << 53) as f64,
            ))
        },
    ));
    r.add(
        Scalar::new(
            "GREATEST",
            CAT,
            "GREATEST(value, value, …) -> common type",
            "Returns the largest non-null value of comparable arguments (numbers, strings, bytes, \
             dates, times, timestamps).",
            extreme_type,
            |a| Ok(extreme(a, std::cmp::Ordering::Greater)),
        )
        .lenient()
        .ambiguous_when(extreme_ambiguous),
    );
    r.add(
        Scalar::new(
            "LEAST",
            CAT,
            "LEAST(value, value, …) -> common type",
            "Returns the smallest non-null value of comparable arguments (numbers, strings, bytes, \
             dates, times, timestamps).",
            extreme_type,
            |a| Ok(extreme(a, std::cmp::Ordering::Less)),
        )
        .lenient()
        .ambiguous_when(extreme_ambiguous),
    );
    r.add(
        Scalar::new(
            "GEO_DISTANCE",
            CAT,
            "GEO_DISTANCE(lat1, lon1, lat2, lon2 [, 'KM' | 'MILES']) -> DOUBLE",
            "Great-circle distance between two points given in decimal degrees, in kilometers \
         (default) or miles.",
            |a| {
                ((a.len() == 4 || a.len() == 5)
                    && a[..4].iter().all(is_num)
                    && a.get(4).is_none_or(is_str))
                .then_some(SqlType::Double)
            },
            |a| {
                // NULL or blank units are kilometers; a NULL coordinate is NULL.
                if a[..4].iter().any(Value::is_null) {
                    return Ok(Value::Null);
                }
                let radius = match a.get(4).filter(|u| !u.is_null()) {
                    None => 6371.0,
                    Some(u) => match str_of(u)?.trim().to_ascii_lowercase().as_str() {
                        "" | "km" | "kilometers" | "kilometres" | "kilometer" | "kilometre" => {
                            6371.0
                        }
                        "mi" | "miles" | "mile" => 3959.0,
                        other => {
                            return Err(runtime(format!(
                                "GEO_DISTANCE: unknown unit '{other}', expected KM or MILES"
                            )))
                        }
                    },
                };
                let (lat1, lon1, lat2, lon2) = (
                    f64_of(&a[0])?,
                    f64_of(&a[1])?,
                    f64_of(&a[2])?,
                    f64_of(&a[3])?,
                );
                if !(-90.0..=90.0).contains(&lat1)
                    || !(-90.0..=90.0).contains(&lat2)
                    || !(-180.0..=180.0).contains(&lon1)
                    || !(-180.0..=180.0).contains(&lon2)
                {
                    return Err(runtime(
                    "GEO_DISTANCE: latitudes must be in [-90, 90] and longitudes in [-180, 180]",
                ));
                }
                // The haversine formula with ksqlDB's order of operations, so
                // results agree to the last bit.
                let haversin = |x: f64| (x / 2.0).sin().powi(2);
                let h = haversin((lat2 - lat1).to_radians())
                    + haversin((lon2 - lon1).to_radians())
                        * lat1.to_radians().cos()
                        * lat2.to_radians().cos();
                Ok(Value::Double(2.0 * h.sqrt().min(1.0).asin() * radius))
            },
        )
        .lenient(),
    );
}

fn round_like(
    v: &Value,
    f: fn(f64) -> f64,
    strategy: RoundingStrategy,
) -> Result<Value, FunctionError> {
    Ok(match v {
        Value::Int(_) | Value::BigInt(_) => v.clone(),
        Value::Decimal(d) => {
            let mut r = d.round_dp_with_strategy(0, strategy);
            r.rescale(d.scale());
            Value::Decimal(r)
        }
        other => Value::Double(f(f64_of(other)?)),
    })
}

fn round_type(a: &[Ty], round: bool) -> Option<SqlType> {
    if a.is_empty() || a.len() > 2 || !is_num(&a[0]) || (a.len() == 2 && !is_int(&a[1])) {
        return None;
    }
    let t = a[0].clone().unwrap_or(SqlType::Double);
    let _ = round;
    Some(match (t, a.len()) {
        (SqlType::Decimal { precision, scale }, 1) => SqlType::Decimal {
            precision: precision.saturating_sub(scale).max(1),
            scale: 0,
        },
        (d @ SqlType::Decimal { .. }, _) => d,
        (SqlType::Int, 1) => SqlType::Int,
        (SqlType::BigInt | SqlType::Double, 1) => SqlType::BigInt,
        _ => SqlType::Double,
    })
}

/// Rounds `d` to `places` (may be negative) with `strategy`.
fn dec_round(d: Decimal, places: i64, strategy: RoundingStrategy) -> Option<Decimal> {
    if places >= 0 {
        return Some(d.round_dp_with_strategy(places.min(28) as u32, strategy));
    }
    let factor =
        Decimal::from_i128_with_scale(10i128.checked_pow(u32::try_from(-places).ok()?)?, 0);
    let shifted = d.checked_div(factor)?;
    shifted
        .round_dp_with_strategy(0, strategy)
        .checked_mul(factor)
}

/// ksqlDB's rounding: halves go up for positives, down (towards zero) for
/// negatives, i.e. always towards positive infinity.
fn half_up_strategy(d: &Decimal) -> RoundingStrategy {
    if d.is_sign_negative() {
        RoundingStrategy::MidpointTowardZero
    } else {
        RoundingStrategy::MidpointAwayFromZero
    }
}

fn round_or_trunc(a: &[Value], round: bool) -> Result<Value, FunctionError> {
    let v = arg(a, 0);
    let strategy = |d: &Decimal| {
        if round {
            half_up_strategy(d)
        } else {
            RoundingStrategy::ToZero
        }
    };
    if a.len() >= 2 {
        let places = int_of(&a[1])?;
        return match v {
            Value::Decimal(d) => {
                let mut r = dec_round(*d, places, strategy(d))
                    .ok_or_else(|| runtime("numeric overflow while rounding"))?;
                r.rescale(d.scale());
                Ok(Value::Decimal(r))
            }
            other => {
                let f = f64_of(other)?;
                if !f.is_finite() {
                    return Ok(Value::Double(f));
                }
                // As ksqlDB: round the shortest decimal text of the double.
                let dec = Decimal::from_str(&f.to_string()).ok();
                Ok(Value::Double(
                    match dec.and_then(|d| dec_round(d, places, strategy(&d))) {
                        Some(r) => rust_decimal::prelude::ToPrimitive::to_f64(&r).unwrap_or(f),
                        None => {
                            let m = 10f64.powi(places.clamp(-400, 400) as i32);
                            if round {
                                (f * m + 0.5).floor() / m
                            } else {
                                (f * m).trunc() / m
                            }
                        }
                    },
                ))
            }
        };
    }
    Ok(match v {
        Value::Int(_) => v.clone(),
        Value::BigInt(_) => v.clone(),
        Value::Decimal(d) => Value::Decimal(d.round_dp_with_strategy(0, strategy(d))),
        other => {
            let f = f64_of(other)?;
            // `as` saturates and maps NaN to 0, as Java's Math.round does.
            Value::BigInt(if round {
                (f + 0.5).floor() as i64
            } else {
                f.trunc() as i64
            })
        }
    })
}

/// ksqlDB's GREATEST/LEAST have one typing per kind (INT…, BIGINT…,
/// DOUBLE…, DECIMAL…, …): all NULLs fit every one, and numbers of mixed
/// kinds fit several unless one is a DOUBLE or all are DECIMALs.
fn extreme_ambiguous(a: &[Ty]) -> bool {
    if !a.is_empty() && a.iter().all(Option::is_none) {
        return true;
    }
    let nums: Vec<&SqlType> = a.iter().flatten().filter(|t| t.is_numeric()).collect();
    let kinds: std::collections::BTreeSet<&str> = nums.iter().map(|t| t.base_name()).collect();
    kinds.len() > 1 && !kinds.contains("DOUBLE")
}

fn extreme_type(a: &[Ty]) -> Option<SqlType> {
    if a.is_empty() {
        return None;
    }
    // Text among dates, times or timestamps reads as that type.
    let temporal = a
        .iter()
        .flatten()
        .find(|t| matches!(t, SqlType::Date | SqlType::Time | SqlType::Timestamp));
    if let Some(t) = temporal {
        let fits = a.iter().flatten().all(|x| x == t || *x == SqlType::String);
        return fits.then(|| t.clone());
    }
    let ok = a.iter().flatten().all(|t| {
        t.is_numeric()
            || matches!(
                t,
                SqlType::String
                    | SqlType::Bytes
                    | SqlType::Date
                    | SqlType::Time
                    | SqlType::Timestamp
            )
    });
    if !ok {
        return None;
    }
    common(a).map(|t| t.unwrap_or(SqlType::Int))
}

fn extreme(a: &[Value], want: std::cmp::Ordering) -> Value {
    // Text among temporal values reads as their type.
    let temporal = a
        .iter()
        .find(|v| matches!(v, Value::Date(_) | Value::Time(_) | Value::Timestamp(_)));
    let converted: Vec<Value>;
    let a = match temporal {
        Some(t) if a.iter().any(|v| matches!(v, Value::String(_))) => {
            let ty = match t {
                Value::Date(_) => SqlType::Date,
                Value::Time(_) => SqlType::Time,
                _ => SqlType::Timestamp,
            };
            converted = a
                .iter()
                .map(|v| match v {
                    Value::String(_) => crate::cast::cast(v, &ty).unwrap_or(Value::Null),
                    other => other.clone(),
                })
                .collect();
            &converted[..]
        }
        _ => a,
    };
    let mut best: Option<&Value> = None;
    for v in a.iter().filter(|v| !v.is_null()) {
        best = match best {
            Some(b) if v.sql_cmp(b) != Some(want) => Some(b),
            _ => Some(v),
        };
    }
    let Some(best) = best else {
        return Value::Null;
    };
    // Widen the winner to the arguments' common numeric kind.
    let has = |f: fn(&Value) -> bool| a.iter().any(f);
    match best {
        Value::Int(_) | Value::BigInt(_) | Value::Decimal(_) | Value::Double(_) => {
            if has(|v| matches!(v, Value::Double(_))) {
                best.as_f64().map_or(Value::Null, Value::Double)
            } else if has(|v| matches!(v, Value::Decimal(_))) {
                best.as_decimal().map_or(Value::Null, Value::Decimal)
            } else if has(|v| matches!(v, Value::BigInt(_))) {
                best.as_i64().map_or(Value::Null, Value::BigInt)
            } else {
                best.clone()
            }
        }
        _ => best.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_util::*;
    use super::*;

    fn dec(s: &str) -> Value {
        Value::Decimal(Decimal::from_str(s).expect("decimal"))
    }

    #[test]
    fn abs_ceil_floor_keep_types() {
        assert_eq!(ok("ABS", vec![i(-3)]), i(3));
        assert_eq!(ok("ABS", vec![d(-2.5)]), d(2.5));
        assert_eq!(ok("ABS", vec![dec("-1.50")]), dec("1.50"));
        assert_eq!(ok("ABS", vec![Value::Null]), Value::Null);
        assert_eq!(ok("CEIL", vec![d(1.2)]), d(2.0));
        assert_eq!(ok("FLOOR", vec![d(-1.2)]), d(-2.0));
        assert_eq!(ok("CEIL", vec![dec("1.21")]), dec("2.00"));
        assert_eq!(ty("CEIL", &[bt()]), Ok(SqlType::BigInt));
        assert!(ty("ABS", &[st()]).is_err());
        assert!(ty("ABS", &[it(), it()]).is_err());
    }

    #[test]
    fn round_follows_java_half_up() {
        assert_eq!(ok("ROUND", vec![d(1.5)]), l(2));
        assert_eq!(ok("ROUND", vec![d(-1.5)]), l(-1));
        assert_eq!(ok("ROUND", vec![d(-1.6)]), l(-2));
        assert_eq!(ok("ROUND", vec![i(7)]), i(7));
        assert_eq!(ok("ROUND", vec![d(1.255), i(2)]), d(1.26));
        assert_eq!(ok("ROUND", vec![d(-1.255), i(2)]), d(-1.25));
        assert_eq!(ok("ROUND", vec![d(12345.67), i(-2)]), d(12300.0));
        assert_eq!(ok("ROUND", vec![dec("1.25"), i(1)]), dec("1.30"));
        assert_eq!(ok("ROUND", vec![dec("2.5")]), dec("3"));
        assert_eq!(ok("ROUND", vec![d(f64::NAN)]), l(0));
        assert_eq!(ok("ROUND", vec![d(1e300), i(2)]), d(1e300));
        assert_eq!(ty("ROUND", &[dt()]), Ok(SqlType::BigInt));
        assert_eq!(ty("ROUND", &[dt(), it()]), Ok(SqlType::Double));
        assert_eq!(
            ty(
                "ROUND",
                &[Some(SqlType::Decimal {
                    precision: 5,
                    scale: 2
                })]
            ),
            Ok(SqlType::Decimal {
                precision: 3,
                scale: 0
            })
        );
        assert!(ty("ROUND", &[dt(), dt()]).is_err());
    }

    #[test]
    fn trunc_goes_towards_zero() {
        assert_eq!(ok("TRUNC", vec![d(-1.9)]), l(-1));
        assert_eq!(ok("TRUNC", vec![d(12345.67), i(-3)]), d(12000.0));
        assert_eq!(ok("TRUNC", vec![d(1.999), i(2)]), d(1.99));
        assert_eq!(ok("TRUNC", vec![dec("-1.99"), i(1)]), dec("-1.90"));
    }

    #[test]
    fn logs_powers_and_friends() {
        assert_eq!(ok("SQRT", vec![i(16)]), d(4.0));
        assert_eq!(ok("CBRT", vec![d(27.0)]), d(3.0));
        assert_eq!(ok("LOG", vec![i(100)]), d(100f64.ln()));
        assert_eq!(ok("LOG", vec![i(2), i(8)]), d(3.0));
        assert!(matches!(ok("LOG", vec![i(1), i(8)]), Value::Double(x) if x.is_nan()));
        assert_eq!(ok("LOG", vec![i(10), i(0)]), d(f64::NEG_INFINITY));
        assert_eq!(ok("POWER", vec![i(2), i(10)]), d(1024.0));
        assert_eq!(ok("SIGN", vec![d(-0.5)]), i(-1));
        assert_eq!(ok("SIGN", vec![l(0)]), i(0));
        assert_eq!(ok("SIGN", vec![Value::Null]), Value::Null);
        assert_eq!(ok("DEGREES", vec![d(std::f64::consts::PI)]), d(180.0));
        assert_eq!(ok("PI", vec![]), d(std::f64::consts::PI));
        assert!(ty("PI", &[it()]).is_err());
        for _ in 0..100 {
            let Value::Double(x) = ok("RANDOM", vec![]) else {
                panic!()
            };
            assert!((0.0..1.0).contains(&x));
        }
    }

    #[test]
    fn greatest_and_least_skip_nulls_and_widen() {
        assert_eq!(ok("GREATEST", vec![i(1), Value::Null, i(5), i(3)]), i(5));
        assert_eq!(ok("LEAST", vec![i(1), d(0.5)]), d(0.5));
        assert_eq!(ok("GREATEST", vec![i(7), d(0.5)]), d(7.0));
        assert_eq!(ok("GREATEST", vec![s("a"), s("b")]), s("b"));
        assert_eq!(ok("LEAST", vec![Value::Null, Value::Null]), Value::Null);
        assert_eq!(ty("GREATEST", &[it(), dt()]), Ok(SqlType::Double));
        assert!(ty("GREATEST", &[it(), st()]).is_err());
        assert!(ty("GREATEST", &[Some(SqlType::Boolean)]).is_err());
    }

    #[test]
    fn geo_distance() {
        let Value::Double(km) = ok(
            "GEO_DISTANCE",
            vec![d(37.4439), d(-122.1663), d(51.5257), d(-0.1122)],
        ) else {
            panic!()
        };
        assert!((km - 8634.6).abs() < 1.0, "{km}");
        let Value::Double(mi) = ok(
            "GEO_DISTANCE",
            vec![d(37.4439), d(-122.1663), d(51.5257), d(-0.1122), s("MILES")],
        ) else {
            panic!()
        };
        assert!((mi - 5365.8).abs() < 1.0, "{mi}");
        assert!(call("GEO_DISTANCE", vec![d(91.0), d(0.0), d(0.0), d(0.0)]).is_err());
        assert!(call(
            "GEO_DISTANCE",
            vec![d(1.0), d(0.0), d(0.0), d(0.0), s("parsecs")]
        )
        .is_err());
    }
}
