//! The other way round from `clock`'s Rome time: the instant of an operator's `--as-of
//! "YYYY-MM-DD HH:MM"` (Italian time) and the "HH:MM" of `[digest] time`. Pure.

use time::{Date, Duration, Month, PrimitiveDateTime, Time};

use super::clock::rome_datetime;

/// The unix millis of Rome's wall-clock `local`. In the hour that repeats in October the
/// first (summer) one; in the hour skipped in March the instant an hour later.
pub fn to_millis(local: PrimitiveDateTime) -> i64 {
    let as_utc = local.assume_utc();
    // Summer time first, then winter time: the one that reads back as `local`.
    for hours in [2, 1] {
        if let Some(utc) = as_utc.checked_sub(Duration::hours(hours)) {
            let millis = utc.unix_timestamp() * 1000;
            if rome_datetime(millis) == local {
                return millis;
            }
        }
    }
    (as_utc - Duration::hours(1)).unix_timestamp() * 1000
}

/// "HH:MM" (24 hours) as (hour, minute).
pub fn parse_hh_mm(text: &str) -> Option<(u8, u8)> {
    let (h, m) = text.trim().split_once(':')?;
    if h.len() != 2 || m.len() != 2 {
        return None;
    }
    let h: u8 = h.parse().ok()?;
    let m: u8 = m.parse().ok()?;
    Time::from_hms(h, m, 0).ok()?;
    Some((h, m))
}

/// "YYYY-MM-DD HH:MM", Rome time (the operator's `--as-of`).
pub fn parse_local(text: &str) -> Option<PrimitiveDateTime> {
    let (date, hm) = text.trim().split_once(' ')?;
    let mut parts = date.split('-');
    let (y, mo, d) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() || y.len() != 4 || mo.len() != 2 || d.len() != 2 {
        return None;
    }
    let month = Month::try_from(mo.parse::<u8>().ok()?).ok()?;
    let date = Date::from_calendar_date(y.parse().ok()?, month, d.parse().ok()?).ok()?;
    let (h, m) = parse_hh_mm(hm)?;
    Some(PrimitiveDateTime::new(date, Time::from_hms(h, m, 0).ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn an_italian_wall_clock_time_is_one_hour_before_in_utc_in_winter_and_two_in_summer() {
        // 2026-01-15 12:00 UTC and 2026-07-15 12:00 UTC.
        assert_eq!(to_millis(datetime!(2026-01-15 13:00)), 1_768_478_400_000);
        assert_eq!(to_millis(datetime!(2026-07-15 14:00)), 1_784_116_800_000);
    }

    #[test]
    fn half_past_eleven_on_new_years_eve_is_still_the_old_year_in_rome() {
        let millis = to_millis(datetime!(2026-12-31 23:30));
        assert_eq!(
            super::super::clock::rome_date(millis),
            time::macros::date!(2026 - 12 - 31)
        );
    }

    #[test]
    fn times_and_as_of_moments_parse_only_in_their_exact_shape() {
        assert_eq!(parse_hh_mm("08:30"), Some((8, 30)));
        assert_eq!(parse_hh_mm("23:59"), Some((23, 59)));
        for bad in ["8:30", "24:00", "08:60", "0830", "", "ab:cd", "08:30:00"] {
            assert_eq!(parse_hh_mm(bad), None, "{bad}");
        }
        assert_eq!(
            parse_local("2026-12-09 08:31"),
            Some(datetime!(2026-12-09 08:31))
        );
        for bad in [
            "2026-12-09",
            "2026-13-09 08:31",
            "2026-02-30 08:00",
            "26-12-09 08:31",
        ] {
            assert_eq!(parse_local(bad), None, "{bad}");
        }
    }
}
