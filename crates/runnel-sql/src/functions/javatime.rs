//! Java `DateTimeFormatter` patterns and Java zone ids, read and written as
//! ksqlDB reads and writes them (its parser is case-insensitive and fills
//! missing fields from 1970-01-01T00:00 in the zone given).
//!
//! A pattern is compiled into [`Item`]s once; [`parse`] walks the items
//! over a text and [`format`] writes them. Letters: `y u M L d D H k K h m s
//! S n A a E G` for the calendar and clock, `X x Z O` for offsets (`X`
//! writes and reads `Z` for zero), `z` for zone names (abbreviations such as
//! `PST` are read as their region, as Java does) and `VV` for zone ids.
//! Zones are fixed offsets (`+02:00`, `UTC+1`) or regions of the tz database
//! (`America/Los_Angeles`), through `chrono-tz`.

use chrono::{
    DateTime, Datelike, FixedOffset, NaiveDate, NaiveDateTime, NaiveTime, Offset, TimeZone,
    Timelike,
};
use chrono_tz::Tz;

use super::{runtime, FunctionError};

/// One element of a pattern.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Item {
    Lit(String),
    Field(char, usize),
}

/// Compiles a Java pattern.
pub(crate) fn compile(p: &str) -> Result<Vec<Item>, FunctionError> {
    let chars: Vec<char> = p.chars().collect();
    let mut out: Vec<Item> = Vec::new();
    let mut lit = String::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c == '\'' {
            if chars.get(i + 1) == Some(&'\'') {
                lit.push('\'');
                i += 2;
                continue;
            }
            i += 1;
            loop {
                match chars.get(i) {
                    None => return Err(runtime(format!("unterminated quote in pattern '{p}'"))),
                    Some('\'') if chars.get(i + 1) == Some(&'\'') => {
                        lit.push('\'');
                        i += 2;
                    }
                    Some('\'') => {
                        i += 1;
                        break;
                    }
                    Some(x) => {
                        lit.push(*x);
                        i += 1;
                    }
                }
            }
            continue;
        }
        if !c.is_ascii_alphabetic() {
            if c == '[' || c == ']' || c == '{' || c == '}' || c == '#' {
                return Err(runtime(format!(
                    "optional sections are not supported in pattern '{p}'"
                )));
            }
            lit.push(c);
            i += 1;
            continue;
        }
        let mut n = 1;
        while chars.get(i + n) == Some(&c) {
            n += 1;
        }
        let known = matches!(
            (c, n),
            ('y' | 'u', _)
                | ('M' | 'L', 1..=5)
                | ('d' | 'H' | 'k' | 'K' | 'h' | 'm' | 's', 1 | 2)
                | ('D', 1..=3)
                | ('S', 1..=9)
                | ('n' | 'A', _)
                | ('a', 1)
                | ('E', 1..=4)
                | ('G', 1..=4)
                | ('X' | 'x', 1..=5)
                | ('Z', 1..=5)
                | ('O', 1 | 4)
                | ('z', 1..=4)
                | ('V', 2)
        );
        if !known {
            return Err(runtime(format!(
                "pattern letters '{}' in '{p}' are not supported",
                c.to_string().repeat(n)
            )));
        }
        if !lit.is_empty() {
            out.push(Item::Lit(std::mem::take(&mut lit)));
        }
        out.push(Item::Field(c, n));
        i += n;
    }
    if !lit.is_empty() {
        out.push(Item::Lit(lit));
    }
    Ok(out)
}

/// A Java `ZoneId`: a fixed offset or a region.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Zone {
    Fixed(FixedOffset),
    Region(Tz),
}

impl Zone {
    pub(crate) const UTC: Zone = Zone::Region(Tz::UTC);

    /// `ZoneId.of`: `Z`, `UTC`, `GMT`, `UT` (each with an optional
    /// offset), `+02:00`, `-0530`, or a region such as `Europe/Paris`.
    pub(crate) fn of(id: &str) -> Result<Zone, FunctionError> {
        let bad = || {
            runtime(format!(
                "Unknown time-zone ID: {id} (expected a region such as Europe/Paris or an offset \
                 such as +02:00)"
            ))
        };
        let t = id.trim();
        let upper = t.to_ascii_uppercase();
        for prefix in ["UTC", "GMT", "UT", "Z"] {
            if let Some(rest) = upper.strip_prefix(prefix) {
                if rest.is_empty() {
                    return Ok(Zone::UTC);
                }
                if rest.starts_with(['+', '-']) {
                    return offset_of(rest).map(Zone::Fixed).ok_or_else(bad);
                }
            }
        }
        if t.starts_with(['+', '-']) {
            return offset_of(t).map(Zone::Fixed).ok_or_else(bad);
        }
        t.parse::<Tz>().map(Zone::Region).map_err(|_| bad())
    }

    /// The offset from UTC, in seconds, at an instant.
    pub(crate) fn offset_at(&self, utc: NaiveDateTime) -> i32 {
        match self {
            Zone::Fixed(f) => f.local_minus_utc(),
            Zone::Region(tz) => tz.offset_from_utc_datetime(&utc).fix().local_minus_utc(),
        }
    }

    /// The instant of a local date-time here (the earlier one where clocks
    /// go back, the one after the gap where they go forward, as Java).
    pub(crate) fn utc_of(&self, local: NaiveDateTime) -> NaiveDateTime {
        match self {
            Zone::Fixed(f) => local - chrono::Duration::seconds(i64::from(f.local_minus_utc())),
            Zone::Region(tz) => match tz.from_local_datetime(&local) {
                chrono::LocalResult::Single(t) | chrono::LocalResult::Ambiguous(t, _) => {
                    t.naive_utc()
                }
                chrono::LocalResult::None => {
                    // In a gap: Java moves the time forward by the gap's
                    // length, i.e. reads it with the offset before the gap.
                    let off = self.offset_at(local - chrono::Duration::days(1));
                    local - chrono::Duration::seconds(i64::from(off))
                }
            },
        }
    }

    /// The short name Java writes for `z` (e.g. `PDT`; an offset for a
    /// fixed zone).
    fn short_name(&self, utc: NaiveDateTime) -> String {
        match self {
            Zone::Fixed(f) => offset_text(f.local_minus_utc(), true, true, "Z"),
            Zone::Region(tz) => {
                let t: DateTime<Tz> = tz.from_utc_datetime(&utc);
                let abbr = t.format("%Z").to_string();
                if abbr.starts_with(['+', '-']) {
                    // No abbreviation in the database: Java writes GMT±h.
                    gmt_text(self.offset_at(utc))
                } else {
                    abbr
                }
            }
        }
    }

    fn id(&self) -> String {
        match self {
            Zone::Fixed(f) => offset_text(f.local_minus_utc(), true, true, "Z"),
            Zone::Region(tz) => tz.name().to_string(),
        }
    }
}

/// Java's zone abbreviations that name a region when read with `z`.
fn abbreviation(name: &str) -> Option<Zone> {
    let region = match name.to_ascii_uppercase().as_str() {
        "UTC" | "GMT" | "UT" | "Z" => return Some(Zone::UTC),
        "PST" | "PDT" => "America/Los_Angeles",
        "MST" | "MDT" => "America/Denver",
        "CST" | "CDT" => "America/Chicago",
        "EST" | "EDT" => "America/New_York",
        "AKST" | "AKDT" => "America/Anchorage",
        "HST" => "Pacific/Honolulu",
        "BST" => "Europe/London",
        "CET" | "CEST" => "Europe/Paris",
        "EET" | "EEST" => "Europe/Bucharest",
        "WET" | "WEST" => "Europe/Lisbon",
        "IST" => "Asia/Kolkata",
        "JST" => "Asia/Tokyo",
        "AEST" | "AEDT" => "Australia/Sydney",
        _ => return None,
    };
    region.parse::<Tz>().ok().map(Zone::Region)
}

/// `+hh`, `+hh:mm`, `+hhmm`, `+hh:mm:ss`, `+h` as a fixed offset.
fn offset_of(text: &str) -> Option<FixedOffset> {
    let (sign, digits) = match text.as_bytes().first()? {
        b'+' => (1, &text[1..]),
        b'-' => (-1, &text[1..]),
        _ => return None,
    };
    let parts: Vec<&str> = if digits.contains(':') {
        digits.split(':').collect()
    } else if digits.len() > 2 && digits.len() % 2 == 0 {
        (0..digits.len())
            .step_by(2)
            .map(|i| &digits[i..i + 2])
            .collect()
    } else {
        vec![digits]
    };
    if parts.is_empty() || parts.len() > 3 {
        return None;
    }
    let mut secs = 0i32;
    for (i, p) in parts.iter().enumerate() {
        if p.is_empty() || p.len() > 2 || !p.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        secs += p.parse::<i32>().ok()? * [3600, 60, 1][i];
    }
    FixedOffset::east_opt(sign * secs)
}

/// An offset as `+hh[:]mm[[:]ss]`, or `zero` for none.
fn offset_text(secs: i32, colon: bool, minutes: bool, zero: &str) -> String {
    if secs == 0 && !zero.is_empty() {
        return zero.to_string();
    }
    let sign = if secs < 0 { '-' } else { '+' };
    let a = secs.unsigned_abs();
    let (h, m, s) = (a / 3600, a / 60 % 60, a % 60);
    let sep = if colon { ":" } else { "" };
    let mut out = format!("{sign}{h:02}");
    if minutes || m != 0 || s != 0 {
        out.push_str(&format!("{sep}{m:02}"));
    }
    if s != 0 {
        out.push_str(&format!("{sep}{s:02}"));
    }
    out
}

/// Java's `O`: `GMT`, `GMT+8`, `GMT-5:30`.
fn gmt_text(secs: i32) -> String {
    if secs == 0 {
        return "GMT".into();
    }
    let sign = if secs < 0 { '-' } else { '+' };
    let a = secs.unsigned_abs();
    let (h, m) = (a / 3600, a / 60 % 60);
    if m == 0 {
        format!("GMT{sign}{h}")
    } else {
        format!("GMT{sign}{h}:{m:02}")
    }
}

const MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];
const DAYS: [&str; 7] = [
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
    "Sunday",
];

/// The fields a text gave.
#[derive(Debug, Default, Clone)]
pub(crate) struct Fields {
    year: Option<i64>,
    month: Option<u32>,
    day: Option<u32>,
    day_of_year: Option<u32>,
    hour: Option<u32>,
    hour12: Option<u32>,
    pm: Option<bool>,
    minute: Option<u32>,
    second: Option<u32>,
    nano: Option<u32>,
    milli_of_day: Option<u32>,
    offset: Option<i32>,
    zone: Option<Zone>,
}

fn is_numeric(item: Option<&Item>) -> bool {
    matches!(
        item,
        Some(Item::Field(
            'y' | 'u' | 'd' | 'H' | 'k' | 'K' | 'h' | 'm' | 's' | 'S' | 'n' | 'A' | 'D',
            _
        )) | Some(Item::Field('M' | 'L', 1 | 2))
    )
}

struct Reader<'a> {
    text: &'a str,
    at: usize,
}

impl Reader<'_> {
    fn rest(&self) -> &str {
        &self.text[self.at..]
    }

    fn digits(&mut self, min: usize, max: usize) -> Option<u64> {
        let n = self
            .rest()
            .bytes()
            .take(max)
            .take_while(u8::is_ascii_digit)
            .count();
        if n < min {
            return None;
        }
        let v = self.rest()[..n].parse().ok()?;
        self.at += n;
        Some(v)
    }

    /// The longest of `names` (case-insensitive) the text starts with.
    fn name(&mut self, names: &[&str]) -> Option<usize> {
        let rest = self.rest();
        let (i, len) = names
            .iter()
            .enumerate()
            .filter(|(_, n)| {
                rest.len() >= n.len()
                    && rest.is_char_boundary(n.len())
                    && rest[..n.len()].eq_ignore_ascii_case(n)
            })
            .map(|(i, n)| (i, n.len()))
            .max_by_key(|(_, l)| *l)?;
        self.at += len;
        Some(i)
    }

    /// `+hh[[:]mm[[:]ss]]`, or `Z` where allowed.
    fn offset(&mut self, z_allowed: bool) -> Option<i32> {
        let rest = self.rest();
        if z_allowed && rest.starts_with(['Z', 'z']) {
            self.at += 1;
            return Some(0);
        }
        let sign = match rest.as_bytes().first()? {
            b'+' => 1,
            b'-' => -1,
            _ => return None,
        };
        self.at += 1;
        let h = self.digits(1, 2)? as i32;
        let mut secs = h * 3600;
        for unit in [60, 1] {
            let save = self.at;
            if self.rest().starts_with(':') {
                self.at += 1;
            }
            match self.digits(2, 2) {
                Some(v) => secs += v as i32 * unit,
                None => {
                    self.at = save;
                    break;
                }
            }
        }
        Some(sign * secs)
    }
}

/// Reads all of `text` with compiled `items` (DateTimeFormatter).
pub(crate) fn parse(text: &str, items: &[Item], pattern: &str) -> Result<Fields, FunctionError> {
    read(text, items, pattern, true)
}

/// Reads the start of `text` with compiled `items`, ignoring what
/// follows, as Java's `SimpleDateFormat.parse` does.
pub(crate) fn parse_leading(
    text: &str,
    items: &[Item],
    pattern: &str,
) -> Result<Fields, FunctionError> {
    read(text, items, pattern, false)
}

fn read(text: &str, items: &[Item], pattern: &str, whole: bool) -> Result<Fields, FunctionError> {
    let fail = |at: usize| {
        runtime(format!(
            "Text '{text}' could not be parsed at index {at} with pattern '{pattern}'"
        ))
    };
    let mut r = Reader { text, at: 0 };
    let mut f = Fields::default();
    for (idx, item) in items.iter().enumerate() {
        let adjacent = is_numeric(items.get(idx + 1));
        let start = r.at;
        let ok = match item {
            Item::Lit(l) => {
                let rest = r.rest();
                if rest.len() >= l.len()
                    && rest.is_char_boundary(l.len())
                    && rest[..l.len()].eq_ignore_ascii_case(l)
                {
                    r.at += l.len();
                    true
                } else {
                    false
                }
            }
            Item::Field(c, n) => {
                let n = *n;
                let small = |r: &mut Reader<'_>, n: usize| {
                    if n == 1 && !adjacent {
                        r.digits(1, 2)
                    } else {
                        r.digits(2, 2)
                    }
                    .map(|v| v as u32)
                };
                match c {
                    'y' | 'u' => {
                        let v = if n == 2 {
                            r.digits(2, 2).map(|v| 2000 + v as i64)
                        } else if adjacent {
                            r.digits(n.max(4), n.max(4)).map(|v| v as i64)
                        } else {
                            r.digits(n, 10).map(|v| v as i64)
                        };
                        f.year = v;
                        v.is_some()
                    }
                    'M' | 'L' if n <= 2 => {
                        f.month = small(&mut r, n);
                        f.month.is_some()
                    }
                    'M' | 'L' => {
                        let full = r.name(&MONTHS);
                        let i = full.or_else(|| {
                            let short: Vec<&str> = MONTHS.iter().map(|m| &m[..3]).collect();
                            r.name(&short)
                        });
                        f.month = i.map(|i| i as u32 + 1);
                        f.month.is_some()
                    }
                    'd' => {
                        f.day = small(&mut r, n);
                        f.day.is_some()
                    }
                    'D' => {
                        f.day_of_year = match n {
                            1 => r.digits(1, 3),
                            2 => r.digits(2, 3),
                            _ => r.digits(3, 3),
                        }
                        .map(|v| v as u32);
                        f.day_of_year.is_some()
                    }
                    'H' => {
                        f.hour = small(&mut r, n);
                        f.hour.is_some()
                    }
                    'k' => {
                        f.hour = small(&mut r, n).map(|h| h % 24);
                        f.hour.is_some()
                    }
                    'K' => {
                        f.hour12 = small(&mut r, n);
                        f.hour12.is_some()
                    }
                    'h' => {
                        f.hour12 = small(&mut r, n).map(|h| h % 12);
                        f.hour12.is_some()
                    }
                    'm' => {
                        f.minute = small(&mut r, n);
                        f.minute.is_some()
                    }
                    's' => {
                        f.second = small(&mut r, n);
                        f.second.is_some()
                    }
                    'S' => {
                        f.nano = r.digits(n, n).map(|v| v as u32 * 10u32.pow(9 - n as u32));
                        f.nano.is_some()
                    }
                    'n' => {
                        f.nano = r.digits(1, 9).map(|v| v as u32);
                        f.nano.is_some()
                    }
                    'A' => {
                        f.milli_of_day = r.digits(1, 8).map(|v| v as u32);
                        f.milli_of_day.is_some()
                    }
                    'a' => {
                        f.pm = r.name(&["AM", "PM"]).map(|i| i == 1);
                        f.pm.is_some()
                    }
                    'E' => {
                        let short: Vec<&str> = DAYS.iter().map(|d| &d[..3]).collect();
                        r.name(&DAYS).or_else(|| r.name(&short)).is_some()
                    }
                    'G' => r.name(&["AD", "Anno Domini"]).is_some(),
                    'X' | 'x' | 'Z' => {
                        let z_ok = *c == 'X' || (*c == 'Z' && n == 5);
                        if *c == 'Z' && n == 4 {
                            gmt(&mut r).map(|o| f.offset = Some(o)).is_some()
                        } else {
                            f.offset = r.offset(z_ok);
                            f.offset.is_some()
                        }
                    }
                    'O' => gmt(&mut r).map(|o| f.offset = Some(o)).is_some(),
                    'z' | 'V' => {
                        let len = r
                            .rest()
                            .find(|ch: char| !(ch.is_ascii_alphanumeric() || "/_+-:".contains(ch)))
                            .unwrap_or(r.rest().len());
                        let name = &r.rest()[..len];
                        let zone = abbreviation(name).or_else(|| Zone::of(name).ok());
                        r.at += len;
                        f.zone = zone;
                        zone.is_some()
                    }
                    _ => false,
                }
            }
        };
        if !ok {
            return Err(fail(start));
        }
    }
    if whole && r.at != text.len() {
        return Err(fail(r.at));
    }
    Ok(f)
}

/// `GMT`, `GMT+8`, `GMT-05:30` (also `UTC…`).
fn gmt(r: &mut Reader<'_>) -> Option<i32> {
    r.name(&["GMT", "UTC", "UT"])?;
    Some(r.offset(false).unwrap_or(0))
}

impl Fields {
    /// The date, 1970-01-01 where fields are missing.
    pub(crate) fn date(&self) -> Result<NaiveDate, FunctionError> {
        let year =
            i32::try_from(self.year.unwrap_or(1970)).map_err(|_| runtime("year out of range"))?;
        let date = match (self.day_of_year, self.month, self.day) {
            (Some(doy), None, None) => NaiveDate::from_yo_opt(year, doy),
            (doy, m, d) => {
                let date = NaiveDate::from_ymd_opt(year, m.unwrap_or(1), d.unwrap_or(1));
                match (date, doy) {
                    (Some(dt), Some(doy)) if dt.ordinal() != doy => {
                        return Err(runtime("the day of year does not match the date"))
                    }
                    (dt, _) => dt,
                }
            }
        };
        date.ok_or_else(|| runtime("not a valid date"))
    }

    /// The time of day, midnight where fields are missing.
    pub(crate) fn time(&self) -> Result<NaiveTime, FunctionError> {
        if let Some(ms) = self.milli_of_day {
            return NaiveTime::from_num_seconds_from_midnight_opt(ms / 1000, ms % 1000 * 1_000_000)
                .ok_or_else(|| runtime("not a valid time"));
        }
        let hour = match (self.hour, self.hour12, self.pm) {
            (Some(h), _, _) => h,
            (None, Some(h), pm) => h + if pm == Some(true) { 12 } else { 0 },
            (None, None, _) => 0,
        };
        NaiveTime::from_hms_nano_opt(
            hour,
            self.minute.unwrap_or(0),
            self.second.unwrap_or(0),
            self.nano.unwrap_or(0),
        )
        .ok_or_else(|| runtime("not a valid time"))
    }

    /// Milliseconds since the epoch: in the text's offset or zone, else in
    /// `zone`.
    pub(crate) fn instant_ms(&self, zone: &Zone) -> Result<i64, FunctionError> {
        let local = self.date()?.and_time(self.time()?);
        let utc = match (self.offset, &self.zone) {
            (Some(o), _) => local - chrono::Duration::seconds(i64::from(o)),
            (None, Some(z)) => z.utc_of(local),
            (None, None) => zone.utc_of(local),
        };
        Ok(utc.and_utc().timestamp_millis())
    }
}

/// What a value to write has: a date, a time of day, and for an instant
/// its zone with the UTC date-time.
pub(crate) struct Moment<'a> {
    pub date: Option<NaiveDate>,
    pub time: Option<NaiveTime>,
    pub zone: Option<(&'a Zone, NaiveDateTime)>,
}

/// Writes a moment with compiled `items`.
pub(crate) fn format(
    m: &Moment<'_>,
    items: &[Item],
    pattern: &str,
) -> Result<String, FunctionError> {
    let missing = || {
        runtime(format!(
            "pattern '{pattern}' asks for fields this value does not have"
        ))
    };
    let mut out = String::new();
    for item in items {
        let (c, n) = match item {
            Item::Lit(l) => {
                out.push_str(l);
                continue;
            }
            Item::Field(c, n) => (*c, *n),
        };
        let date = || m.date.ok_or_else(missing);
        let time = || m.time.ok_or_else(missing);
        let zone = || m.zone.ok_or_else(missing);
        let num = |v: i64, width: usize| format!("{v:0width$}");
        let piece = match c {
            'y' | 'u' => {
                let y = i64::from(date()?.year());
                if n == 2 {
                    num(y.rem_euclid(100), 2)
                } else {
                    num(y, n)
                }
            }
            'M' | 'L' => {
                let mo = date()?.month();
                match n {
                    1 | 2 => num(i64::from(mo), n),
                    3 => MONTHS[mo as usize - 1][..3].to_string(),
                    4 => MONTHS[mo as usize - 1].to_string(),
                    _ => MONTHS[mo as usize - 1][..1].to_string(),
                }
            }
            'd' => num(i64::from(date()?.day()), n),
            'D' => num(i64::from(date()?.ordinal()), n),
            'E' => {
                let d = DAYS[date()?.weekday().num_days_from_monday() as usize];
                if n == 4 {
                    d.to_string()
                } else {
                    d[..3].to_string()
                }
            }
            'G' => if n == 4 { "Anno Domini" } else { "AD" }.to_string(),
            'H' => num(i64::from(time()?.hour()), n),
            'k' => num(
                i64::from(if time()?.hour() == 0 {
                    24
                } else {
                    time()?.hour()
                }),
                n,
            ),
            'K' => num(i64::from(time()?.hour() % 12), n),
            'h' => {
                let h = time()?.hour() % 12;
                num(i64::from(if h == 0 { 12 } else { h }), n)
            }
            'm' => num(i64::from(time()?.minute()), n),
            's' => num(i64::from(time()?.second()), n),
            'S' => {
                let nanos = format!("{:09}", time()?.nanosecond() % 1_000_000_000);
                nanos[..n.min(9)].to_string()
            }
            'n' => (time()?.nanosecond() % 1_000_000_000).to_string(),
            'A' => {
                let t = time()?;
                (i64::from(t.num_seconds_from_midnight()) * 1000
                    + i64::from(t.nanosecond() / 1_000_000))
                .to_string()
            }
            'a' => if time()?.hour() < 12 { "AM" } else { "PM" }.to_string(),
            'X' | 'x' | 'Z' | 'O' => {
                let (z, utc) = zone()?;
                let o = z.offset_at(utc);
                match (c, n) {
                    ('X', 1) => offset_text(o, false, false, "Z"),
                    ('X', 2) => offset_text(o, false, true, "Z"),
                    ('X', _) => offset_text(o, true, true, "Z"),
                    ('x', 1) => offset_text(o, false, false, ""),
                    ('x', 2) => offset_text(o, false, true, ""),
                    ('x', _) => offset_text(o, true, true, ""),
                    ('Z', 1..=3) => offset_text(o, false, true, ""),
                    ('Z', 4) | ('O', 4) => {
                        if o == 0 {
                            "GMT".into()
                        } else {
                            format!("GMT{}", offset_text(o, true, true, ""))
                        }
                    }
                    ('Z', _) => offset_text(o, true, true, "Z"),
                    _ => gmt_text(o),
                }
            }
            'z' => {
                let (z, utc) = zone()?;
                z.short_name(utc)
            }
            'V' => zone()?.0.id(),
            _ => return Err(missing()),
        };
        out.push_str(&piece);
    }
    Ok(out)
}

/// A TIMESTAMP_FORMAT, compiled once: reads a STRING column's text as
/// milliseconds since the epoch (UTC unless the text says otherwise).
#[derive(Debug, Clone)]
pub struct TimestampParser {
    pattern: String,
    items: Vec<Item>,
}

impl TimestampParser {
    pub fn new(pattern: &str) -> Result<Self, FunctionError> {
        Ok(TimestampParser {
            pattern: pattern.to_string(),
            items: compile(pattern)?,
        })
    }

    pub fn parse(&self, text: &str) -> Result<i64, FunctionError> {
        parse(text, &self.items, &self.pattern)?.instant_ms(&Zone::UTC)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(text: &str, pattern: &str, zone: &str) -> Result<i64, FunctionError> {
        let items = compile(pattern)?;
        parse(text, &items, pattern)?.instant_ms(&Zone::of(zone)?)
    }

    fn write(ms: i64, pattern: &str, zone: &str) -> String {
        let z = Zone::of(zone).expect("zone");
        let utc = DateTime::from_timestamp_millis(ms).expect("ms").naive_utc();
        let local = utc + chrono::Duration::seconds(i64::from(z.offset_at(utc)));
        let m = Moment {
            date: Some(local.date()),
            time: Some(local.time()),
            zone: Some((&z, utc)),
        };
        format(&m, &compile(pattern).expect("pattern"), pattern).expect("format")
    }

    #[test]
    fn reads_offsets_zulu_and_short_fractions() {
        let p = "yyyy-MM-dd'T'HH:mm:ssX";
        assert_eq!(ms("2018-05-11T21:58:33Z", p, "UTC"), Ok(1_526_075_913_000));
        assert_eq!(
            ms("2018-05-11T23:58:33+02", p, "UTC"),
            Ok(1_526_075_913_000)
        );
        let p = "yyyy-MM-dd'T'HH:mm:ss.SX";
        assert_eq!(
            ms("2019-08-27T13:31:09.2+0000", p, "UTC"),
            Ok(1_566_912_669_200)
        );
        assert_eq!(
            ms("10-04-19 12:00:17Z", "yy-MM-dd HH:mm:ssX", "UTC"),
            Ok(1_271_678_417_000)
        );
        assert!(ms("!!!!", "yy-MM-dd HH:mm:ssX", "UTC").is_err());
        assert!(ms("2018-05-11T21:58:33Zjunk", "yyyy-MM-dd'T'HH:mm:ssX", "UTC").is_err());
    }

    #[test]
    fn reads_zone_names_as_their_regions() {
        // PST read in May is Los Angeles' daylight time, as in Java.
        let p = "yyyy-MM-dd'T'HH:mm:ss zzz";
        assert_eq!(
            ms("2018-05-11T21:58:33 PST", p, "UTC"),
            Ok(1_526_101_113_000)
        );
        assert_eq!(
            ms(
                "2018-05-11 14:58:33",
                "yyyy-MM-dd HH:mm:ss",
                "America/Los_Angeles"
            ),
            Ok(1_526_075_913_000)
        );
        assert_eq!(ms("20180511", "yyyyMMdd", "UTC"), Ok(1_525_996_800_000));
        assert_eq!(
            ms("11 may 2018 3 pm", "d MMM yyyy h a", "UTC"),
            Ok(1_526_050_800_000)
        );
    }

    #[test]
    fn writes_as_java_does() {
        let t = 1_526_075_913_000;
        assert_eq!(
            write(t, "yyyy-MM-dd HH:mm:ss zzz", "America/Los_Angeles"),
            "2018-05-11 14:58:33 PDT"
        );
        assert_eq!(
            write(t, "yyyy-MM-dd HH:mm:ss zzz", "Europe/London"),
            "2018-05-11 22:58:33 BST"
        );
        assert_eq!(write(t, "HH:mmX", "UTC"), "21:58Z");
        assert_eq!(write(t, "HH:mmXXX", "+05:30"), "03:28+05:30");
        assert_eq!(write(t, "HH:mm Z", "UTC"), "21:58 +0000");
        assert_eq!(
            write(t, "EEEE d MMMM yy, h a", "UTC"),
            "Friday 11 May 18, 9 PM"
        );
        assert_eq!(write(t + 7, "ss.SSS", "UTC"), "33.007");
    }

    #[test]
    fn zone_ids() {
        let at = NaiveDateTime::default();
        assert_eq!(Zone::of("UTC").map(|z| z.offset_at(at)), Ok(0));
        assert_eq!(Zone::of("+02:00").map(|z| z.offset_at(at)), Ok(7200));
        assert_eq!(Zone::of("-0530").map(|z| z.offset_at(at)), Ok(-19800));
        assert_eq!(Zone::of("GMT+1").map(|z| z.offset_at(at)), Ok(3600));
        assert_eq!(Zone::of("Europe/Paris").map(|z| z.offset_at(at)), Ok(3600));
        assert!(Zone::of("Mars/Olympus").is_err());
        assert!(Zone::of("+2x").is_err());
        assert!(compile("yyyy-MM-dd [HH]").is_err());
        assert!(compile("'open").is_err());
    }
}
