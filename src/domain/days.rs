//! Italian calendar days of unix millis (issue 14): the day a `--since`/`--from`/`--to` names
//! starts at midnight in Rome, not in UTC, and a figure's month is the Rome month of its
//! ticket. Rome time itself is `clock`'s, working days and due dates `calendar`'s.

use super::clock::rome_datetime;

/// Unix millis of midnight in Rome at the start of `day`.
pub fn rome_day_start(day: time::Date) -> i64 {
    let midnight_utc = day.midnight().assume_utc().unix_timestamp() * 1000;
    // Midnight in Rome is 22:00 or 23:00 UTC of the day before; both switches happen at 01:00
    // UTC, so 23:00 UTC of the day before always has that midnight's offset.
    let before = midnight_utc - 3_600_000;
    let offset = rome_datetime(before).assume_utc().unix_timestamp() * 1000 - before;
    midnight_utc - offset
}

/// A day written `YYYY-MM-DD`.
pub fn parse_day(text: &str) -> Option<time::Date> {
    let mut parts = text.trim().splitn(3, '-');
    let mut next = |len: usize| {
        parts
            .next()
            .filter(|p| p.len() == len && p.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|p| p.parse::<u16>().ok())
    };
    let (year, month, day) = (next(4)?, next(2)?, next(2)?);
    let month = time::Month::try_from(u8::try_from(month).ok()?).ok()?;
    time::Date::from_calendar_date(i32::from(year), month, u8::try_from(day).ok()?).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::date;

    #[test]
    fn a_rome_day_starts_at_23_utc_in_winter_and_22_utc_in_summer() {
        // 2026-01-15 00:00 Rome = 2026-01-14 23:00 UTC.
        assert_eq!(rome_day_start(date!(2026 - 01 - 15)), 1_768_431_600_000);
        // 2026-07-15 00:00 Rome = 2026-07-14 22:00 UTC.
        assert_eq!(rome_day_start(date!(2026 - 07 - 15)), 1_784_066_400_000);
        // The days of the switches: 29 March and 25 October 2026.
        assert_eq!(rome_day_start(date!(2026 - 03 - 29)), 1_774_738_800_000);
        assert_eq!(rome_day_start(date!(2026 - 03 - 30)), 1_774_821_600_000);
        assert_eq!(rome_day_start(date!(2026 - 10 - 25)), 1_792_879_200_000);
        assert_eq!(rome_day_start(date!(2026 - 10 - 26)), 1_792_969_200_000);
    }

    #[test]
    fn days_are_read_as_year_month_day_only() {
        assert_eq!(parse_day("2026-12-08"), Some(date!(2026 - 12 - 08)));
        assert_eq!(parse_day("08/12/2026"), None);
        assert_eq!(parse_day("2026-13-01"), None);
    }
}
