//! Time as data: the core never reads a clock.
//!
//! Every input that depends on time takes a [`Timestamp`] (`now`) from the shell, and every
//! deadline the core wants is returned as a [`Timestamp`] (see `poll_timeout`). This keeps the
//! state machines deterministic, so tests and the simulator run on a virtual clock.
//!
//! Parsing is lenient where the wild is harmless (req 59, §5a-23): a missing zone is read as
//! UTC, `t`/`z` may be lower case, a space may separate date and time, and any number of
//! fractional digits is accepted. What would change the meaning (a three-digit hour, a date
//! alone, an impossible day) is rejected with a message that says what is wrong.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A point in time: nanoseconds since the Unix epoch, UTC.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Timestamp(i64);

impl Timestamp {
    /// The Unix epoch.
    pub const EPOCH: Timestamp = Timestamp(0);

    /// From milliseconds since the Unix epoch (what `Date.now()` gives).
    pub const fn from_unix_millis(ms: i64) -> Self {
        Timestamp(ms.saturating_mul(1_000_000))
    }

    /// From nanoseconds since the Unix epoch.
    pub const fn from_unix_nanos(ns: i64) -> Self {
        Timestamp(ns)
    }

    /// Milliseconds since the Unix epoch (rounded towards negative infinity).
    pub const fn unix_millis(self) -> i64 {
        self.0.div_euclid(1_000_000)
    }

    /// Nanoseconds since the Unix epoch.
    pub const fn unix_nanos(self) -> i64 {
        self.0
    }

    /// `self + d`, saturating.
    #[allow(clippy::should_implement_trait)] // a saturating method, not `Add`, on purpose
    pub fn add(self, d: Duration) -> Self {
        let ns = i64::try_from(d.as_nanos()).unwrap_or(i64::MAX);
        Timestamp(self.0.saturating_add(ns))
    }

    /// `self - d`, saturating.
    #[allow(clippy::should_implement_trait)] // a saturating method, not `Sub`, on purpose
    pub fn sub(self, d: Duration) -> Self {
        let ns = i64::try_from(d.as_nanos()).unwrap_or(i64::MAX);
        Timestamp(self.0.saturating_sub(ns))
    }

    /// The time from `earlier` to `self`, or zero if `earlier` is later.
    pub fn since(self, earlier: Timestamp) -> Duration {
        Duration::from_nanos(self.0.saturating_sub(earlier.0).max(0) as u64)
    }

    /// Parses an ISO 8601 / RFC 3339 date-time, leniently (see the module docs).
    pub fn parse(s: &str) -> Result<Self, TimestampError> {
        parse(s).map_err(|reason| TimestampError { value: s.to_owned(), reason })
    }

    /// RFC 3339 in UTC with a `Z`, with milliseconds, or more digits when they carry information.
    /// This is what the core sends: strict in what we send.
    pub fn to_rfc3339(self) -> String {
        let secs = self.0.div_euclid(1_000_000_000);
        let nanos = self.0.rem_euclid(1_000_000_000) as u32;
        let days = secs.div_euclid(86_400);
        let sod = secs.rem_euclid(86_400);
        let (y, m, d) = civil_from_days(days);
        let frac = if nanos.is_multiple_of(1_000_000) {
            format!("{:03}", nanos / 1_000_000)
        } else if nanos.is_multiple_of(1_000) {
            format!("{:06}", nanos / 1_000)
        } else {
            format!("{nanos:09}")
        };
        format!(
            "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{frac}Z",
            sod / 3600,
            (sod / 60) % 60,
            sod % 60
        )
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_rfc3339())
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_rfc3339())
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        Timestamp::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// A timestamp that could not be read.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("timestamp {value:?} is not an ISO 8601 date-time: {reason} (req 59)")]
pub struct TimestampError {
    /// The text received.
    pub value: String,
    /// What is wrong with it.
    pub reason: &'static str,
}

fn parse(s: &str) -> Result<Timestamp, &'static str> {
    let b = s.trim().as_bytes();
    let mut i = 0;
    let year = digits(b, &mut i, 4).ok_or("the year must be four digits")?;
    expect(b, &mut i, b'-').ok_or("expected '-' after the year")?;
    let month = digits(b, &mut i, 2).ok_or("the month must be two digits")?;
    expect(b, &mut i, b'-').ok_or("expected '-' after the month")?;
    let day = digits(b, &mut i, 2).ok_or("the day must be two digits")?;
    match b.get(i) {
        Some(b'T' | b't' | b' ') => i += 1,
        None => return Err("a time of day is required, not only a date"),
        _ => return Err("expected 'T' between date and time"),
    }
    let hour = digits(b, &mut i, 2).ok_or("the hour must be two digits")?;
    expect(b, &mut i, b':').ok_or("the hour must be two digits, followed by ':'")?;
    let minute = digits(b, &mut i, 2).ok_or("the minute must be two digits")?;
    // Seconds are optional in ISO 8601; RFC 3339 requires them. Accept both.
    let mut second = 0;
    let mut nanos: i64 = 0;
    if b.get(i) == Some(&b':') {
        i += 1;
        second = digits(b, &mut i, 2).ok_or("the second must be two digits")?;
        if matches!(b.get(i), Some(b'.' | b',')) {
            i += 1;
            let start = i;
            while i < b.len() && b[i].is_ascii_digit() {
                if i - start < 9 {
                    nanos = nanos * 10 + i64::from(b[i] - b'0');
                }
                i += 1;
            }
            if i == start {
                return Err("a decimal point must be followed by digits");
            }
            for _ in (i - start).min(9)..9 {
                nanos *= 10;
            }
        }
    }
    let offset_secs: i64 = match b.get(i) {
        None => 0, // no zone: read as UTC (the spec says UTC; its examples omit the 'Z')
        Some(b'Z' | b'z') => {
            i += 1;
            0
        }
        Some(&sign @ (b'+' | b'-')) => {
            i += 1;
            let oh = digits_run(b, &mut i, 2).ok_or("the zone offset hour must be two digits")?;
            if b.get(i) == Some(&b':') {
                i += 1;
            }
            let om = digits(b, &mut i, 2).ok_or("the zone offset minute must be two digits")?;
            if oh > 23 || om > 59 {
                return Err("the zone offset is out of range");
            }
            let o = oh * 3600 + om * 60;
            if sign == b'+' {
                o
            } else {
                -o
            }
        }
        Some(_) => return Err("unexpected characters after the time"),
    };
    if i != b.len() {
        return Err("unexpected characters after the time");
    }
    if !(1..=12).contains(&month) {
        return Err("the month is out of range");
    }
    if day < 1 || day > days_in_month(year, month) {
        return Err("the day is out of range for the month");
    }
    if hour > 23 {
        return Err("the hour is out of range");
    }
    if minute > 59 {
        return Err("the minute is out of range");
    }
    if second > 60 {
        return Err("the second is out of range");
    }
    let days = days_from_civil(year, month, day);
    let secs = days * 86_400 + hour * 3600 + minute * 60 + second.min(59) - offset_secs;
    secs.checked_mul(1_000_000_000)
        .and_then(|ns| ns.checked_add(nanos))
        .map(Timestamp)
        .ok_or("the date is out of range")
}

fn digits(b: &[u8], i: &mut usize, n: usize) -> Option<i64> {
    let s = b.get(*i..*i + n)?;
    if !s.iter().all(u8::is_ascii_digit) {
        return None;
    }
    // A further digit means the field is too long (e.g. the spec examples' hour "010").
    if b.get(*i + n).is_some_and(u8::is_ascii_digit) {
        return None;
    }
    *i += n;
    Some(s.iter().fold(0, |a, d| a * 10 + i64::from(d - b'0')))
}

/// Exactly `n` digits, where more digits may follow (a compact offset such as `-0200`).
fn digits_run(b: &[u8], i: &mut usize, n: usize) -> Option<i64> {
    let s = b.get(*i..*i + n)?;
    s.iter().all(u8::is_ascii_digit).then(|| {
        *i += n;
        s.iter().fold(0, |a, d| a * 10 + i64::from(d - b'0'))
    })
}

fn expect(b: &[u8], i: &mut usize, c: u8) -> Option<()> {
    (b.get(*i) == Some(&c)).then(|| *i += 1)
}

fn days_in_month(y: i64, m: i64) -> i64 {
    match m {
        2 if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

// Howard Hinnant's civil-date algorithms (public domain).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { yoe + era * 400 + 1 } else { yoe + era * 400 }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn req59_parses_rfc3339_and_round_trips() {
        let t = Timestamp::parse("2019-09-10T14:58:45.988Z").unwrap();
        assert_eq!(t.to_rfc3339(), "2019-09-10T14:58:45.988Z");
        assert_eq!(t.unix_millis(), 1_568_127_525_988);
    }

    #[test]
    fn req59_offsets_are_converted_to_utc() {
        let a = Timestamp::parse("2019-09-10T16:58:45.988+02:00").unwrap();
        let b = Timestamp::parse("2019-09-10T14:58:45.988Z").unwrap();
        assert_eq!(a, b);
        assert_eq!(Timestamp::parse("2019-09-10T12:58:45.988-0200").unwrap(), b);
    }

    #[test]
    fn impl_5a23_missing_zone_is_utc_and_lower_case_is_accepted() {
        let z = Timestamp::parse("2018-01-08T01:37:05.14Z").unwrap();
        assert_eq!(Timestamp::parse("2018-01-08T01:37:05.14").unwrap(), z);
        assert_eq!(Timestamp::parse("2018-01-08t01:37:05.14z").unwrap(), z);
        assert_eq!(Timestamp::parse("2018-01-08 01:37:05.14").unwrap(), z);
        assert_eq!(z.to_rfc3339(), "2018-01-08T01:37:05.140Z");
    }

    #[test]
    fn impl_5a23_spec_examples_three_digit_hour_is_rejected_clearly() {
        let e = Timestamp::parse("2023-04-01T010:38:04.16").unwrap_err();
        assert!(e.to_string().contains("hour must be two digits"), "{e}");
    }

    #[test]
    fn fractions_keep_their_precision() {
        let t = Timestamp::parse("2020-01-01T00:00:00.123456789Z").unwrap();
        assert_eq!(t.to_rfc3339(), "2020-01-01T00:00:00.123456789Z");
        let t = Timestamp::parse("2020-01-01T00:00:00.1234Z").unwrap();
        assert_eq!(t.to_rfc3339(), "2020-01-01T00:00:00.123400Z");
        let t = Timestamp::parse("2020-01-01T00:00Z").unwrap();
        assert_eq!(t.to_rfc3339(), "2020-01-01T00:00:00.000Z");
    }

    #[test]
    fn malformed_dates_are_rejected() {
        for bad in [
            "",
            "2020-01-01",
            "2020-13-01T00:00:00Z",
            "2021-02-29T00:00:00Z",
            "2020-01-01T24:00:00Z",
            "2020-01-01T00:00:00ZZ",
            "2020-01-01T00:00:00.Z",
            "20-01-01T00:00:00Z",
            "yesterday",
        ] {
            assert!(Timestamp::parse(bad).is_err(), "{bad:?} should be rejected");
        }
        assert!(Timestamp::parse("2020-02-29T00:00:00Z").is_ok());
    }

    #[test]
    fn before_epoch_formats() {
        let t = Timestamp::parse("1969-12-31T23:59:59.5Z").unwrap();
        assert_eq!(t.unix_millis(), -500);
        assert_eq!(t.to_rfc3339(), "1969-12-31T23:59:59.500Z");
    }

    proptest::proptest! {
        #[test]
        fn format_then_parse_is_identity(ns in -2_000_000_000_000_000_000i64..7_000_000_000_000_000_000i64) {
            let t = Timestamp::from_unix_nanos(ns);
            proptest::prop_assert_eq!(Timestamp::parse(&t.to_rfc3339()).unwrap(), t);
        }
    }
}
