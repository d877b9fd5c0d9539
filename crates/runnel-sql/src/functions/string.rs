//! Text and bytes functions: CONCAT, SUBSTRING, LPAD, SPLIT, MASK, regular
//! expressions, encodings, …

use std::cell::RefCell;

use regex::Regex;

use super::*;
use crate::types::{base64_decode, base64_encode};

const CAT: &str = "STRING";
const REGEX: &str = "REGULAR EXPRESSION";

/// Whether the argument types pass the checks one for one.
pub(crate) fn args_are(a: &[Ty], checks: &[fn(&Ty) -> bool]) -> bool {
    a.len() == checks.len() && a.iter().zip(checks).all(|(t, c)| c(t))
}

/// A compiled regular expression, cached per thread (patterns are almost
/// always literals, so the cache stays small).
pub(crate) fn regex(pattern: &str) -> Result<Regex, FunctionError> {
    thread_local! {
        static CACHE: RefCell<HashMap<String, Regex>> = RefCell::new(HashMap::new());
    }
    CACHE.with(|c| {
        if let Some(r) = c.borrow().get(pattern) {
            return Ok(r.clone());
        }
        let r = Regex::new(pattern)
            .map_err(|e| runtime(format!("bad regular expression '{pattern}': {e}")))?;
        let mut c = c.borrow_mut();
        if c.len() >= 256 {
            c.clear();
        }
        c.insert(pattern.to_string(), r.clone());
        Ok(r)
    })
}

fn string(s: impl Into<String>) -> Value {
    Value::String(s.into())
}

fn str_array(items: impl IntoIterator<Item = String>) -> Value {
    Value::Array(items.into_iter().map(Value::String).collect())
}

fn str_type(a: &[Ty]) -> Option<SqlType> {
    args_are(a, &[is_str]).then_some(SqlType::String)
}

/// STRING or BYTES, the same for every argument; returns that type.
fn text_or_bytes(a: &[Ty]) -> Option<SqlType> {
    if a.iter().all(is_str) {
        Some(SqlType::String)
    } else if a.iter().all(is_bytes) {
        Some(SqlType::Bytes)
    } else {
        None
    }
}

/// Text as a char vector, or bytes, for position-based functions.
enum Seq {
    Chars(Vec<char>),
    Bytes(Vec<u8>),
}

impl Seq {
    fn of(v: &Value) -> Result<Seq, FunctionError> {
        match v {
            Value::String(s) => Ok(Seq::Chars(s.chars().collect())),
            Value::Bytes(b) => Ok(Seq::Bytes(b.clone())),
            _ => Err(runtime("expected a STRING or BYTES")),
        }
    }
    fn len(&self) -> usize {
        match self {
            Seq::Chars(c) => c.len(),
            Seq::Bytes(b) => b.len(),
        }
    }
    fn slice(&self, from: usize, to: usize) -> Value {
        match self {
            Seq::Chars(c) => Value::String(c[from..to].iter().collect()),
            Seq::Bytes(b) => Value::Bytes(b[from..to].to_vec()),
        }
    }
}

pub(super) fn register(r: &mut FunctionRegistry) {
    register_basic(r);
    register_padding_and_positions(r);
    register_masks(r);
    register_regex(r);
    register_encodings(r);
    register_urls(r);
    register_byte_numbers(r);
}

fn register_basic(r: &mut FunctionRegistry) {
    r.add(
        Scalar::new(
            "CONCAT",
            CAT,
            "CONCAT(STRING, …) -> STRING, CONCAT(BYTES, …) -> BYTES",
            "Concatenates its arguments, skipping NULLs.",
            |a| if a.is_empty() { None } else { text_or_bytes(a) },
            |a| concat(None, a),
        )
        .lenient(),
    );
    r.add(
        Scalar::new(
            "CONCAT_WS",
            CAT,
            "CONCAT_WS(separator, STRING, …) -> STRING, CONCAT_WS(separator, BYTES, …) -> BYTES",
            "Concatenates the arguments after the separator, with the separator between them, \
             skipping NULLs; NULL when the separator is NULL.",
            |a| if a.len() < 2 { None } else { text_or_bytes(a) },
            |a| match arg(a, 0) {
                Value::Null => Ok(Value::Null),
                sep => concat(Some(sep), &a[1..]),
            },
        )
        .lenient(),
    );
    r.add(Scalar::new(
        "LCASE",
        CAT,
        "LCASE(STRING) -> STRING",
        "Converts to lower case.",
        str_type,
        |a| Ok(string(str_of(&a[0])?.to_lowercase())),
    ));
    r.add(Scalar::new(
        "UCASE",
        CAT,
        "UCASE(STRING) -> STRING",
        "Converts to upper case.",
        str_type,
        |a| Ok(string(str_of(&a[0])?.to_uppercase())),
    ));
    r.add(Scalar::new(
        "LEN",
        CAT,
        "LEN(STRING) -> INT, LEN(BYTES) -> INT",
        "The number of characters of a STRING, or of bytes of BYTES.",
        |a| (a.len() == 1 && text_or_bytes(a).is_some()).then_some(SqlType::Int),
        |a| {
            Ok(Value::Int(
                i32::try_from(Seq::of(&a[0])?.len()).unwrap_or(i32::MAX),
            ))
        },
    ));
    r.add(Scalar::new(
        "TRIM",
        CAT,
        "TRIM(STRING) -> STRING",
        "Removes leading and trailing whitespace.",
        str_type,
        |a| Ok(string(str_of(&a[0])?.trim())),
    ));
    r.add(Scalar::new(
        "LTRIM",
        CAT,
        "LTRIM(STRING) -> STRING",
        "Removes leading whitespace.",
        str_type,
        |a| Ok(string(str_of(&a[0])?.trim_start())),
    ));
    r.add(Scalar::new(
        "RTRIM",
        CAT,
        "RTRIM(STRING) -> STRING",
        "Removes trailing whitespace.",
        str_type,
        |a| Ok(string(str_of(&a[0])?.trim_end())),
    ));
    r.add(Scalar::new(
        "REPLACE",
        CAT,
        "REPLACE(STRING, old, new) -> STRING",
        "Replaces every occurrence of `old` with `new`.",
        |a| args_are(a, &[is_str, is_str, is_str]).then_some(SqlType::String),
        |a| {
            let (s, old, new) = (str_of(&a[0])?, str_of(&a[1])?, str_of(&a[2])?);
            if old.is_empty() {
                // Java inserts `new` between characters; so do we.
                let mut out = String::from(new);
                for c in s.chars() {
                    out.push(c);
                    out.push_str(new);
                }
                return Ok(string(out));
            }
            Ok(string(s.replace(old, new)))
        },
    ));
    r.add(Scalar::new(
        "INITCAP",
        CAT,
        "INITCAP(STRING) -> STRING",
        "Capitalizes the first letter of each whitespace-separated word and lower-cases the \
         rest.",
        str_type,
        |a| {
            let mut out = String::new();
            let mut start = true;
            for c in str_of(&a[0])?.chars() {
                if c.is_whitespace() {
                    start = true;
                    out.push(c);
                } else if start {
                    start = false;
                    out.extend(c.to_uppercase());
                } else {
                    out.extend(c.to_lowercase());
                }
            }
            Ok(string(out))
        },
    ));
    r.add(Scalar::new(
        "SPLIT",
        CAT,
        "SPLIT(STRING, delimiter) -> ARRAY<STRING>, SPLIT(BYTES, delimiter) -> ARRAY<BYTES>",
        "Splits at each delimiter (an empty delimiter splits into single characters or bytes).",
        |a| {
            (a.len() == 2)
                .then(|| text_or_bytes(a))
                .flatten()
                .map(|t| SqlType::Array(Box::new(t)))
        },
        |a| match (&a[0], &a[1]) {
            // An empty text splits into one empty part, whatever the
            // delimiter.
            (Value::String(s), Value::String(d)) => Ok(if s.is_empty() {
                str_array(std::iter::once(String::new()))
            } else if d.is_empty() {
                str_array(s.chars().map(String::from))
            } else {
                str_array(s.split(d.as_str()).map(String::from))
            }),
            (Value::Bytes(b), Value::Bytes(d)) => Ok(Value::Array(
                split_bytes(b, d).into_iter().map(Value::Bytes).collect(),
            )),
            _ => Err(runtime("SPLIT needs two STRINGs or two BYTES")),
        },
    ));
    r.add(Scalar::new(
        "SPLIT_TO_MAP",
        CAT,
        "SPLIT_TO_MAP(STRING, entryDelimiter, kvDelimiter) -> MAP<STRING, STRING>",
        "Splits into entries and each entry into key and value; entries without the key-value \
         delimiter are skipped, a later key wins. NULL if a delimiter is empty or both are the \
         same.",
        |a| {
            args_are(a, &[is_str, is_str, is_str])
                .then(|| SqlType::Map(Box::new(SqlType::String), Box::new(SqlType::String)))
        },
        |a| {
            let (s, ed, kd) = (str_of(&a[0])?, str_of(&a[1])?, str_of(&a[2])?);
            if ed.is_empty() || kd.is_empty() || ed == kd {
                return Ok(Value::Null);
            }
            let mut map: Vec<(Value, Value)> = Vec::new();
            for entry in s.split(ed) {
                // ksqlDB keeps the text between the first and the second
                // key-value delimiter as the value.
                let mut parts = entry.split(kd);
                let (Some(k), Some(v)) = (parts.next(), parts.next()) else {
                    continue;
                };
                let (k, v) = (string(k), string(v));
                match map.iter_mut().find(|(x, _)| *x == k) {
                    Some(e) => e.1 = v,
                    None => map.push((k, v)),
                }
            }
            Ok(Value::Map(map))
        },
    ));
    r.add(Scalar::new(
        "CHR",
        CAT,
        "CHR(INT) -> STRING, CHR(STRING) -> STRING",
        "The character of a Unicode code point given as a number or as text '\\uXXXX' (NULL \
         when it is not a valid code point).",
        |a| (a.len() == 1 && (is_int(&a[0]) || is_str(&a[0]))).then_some(SqlType::String),
        |a| {
            let code = match &a[0] {
                // ksqlDB reads text of at least six characters starting
                // with \u as Java escapes (UTF-16: a character beyond the
                // BMP is two escapes).
                Value::String(s) => {
                    if s.len() < 6 || !s.starts_with("\\u") {
                        return Ok(Value::Null);
                    }
                    return Ok(unescape_java(s).map_or(Value::Null, string));
                }
                v => u32::try_from(int_of(v)?).ok(),
            };
            Ok(code
                .and_then(char::from_u32)
                .map_or(Value::Null, |c| string(c.to_string())))
        },
    ));
    r.add(Scalar::new(
        "MD5",
        CAT,
        "MD5(STRING) -> STRING",
        "The MD5 digest of the string's UTF-8 bytes as 32 lower-case hex digits.",
        str_type,
        |a| {
            use md5::Digest;
            Ok(string(hex_encode(&md5::Md5::digest(
                str_of(&a[0])?.as_bytes(),
            ))))
        },
    ));
    r.add(Scalar::new(
        "UUID",
        CAT,
        "UUID() -> STRING",
        "A random (version 4) universally unique identifier.",
        |a| a.is_empty().then_some(SqlType::String),
        |_| {
            let (hi, lo) = (random_u64(), random_u64());
            let hi = (hi & !0xF000) | 0x4000;
            let lo = (lo & !(0b11 << 62)) | (0b10 << 62);
            Ok(string(format!(
                "{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
                hi >> 32,
                (hi >> 16) & 0xFFFF,
                hi & 0xFFFF,
                lo >> 48,
                lo & 0xFFFF_FFFF_FFFF
            )))
        },
    ));
    r.add(
        Scalar::new(
            "ELT",
            CAT,
            "ELT(n, STRING, …) -> STRING",
            "The n-th (1-based) of the following arguments; NULL when n is out of range.",
            |a| {
                (!a.is_empty() && is_int(&a[0]) && a[1..].iter().all(is_str))
                    .then_some(SqlType::String)
            },
            |a| {
                let Some(n) = arg(a, 0).as_i64() else {
                    return Ok(Value::Null);
                };
                Ok(usize::try_from(n)
                    .ok()
                    .filter(|n| *n >= 1)
                    .and_then(|n| a.get(n))
                    .cloned()
                    .unwrap_or_default())
            },
        )
        .lenient(),
    );
    r.add(
        Scalar::new(
            "FIELD",
            CAT,
            "FIELD(STRING, STRING, …) -> INT",
            "The 1-based position of the first argument among the following ones; 0 when it is \
             not found or NULL.",
            |a| (!a.is_empty() && a.iter().all(is_str)).then_some(SqlType::Int),
            |a| {
                let needle = arg(a, 0);
                if needle.is_null() {
                    return Ok(Value::Int(0));
                }
                Ok(Value::Int(
                    a[1..]
                        .iter()
                        .position(|x| x == needle)
                        .map_or(0, |p| i32::try_from(p + 1).unwrap_or(0)),
                ))
            },
        )
        .lenient(),
    );
}

fn concat(sep: Option<&Value>, a: &[Value]) -> Result<Value, FunctionError> {
    let parts = a.iter().filter(|v| !v.is_null());
    let is_bytes =
        matches!(sep, Some(Value::Bytes(_))) || a.iter().any(|v| matches!(v, Value::Bytes(_)));
    if is_bytes {
        let sep = match sep {
            Some(s) => bytes_of(s)?,
            None => &[],
        };
        let mut out = Vec::new();
        for (i, p) in parts.enumerate() {
            if i > 0 {
                out.extend_from_slice(sep);
            }
            out.extend_from_slice(bytes_of(p)?);
        }
        return Ok(Value::Bytes(out));
    }
    let sep = match sep {
        Some(s) => str_of(s)?,
        None => "",
    };
    let mut out = String::new();
    for (i, p) in parts.enumerate() {
        if i > 0 {
            out.push_str(sep);
        }
        out.push_str(str_of(p)?);
    }
    Ok(Value::String(out))
}

/// Text with Java's escapes (`\uXXXX` as UTF-16 code units, `\n`, `\\`,
/// octal…) resolved; `None` for a malformed `\u` escape.
fn unescape_java(s: &str) -> Option<String> {
    let mut units: Vec<u16> = Vec::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '\\' {
            let mut buf = [0u16; 2];
            units.extend_from_slice(c.encode_utf16(&mut buf));
            continue;
        }
        match chars.next() {
            Some('u') => {
                while chars.peek() == Some(&'u') {
                    chars.next();
                }
                let hex: String = (0..4).filter_map(|_| chars.next()).collect();
                if hex.len() != 4 {
                    return None;
                }
                units.push(u16::from_str_radix(&hex, 16).ok()?);
            }
            Some(d @ '0'..='7') => {
                let mut v = d.to_digit(8).unwrap_or(0);
                let max = if d <= '3' { 2 } else { 1 };
                for _ in 0..max {
                    match chars.peek().and_then(|c| c.to_digit(8)) {
                        Some(x) => {
                            v = v * 8 + x;
                            chars.next();
                        }
                        None => break,
                    }
                }
                units.push(v as u16);
            }
            Some(e) => {
                let c = match e {
                    'b' => '\u{8}',
                    't' => '\t',
                    'n' => '\n',
                    'f' => '\u{c}',
                    'r' => '\r',
                    other => other,
                };
                let mut buf = [0u16; 2];
                units.extend_from_slice(c.encode_utf16(&mut buf));
            }
            None => units.push(u16::from(b'\\')),
        }
    }
    Some(String::from_utf16_lossy(&units))
}

fn split_bytes(b: &[u8], d: &[u8]) -> Vec<Vec<u8>> {
    if b.is_empty() {
        return vec![Vec::new()];
    }
    if d.is_empty() {
        return b.iter().map(|x| vec![*x]).collect();
    }
    let mut out = Vec::new();
    let mut start = 0;
    let mut i = 0;
    while i + d.len() <= b.len() {
        if &b[i..i + d.len()] == d {
            out.push(b[start..i].to_vec());
            i += d.len();
            start = i;
        } else {
            i += 1;
        }
    }
    out.push(b[start..].to_vec());
    out
}

fn register_padding_and_positions(r: &mut FunctionRegistry) {
    let pad_type: TypeRule = |a| {
        if a.len() != 3 || !is_int(&a[1]) {
            return None;
        }
        text_or_bytes(&[a[0].clone(), a[2].clone()])
    };
    r.add(Scalar::new(
        "LPAD",
        CAT,
        "LPAD(input, length, padding) -> STRING | BYTES",
        "Pads `input` on the left with repeats of `padding` to `length` characters (or bytes), \
         truncating a longer input; NULL when `padding` is empty or `length` negative.",
        pad_type,
        |a| pad(a, true),
    ));
    r.add(Scalar::new(
        "RPAD",
        CAT,
        "RPAD(input, length, padding) -> STRING | BYTES",
        "Pads `input` on the right with repeats of `padding` to `length` characters (or \
         bytes), truncating a longer input; NULL when `padding` is empty or `length` negative.",
        pad_type,
        |a| pad(a, false),
    ));
    r.add(Scalar::new(
        "SUBSTRING",
        CAT,
        "SUBSTRING(STRING | BYTES, pos [, length]) -> same type",
        "The part from 1-based position `pos` (negative counts from the end), of at most \
         `length` characters (or bytes), or to the end.",
        |a| {
            ((a.len() == 2 || a.len() == 3)
                && a[1..].iter().all(is_int)
                && (is_str(&a[0]) || is_bytes(&a[0])))
            .then(|| a[0].clone().unwrap_or(SqlType::String))
        },
        |a| {
            let seq = Seq::of(&a[0])?;
            let n = seq.len() as i64;
            let pos = int_of(&a[1])?;
            let start = if pos < 0 {
                (n + pos).max(0)
            } else {
                (pos - 1).clamp(0, n)
            };
            let end = match a.get(2) {
                Some(l) => start.saturating_add(int_of(l)?).min(n).max(start),
                None => n,
            };
            Ok(seq.slice(start as usize, end as usize))
        },
    ));
    r.add(Scalar::new(
        "INSTR",
        CAT,
        "INSTR(STRING, substring [, position [, occurrence]]) -> INT",
        "The 1-based position of the `occurrence`-th (default 1st) `substring`, searching from \
         `position` (default 1; negative searches backwards from the end); 0 when not found.",
        |a| {
            (a.len() >= 2
                && a.len() <= 4
                && is_str(&a[0])
                && is_str(&a[1])
                && a[2..].iter().all(is_int))
            .then_some(SqlType::Int)
        },
        |a| {
            let s: Vec<char> = str_of(&a[0])?.chars().collect();
            let sub: Vec<char> = str_of(&a[1])?.chars().collect();
            let pos = a.get(2).map(int_of).transpose()?.unwrap_or(1);
            let occurrence = a.get(3).map(int_of).transpose()?.unwrap_or(1);
            if occurrence < 1 || pos == 0 {
                return Ok(Value::Int(0));
            }
            let n = s.len() as i64;
            let at = |i: i64| {
                i >= 0
                    && i + sub.len() as i64 <= n
                    && s[i as usize..i as usize + sub.len()] == sub[..]
            };
            let mut seen = 0;
            let found = if pos > 0 {
                (pos - 1..n.max(pos - 1) + 1).find(|i| {
                    if at(*i) {
                        seen += 1;
                    }
                    seen == occurrence
                })
            } else {
                (0..=(n + pos)).rev().find(|i| {
                    if at(*i) {
                        seen += 1;
                    }
                    seen == occurrence
                })
            };
            Ok(Value::Int(found.map_or(0, |i| (i + 1) as i32)))
        },
    ));
}

/// The longest LPAD / RPAD result, so that a bad length cannot exhaust
/// memory.
const PAD_LIMIT: usize = 1 << 24;

fn pad(a: &[Value], left: bool) -> Result<Value, FunctionError> {
    let Ok(len) = usize::try_from(int_of(&a[1])?) else {
        return Ok(Value::Null);
    };
    if len > PAD_LIMIT {
        return Err(runtime(format!(
            "cannot pad to {len}: at most {PAD_LIMIT} characters"
        )));
    }
    let (input, padding) = (Seq::of(&a[0])?, Seq::of(&a[2])?);
    if padding.len() == 0 {
        return Ok(Value::Null);
    }
    match (input, padding) {
        (Seq::Chars(s), Seq::Chars(p)) => Ok(Value::String(
            pad_vec(&s, &p, len, left).into_iter().collect(),
        )),
        (Seq::Bytes(s), Seq::Bytes(p)) => Ok(Value::Bytes(pad_vec(&s, &p, len, left))),
        _ => Err(runtime("input and padding must both be STRING or BYTES")),
    }
}

fn pad_vec<T: Clone>(s: &[T], p: &[T], len: usize, left: bool) -> Vec<T> {
    if s.len() >= len {
        return s[..len].to_vec();
    }
    let fill: Vec<T> = p.iter().cycle().take(len - s.len()).cloned().collect();
    if left {
        fill.into_iter().chain(s.iter().cloned()).collect()
    } else {
        s.iter().cloned().chain(fill).collect()
    }
}

/// The replacement characters for upper, lower, digit and other characters
/// (`None` keeps that kind of character).
type MaskChars = [Option<char>; 4];

fn mask_chars(a: &[Value]) -> Result<MaskChars, FunctionError> {
    let mut out = [Some('X'), Some('x'), Some('n'), Some('-')];
    for (i, slot) in out.iter_mut().enumerate() {
        if let Some(v) = a.get(i) {
            *slot = match v {
                Value::Null => None,
                v => str_of(v)?.chars().next(),
            };
        }
    }
    Ok(out)
}

fn mask_char(c: char, m: &MaskChars) -> char {
    let slot = if c.is_uppercase() {
        m[0]
    } else if c.is_lowercase() {
        m[1]
    } else if c.is_numeric() {
        m[2]
    } else {
        m[3]
    };
    slot.unwrap_or(c)
}

/// Masks the characters whose index `pick(index, count)` says.
fn mask_where(
    a: &[Value],
    first_mask_arg: usize,
    pick: impl Fn(usize, usize) -> bool,
) -> Result<Value, FunctionError> {
    if arg(a, 0).is_null() {
        return Ok(Value::Null);
    }
    let s: Vec<char> = str_of(&a[0])?.chars().collect();
    let m = mask_chars(a.get(first_mask_arg..).unwrap_or(&[]))?;
    let n = s.len();
    Ok(Value::String(
        s.iter()
            .enumerate()
            .map(|(i, c)| if pick(i, n) { mask_char(*c, &m) } else { *c })
            .collect(),
    ))
}

fn mask_count(a: &[Value]) -> Result<Option<usize>, FunctionError> {
    match arg(a, 1) {
        Value::Null => Ok(None),
        v => usize::try_from(int_of(v)?)
            .map(Some)
            .map_err(|_| runtime("the number of characters to mask must not be negative")),
    }
}

fn register_masks(r: &mut FunctionRegistry) {
    r.add(
        Scalar::new(
            "MASK",
            CAT,
            "MASK(STRING [, upper [, lower [, digit [, other]]]]) -> STRING",
            "Replaces upper-case letters with 'X', lower-case with 'x', digits with 'n' and \
             other characters with '-' (or the given characters; NULL keeps that kind).",
            |a| (!a.is_empty() && a.len() <= 5 && a.iter().all(is_str)).then_some(SqlType::String),
            |a| mask_where(a, 1, |_, _| true),
        )
        .lenient(),
    );
    let partial: TypeRule = |a| {
        (a.len() >= 2
            && a.len() <= 6
            && is_str(&a[0])
            && is_int(&a[1])
            && a[2..].iter().all(is_str))
        .then_some(SqlType::String)
    };
    macro_rules! partial_mask {
        ($name:literal, $sig:literal, $desc:literal, $pick:expr) => {
            r.add(
                Scalar::new($name, CAT, $sig, $desc, partial, |a| {
                    let Some(k) = mask_count(a)? else {
                        return Ok(Value::Null);
                    };
                    let pick: fn(usize, usize, usize) -> bool = $pick;
                    mask_where(a, 2, |i, n| pick(i, n, k))
                })
                .lenient(),
            );
        };
    }
    partial_mask!(
        "MASK_LEFT",
        "MASK_LEFT(STRING, n [, upper [, lower [, digit [, other]]]]) -> STRING",
        "Masks the first n characters as MASK does.",
        |i, _, k| i < k
    );
    partial_mask!(
        "MASK_RIGHT",
        "MASK_RIGHT(STRING, n [, upper [, lower [, digit [, other]]]]) -> STRING",
        "Masks the last n characters as MASK does.",
        |i, n, k| i + k >= n
    );
    partial_mask!(
        "MASK_KEEP_LEFT",
        "MASK_KEEP_LEFT(STRING, n [, upper [, lower [, digit [, other]]]]) -> STRING",
        "Masks all but the first n characters as MASK does.",
        |i, _, k| i >= k
    );
    partial_mask!(
        "MASK_KEEP_RIGHT",
        "MASK_KEEP_RIGHT(STRING, n [, upper [, lower [, digit [, other]]]]) -> STRING",
        "Masks all but the last n characters as MASK does.",
        |i, n, k| i + k < n
    );
}

/// Java's replacement syntax (`$1`, `\$`) in the regex crate's (`${1}`,
/// `$$`).
fn java_replacement(rep: &str) -> String {
    let mut out = String::with_capacity(rep.len());
    let mut chars = rep.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some('$') => out.push_str("$$"),
                Some(x) => out.push(x),
                None => {}
            },
            '$' => {
                let mut digits = String::new();
                while let Some(d) = chars.peek().filter(|d| d.is_ascii_digit()) {
                    digits.push(*d);
                    chars.next();
                }
                if digits.is_empty() {
                    // `${name}` passes through; a lone `$` is literal.
                    if chars.peek() == Some(&'{') {
                        out.push('$');
                    } else {
                        out.push_str("$$");
                    }
                } else {
                    out.push_str(&format!("${{{digits}}}"));
                }
            }
            c => out.push(c),
        }
    }
    out
}

fn group_arg(a: &[Value]) -> Result<usize, FunctionError> {
    match a.get(2) {
        None => Ok(0),
        Some(v) => usize::try_from(int_of(v)?).map_err(|_| runtime("group must not be negative")),
    }
}

fn register_regex(r: &mut FunctionRegistry) {
    r.add(Scalar::new(
        "REGEXP_EXTRACT",
        REGEX,
        "REGEXP_EXTRACT(pattern, STRING [, group]) -> STRING",
        "The first part of the string matching the pattern, or the given capturing group of \
         it; NULL when nothing matches.",
        |a| {
            ((a.len() == 2 || a.len() == 3)
                && is_str(&a[0])
                && is_str(&a[1])
                && a[2..].iter().all(is_int))
            .then_some(SqlType::String)
        },
        |a| {
            let re = regex(str_of(&a[0])?)?;
            let g = group_arg(a)?;
            Ok(re
                .captures(str_of(&a[1])?)
                .and_then(|c| c.get(g))
                .map_or(Value::Null, |m| string(m.as_str())))
        },
    ));
    r.add(Scalar::new(
        "REGEXP_EXTRACT_ALL",
        REGEX,
        "REGEXP_EXTRACT_ALL(pattern, STRING [, group]) -> ARRAY<STRING>",
        "Every part of the string matching the pattern, or the given capturing group of each.",
        |a| {
            ((a.len() == 2 || a.len() == 3)
                && is_str(&a[0])
                && is_str(&a[1])
                && a[2..].iter().all(is_int))
            .then(|| SqlType::Array(Box::new(SqlType::String)))
        },
        |a| {
            let re = regex(str_of(&a[0])?)?;
            let g = group_arg(a)?;
            Ok(Value::Array(
                re.captures_iter(str_of(&a[1])?)
                    .map(|c| c.get(g).map_or(Value::Null, |m| string(m.as_str())))
                    .collect(),
            ))
        },
    ));
    r.add(Scalar::new(
        "REGEXP_REPLACE",
        REGEX,
        "REGEXP_REPLACE(STRING, pattern, replacement) -> STRING",
        "Replaces every match of the pattern; the replacement may name groups as $1.",
        |a| args_are(a, &[is_str, is_str, is_str]).then_some(SqlType::String),
        |a| {
            let re = regex(str_of(&a[1])?)?;
            let rep = java_replacement(str_of(&a[2])?);
            Ok(string(re.replace_all(str_of(&a[0])?, rep.as_str())))
        },
    ));
    r.add(Scalar::new(
        "REGEXP_SPLIT_TO_ARRAY",
        REGEX,
        "REGEXP_SPLIT_TO_ARRAY(STRING, pattern) -> ARRAY<STRING>",
        "Splits at each match of the pattern (an empty pattern splits into characters).",
        |a| args_are(a, &[is_str, is_str]).then(|| SqlType::Array(Box::new(SqlType::String))),
        |a| {
            let (s, p) = (str_of(&a[0])?, str_of(&a[1])?);
            if p.is_empty() {
                return Ok(str_array(s.chars().map(String::from)));
            }
            Ok(str_array(regex(p)?.split(s).map(String::from)))
        },
    ));
}

fn hex_encode(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn hex_decode(s: &str) -> Option<Vec<u8>> {
    let s = s
        .strip_prefix("0x")
        .or_else(|| s.strip_prefix("0X"))
        .unwrap_or(s);
    if !s.len().is_multiple_of(2) || !s.is_ascii() {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).ok())
        .collect()
}

/// Text in `encoding` as bytes.
fn decode_text(s: &str, encoding: &str) -> Result<Vec<u8>, FunctionError> {
    let bad = || runtime(format!("'{s}' is not valid {encoding}"));
    match encoding.to_ascii_lowercase().as_str() {
        "hex" => hex_decode(s).ok_or_else(bad),
        "utf8" | "utf-8" => Ok(s.as_bytes().to_vec()),
        "ascii" => s.is_ascii().then(|| s.as_bytes().to_vec()).ok_or_else(bad),
        "base64" => base64_decode(s).ok_or_else(bad),
        other => Err(unknown_encoding(other)),
    }
}

/// Bytes as text in `encoding` (FROM_BYTES: hex in upper case).
fn encode_bytes(b: &[u8], encoding: &str) -> Result<String, FunctionError> {
    match encoding.to_ascii_lowercase().as_str() {
        "hex" => Ok(hex_encode(b).to_ascii_uppercase()),
        "utf8" | "utf-8" => String::from_utf8(b.to_vec()).map_err(|_| runtime("not valid UTF-8")),
        "ascii" => {
            if b.is_ascii() {
                Ok(b.iter().map(|x| char::from(*x)).collect())
            } else {
                Err(runtime("not valid ASCII"))
            }
        }
        "base64" => Ok(base64_encode(b)),
        other => Err(unknown_encoding(other)),
    }
}

/// ENCODE's reading of its input, as ksqlDB's: hex may be written `0x…`
/// (an odd count of digits then gets a leading zero) or `X'…'`; ASCII
/// writes each other character as `?`.
fn encode_input(s: &str, encoding: &str) -> Result<Vec<u8>, FunctionError> {
    let bad = || runtime(format!("'{s}' is not valid {encoding}"));
    match encoding {
        "hex" => {
            let digits = if let Some(rest) = s.strip_prefix("0x") {
                if rest.len() % 2 == 1 {
                    format!("0{rest}")
                } else {
                    rest.to_string()
                }
            } else if s.len() >= 3
                && (s.starts_with("x'") || s.starts_with("X'"))
                && s.ends_with('\'')
            {
                s[2..s.len() - 1].to_string()
            } else {
                s.to_string()
            };
            if digits.starts_with("0x") || digits.starts_with("0X") {
                return Err(bad());
            }
            hex_decode(&digits).ok_or_else(bad)
        }
        "utf8" => Ok(s.as_bytes().to_vec()),
        "ascii" => Ok(s
            .chars()
            .map(|c| if c.is_ascii() { c as u8 } else { b'?' })
            .collect()),
        "base64" => base64_decode(s).ok_or_else(bad),
        other => Err(unknown_encoding(other)),
    }
}

/// ENCODE's writing of bytes, as Java decodes them: hex in lower case,
/// bytes that are not UTF-8 or ASCII as U+FFFD.
fn encode_output(b: &[u8], encoding: &str) -> Result<String, FunctionError> {
    match encoding {
        "hex" => Ok(hex_encode(b)),
        "utf8" => Ok(String::from_utf8_lossy(b).into_owned()),
        "ascii" => Ok(b
            .iter()
            .map(|x| {
                if x.is_ascii() {
                    char::from(*x)
                } else {
                    '\u{FFFD}'
                }
            })
            .collect()),
        "base64" => Ok(base64_encode(b)),
        other => Err(unknown_encoding(other)),
    }
}

fn unknown_encoding(e: &str) -> FunctionError {
    runtime(format!(
        "unknown encoding '{e}', expected hex, utf8, ascii or base64"
    ))
}

fn register_encodings(r: &mut FunctionRegistry) {
    r.add(Scalar::new(
        "ENCODE",
        CAT,
        "ENCODE(STRING, inputEncoding, outputEncoding) -> STRING",
        "Re-encodes text between the hex, utf8, ascii and base64 encodings.",
        |a| args_are(a, &[is_str, is_str, is_str]).then_some(SqlType::String),
        |a| {
            let (from, to) = (
                str_of(&a[1])?.to_ascii_lowercase(),
                str_of(&a[2])?.to_ascii_lowercase(),
            );
            if from == to {
                return Err(runtime(
                    "Supported input and output encodings are: hex, utf8, ascii and base64 \
                     (and they must differ)",
                ));
            }
            let b = encode_input(str_of(&a[0])?, &from)?;
            Ok(string(encode_output(&b, &to)?))
        },
    ));
    r.add(Scalar::new(
        "TO_BYTES",
        CAT,
        "TO_BYTES(STRING, encoding) -> BYTES",
        "Reads text in the hex, utf8, ascii or base64 encoding as BYTES.",
        |a| args_are(a, &[is_str, is_str]).then_some(SqlType::Bytes),
        |a| Ok(Value::Bytes(decode_text(str_of(&a[0])?, str_of(&a[1])?)?)),
    ));
    r.add(Scalar::new(
        "FROM_BYTES",
        CAT,
        "FROM_BYTES(BYTES, encoding) -> STRING",
        "Writes BYTES as text in the hex, utf8, ascii or base64 encoding.",
        |a| args_are(a, &[is_bytes, is_str]).then_some(SqlType::String),
        |a| Ok(string(encode_bytes(bytes_of(&a[0])?, str_of(&a[1])?)?)),
    ));
}

/// The parts of a URL, as `java.net.URI` splits them.
struct Url<'a> {
    scheme: &'a str,
    host: Option<&'a str>,
    port: Option<&'a str>,
    path: &'a str,
    query: Option<&'a str>,
    fragment: Option<&'a str>,
}

fn parse_url(s: &str) -> Result<Url<'_>, FunctionError> {
    let bad = || runtime(format!("'{s}' is not a URL"));
    let (rest, fragment) = match s.split_once('#') {
        Some((r, f)) => (r, Some(f)),
        None => (s, None),
    };
    let (rest, query) = match rest.split_once('?') {
        Some((r, q)) => (r, Some(q)),
        None => (rest, None),
    };
    let (scheme, rest) = rest.split_once(':').ok_or_else(bad)?;
    let valid_scheme = scheme
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic())
        && scheme
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c));
    if !valid_scheme {
        return Err(bad());
    }
    let Some(after) = rest.strip_prefix("//") else {
        return Ok(Url {
            scheme,
            host: None,
            port: None,
            path: rest,
            query,
            fragment,
        });
    };
    let (authority, path) = match after.find('/') {
        Some(i) => (&after[..i], &after[i..]),
        None => (after, ""),
    };
    let hostport = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let (host, port) = if hostport.starts_with('[') {
        // An IPv6 literal.
        match hostport.find(']') {
            Some(i) => (
                &hostport[..=i],
                hostport[i + 1..]
                    .strip_prefix(':')
                    .filter(|p| !p.is_empty()),
            ),
            None => return Err(bad()),
        }
    } else {
        match hostport.rsplit_once(':') {
            Some((h, p)) => (h, Some(p).filter(|p| !p.is_empty())),
            None => (hostport, None),
        }
    };
    if port.is_some_and(|p| !p.bytes().all(|b| b.is_ascii_digit())) {
        return Err(bad());
    }
    Ok(Url {
        scheme,
        host: Some(host).filter(|h| !h.is_empty()),
        port,
        path,
        query,
        fragment,
    })
}

/// `application/x-www-form-urlencoded` decoding, as Java's URLDecoder.
fn url_decode(s: &str) -> Result<String, FunctionError> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b'%' => {
                let hex = s
                    .get(i + 1..i + 3)
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                    .ok_or_else(|| runtime(format!("bad escape in '{s}'")))?;
                out.push(hex);
                i += 3;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8(out).map_err(|_| runtime(format!("'{s}' does not decode to UTF-8")))
}

/// `application/x-www-form-urlencoded` encoding, as Java's URLEncoder.
fn url_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'.' | b'-' | b'*' | b'_' => {
                out.push(char::from(b))
            }
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

fn url_part(a: &[Value], part: fn(&Url) -> Option<String>) -> Result<Value, FunctionError> {
    let url = parse_url(str_of(&a[0])?)?;
    Ok(part(&url).map_or(Value::Null, Value::String))
}

fn register_urls(r: &mut FunctionRegistry) {
    const URL: &str = "URL";
    r.add(Scalar::new(
        "URL_DECODE_PARAM",
        URL,
        "URL_DECODE_PARAM(STRING) -> STRING",
        "Decodes application/x-www-form-urlencoded text ('+' is a space, %XX a byte).",
        str_type,
        |a| Ok(string(url_decode(str_of(&a[0])?)?)),
    ));
    r.add(Scalar::new(
        "URL_ENCODE_PARAM",
        URL,
        "URL_ENCODE_PARAM(STRING) -> STRING",
        "Encodes text as application/x-www-form-urlencoded.",
        str_type,
        |a| Ok(string(url_encode(str_of(&a[0])?))),
    ));
    r.add(Scalar::new(
        "URL_EXTRACT_FRAGMENT",
        URL,
        "URL_EXTRACT_FRAGMENT(url) -> STRING",
        "The fragment of a URL (NULL when it has none or is not a URL).",
        str_type,
        |a| url_part(a, |u| u.fragment.map(String::from)),
    ));
    r.add(Scalar::new(
        "URL_EXTRACT_HOST",
        URL,
        "URL_EXTRACT_HOST(url) -> STRING",
        "The host of a URL.",
        str_type,
        |a| url_part(a, |u| u.host.map(String::from)),
    ));
    r.add(Scalar::new(
        "URL_EXTRACT_PARAMETER",
        URL,
        "URL_EXTRACT_PARAMETER(url, name) -> STRING",
        "The decoded value of the first query parameter called `name` (NULL when absent; an \
         empty string for a parameter without a value).",
        |a| args_are(a, &[is_str, is_str]).then_some(SqlType::String),
        |a| {
            let url = parse_url(str_of(&a[0])?)?;
            let name = str_of(&a[1])?;
            for pair in url.query.unwrap_or("").split('&') {
                let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
                if url_decode(k)? == name {
                    return Ok(string(url_decode(v)?));
                }
            }
            Ok(Value::Null)
        },
    ));
    r.add(Scalar::new(
        "URL_EXTRACT_PATH",
        URL,
        "URL_EXTRACT_PATH(url) -> STRING",
        "The path of a URL (empty when it has none).",
        str_type,
        |a| url_part(a, |u| Some(u.path.to_string())),
    ));
    r.add(Scalar::new(
        "URL_EXTRACT_PORT",
        URL,
        "URL_EXTRACT_PORT(url) -> INT",
        "The port of a URL (NULL when it names none).",
        |a| args_are(a, &[is_str]).then_some(SqlType::Int),
        |a| {
            let url = parse_url(str_of(&a[0])?)?;
            Ok(url
                .port
                .and_then(|p| p.parse::<i32>().ok())
                .map_or(Value::Null, Value::Int))
        },
    ));
    r.add(Scalar::new(
        "URL_EXTRACT_PROTOCOL",
        URL,
        "URL_EXTRACT_PROTOCOL(url) -> STRING",
        "The scheme of a URL, such as http.",
        str_type,
        |a| url_part(a, |u| Some(u.scheme.to_string())),
    ));
    r.add(Scalar::new(
        "URL_EXTRACT_QUERY",
        URL,
        "URL_EXTRACT_QUERY(url) -> STRING",
        "The query of a URL, without the '?' (NULL when it has none).",
        str_type,
        |a| url_part(a, |u| u.query.map(String::from)),
    ));
}

fn byte_order_little(a: &[Value]) -> Result<bool, FunctionError> {
    match a.get(1) {
        None => Ok(false),
        Some(v) => match str_of(v)?.to_ascii_uppercase().as_str() {
            "BIG_ENDIAN" => Ok(false),
            "LITTLE_ENDIAN" => Ok(true),
            other => Err(runtime(format!(
                "unknown byte order '{other}', expected BIG_ENDIAN or LITTLE_ENDIAN"
            ))),
        },
    }
}

fn fixed_bytes<const N: usize>(a: &[Value]) -> Result<[u8; N], FunctionError> {
    let b = bytes_of(&a[0])?;
    let mut out: [u8; N] = b
        .try_into()
        .map_err(|_| runtime(format!("expected {N} bytes, got {}", b.len())))?;
    if byte_order_little(a)? {
        out.reverse();
    }
    Ok(out)
}

fn register_byte_numbers(r: &mut FunctionRegistry) {
    r.add(Scalar::new(
        "INT_FROM_BYTES",
        CAT,
        "INT_FROM_BYTES(BYTES [, 'BIG_ENDIAN' | 'LITTLE_ENDIAN']) -> INT",
        "Reads 4 bytes as an INT (big-endian by default).",
        |a| {
            ((a.len() == 1 || a.len() == 2) && is_bytes(&a[0]) && a[1..].iter().all(is_str))
                .then_some(SqlType::Int)
        },
        |a| Ok(Value::Int(i32::from_be_bytes(fixed_bytes(a)?))),
    ));
    r.add(Scalar::new(
        "BIGINT_FROM_BYTES",
        CAT,
        "BIGINT_FROM_BYTES(BYTES [, 'BIG_ENDIAN' | 'LITTLE_ENDIAN']) -> BIGINT",
        "Reads 8 bytes as a BIGINT (big-endian by default).",
        |a| {
            ((a.len() == 1 || a.len() == 2) && is_bytes(&a[0]) && a[1..].iter().all(is_str))
                .then_some(SqlType::BigInt)
        },
        |a| Ok(Value::BigInt(i64::from_be_bytes(fixed_bytes(a)?))),
    ));
    r.add(Scalar::new(
        "DOUBLE_FROM_BYTES",
        CAT,
        "DOUBLE_FROM_BYTES(BYTES [, 'BIG_ENDIAN' | 'LITTLE_ENDIAN']) -> DOUBLE",
        "Reads 8 bytes as an IEEE 754 DOUBLE (big-endian by default).",
        |a| {
            ((a.len() == 1 || a.len() == 2) && is_bytes(&a[0]) && a[1..].iter().all(is_str))
                .then_some(SqlType::Double)
        },
        |a| Ok(Value::Double(f64::from_be_bytes(fixed_bytes(a)?))),
    ));
}

#[cfg(test)]
mod tests {
    use super::super::test_util::*;
    use super::*;

    const N: Value = Value::Null;

    fn b(x: &[u8]) -> Value {
        Value::Bytes(x.to_vec())
    }
    fn bytes_t() -> Ty {
        Some(SqlType::Bytes)
    }

    #[test]
    fn concat_and_concat_ws() {
        assert_eq!(ok("CONCAT", vec![s("a"), N, s("b")]), s("ab"));
        assert_eq!(ok("CONCAT", vec![N, N]), s(""));
        assert_eq!(ok("CONCAT", vec![b(b"a"), b(b"b")]), b(b"ab"));
        assert_eq!(ok("CONCAT_WS", vec![s("-"), s("a"), N, s("b")]), s("a-b"));
        assert_eq!(ok("CONCAT_WS", vec![N, s("a")]), N);
        assert_eq!(ty("CONCAT", &[st(), st()]), Ok(SqlType::String));
        assert!(ty("CONCAT", &[st(), it()]).is_err());
        assert!(ty("CONCAT_WS", &[st()]).is_err());
    }

    #[test]
    fn case_length_trim() {
        assert_eq!(ok("LCASE", vec![s("AbC")]), s("abc"));
        assert_eq!(ok("UCASE", vec![s("AbC")]), s("ABC"));
        assert_eq!(ok("UCASE", vec![N]), N);
        assert!(ty("UCASE", &[it()]).is_err());
        assert_eq!(ok("LEN", vec![s("héllo")]), i(5));
        assert_eq!(ok("LEN", vec![b(&[1, 2, 3])]), i(3));
        assert_eq!(ok("LEN", vec![N]), N);
        assert!(ty("LEN", &[it()]).is_err());
        assert_eq!(ok("TRIM", vec![s("  a b ")]), s("a b"));
        assert_eq!(ok("LTRIM", vec![s("  a ")]), s("a "));
        assert_eq!(ok("RTRIM", vec![s("  a ")]), s("  a"));
        assert_eq!(
            ok("INITCAP", vec![s("hello wORLD  x")]),
            s("Hello World  X")
        );
    }

    #[test]
    fn padding() {
        assert_eq!(ok("LPAD", vec![s("ab"), i(5), s("xy")]), s("xyxab"));
        assert_eq!(ok("RPAD", vec![s("ab"), i(5), s("xy")]), s("abxyx"));
        assert_eq!(ok("LPAD", vec![s("abcdef"), i(3), s("x")]), s("abc"));
        assert_eq!(ok("RPAD", vec![s("ab"), i(4), s("")]), N);
        assert_eq!(ok("LPAD", vec![s("ab"), i(-1), s("x")]), N);
        assert!(call("LPAD", vec![s("ab"), l(1 << 40), s("x")]).is_err());
        assert_eq!(ok("LPAD", vec![b(b"a"), i(3), b(b"0")]), b(b"00a"));
        assert_eq!(ok("LPAD", vec![N, i(3), s("x")]), N);
        assert!(ty("LPAD", &[st(), st(), st()]).is_err());
        assert!(ty("LPAD", &[st(), it(), bytes_t()]).is_err());
    }

    #[test]
    fn substring_positions() {
        assert_eq!(ok("SUBSTRING", vec![s("abcdef"), i(2)]), s("bcdef"));
        assert_eq!(ok("SUBSTRING", vec![s("abcdef"), i(2), i(3)]), s("bcd"));
        assert_eq!(ok("SUBSTRING", vec![s("abcdef"), i(-2)]), s("ef"));
        assert_eq!(ok("SUBSTRING", vec![s("abcdef"), i(-3), i(2)]), s("de"));
        assert_eq!(ok("SUBSTRING", vec![s("abc"), i(10)]), s(""));
        assert_eq!(ok("SUBSTRING", vec![s("abc"), i(0), i(2)]), s("ab"));
        assert_eq!(ok("SUBSTRING", vec![s("abc"), i(2), i(-1)]), s(""));
        assert_eq!(ok("SUBSTRING", vec![b(b"abc"), i(2)]), b(b"bc"));
        assert_eq!(ok("SUBSTRING", vec![N, i(1)]), N);
        assert!(ty("SUBSTRING", &[st(), st()]).is_err());
        assert_eq!(ty("SUBSTRING", &[bytes_t(), it()]), Ok(SqlType::Bytes));
    }

    #[test]
    fn replace_split_instr() {
        assert_eq!(ok("REPLACE", vec![s("a.b.c"), s("."), s("-")]), s("a-b-c"));
        assert_eq!(ok("REPLACE", vec![s("a"), N, s("-")]), N);
        assert_eq!(
            ok("SPLIT", vec![s("a,b,,c"), s(",")]),
            sarr(&["a", "b", "", "c"])
        );
        assert_eq!(ok("SPLIT", vec![s("abc"), s("")]), sarr(&["a", "b", "c"]));
        assert_eq!(ok("SPLIT", vec![s(""), s("")]), sarr(&[""]));
        assert_eq!(ok("SPLIT", vec![b(b""), b(b"")]), arr(vec![b(b"")]));
        assert_eq!(
            ok("SPLIT", vec![b(b"a|b"), b(b"|")]),
            arr(vec![b(b"a"), b(b"b")])
        );
        assert!(ty("SPLIT", &[st(), it()]).is_err());
        assert_eq!(
            ok("SPLIT_TO_MAP", vec![s("a=1;b=2;junk;a=3"), s(";"), s("=")]),
            Value::Map(vec![(s("a"), s("3")), (s("b"), s("2"))])
        );
        assert_eq!(ok("SPLIT_TO_MAP", vec![s("a"), s(";"), s(";")]), N);
        assert_eq!(
            ok("SPLIT_TO_MAP", vec![s("a=1=2;b=3"), s(";"), s("=")]),
            Value::Map(vec![(s("a"), s("1")), (s("b"), s("3"))])
        );
        assert_eq!(ok("INSTR", vec![s("CORPORATE FLOOR"), s("OR")]), i(2));
        assert_eq!(ok("INSTR", vec![s("CORPORATE FLOOR"), s("OR"), i(3)]), i(5));
        assert_eq!(
            ok("INSTR", vec![s("CORPORATE FLOOR"), s("OR"), i(3), i(2)]),
            i(14)
        );
        assert_eq!(
            ok("INSTR", vec![s("CORPORATE FLOOR"), s("OR"), i(-3)]),
            i(5)
        );
        assert_eq!(
            ok("INSTR", vec![s("CORPORATE FLOOR"), s("OR"), i(-3), i(2)]),
            i(2)
        );
        assert_eq!(ok("INSTR", vec![s("abc"), s("z")]), i(0));
        assert!(ty("INSTR", &[st(), it()]).is_err());
    }

    #[test]
    fn masks() {
        assert_eq!(ok("MASK", vec![s("AbC-12 z")]), s("XxX-nn-x"));
        assert_eq!(
            ok("MASK", vec![s("AbC-12"), s("*"), N, s("#")]),
            s("*b*-##")
        );
        assert_eq!(ok("MASK", vec![N]), N);
        assert_eq!(ok("MASK_LEFT", vec![s("AbC-12"), i(2)]), s("XxC-12"));
        assert_eq!(ok("MASK_RIGHT", vec![s("AbC-12"), i(2)]), s("AbC-nn"));
        assert_eq!(ok("MASK_KEEP_LEFT", vec![s("AbC-12"), i(2)]), s("AbX-nn"));
        assert_eq!(
            ok("MASK_KEEP_RIGHT", vec![s("AbC-12"), i(2), s("#")]),
            s("#x#-12")
        );
        assert_eq!(ok("MASK_LEFT", vec![s("ab"), i(9)]), s("xx"));
        assert!(call("MASK_LEFT", vec![s("ab"), i(-1)]).is_err());
        assert!(ty("MASK_LEFT", &[st(), st()]).is_err());
        assert!(ty("MASK", &[it()]).is_err());
    }

    #[test]
    fn regular_expressions() {
        assert_eq!(
            ok("REGEXP_EXTRACT", vec![s("[a-z]+(\\d+)"), s("xx abc123 d")]),
            s("abc123")
        );
        assert_eq!(
            ok("REGEXP_EXTRACT", vec![s("[a-z]+(\\d+)"), s("abc123"), i(1)]),
            s("123")
        );
        assert_eq!(ok("REGEXP_EXTRACT", vec![s("z+"), s("abc")]), N);
        assert!(call("REGEXP_EXTRACT", vec![s("("), s("abc")]).is_err());
        assert_eq!(
            ok("REGEXP_EXTRACT_ALL", vec![s("(\\d)x"), s("1x 2x 3y"), i(1)]),
            sarr(&["1", "2"])
        );
        assert_eq!(
            ok("REGEXP_REPLACE", vec![s("a1b22"), s("(\\d+)"), s("<$1>")]),
            s("a<1>b<22>")
        );
        assert_eq!(
            ok("REGEXP_REPLACE", vec![s("ab"), s("b"), s("\\$x")]),
            s("a$x")
        );
        assert_eq!(ok("REGEXP_REPLACE", vec![N, s("b"), s("c")]), N);
        assert_eq!(
            ok("REGEXP_SPLIT_TO_ARRAY", vec![s("a1b22c"), s("\\d+")]),
            sarr(&["a", "b", "c"])
        );
        assert!(ty("REGEXP_EXTRACT", &[st(), st(), st()]).is_err());
        assert!(ty("REGEXP_SPLIT_TO_ARRAY", &[st(), it()]).is_err());
    }

    #[test]
    fn encodings() {
        assert_eq!(ok("ENCODE", vec![s("Hi"), s("utf8"), s("hex")]), s("4869"));
        assert_eq!(
            ok("ENCODE", vec![s("4869"), s("hex"), s("base64")]),
            s("SGk=")
        );
        assert_eq!(
            ok("ENCODE", vec![s("SGk="), s("base64"), s("ascii")]),
            s("Hi")
        );
        assert!(call("ENCODE", vec![s("zz"), s("hex"), s("utf8")]).is_err());
        assert!(call("ENCODE", vec![s("a"), s("ebcdic"), s("utf8")]).is_err());
        assert_eq!(ok("TO_BYTES", vec![s("AQI="), s("base64")]), b(&[1, 2]));
        assert_eq!(ok("FROM_BYTES", vec![b(&[1, 255]), s("hex")]), s("01FF"));
        // ENCODE reads hex as ksqlDB: 0x with an odd count padded, X'…'.
        assert_eq!(
            ok("ENCODE", vec![s("0x148"), s("hex"), s("utf8")]),
            s("\u{1}H")
        );
        assert_eq!(
            ok("ENCODE", vec![s("X'4869'"), s("hex"), s("utf8")]),
            s("Hi")
        );
        assert!(call("ENCODE", vec![s("148"), s("hex"), s("utf8")]).is_err());
        assert!(call("ENCODE", vec![s("0x0x"), s("hex"), s("utf8")]).is_err());
        // Java's replacements: '?' writing ASCII, U+FFFD reading it.
        assert_eq!(ok("ENCODE", vec![s("Ελ"), s("ascii"), s("hex")]), s("3f3f"));
        assert_eq!(
            ok("ENCODE", vec![s("ce95"), s("hex"), s("ascii")]),
            s("\u{FFFD}\u{FFFD}")
        );
        assert!(call("ENCODE", vec![s("Hi"), s("utf8"), s("utf8")]).is_err());
        assert_eq!(ok("FROM_BYTES", vec![N, s("hex")]), N);
        assert!(ty("FROM_BYTES", &[st(), st()]).is_err());
    }

    #[test]
    fn chr_uuid_elt_field() {
        assert_eq!(ok("CHR", vec![i(75)]), s("K"));
        assert_eq!(ok("CHR", vec![s("\\u004b")]), s("K"));
        // Two UTF-16 escapes make one character beyond the BMP; text that
        // is not an escape is NULL.
        assert_eq!(ok("CHR", vec![s("\\ud820\\udeb8")]), s("\u{182b8}"));
        assert_eq!(ok("CHR", vec![s("004b")]), N);
        assert_eq!(ok("CHR", vec![s("\\u12")]), N);
        assert_eq!(ok("CHR", vec![i(-1)]), N);
        assert!(ty("CHR", &[dt()]).is_err());
        // RFC 1321's test suite.
        assert_eq!(
            ok("MD5", vec![s("")]),
            s("d41d8cd98f00b204e9800998ecf8427e")
        );
        assert_eq!(
            ok("MD5", vec![s("message digest")]),
            s("f96b697d7cb7938d525a2f31aaf161d0")
        );
        assert_eq!(ok("MD5", vec![N]), N);
        assert!(ty("MD5", &[it()]).is_err());
        let Value::String(u) = ok("UUID", vec![]) else {
            panic!()
        };
        assert_eq!(u.len(), 36);
        assert_eq!(u.as_bytes()[14], b'4');
        assert_ne!(ok("UUID", vec![]), s(&u));
        assert_eq!(ok("ELT", vec![i(2), s("a"), s("b")]), s("b"));
        assert_eq!(ok("ELT", vec![i(3), s("a"), s("b")]), N);
        assert_eq!(ok("ELT", vec![N, s("a")]), N);
        assert!(ty("ELT", &[st(), st()]).is_err());
        assert_eq!(ok("FIELD", vec![s("b"), s("a"), s("b")]), i(2));
        assert_eq!(ok("FIELD", vec![s("z"), s("a")]), i(0));
        assert_eq!(ok("FIELD", vec![N, N]), i(0));
        assert!(ty("FIELD", &[st(), it()]).is_err());
    }

    #[test]
    fn urls() {
        let u = s("https://user@www.example.com:8080/a/b.html?x=1&y=a%20b+c&z#frag");
        assert_eq!(ok("URL_EXTRACT_PROTOCOL", vec![u.clone()]), s("https"));
        assert_eq!(
            ok("URL_EXTRACT_HOST", vec![u.clone()]),
            s("www.example.com")
        );
        assert_eq!(ok("URL_EXTRACT_PORT", vec![u.clone()]), i(8080));
        assert_eq!(ok("URL_EXTRACT_PATH", vec![u.clone()]), s("/a/b.html"));
        assert_eq!(
            ok("URL_EXTRACT_QUERY", vec![u.clone()]),
            s("x=1&y=a%20b+c&z")
        );
        assert_eq!(ok("URL_EXTRACT_FRAGMENT", vec![u.clone()]), s("frag"));
        assert_eq!(
            ok("URL_EXTRACT_PARAMETER", vec![u.clone(), s("y")]),
            s("a b c")
        );
        assert_eq!(ok("URL_EXTRACT_PARAMETER", vec![u.clone(), s("z")]), s(""));
        assert_eq!(ok("URL_EXTRACT_PARAMETER", vec![u, s("w")]), N);
        let plain = s("http://[::1]/");
        assert_eq!(ok("URL_EXTRACT_HOST", vec![plain.clone()]), s("[::1]"));
        assert_eq!(ok("URL_EXTRACT_PORT", vec![plain.clone()]), N);
        assert_eq!(ok("URL_EXTRACT_FRAGMENT", vec![plain]), N);
        assert!(call("URL_EXTRACT_HOST", vec![s("no url here")]).is_err());
        assert_eq!(ok("URL_EXTRACT_HOST", vec![N]), N);
        assert!(ty("URL_EXTRACT_PORT", &[it()]).is_err());
        assert_eq!(
            ok("URL_ENCODE_PARAM", vec![s("a b&c=é")]),
            s("a+b%26c%3D%C3%A9")
        );
        assert_eq!(
            ok("URL_DECODE_PARAM", vec![s("a+b%26c%3D%C3%A9")]),
            s("a b&c=é")
        );
        assert!(call("URL_DECODE_PARAM", vec![s("%zz")]).is_err());
    }

    #[test]
    fn numbers_from_bytes() {
        assert_eq!(ok("INT_FROM_BYTES", vec![b(&[0, 0, 1, 2])]), i(258));
        assert_eq!(
            ok("INT_FROM_BYTES", vec![b(&[2, 1, 0, 0]), s("LITTLE_ENDIAN")]),
            i(258)
        );
        assert_eq!(
            ok("BIGINT_FROM_BYTES", vec![b(&[0, 0, 0, 0, 0, 0, 0, 7])]),
            l(7)
        );
        assert_eq!(
            ok("DOUBLE_FROM_BYTES", vec![b(&1.5f64.to_be_bytes())]),
            d(1.5)
        );
        assert!(call("INT_FROM_BYTES", vec![b(&[1, 2])]).is_err());
        assert!(call("INT_FROM_BYTES", vec![b(&[0, 0, 0, 1]), s("MIDDLE")]).is_err());
        assert_eq!(ok("INT_FROM_BYTES", vec![N]), N);
        assert!(ty("INT_FROM_BYTES", &[st()]).is_err());
    }
}
