//! `/statistiche` (issue 14): the figures of the last 12 months for everyone — per office and
//! per month, tickets received and answered, median working days to the first answer, share
//! answered within the due date — as a table and a bar chart drawn on the server (inline SVG:
//! no script, nothing the CSP forbids). No personal data: only counts and durations.
//!
//! The page is public, so its work is bounded: the figures are computed at most once a minute
//! (one query of 12 months of tickets, `Store::ticket_facts`) and shared by every request of
//! that minute. `[web] public_stats = false` answers 404.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use time::Date;

use super::visitor::{message, render, Visitor};
use super::{AppState, Error};
use crate::domain::stats::{figures, DueRule, Figures, TicketFacts};
use crate::domain::{now_millis, rome_date, rome_day_start, AreaSlug, Channel, TicketKind};

/// How long computed figures are served before they are computed again.
const FRESH_FOR: Duration = Duration::from_secs(60);

pub fn router() -> Router<AppState> {
    Router::new().route("/statistiche", get(page))
}

/// The last computed figures and when: shared by the requests of one minute.
#[derive(Clone, Debug, Default)]
pub struct Cache(Arc<tokio::sync::Mutex<Option<Computed>>>);

/// Figures and the instant they were computed.
type Computed = (Instant, Arc<Tables>);

/// One month of one office (or of all).
#[derive(Debug, Clone)]
pub struct MonthRow {
    /// "2026-12".
    pub month: String,
    pub received: u64,
    pub answered: u64,
    pub taken: u64,
    pub resolved: u64,
    pub reopened: u64,
    pub open_now: u64,
    pub overdue_now: u64,
    /// Median working days to the first answer, one decimal; empty when none was answered.
    pub median_days: String,
    /// p90 and maximum of the same, and the median working days to resolution; empty when
    /// there is none.
    pub p90_days: String,
    pub max_days: String,
    pub resolution_median_days: String,
    /// Share answered within the due date, as a whole percent; empty when none was due.
    pub within_due: String,
}

/// One office's table (or the comune's, `all`).
#[derive(Debug, Clone)]
pub struct AreaTable {
    pub name: String,
    pub rows: Vec<MonthRow>,
    /// The 12 months' reports by kind and by channel, as "word count" pairs in the page's
    /// two languages (Italian, English); kinds and channels without reports are left out.
    pub by_kind: Vec<(String, String, u64)>,
    pub by_channel: Vec<(String, String, u64)>,
}

/// One decimal, or empty.
fn days(d: Option<f64>) -> String {
    d.map(|d| format!("{d:.1}")).unwrap_or_default()
}

/// The Italian and English words of a stored kind (the word itself when unknown).
fn kind_words(stored: &str) -> (String, String) {
    match TicketKind::parse(stored) {
        Some(k) => (k.as_str().to_owned(), k.english().to_owned()),
        None => (stored.to_owned(), stored.to_owned()),
    }
}

/// The Italian and English words of a stored channel (the word itself when unknown).
fn channel_words(stored: &str) -> (String, String) {
    match stored.parse::<Channel>() {
        Ok(c) => (c.italian().to_owned(), c.as_str().to_owned()),
        Err(_) => (stored.to_owned(), stored.to_owned()),
    }
}

/// The bar chart of tickets received per month, in all: coordinates computed here.
#[derive(Debug, Clone)]
pub struct Bar {
    pub month: String,
    pub received: u64,
    pub x: u32,
    pub y: u32,
    pub height: u32,
    pub label_x: u32,
}

#[derive(Debug)]
pub struct Tables {
    /// All offices first (its `name` empty), then each office.
    pub tables: Vec<AreaTable>,
    pub bars: Vec<Bar>,
}

#[derive(askama::Template)]
#[template(path = "web/statistiche.html")]
struct StatsPage {
    c: super::visitor::Chrome,
    site: String,
    tables: Arc<Tables>,
}

async fn page(State(state): State<AppState>, v: Visitor) -> Result<Response, Error> {
    if !state.cfg.web.public_stats {
        return Err(Error::NotFound(message(
            &state,
            &v,
            StatusCode::NOT_FOUND,
            v.t("Pagina non trovata", "Not found"),
            vec![v.t(
                "Questa pagina non è pubblicata.",
                "This page is not published.",
            )],
            Some(("/".to_owned(), v.t("Pagina iniziale", "Front page"))),
        )));
    }
    let tables = {
        let mut cached = state.public_stats.0.lock().await;
        match cached.as_ref() {
            Some((at, tables)) if at.elapsed() < FRESH_FOR => tables.clone(),
            _ => {
                let tables = Arc::new(compute(&state).await?);
                *cached = Some((Instant::now(), tables.clone()));
                tables
            }
        }
    };
    let page = StatsPage {
        c: v.chrome(if v.en() { "Figures" } else { "Statistiche" }),
        site: state.cfg.server.site_name.clone(),
        tables,
    };
    Ok(render(&v, StatusCode::OK, &page))
}

/// The first days of the last 12 months in Rome, oldest first, this month last.
fn last_twelve_months(today: Date) -> Vec<Date> {
    let mut months = Vec::with_capacity(12);
    let (mut year, mut month) = (today.year(), today.month());
    for _ in 0..12 {
        if let Ok(d) = Date::from_calendar_date(year, month, 1) {
            months.push(d);
        }
        month = month.previous();
        if month == time::Month::December {
            year -= 1;
        }
    }
    months.reverse();
    months
}

fn month_key(d: Date) -> String {
    format!("{}-{:02}", d.year(), u8::from(d.month()))
}

async fn compute(state: &AppState) -> Result<Tables, Error> {
    let now = now_millis();
    let months = last_twelve_months(rome_date(now));
    let start = months.first().map(|d| rome_day_start(*d)).unwrap_or(now);
    let facts = state.store.ticket_facts(start, i64::MAX, None).await?;
    let holidays = state.cfg.holidays();
    let cfg = state.cfg.clone();
    let response_days = move |slug: &AreaSlug| {
        cfg.areas
            .iter()
            .find(|a| a.slug == slug.as_str())
            .map(|a| a.response_days)
    };
    let rule = DueRule {
        response_days: &response_days,
        holidays: &holidays,
    };
    let table = |name: String, of: &dyn Fn(&TicketFacts) -> bool| AreaTable {
        name,
        rows: months
            .iter()
            .map(|m| {
                let key = month_key(*m);
                let in_month: Vec<TicketFacts> = facts
                    .iter()
                    .filter(|t| of(t) && month_key(rome_date(t.created_at)) == key)
                    .cloned()
                    .collect();
                let f = figures(&in_month, &rule, now);
                MonthRow {
                    month: key,
                    received: f.received,
                    answered: f.answered,
                    taken: f.taken,
                    resolved: f.resolved,
                    reopened: f.reopened,
                    open_now: f.open_now,
                    overdue_now: f.overdue_now,
                    median_days: days(f.first_answer.median_working_days),
                    p90_days: days(f.first_answer.p90_working_days),
                    max_days: days(f.first_answer.max_working_days),
                    resolution_median_days: days(f.resolution.median_working_days),
                    within_due: f
                        .answered_within_due
                        .map(|s| format!("{:.0}%", s * 100.0))
                        .unwrap_or_default(),
                }
            })
            .collect(),
        by_kind: mix(&facts, of, &rule, now, |f| &f.by_kind, kind_words),
        by_channel: mix(&facts, of, &rule, now, |f| &f.by_channel, channel_words),
    };
    let all = table(String::new(), &|_| true);
    let bars = bars(&all);
    let mut tables = vec![all];
    tables.extend(
        state
            .cfg
            .areas
            .iter()
            .filter(|a| !a.admin)
            .map(|a| table(a.name.clone(), &|t: &TicketFacts| t.area.as_str() == a.slug)),
    );
    Ok(Tables { tables, bars })
}

/// The 12 months' counts of one breakdown (`pick`: by kind or by channel) of the tickets
/// `of` selects, with each word in both languages.
fn mix(
    facts: &[TicketFacts],
    of: &dyn Fn(&TicketFacts) -> bool,
    rule: &DueRule<'_>,
    now: i64,
    pick: fn(&Figures) -> &std::collections::BTreeMap<String, u64>,
    words: fn(&str) -> (String, String),
) -> Vec<(String, String, u64)> {
    let chosen: Vec<TicketFacts> = facts.iter().filter(|t| of(t)).cloned().collect();
    let f = figures(&chosen, rule, now);
    pick(&f)
        .iter()
        .filter(|(_, n)| **n > 0)
        .map(|(w, n)| {
            let (it, en) = words(w);
            (it, en, *n)
        })
        .collect()
}

/// Chart geometry: 12 bars in a 600×200 drawing, the tallest 160 high.
fn bars(all: &AreaTable) -> Vec<Bar> {
    let max = all
        .rows
        .iter()
        .map(|r| r.received)
        .max()
        .unwrap_or(0)
        .max(1);
    all.rows
        .iter()
        .zip(0u32..)
        .map(|(r, i)| {
            let height = u32::try_from(r.received * 160 / max).unwrap_or(160);
            Bar {
                month: r.month.clone(),
                received: r.received,
                x: 10 + i * 49,
                y: 180 - height,
                height,
                label_x: 10 + i * 49 + 20,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::date;

    #[test]
    fn the_last_twelve_months_end_with_this_one_across_a_new_year() {
        let months = last_twelve_months(date!(2026 - 03 - 15));
        assert_eq!(months.len(), 12);
        assert_eq!(months.first(), Some(&date!(2025 - 04 - 01)));
        assert_eq!(months.last(), Some(&date!(2026 - 03 - 01)));
    }
}
