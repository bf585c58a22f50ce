//! Time as the gateway reads and shows it: the clock (unix millis, the unit of every time
//! in the database) and Italian civil time (pages, due dates, reference years; working days
//! are `calendar`'s). Pure but for [`now_millis`], which reads the system clock.

/// Unix time in milliseconds.
pub fn now_millis() -> i64 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    i64::try_from(now.as_millis()).unwrap_or(i64::MAX)
}

/// Italian civil time (CET/CEST, EU summer time rules) of unix millis.
pub fn rome_datetime(millis: i64) -> time::PrimitiveDateTime {
    let utc = time::OffsetDateTime::from_unix_timestamp(millis.div_euclid(1000))
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    let year = utc.year();
    // Summer time runs from the last Sunday of March to the last Sunday of October, 01:00 UTC.
    let last_sunday = |month: time::Month| {
        let mut d = time::Date::from_calendar_date(year, month, 31).expect("31 March/October");
        while d.weekday() != time::Weekday::Sunday {
            d = d.previous_day().expect("a day in the same month");
        }
        d.with_hms(1, 0, 0).expect("01:00").assume_utc()
    };
    let summer = utc >= last_sunday(time::Month::March) && utc < last_sunday(time::Month::October);
    let offset = if summer { 2 } else { 1 };
    let local = utc + time::Duration::hours(offset);
    time::PrimitiveDateTime::new(local.date(), local.time())
}

/// The date in Rome of unix millis: the day a ticket was created, the "today" of due dates.
pub fn rome_date(millis: i64) -> time::Date {
    rome_datetime(millis).date()
}

/// The year in Rome of unix millis: the year of a ticket reference. A ticket of 23:30 on 31
/// December, Italian time, is of that year, and one of 00:30 on 1 January of the new one
/// (still 31 December in UTC, which gave it the old year before issue 14).
pub fn rome_year(millis: i64) -> i32 {
    rome_datetime(millis).year()
}

/// Italian civil time of unix millis, as "dd/mm/yyyy hh:mm".
pub fn local_time(millis: i64) -> String {
    if time::OffsetDateTime::from_unix_timestamp(millis.div_euclid(1000)).is_err() {
        return String::new();
    }
    let local = rome_datetime(millis);
    format!(
        "{:02}/{:02}/{} {:02}:{:02}",
        local.day(),
        u8::from(local.month()),
        local.year(),
        local.hour(),
        local.minute()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn italian_time_is_one_hour_ahead_in_winter_and_two_in_summer() {
        // 2026-01-15 12:00 UTC and 2026-07-15 12:00 UTC.
        assert_eq!(local_time(1_768_478_400_000), "15/01/2026 13:00");
        assert_eq!(local_time(1_784_116_800_000), "15/07/2026 14:00");
    }

    #[test]
    fn summer_time_starts_at_one_utc_on_the_last_sunday_of_march() {
        // 2026-03-29 00:59 UTC is still winter time, 01:00 UTC is summer time.
        assert_eq!(local_time(1_774_745_940_000), "29/03/2026 01:59");
        assert_eq!(local_time(1_774_746_000_000), "29/03/2026 03:00");
    }

    #[test]
    fn a_ticket_of_the_last_half_hour_of_the_year_in_rome_is_of_that_year() {
        // 2026-12-31 23:30 Rome is 22:30 UTC; 2027-01-01 00:30 Rome is 23:30 UTC on the 31st.
        assert_eq!(rome_year(1_798_756_200_000), 2026);
        assert_eq!(local_time(1_798_756_200_000), "31/12/2026 23:30");
        assert_eq!(rome_year(1_798_759_800_000), 2027);
        assert_eq!(local_time(1_798_759_800_000), "01/01/2027 00:30");
    }
}
