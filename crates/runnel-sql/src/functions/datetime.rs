//! Dates, times and timestamps: arithmetic, UNIX conversions, and parsing
//! and formatting with Java `DateTimeFormatter` patterns.
//!
//! Patterns and zones are read and written by [`super::javatime`].

use chrono::{DateTime, NaiveDate, NaiveTime, Timelike, Utc};

use super::javatime::{self, compile, Moment, Zone};

use super::string::args_are;
use super::*;

const CAT: &str = "DATE / TIME";
const DAY_MS: i64 = 86_400_000;

fn is_ts(t: &Ty) -> bool {
    is_type(t, SqlType::Timestamp)
}
fn is_date(t: &Ty) -> bool {
    is_type(t, SqlType::Date)
}
fn is_time(t: &Ty) -> bool {
    is_type(t, SqlType::Time)
}

fn zone_arg(a: &[Value], i: usize) -> Result<Zone, FunctionError> {
    match a.get(i) {
        None | Some(Value::Null) => Ok(Zone::UTC),
        Some(v) => Zone::of(str_of(v)?),
    }
}

fn epoch() -> NaiveDate {
    NaiveDate::from_ymd_opt(1970, 1, 1).unwrap_or_default()
}

fn date_of_days(days: i64) -> Result<NaiveDate, FunctionError> {
    epoch()
        .checked_add_signed(
            chrono::Duration::try_days(days).ok_or_else(|| runtime("date out of range"))?,
        )
        .ok_or_else(|| runtime("date out of range"))
}

fn days_of_date(d: NaiveDate) -> Result<i32, FunctionError> {
    i32::try_from((d - epoch()).num_days()).map_err(|_| runtime("date out of range"))
}

fn time_of_ms(ms: i64) -> Result<NaiveTime, FunctionError> {
    let ms = ms.rem_euclid(DAY_MS);
    NaiveTime::from_num_seconds_from_midnight_opt(
        (ms / 1000) as u32,
        ((ms % 1000) * 1_000_000) as u32,
    )
    .ok_or_else(|| runtime("time out of range"))
}

fn ms_of_time(t: NaiveTime) -> i64 {
    i64::from(t.num_seconds_from_midnight()) * 1000 + i64::from(t.nanosecond() / 1_000_000)
}

fn format_date_value(days: i64, pattern: &str) -> Result<Value, FunctionError> {
    let m = Moment {
        date: Some(date_of_days(days)?),
        time: None,
        zone: None,
    };
    Ok(Value::String(javatime::format(
        &m,
        &compile(pattern)?,
        pattern,
    )?))
}

fn format_time_value(ms: i64, pattern: &str) -> Result<Value, FunctionError> {
    let m = Moment {
        date: None,
        time: Some(time_of_ms(ms)?),
        zone: None,
    };
    Ok(Value::String(javatime::format(
        &m,
        &compile(pattern)?,
        pattern,
    )?))
}

fn format_ts_value(ms: i64, pattern: &str, tz: Zone) -> Result<Value, FunctionError> {
    let utc = DateTime::from_timestamp_millis(ms)
        .ok_or_else(|| runtime("timestamp out of range"))?
        .naive_utc();
    let local = utc + chrono::Duration::seconds(i64::from(tz.offset_at(utc)));
    let m = Moment {
        date: Some(local.date()),
        time: Some(local.time()),
        zone: Some((&tz, utc)),
    };
    Ok(Value::String(javatime::format(
        &m,
        &compile(pattern)?,
        pattern,
    )?))
}

/// Reads `text` with a Java pattern.
fn parse_fields(text: &str, pattern: &str) -> Result<javatime::Fields, FunctionError> {
    javatime::parse(text, &compile(pattern)?, pattern)
}

/// Milliseconds since the epoch of a text read with a Java pattern, in
/// `tz` unless the text names its offset or zone (ksqlDB's
/// StringToTimestampParser; also the TIMESTAMP_FORMAT of a source).
pub(crate) fn parse_ts_value(text: &str, pattern: &str, tz: Zone) -> Result<i64, FunctionError> {
    parse_fields(text, pattern)?.instant_ms(&tz)
}

/// Milliseconds in one of Java's `TimeUnit`s.
fn unit_ms(unit: &str) -> Result<i64, FunctionError> {
    let u = unit.trim().to_ascii_uppercase();
    let u = u.strip_suffix('S').unwrap_or(&u);
    Ok(match u {
        "MILLISECOND" => 1,
        "SECOND" => 1000,
        "MINUTE" => 60_000,
        "HOUR" => 3_600_000,
        "DAY" => DAY_MS,
        _ => {
            return Err(runtime(format!(
                "unknown time unit '{unit}', expected MILLISECONDS, SECONDS, MINUTES, HOURS or \
                 DAYS"
            )))
        }
    })
}

/// `interval` `unit`s in milliseconds.
fn interval_ms(a: &[Value]) -> Result<i64, FunctionError> {
    unit_ms(str_of(&a[0])?)?
        .checked_mul(int_of(&a[1])?)
        .ok_or_else(|| runtime("interval out of range"))
}

fn add_type(target: fn(&Ty) -> bool, out: SqlType) -> impl Fn(&[Ty]) -> Option<SqlType> {
    move |a| args_are(a, &[is_str, is_int, target]).then(|| out.clone())
}

pub(super) fn register(r: &mut FunctionRegistry) {
    register_unix(r);
    register_arithmetic(r);
    register_formats(r);
    register_legacy(r);
}

fn register_unix(r: &mut FunctionRegistry) {
    r.add(Scalar::new(
        "UNIX_TIMESTAMP",
        CAT,
        "UNIX_TIMESTAMP([TIMESTAMP]) -> BIGINT",
        "Milliseconds since the epoch of the timestamp, or of now.",
        |a| (a.len() <= 1 && a.iter().all(is_ts)).then_some(SqlType::BigInt),
        |a| {
            Ok(Value::BigInt(match a.first() {
                Some(Value::Timestamp(t)) => *t,
                Some(v) => int_of(v)?,
                None => Utc::now().timestamp_millis(),
            }))
        },
    ));
    r.add(Scalar::new(
        "UNIX_DATE",
        CAT,
        "UNIX_DATE([DATE]) -> INT",
        "Days since the epoch of the date, or of today (UTC).",
        |a| (a.len() <= 1 && a.iter().all(is_date)).then_some(SqlType::Int),
        |a| {
            Ok(Value::Int(match a.first() {
                Some(Value::Date(d)) => *d,
                Some(_) => return Err(runtime("UNIX_DATE expects a DATE")),
                None => days_of_date(Utc::now().date_naive())?,
            }))
        },
    ));
    r.add(Scalar::new(
        "FROM_UNIXTIME",
        CAT,
        "FROM_UNIXTIME(BIGINT) -> TIMESTAMP",
        "The timestamp of milliseconds since the epoch.",
        |a| args_are(a, &[is_int]).then_some(SqlType::Timestamp),
        |a| Ok(Value::Timestamp(int_of(&a[0])?)),
    ));
    r.add(Scalar::new(
        "FROM_DAYS",
        CAT,
        "FROM_DAYS(INT) -> DATE",
        "The date of days since the epoch.",
        |a| args_are(a, &[is_int]).then_some(SqlType::Date),
        |a| {
            Ok(Value::Date(
                i32::try_from(int_of(&a[0])?).map_err(|_| runtime("date out of range"))?,
            ))
        },
    ));
}

fn register_arithmetic(r: &mut FunctionRegistry) {
    fn shift_date(a: &[Value], sign: i64) -> Result<Value, FunctionError> {
        let Value::Date(d) = a[2] else {
            return Err(runtime("expected a DATE"));
        };
        // Whole days only, as Java's TimeUnit.toDays truncates.
        let days = sign * (interval_ms(a)? / DAY_MS);
        Ok(Value::Date(
            i32::try_from(i64::from(d) + days).map_err(|_| runtime("date out of range"))?,
        ))
    }
    fn shift_time(a: &[Value], sign: i64) -> Result<Value, FunctionError> {
        let Value::Time(t) = a[2] else {
            return Err(runtime("expected a TIME"));
        };
        Ok(Value::Time(
            (i128::from(t) + i128::from(sign) * i128::from(interval_ms(a)?))
                .rem_euclid(i128::from(DAY_MS)) as i64,
        ))
    }
    fn shift_ts(a: &[Value], sign: i64) -> Result<Value, FunctionError> {
        let Value::Timestamp(t) = a[2] else {
            return Err(runtime("expected a TIMESTAMP"));
        };
        interval_ms(a)?
            .checked_mul(sign)
            .and_then(|d| t.checked_add(d))
            .map(Value::Timestamp)
            .ok_or_else(|| runtime("timestamp out of range"))
    }
    r.add(Scalar::new(
        "DATEADD",
        CAT,
        "DATEADD(unit, INT, DATE) -> DATE",
        "Adds an interval of whole days (MILLISECONDS … DAYS, truncated to days) to a date.",
        |a| add_type(is_date, SqlType::Date)(a),
        |a| shift_date(a, 1),
    ));
    r.add(Scalar::new(
        "DATESUB",
        CAT,
        "DATESUB(unit, INT, DATE) -> DATE",
        "Subtracts an interval of whole days (MILLISECONDS … DAYS, truncated to days) from a \
         date.",
        |a| add_type(is_date, SqlType::Date)(a),
        |a| shift_date(a, -1),
    ));
    r.add(Scalar::new(
        "TIMEADD",
        CAT,
        "TIMEADD(unit, INT, TIME) -> TIME",
        "Adds an interval to a time, wrapping around midnight.",
        |a| add_type(is_time, SqlType::Time)(a),
        |a| shift_time(a, 1),
    ));
    r.add(Scalar::new(
        "TIMESUB",
        CAT,
        "TIMESUB(unit, INT, TIME) -> TIME",
        "Subtracts an interval from a time, wrapping around midnight.",
        |a| add_type(is_time, SqlType::Time)(a),
        |a| shift_time(a, -1),
    ));
    r.add(Scalar::new(
        "TIMESTAMPADD",
        CAT,
        "TIMESTAMPADD(unit, INT | BIGINT, TIMESTAMP) -> TIMESTAMP",
        "Adds an interval to a timestamp.",
        |a| add_type(is_ts, SqlType::Timestamp)(a),
        |a| shift_ts(a, 1),
    ));
    r.add(Scalar::new(
        "TIMESTAMPSUB",
        CAT,
        "TIMESTAMPSUB(unit, INT | BIGINT, TIMESTAMP) -> TIMESTAMP",
        "Subtracts an interval from a timestamp.",
        |a| add_type(is_ts, SqlType::Timestamp)(a),
        |a| shift_ts(a, -1),
    ));
}

fn register_formats(r: &mut FunctionRegistry) {
    r.add(Scalar::new(
        "PARSE_DATE",
        CAT,
        "PARSE_DATE(STRING, pattern) -> DATE",
        "Reads a date written in a Java DateTimeFormatter pattern such as 'yyyy-MM-dd'.",
        |a| args_are(a, &[is_str, is_str]).then_some(SqlType::Date),
        |a| {
            // ksqlDB reads it with SimpleDateFormat: text after the date
            // is ignored.
            let pattern = str_of(&a[1])?;
            let p = javatime::parse_leading(str_of(&a[0])?, &compile(pattern)?, pattern)?;
            Ok(Value::Date(days_of_date(p.date()?)?))
        },
    ));
    r.add(Scalar::new(
        "FORMAT_DATE",
        CAT,
        "FORMAT_DATE(DATE, pattern) -> STRING",
        "Writes a date in a Java DateTimeFormatter pattern such as 'yyyy-MM-dd'.",
        |a| args_are(a, &[is_date, is_str]).then_some(SqlType::String),
        |a| match &a[0] {
            Value::Date(d) => format_date_value(i64::from(*d), str_of(&a[1])?),
            _ => Err(runtime("FORMAT_DATE expects a DATE")),
        },
    ));
    r.add(Scalar::new(
        "PARSE_TIME",
        CAT,
        "PARSE_TIME(STRING, pattern) -> TIME",
        "Reads a time written in a Java DateTimeFormatter pattern such as 'HH:mm:ss'.",
        |a| args_are(a, &[is_str, is_str]).then_some(SqlType::Time),
        |a| {
            let p = parse_fields(str_of(&a[0])?, str_of(&a[1])?)?;
            Ok(Value::Time(ms_of_time(p.time()?)))
        },
    ));
    r.add(Scalar::new(
        "FORMAT_TIME",
        CAT,
        "FORMAT_TIME(TIME, pattern) -> STRING",
        "Writes a time in a Java DateTimeFormatter pattern such as 'HH:mm:ss'.",
        |a| args_are(a, &[is_time, is_str]).then_some(SqlType::String),
        |a| match &a[0] {
            Value::Time(t) => format_time_value(*t, str_of(&a[1])?),
            _ => Err(runtime("FORMAT_TIME expects a TIME")),
        },
    ));
    r.add(Scalar::new(
        "PARSE_TIMESTAMP",
        CAT,
        "PARSE_TIMESTAMP(STRING, pattern [, timeZone]) -> TIMESTAMP",
        "Reads a timestamp written in a Java DateTimeFormatter pattern such as \
         'yyyy-MM-dd HH:mm:ss.SSS', in the time zone (default UTC) unless the text has an offset.",
        |a| ((a.len() == 2 || a.len() == 3) && a.iter().all(is_str)).then_some(SqlType::Timestamp),
        |a| {
            Ok(Value::Timestamp(parse_ts_value(
                str_of(&a[0])?,
                str_of(&a[1])?,
                zone_arg(a, 2)?,
            )?))
        },
    ));
    r.add(Scalar::new(
        "FORMAT_TIMESTAMP",
        CAT,
        "FORMAT_TIMESTAMP(TIMESTAMP, pattern [, timeZone]) -> STRING",
        "Writes a timestamp in a Java DateTimeFormatter pattern such as \
         'yyyy-MM-dd HH:mm:ss.SSS', in the time zone (default UTC).",
        |a| {
            ((a.len() == 2 || a.len() == 3) && is_ts(&a[0]) && a[1..].iter().all(is_str))
                .then_some(SqlType::String)
        },
        |a| match &a[0] {
            Value::Timestamp(t) => format_ts_value(*t, str_of(&a[1])?, zone_arg(a, 2)?),
            _ => Err(runtime("FORMAT_TIMESTAMP expects a TIMESTAMP")),
        },
    ));
    r.add(Scalar::new(
        "CONVERT_TZ",
        CAT,
        "CONVERT_TZ(TIMESTAMP, fromTimeZone, toTimeZone) -> TIMESTAMP",
        "Shifts a timestamp read as local time in one time zone to the local time of another.",
        |a| args_are(a, &[is_ts, is_str, is_str]).then_some(SqlType::Timestamp),
        |a| {
            let Value::Timestamp(t) = a[0] else {
                return Err(runtime("CONVERT_TZ expects a TIMESTAMP"));
            };
            // Shifted by the difference of the zones' offsets at that
            // instant, as ksqlDB does.
            let (from, to) = (Zone::of(str_of(&a[1])?)?, Zone::of(str_of(&a[2])?)?);
            let utc = DateTime::from_timestamp_millis(t)
                .ok_or_else(|| runtime("timestamp out of range"))?
                .naive_utc();
            let shift = i64::from(to.offset_at(utc) - from.offset_at(utc)) * 1000;
            t.checked_add(shift)
                .map(Value::Timestamp)
                .ok_or_else(|| runtime("timestamp out of range"))
        },
    ));
}

/// The names ksqlDB deprecated but old queries still use.
fn register_legacy(r: &mut FunctionRegistry) {
    r.add(Scalar::new(
        "STRINGTODATE",
        CAT,
        "STRINGTODATE(STRING, pattern) -> INT",
        "Deprecated (use PARSE_DATE): days since the epoch of a date read with a Java pattern.",
        |a| args_are(a, &[is_str, is_str]).then_some(SqlType::Int),
        |a| {
            let p = parse_fields(str_of(&a[0])?, str_of(&a[1])?)?;
            Ok(Value::Int(days_of_date(p.date()?)?))
        },
    ));
    r.add(Scalar::new(
        "DATETOSTRING",
        CAT,
        "DATETOSTRING(INT, pattern) -> STRING",
        "Deprecated (use FORMAT_DATE): writes days since the epoch as a date with a Java \
         pattern.",
        |a| args_are(a, &[is_int, is_str]).then_some(SqlType::String),
        |a| format_date_value(int_of(&a[0])?, str_of(&a[1])?),
    ));
    r.add(Scalar::new(
        "STRINGTOTIMESTAMP",
        CAT,
        "STRINGTOTIMESTAMP(STRING, pattern [, timeZone]) -> BIGINT",
        "Deprecated (use PARSE_TIMESTAMP): milliseconds since the epoch of a timestamp read \
         with a Java pattern.",
        |a| ((a.len() == 2 || a.len() == 3) && a.iter().all(is_str)).then_some(SqlType::BigInt),
        |a| {
            Ok(Value::BigInt(parse_ts_value(
                str_of(&a[0])?,
                str_of(&a[1])?,
                zone_arg(a, 2)?,
            )?))
        },
    ));
    r.add(Scalar::new(
        "TIMESTAMPTOSTRING",
        CAT,
        "TIMESTAMPTOSTRING(BIGINT, pattern [, timeZone]) -> STRING",
        "Deprecated (use FORMAT_TIMESTAMP): writes milliseconds since the epoch with a Java \
         pattern.",
        |a| {
            ((a.len() == 2 || a.len() == 3) && is_int(&a[0]) && a[1..].iter().all(is_str))
                .then_some(SqlType::String)
        },
        |a| format_ts_value(int_of(&a[0])?, str_of(&a[1])?, zone_arg(a, 2)?),
    ));
}

#[cfg(test)]
mod tests {
    use super::super::test_util::*;
    use super::*;

    const N: Value = Value::Null;

    fn date(s: &str) -> Value {
        Value::Date(crate::cast::parse_date(s).expect("date"))
    }
    fn time(s: &str) -> Value {
        Value::Time(crate::cast::parse_time(s).expect("time"))
    }
    fn ts(s: &str) -> Value {
        Value::Timestamp(crate::cast::parse_timestamp(s).expect("timestamp"))
    }
    fn tst() -> Ty {
        Some(SqlType::Timestamp)
    }

    #[test]
    fn unix_conversions() {
        assert_eq!(ok("UNIX_TIMESTAMP", vec![Value::Timestamp(1234)]), l(1234));
        assert_eq!(ok("UNIX_TIMESTAMP", vec![N]), N);
        let Value::BigInt(now) = ok("UNIX_TIMESTAMP", vec![]) else {
            panic!()
        };
        assert!(now > 1_600_000_000_000);
        assert_eq!(ok("UNIX_DATE", vec![date("1970-01-11")]), i(10));
        let Value::Int(today) = ok("UNIX_DATE", vec![]) else {
            panic!()
        };
        assert!(today > 18_000);
        assert!(ty("UNIX_DATE", &[st()]).is_err());
        assert_eq!(ok("FROM_UNIXTIME", vec![l(5)]), Value::Timestamp(5));
        assert_eq!(ok("FROM_DAYS", vec![i(1)]), date("1970-01-02"));
        assert_eq!(ok("FROM_DAYS", vec![N]), N);
        assert!(ty("FROM_DAYS", &[st()]).is_err());
    }

    #[test]
    fn interval_arithmetic() {
        assert_eq!(
            ok("DATEADD", vec![s("DAYS"), i(3), date("2020-02-27")]),
            date("2020-03-01")
        );
        assert_eq!(
            ok("DATEADD", vec![s("hours"), i(49), date("2020-01-01")]),
            date("2020-01-03")
        );
        assert_eq!(
            ok("DATESUB", vec![s("DAYS"), i(1), date("2020-01-01")]),
            date("2019-12-31")
        );
        assert_eq!(
            ok("TIMEADD", vec![s("HOURS"), i(2), time("23:30:00")]),
            time("01:30:00")
        );
        assert_eq!(
            ok("TIMESUB", vec![s("MINUTES"), i(31), time("00:30:00")]),
            time("23:59:00")
        );
        assert_eq!(
            ok(
                "TIMESTAMPADD",
                vec![s("SECONDS"), i(90), ts("2020-01-01T00:00:00")]
            ),
            ts("2020-01-01T00:01:30")
        );
        assert_eq!(
            ok(
                "TIMESTAMPSUB",
                vec![s("MILLISECONDS"), l(1), ts("2020-01-01T00:00:00")]
            ),
            ts("2019-12-31T23:59:59.999")
        );
        assert_eq!(ok("DATEADD", vec![s("DAYS"), N, date("2020-01-01")]), N);
        assert!(call(
            "TIMESTAMPSUB",
            vec![s("MILLISECONDS"), l(i64::MIN), Value::Timestamp(0)]
        )
        .is_err());
        assert!(call("DATEADD", vec![s("FORTNIGHTS"), i(1), date("2020-01-01")]).is_err());
        assert!(ty("DATEADD", &[st(), it(), tst()]).is_err());
        assert!(ty("TIMESTAMPADD", &[st(), st(), tst()]).is_err());
    }

    #[test]
    fn parse_and_format_dates_and_times() {
        assert_eq!(
            ok("PARSE_DATE", vec![s("25/11/2026"), s("dd/MM/yyyy")]),
            date("2026-11-25")
        );
        assert_eq!(
            ok("PARSE_DATE", vec![s("2026-11"), s("yyyy-MM")]),
            date("2026-11-01")
        );
        assert!(call("PARSE_DATE", vec![s("2026-13-01"), s("yyyy-MM-dd")]).is_err());
        // Text after the date is ignored, as SimpleDateFormat does.
        assert_eq!(
            call("PARSE_DATE", vec![s("2026-11-25-01-01"), s("yyyy-MM-dd")]).ok(),
            call("PARSE_DATE", vec![s("2026-11-25"), s("yyyy-MM-dd")]).ok()
        );
        assert_eq!(
            ok("FORMAT_DATE", vec![date("2026-11-05"), s("d MMMM yyyy")]),
            s("5 November 2026")
        );
        assert!(call("FORMAT_DATE", vec![date("2026-11-05"), s("HH:mm")]).is_err());
        assert_eq!(ok("FORMAT_DATE", vec![N, s("yyyy")]), N);
        assert!(ty("FORMAT_DATE", &[st(), st()]).is_err());
        assert_eq!(
            ok("PARSE_TIME", vec![s("10:11:12.345"), s("HH:mm:ss.SSS")]),
            time("10:11:12.345")
        );
        assert_eq!(
            ok("PARSE_TIME", vec![s("3 PM"), s("h a")]),
            time("15:00:00")
        );
        assert_eq!(
            ok("FORMAT_TIME", vec![time("01:02:03.004"), s("HH:mm:ss.SSS")]),
            s("01:02:03.004")
        );
        assert!(ty("PARSE_TIME", &[st(), it()]).is_err());
    }

    #[test]
    fn parse_and_format_timestamps_with_zones() {
        let t = ok(
            "PARSE_TIMESTAMP",
            vec![s("2026-11-25 10:00:00.250"), s("yyyy-MM-dd HH:mm:ss.SSS")],
        );
        assert_eq!(t, ts("2026-11-25T10:00:00.250"));
        assert_eq!(
            ok(
                "PARSE_TIMESTAMP",
                vec![s("2026-11-25 12:00"), s("yyyy-MM-dd HH:mm"), s("+02:00")]
            ),
            ts("2026-11-25T10:00:00")
        );
        assert_eq!(
            ok(
                "PARSE_TIMESTAMP",
                vec![s("2026-11-25T12:00:00+0100"), s("yyyy-MM-dd'T'HH:mm:ssZ")]
            ),
            ts("2026-11-25T11:00:00")
        );
        assert!(call("PARSE_TIMESTAMP", vec![s("nope"), s("yyyy")]).is_err());
        assert!(call(
            "PARSE_TIMESTAMP",
            vec![s("2026"), s("yyyy"), s("Mars/Olympus")]
        )
        .is_err());
        assert_eq!(
            ok(
                "FORMAT_TIMESTAMP",
                vec![t.clone(), s("yyyy-MM-dd HH:mm:ss.SSS")]
            ),
            s("2026-11-25 10:00:00.250")
        );
        assert_eq!(
            ok(
                "FORMAT_TIMESTAMP",
                vec![t.clone(), s("HH:mm XXX"), s("-05:00")]
            ),
            s("05:00 -05:00")
        );
        assert_eq!(ok("FORMAT_TIMESTAMP", vec![N, s("yyyy")]), N);
        assert!(ty("FORMAT_TIMESTAMP", &[bt(), st()]).is_err());
        assert_eq!(
            ok("CONVERT_TZ", vec![t, s("UTC"), s("+01:00")]),
            ts("2026-11-25T11:00:00.250")
        );
    }

    #[test]
    fn legacy_names() {
        assert_eq!(
            ok("STRINGTODATE", vec![s("1970-01-03"), s("yyyy-MM-dd")]),
            i(2)
        );
        assert_eq!(
            ok("DATETOSTRING", vec![i(2), s("yyyy-MM-dd")]),
            s("1970-01-03")
        );
        assert_eq!(
            ok(
                "STRINGTOTIMESTAMP",
                vec![s("1970-01-01 00:00:01"), s("yyyy-MM-dd HH:mm:ss")]
            ),
            l(1000)
        );
        assert_eq!(
            ok(
                "TIMESTAMPTOSTRING",
                vec![l(1000), s("yyyy-MM-dd HH:mm:ss"), s("UTC+1")]
            ),
            s("1970-01-01 01:00:01")
        );
        assert!(ty("DATETOSTRING", &[st(), st()]).is_err());
        assert_eq!(ok("STRINGTODATE", vec![N, s("yyyy")]), N);
    }
}
