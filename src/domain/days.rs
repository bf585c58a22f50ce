//! Italian calendar days of unix millis (issue 14): the day a `--since`/`--from`/`--to` names
//! starts at midnight in Rome, not in UTC, and a figure's month is the Rome month of its
//! ticket. The working-day rule itself (holidays, due dates) is `clock`'s.

/// Hours Rome is ahead of UTC at `millis`: 2 from 01:00 UTC on the last Sunday of March to
/// 01:00 UTC on the last Sunday of October (EU summer time), 1 otherwise.
pub fn rome_offset_hours(millis: i64) -> i64 {
    let Ok(utc) = time::OffsetDateTime::from_unix_timestamp(millis.div_euclid(1000)) else {
        return 1;
    };
    let switch = |month: time::Month| {
        let Ok(mut d) = time::Date::from_calendar_date(utc.year(), month, 31) else {
            return utc;
        };
        while d.weekday() != time::Weekday::Sunday {
            d = d.previous_day().unwrap_or(d);
        }
        d.midnight().assume_utc() + time::Duration::hours(1)
    };
    if utc >= switch(time::Month::March) && utc < switch(time::Month::October) {
        2
    } else {
        1
    }
}

/// The Rome calendar day of unix millis.
pub fn rome_date(millis: i64) -> time::Date {
    let local = millis + rome_offset_hours(millis) * 3_600_000;
    time::OffsetDateTime::from_unix_timestamp(local.div_euclid(1000))
        .map(|t| t.date())
        .unwrap_or(time::Date::MIN)
}

/// Unix millis of midnight in Rome at the start of `day`.
pub fn rome_day_start(day: time::Date) -> i64 {
    let midnight_utc = day.midnight().assume_utc().unix_timestamp() * 1000;
    // Midnight in Rome is 22:00 or 23:00 UTC of the day before; both switches happen at 01:00
    // UTC, so 23:00 UTC of the day before always has that midnight's offset.
    midnight_utc - rome_offset_hours(midnight_utc - 3_600_000) * 3_600_000
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
    fn a_ticket_at_23_30_on_31_december_in_rome_belongs_to_that_day() {
        // 2026-12-31 22:30 UTC is 23:30 in Rome.
        assert_eq!(rome_date(1_798_756_200_000), date!(2026 - 12 - 31));
        assert_eq!(rome_date(1_798_759_800_000), date!(2027 - 01 - 01));
    }

    #[test]
    fn days_are_read_as_year_month_day_only() {
        assert_eq!(parse_day("2026-12-08"), Some(date!(2026 - 12 - 08)));
        assert_eq!(parse_day("08/12/2026"), None);
        assert_eq!(parse_day("2026-13-01"), None);
    }
}
