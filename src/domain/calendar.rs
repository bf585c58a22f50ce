//! Working days and due dates (issue 14): the one rule by which a ticket's expected answer
//! date is computed everywhere (acknowledgment, citizen and staff pages, `ticket list/show`,
//! digest, reminders, figures), and when a ticket is overdue. Pure: "now" is an argument.
//!
//! A working day is a day in Europe/Rome that is not a Saturday, a Sunday, an Italian national
//! holiday (Easter Monday computed) nor one of the comune's `[calendar] holidays`.

use time::{Date, Month, Weekday};

use super::clock::rome_date;
use super::TicketStatus;

/// The comune's own closures (`[calendar] holidays`): the patron saint every year (`MM-DD`),
/// a one-off closure (`YYYY-MM-DD`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Holidays {
    yearly: Vec<(Month, u8)>,
    once: Vec<Date>,
}

impl Holidays {
    /// No local holiday: national holidays and weekends only.
    pub fn none() -> Holidays {
        Holidays::default()
    }

    /// Reads `[calendar] holidays`. Returns the good entries and, for each bad one, its index
    /// and why (config check names them all; the service never starts with one).
    pub fn parse<S: AsRef<str>>(entries: &[S]) -> (Holidays, Vec<(usize, String)>) {
        let mut out = Holidays::default();
        let mut bad = Vec::new();
        for (i, entry) in entries.iter().enumerate() {
            match parse_entry(entry.as_ref()) {
                Ok(Entry::Yearly(m, d)) => out.yearly.push((m, d)),
                Ok(Entry::Once(date)) => out.once.push(date),
                Err(why) => bad.push((i, why)),
            }
        }
        (out, bad)
    }

    /// Whether `date` is one of these local holidays.
    pub fn contains(&self, date: Date) -> bool {
        self.once.contains(&date)
            || self
                .yearly
                .iter()
                .any(|&(m, d)| date.month() == m && date.day() == d)
    }
}

enum Entry {
    Yearly(Month, u8),
    Once(Date),
}

fn parse_entry(text: &str) -> Result<Entry, String> {
    let t = text.trim();
    let parts: Vec<&str> = t.split('-').collect();
    let num = |s: &str, len: usize| -> Option<u16> {
        (s.len() == len && s.bytes().all(|b| b.is_ascii_digit()))
            .then(|| s.parse().ok())
            .flatten()
    };
    let invalid =
        || format!("{text:?} is not a date: write \"MM-DD\" (every year) or \"YYYY-MM-DD\" (once)");
    match parts.as_slice() {
        [m, d] => {
            let (Some(m), Some(d)) = (num(m, 2), num(d, 2)) else {
                return Err(invalid());
            };
            // A leap year, so that 02-29 is accepted (it counts in leap years only).
            let month = u8::try_from(m).ok().and_then(|m| Month::try_from(m).ok());
            let day = u8::try_from(d).ok();
            match (month, day) {
                (Some(month), Some(day)) if Date::from_calendar_date(2024, month, day).is_ok() => {
                    Ok(Entry::Yearly(month, day))
                }
                _ => Err(format!("{text:?}: there is no such day in the year")),
            }
        }
        [y, m, d] => {
            let (Some(y), Some(m), Some(d)) = (num(y, 4), num(m, 2), num(d, 2)) else {
                return Err(invalid());
            };
            let month = u8::try_from(m).ok().and_then(|m| Month::try_from(m).ok());
            let day = u8::try_from(d).ok();
            match (month, day) {
                (Some(month), Some(day)) => Date::from_calendar_date(i32::from(y), month, day)
                    .map(Entry::Once)
                    .map_err(|_| format!("{text:?}: there is no such date")),
                _ => Err(format!("{text:?}: there is no such date")),
            }
        }
        _ => Err(invalid()),
    }
}

/// Easter Sunday of `year` (anonymous Gregorian computus, Meeus/Jones/Butcher).
pub fn easter_sunday(year: i32) -> Date {
    let a = year.rem_euclid(19);
    let b = year.div_euclid(100);
    let c = year.rem_euclid(100);
    let d = b / 4;
    let e = b % 4;
    let f = (b + 8) / 25;
    let g = (b - f + 1) / 3;
    let h = (19 * a + b - d - g + 15) % 30;
    let i = c / 4;
    let k = c % 4;
    let l = (32 + 2 * e + 2 * i - h - k) % 7;
    let m = (a + 11 * h + 22 * l) / 451;
    let month = (h + l - 7 * m + 114) / 31;
    let day = (h + l - 7 * m + 114) % 31 + 1;
    // The computus yields 22 March ..= 25 April: both always valid.
    let month = if month == 3 {
        Month::March
    } else {
        Month::April
    };
    Date::from_calendar_date(year, month, u8::try_from(day).unwrap_or(1)).unwrap_or(Date::MIN)
}

/// Easter Monday of `year` (Pasquetta, a national holiday).
pub fn easter_monday(year: i32) -> Date {
    easter_sunday(year).next_day().unwrap_or(Date::MAX)
}

/// The Italian national holidays that fall on a fixed date (law 260/1949 and later).
const NATIONAL: [(Month, u8); 10] = [
    (Month::January, 1),   // Capodanno
    (Month::January, 6),   // Epifania
    (Month::April, 25),    // Liberazione
    (Month::May, 1),       // Festa del lavoro
    (Month::June, 2),      // Festa della Repubblica
    (Month::August, 15),   // Ferragosto
    (Month::November, 1),  // Ognissanti
    (Month::December, 8),  // Immacolata
    (Month::December, 25), // Natale
    (Month::December, 26), // Santo Stefano
];

/// Whether `date` is an Italian national holiday.
pub fn is_national_holiday(date: Date) -> bool {
    NATIONAL
        .iter()
        .any(|&(m, d)| date.month() == m && date.day() == d)
        || date == easter_monday(date.year())
}

/// Whether the offices work on `date`.
pub fn is_working_day(date: Date, holidays: &Holidays) -> bool {
    !matches!(date.weekday(), Weekday::Saturday | Weekday::Sunday)
        && !is_national_holiday(date)
        && !holidays.contains(date)
}

/// The date `days` working days after `date` (the day itself does not count; 0 is `date`).
pub fn add_working_days(date: Date, days: u32, holidays: &Holidays) -> Date {
    let mut d = date;
    let mut left = days;
    while left > 0 {
        d = match d.next_day() {
            Some(n) => n,
            None => break,
        };
        if is_working_day(d, holidays) {
            left -= 1;
        }
    }
    d
}

/// A ticket's due date: its creation date in Europe/Rome plus the area's `response_days`
/// working days. The answer is due by the end of that day (Rome time).
pub fn due_date(created_at_millis: i64, response_days: u32, holidays: &Holidays) -> Date {
    add_working_days(rome_date(created_at_millis), response_days, holidays)
}

/// Whether a ticket is still waiting for the office's answer: `received` or `taken` (a ticket
/// reopened by the citizen is `taken` again, and waiting again). `answered` and `resolved`
/// tickets have had their answer.
pub fn awaits_answer(status: TicketStatus) -> bool {
    matches!(status, TicketStatus::Received | TicketStatus::Taken)
}

/// Whether a ticket is overdue at `now_millis`: it awaits an answer ([`awaits_answer`]) and
/// its due date has ended in Rome (today in Rome is after `due`).
pub fn is_overdue(status: TicketStatus, due: Date, now_millis: i64) -> bool {
    awaits_answer(status) && rome_date(now_millis) > due
}

/// How many calendar days an overdue ticket is late at `now_millis` (today in Rome minus the
/// due date: 1 the day after it); 0 when it is not overdue.
pub fn days_overdue(status: TicketStatus, due: Date, now_millis: i64) -> u32 {
    if !is_overdue(status, due, now_millis) {
        return 0;
    }
    let days = (rome_date(now_millis) - due).whole_days();
    u32::try_from(days).unwrap_or(u32::MAX)
}

/// A date as "YYYY-MM-DD" (JSON and CSV).
pub fn iso_date(date: Date) -> String {
    format!(
        "{:04}-{:02}-{:02}",
        date.year(),
        u8::from(date.month()),
        date.day()
    )
}

/// A date as "dd/mm/yyyy" (pages and mail, Italian style).
pub fn italian_date(date: Date) -> String {
    format!(
        "{:02}/{:02}/{}",
        date.day(),
        u8::from(date.month()),
        date.year()
    )
}

/// A date in words, in Italian: "martedì 20 gennaio 2026" (the acknowledgment).
pub fn long_date_it(date: Date) -> String {
    const DAYS: [&str; 7] = [
        "lunedì",
        "martedì",
        "mercoledì",
        "giovedì",
        "venerdì",
        "sabato",
        "domenica",
    ];
    const MONTHS: [&str; 12] = [
        "gennaio",
        "febbraio",
        "marzo",
        "aprile",
        "maggio",
        "giugno",
        "luglio",
        "agosto",
        "settembre",
        "ottobre",
        "novembre",
        "dicembre",
    ];
    format!(
        "{} {} {} {}",
        DAYS[usize::from(date.weekday().number_days_from_monday())],
        date.day(),
        MONTHS[usize::from(u8::from(date.month()) - 1)],
        date.year()
    )
}

/// A date in words, in English: "Tuesday 20 January 2026".
pub fn long_date_en(date: Date) -> String {
    format!(
        "{} {} {} {}",
        date.weekday(),
        date.day(),
        date.month(),
        date.year()
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::{date, datetime};

    fn millis(t: time::OffsetDateTime) -> i64 {
        i64::try_from(t.unix_timestamp_nanos() / 1_000_000).unwrap()
    }

    #[test]
    fn easter_monday_of_2025_to_2030_is_the_one_on_the_calendar() {
        assert_eq!(easter_monday(2025), date!(2025 - 04 - 21));
        assert_eq!(easter_monday(2026), date!(2026 - 04 - 06));
        assert_eq!(easter_monday(2027), date!(2027 - 03 - 29));
        assert_eq!(easter_monday(2028), date!(2028 - 04 - 17));
        assert_eq!(easter_monday(2029), date!(2029 - 04 - 02));
        assert_eq!(easter_monday(2030), date!(2030 - 04 - 22));
        assert!(!is_working_day(date!(2027 - 03 - 29), &Holidays::none()));
        assert!(is_working_day(date!(2027 - 03 - 30), &Holidays::none()));
    }

    #[test]
    fn a_ticket_of_a_friday_with_two_working_days_is_due_on_tuesday() {
        // Friday 2026-01-16 10:00 Rome.
        let created = millis(datetime!(2026-01-16 09:00 UTC));
        assert_eq!(
            due_date(created, 2, &Holidays::none()),
            date!(2026 - 01 - 20)
        );
        assert_eq!(
            due_date(created, 0, &Holidays::none()),
            date!(2026 - 01 - 16)
        );
    }

    #[test]
    fn christmas_santo_stefano_and_a_local_holiday_do_not_count() {
        // Monday 2026-12-21; 24 Dec is a working day, 25 and 26 are not, 27 is Sunday,
        // 28 Dec is the local closure given once, 7 Dec (Sant'Ambrogio) yearly.
        let (holidays, bad) = Holidays::parse(&["12-07", "2026-12-28"]);
        assert!(bad.is_empty());
        let created = millis(datetime!(2026-12-21 10:00 UTC));
        // 22, 23, 24, (25, 26, 27, 28 off), 29.
        assert_eq!(due_date(created, 4, &holidays), date!(2026 - 12 - 29));
        assert_eq!(
            due_date(created, 4, &Holidays::none()),
            date!(2026 - 12 - 28)
        );
        // The yearly entry in any year, the once entry only in its year.
        assert!(!is_working_day(date!(2026 - 12 - 07), &holidays));
        assert!(!is_working_day(date!(2027 - 12 - 07), &holidays));
        assert!(is_working_day(date!(2027 - 12 - 28), &holidays));
        // Friday 4 Dec 2026 + 2: Mon 7 (local) and Tue 8 (Immacolata) are off: Thu 10.
        let created = millis(datetime!(2026-12-04 10:00 UTC));
        assert_eq!(due_date(created, 2, &holidays), date!(2026 - 12 - 10));
    }

    #[test]
    fn every_national_holiday_is_off() {
        for d in [
            date!(2026 - 01 - 01),
            date!(2026 - 01 - 06),
            date!(2026 - 04 - 06),
            date!(2026 - 04 - 25),
            date!(2026 - 05 - 01),
            date!(2026 - 06 - 02),
            date!(2026 - 08 - 15),
            date!(2026 - 11 - 01),
            date!(2026 - 12 - 08),
            date!(2026 - 12 - 25),
            date!(2026 - 12 - 26),
        ] {
            assert!(is_national_holiday(d), "{d}");
        }
        assert!(!is_national_holiday(date!(2026 - 04 - 05)));
        assert!(!is_national_holiday(date!(2026 - 12 - 24)));
    }

    #[test]
    fn the_creation_date_is_the_date_in_rome_across_summer_time_changes() {
        // 2026-03-28 23:30 UTC is 00:30 on Sunday 29 March in Rome (still winter time, +1):
        // the ticket is of Sunday, one working day later is Monday 30.
        let created = millis(datetime!(2026-03-28 23:30 UTC));
        assert_eq!(rome_date(created), date!(2026 - 03 - 29));
        assert_eq!(
            due_date(created, 1, &Holidays::none()),
            date!(2026 - 03 - 30)
        );
        // 2026-10-24 22:30 UTC is 00:30 on Sunday 25 October in Rome (summer time, +2).
        let created = millis(datetime!(2026-10-24 22:30 UTC));
        assert_eq!(rome_date(created), date!(2026 - 10 - 25));
        assert_eq!(
            due_date(created, 1, &Holidays::none()),
            date!(2026 - 10 - 26)
        );
        // 2026-10-25 23:30 UTC, after the change back: winter time (+1), 00:30 on the 26th.
        assert_eq!(
            rome_date(millis(datetime!(2026-10-25 23:30 UTC))),
            date!(2026 - 10 - 26)
        );
    }

    #[test]
    fn overdue_starts_the_day_after_the_due_date_in_rome_and_only_without_an_answer() {
        let due = date!(2026 - 01 - 20);
        // 23:59 Rome on the due date (22:59 UTC): still in time.
        let last_minute = millis(datetime!(2026-01-20 22:59 UTC));
        assert!(!is_overdue(TicketStatus::Received, due, last_minute));
        assert_eq!(days_overdue(TicketStatus::Received, due, last_minute), 0);
        // 00:00 Rome the next day (23:00 UTC): overdue by one day.
        let next = millis(datetime!(2026-01-20 23:00 UTC));
        assert!(is_overdue(TicketStatus::Received, due, next));
        assert!(is_overdue(TicketStatus::Taken, due, next));
        assert_eq!(days_overdue(TicketStatus::Taken, due, next), 1);
        assert!(!is_overdue(TicketStatus::Answered, due, next));
        assert!(!is_overdue(TicketStatus::Resolved, due, next));
        assert_eq!(days_overdue(TicketStatus::Answered, due, next), 0);
        let week = millis(datetime!(2026-01-27 10:00 UTC));
        assert_eq!(days_overdue(TicketStatus::Taken, due, week), 7);
    }

    #[test]
    fn bad_holiday_entries_are_each_named() {
        let (holidays, bad) = Holidays::parse(&[
            "12-07",
            "13-01",
            "2026-02-30",
            "7 dicembre",
            "2026-06-24",
            "02-29",
            "2026-6-24",
        ]);
        let indexes: Vec<usize> = bad.iter().map(|(i, _)| *i).collect();
        assert_eq!(indexes, vec![1, 2, 3, 6]);
        assert!(bad[0].1.contains("\"13-01\""), "{}", bad[0].1);
        assert!(bad[2].1.contains("YYYY-MM-DD"), "{}", bad[2].1);
        assert!(holidays.contains(date!(2026 - 06 - 24)));
        assert!(holidays.contains(date!(2028 - 02 - 29)));
        assert!(!holidays.contains(date!(2027 - 06 - 24)));
    }

    #[test]
    fn dates_are_written_iso_for_machines_and_italian_for_people() {
        assert_eq!(iso_date(date!(2026 - 01 - 06)), "2026-01-06");
        assert_eq!(italian_date(date!(2026 - 01 - 06)), "06/01/2026");
        assert_eq!(
            long_date_it(date!(2026 - 01 - 20)),
            "martedì 20 gennaio 2026"
        );
        assert_eq!(long_date_it(date!(2026 - 03 - 01)), "domenica 1 marzo 2026");
        assert_eq!(
            long_date_en(date!(2026 - 01 - 20)),
            "Tuesday 20 January 2026"
        );
    }
}
