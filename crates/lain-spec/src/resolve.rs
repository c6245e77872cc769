//! YAML 1.1 scalar resolution, as PyYAML (which LAIN used) does it.
//!
//! saphyr-parser only tokenizes; deciding what a plain scalar *means* is
//! ours. LAIN loaded lain.yaml with PyYAML's `safe_load`, i.e. YAML 1.1
//! implicit typing, so `stateful: yes` is a boolean, `port: 0x50` is 80,
//! `version: 2016-09-13` is a date and `1e3` is a string. We follow those
//! regular expressions exactly so that a file means what it meant to LAIN.

use regex::Regex;
use std::sync::LazyLock;

/// A resolved scalar.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Scalar {
    Null,
    Bool(bool),
    Int(i64),
    /// An integer PyYAML would accept but that does not fit in an i64.
    BigInt,
    Float(f64),
    Str(String),
    /// A YAML 1.1 timestamp (`2016-09-13`); kept as text.
    Timestamp,
}

// The patterns of PyYAML's resolver.py (YAML 1.1 implicit tags), anchored.
static BOOL_RE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^(?:yes|Yes|YES|no|No|NO|true|True|TRUE|false|False|FALSE|on|On|ON|off|Off|OFF)$")
        .expect("static regex")
});

static INT_RE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"^(?:[-+]?0b[0-1_]+|[-+]?0[0-7_]+|[-+]?(?:0|[1-9][0-9_]*)|[-+]?0x[0-9a-fA-F_]+|[-+]?[1-9][0-9_]*(?::[0-5]?[0-9])+)$",
    )
    .expect("static regex")
});

static FLOAT_RE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+][0-9]+)?|\.[0-9_]+(?:[eE][-+][0-9]+)?|[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+\.[0-9_]*|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$",
    )
    .expect("static regex")
});

static TIMESTAMP_RE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"^(?:[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]|[0-9][0-9][0-9][0-9]-[0-9][0-9]?-[0-9][0-9]?(?:[Tt]|[ \t]+)[0-9][0-9]?:[0-9][0-9]:[0-9][0-9](?:\.[0-9]*)?(?:[ \t]*(?:Z|[-+][0-9][0-9]?(?::[0-9][0-9])?))?)$",
    )
    .expect("static regex")
});

/// What an untagged plain scalar resolves to. `Err` carries a message for
/// the one plain scalar PyYAML's safe loader refuses: `=`.
pub(crate) fn resolve_plain(text: &str) -> Result<Scalar, String> {
    match text {
        "" | "~" | "null" | "Null" | "NULL" => return Ok(Scalar::Null),
        // PyYAML resolves `=` to the `value` tag, which safe_load cannot
        // construct: LAIN failed on it, and so do we, with a hint.
        "=" => {
            return Err(
                "a bare `=` is a special value in YAML 1.1 that LAIN's loader refuses; \
                        quote it: \"=\""
                    .to_owned(),
            )
        }
        _ => {}
    }
    if BOOL_RE.is_match(text) {
        return Ok(Scalar::Bool(parse_bool(text).unwrap_or(false)));
    }
    // PyYAML tries float before int; the two sets do not overlap.
    if FLOAT_RE.is_match(text) {
        return Ok(Scalar::Float(parse_float(text)));
    }
    if INT_RE.is_match(text) {
        return Ok(parse_int(text).map_or(Scalar::BigInt, Scalar::Int));
    }
    if TIMESTAMP_RE.is_match(text) {
        return Ok(Scalar::Timestamp);
    }
    Ok(Scalar::Str(text.to_owned()))
}

/// `!!bool` accepts the YAML 1.1 words in any case, as PyYAML's constructor.
pub(crate) fn parse_bool(text: &str) -> Option<bool> {
    match text.to_ascii_lowercase().as_str() {
        "yes" | "true" | "on" => Some(true),
        "no" | "false" | "off" => Some(false),
        _ => None,
    }
}

/// Value of a YAML 1.1 integer (as PyYAML's `construct_yaml_int`), or
/// `None` when it does not fit in an i64 or is not an integer at all.
pub(crate) fn parse_int(text: &str) -> Option<i64> {
    let cleaned: String = text.chars().filter(|&c| c != '_').collect();
    let (negative, digits) = match cleaned.as_bytes().first() {
        Some(b'-') => (true, &cleaned[1..]),
        Some(b'+') => (false, &cleaned[1..]),
        _ => (false, cleaned.as_str()),
    };
    if digits.is_empty() {
        return None;
    }
    let magnitude: i128 = if digits == "0" {
        0
    } else if let Some(bin) = digits.strip_prefix("0b") {
        i128::from_str_radix(bin, 2).ok()?
    } else if let Some(hex) = digits.strip_prefix("0x") {
        i128::from_str_radix(hex, 16).ok()?
    } else if digits.contains(':') {
        // Sexagesimal: `1:30` is 90.
        let mut acc: i128 = 0;
        for part in digits.split(':') {
            let v: i128 = part.parse().ok()?;
            acc = acc.checked_mul(60)?.checked_add(v)?;
        }
        acc
    } else if let Some(oct) = digits.strip_prefix('0') {
        i128::from_str_radix(oct, 8).ok()?
    } else {
        digits.parse().ok()?
    };
    let signed = if negative { -magnitude } else { magnitude };
    i64::try_from(signed).ok()
}

/// Whether a scalar that matched the YAML 1.1 integer pattern has digits:
/// `0b_` and `0x_` match it, but PyYAML's constructor fails on them (there
/// is no number), so they are invalid rather than too large.
pub(crate) fn int_has_digits(text: &str) -> bool {
    let cleaned: String = text
        .chars()
        .filter(|&c| c != '_' && c != '-' && c != '+')
        .collect();
    let digits = cleaned
        .strip_prefix("0b")
        .or_else(|| cleaned.strip_prefix("0x"))
        .unwrap_or(&cleaned);
    !digits.is_empty()
}

/// Value of a YAML 1.1 float (as PyYAML's `construct_yaml_float`).
pub(crate) fn parse_float(text: &str) -> f64 {
    let cleaned: String = text
        .chars()
        .filter(|&c| c != '_')
        .collect::<String>()
        .to_ascii_lowercase();
    let (sign, body) = match cleaned.as_bytes().first() {
        Some(b'-') => (-1.0, &cleaned[1..]),
        Some(b'+') => (1.0, &cleaned[1..]),
        _ => (1.0, cleaned.as_str()),
    };
    if body == ".inf" {
        return sign * f64::INFINITY;
    }
    if body == ".nan" {
        return f64::NAN;
    }
    if body.contains(':') {
        let mut acc = 0.0;
        for part in body.split(':') {
            acc = acc * 60.0 + part.parse::<f64>().unwrap_or(0.0);
        }
        return sign * acc;
    }
    // Rust's float parser wants a digit after the dot only optionally, but
    // not a leading bare dot before an exponent; both are covered.
    sign * body.parse::<f64>().unwrap_or(0.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(s: &str) -> Scalar {
        resolve_plain(s).unwrap_or(Scalar::Str("<err>".into()))
    }

    #[test]
    fn yaml11_booleans() {
        for t in [
            "yes", "Yes", "YES", "on", "On", "ON", "true", "True", "TRUE",
        ] {
            assert_eq!(r(t), Scalar::Bool(true), "{t}");
        }
        for f in [
            "no", "No", "NO", "off", "Off", "OFF", "false", "False", "FALSE",
        ] {
            assert_eq!(r(f), Scalar::Bool(false), "{f}");
        }
        // PyYAML does not treat y/n or mixed case as booleans.
        assert_eq!(r("y"), Scalar::Str("y".into()));
        assert_eq!(r("n"), Scalar::Str("n".into()));
        assert_eq!(r("yEs"), Scalar::Str("yEs".into()));
    }

    #[test]
    fn yaml11_nulls() {
        for n in ["", "~", "null", "Null", "NULL"] {
            assert_eq!(r(n), Scalar::Null, "{n:?}");
        }
        assert_eq!(r("nULL"), Scalar::Str("nULL".into()));
    }

    #[test]
    fn yaml11_integers() {
        assert_eq!(r("80"), Scalar::Int(80));
        assert_eq!(r("-2"), Scalar::Int(-2));
        assert_eq!(r("+7"), Scalar::Int(7));
        assert_eq!(r("0"), Scalar::Int(0));
        assert_eq!(r("1_000"), Scalar::Int(1000));
        assert_eq!(r("0x50"), Scalar::Int(80));
        assert_eq!(r("0b101"), Scalar::Int(5));
        assert_eq!(
            r("010"),
            Scalar::Int(8),
            "leading zero is octal in YAML 1.1"
        );
        assert_eq!(r("1:20"), Scalar::Int(80), "sexagesimal");
        assert_eq!(r("99999999999999999999999"), Scalar::BigInt);
        assert_eq!(r("0b_"), Scalar::BigInt);
        assert!(int_has_digits("99999999999999999999999"));
        assert!(int_has_digits("-0x_f"));
        assert!(!int_has_digits("0b_"));
        assert!(!int_has_digits("-0x__"));
        // Not integers in YAML 1.1.
        assert_eq!(r("08"), Scalar::Str("08".into()));
        assert_eq!(r("80:tcp"), Scalar::Str("80:tcp".into()));
        assert_eq!(r("9506:8000"), Scalar::Str("9506:8000".into()));
        assert_eq!(r("1e3"), Scalar::Str("1e3".into()));
        assert_eq!(r("256m"), Scalar::Str("256m".into()));
    }

    #[test]
    fn yaml11_floats_and_dates() {
        assert_eq!(r("1.5"), Scalar::Float(1.5));
        assert_eq!(r("1."), Scalar::Float(1.0));
        assert_eq!(r(".5"), Scalar::Float(0.5));
        assert_eq!(r("1.0e+3"), Scalar::Float(1000.0));
        assert_eq!(r("-.inf"), Scalar::Float(f64::NEG_INFINITY));
        assert!(matches!(r(".nan"), Scalar::Float(f) if f.is_nan()));
        assert_eq!(r("1:30.5"), Scalar::Float(90.5));
        assert_eq!(r("2016-09-13"), Scalar::Timestamp);
        assert_eq!(r("2001-12-14t21:59:43.10-05:00"), Scalar::Timestamp);
        assert_eq!(r("20160913"), Scalar::Int(20160913));
    }

    #[test]
    fn bare_equals_is_refused() {
        assert!(resolve_plain("=").is_err());
        assert_eq!(r("a=b"), Scalar::Str("a=b".into()));
    }
}
