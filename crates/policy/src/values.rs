//! Validation and normalisation of one field value by its declared
//! [`FieldType`], before the value is encrypted and stored.
//!
//! Every function here is pure and total: any input string gives an answer,
//! never a panic. Errors never carry the value itself, which may be personal
//! data, so they are safe to log and to return to a caller.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use time::format_description::well_known::Rfc3339;
use time::{Date, Month, OffsetDateTime, UtcOffset};

use crate::terms::FieldType;

/// The longest value of any type, in bytes (after trimming).
pub const MAX_LEN: usize = 10_000;
/// The longest postal address, in bytes.
pub const MAX_POSTAL_ADDRESS_LEN: usize = 1_000;
/// The longest email address, in bytes (RFC 5321's path limit less the brackets).
pub const MAX_EMAIL_LEN: usize = 254;
/// The longest local part of an email address, in bytes (RFC 5321).
pub const MAX_EMAIL_LOCAL_LEN: usize = 64;
/// The longest web address, in bytes.
pub const MAX_URL_LEN: usize = 2_048;
/// The most fraction digits a decimal may have.
pub const MAX_FRACTION_DIGITS: usize = 18;

/// Why a value was refused. The message never repeats the value itself (it may be personal data).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ValueError {
    #[error("the value is empty")]
    Empty,
    #[error("the value is longer than {max} bytes")]
    TooLong { max: usize },
    #[error("the value is not {expected}")]
    Invalid { expected: &'static str },
}

/// The stored form of a valid value.
///
/// Surrounding whitespace is trimmed first for every type; what remains must
/// be non-empty, within the type's length limit and well formed.
pub fn normalise(kind: FieldType, raw: &str) -> Result<String, ValueError> {
    let value = raw.trim();
    if value.is_empty() {
        return Err(ValueError::Empty);
    }
    let max = max_len(kind);
    if value.len() > max {
        return Err(ValueError::TooLong { max });
    }
    match kind {
        FieldType::Text | FieldType::PostalAddress => text(value),
        FieldType::Email => email(value),
        FieldType::Phone => phone(value),
        FieldType::IpAddress => ip_address(value),
        FieldType::Url => url(value),
        FieldType::Date => date(value),
        FieldType::Datetime => datetime(value),
        FieldType::Integer => integer(value),
        FieldType::Decimal => decimal(value),
        FieldType::Boolean => boolean(value),
        FieldType::Country => country(value),
    }
}

/// The form used for a blind index (lookup by email or phone): for Email the
/// whole address lowercased and trimmed; for Phone the E.164 string; None for
/// types that are not looked up.
///
/// A value that [`normalise`] refuses has no lookup key either.
pub fn lookup_key(kind: FieldType, raw: &str) -> Option<String> {
    match kind {
        FieldType::Email => normalise(kind, raw).ok().map(|e| e.to_lowercase()),
        FieldType::Phone => normalise(kind, raw).ok(),
        _ => None,
    }
}

/// For pseudonymisation of an IP address: IPv4 to its /24 (last octet 0), IPv6 to its /48; None if not an address.
///
/// An IPv4-mapped IPv6 address (`::ffff:a.b.c.d`, as a dual-stack socket
/// reports an IPv4 client) is treated as the IPv4 address it carries, so one
/// client gets one pseudonym however it connected.
pub fn truncate_ip(raw: &str) -> Option<String> {
    let address: IpAddr = raw.trim().parse().ok()?;
    let v4 = match address {
        IpAddr::V4(v4) => Some(v4),
        IpAddr::V6(v6) => v6.to_ipv4_mapped(),
    };
    let truncated = match (v4, address) {
        (Some(v4), _) => {
            let [a, b, c, _] = v4.octets();
            IpAddr::V4(Ipv4Addr::new(a, b, c, 0))
        }
        (None, IpAddr::V6(v6)) => {
            let [a, b, c, ..] = v6.segments();
            IpAddr::V6(Ipv6Addr::new(a, b, c, 0, 0, 0, 0, 0))
        }
        (None, IpAddr::V4(v4)) => IpAddr::V4(v4),
    };
    Some(truncated.to_string())
}

fn max_len(kind: FieldType) -> usize {
    match kind {
        FieldType::PostalAddress => MAX_POSTAL_ADDRESS_LEN,
        FieldType::Email => MAX_EMAIL_LEN,
        FieldType::Url => MAX_URL_LEN,
        _ => MAX_LEN,
    }
}

const fn invalid(expected: &'static str) -> ValueError {
    ValueError::Invalid { expected }
}

fn text(value: &str) -> Result<String, ValueError> {
    if value
        .chars()
        .any(|c| c.is_control() && c != '\n' && c != '\t')
    {
        return Err(invalid(
            "text without control characters (other than newline and tab)",
        ));
    }
    Ok(value.to_string())
}

fn email(value: &str) -> Result<String, ValueError> {
    const EXPECTED: &str = "an email address (local-part@domain.example)";
    let (local, domain) = value.split_once('@').ok_or(invalid(EXPECTED))?;
    if domain.contains('@') {
        return Err(invalid(EXPECTED));
    }
    if local.is_empty()
        || local.len() > MAX_EMAIL_LOCAL_LEN
        || local.chars().any(|c| c.is_whitespace() || c.is_control())
    {
        return Err(invalid(EXPECTED));
    }
    if !domain.contains('.') || !domain.split('.').all(is_domain_label) {
        return Err(invalid(EXPECTED));
    }
    Ok(format!("{local}@{}", domain.to_ascii_lowercase()))
}

/// A DNS label under the letters-digits-hyphen rule (IDNs in their `xn--` form).
fn is_domain_label(label: &str) -> bool {
    !label.is_empty()
        && label.len() <= 63
        && label
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        && !label.starts_with('-')
        && !label.ends_with('-')
}

fn phone(value: &str) -> Result<String, ValueError> {
    const EXPECTED: &str =
        "a telephone number in international form (+ then country code and number)";
    // "+44 (0) 20 ..." is how UK numbers are often written: the bracketed
    // trunk zero is dialled only from inside the country, so it is dropped.
    let without_trunk = value.replacen("(0)", "", 1);
    let compact: String = without_trunk
        .chars()
        .filter(|c| !matches!(c, ' ' | '-' | '.' | '(' | ')'))
        .collect();
    let digits = compact.strip_prefix('+').ok_or(invalid(EXPECTED))?;
    if !(8..=15).contains(&digits.len())
        || !digits.bytes().all(|b| b.is_ascii_digit())
        || digits.starts_with('0')
    {
        return Err(invalid(EXPECTED));
    }
    Ok(compact)
}

fn ip_address(value: &str) -> Result<String, ValueError> {
    value
        .parse::<IpAddr>()
        .map(|a| a.to_string())
        .map_err(|_| invalid("an IPv4 or IPv6 address"))
}

fn url(value: &str) -> Result<String, ValueError> {
    const EXPECTED: &str = "a web address starting http:// or https://";
    if value.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(invalid(EXPECTED));
    }
    let (scheme, rest) = ["https://", "http://"]
        .into_iter()
        .find_map(|scheme| {
            let head = value.get(..scheme.len())?;
            let rest = value.get(scheme.len()..)?;
            head.eq_ignore_ascii_case(scheme).then_some((scheme, rest))
        })
        .ok_or(invalid(EXPECTED))?;
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let host_port = authority
        .rsplit_once('@')
        .map_or(authority, |(_userinfo, host_port)| host_port);
    let (host, port) = if let Some(bracketed) = host_port.strip_prefix('[') {
        let (host, after) = bracketed.split_once(']').ok_or(invalid(EXPECTED))?;
        if host.parse::<Ipv6Addr>().is_err() {
            return Err(invalid(EXPECTED));
        }
        match after {
            "" => (host, None),
            _ => (
                host,
                Some(after.strip_prefix(':').ok_or(invalid(EXPECTED))?),
            ),
        }
    } else {
        match host_port.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (host_port, None),
        }
    };
    if host.is_empty() {
        return Err(invalid(EXPECTED));
    }
    if let Some(port) = port {
        if port.is_empty()
            || !port.bytes().all(|b| b.is_ascii_digit())
            || port.parse::<u16>().is_err()
        {
            return Err(invalid(EXPECTED));
        }
    }
    Ok(format!("{scheme}{rest}"))
}

fn date(value: &str) -> Result<String, ValueError> {
    const EXPECTED: &str = "a calendar date written YYYY-MM-DD";
    let bytes = value.as_bytes();
    let shape = bytes.len() == 10
        && bytes.iter().enumerate().all(|(i, b)| match i {
            4 | 7 => *b == b'-',
            _ => b.is_ascii_digit(),
        });
    if !shape {
        return Err(invalid(EXPECTED));
    }
    fn number<T: std::str::FromStr>(value: &str, range: std::ops::Range<usize>) -> Option<T> {
        value.get(range)?.parse().ok()
    }
    let year: i32 = number(value, 0..4).ok_or(invalid(EXPECTED))?;
    let month: u8 = number(value, 5..7).ok_or(invalid(EXPECTED))?;
    let day: u8 = number(value, 8..10).ok_or(invalid(EXPECTED))?;
    let month = Month::try_from(month).map_err(|_| invalid(EXPECTED))?;
    Date::from_calendar_date(year, month, day).map_err(|_| invalid(EXPECTED))?;
    Ok(value.to_string())
}

fn datetime(value: &str) -> Result<String, ValueError> {
    const EXPECTED: &str = "a date and time in RFC 3339 form (2024-05-01T09:30:00Z)";
    OffsetDateTime::parse(value, &Rfc3339)
        .ok()
        .and_then(|t| t.checked_to_offset(UtcOffset::UTC))
        .and_then(|t| t.format(&Rfc3339).ok())
        .ok_or(invalid(EXPECTED))
}

/// Splits an optional leading sign from a number.
fn split_sign(value: &str) -> (&str, &str) {
    match value.as_bytes().first() {
        Some(b'+') => ("+", value.get(1..).unwrap_or_default()),
        Some(b'-') => ("-", value.get(1..).unwrap_or_default()),
        _ => ("", value),
    }
}

fn all_digits(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
}

fn integer(value: &str) -> Result<String, ValueError> {
    const EXPECTED: &str = "a whole number within the 64-bit range";
    let (_, digits) = split_sign(value);
    if !all_digits(digits) {
        return Err(invalid(EXPECTED));
    }
    value
        .parse::<i64>()
        .map(|n| n.to_string())
        .map_err(|_| invalid(EXPECTED))
}

fn decimal(value: &str) -> Result<String, ValueError> {
    const EXPECTED: &str = "a decimal number (digits, optionally a point and up to 18 more digits)";
    let (sign, unsigned) = split_sign(value);
    let (whole, fraction) = match unsigned.split_once('.') {
        Some((whole, fraction)) => (whole, Some(fraction)),
        None => (unsigned, None),
    };
    let fraction_ok = fraction.is_none_or(|f| all_digits(f) && f.len() <= MAX_FRACTION_DIGITS);
    if !all_digits(whole) || !fraction_ok {
        return Err(invalid(EXPECTED));
    }
    Ok(match sign {
        "+" => unsigned.to_string(),
        _ => value.to_string(),
    })
}

fn boolean(value: &str) -> Result<String, ValueError> {
    ["true", "false"]
        .into_iter()
        .find(|word| value.eq_ignore_ascii_case(word))
        .map(str::to_string)
        .ok_or(invalid("true or false"))
}

fn country(value: &str) -> Result<String, ValueError> {
    if value.len() == 2 && value.bytes().all(|b| b.is_ascii_alphabetic()) {
        Ok(value.to_ascii_uppercase())
    } else {
        Err(invalid("an ISO 3166-1 alpha-2 country code"))
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_bracketed_trunk_zero_is_dropped() {
        assert_eq!(
            super::normalise(crate::terms::FieldType::Phone, "+44 (0) 333 305 2252").unwrap(),
            "+443333052252"
        );
    }

    use super::*;
    use proptest::prelude::*;

    fn ok(kind: FieldType, raw: &str) -> String {
        match normalise(kind, raw) {
            Ok(v) => v,
            Err(e) => panic!("{kind} {raw:?} refused: {e}"),
        }
    }

    fn refused(kind: FieldType, raw: &str) -> ValueError {
        match normalise(kind, raw) {
            Ok(v) => panic!("{kind} {raw:?} accepted as {v:?}"),
            Err(e) => e,
        }
    }

    fn is_invalid(kind: FieldType, raw: &str) {
        let e = refused(kind, raw);
        assert!(
            matches!(e, ValueError::Invalid { .. }),
            "{kind} {raw:?}: expected Invalid, got {e:?}"
        );
    }

    #[test]
    fn every_type_trims_and_refuses_empty() {
        for &kind in FieldType::ALL {
            assert_eq!(normalise(kind, ""), Err(ValueError::Empty), "{kind}");
            assert_eq!(
                normalise(kind, " \t\r\n "),
                Err(ValueError::Empty),
                "{kind}"
            );
        }
        assert_eq!(ok(FieldType::Text, "  hello \n"), "hello");
        assert_eq!(ok(FieldType::Boolean, "\ttrue "), "true");
        assert_eq!(ok(FieldType::Email, " a@x.com "), "a@x.com");
    }

    #[test]
    fn length_limits() {
        let long = "a".repeat(MAX_LEN + 1);
        assert_eq!(
            normalise(FieldType::Text, &long),
            Err(ValueError::TooLong { max: MAX_LEN })
        );
        assert_eq!(ok(FieldType::Text, &"a".repeat(MAX_LEN)).len(), MAX_LEN);
        // Surrounding whitespace does not count.
        assert_eq!(
            ok(FieldType::Text, &format!("  {}  ", "a".repeat(MAX_LEN))).len(),
            MAX_LEN
        );
        for &kind in FieldType::ALL {
            assert!(
                matches!(normalise(kind, &long), Err(ValueError::TooLong { .. })),
                "{kind}"
            );
        }

        let address = "x".repeat(MAX_POSTAL_ADDRESS_LEN);
        assert_eq!(ok(FieldType::PostalAddress, &address), address);
        assert_eq!(
            normalise(FieldType::PostalAddress, &format!("{address}x")),
            Err(ValueError::TooLong { max: 1_000 })
        );

        // 64 + 1 + 189 = 254 bytes.
        let domain = format!(
            "{}.{}.{}.com",
            "d".repeat(63),
            "e".repeat(63),
            "f".repeat(57)
        );
        let email = format!("{}@{domain}", "l".repeat(64));
        assert_eq!(email.len(), MAX_EMAIL_LEN);
        assert_eq!(ok(FieldType::Email, &email), email);
        assert_eq!(
            normalise(FieldType::Email, &format!("{email}m")),
            Err(ValueError::TooLong { max: 254 })
        );

        let url = format!("https://x.com/{}", "p".repeat(MAX_URL_LEN - 14));
        assert_eq!(url.len(), MAX_URL_LEN);
        assert_eq!(ok(FieldType::Url, &url), url);
        assert_eq!(
            normalise(FieldType::Url, &format!("{url}p")),
            Err(ValueError::TooLong { max: 2_048 })
        );
    }

    #[test]
    fn text_and_postal_address() {
        for kind in [FieldType::Text, FieldType::PostalAddress] {
            assert_eq!(
                ok(kind, "1 High St\nLeeds\tLS1 1AA"),
                "1 High St\nLeeds\tLS1 1AA"
            );
            assert_eq!(ok(kind, "Zoë Ñandú 東京"), "Zoë Ñandú 東京");
            is_invalid(kind, "a\0b");
            is_invalid(kind, "a\rb");
            is_invalid(kind, "a\u{1b}[31mb");
            is_invalid(kind, "a\u{7f}b");
            is_invalid(kind, "a\u{85}b");
        }
    }

    #[test]
    fn valid_emails() {
        assert_eq!(ok(FieldType::Email, "a@x.com"), "a@x.com");
        assert_eq!(
            ok(FieldType::Email, "Ann.Lee+tag@Example.CO.UK"),
            "Ann.Lee+tag@example.co.uk"
        );
        assert_eq!(
            ok(FieldType::Email, "x@sub-domain.x1.io"),
            "x@sub-domain.x1.io"
        );
        assert_eq!(
            ok(FieldType::Email, "x@xn--mnchen-3ya.de"),
            "x@xn--mnchen-3ya.de"
        );
        assert_eq!(
            ok(FieldType::Email, &format!("{}@x.com", "l".repeat(64))).len(),
            70
        );
    }

    #[test]
    fn malformed_emails() {
        for raw in [
            "a@b",
            "@x.com",
            "a b@x.com",
            "a@-x.com",
            "a@x-.com",
            "a@x.-com",
            "a",
            "a.x.com",
            "a@@x.com",
            "a@b@x.com",
            "a@",
            "a@.com",
            "a@x.com.",
            "a@x..com",
            "a@x .com",
            "a@x_y.com",
            "a@münchen.de",
            "a\tb@x.com",
            "a\u{0}@x.com",
            "a@[127.0.0.1]",
        ] {
            is_invalid(FieldType::Email, raw);
        }
        is_invalid(FieldType::Email, &format!("{}@x.com", "l".repeat(65)));
        is_invalid(FieldType::Email, &format!("a@{}.com", "d".repeat(64)));
    }

    #[test]
    fn valid_phones() {
        assert_eq!(ok(FieldType::Phone, "+44 7700 900123"), "+447700900123");
        assert_eq!(ok(FieldType::Phone, "+1 (415) 555-0100"), "+14155550100");
        assert_eq!(ok(FieldType::Phone, "+33.1.23.45.67.89"), "+33123456789");
        assert_eq!(ok(FieldType::Phone, "+12345678"), "+12345678");
        assert_eq!(ok(FieldType::Phone, "+123456789012345"), "+123456789012345");
    }

    #[test]
    fn malformed_phones() {
        for raw in [
            "07700 900123",
            "447700900123",
            "+07700900123",
            "+0",
            "+1234567",
            "+1234567890123456",
            "+44 7700 9001x3",
            "+44/7700/900123",
            "++447700900123",
            "+44+7700900123",
            "44+7700900123",
            "+",
            "+ - ()",
            "+44\t7700900123",
            "+４４7700900123",
        ] {
            is_invalid(FieldType::Phone, raw);
        }
    }

    #[test]
    fn ip_addresses() {
        assert_eq!(ok(FieldType::IpAddress, "192.0.2.1"), "192.0.2.1");
        assert_eq!(
            ok(FieldType::IpAddress, "2001:DB8:0:0:0:0:0:1"),
            "2001:db8::1"
        );
        assert_eq!(
            ok(FieldType::IpAddress, "::FFFF:192.0.2.1"),
            "::ffff:192.0.2.1"
        );
        for raw in [
            "999.1.1.1",
            "1.2.3",
            "1.2.3.4.5",
            "01.2.3.4",
            "::g",
            "1.2.3.4/24",
            "fe80::1%eth0",
            "localhost",
        ] {
            is_invalid(FieldType::IpAddress, raw);
        }
    }

    #[test]
    fn truncated_ips() {
        assert_eq!(truncate_ip("192.0.2.123").as_deref(), Some("192.0.2.0"));
        assert_eq!(truncate_ip(" 10.1.2.3 ").as_deref(), Some("10.1.2.0"));
        assert_eq!(
            truncate_ip("2001:db8:abcd:1234:5678:9abc:def0:1").as_deref(),
            Some("2001:db8:abcd::")
        );
        assert_eq!(truncate_ip("::1").as_deref(), Some("::"));
        assert_eq!(
            truncate_ip("::ffff:192.0.2.77").as_deref(),
            Some("192.0.2.0")
        );
        assert_eq!(truncate_ip("999.1.1.1"), None);
        assert_eq!(truncate_ip(""), None);
        assert_eq!(truncate_ip("not an address"), None);
    }

    #[test]
    fn urls() {
        assert_eq!(
            ok(FieldType::Url, "https://example.com"),
            "https://example.com"
        );
        assert_eq!(
            ok(FieldType::Url, "HTTP://Example.com/A?b=C#D"),
            "http://Example.com/A?b=C#D"
        );
        assert_eq!(ok(FieldType::Url, "HtTpS://x.com/"), "https://x.com/");
        assert_eq!(
            ok(FieldType::Url, "http://user:pw@x.com:8080/p"),
            "http://user:pw@x.com:8080/p"
        );
        assert_eq!(
            ok(FieldType::Url, "http://[2001:db8::1]:443/"),
            "http://[2001:db8::1]:443/"
        );
        assert_eq!(ok(FieldType::Url, "http://localhost"), "http://localhost");
        for raw in [
            "example.com",
            "ftp://x.com",
            "javascript:alert(1)",
            "http://",
            "https:///path",
            "http://?q",
            "http://user@/p",
            "http://:80/",
            "http://x.com:/",
            "http://x.com:99999/",
            "http://x.com:8o/",
            "http://[nothost]/",
            "http://[::1/",
            "http://[::1]x/",
            "http://x .com",
            "http://x.com/a b",
            "http://x.com/\u{0}",
            "http://x.com/a\u{a0}b",
            "http:x.com",
        ] {
            is_invalid(FieldType::Url, raw);
        }
    }

    #[test]
    fn dates() {
        assert_eq!(ok(FieldType::Date, "2024-02-29"), "2024-02-29");
        assert_eq!(ok(FieldType::Date, "1999-12-31"), "1999-12-31");
        for raw in [
            "2023-02-29",
            "2024-13-01",
            "2024-00-10",
            "2024-04-31",
            "2024-01-00",
            "2024-1-01",
            "24-01-01",
            "2024/01/01",
            "+2024-01-01",
            "2024-01-01T00:00:00Z",
            "２０２４-01-01",
            "2024-01-0a",
        ] {
            is_invalid(FieldType::Date, raw);
        }
    }

    #[test]
    fn datetimes() {
        assert_eq!(
            ok(FieldType::Datetime, "2024-05-01T09:30:00Z"),
            "2024-05-01T09:30:00Z"
        );
        assert_eq!(
            ok(FieldType::Datetime, "2024-05-01T09:30:00+01:00"),
            "2024-05-01T08:30:00Z"
        );
        assert_eq!(
            ok(FieldType::Datetime, "2024-12-31T23:30:00.25-02:00"),
            "2025-01-01T01:30:00.25Z"
        );
        for raw in [
            "2024-05-01",
            "2024-05-01 09:30:00",
            "2024-05-01T09:30:00",
            "2024-02-30T00:00:00Z",
            "2024-05-01T25:00:00Z",
            "yesterday",
            // Valid, but before year 0 once moved to UTC.
            "0000-01-01T00:00:00+01:00",
        ] {
            is_invalid(FieldType::Datetime, raw);
        }
    }

    #[test]
    fn integers() {
        assert_eq!(ok(FieldType::Integer, "42"), "42");
        assert_eq!(ok(FieldType::Integer, "+007"), "7");
        assert_eq!(ok(FieldType::Integer, "-0"), "0");
        assert_eq!(ok(FieldType::Integer, "-0042"), "-42");
        assert_eq!(
            ok(FieldType::Integer, "9223372036854775807"),
            "9223372036854775807"
        );
        assert_eq!(
            ok(FieldType::Integer, "-9223372036854775808"),
            "-9223372036854775808"
        );
        assert_eq!(
            ok(FieldType::Integer, &format!("{}1", "0".repeat(100))),
            "1"
        );
        for raw in [
            "9223372036854775808",
            "-9223372036854775809",
            "1.0",
            "1e3",
            "+",
            "-",
            "+-1",
            "--1",
            "1 000",
            "0x10",
            "١٢",
        ] {
            is_invalid(FieldType::Integer, raw);
        }
    }

    #[test]
    fn decimals() {
        assert_eq!(ok(FieldType::Decimal, "3.14"), "3.14");
        assert_eq!(ok(FieldType::Decimal, "+3.14"), "3.14");
        assert_eq!(ok(FieldType::Decimal, "-0.50"), "-0.50");
        assert_eq!(ok(FieldType::Decimal, "007"), "007");
        assert_eq!(
            ok(FieldType::Decimal, "1.123456789012345678"),
            "1.123456789012345678"
        );
        let big = "9".repeat(500);
        assert_eq!(ok(FieldType::Decimal, &big), big);
        for raw in [
            "1.1234567890123456789",
            ".5",
            "5.",
            "1e3",
            "1.5e3",
            "1,5",
            "1.2.3",
            "+-1",
            "-",
            "NaN",
            "inf",
            "- 1",
        ] {
            is_invalid(FieldType::Decimal, raw);
        }
    }

    #[test]
    fn booleans() {
        assert_eq!(ok(FieldType::Boolean, "TRUE"), "true");
        assert_eq!(ok(FieldType::Boolean, "False"), "false");
        for raw in ["yes", "1", "t", "truee", "tru"] {
            is_invalid(FieldType::Boolean, raw);
        }
    }

    #[test]
    fn countries() {
        assert_eq!(ok(FieldType::Country, "gb"), "GB");
        assert_eq!(ok(FieldType::Country, "De"), "DE");
        for raw in ["G", "GBR", "G1", "ÖS", "g b"] {
            is_invalid(FieldType::Country, raw);
        }
    }

    #[test]
    fn lookup_keys() {
        assert_eq!(
            lookup_key(FieldType::Email, "  Ann.Lee@Example.COM ").as_deref(),
            Some("ann.lee@example.com")
        );
        assert_eq!(
            lookup_key(FieldType::Phone, " +44 7700 900123").as_deref(),
            Some("+447700900123")
        );
        assert_eq!(lookup_key(FieldType::Email, "a@b"), None);
        assert_eq!(lookup_key(FieldType::Phone, "07700 900123"), None);
        for &kind in FieldType::ALL {
            if !matches!(kind, FieldType::Email | FieldType::Phone) {
                assert_eq!(lookup_key(kind, "true"), None, "{kind}");
            }
        }
    }

    #[test]
    fn errors_do_not_repeat_the_value() {
        let samples = [
            "a@b",
            "a b@x.com",
            "07700 900123",
            "999.1.1.1",
            "secret\u{0}value",
            "ftp://secret.example",
            "2023-02-29",
            "99999999999999999999",
            "true-ish",
            "GBR",
        ];
        for &kind in FieldType::ALL {
            for raw in samples {
                if let Err(e) = normalise(kind, raw) {
                    let shown = format!("{e} {e:?}");
                    assert!(!shown.contains(raw.trim()), "{kind}: {shown}");
                }
            }
        }
        assert_eq!(ValueError::Empty.to_string(), "the value is empty");
        assert_eq!(
            ValueError::TooLong { max: 254 }.to_string(),
            "the value is longer than 254 bytes"
        );
        assert_eq!(
            refused(FieldType::Boolean, "maybe").to_string(),
            "the value is not true or false"
        );
    }

    /// Every accepted value is a fixed point: normalising the stored form
    /// gives it back unchanged.
    #[test]
    fn normalised_forms_are_stable() {
        let cases = [
            (FieldType::Email, "Ann@Example.COM"),
            (FieldType::Phone, "+1 (415) 555-0100"),
            (FieldType::IpAddress, "2001:DB8::0:1"),
            (FieldType::Url, "HTTPS://x.com"),
            (FieldType::Datetime, "2024-05-01T09:30:00.500+05:30"),
            (FieldType::Integer, "+00012"),
            (FieldType::Decimal, "+1.50"),
            (FieldType::Boolean, "FALSE"),
            (FieldType::Country, "fr"),
            (FieldType::Text, "  x  "),
        ];
        for (kind, raw) in cases {
            let once = ok(kind, raw);
            assert_eq!(ok(kind, &once), once, "{kind} {raw:?}");
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        /// Total on any input: an answer, never a panic, and an error that
        /// does not carry the value.
        #[test]
        fn any_input_is_answered(raw in "\\PC{0,40}|[ -~]{0,40}|.{0,12}", kind in 0..FieldType::ALL.len()) {
            let kind = FieldType::ALL[kind];
            match normalise(kind, &raw) {
                Ok(stored) => {
                    prop_assert_eq!(normalise(kind, &stored), Ok(stored.clone()));
                }
                Err(e) => {
                    let trimmed = raw.trim();
                    if trimmed.len() > 5 {
                        prop_assert!(!e.to_string().contains(trimmed));
                    }
                }
            }
            let _ = lookup_key(kind, &raw);
            let _ = truncate_ip(&raw);
        }

        #[test]
        fn any_ipv4_truncates_to_its_24(a: u8, b: u8, c: u8, d: u8) {
            let raw = format!("{a}.{b}.{c}.{d}");
            prop_assert_eq!(truncate_ip(&raw), Some(format!("{a}.{b}.{c}.0")));
            prop_assert_eq!(normalise(FieldType::IpAddress, &raw), Ok(raw));
        }

        #[test]
        fn any_ipv6_truncates_to_its_48(segments: [u16; 8]) {
            let address = Ipv6Addr::from(segments);
            prop_assume!(address.to_ipv4_mapped().is_none());
            let [a, b, c, ..] = segments;
            let expected = Ipv6Addr::new(a, b, c, 0, 0, 0, 0, 0).to_string();
            prop_assert_eq!(truncate_ip(&address.to_string()), Some(expected));
        }

        #[test]
        fn any_i64_round_trips(n: i64) {
            prop_assert_eq!(normalise(FieldType::Integer, &n.to_string()), Ok(n.to_string()));
            prop_assert_eq!(normalise(FieldType::Integer, &format!("+0{n}").replace("+0-", "-0")), Ok(n.to_string()));
        }
    }
}
