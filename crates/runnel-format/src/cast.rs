//! `CAST` and the reading of text as a typed value (DELIMITED fields,
//! JSON strings, map keys).

use rust_decimal::Decimal;

use crate::types::{format_date, format_time, format_timestamp, SqlType, Value, ValueError};

/// Whether a value of type `from` may be cast to `to` (checked when a
/// statement is planned).
pub fn castable(from: &SqlType, to: &SqlType) -> bool {
    use SqlType::*;
    if from == to {
        return true;
    }
    match (from, to) {
        (_, String) => true,
        (String, _) => !matches!(to, Array(_) | Map(..) | Struct(_)),
        (a, b) if a.is_numeric() && b.is_numeric() => true,
        (Boolean, Int | BigInt) => false,
        (Timestamp, Date | Time) | (Date, Timestamp) => true,
        (Array(a), Array(b)) => castable(a, b),
        (Map(ka, va), Map(kb, vb)) => castable(ka, kb) && castable(va, vb),
        (Struct(a), Struct(b)) => b.iter().all(|(n, t)| {
            a.iter()
                .find(|(m, _)| m == n)
                .is_none_or(|(_, s)| castable(s, t))
        }),
        _ => false,
    }
}

/// The integer part of a number, wide enough for any DECIMAL.
fn integer_bits(v: &Value) -> Result<i128, ValueError> {
    let d = v.as_decimal().ok_or("not a number")?.trunc();
    rust_decimal::prelude::ToPrimitive::to_i128(&d)
        .ok_or_else(|| format!("{v} is not an integer").into())
}

/// Casts a value; a value that cannot be converted (text that is not a
/// number) is an error the caller turns into null, as ksqlDB does.
pub fn cast(v: &Value, to: &SqlType) -> Result<Value, ValueError> {
    if v.is_null() {
        return Ok(Value::Null);
    }
    let out = match (v, to) {
        (_, SqlType::String) => Value::String(v.to_string()),
        (Value::String(s), _) => from_text(to, s.trim())?,
        // As Java narrows: a DOUBLE saturates, a BIGINT or DECIMAL keeps
        // its low bits (CAST(2147483648 AS INT) is -2147483648).
        (_, SqlType::Int) => match v {
            Value::Double(d) => Value::Int(d.trunc() as i32),
            _ => Value::Int(integer_bits(v)? as i32),
        },
        (_, SqlType::BigInt) => match v {
            Value::Double(d) => Value::BigInt(d.trunc() as i64),
            _ => Value::BigInt(integer_bits(v)? as i64),
        },
        (_, SqlType::Double) => Value::Double(v.as_f64().ok_or("not a number")?),
        (_, SqlType::Decimal { precision, scale }) => {
            let d = v.as_decimal().ok_or("not a number")?;
            Value::Decimal(fit_decimal(d, *precision, *scale)?)
        }
        (Value::Timestamp(t), SqlType::Date) => Value::Date(t.div_euclid(86_400_000) as i32),
        (Value::Timestamp(t), SqlType::Time) => Value::Time(t.rem_euclid(86_400_000)),
        (Value::Date(d), SqlType::Timestamp) => Value::Timestamp(i64::from(*d) * 86_400_000),
        (Value::Array(items), SqlType::Array(t)) => {
            Value::Array(items.iter().map(|x| cast(x, t)).collect::<Result<_, _>>()?)
        }
        (Value::Map(entries), SqlType::Map(kt, vt)) => Value::Map(
            entries
                .iter()
                .map(|(k, x)| Ok((cast(k, kt)?, cast(x, vt)?)))
                .collect::<Result<_, ValueError>>()?,
        ),
        (Value::Struct(fields), SqlType::Struct(types)) => Value::Struct(
            types
                .iter()
                .map(|(n, t)| {
                    let x = fields
                        .iter()
                        .find(|(m, _)| m == n)
                        .map(|(_, x)| x.clone())
                        .unwrap_or_default();
                    Ok((n.clone(), cast(&x, t)?))
                })
                .collect::<Result<_, ValueError>>()?,
        ),
        (v, t) if v.type_of().as_ref() == Some(t) => v.clone(),
        (v, t) => return Err(format!("cannot cast {v} to {t}").into()),
    };
    Ok(out)
}

/// Rounds a decimal to `scale` and checks it fits `precision` digits.
pub fn fit_decimal(mut d: Decimal, precision: u8, scale: u8) -> Result<Decimal, ValueError> {
    d = d.round_dp_with_strategy(
        u32::from(scale),
        rust_decimal::RoundingStrategy::MidpointAwayFromZero,
    );
    d.rescale(u32::from(scale));
    let digits = d.mantissa().unsigned_abs().to_string().len();
    if digits > usize::from(precision) {
        return Err(format!("{d} does not fit DECIMAL({precision}, {scale})").into());
    }
    Ok(d)
}

/// ksqlDB's exact reading of a BOOLEAN literal in a user list: any
/// non-empty prefix of `true`/`yes` or `false`/`no`, in any case.
pub fn parse_boolean_prefix(s: &str) -> Option<bool> {
    let l = s.to_ascii_lowercase();
    if l.is_empty() {
        None
    } else if "true".starts_with(&l) || "yes".starts_with(&l) {
        Some(true)
    } else if "false".starts_with(&l) || "no".starts_with(&l) {
        Some(false)
    } else {
        None
    }
}

/// Reads text as a value of type `ty`.
pub fn from_text(ty: &SqlType, s: &str) -> Result<Value, ValueError> {
    let bad = || format!("cannot read '{s}' as {ty}");
    Ok(match ty {
        SqlType::String => Value::String(s.to_string()),
        SqlType::Boolean => match s.to_ascii_lowercase().as_str() {
            "true" | "t" | "yes" | "y" => Value::Boolean(true),
            "false" | "f" | "no" | "n" => Value::Boolean(false),
            _ => return Err(bad().into()),
        },
        SqlType::Int => Value::Int(s.parse().map_err(|_| bad())?),
        SqlType::BigInt => Value::BigInt(s.parse().map_err(|_| bad())?),
        SqlType::Double => Value::Double(s.parse().map_err(|_| bad())?),
        SqlType::Decimal { precision, scale } => {
            let d: Decimal = s
                .parse()
                .or_else(|_| Decimal::from_scientific(s))
                .map_err(|_| bad())?;
            Value::Decimal(fit_decimal(d, *precision, *scale)?)
        }
        SqlType::Bytes => Value::Bytes(crate::types::base64_decode(s).ok_or_else(bad)?),
        SqlType::Date => Value::Date(parse_date(s).ok_or_else(bad)?),
        SqlType::Time => Value::Time(parse_time(s).ok_or_else(bad)?),
        SqlType::Timestamp => Value::Timestamp(parse_timestamp(s).ok_or_else(bad)?),
        SqlType::Array(_) | SqlType::Map(..) | SqlType::Struct(_) => {
            let j: serde_json::Value = serde_json::from_str(s).map_err(|_| bad())?;
            crate::format::from_json(ty, &j)?
        }
    })
}

/// `YYYY-MM-DD` as days since the epoch; as ksqlDB, a partial date
/// (`YYYY-MM`, `YYYY`) is its first day.
pub fn parse_date(s: &str) -> Option<i32> {
    let d = chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .or_else(|_| chrono::NaiveDate::parse_from_str(&format!("{s}-01"), "%Y-%m-%d"))
        .or_else(|_| chrono::NaiveDate::parse_from_str(&format!("{s}-01-01"), "%Y-%m-%d"))
        .ok()?;
    let epoch = chrono::NaiveDate::from_ymd_opt(1970, 1, 1)?;
    i32::try_from((d - epoch).num_days()).ok()
}

/// `HH:MM[:SS[.fff]]` as milliseconds since midnight.
pub fn parse_time(s: &str) -> Option<i64> {
    use chrono::Timelike;
    let t = chrono::NaiveTime::parse_from_str(s, "%H:%M:%S%.f")
        .or_else(|_| chrono::NaiveTime::parse_from_str(s, "%H:%M"))
        .ok()?;
    Some(i64::from(t.num_seconds_from_midnight()) * 1000 + i64::from(t.nanosecond() / 1_000_000))
}

/// ISO-8601 timestamps (`2026-11-25T10:00:00[.fff][Z|±hh:mm]`, a space for
/// the `T`, or a date alone) as milliseconds since the epoch, UTC when no
/// offset is given.
pub fn parse_timestamp(s: &str) -> Option<i64> {
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(s) {
        return Some(t.timestamp_millis());
    }
    for f in [
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%dT%H:%M",
    ] {
        if let Ok(t) = chrono::NaiveDateTime::parse_from_str(s, f) {
            return Some(t.and_utc().timestamp_millis());
        }
    }
    for f in ["%Y-%m-%dT%H:%M:%S%.f%:z", "%Y-%m-%dT%H:%M:%S%.f%z"] {
        if let Ok(t) = chrono::DateTime::parse_from_str(s, f) {
            return Some(t.timestamp_millis());
        }
    }
    parse_date(s).map(|d| i64::from(d) * 86_400_000)
}

/// A timestamp as ksqlDB reads text compared with ROWTIME or a window
/// bound: `yyyy[-MM[-dd[THH[:mm[:ss[.SSS]]]]]]`, the missing parts at their
/// start, optionally followed by an offset (`Z`, `+hhmm`, `+hh:mm`), UTC
/// without one. Milliseconds since the epoch.
pub fn parse_partial_timestamp(s: &str) -> Option<i64> {
    let s = s.trim();
    let (date, time) = match s.split_once('T') {
        Some((d, t)) => (d, Some(t)),
        None => (s, None),
    };
    // The offset ends the time part (a date alone takes none).
    let (time, offset_s) = match time {
        Some(t) => match t.find(['Z', '+', '-']) {
            Some(i) => (Some(&t[..i]), parse_offset(&t[i..])?),
            None => (Some(t), 0),
        },
        None => (None, 0),
    };
    let mut d = date.split('-');
    let year: i32 = d.next()?.parse().ok()?;
    let month: u32 = d.next().map_or(Some(1), |m| m.parse().ok())?;
    let day: u32 = d.next().map_or(Some(1), |m| m.parse().ok())?;
    if d.next().is_some() {
        return None;
    }
    let (mut hms, mut millis) = ([0u32; 3], 0u32);
    if let Some(t) = time {
        let (clock, frac) = match t.split_once('.') {
            Some((c, f)) => (c, Some(f)),
            None => (t, None),
        };
        let parts: Vec<&str> = clock.split(':').collect();
        if parts.len() > 3 {
            return None;
        }
        for (slot, p) in hms.iter_mut().zip(&parts) {
            *slot = p.parse().ok()?;
        }
        if let Some(f) = frac {
            if f.is_empty() || f.len() > 3 || !f.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            millis = format!("{f:0<3}").parse().ok()?;
        }
    }
    let t = chrono::NaiveDate::from_ymd_opt(year, month, day)?
        .and_hms_milli_opt(hms[0], hms[1], hms[2], millis)?;
    Some(t.and_utc().timestamp_millis() - i64::from(offset_s) * 1000)
}

/// `Z`, `+hhmm`, `+hh:mm` or `+hh` (or `-`) as seconds east of UTC.
fn parse_offset(s: &str) -> Option<i32> {
    if s == "Z" {
        return Some(0);
    }
    let sign = match s.as_bytes().first()? {
        b'+' => 1,
        b'-' => -1,
        _ => return None,
    };
    let digits: String = s[1..].chars().filter(|c| *c != ':').collect();
    if !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let (h, m) = match digits.len() {
        2 => (digits.parse::<i32>().ok()?, 0),
        4 => (
            digits[..2].parse::<i32>().ok()?,
            digits[2..].parse::<i32>().ok()?,
        ),
        _ => return None,
    };
    Some(sign * (h * 3600 + m * 60))
}

/// The text form of a temporal value, for error messages and display.
pub fn temporal_text(v: &Value) -> Option<String> {
    match v {
        Value::Date(d) => Some(format_date(*d)),
        Value::Time(t) => Some(format_time(*t)),
        Value::Timestamp(t) => Some(format_timestamp(*t)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partial_timestamps_fill_in_the_start_of_what_is_missing() {
        let p = parse_partial_timestamp;
        assert_eq!(p("2018"), Some(1_514_764_800_000));
        assert_eq!(p("2018-01"), Some(1_514_764_800_000));
        assert_eq!(p("2018-01-01T00:00:00.001"), Some(1_514_764_800_001));
        assert_eq!(p("2018-01-01T00:00:01"), Some(1_514_764_801_000));
        assert_eq!(p("2018-01-01T00"), Some(1_514_764_800_000));
        assert_eq!(p("2018-01-01T00:00:00.5"), Some(1_514_764_800_500));
        // Offsets: east of UTC is earlier.
        assert_eq!(p("2020-02-10T08:31:44.001+0000"), Some(1_581_323_504_001));
        assert_eq!(p("2019-01-01T04:45:00+0445"), Some(1_546_300_800_000));
        assert_eq!(p("2019-01-01T04:45:00+04:45"), Some(1_546_300_800_000));
        assert_eq!(p("2018-12-31T23:00:00-01"), Some(1_546_300_800_000));
        assert_eq!(p("2019-01-01T00:00:00Z"), Some(1_546_300_800_000));
        for bad in [
            "",
            "x",
            "2018-13",
            "2018-01-01T25",
            "2018-01-01T00:00:00.1234",
            "2018-01-01-01",
        ] {
            assert_eq!(p(bad), None, "{bad}");
        }
    }

    #[test]
    fn casts_follow_sql() {
        assert_eq!(
            cast(&Value::String(" 42 ".into()), &SqlType::Int),
            Ok(Value::Int(42))
        );
        assert!(cast(&Value::String("x".into()), &SqlType::Int).is_err());
        assert_eq!(cast(&Value::Double(2.9), &SqlType::Int), Ok(Value::Int(2)));
        assert_eq!(
            cast(&Value::Int(3), &SqlType::String),
            Ok(Value::String("3".into()))
        );
        assert_eq!(
            cast(
                &Value::Double(1.005),
                &SqlType::Decimal {
                    precision: 4,
                    scale: 2
                }
            ),
            Ok(Value::Decimal("1.01".parse().unwrap()))
        );
        assert!(cast(
            &Value::Int(12345),
            &SqlType::Decimal {
                precision: 4,
                scale: 2
            }
        )
        .is_err());
        assert_eq!(cast(&Value::Null, &SqlType::Int), Ok(Value::Null));
        assert!(!castable(&SqlType::Boolean, &SqlType::Int));
    }

    #[test]
    fn temporal_text_parses() {
        assert_eq!(parse_date("1970-01-02"), Some(1));
        assert_eq!(parse_date("1970-02"), Some(31));
        assert_eq!(parse_date("1971"), Some(365));
        assert_eq!(parse_date("1970-13"), None);
        assert_eq!(parse_time("00:00:01.5"), Some(1500));
        assert_eq!(parse_timestamp("1970-01-01T00:00:01Z"), Some(1000));
        assert_eq!(parse_timestamp("1970-01-01 00:00:02"), Some(2000));
        assert_eq!(parse_timestamp("1970-01-01T02:00:00+02:00"), Some(0));
    }
}
