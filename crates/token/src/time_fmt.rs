//! Formatting and parsing of wall-clock instants used in messages and token responses.
//!
//! Pure functions only: no clock is read here.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// RFC 3339 text for an instant (UTC, whole seconds), for errors and `Debug` output.
pub(crate) fn rfc3339(t: SystemTime) -> String {
    let secs = match t.duration_since(UNIX_EPOCH) {
        Ok(d) => d.as_secs() as i64,
        Err(e) => -(e.duration().as_secs() as i64),
    };
    match time::OffsetDateTime::from_unix_timestamp(secs) {
        Ok(dt) => dt
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_else(|_| format!("@{secs}")),
        Err(_) => format!("@{secs}"),
    }
}

/// The instant `secs` seconds after the Unix epoch (negative values clamp to the epoch).
pub(crate) fn from_epoch(secs: i64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(secs.max(0) as u64)
}

/// Seconds since the epoch, saturating at zero.
pub(crate) fn to_epoch(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// Parses a naive local date-time `YYYY-MM-DD HH:MM:SS[.ffffff]` (the Azure CLI's old `expiresOn`)
/// interpreted at `offset_secs` east of UTC.
pub(crate) fn parse_naive_local(text: &str, offset_secs: i32) -> Option<SystemTime> {
    let text = text.trim();
    let (date, clock) = text.split_once([' ', 'T'])?;
    let mut d = date.split('-');
    let year: i32 = d.next()?.parse().ok()?;
    let month: u8 = d.next()?.parse().ok()?;
    let day: u8 = d.next()?.parse().ok()?;
    if d.next().is_some() {
        return None;
    }
    let clock = clock.split('.').next()?;
    let mut c = clock.split(':');
    let hour: u8 = c.next()?.parse().ok()?;
    let minute: u8 = c.next()?.parse().ok()?;
    let second: u8 = c.next()?.parse().ok()?;
    if c.next().is_some() {
        return None;
    }
    let month = time::Month::try_from(month).ok()?;
    let date = time::Date::from_calendar_date(year, month, day).ok()?;
    let clock = time::Time::from_hms(hour, minute, second).ok()?;
    let offset = time::UtcOffset::from_whole_seconds(offset_secs).ok()?;
    let dt = time::PrimitiveDateTime::new(date, clock).assume_offset(offset);
    let secs = dt.unix_timestamp();
    (secs >= 0).then(|| from_epoch(secs))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_and_parses() {
        assert_eq!(rfc3339(from_epoch(1_700_000_000)), "2023-11-14T22:13:20Z");
        let t = parse_naive_local("2023-11-14 22:13:20.123456", 0).unwrap();
        assert_eq!(to_epoch(t), 1_700_000_000);
        let t = parse_naive_local("2023-11-14 23:13:20", 3600).unwrap();
        assert_eq!(to_epoch(t), 1_700_000_000);
        assert!(parse_naive_local("yesterday", 0).is_none());
        assert!(parse_naive_local("2023-13-14 22:13:20", 0).is_none());
        assert!(parse_naive_local("2023-11-14 22:13", 0).is_none());
    }
}
