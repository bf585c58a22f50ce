//! What a parsed mail is, decided without the database: a bounce of one of our messages,
//! automatic mail about a ticket, the office's answer, a staff mail that cannot be taken as
//! one, the citizen writing again, a new ticket, or quarantine with its reason.
//!
//! [`classify`] is pure: the store lookups it needs (which of our messages the mail answers,
//! the ticket its subject tag names) are made before, into [`Referenced`], and what the
//! [`Decision`] says is carried out after, in one transaction, by `Pipeline::apply`.
//! De-duplication (it needs the store at every step) and PEC receipts (recognised while
//! preparing) are settled before a mail gets here.

use std::collections::HashSet;

use crate::config::Config;
use crate::domain::{Direction, MessageKind, WEB_MAILBOX};
use crate::mail::auth;
use crate::mail::autoreply::AutoReason;
use crate::mail::parse::InboundMail;
use crate::mail::registration::{self, Registration};
use crate::mail::route::route;
use crate::store::{MessageTicket, OurMessage};

/// Where a mail came from, as far as the decision needs it.
#[derive(Debug, Clone, Copy)]
pub(super) struct Arrival<'a> {
    /// The mailbox it was stored under ([`WEB_MAILBOX`] for a report from the web form).
    pub mailbox: &'a str,
    /// The raw message: the comune's MTA's authentication results are read from it.
    pub bytes: &'a [u8],
    /// Whether it came by PEC (its sender certified by the provider).
    pub pec: bool,
}

/// What the store knows about the mail's references.
#[derive(Debug, Clone, Default)]
pub(super) struct Referenced {
    /// Our message the mail answers (signed Message-ID in its references, the provider's id
    /// of our certified mail) or, for a bounce, quotes.
    pub ours: Option<OurMessage>,
    /// The ticket the subject's tag names, when `ours` belongs to no ticket.
    pub tagged: Option<MessageTicket>,
}

/// The configuration the decision reads: staff lists, areas, `security.authserv_id`, and
/// our own addresses (the areas').
#[derive(Debug, Clone, Copy)]
pub(super) struct Rules<'a> {
    pub cfg: &'a Config,
    pub own_addresses: &'a HashSet<String>,
}

/// What to do with one mail.
#[derive(Debug, Clone)]
pub(super) enum Decision {
    /// A bounce of one of our messages: recorded on that message's ticket.
    Bounce {
        ours: Box<OurMessage>,
        ticket: Box<MessageTicket>,
    },
    /// Automatic mail (auto-reply, read receipt) or mail from one of our own addresses about
    /// a ticket: recorded on it as `kind`, with why it counts as automatic.
    Automatic {
        ticket: Box<MessageTicket>,
        kind: &'static str,
        reason: String,
    },
    /// Staff answering a notification of the ticket (or a colleague's answer copied to them,
    /// or the notice of their held answer): the office's answer. `answers` is that mail of
    /// ours: whether the reply came after a colleague's answer is judged against it.
    StaffReply {
        ticket: Box<MessageTicket>,
        answers: Box<OurMessage>,
    },
    /// Staff writing about the ticket, not taken as the office's answer, and why.
    UnverifiedStaff {
        ticket: Box<MessageTicket>,
        reason: String,
    },
    /// The ticket's citizen writing again.
    FollowUp { ticket: Box<MessageTicket> },
    /// A new ticket. `no_ack`: why nothing automatic goes back to the sender;
    /// `linked_to`: the reference of the (someone else's) ticket the mail is about.
    NewTicket {
        no_ack: Option<String>,
        linked_to: Option<String>,
    },
    /// A staff member of the addressed office registering a report received by phone, at
    /// the counter or by letter (`#registra`): a new ticket whose citizen is the person named.
    Register { registration: Box<Registration> },
    /// A staff member's `#registra` line written wrong: no ticket, the mail kept aside and
    /// its sender told the problem.
    RegistrationRefused { problem: String },
    /// Kept aside for an operator, with the reason.
    Quarantine(String),
}

/// Who is writing: the From address (for PEC, daticert's `mittente`, which the unwrapping
/// put into From). Reply-To is only a wish about where answers go: anyone can write a
/// victim's address there, so it never decides who the citizen is. Empty when From is
/// missing or not one valid address.
pub(super) fn sender(mail: &InboundMail) -> String {
    mail.from
        .as_ref()
        .map(|f| f.address.clone())
        .unwrap_or_default()
}

/// A non-delivery report, proper DSN or not.
pub(super) fn is_bounce(mail: &InboundMail, from_addr: &str) -> bool {
    mail.dsn.is_some() || looks_like_bounce(mail, from_addr)
}

/// Decides what `mail` is. Pure: everything it reads is in its arguments.
pub(super) fn classify(
    arrival: &Arrival<'_>,
    mail: &InboundMail,
    referenced: Referenced,
    rules: &Rules<'_>,
) -> Decision {
    let from_addr = sender(mail);
    let Referenced { ours, tagged } = referenced;
    let matched = ours.as_ref().and_then(|m| m.ticket.clone());
    // A bounce is matched to our message even without a usable From (some MTAs write a bare
    // `MAILER-DAEMON`); anything else without one is quarantined, since nobody may be
    // answered or recorded as its author.
    if is_bounce(mail, &from_addr) {
        return match (ours, matched) {
            (Some(ours), Some(t)) => Decision::Bounce {
                ours: Box::new(ours),
                ticket: Box::new(t),
            },
            _ => Decision::Quarantine(
                "delivery status notification (bounce) that matches none of our messages"
                    .to_owned(),
            ),
        };
    }
    if from_addr.is_empty() {
        return Decision::Quarantine(
            "no usable sender: From is missing or not one valid address".to_owned(),
        );
    }
    // A digest is about no one ticket (issue 14): an answer to it, a person's or an
    // out-of-office's, is no report of anybody's. Kept for an operator, never a ticket.
    if tagged.is_none() && ours.as_ref().is_some_and(|m| m.kind == MessageKind::Digest) {
        return Decision::Quarantine(
            "a reply to an office's daily digest (about no one ticket): not made into a \
             ticket; tickets are answered from their notification or staff page"
                .to_owned(),
        );
    }
    let is_own = rules.own_addresses.contains(&from_addr);
    // X-Auto-Response-Suppress asks us not to answer, but Outlook also puts it on mail a
    // person wrote: such a mail is handled as a person's, only without acknowledgment.
    let suppress_only = matches!(mail.auto, Some(AutoReason::AutoResponseSuppress(_)));
    let machine = mail.auto.is_some() && !suppress_only;
    if machine || is_own {
        let reason = match &mail.auto {
            Some(a) => a.describe(),
            None => format!("sent from our own address {from_addr}"),
        };
        // A multipart/report that is no DSN is a read receipt (MDN, RFC 8098).
        let kind = if matches!(mail.auto, Some(AutoReason::Dsn)) {
            "receipt"
        } else {
            "auto_reply"
        };
        return match matched {
            Some(t) => Decision::Automatic {
                ticket: Box::new(t),
                kind,
                reason,
            },
            None if is_own => Decision::Quarantine(format!(
                "{reason}: possible mail loop, not made into a ticket"
            )),
            None => Decision::NewTicket {
                no_ack: Some(reason),
                linked_to: None,
            },
        };
    }
    if ours.is_none() && tagged.is_none() {
        if let Some(decision) = registration_by_staff(arrival, mail, rules, &from_addr) {
            return decision;
        }
    }
    // Not answering a message of ours: a ticket tag in the subject still names a ticket.
    let via_reference = matched.is_some();
    let ticket = matched.or(tagged);
    let no_ack = mail
        .auto
        .as_ref()
        .map(|a| a.describe())
        .or_else(|| forged_from(rules.cfg, arrival, &from_addr));
    let Some(t) = ticket else {
        return Decision::NewTicket {
            no_ack,
            linked_to: None,
        };
    };
    if rules.cfg.is_any_staff(&from_addr) {
        // Our staff-side mail only: the citizen's ack or answer, forwarded by the citizen
        // or quoted, proves nothing about who is writing.
        let answers = ours
            .filter(|m| via_reference && m.kind.answerable_by_staff(Direction::Out))
            .map(Box::new);
        let refers_to_notification = answers.is_some();
        return match (
            why_unverified(rules.cfg, arrival, &from_addr, &t, refers_to_notification),
            answers,
        ) {
            (None, Some(answers)) => Decision::StaffReply {
                ticket: Box::new(t),
                answers,
            },
            (Some(reason), _) => Decision::UnverifiedStaff {
                ticket: Box::new(t),
                reason,
            },
            // why_unverified names the missing reference; kept for the type's sake.
            (None, None) => Decision::UnverifiedStaff {
                ticket: Box::new(t),
                reason: "the message does not answer a notification of this ticket".to_owned(),
            },
        };
    }
    if from_addr == t.citizen.as_str() {
        if let Some(why) = follow_up_unproven(rules.cfg, arrival, &from_addr) {
            // Not recorded on the ticket (its citizen did not demonstrably write it) and
            // not made a ticket of its own either: that ticket's citizen would be the
            // forged From, who would then be mailed and see it on their page. Kept for an
            // operator, with nothing sent to anyone.
            return Decision::Quarantine(format!(
                "follow-up on ticket {} not taken as its citizen's: {why}",
                t.reference
            ));
        }
        return Decision::FollowUp {
            ticket: Box::new(t),
        };
    }
    // Somebody else writing about a ticket: their own ticket, linked, never appended to
    // someone else's.
    Decision::NewTicket {
        no_ack,
        linked_to: Some(t.reference.to_string()),
    }
}

/// A new mail (it answers none of our messages and names no ticket) whose first line is
/// `#registra` / `#record`, written by someone who may register for the office it is
/// addressed to: staff of that area or of an admin area, and `security.authserv_id` set with
/// the comune's MTA reporting `dmarc=pass` for the sender's domain. There is no signed
/// reference to lean on here, so the sender and the MTA's verdict are the whole proof. Anyone else's `#registra` is `None`: an ordinary report, line included. By
/// PEC or from the web form it is ordinary too: staff register by writing to the area's
/// address from their own mailbox.
fn registration_by_staff(
    arrival: &Arrival<'_>,
    mail: &InboundMail,
    rules: &Rules<'_>,
    from_addr: &str,
) -> Option<Decision> {
    if arrival.pec || arrival.mailbox == WEB_MAILBOX || !registration::is_registration(&mail.text) {
        return None;
    }
    let cfg = rules.cfg;
    // The office it is written to, as a new ticket would be routed.
    let area = route(mail, &cfg.address_routes())
        .into_iter()
        .next()
        .map(|a| a.area)
        .or_else(|| cfg.mailbox(arrival.mailbox)?.default_area.clone())?;
    if !cfg.is_staff_of(from_addr, &area) {
        return None;
    }
    // A positive proof, never the mere absence of a failure: a registration names the
    // address that gets our acknowledgment (with the subject the sender chose), and no signed
    // Message-ID backs it. Without `authserv_id` nothing can prove the sender, so a staff
    // From alone registers nothing (a forged one would make us mail anyone).
    let authserv_id = cfg.security.authserv_id.as_deref()?;
    let domain = from_addr.rsplit_once('@').map(|(_, d)| d)?;
    if auth::dmarc(arrival.bytes, authserv_id, domain) != auth::Dmarc::Pass {
        return None;
    }
    Some(match registration::find(&mail.text)? {
        // The acknowledgment would go to our own mailbox: never a citizen.
        Ok(r)
            if r.citizen
                .as_ref()
                .is_some_and(|c| rules.own_addresses.contains(c.as_str())) =>
        {
            Decision::RegistrationRefused {
                problem: "l'indirizzo del cittadino è un indirizzo dell'ufficio / the \
                          citizen's address is one of the offices' addresses"
                    .to_owned(),
            }
        }
        Ok(r) => Decision::Register {
            registration: Box::new(r),
        },
        Err(problem) => Decision::RegistrationRefused {
            problem: problem.to_string(),
        },
    })
}

/// The display name of the area `slug` (the slug itself when unknown).
pub(super) fn area_name(cfg: &Config, slug: &str) -> String {
    cfg.area(slug)
        .map(|a| a.name.clone())
        .unwrap_or_else(|| slug.to_owned())
}

/// Why a staff member's mail about `t` cannot be taken as the office's answer, if so.
fn why_unverified(
    cfg: &Config,
    arrival: &Arrival<'_>,
    from_addr: &str,
    t: &MessageTicket,
    refers_to_notification: bool,
) -> Option<String> {
    if !cfg.is_staff_of(from_addr, t.area.as_str()) {
        let area = area_name(cfg, t.area.as_str());
        return Some(format!(
            "{from_addr} is not staff of the office now handling the ticket ({area})"
        ));
    }
    if !refers_to_notification {
        return Some(
            "the message does not answer a notification of this ticket (no signed \
             reference in In-Reply-To/References)"
                .to_owned(),
        );
    }
    if let Some(authserv_id) = &cfg.security.authserv_id {
        if let Some(failure) = auth::failed_authentication(arrival.bytes, authserv_id) {
            return Some(format!(
                "the comune's mail server reports failed authentication: {failure}"
            ));
        }
    }
    None
}

/// Why a follow-up from `from_addr` cannot be taken as the citizen's, if so: with
/// `security.authserv_id` set, the comune's MTA must show DMARC pass for the From domain
/// (or that the domain publishes no DMARC policy). A PEC's sender is certified by its
/// provider instead, and the comune's MTA does not receive PEC; a report from the web
/// page is From the signed-in citizen's verified address and never passed an MTA.
fn follow_up_unproven(cfg: &Config, arrival: &Arrival<'_>, from_addr: &str) -> Option<String> {
    let authserv_id = cfg.security.authserv_id.as_deref()?;
    if arrival.pec || arrival.mailbox == WEB_MAILBOX {
        return None;
    }
    let domain = from_addr.rsplit_once('@').map(|(_, d)| d).unwrap_or("");
    match auth::dmarc(arrival.bytes, authserv_id, domain) {
        auth::Dmarc::Pass | auth::Dmarc::NoPolicy => None,
        auth::Dmarc::Failed(result) => Some(format!(
            "the comune's mail server ({authserv_id}) reports {result} for {domain}"
        )),
        auth::Dmarc::Missing => Some(format!(
            "the comune's mail server ({authserv_id}) reports no DMARC result for {domain}"
        )),
    }
}

/// A reason to send nothing automatic to `from_addr`: the comune's MTA reports that the
/// From domain's DMARC check failed, so From is likely forged and an acknowledgment would
/// carry a stranger's text to whoever owns that address.
pub(super) fn forged_from(cfg: &Config, arrival: &Arrival<'_>, from_addr: &str) -> Option<String> {
    let authserv_id = cfg.security.authserv_id.as_deref()?;
    if arrival.pec || arrival.mailbox == WEB_MAILBOX {
        return None;
    }
    let domain = from_addr.rsplit_once('@').map(|(_, d)| d).unwrap_or("");
    match auth::dmarc(arrival.bytes, authserv_id, domain) {
        auth::Dmarc::Failed(result) => Some(format!(
            "the comune's mail server ({authserv_id}) reports {result} for {domain}: \
             From may be forged"
        )),
        _ => None,
    }
}

/// A non-delivery report that is not a proper DSN (old MTAs, some providers): automatic,
/// and from the mailer daemon or with an empty envelope sender.
pub(super) fn looks_like_bounce(mail: &InboundMail, from_addr: &str) -> bool {
    let local = from_addr.split('@').next().unwrap_or("");
    let daemon = matches!(local, "mailer-daemon" | "postmaster" | "mail-daemon");
    let null_sender = mail.return_path.as_deref() == Some("");
    daemon || (null_sender && mail.auto.is_some())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mail::parse;

    const CONFIG: &str = r#"
        [database]
        url = "sqlite://x.db"
        [storage]
        dir = "data"
        [security]
        secret = "0123456789abcdef0123456789abcdef"
        authserv_id = "mx.comune.test"
        [smtp]
        host = "127.0.0.1"
        port = 25
        tls = "none"
        [[mailbox]]
        name = "main"
        host = "127.0.0.1"
        port = 143
        tls = "none"
        username = "u"
        password = "p"
        [[area]]
        slug = "lavori-pubblici"
        name = "Lavori pubblici"
        addresses = ["lavori@comune.test"]
        staff = ["mario@comune.test"]
        [[area]]
        slug = "ambiente"
        name = "Ambiente"
        addresses = ["ambiente@comune.test"]
        staff = ["lucia@comune.test"]
        [[area]]
        slug = "segreteria"
        name = "Segreteria"
        addresses = ["segreteria@comune.test"]
        staff = ["capo@comune.test"]
        admin = true
    "#;

    /// Passing DMARC for the sender's domain, as the comune's MTA writes it.
    const DMARC_PASS: &str =
        "Authentication-Results: mx.comune.test; dmarc=pass header.from=example.test\r\n";

    fn decide(raw: &str, referenced: Referenced) -> Decision {
        let cfg = Config::from_toml_str(CONFIG).expect("test configuration");
        let own: HashSet<String> = cfg.address_routes().into_keys().collect();
        let mail = parse::parse(raw.as_bytes()).expect("test mail parses");
        let arrival = Arrival {
            mailbox: "main",
            bytes: raw.as_bytes(),
            pec: false,
        };
        classify(
            &arrival,
            &mail,
            referenced,
            &Rules {
                cfg: &cfg,
                own_addresses: &own,
            },
        )
    }

    fn ticket() -> MessageTicket {
        MessageTicket {
            ticket_id: 7,
            reference: "2026-000007".parse().expect("reference"),
            area: "lavori-pubblici".parse().expect("area"),
            citizen: "anna@example.test".parse().expect("citizen"),
            subject: "Buca".into(),
            status: "received".parse().expect("status"),
            kind: "segnalazione".parse().expect("kind"),
            pec_address: None,
            reply_to: None,
            reply_to_asked: None,
        }
    }

    fn ours(kind: &str) -> Referenced {
        Referenced {
            ours: Some(OurMessage {
                message_id: 70,
                kind: kind.parse().expect("kind"),
                to_addrs: "mario@comune.test".into(),
                ticket: Some(ticket()),
            }),
            tagged: None,
        }
    }

    fn tagged() -> Referenced {
        Referenced {
            ours: None,
            tagged: Some(ticket()),
        }
    }

    #[test]
    fn a_first_mail_from_a_citizen_is_a_new_ticket_with_an_acknowledgment() {
        let raw = format!(
            "{DMARC_PASS}From: anna@example.test\r\nTo: lavori@comune.test\r\n\
             Subject: Buca\r\n\r\nC'è una buca.\r\n"
        );
        assert!(matches!(
            decide(&raw, Referenced::default()),
            Decision::NewTicket {
                no_ack: None,
                linked_to: None
            }
        ));
    }

    #[test]
    fn a_bounce_of_none_of_our_messages_is_quarantined() {
        let raw = "From: MAILER-DAEMON@mx.example.test\r\nTo: lavori@comune.test\r\n\
                   Subject: Undelivered\r\n\r\nsorry\r\n";
        let Decision::Quarantine(reason) = decide(raw, Referenced::default()) else {
            panic!("not quarantined");
        };
        assert!(reason.contains("bounce"), "{reason}");
        assert!(matches!(decide(raw, ours("ack")), Decision::Bounce { .. }));
    }

    #[test]
    fn mail_without_a_usable_sender_is_quarantined() {
        let raw = "To: lavori@comune.test\r\nSubject: x\r\n\r\ntext\r\n";
        let Decision::Quarantine(reason) = decide(raw, Referenced::default()) else {
            panic!("not quarantined");
        };
        assert!(reason.contains("no usable sender"), "{reason}");
    }

    #[test]
    fn mail_from_our_own_address_is_a_possible_loop_unless_it_is_about_a_ticket() {
        let raw = "From: ambiente@comune.test\r\nTo: lavori@comune.test\r\n\
                   Subject: x\r\n\r\ntext\r\n";
        let Decision::Quarantine(reason) = decide(raw, Referenced::default()) else {
            panic!("not quarantined");
        };
        assert!(reason.contains("possible mail loop"), "{reason}");
        assert!(matches!(
            decide(raw, ours("ack")),
            Decision::Automatic {
                kind: "auto_reply",
                ..
            }
        ));
    }

    #[test]
    fn an_auto_reply_without_a_ticket_is_a_ticket_without_acknowledgment() {
        let raw = format!(
            "{DMARC_PASS}From: anna@example.test\r\nTo: lavori@comune.test\r\n\
             Auto-Submitted: auto-replied\r\nSubject: Fuori sede\r\n\r\nTorno lunedì.\r\n"
        );
        assert!(matches!(
            decide(&raw, Referenced::default()),
            Decision::NewTicket {
                no_ack: Some(_),
                linked_to: None
            }
        ));
    }

    #[test]
    fn staff_answering_a_notification_is_the_offices_answer_and_otherwise_is_not() {
        let raw = "From: mario@comune.test\r\nTo: lavori@comune.test\r\n\
                   Subject: Re: Buca\r\n\r\nRisolto.\r\n";
        assert!(matches!(
            decide(raw, ours("notification")),
            Decision::StaffReply { .. }
        ));
        let Decision::UnverifiedStaff { reason, .. } = decide(raw, tagged()) else {
            panic!("taken as the office's answer by its tag alone");
        };
        assert!(
            reason.contains("does not answer a notification"),
            "{reason}"
        );
        let other_office = raw.replace("mario@", "lucia@");
        let Decision::UnverifiedStaff { reason, .. } = decide(&other_office, ours("notification"))
        else {
            panic!("taken from staff of another office");
        };
        assert!(reason.contains("(Lavori pubblici)"), "{reason}");
    }

    #[test]
    fn staff_answering_a_colleague_copy_or_a_held_notice_is_the_offices_answer_never_the_ack() {
        let raw = "From: mario@comune.test\r\nTo: lavori@comune.test\r\n\
                   Subject: Re: Buca\r\n\r\nRisolto.\r\n";
        for kind in ["colleague_copy", "held_notice"] {
            let Decision::StaffReply { answers, .. } = decide(raw, ours(kind)) else {
                panic!("a reply to our {kind} not taken as the office's answer");
            };
            assert_eq!(answers.kind.as_str(), kind);
        }
        for kind in ["ack", "answer", "status", "notice"] {
            assert!(
                matches!(decide(raw, ours(kind)), Decision::UnverifiedStaff { .. }),
                "a reply to the {kind} taken as the office's answer"
            );
        }
    }

    #[test]
    fn a_reply_to_a_digest_is_kept_aside_never_made_a_ticket() {
        let raw = "From: mario@comune.test\r\nTo: lavori@comune.test\r\n\
                   Subject: Re: Riepilogo pratiche\r\n\r\nGrazie.\r\n";
        let mut digest = ours("digest");
        if let Some(m) = digest.ours.as_mut() {
            m.ticket = None;
        }
        let Decision::Quarantine(reason) = decide(raw, digest) else {
            panic!("a reply to a digest made into something else");
        };
        assert!(reason.contains("daily digest"), "{reason}");
    }

    #[test]
    fn the_citizen_writing_again_is_a_follow_up_only_with_dmarc_pass() {
        let raw = format!(
            "{DMARC_PASS}From: anna@example.test\r\nTo: lavori@comune.test\r\n\
             Subject: Re: Buca\r\n\r\nAncora lì.\r\n"
        );
        assert!(matches!(decide(&raw, tagged()), Decision::FollowUp { .. }));
        let unproven = raw.replace(DMARC_PASS, "");
        let Decision::Quarantine(reason) = decide(&unproven, tagged()) else {
            panic!("follow-up taken without DMARC");
        };
        assert!(reason.contains("no DMARC result"), "{reason}");
    }

    #[test]
    fn somebody_else_writing_about_a_ticket_gets_their_own_linked_ticket() {
        let raw = "Authentication-Results: mx.comune.test; dmarc=pass header.from=other.test\r\n\
                   From: bruno@other.test\r\nTo: lavori@comune.test\r\n\
                   Subject: [Ticket 2026-000007] anche io\r\n\r\nStessa buca.\r\n";
        let Decision::NewTicket { no_ack, linked_to } = decide(raw, tagged()) else {
            panic!("not a new ticket");
        };
        assert_eq!(no_ack, None);
        assert_eq!(linked_to.as_deref(), Some("2026-000007"));
    }

    /// A staff member's new mail to the office's address, the MTA's verdict on top.
    fn registering(from: &str, auth: &str, first_line: &str) -> String {
        format!(
            "Authentication-Results: mx.comune.test; {auth}\r\nFrom: {from}\r\n\
             To: lavori@comune.test\r\nSubject: Buca in via Roma\r\n\r\n\
             {first_line}\r\n\r\nBuca profonda davanti al civico 3.\r\n"
        )
    }

    const STAFF_PASS: &str = "dkim=pass header.d=comune.test; dmarc=pass header.from=comune.test";

    #[test]
    fn staff_of_the_office_or_of_an_admin_area_register_a_report_for_the_citizen() {
        for staff in ["mario@comune.test", "capo@comune.test"] {
            let raw = registering(
                staff,
                STAFF_PASS,
                "#registra telefono anna@example.test Anna Bianchi",
            );
            let Decision::Register { registration } = decide(&raw, Referenced::default()) else {
                panic!("{staff}: not taken as a registration");
            };
            assert_eq!(registration.channel, crate::domain::Channel::Phone);
            assert_eq!(
                registration.citizen.as_ref().map(|c| c.as_str()),
                Some("anna@example.test")
            );
            assert_eq!(registration.name.as_deref(), Some("Anna Bianchi"));
            assert_eq!(registration.body, "Buca profonda davanti al civico 3.");
        }
    }

    #[test]
    fn anyone_elses_registration_line_is_an_ordinary_report() {
        let line = "#registra sportello - Mario Rossi";
        // Staff of another office, a citizen, and the office's own staff whose mail the
        // comune's MTA found forged.
        for raw in [
            registering("lucia@comune.test", STAFF_PASS, line),
            registering(
                "anna@example.test",
                "dmarc=pass header.from=example.test",
                line,
            ),
            registering(
                "mario@comune.test",
                "dkim=fail header.d=comune.test; dmarc=fail header.from=comune.test",
                line,
            ),
            // No failure is not a proof: no DMARC result, or a domain without a policy.
            registering(
                "mario@comune.test",
                "spf=pass smtp.mailfrom=comune.test",
                line,
            ),
            registering(
                "mario@comune.test",
                "dmarc=none header.from=comune.test",
                line,
            ),
        ] {
            assert!(
                matches!(
                    decide(&raw, Referenced::default()),
                    Decision::NewTicket {
                        linked_to: None,
                        ..
                    }
                ),
                "{raw}"
            );
        }
    }

    #[test]
    fn a_registration_line_in_a_reply_about_a_ticket_is_no_registration() {
        let raw = registering("mario@comune.test", STAFF_PASS, "#registra telefono - Anna");
        assert!(matches!(
            decide(&raw, ours("notification")),
            Decision::StaffReply { .. }
        ));
        assert!(matches!(
            decide(&raw, tagged()),
            Decision::UnverifiedStaff { .. }
        ));
    }

    #[test]
    fn a_bad_registration_line_from_staff_is_refused_with_its_problem() {
        for (line, expected) in [
            ("#registra fax anna@example.test Anna", "fax"),
            ("#registra telefono anna@ Anna", "anna@"),
            ("#record counter -", "name"),
            (
                "#registra telefono ambiente@comune.test Anna",
                "offices' addresses",
            ),
        ] {
            let raw = registering("mario@comune.test", STAFF_PASS, line);
            let Decision::RegistrationRefused { problem } = decide(&raw, Referenced::default())
            else {
                panic!("{line}: not refused");
            };
            assert!(problem.contains(expected), "{line}: {problem}");
        }
    }
}
