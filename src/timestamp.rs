//! RFC 3339 UTC timestamps with millisecond precision (`2026-11-23T11:22:33.456Z`).
//!
//! Written by hand from the Unix time (days-to-civil conversion) because a date library would
//! cost far more code size than these few lines.

use std::time::{SystemTime, UNIX_EPOCH};

use crate::json::Small;

/// Largest Unix time in milliseconds that still has a 4-digit year (9999-12-31T23:59:59.999Z).
const MAX_MILLIS: u64 = 253_402_300_799_999;

/// `t` as an RFC 3339 UTC timestamp with milliseconds, on the stack.
///
/// Times before 1970 are written as the epoch and times after year 9999 as the last
/// millisecond of 9999, so the output always has the fixed 24-character shape.
pub fn rfc3339(t: SystemTime) -> Small {
    let millis = t
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis().min(u128::from(MAX_MILLIS)) as u64)
        .unwrap_or(0);
    let secs = millis / 1000;
    let (year, month, day) = civil_from_days(secs / 86_400);
    let sod = secs % 86_400;
    let mut s = Small::default();
    s.push_padded(year, 4);
    s.push(b'-');
    s.push_padded(u64::from(month), 2);
    s.push(b'-');
    s.push_padded(u64::from(day), 2);
    s.push(b'T');
    s.push_padded(sod / 3600, 2);
    s.push(b':');
    s.push_padded((sod / 60) % 60, 2);
    s.push(b':');
    s.push_padded(sod % 60, 2);
    s.push(b'.');
    s.push_padded(millis % 1000, 3);
    s.push(b'Z');
    s
}

/// Appends `t` formatted by [`rfc3339`].
pub fn write_rfc3339_millis(out: &mut String, t: SystemTime) {
    out.push_str(rfc3339(t).as_str());
}

/// Returns `t` formatted by [`rfc3339`].
pub fn rfc3339_millis(t: SystemTime) -> String {
    rfc3339(t).as_str().to_owned()
}

/// Parses `YYYY-MM-DDTHH:MM:SS[.fff...]Z`, the UTC form [`rfc3339`] writes (up to nine
/// fraction digits), for consumers of the middleware's lines; `None` for anything else.
pub fn parse_rfc3339(s: &str) -> Option<SystemTime> {
    let b = s.as_bytes();
    if b.len() < 20
        || b[4] != b'-'
        || b[7] != b'-'
        || b[10] != b'T'
        || b[13] != b':'
        || b[16] != b':'
        || *b.last()? != b'Z'
    {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<i64> { s.get(r)?.parse().ok() };
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, sec) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || sec > 60 {
        return None;
    }
    let frac = &s[19..s.len() - 1];
    let nanos = match frac.strip_prefix('.') {
        None if frac.is_empty() => 0,
        Some(digits)
            if (1..=9).contains(&digits.len()) && digits.bytes().all(|c| c.is_ascii_digit()) =>
        {
            digits.parse::<u32>().ok()? * 10u32.pow(9 - digits.len() as u32)
        }
        _ => return None,
    };
    // Days from 1970-01-01 (Howard Hinnant's days_from_civil).
    let y = if mo <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (mo + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let secs = days * 86_400 + h * 3600 + mi * 60 + sec;
    let secs = u64::try_from(secs).ok()?;
    Some(UNIX_EPOCH + std::time::Duration::new(secs, nanos))
}

/// Converts days since 1970-01-01 to (year, month, day) in the proleptic Gregorian calendar.
/// Howard Hinnant's `civil_from_days` algorithm, in unsigned arithmetic since our days are
/// never before 1970.
fn civil_from_days(days: u64) -> (u64, u32, u32) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn at(millis: u64) -> String {
        rfc3339_millis(UNIX_EPOCH + Duration::from_millis(millis))
    }

    #[test]
    fn known_instants() {
        assert_eq!(at(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(at(951_782_400_000), "2000-02-29T00:00:00.000Z");
        assert_eq!(at(1_795_432_953_456), "2026-11-23T11:22:33.456Z");
        assert_eq!(at(1_709_251_199_999), "2024-02-29T23:59:59.999Z");
        assert_eq!(at(4_107_542_400_000), "2100-03-01T00:00:00.000Z");
    }

    #[test]
    fn out_of_range_times_are_clamped() {
        assert_eq!(
            rfc3339_millis(UNIX_EPOCH - Duration::from_secs(10)),
            "1970-01-01T00:00:00.000Z"
        );
        assert_eq!(
            rfc3339_millis(UNIX_EPOCH + Duration::from_secs(400_000_000_000)),
            "9999-12-31T23:59:59.999Z"
        );
    }

    #[test]
    fn every_day_boundary_for_years_matches_a_simple_calendar() {
        // Walk day by day from 1970 to 2105 and compare with a naive calendar.
        let (mut y, mut m, mut d) = (1970u64, 1u32, 1u32);
        for day in 0..49_700u64 {
            assert_eq!(civil_from_days(day), (y, m, d), "day {day}");
            let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
            let len = [
                31,
                if leap { 29 } else { 28 },
                31,
                30,
                31,
                30,
                31,
                31,
                30,
                31,
                30,
                31,
            ][(m - 1) as usize];
            d += 1;
            if d > len {
                d = 1;
                m += 1;
                if m > 12 {
                    m = 1;
                    y += 1;
                }
            }
        }
    }

    #[test]
    fn rfc3339_times() {
        let t = parse_rfc3339("2026-11-23T11:22:33.456Z").unwrap();
        assert_eq!(
            t.duration_since(UNIX_EPOCH).unwrap(),
            Duration::from_millis(1_795_432_953_456)
        );
        assert_eq!(parse_rfc3339("1970-01-01T00:00:00Z"), Some(UNIX_EPOCH));
        for bad in [
            "",
            "2026-11-23 11:22:33Z",
            "2026-13-01T00:00:00Z",
            "2026-11-23T11:22:33.Z",
        ] {
            assert_eq!(parse_rfc3339(bad), None, "{bad}");
        }
    }

    #[test]
    fn now_has_fixed_shape() {
        let s = rfc3339_millis(SystemTime::now());
        assert_eq!(s.len(), 24);
        assert!(s.ends_with('Z'));
        assert_eq!(&s[10..11], "T");
    }
}
