//! Each office's daily digest of its queue (issue 14): on every working day, at
//! `[digest] time` Italian time, each staff member of an area gets one mail listing the area's
//! open tickets — overdue ones on top, then new since the last digest, waiting to be taken,
//! taken but not answered, answered but still open — each with its staff page link.
//!
//! [`select`] is the pure part (which ticket goes in which group). [`run`] reads the queue,
//! and with `send` records the day (`digest_sent`, migration 0011) and queues the mails in ONE
//! transaction: the primary key (area, day) makes the digest go out once per area and day
//! whatever the number of instances or restarts. `ticketgate digest` and the task of `serve`
//! ([`run_scheduled`]) both call [`run`].

use std::sync::Arc;

use askama::Template;
use time::Date;

use crate::config::{AreaConfig, Config};
use crate::domain::calendar::{days_overdue, due_date, is_overdue, is_working_day, italian_date};
use crate::domain::{rome_date, rome_datetime, AreaSlug, EmailAddress, Holidays};
use crate::domain::{MessageKind, SignedIds, TicketStatus};
use crate::outbound::queue::{queue_mail_with_html, Queued};
use crate::store::{now_millis, Store, TicketView};
use crate::tickets::staff_page_link;

/// The groups of a digest, in the order the mail shows them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Group {
    /// Past its due date without an answer (received or taken).
    Overdue,
    /// Received since the last digest (or ever, before the first one), not yet taken.
    New,
    /// Received before the last digest, still not taken.
    Waiting,
    /// Taken, not answered.
    Taken,
    /// Answered, not resolved.
    Answered,
}

impl Group {
    /// The heading of the group in the mail (Italian: the offices' language).
    pub fn heading(self) -> &'static str {
        match self {
            Group::Overdue => "Scadute (senza risposta oltre la data prevista)",
            Group::New => "Nuove dall'ultimo riepilogo",
            Group::Waiting => "In attesa di presa in carico",
            Group::Taken => "Prese in carico, senza risposta",
            Group::Answered => "Con risposta, ancora aperte",
        }
    }
}

/// One ticket in a digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    pub group: Group,
    pub ticket: usize,
    /// Calendar days since the ticket was received (Italian dates).
    pub age_days: i64,
    pub due: Date,
    /// Calendar days past `due`, for [`Group::Overdue`].
    pub overdue_days: Option<i64>,
}

/// The digest of `tickets` (one area's, open) at `as_of` (unix millis): tickets received
/// after `as_of` are left out; `last_digest` (unix millis) is when the previous digest went
/// out. Due dates and overdue by `domain::calendar`. Sorted by group, then oldest first. Pure.
pub fn select(
    tickets: &[TicketView],
    response_days: u32,
    holidays: &Holidays,
    as_of: i64,
    last_digest: Option<i64>,
) -> Vec<Line> {
    let today = rome_date(as_of);
    let mut lines: Vec<(Line, i64)> = tickets
        .iter()
        .enumerate()
        .filter(|(_, t)| t.status != TicketStatus::Resolved && t.created_at <= as_of)
        .map(|(i, t)| {
            let created = rome_date(t.created_at);
            let due = due_date(t.created_at, response_days, holidays);
            let overdue = is_overdue(t.status, due, as_of);
            let group = match t.status {
                _ if overdue => Group::Overdue,
                TicketStatus::Received if last_digest.is_none_or(|l| t.created_at > l) => {
                    Group::New
                }
                TicketStatus::Received => Group::Waiting,
                TicketStatus::Taken => Group::Taken,
                _ => Group::Answered,
            };
            let line = Line {
                group,
                ticket: i,
                age_days: (today - created).whole_days(),
                due,
                overdue_days: overdue.then(|| i64::from(days_overdue(t.status, due, as_of))),
            };
            (line, t.created_at)
        })
        .collect();
    lines.sort_by_key(|(l, created)| (l.group, *created, l.ticket));
    lines.into_iter().map(|(l, _)| l).collect()
}

fn days_it(n: i64) -> String {
    match n {
        0 => "oggi".to_owned(),
        1 => "1 giorno".to_owned(),
        n => format!("{n} giorni"),
    }
}

/// One line as the templates show it: every value text, escaped by the HTML template.
#[derive(Debug, Clone)]
pub struct LineView {
    pub reference: String,
    pub kind: &'static str,
    pub subject: String,
    /// The citizen's name, never their address nor codice fiscale.
    pub citizen: String,
    pub age: String,
    pub due: String,
    /// "da N giorni" for overdue tickets, else empty.
    pub overdue: String,
    /// The recipient's signed staff page link; empty when printed for the operator.
    pub link: String,
}

#[derive(Debug, Clone)]
pub struct GroupView {
    pub heading: &'static str,
    pub lines: Vec<LineView>,
}

#[derive(Template)]
#[template(path = "mail/digest.txt")]
struct DigestText<'a> {
    area_name: &'a str,
    day: &'a str,
    total: usize,
    overdue: usize,
    groups: &'a [GroupView],
}

#[derive(Template)]
#[template(path = "mail/digest.html")]
struct DigestHtml<'a> {
    area_name: &'a str,
    day: &'a str,
    total: usize,
    overdue: usize,
    groups: &'a [GroupView],
}

/// The groups of `lines` for one recipient (`link` makes their staff page link of a ticket).
fn views(
    tickets: &[TicketView],
    lines: &[Line],
    link: &dyn Fn(&TicketView) -> String,
) -> Vec<GroupView> {
    let mut groups: Vec<GroupView> = Vec::new();
    for l in lines {
        let Some(t) = tickets.get(l.ticket) else {
            continue;
        };
        let view = LineView {
            reference: t.reference.to_string(),
            kind: t.kind.as_str(),
            subject: one_line(&t.subject),
            citizen: t
                .citizen_name
                .as_deref()
                .map(one_line)
                .filter(|n| !n.is_empty())
                .unwrap_or_else(|| "(nome non indicato)".to_owned()),
            age: match l.age_days {
                0 => "oggi".to_owned(),
                n => format!("{} fa", days_it(n)),
            },
            due: italian_date(l.due),
            overdue: l
                .overdue_days
                .map(|n| format!("scaduta da {}", days_it(n)))
                .unwrap_or_default(),
            link: link(t),
        };
        match groups.last_mut() {
            Some(g) if g.heading == l.group.heading() => g.lines.push(view),
            _ => groups.push(GroupView {
                heading: l.group.heading(),
                lines: vec![view],
            }),
        }
    }
    groups
}

/// A subject or name on one line: a newline in it must not break the digest's layout.
fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// What [`run`] did for one area.
#[derive(Debug, Clone)]
pub struct AreaDigest {
    pub area: String,
    pub day: Date,
    /// The digest's plain text (without links), empty when there is nothing open.
    pub text: String,
    pub tickets: usize,
    pub outcome: Outcome,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Not sending (printing only).
    Shown,
    /// Not a working day: no digest.
    NotWorkingDay,
    /// Nothing open: the day is recorded, nothing sent.
    Empty,
    /// Queued to this many staff members.
    Sent(usize),
    /// This day's digest was recorded already (another instance, an earlier run).
    AlreadySent,
}

/// The digest of every area (or of `only`) at `as_of` (unix millis); with `send`, records
/// the day and queues the mails, once per area and Italian day.
pub async fn run(
    store: &Store,
    cfg: &Config,
    ids: &SignedIds,
    as_of: i64,
    only: Option<&str>,
    send: bool,
) -> anyhow::Result<Vec<AreaDigest>> {
    let today = rome_date(as_of);
    let day = today.to_string();
    let mut out = Vec::new();
    for area in cfg
        .areas
        .iter()
        .filter(|a| only.is_none_or(|o| o == a.slug))
    {
        out.push(run_area(store, cfg, ids, area, today, &day, as_of, send).await?);
    }
    Ok(out)
}

#[allow(clippy::too_many_arguments)]
async fn run_area(
    store: &Store,
    cfg: &Config,
    ids: &SignedIds,
    area: &AreaConfig,
    today: Date,
    day: &str,
    as_of: i64,
    send: bool,
) -> anyhow::Result<AreaDigest> {
    let slug = AreaSlug::parse(&area.slug)
        .map_err(|e| anyhow::anyhow!("area slug {:?}: {e}", area.slug))?;
    let mut result = AreaDigest {
        area: area.slug.clone(),
        day: today,
        text: String::new(),
        tickets: 0,
        outcome: Outcome::Shown,
    };
    let holidays = cfg.holidays();
    if !is_working_day(today, &holidays) {
        result.outcome = Outcome::NotWorkingDay;
        return Ok(result);
    }
    let last = store.last_digest_before(&slug, day).await?;
    let tickets = store.open_tickets_of_area(&slug).await?;
    let lines = select(&tickets, area.response_days, &holidays, as_of, last);
    result.tickets = lines.len();
    let day_it = italian_date(today);
    let overdue = lines.iter().filter(|l| l.group == Group::Overdue).count();
    if !lines.is_empty() {
        let groups = views(&tickets, &lines, &|_| String::new());
        result.text = DigestText {
            area_name: &area.name,
            day: &day_it,
            total: lines.len(),
            overdue,
            groups: &groups,
        }
        .render()?;
    }
    if !send {
        return Ok(result);
    }
    let mut tx = store.begin().await?;
    // First, so that a second instance waits here for this one's commit and then finds the
    // row: it queues nothing.
    if !Store::record_digest(&mut tx, &slug, day, as_of).await? {
        tx.rollback().await?;
        result.outcome = Outcome::AlreadySent;
        return Ok(result);
    }
    let Some(from_addr) = area.addresses.first().map(|a| a.address().to_lowercase()) else {
        tx.commit().await?;
        result.outcome = Outcome::Empty;
        return Ok(result);
    };
    let mut sent = 0;
    if !lines.is_empty() {
        let subject = format!(
            "Riepilogo pratiche {} del {day_it}: {} aperte{}",
            area.name,
            lines.len(),
            if overdue > 0 {
                format!(", {overdue} scadute")
            } else {
                String::new()
            }
        );
        let expires = now_millis() + cfg.security.staff_link_millis();
        for staff in &area.staff {
            let Ok(to) = EmailAddress::parse(staff) else {
                continue;
            };
            let staff_lc = to.as_str().to_owned();
            let link = |t: &TicketView| {
                staff_page_link(
                    ids,
                    &cfg.server.base_url,
                    &t.reference.to_string(),
                    &staff_lc,
                    expires,
                )
            };
            let groups = views(&tickets, &lines, &link);
            let text = DigestText {
                area_name: &area.name,
                day: &day_it,
                total: lines.len(),
                overdue,
                groups: &groups,
            }
            .render()?;
            let html = DigestHtml {
                area_name: &area.name,
                day: &day_it,
                total: lines.len(),
                overdue,
                groups: &groups,
            }
            .render()?;
            queue_mail_with_html(
                &mut tx,
                ids,
                &Queued {
                    ticket: None,
                    kind: MessageKind::Digest,
                    from_name: &area.name,
                    from_addr: &from_addr,
                    to: vec![to],
                    reply_to: None,
                    subject: &subject,
                    in_reply_to: None,
                    references: Vec::new(),
                    // Automatic mail: no out-of-office answers to it (RFC 3834).
                    auto_replied: true,
                    text: &text,
                    attachments: Vec::new(),
                    transport: crate::domain::Transport::Smtp,
                },
                &html,
            )
            .await?;
            sent += 1;
        }
    }
    tx.commit().await?;
    result.outcome = if lines.is_empty() {
        Outcome::Empty
    } else {
        Outcome::Sent(sent)
    };
    Ok(result)
}

/// The digest task of `serve`: about once a minute, on a working day from `[digest] time`
/// Italian time on, sends each area's digest of the day that is not recorded yet.
pub async fn run_scheduled(
    store: Store,
    cfg: Arc<Config>,
    ids: SignedIds,
    outbox_wake: Arc<tokio::sync::Notify>,
    stop: tokio_util::sync::CancellationToken,
) {
    let Some((hour, minute)) = cfg.digest.hour_minute() else {
        return;
    };
    let holidays = cfg.holidays();
    let mut every = tokio::time::interval(std::time::Duration::from_secs(60));
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = every.tick() => {}
        }
        let now = now_millis();
        let local = rome_datetime(now);
        if (local.hour(), local.minute()) < (hour, minute)
            || !is_working_day(local.date(), &holidays)
        {
            continue;
        }
        let day = local.date().to_string();
        for area in &cfg.areas {
            let Ok(slug) = AreaSlug::parse(&area.slug) else {
                continue;
            };
            match store.digest_recorded(&slug, &day).await {
                Ok(true) => continue,
                Ok(false) => {}
                Err(e) => {
                    tracing::warn!(error = %e, area = %area.slug, "digest: reading the record");
                    continue;
                }
            }
            match run_area(&store, &cfg, &ids, area, local.date(), &day, now, true).await {
                Ok(d) => {
                    if let Outcome::Sent(n) = d.outcome {
                        tracing::info!(area = %area.slug, staff = n, tickets = d.tickets, "digest queued");
                        outbox_wake.notify_one();
                    }
                }
                Err(e) => {
                    tracing::error!(error = format!("{e:#}"), area = %area.slug, "digest failed")
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{rome, Channel, TicketKind, TicketRef};
    use time::macros::{date, datetime};

    fn ticket(n: u32, status: TicketStatus, created: time::PrimitiveDateTime) -> TicketView {
        TicketView {
            ticket_id: i64::from(n),
            reference: format!("2026-{n:06}").parse::<TicketRef>().expect("ref"),
            kind: TicketKind::Segnalazione,
            area: AreaSlug::parse("ambiente").expect("slug"),
            status,
            citizen: EmailAddress::parse("mario@example.org").expect("addr"),
            citizen_name: Some("Mario\nRossi".into()),
            subject: format!("Buca {n}"),
            text: String::new(),
            channel: Channel::Email,
            created_at: rome::to_millis(created),
            updated_at: rome::to_millis(created),
            certified: None,
            pec_address: None,
            reply_to: None,
            reply_to_asked: None,
        }
    }

    #[test]
    fn overdue_tickets_come_first_then_new_waiting_taken_and_answered() {
        let last = rome::to_millis(datetime!(2026-12-07 08:30));
        let now = rome::to_millis(datetime!(2026-12-09 08:30));
        let tickets = vec![
            ticket(1, TicketStatus::Answered, datetime!(2026-11-02 10:00)),
            ticket(2, TicketStatus::Received, datetime!(2026-12-08 10:00)),
            ticket(3, TicketStatus::Taken, datetime!(2026-12-03 10:00)),
            ticket(4, TicketStatus::Received, datetime!(2026-12-04 10:00)),
            ticket(5, TicketStatus::Taken, datetime!(2026-11-20 10:00)),
            ticket(6, TicketStatus::Resolved, datetime!(2026-11-20 10:00)),
            // Received after the moment of the digest: not in it.
            ticket(7, TicketStatus::Received, datetime!(2026-12-09 09:00)),
        ];
        let lines = select(&tickets, 5, &Holidays::none(), now, Some(last));
        let got: Vec<(u32, Group)> = lines
            .iter()
            .map(|l| (tickets[l.ticket].ticket_id as u32, l.group))
            .collect();
        assert_eq!(
            got,
            [
                (5, Group::Overdue),
                (2, Group::New),
                (4, Group::Waiting),
                (3, Group::Taken),
                (1, Group::Answered),
            ]
        );
        // Friday 20 November + 5 working days is Friday 27: 12 days late on 9 December.
        assert_eq!(lines[0].due, date!(2026 - 11 - 27));
        assert_eq!(lines[0].overdue_days, Some(12));
        assert_eq!(lines[0].age_days, 19);
        // An answered ticket is never overdue, however old.
        assert_eq!(lines[4].overdue_days, None);
    }

    #[test]
    fn before_the_first_digest_every_waiting_ticket_is_new() {
        let now = rome::to_millis(datetime!(2026-12-09 08:30));
        let tickets = vec![ticket(
            1,
            TicketStatus::Received,
            datetime!(2026-12-08 10:00),
        )];
        let lines = select(&tickets, 30, &Holidays::none(), now, None);
        assert_eq!(lines[0].group, Group::New);
        // 30 working days from 8 December, without 25 December, 1 and 6 January.
        assert_eq!(lines[0].due, date!(2027 - 01 - 22));
    }

    #[test]
    fn a_digest_line_shows_the_name_on_one_line_and_how_late_the_ticket_is() {
        let now = rome::to_millis(datetime!(2026-12-09 08:30));
        let tickets = vec![ticket(1, TicketStatus::Taken, datetime!(2026-12-01 10:00))];
        let lines = select(&tickets, 1, &Holidays::none(), now, None);
        let groups = views(&tickets, &lines, &|t| format!("L-{}", t.reference));
        assert_eq!(groups.len(), 1);
        let l = &groups[0].lines[0];
        assert_eq!(l.citizen, "Mario Rossi");
        assert_eq!(l.due, "02/12/2026");
        assert_eq!(l.overdue, "scaduta da 7 giorni");
        assert_eq!(l.age, "8 giorni fa");
        assert_eq!(l.link, "L-2026-000001");
    }

    #[test]
    fn the_html_digest_escapes_what_the_citizen_wrote() {
        let groups = vec![GroupView {
            heading: Group::New.heading(),
            lines: vec![LineView {
                reference: "2026-000001".into(),
                kind: "segnalazione",
                subject: "<script>alert(1)</script> & co".into(),
                citizen: "\"Eve\" <eve>".into(),
                age: "oggi".into(),
                due: "02/12/2026".into(),
                overdue: String::new(),
                link: "https://x.example/staff/tickets/2026-000001?staff=a&exp=1&sig=z".into(),
            }],
        }];
        let html = DigestHtml {
            area_name: "Ambiente",
            day: "09/12/2026",
            total: 1,
            overdue: 0,
            groups: &groups,
        }
        .render()
        .expect("renders");
        assert!(!html.contains("<script>"), "{html}");
        assert!(html.contains("&#60;script&#62;"), "{html}");
        // The link's `&` escaped too, as HTML attributes want.
        assert!(html.contains("staff=a&#38;exp=1"), "{html}");
        assert!(!html.contains("<eve>"), "{html}");
    }
}
