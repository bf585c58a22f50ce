//! One ticket's page: its timeline, the messages a citizen may see, their attachments.

use std::collections::HashSet;

use askama::Template;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde_json::Value;

use super::{area_name, citizen, expected, iso, kind_label, owned_ticket, status_label};
use crate::domain::{local_time, AreaSlug, Channel, Direction, EventKind, MessageKind};
use crate::mail::compose::human_size;
use crate::mail::html::{self, ShownHtml};
use crate::store::{AttachmentView, MessageView, TicketTimeline};
use crate::web::visitor::{render, Chrome, Visitor};
use crate::web::{AppState, Error};

struct Entry {
    at: String,
    iso: String,
    text: String,
}

struct FileLink {
    href: String,
    filename: String,
    size: String,
}

struct Msg {
    heading: String,
    at: String,
    iso: String,
    subject: String,
    text: String,
    html: Option<String>,
    /// Set when the HTML body is not shown: the word saying so, in the page's language.
    html_withheld: Option<String>,
    files: Vec<FileLink>,
    certified: Option<String>,
}

#[derive(Template)]
#[template(path = "web/ticket.html")]
struct DetailPage {
    c: Chrome,
    site: String,
    reference: String,
    subject: String,
    status: String,
    kind: String,
    area: String,
    channel: String,
    created: String,
    expected: String,
    overdue: bool,
    timeline: Vec<Entry>,
    messages: Vec<Msg>,
}

/// Messages a citizen sees: theirs, and ours to them (see [`MessageKind::citizen_may_see`]).
fn visible(m: &MessageView) -> bool {
    m.kind.citizen_may_see(m.direction)
}

fn str_of<'a>(v: &'a Value, key: &str) -> &'a str {
    v.get(key).and_then(Value::as_str).unwrap_or("")
}

/// The timeline line of an event, or None for internal events.
fn event_text(state: &AppState, c: &Chrome, e: &EventKind) -> Option<String> {
    let office = |slug: Option<&AreaSlug>| area_name(state, slug.map_or("", AreaSlug::as_str));
    Some(match e {
        EventKind::Received(r) => {
            let area = office(r.area.as_ref());
            let pec = r.pec.as_ref().filter(|p| !p.is_null());
            match pec {
                Some(p) if p["certified"] == true => format!(
                    "{} {area}{}",
                    c.t(
                        "Segnalazione ricevuta per PEC (certificata) e assegnata a",
                        "Report received by PEC (certified) and assigned to"
                    ),
                    p.get("certified_at")
                        .and_then(Value::as_str)
                        .map(|t| format!(" — {} {}", c.t("data certificata", "certified time"), t))
                        .unwrap_or_default()
                ),
                // A PEC envelope whose provider signature did not verify: the citizen is told
                // why, in words, not with openssl's reason (docs/design-notes.md, "Fuzzing,
                // PEC certification, plaintext transports").
                Some(p) if p["envelope"] == "transport" => format!(
                    "{} {area}",
                    c.t(
                        "Messaggio ricevuto per PEC ma non certificato (la firma del gestore PEC \
                         non è stata verificata), assegnato a",
                        "Message received by PEC but not certified (the PEC provider's signature \
                         could not be verified), assigned to"
                    )
                ),
                Some(_) => format!(
                    "{} {area}",
                    c.t(
                        "Messaggio ricevuto nella casella PEC, non certificato, assegnato a",
                        "Message received in the PEC box, not certified, assigned to"
                    )
                ),
                None => format!(
                    "{} {area}",
                    c.t(
                        "Segnalazione ricevuta e assegnata a",
                        "Report received and assigned to"
                    )
                ),
            }
        }
        EventKind::Taken(d) => format!(
            "{} {}",
            c.t("Presa in carico dall'ufficio", "Taken by the office"),
            office(d.area.as_ref())
        ),
        EventKind::Reassigned(d) => format!(
            "{} {} {} {}",
            c.t("Trasferita dall'ufficio", "Moved from"),
            office(d.from.as_ref()),
            c.t("all'ufficio", "to"),
            office(d.to.as_ref())
        ),
        EventKind::Answered(_) => c
            .t("L'ufficio ha risposto", "The office answered")
            .to_owned(),
        EventKind::Resolved(_) => c.t("Pratica risolta", "Case resolved").to_owned(),
        EventKind::Reopened(_) => c
            .t(
                "Pratica riaperta dopo un suo messaggio",
                "Case reopened after your message",
            )
            .to_owned(),
        EventKind::FollowUp(_) => c
            .t(
                "Ricevuto un suo nuovo messaggio",
                "Your new message was received",
            )
            .to_owned(),
        EventKind::KindChanged(_) => c
            .t("Tipo di pratica aggiornato", "Case type updated")
            .to_owned(),
        EventKind::Bounce(_) => c
            .t(
                "Un nostro messaggio non le è stato consegnato",
                "A message of ours could not be delivered to you",
            )
            .to_owned(),
        EventKind::PecReceipt(d) => {
            let when = d.certified_at.as_deref().unwrap_or("");
            let state_text = match d.receipt.as_str() {
                "accettazione" => c
                    .t(
                        "PEC: il gestore ha accettato la nostra risposta",
                        "PEC: the provider accepted our answer",
                    )
                    .to_owned(),
                "avvenuta-consegna" => format!(
                    "{} {}",
                    c.t("PEC: risposta consegnata a", "PEC: answer delivered to"),
                    d.delivered_to.as_deref().unwrap_or("")
                ),
                "errore-consegna" | "non-accettazione" | "rilevazione-virus" => format!(
                    "{} ({})",
                    c.t("PEC: risposta non consegnata", "PEC: answer not delivered"),
                    d.reason.as_deref().unwrap_or("")
                ),
                "preavviso-errore-consegna" => c
                    .t("PEC: consegna in ritardo", "PEC: delivery delayed")
                    .to_owned(),
                other => format!("PEC: {other}"),
            };
            if when.is_empty() {
                state_text
            } else {
                format!(
                    "{state_text} — {} {when}",
                    c.t("data certificata", "certified time")
                )
            }
        }
        _ => return None,
    })
}

fn certified_line(c: &Chrome, m: &MessageView) -> Option<String> {
    let state = m.pec_state.as_deref()?;
    let detail: Value = m
        .pec_detail
        .as_deref()
        .and_then(|d| serde_json::from_str(d).ok())
        .unwrap_or(Value::Null);
    let when = m.certified_at.map(local_time).unwrap_or_default();
    Some(match state {
        "consegnata" => format!(
            "{} {} {} {when}",
            c.t("PEC consegnata a", "PEC delivered to"),
            str_of(&detail, "delivered_to"),
            c.t("il", "on")
        ),
        "accettata" => format!(
            "{} {when}",
            c.t(
                "PEC accettata dal gestore il",
                "PEC accepted by the provider on"
            )
        ),
        other => format!("PEC {other}: {}", str_of(&detail, "reason")),
    })
}

pub(super) async fn detail(
    State(state): State<AppState>,
    v: Visitor,
    Path(reference): Path<String>,
) -> Result<Response, Error> {
    let Some(c) = citizen(&v) else {
        return Ok(v.to_login());
    };
    let Some((t, history)) = owned_ticket(&state, c, &reference).await? else {
        return Err(Error::not_found(&state, &v));
    };
    let TicketTimeline {
        events,
        mut messages,
        attachments: files,
        notification_attachments: _,
    } = history;
    sanitise_once(&state, &mut messages).await;
    let chrome = v.chrome(&format!(
        "{} {}",
        if v.en() { "Case" } else { "Pratica" },
        t.reference
    ));
    let timeline = events
        .iter()
        .filter_map(|e| {
            event_text(&state, &chrome, &e.event).map(|text| Entry {
                at: local_time(e.at),
                iso: iso(e.at),
                text,
            })
        })
        .collect();
    let shown: Vec<&MessageView> = messages.iter().filter(|m| visible(m)).collect();
    let shown_ids: HashSet<i64> = shown.iter().map(|m| m.message_id).collect();
    let msgs = shown
        .iter()
        .map(|m| Msg {
            heading: if m.direction == Direction::In {
                chrome.t("Lei ha scritto", "You wrote").to_owned()
            } else {
                match m.kind {
                    MessageKind::Ack => chrome.t("Conferma di ricezione", "Acknowledgment"),
                    MessageKind::Answer => chrome.t("Risposta dell'ufficio", "The office's answer"),
                    _ => chrome.t("Aggiornamento", "Update"),
                }
                .to_owned()
            },
            at: local_time(m.at),
            iso: iso(m.at),
            subject: m.subject.clone(),
            text: m.text.clone(),
            // Sanitised at intake: a view never runs the sanitiser (docs/design-notes.md,
            // "HTML bodies sanitised once, at intake").
            html: m.html_safe.clone().filter(|h| !h.trim().is_empty()),
            html_withheld: m.html_withheld.is_some().then(|| {
                chrome
                    .t(
                        "Questo messaggio aveva anche una versione formattata (HTML) troppo \
                         grande o complessa per mostrarla in sicurezza: qui c'è solo il testo.",
                        "This message also had a formatted (HTML) version too large or too \
                         complex to show safely: only its text is shown here.",
                    )
                    .to_owned()
            }),
            files: files
                .iter()
                .filter(|a| a.message_id == m.message_id && shown_ids.contains(&a.message_id))
                .map(|a: &AttachmentView| FileLink {
                    href: format!("/tickets/{}/attachments/{}", t.reference, a.attachment_id),
                    filename: a.filename.clone(),
                    size: human_size(u64::try_from(a.size).unwrap_or(0)),
                })
                .collect(),
            certified: certified_line(&chrome, m),
        })
        .collect();
    let (expected, overdue) = expected(&state, &t);
    let channel = match t.channel {
        Channel::Pec if t.certified == Some(true) => {
            chrome.t("PEC (certificata)", "PEC (certified)")
        }
        Channel::Pec => chrome.t(
            "Casella PEC (messaggio non certificato)",
            "PEC box (message not certified)",
        ),
        Channel::Web => chrome.t("Sito web", "Web site"),
        Channel::Email => chrome.t("E-mail", "Email"),
        Channel::Phone => chrome.t(
            "Telefono (registrata dall'ufficio)",
            "Phone (registered by the office)",
        ),
        Channel::Counter => chrome.t(
            "Sportello (registrata dall'ufficio)",
            "Counter (registered by the office)",
        ),
        Channel::Letter => chrome.t(
            "Lettera (registrata dall'ufficio)",
            "Letter (registered by the office)",
        ),
    }
    .to_owned();
    let page = DetailPage {
        status: status_label(&chrome, t.status),
        kind: kind_label(&chrome, t.kind),
        c: chrome,
        site: state.cfg.server.site_name.clone(),
        reference: t.reference.to_string(),
        subject: t.subject.clone(),
        area: area_name(&state, t.area.as_str()),
        channel,
        created: local_time(t.created_at),
        expected,
        overdue,
        timeline,
        messages: msgs,
    };
    Ok(render(&v, StatusCode::OK, &page))
}

/// Messages stored before migration 0006 carry HTML but neither its sanitised copy nor a
/// reason: it is made on their first view — off the async threads, within the same caps as at
/// intake ([`html::prepare`]) — and stored, so every later view only reads it.
async fn sanitise_once(state: &AppState, messages: &mut [MessageView]) {
    for m in messages.iter_mut() {
        if !visible(m) || m.html_safe.is_some() || m.html_withheld.is_some() {
            continue;
        }
        let Some(raw_html) = m.html.clone().filter(|h| !h.trim().is_empty()) else {
            continue;
        };
        let shown = tokio::task::spawn_blocking(move || html::prepare(&raw_html))
            .await
            .unwrap_or(ShownHtml::Withheld(html::Withheld::Unusual));
        let (safe, withheld) = match shown {
            ShownHtml::Safe(h) => (Some(h), None),
            ShownHtml::Withheld(why) => (None, Some(why.as_str().to_owned())),
        };
        if let Err(e) = state
            .store
            .set_shown_html_now(m.message_id, safe.as_deref(), withheld.as_deref())
            .await
        {
            tracing::warn!(error = %e, message = m.message_id, "storing sanitised HTML failed");
        }
        m.html_safe = safe;
        m.html_withheld = withheld;
    }
}

pub(super) async fn attachment(
    State(state): State<AppState>,
    v: Visitor,
    Path((reference, attachment_id)): Path<(String, i64)>,
) -> Result<Response, Error> {
    let Some(c) = citizen(&v) else {
        return Ok(v.to_login());
    };
    let Some((
        _,
        TicketTimeline {
            messages,
            attachments: files,
            ..
        },
    )) = owned_ticket(&state, c, &reference).await?
    else {
        return Err(Error::not_found(&state, &v));
    };
    let visible_ids: HashSet<i64> = messages
        .iter()
        .filter(|m| visible(m))
        .map(|m| m.message_id)
        .collect();
    let Some(a) = files
        .iter()
        .find(|a| a.attachment_id == attachment_id && visible_ids.contains(&a.message_id))
    else {
        return Err(Error::not_found(&state, &v));
    };
    let bytes = state.attachments.get(&a.sha256).await?;
    Ok(v.finish(crate::web::attachment_download(
        &a.filename,
        &a.content_type,
        bytes,
    )))
}
