//! The figures of `ticketgate stats` (issue 14), aggregated from each ticket's facts: pure,
//! so a known history gives known medians (the unit tests below).
//!
//! Every figure is about the tickets *received* in the period (by their creation time):
//! "answered" is how many of them have been answered by now, "open now" how many of them are
//! still open. So a period's row does not change meaning as time passes, only its counts grow.
//!
//! Durations run from the ticket's creation to its first `answered` event (first answer) and
//! to its last `resolved` event when it is resolved now (resolution), in hours and in working
//! days (`calendar`'s rule: weekends, national and local holidays do not count; an answer on
//! the day of the report is 0 working days). The median of an even count is the mean of the
//! two middle values; p90 is the nearest rank (the smallest value at least 90% of the values
//! are not above), so it is always a duration that happened.

use std::collections::BTreeMap;

use serde::Serialize;

use super::calendar::{awaits_answer, due_date, is_overdue, is_working_day, Holidays};
use super::clock::rome_date;
use super::{AreaSlug, Channel, TicketKind, TicketStatus};

/// What the figures need of one ticket: its row and the times of its events.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TicketFacts {
    pub area: AreaSlug,
    pub kind: TicketKind,
    pub channel: Channel,
    pub status: TicketStatus,
    pub created_at: i64,
    /// The first `taken` event.
    pub taken_at: Option<i64>,
    /// The first `answered` event.
    pub answered_at: Option<i64>,
    /// The last `resolved` event.
    pub resolved_at: Option<i64>,
    /// How many `reopened` events.
    pub reopened: u32,
}

/// Median, p90 and maximum of one kind of duration. Fields in sorted order (JSON contract).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Durations {
    /// How many tickets the figures are of (0: every other field is null).
    pub count: u64,
    pub max_hours: Option<f64>,
    pub max_working_days: Option<f64>,
    pub median_hours: Option<f64>,
    pub median_working_days: Option<f64>,
    pub p90_hours: Option<f64>,
    pub p90_working_days: Option<f64>,
}

/// The figures of one area, or of all. Fields in sorted order (JSON contract).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Figures {
    /// Tickets with an answer.
    pub answered: u64,
    /// Of the tickets whose answer was due by now (answered, or overdue without one), the
    /// share answered on or before the due date: 0.0–1.0, null when none was due.
    pub answered_within_due: Option<f64>,
    pub by_channel: BTreeMap<String, u64>,
    pub by_kind: BTreeMap<String, u64>,
    pub first_answer: Durations,
    /// Not resolved now.
    pub open_now: u64,
    /// Waiting for an answer past the due date now.
    pub overdue_now: u64,
    pub received: u64,
    /// Tickets the citizen reopened at least once.
    pub reopened: u64,
    pub resolution: Durations,
    /// Resolved now.
    pub resolved: u64,
    /// Tickets taken by the office (a `taken` event).
    pub taken: u64,
}

/// How each area's answer is due: `response_days` by area (an area no longer configured has
/// no due date: it is never counted overdue nor on time).
pub struct DueRule<'a> {
    pub response_days: &'a dyn Fn(&AreaSlug) -> Option<u32>,
    pub holidays: &'a Holidays,
}

/// The figures of `tickets` at `now`.
pub fn figures(tickets: &[TicketFacts], rule: &DueRule<'_>, now: i64) -> Figures {
    let mut f = Figures::default();
    let mut first_answer = Vec::new();
    let mut resolution = Vec::new();
    let (mut due_by_now, mut on_time) = (0u64, 0u64);
    for t in tickets {
        f.received += 1;
        *f.by_kind.entry(t.kind.to_string()).or_default() += 1;
        *f.by_channel.entry(t.channel.to_string()).or_default() += 1;
        f.taken += u64::from(t.taken_at.is_some());
        f.reopened += u64::from(t.reopened > 0);
        let due = (rule.response_days)(&t.area).map(|d| due_date(t.created_at, d, rule.holidays));
        if let Some(answered_at) = t.answered_at {
            f.answered += 1;
            first_answer.push(span(t.created_at, answered_at, rule.holidays));
            if let Some(due) = due {
                due_by_now += 1;
                on_time += u64::from(rome_date(answered_at) <= due);
            }
        }
        if t.status == TicketStatus::Resolved {
            f.resolved += 1;
            if let Some(resolved_at) = t.resolved_at {
                resolution.push(span(t.created_at, resolved_at, rule.holidays));
            }
        } else {
            f.open_now += 1;
        }
        if let Some(due) = due {
            if awaits_answer(t.status) && is_overdue(t.status, due, now) {
                f.overdue_now += 1;
                if t.answered_at.is_none() {
                    due_by_now += 1;
                }
            }
        }
    }
    f.first_answer = durations(&first_answer);
    f.resolution = durations(&resolution);
    f.answered_within_due = (due_by_now > 0).then(|| on_time as f64 / due_by_now as f64);
    f
}

/// The figures of all `tickets` and of each area (every area in `areas` has a row, even an
/// area that received nothing).
pub fn figures_by_area(
    tickets: &[TicketFacts],
    areas: &[AreaSlug],
    rule: &DueRule<'_>,
    now: i64,
) -> (Figures, BTreeMap<String, Figures>) {
    let mut by_area = BTreeMap::new();
    for area in areas {
        let of_area: Vec<TicketFacts> = tickets
            .iter()
            .filter(|t| &t.area == area)
            .cloned()
            .collect();
        by_area.insert(area.to_string(), figures(&of_area, rule, now));
    }
    (figures(tickets, rule, now), by_area)
}

/// One duration: (hours, working days).
fn span(from: i64, to: i64, holidays: &Holidays) -> (f64, f64) {
    let hours = (to - from).max(0) as f64 / 3_600_000.0;
    let (start, end) = (rome_date(from), rome_date(to));
    let mut days = 0u32;
    let mut d = start;
    while d < end {
        d = match d.next_day() {
            Some(n) => n,
            None => break,
        };
        days += u32::from(is_working_day(d, holidays));
    }
    (hours, f64::from(days))
}

fn durations(spans: &[(f64, f64)]) -> Durations {
    let mut hours: Vec<f64> = spans.iter().map(|s| s.0).collect();
    let mut days: Vec<f64> = spans.iter().map(|s| s.1).collect();
    hours.sort_by(f64::total_cmp);
    days.sort_by(f64::total_cmp);
    let round = |v: Option<f64>| v.map(|v| (v * 10.0).round() / 10.0);
    Durations {
        count: spans.len() as u64,
        max_hours: round(hours.last().copied()),
        max_working_days: days.last().copied(),
        median_hours: round(median(&hours)),
        median_working_days: median(&days),
        p90_hours: round(p90(&hours)),
        p90_working_days: p90(&days),
    }
}

/// The median of sorted values: the middle one, or the mean of the two middle ones.
fn median(sorted: &[f64]) -> Option<f64> {
    let n = sorted.len();
    if n == 0 {
        return None;
    }
    let upper = sorted.get(n / 2).copied()?;
    if n % 2 == 1 {
        Some(upper)
    } else {
        Some((sorted.get(n / 2 - 1).copied()? + upper) / 2.0)
    }
}

/// The 90th percentile of sorted values, nearest rank: the value at rank ⌈0.9·n⌉.
fn p90(sorted: &[f64]) -> Option<f64> {
    let rank = (sorted.len() * 9).div_ceil(10);
    sorted.get(rank.checked_sub(1)?).copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR: i64 = 3_600_000;
    /// Monday 2026-11-30 09:00 in Rome (08:00 UTC).
    const MONDAY_9: i64 = 1_796_025_600_000;

    fn ticket(created_at: i64) -> TicketFacts {
        TicketFacts {
            area: "lavori-pubblici".parse().expect("slug"),
            kind: TicketKind::Segnalazione,
            channel: Channel::Email,
            status: TicketStatus::Received,
            created_at,
            taken_at: None,
            answered_at: None,
            resolved_at: None,
            reopened: 0,
        }
    }

    fn answered(created_at: i64, after_hours: i64) -> TicketFacts {
        TicketFacts {
            status: TicketStatus::Answered,
            taken_at: Some(created_at + HOUR),
            answered_at: Some(created_at + after_hours * HOUR),
            ..ticket(created_at)
        }
    }

    fn rule_days(days: u32) -> impl Fn(&AreaSlug) -> Option<u32> {
        move |_| Some(days)
    }

    #[test]
    fn medians_and_p90_of_a_known_history_are_exact() {
        // First answers after 2, 4, 6, 8, 10, 30, 50, 70, 100 and 200 hours.
        let tickets: Vec<TicketFacts> = [2, 4, 6, 8, 10, 30, 50, 70, 100, 200]
            .iter()
            .map(|h| answered(MONDAY_9, *h))
            .collect();
        let holidays = Holidays::none();
        let response_days = rule_days(30);
        let rule = DueRule {
            response_days: &response_days,
            holidays: &holidays,
        };
        let f = figures(&tickets, &rule, MONDAY_9 + 300 * HOUR);
        assert_eq!(f.received, 10);
        assert_eq!(
            (f.taken, f.answered, f.resolved, f.open_now),
            (10, 10, 0, 10)
        );
        assert_eq!(f.first_answer.count, 10);
        assert_eq!(f.first_answer.median_hours, Some(20.0), "(10 + 30) / 2");
        assert_eq!(f.first_answer.p90_hours, Some(100.0), "rank 9 of 10");
        assert_eq!(f.first_answer.max_hours, Some(200.0));
        // Monday 09:00 + 2..10 h: Monday (0 days); +30 h Tuesday (1); +50 h Wednesday (2);
        // +70 h Thursday (3); +100 h Friday 13:00 (4); +200 h Tuesday 8 December, a national
        // holiday, so only the Monday before counts (5).
        assert_eq!(f.first_answer.median_working_days, Some(0.5), "(0 + 1) / 2");
        assert_eq!(f.first_answer.p90_working_days, Some(4.0));
        assert_eq!(f.first_answer.max_working_days, Some(5.0));
        assert_eq!(f.answered_within_due, Some(1.0));
        assert_eq!(f.resolution, Durations::default());
    }

    #[test]
    fn an_odd_count_has_its_middle_value_as_median_and_one_value_is_its_own_p90() {
        assert_eq!(median(&[1.0, 5.0, 9.0]), Some(5.0));
        assert_eq!(p90(&[7.0]), Some(7.0));
        assert_eq!(p90(&[]), None);
        assert_eq!(median(&[]), None);
    }

    #[test]
    fn overdue_tickets_count_against_the_share_answered_on_time() {
        let holidays = Holidays::none();
        let response_days = rule_days(2);
        let rule = DueRule {
            response_days: &response_days,
            holidays: &holidays,
        };
        // Due Wednesday 2 December. Now: Monday 7 December.
        let now = MONDAY_9 + 7 * 24 * HOUR;
        let on_time = answered(MONDAY_9, 24); // Tuesday
        let late = answered(MONDAY_9, 72); // Thursday
        let waiting = TicketFacts {
            status: TicketStatus::Taken,
            taken_at: Some(MONDAY_9 + HOUR),
            reopened: 1,
            ..ticket(MONDAY_9)
        };
        let resolved = TicketFacts {
            status: TicketStatus::Resolved,
            resolved_at: Some(MONDAY_9 + 48 * HOUR),
            channel: Channel::Web,
            kind: TicketKind::Reclamo,
            ..answered(MONDAY_9, 5)
        };
        let f = figures(&[on_time, late, waiting, resolved], &rule, now);
        assert_eq!(f.overdue_now, 1);
        assert_eq!(f.answered_within_due, Some(0.5), "2 on time of 4 due");
        assert_eq!((f.resolved, f.open_now, f.reopened), (1, 3, 1));
        assert_eq!(f.resolution.median_hours, Some(48.0));
        assert_eq!(f.resolution.median_working_days, Some(2.0));
        assert_eq!(f.by_channel.get("web"), Some(&1));
        assert_eq!(f.by_channel.get("email"), Some(&3));
        assert_eq!(f.by_kind.get("reclamo"), Some(&1));
    }

    #[test]
    fn a_holiday_is_not_a_working_day_of_a_duration() {
        // Monday 7 December 2026 to Wednesday 9 December: the 8th is a national holiday.
        let monday = MONDAY_9 + 7 * 24 * HOUR;
        assert_eq!(
            span(monday, monday + 48 * HOUR, &Holidays::none()),
            (48.0, 1.0)
        );
    }
}
