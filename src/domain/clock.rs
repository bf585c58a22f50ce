//! Time as the gateway reads and shows it: the clock (unix millis, the unit of every time
//! in the database), Italian civil time for the citizen pages, and working days for the
//! expected answer date. Pure but for [`now_millis`], which reads the system clock.

/// Unix time in milliseconds.
pub fn now_millis() -> i64 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    i64::try_from(now.as_millis()).unwrap_or(i64::MAX)
}

/// Italian civil time (CET/CEST, EU summer time rules) of unix millis, as "dd/mm/yyyy hh:mm".
pub fn local_time(millis: i64) -> String {
    let Ok(utc) = time::OffsetDateTime::from_unix_timestamp(millis.div_euclid(1000)) else {
        return String::new();
    };
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
    format!(
        "{:02}/{:02}/{} {:02}:{:02}",
        local.day(),
        u8::from(local.month()),
        local.year(),
        local.hour(),
        local.minute()
    )
}

/// The date `days` working days (Monday to Friday) after `millis`, as "dd/mm/yyyy".
pub fn working_days_after(millis: i64, days: u32) -> String {
    let Ok(start) = time::OffsetDateTime::from_unix_timestamp(millis.div_euclid(1000)) else {
        return String::new();
    };
    let mut d = start.date();
    let mut left = days;
    while left > 0 {
        d = match d.next_day() {
            Some(n) => n,
            None => break,
        };
        if !matches!(d.weekday(), time::Weekday::Saturday | time::Weekday::Sunday) {
            left -= 1;
        }
    }
    format!("{:02}/{:02}/{}", d.day(), u8::from(d.month()), d.year())
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
    fn working_days_skip_the_weekend() {
        // Friday 2026-01-16 + 1 working day is Monday 19.
        assert_eq!(working_days_after(1_768_564_800_000, 1), "19/01/2026");
        assert_eq!(working_days_after(1_768_564_800_000, 0), "16/01/2026");
        assert_eq!(working_days_after(1_768_564_800_000, 5), "23/01/2026");
    }
}
