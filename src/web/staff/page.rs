//! `GET /staff/tickets/{ref}`: the staff ticket page — every message in and out with its text,
//! role, time, delivery and PEC state, every attachment, every event with who and when — and
//! the forms of the office's actions ([`super::actions`]). A GET changes nothing: mail
//! security scanners open every link in a mail.
//!
//! Read in one snapshot (`Store::ticket_timeline`), so a message and its events agree. HTML
//! bodies are shown as sanitised at intake (`mail::html`), exactly as on the citizen page.

use askama::Template;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde::Deserialize;
use serde_json::Value;

use super::{LinkFields, StaffLink};
use crate::domain::{
    calendar, local_time, now_millis, rfc3339, Channel, Direction, EventKind, TicketStatus,
};
use crate::mail::compose::human_size;
use crate::store::{AttachmentView, MessageView, TicketTimeline, TicketView};
use crate::web::visitor::{message, random_token, render, Chrome, Errors, FieldErrors, Visitor};
use crate::web::{AppState, Error};

/// The query of the page: the signed link, and which action was just carried out.
#[derive(Debug, Default, Deserialize)]
pub struct PageQuery {
    #[serde(flatten)]
    link: LinkFields,
    #[serde(default)]
    done: Option<String>,
}

/// What the forms carry back when one was refused: the staff member's text is kept.
#[derive(Debug)]
pub struct FormState {
    pub errors: Errors,
    pub note: String,
    pub answer: String,
    /// The answer's "final answer: close" box (ticked unless the refused answer had it off).
    pub close: bool,
    pub area: String,
}

impl Default for FormState {
    fn default() -> Self {
        FormState {
            errors: Errors::new(),
            note: String::new(),
            answer: String::new(),
            close: true,
            area: String::new(),
        }
    }
}

struct FileLink {
    href: String,
    filename: String,
    size: String,
    content_type: String,
}

struct Msg {
    anchor: String,
    role: String,
    /// "Ricevuto" / "Inviato": the direction in words.
    direction: String,
    from: String,
    to: String,
    at: String,
    iso: String,
    subject: String,
    text: String,
    html: Option<String>,
    html_withheld: Option<String>,
    delivery: Option<String>,
    pec: Option<String>,
    files: Vec<FileLink>,
}

struct Happening {
    at: String,
    iso: String,
    what: String,
    who: String,
}

struct AreaChoice {
    slug: String,
    name: String,
    selected: bool,
}

#[derive(Template)]
#[template(path = "web/staff_ticket.html")]
struct StaffPage {
    c: Chrome,
    site: String,
    reference: String,
    subject: String,
    status: String,
    status_word: String,
    kind: String,
    area: String,
    channel: String,
    citizen: String,
    reply_to_asked: String,
    created: String,
    /// The due date, "dd/mm/yyyy" (issue 14, `domain::calendar`).
    due: String,
    /// Calendar days past the due date without an answer; 0 when not overdue.
    days_overdue: u32,
    staff: String,
    exp: i64,
    sig: String,
    done: Option<String>,
    messages: Vec<Msg>,
    events: Vec<Happening>,
    areas: Vec<AreaChoice>,
    errors: Errors,
    note: String,
    answer: String,
    close: bool,
    /// A one-time key per form, so that a form sent twice is recorded once.
    key: String,
}

/// The staff's 404: a forged, tampered or expired link, or no such ticket (one page for all).
pub(super) fn not_found(state: &AppState, v: &Visitor) -> Error {
    Error::NotFound(message(
        state,
        v,
        StatusCode::NOT_FOUND,
        v.t("Pagina non trovata", "Not found"),
        vec![v.t(
            "Il collegamento non è valido o è scaduto. Apra quello dell'ultima e-mail ricevuta \
             per questa pratica.",
            "The link is not valid or has expired. Open the one in the latest email you got \
             about this case.",
        )],
        None,
    ))
}

/// A staff member no longer listed in the ticket's office (nor in an admin area).
pub(super) fn not_staff(state: &AppState, v: &Visitor) -> Error {
    Error::Form(message(
        state,
        v,
        StatusCode::FORBIDDEN,
        v.t("Accesso non consentito", "Access refused"),
        vec![v.t(
            "Questo collegamento è di un componente dell'ufficio che non risulta più tra il \
             personale dell'ufficio della pratica.",
            "This link belongs to a staff member who is no longer listed among the staff of \
             the case's office.",
        )],
        None,
    ))
}

pub(super) async fn show(
    State(state): State<AppState>,
    v: Visitor,
    Path(reference): Path<String>,
    query: Result<Query<PageQuery>, QueryRejection>,
) -> Result<Response, Error> {
    let Ok(Query(query)) = query else {
        return Err(not_found(&state, &v));
    };
    let Some(link) = StaffLink::verify(&state, &reference, &query.link) else {
        return Err(not_found(&state, &v));
    };
    let Some(ticket) = state.store.ticket_by_ref(&link.reference).await? else {
        return Err(not_found(&state, &v));
    };
    if !state.cfg.is_staff_of(&link.staff, ticket.area.as_str()) {
        return Err(not_staff(&state, &v));
    }
    let done = query.done.as_deref().and_then(|d| confirmation(&v, d));
    render_page(
        &state,
        &v,
        &link,
        &ticket,
        FormState::default(),
        done,
        StatusCode::OK,
    )
    .await
}

/// The sentence confirming action `done` (one of the page's action words).
fn confirmation(v: &Visitor, done: &str) -> Option<String> {
    Some(match done {
        "take" => v.t("Pratica presa in carico.", "Case taken."),
        "reassign" => v.t(
            "Pratica trasferita: il nuovo ufficio e il cittadino sono stati avvisati.",
            "Case moved: the new office and the citizen have been told.",
        ),
        "note" => v.t("Nota interna registrata.", "Internal note recorded."),
        "answer" => v.t(
            "Risposta inviata al cittadino.",
            "Answer sent to the citizen.",
        ),
        "close" => v.t(
            "Risposta finale inviata al cittadino: la pratica è risolta.",
            "Final answer sent to the citizen: the case is resolved.",
        ),
        _ => return None,
    })
}

/// The page for `link` on `ticket`, with `form` (errors and kept text after a refusal).
pub(super) async fn render_page(
    state: &AppState,
    v: &Visitor,
    link: &StaffLink,
    ticket: &TicketView,
    form: FormState,
    done: Option<String>,
    status: StatusCode,
) -> Result<Response, Error> {
    let TicketTimeline {
        events,
        messages,
        attachments,
        notification_attachments: _,
    } = state.store.ticket_timeline(ticket.ticket_id).await?;
    let mut c = v.chrome(&format!("{} {}", v.t("Pratica", "Case"), ticket.reference));
    c.staff = Some(link.staff.clone());
    let query = link.query();
    let msgs = messages
        .iter()
        .map(|m| message_of(&c, link, &query, m, &attachments))
        .collect();
    let happenings = events
        .iter()
        .map(|e| Happening {
            at: local_time(e.at),
            iso: rfc3339(e.at),
            what: event_text(state, &c, &e.event),
            who: e.actor.clone(),
        })
        .collect();
    let areas = state
        .cfg
        .areas
        .iter()
        .filter(|a| a.slug != ticket.area.as_str())
        .map(|a| AreaChoice {
            slug: a.slug.clone(),
            name: a.name.clone(),
            selected: a.slug == form.area,
        })
        .collect();
    let due = state.cfg.due_date(ticket.area.as_str(), ticket.created_at);
    let page = StaffPage {
        status: status_label(&c, ticket.status),
        status_word: ticket.status.as_str().to_owned(),
        kind: if c.en {
            ticket.kind.english()
        } else {
            ticket.kind.as_str()
        }
        .to_owned(),
        area: area_name(state, ticket.area.as_str()),
        channel: channel_label(&c, ticket),
        site: state.cfg.server.site_name.clone(),
        reference: ticket.reference.to_string(),
        subject: ticket.subject.clone(),
        citizen: ticket.citizen.as_str().to_owned(),
        reply_to_asked: ticket.reply_to_asked.clone().unwrap_or_default(),
        created: local_time(ticket.created_at),
        due: calendar::italian_date(due),
        days_overdue: calendar::days_overdue(ticket.status, due, now_millis()),
        staff: link.staff.clone(),
        exp: link.exp,
        sig: link.sig.clone(),
        done,
        messages: msgs,
        events: happenings,
        areas,
        errors: form.errors,
        note: form.note,
        answer: form.answer,
        close: form.close,
        key: random_token(),
        c,
    };
    Ok(render(v, status, &page))
}

fn area_name(state: &AppState, slug: &str) -> String {
    state
        .cfg
        .area(slug)
        .map(|a| a.name.clone())
        .unwrap_or_else(|| slug.to_owned())
}

fn status_label(c: &Chrome, status: TicketStatus) -> String {
    match status {
        TicketStatus::Received => c.t("Ricevuta (da prendere in carico)", "Received (not taken)"),
        TicketStatus::Taken => c.t("Presa in carico", "Taken"),
        TicketStatus::Answered => c.t("Risposta inviata", "Answered"),
        TicketStatus::Resolved => c.t("Risolta", "Resolved"),
    }
    .to_owned()
}

fn channel_label(c: &Chrome, t: &TicketView) -> String {
    match t.channel {
        Channel::Pec if t.certified == Some(true) => c.t("PEC (certificata)", "PEC (certified)"),
        Channel::Pec => c.t("Casella PEC, non certificata", "PEC box, not certified"),
        Channel::Web => c.t("Sito web", "Web site"),
        Channel::Email => c.t("E-mail", "Email"),
        Channel::Phone => c.t(
            "Telefono (registrata dall'ufficio)",
            "Phone (registered by the office)",
        ),
        Channel::Counter => c.t(
            "Sportello (registrata dall'ufficio)",
            "Counter (registered by the office)",
        ),
        Channel::Letter => c.t(
            "Lettera (registrata dall'ufficio)",
            "Letter (registered by the office)",
        ),
    }
    .to_owned()
}

/// The role of a message in words. By its stored word, so a kind added later shows as
/// itself rather than failing.
fn role(c: &Chrome, m: &MessageView) -> String {
    let (it, en) = match m.kind.as_str() {
        "report" => ("Segnalazione del cittadino", "The citizen's report"),
        "follow_up" => ("Nuovo messaggio del cittadino", "The citizen wrote again"),
        "staff_reply" => ("Risposta dell'ufficio (dal personale)", "Staff reply"),
        "staff_unverified" => (
            "Messaggio del personale non verificato (non inoltrato)",
            "Unverified staff mail (not forwarded)",
        ),
        "note" => ("Nota interna", "Internal note"),
        "bounce" => ("Mancata consegna", "Non-delivery report"),
        "receipt" => ("Conferma di lettura", "Read receipt"),
        "pec_receipt" => ("Ricevuta PEC", "PEC receipt"),
        "auto_reply" => ("Risposta automatica", "Automatic reply"),
        "ack" => (
            "Conferma di ricezione al cittadino",
            "Acknowledgment to the citizen",
        ),
        "notification" => ("Notifica all'ufficio", "Notification to the office"),
        "answer" => ("Risposta al cittadino", "Answer to the citizen"),
        "status" => ("Aggiornamento al cittadino", "Update to the citizen"),
        "notice" => ("Avviso al personale", "Notice to staff"),
        "oversize" => (
            "Avviso di messaggio troppo grande",
            "Message too large notice",
        ),
        "reminder" => (
            "Promemoria all'ufficio: pratica scaduta",
            "Reminder to the office: overdue",
        ),
        "escalation" => (
            "Segnalazione al responsabile: pratica scaduta",
            "Escalation to the head of office: overdue",
        ),
        other => (other, other),
    };
    c.t(it, en).to_owned()
}

fn message_of(
    c: &Chrome,
    link: &StaffLink,
    query: &str,
    m: &MessageView,
    files: &[AttachmentView],
) -> Msg {
    let outbound = m.direction == Direction::Out;
    let delivery = outbound.then(|| {
        let state = match m.delivery_state.as_deref() {
            Some("sent") => c.t("inviato", "sent").to_owned(),
            Some("queued") => c.t("in coda di invio", "queued").to_owned(),
            Some("failed") => c.t("non consegnato", "failed").to_owned(),
            Some(other) => other.to_owned(),
            None => c.t("non inviato", "not sent").to_owned(),
        };
        let mut line = format!("{}: {state}", c.t("Consegna", "Delivery"));
        if let Some(at) = m.sent_at {
            line.push_str(&format!(" {} {}", c.t("il", "on"), local_time(at)));
        }
        if let Some(n) = m.delivery_attempts.filter(|n| *n > 1) {
            line.push_str(&format!(" ({n} {})", c.t("tentativi", "attempts")));
        }
        if let Some(reply) = m.delivery_reply.as_deref().filter(|r| !r.is_empty()) {
            line.push_str(&format!(" — {reply}"));
        }
        line
    });
    let pec = pec_line(c, m);
    Msg {
        anchor: format!("m{}", m.message_id),
        role: role(c, m),
        direction: if outbound {
            c.t("Inviato", "Sent")
        } else {
            c.t("Ricevuto", "Received")
        }
        .to_owned(),
        from: m.from_addr.clone(),
        to: m.to_addrs.clone(),
        at: local_time(m.at),
        iso: rfc3339(m.at),
        subject: m.subject.clone(),
        text: m.text.clone(),
        // Sanitised at intake, as on the citizen page: a view never runs the sanitiser.
        html: m.html_safe.clone().filter(|h| !h.trim().is_empty()),
        html_withheld: m.html_withheld.is_some().then(|| {
            c.t(
                "Il messaggio aveva anche una versione HTML troppo grande o complessa per \
                 mostrarla in sicurezza: qui c'è il testo.",
                "The message also had an HTML version too large or complex to show safely: \
                 its text is shown here.",
            )
            .to_owned()
        }),
        delivery,
        pec,
        files: files
            .iter()
            .filter(|a| a.message_id == m.message_id)
            .map(|a| FileLink {
                href: format!(
                    "/staff/tickets/{}/attachments/{}?{query}",
                    link.reference, a.attachment_id
                ),
                filename: a.filename.clone(),
                size: human_size(u64::try_from(a.size).unwrap_or(0)),
                content_type: a.content_type.clone(),
            })
            .collect(),
    }
}

/// The PEC state of a message: its certification (in) or the provider's receipts (out).
fn pec_line(c: &Chrome, m: &MessageView) -> Option<String> {
    let mut parts = Vec::new();
    if let Some(state) = m.pec_state.as_deref() {
        let detail: Value = m
            .pec_detail
            .as_deref()
            .and_then(|d| serde_json::from_str(d).ok())
            .unwrap_or(Value::Null);
        let reason = detail.get("reason").and_then(Value::as_str).unwrap_or("");
        let to = detail
            .get("delivered_to")
            .and_then(Value::as_str)
            .unwrap_or("");
        let mut line = format!("PEC {state}");
        if !to.is_empty() {
            line.push_str(&format!(" — {to}"));
        }
        if !reason.is_empty() {
            line.push_str(&format!(" — {reason}"));
        }
        parts.push(line);
    }
    if let Some(at) = m.certified_at {
        parts.push(format!(
            "{} {}",
            c.t("data certificata", "certified time"),
            local_time(at)
        ));
    }
    if let Some(id) = m.pec_id.as_deref() {
        parts.push(format!("{} {id}", c.t("identificativo", "id")));
    }
    if let Some(sig) = m.signature.as_deref() {
        parts.push(format!(
            "{}: {sig}",
            c.t("firma del gestore", "provider signature")
        ));
    }
    (!parts.is_empty()).then(|| parts.join("; "))
}

/// What an event says, for staff (internal events included).
fn event_text(state: &AppState, c: &Chrome, e: &EventKind) -> String {
    let office = |slug: Option<&crate::domain::AreaSlug>| {
        slug.map(|s| area_name(state, s.as_str()))
            .unwrap_or_default()
    };
    match e {
        EventKind::Received(r) => format!(
            "{} {}",
            c.t("Ricevuta, assegnata a", "Received, assigned to"),
            office(r.area.as_ref())
        ),
        EventKind::Taken(d) => {
            let how = match (d.implied, d.via.as_str()) {
                (Some(true), _) => c.t(" (con la risposta)", " (by answering)"),
                (_, "web") => c.t(" (dalla pagina web)", " (from the web page)"),
                _ => c.t(" (per e-mail)", " (by email)"),
            };
            format!("{}{how}", c.t("Presa in carico", "Taken"))
        }
        EventKind::Reassigned(d) => format!(
            "{} {} → {}",
            c.t("Trasferita", "Moved"),
            office(d.from.as_ref()),
            if d.to_name.is_empty() {
                office(d.to.as_ref())
            } else {
                d.to_name.clone()
            }
        ),
        EventKind::Answered(_) => c
            .t("Risposta inviata al cittadino", "Answer sent")
            .to_owned(),
        EventKind::Resolved(_) => c.t("Chiusa (risolta)", "Closed (resolved)").to_owned(),
        EventKind::Reopened(_) => c
            .t("Riaperta dal cittadino", "Reopened by the citizen")
            .to_owned(),
        EventKind::AnswerHeld(d) => format!(
            "{}: {}",
            c.t("Risposta trattenuta, non inviata", "Answer held, not sent"),
            d.reason
        ),
        EventKind::Note(d) => format!("{}: {}", c.t("Nota interna", "Internal note"), d.text),
        EventKind::StaffReply(_) => c.t("Risposta del personale", "Staff reply").to_owned(),
        EventKind::FollowUp(_) => c
            .t("Nuovo messaggio del cittadino", "The citizen wrote again")
            .to_owned(),
        EventKind::KindChanged(d) => format!(
            "{}: {} → {}",
            c.t("Tipo cambiato", "Kind changed"),
            d.from,
            d.to
        ),
        EventKind::ReplyToChosen(d) => format!(
            "{}: {}",
            c.t("Risposte all'indirizzo", "Answers to"),
            d.reply_to
        ),
        EventKind::CommandError(d) => format!(
            "{}: {}",
            c.t("Comando non eseguito", "Command not carried out"),
            d.problem
        ),
        EventKind::StaffUnverified(d) => format!(
            "{}: {}",
            c.t(
                "Messaggio del personale non verificato",
                "Unverified staff mail"
            ),
            d.reason
        ),
        EventKind::Bounce(d) => format!(
            "{}: {}",
            c.t("Mancata consegna", "Not delivered"),
            d.diagnostic
                .as_deref()
                .or(d.status.as_deref())
                .unwrap_or("")
        ),
        EventKind::PecReceipt(d) => format!("{} {}", c.t("Ricevuta PEC", "PEC receipt"), d.receipt),
        EventKind::Reminder(d) => format!(
            "{} {} ({}: {})",
            c.t("Promemoria a", "Reminder to"),
            d.to.join(", "),
            c.t("scadenza", "due"),
            d.due
        ),
        EventKind::Escalation(d) => format!(
            "{} {} ({}: {})",
            c.t("Segnalata a", "Escalated to"),
            d.to.join(", "),
            c.t("scadenza", "due"),
            d.due
        ),
        other => other.kind().replace('_', " "),
    }
}

/// `GET /staff/tickets/{ref}/attachments/{id}?staff=…`: one file of the ticket, always as a
/// download (the same safe headers as the citizen page's download).
pub(super) async fn attachment(
    State(state): State<AppState>,
    v: Visitor,
    Path((reference, attachment_id)): Path<(String, String)>,
    query: Result<Query<LinkFields>, QueryRejection>,
) -> Result<Response, Error> {
    let Ok(Query(fields)) = query else {
        return Err(not_found(&state, &v));
    };
    let Some(link) = StaffLink::verify(&state, &reference, &fields) else {
        return Err(not_found(&state, &v));
    };
    let Ok(attachment_id) = attachment_id.parse::<i64>() else {
        return Err(not_found(&state, &v));
    };
    let Some(ticket) = state.store.ticket_by_ref(&link.reference).await? else {
        return Err(not_found(&state, &v));
    };
    if !state.cfg.is_staff_of(&link.staff, ticket.area.as_str()) {
        return Err(not_staff(&state, &v));
    }
    let TicketTimeline { attachments, .. } = state.store.ticket_timeline(ticket.ticket_id).await?;
    let Some(a) = attachments
        .iter()
        .find(|a| a.attachment_id == attachment_id)
    else {
        return Err(not_found(&state, &v));
    };
    let bytes = state.attachments.get(&a.sha256).await?;
    Ok(v.finish(crate::web::attachment_download(
        &a.filename,
        &a.content_type,
        bytes,
    )))
}
