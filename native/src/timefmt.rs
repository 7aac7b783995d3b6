//! RFC 3339 <-> epoch seconds, without reading any clock: the fast paths of
//! `streams/core/timefmt.py`. Where the Python core hands a text to `datetime` (fractions,
//! other shapes, fields out of range) or a year outside 1000-9999 to `strftime`, these
//! return None and the caller keeps the Python path.

use crate::state::DAY;

fn two_digits(b: &[u8], i: usize) -> Option<i64> {
    let (x, y) = (b[i], b[i + 1]);
    (x.is_ascii_digit() && y.is_ascii_digit())
        .then(|| i64::from(x - b'0') * 10 + i64::from(y - b'0'))
}

/// `YYYY-MM-DDTHH:MM:SS` + `Z` or `±HH:MM` as epoch seconds; None for anything else.
pub fn parse_whole_seconds(text: &str) -> Option<i64> {
    let b = text.as_bytes();
    let offset = match b.len() {
        20 if b[19] == b'Z' => 0,
        25 if (b[19] == b'+' || b[19] == b'-') && b[22] == b':' => {
            let (oh, om) = (two_digits(b, 20)?, two_digits(b, 23)?);
            if oh >= 24 || om >= 60 {
                return None;
            }
            let offset = oh * 3600 + om * 60;
            if b[19] == b'-' {
                -offset
            } else {
                offset
            }
        }
        _ => return None,
    };
    if b[4] != b'-' || b[7] != b'-' || b[10] != b'T' || b[13] != b':' || b[16] != b':' {
        return None;
    }
    let year = two_digits(b, 0)? * 100 + two_digits(b, 2)?;
    let (month, day) = (two_digits(b, 5)?, two_digits(b, 8)?);
    let (hour, minute, second) = (two_digits(b, 11)?, two_digits(b, 14)?, two_digits(b, 17)?);
    if year < 1
        || !(1..=12).contains(&month)
        || day < 1
        || hour >= 24
        || minute >= 60
        || second >= 60
    {
        return None;
    }
    let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
    let days_in_month = match month {
        2 if leap => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    };
    if day > days_in_month {
        return None;
    }
    // Days since 1970-01-01 (H. Hinnant's days_from_civil; years start in March).
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = if month <= 2 { month + 9 } else { month - 3 };
    let doy = (153 * mp + 2) / 5 + day - 1;
    let days = era * 146_097 + yoe * 365 + yoe / 4 - yoe / 100 + doy - 719_468;
    Some(days * DAY + hour * 3600 + minute * 60 + second - offset)
}

/// `YYYY-MM-DDTHH:MM:SSZ` in UTC for years 1000-9999; None for other years.
pub fn format_rfc3339(ts: i64) -> Option<String> {
    let (days, secs) = (ts.div_euclid(DAY), ts.rem_euclid(DAY));
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    if !(1000..=9999).contains(&year) {
        return None;
    }
    let (hour, minute, second) = (secs / 3600, secs % 3600 / 60, secs % 60);
    Some(format!(
        "{year}-{month:02}-{day:02}T{hour:02}:{minute:02}:{second:02}Z"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_python_doctests() {
        assert_eq!(
            parse_whole_seconds("2024-03-01T11:15:00+01:00"),
            Some(1709288100)
        );
        assert_eq!(
            format_rfc3339(1709288100).as_deref(),
            Some("2024-03-01T10:15:00Z")
        );
        assert_eq!(parse_whole_seconds("2024-03-01T10:15:00"), None);
        assert_eq!(parse_whole_seconds("2023-02-29T00:00:00Z"), None);
    }
}
