//! Commands at the top of a staff reply: `#presa`, `#assegna AREA`, `#tipo KIND`, `#nota`,
//! `#chiudi`, `#rispondi-a`, `#invia` (and their English words). Pure parsing; what they do is the pipeline's business.
//!
//! Commands are the lines that start with `#` before any other text (blank lines between
//! them are fine); the first line that is not a command starts the body. Words are
//! case-insensitive. `#nota` and `#chiudi` may carry text on their own line, which comes
//! before the body.

/// One command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// `#presa` / `#take`: the office takes the ticket.
    Take,
    /// `#assegna AREA` / `#assign AREA`: move to another area (slug or name, as written).
    Assign(String),
    /// `#tipo KIND` / `#kind KIND`.
    Kind(String),
    /// `#nota` / `#note`: internal note; the text on the line, if any.
    Note(String),
    /// `#chiudi` / `#close`: final answer; the text on the line, if any.
    Close(String),
    /// `#rispondi-a` / `#reply-to`: from now on, mail to the citizen goes to the Reply-To
    /// address their report asked for. Takes no address: staff can only confirm the one
    /// the citizen gave, never type in a new recipient.
    AnswerAtReplyTo,
    /// `#invia` / `#send`: in a reply to the notice of an answer held because a colleague
    /// answered first, send the held answer anyway (exactly as it was written, once).
    Send,
    /// A `#word` we do not know: the whole line, to quote back to the sender.
    Unknown(String),
}

/// A staff reply split into its commands and its body.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct StaffReply {
    pub commands: Vec<Command>,
    /// What follows the command lines, trimmed.
    pub body: String,
}

impl StaffReply {
    /// The note or closing text: the text on the command line, then the body.
    pub fn text_with(&self, inline: &str) -> String {
        match (inline.trim().is_empty(), self.body.is_empty()) {
            (true, _) => self.body.clone(),
            (false, true) => inline.trim().to_owned(),
            (false, false) => format!("{}\n\n{}", inline.trim(), self.body),
        }
    }

    pub fn has(&self, pred: impl Fn(&Command) -> bool) -> bool {
        self.commands.iter().any(pred)
    }
}

/// Splits `text` (already stripped of quotes) into commands and body.
pub fn parse_staff_reply(text: &str) -> StaffReply {
    let mut commands = Vec::new();
    let mut body_start = None;
    let lines: Vec<&str> = text.lines().collect();
    for (i, line) in lines.iter().enumerate() {
        let t = line.trim();
        if t.is_empty() {
            continue;
        }
        match t.strip_prefix('#') {
            Some(rest) if rest.chars().next().is_some_and(|c| c.is_alphabetic()) => {
                commands.push(parse_command(rest, t));
            }
            _ => {
                body_start = Some(i);
                break;
            }
        }
    }
    let body = match body_start {
        Some(i) => lines
            .get(i..)
            .unwrap_or_default()
            .join("\n")
            .trim()
            .to_owned(),
        None => String::new(),
    };
    StaffReply { commands, body }
}

fn parse_command(rest: &str, whole: &str) -> Command {
    let (word, arg) = match rest.split_once(char::is_whitespace) {
        Some((w, a)) => (w, a.trim()),
        None => (rest, ""),
    };
    // Tolerate "#presa." or "#assegna: ambiente" as people type them.
    let word = word.trim_end_matches([':', '.', ',']).to_lowercase();
    let arg = arg.trim_start_matches(':').trim().to_owned();
    match word.as_str() {
        "presa" | "prendo" | "take" => Command::Take,
        "assegna" | "assign" if !arg.is_empty() => Command::Assign(arg),
        "tipo" | "kind" if !arg.is_empty() => Command::Kind(arg),
        "nota" | "note" => Command::Note(arg),
        "chiudi" | "close" => Command::Close(arg),
        "rispondi-a" | "reply-to" if arg.is_empty() => Command::AnswerAtReplyTo,
        "invia" | "send" => Command::Send,
        _ => Command::Unknown(whole.to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_at_the_top_are_read_and_the_rest_is_the_body() {
        let r = parse_staff_reply(
            "#presa\n#Assegna ambiente\n\nBuongiorno,\nabbiamo visto.\n#nota non è un comando qui",
        );
        assert_eq!(
            r.commands,
            vec![Command::Take, Command::Assign("ambiente".into())]
        );
        assert_eq!(
            r.body,
            "Buongiorno,\nabbiamo visto.\n#nota non è un comando qui"
        );
    }

    #[test]
    fn english_words_and_inline_text_work() {
        let r = parse_staff_reply("#CLOSE Fixed on Monday.\nThanks for the report.");
        assert_eq!(r.commands, vec![Command::Close("Fixed on Monday.".into())]);
        assert_eq!(
            r.text_with("Fixed on Monday."),
            "Fixed on Monday.\n\nThanks for the report."
        );
        let r = parse_staff_reply("#note call the contractor");
        assert_eq!(
            r.commands,
            vec![Command::Note("call the contractor".into())]
        );
        assert_eq!(r.body, "");
        assert_eq!(
            parse_staff_reply("#kind reclamo").commands,
            vec![Command::Kind("reclamo".into())]
        );
    }

    #[test]
    fn unknown_commands_and_bare_assign_are_reported_as_unknown() {
        let r = parse_staff_reply("#urgente\nTesto");
        assert_eq!(r.commands, vec![Command::Unknown("#urgente".into())]);
        assert_eq!(
            parse_staff_reply("#assegna").commands,
            vec![Command::Unknown("#assegna".into())]
        );
    }

    #[test]
    fn answering_at_the_asked_reply_to_takes_no_address() {
        assert_eq!(
            parse_staff_reply("#rispondi-a\nBuongiorno").commands,
            vec![Command::AnswerAtReplyTo]
        );
        assert_eq!(
            parse_staff_reply("#Reply-To:").commands,
            vec![Command::AnswerAtReplyTo]
        );
        assert_eq!(
            parse_staff_reply("#reply-to other@x.it").commands,
            vec![Command::Unknown("#reply-to other@x.it".into())]
        );
    }

    #[test]
    fn send_is_read_in_both_languages_whatever_follows_it() {
        assert_eq!(parse_staff_reply("#invia").commands, vec![Command::Send]);
        assert_eq!(
            parse_staff_reply("#Send.\n\nthanks").commands,
            vec![Command::Send]
        );
        assert_eq!(
            parse_staff_reply("#INVIA ora").commands,
            vec![Command::Send]
        );
    }

    #[test]
    fn a_plain_reply_has_no_commands_and_hash_numbers_are_text() {
        let r = parse_staff_reply("Buongiorno, la buca è stata chiusa.");
        assert!(r.commands.is_empty());
        assert_eq!(r.body, "Buongiorno, la buca è stata chiusa.");
        let r = parse_staff_reply("#1 priorità per noi");
        assert!(r.commands.is_empty());
    }
}
