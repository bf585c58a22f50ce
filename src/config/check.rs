//! Reading the file so that every mistake is named at once: syntax, wrong types, unknown and
//! missing keys, and the semantic checks of [`Config::problems`], each with its key path
//! (`mailbox[1].port`) and line (docs/design-notes.md, "A configuration that says everything
//! at once").
//!
//! serde stops at the first error of a value, so one deserialization names one mistake. Here
//! the merged tree (file + environment) is deserialized again and again: after each error the
//! bad key is removed (an unknown key, or a bad value whose field has a default) or replaced by
//! a placeholder of the right shape (a required field), until the tree deserializes. The
//! semantic checks then run on that repaired configuration, and whatever they say about a key
//! already reported (or repaired) is dropped: it would be about the placeholder, not the file.
//! The repaired configuration is never used to run anything: a file with errors is refused.
//! A syntax error stops everything: without a tree there is nothing else to check.

use std::collections::HashSet;

use figment::error::Kind;
use figment::value::{Dict, Value};
use figment::Figment;

use super::{Config, Problem, Severity};

/// Repairs before giving up: far more than a real file has mistakes, and a bound on the work
/// a hostile file can cause (each round deserializes the whole tree once).
const MAX_ROUNDS: usize = 200;

/// The outcome of reading a configuration: every problem found and, when it could be built,
/// the configuration (only usable when no problem is an error).
#[derive(Debug)]
pub struct Checked {
    /// `None` unless the file (with the environment) was read without a syntax, type or key
    /// error; semantic errors may remain (see [`Config::validate`]).
    pub config: Option<Config>,
    /// Parse and semantic problems, errors first, each with its line when known.
    pub problems: Vec<Problem>,
}

impl Checked {
    /// True if any problem is an error.
    pub fn has_errors(&self) -> bool {
        self.problems.iter().any(|p| p.severity == Severity::Error)
    }

    /// The configuration, or every error as one [`super::ConfigError::Invalid`] message.
    pub fn into_result(self) -> Result<Config, super::ConfigError> {
        match self.config {
            Some(config) if !self.has_errors() => Ok(config),
            _ => {
                let errors: Vec<String> = self
                    .problems
                    .iter()
                    .filter(|p| p.severity == Severity::Error)
                    .map(|p| p.to_string())
                    .collect();
                Err(super::ConfigError::Invalid(errors.join("\n")))
            }
        }
    }
}

/// Checks the TOML `text` merged with `figment`'s other providers (the environment).
pub(super) fn check(text: &str, figment: Figment) -> Checked {
    let doc = match toml_edit::ImDocument::parse(text) {
        Ok(doc) => doc,
        Err(e) => {
            let line = e.span().map(|s| line_at(text, s.start));
            return Checked {
                config: None,
                problems: vec![Problem {
                    severity: Severity::Error,
                    key: "syntax".into(),
                    line,
                    message: e.message().trim().to_owned(),
                }],
            };
        }
    };
    let env_keys: HashSet<String> = super::env_provider()
        .iter()
        .map(|(k, _)| k.as_str().to_lowercase())
        .collect();
    let locate = |mut p: Problem| {
        match env_keys
            .iter()
            .find(|k| p.key == **k || p.key.starts_with(&format!("{k}.")))
        {
            Some(k) => {
                p.message.push_str(&format!(
                    " (set by the environment: TICKETGATE__{})",
                    k.to_uppercase().replace('.', "__")
                ));
            }
            None => p.line = line_of(&doc, text, &p.key),
        }
        p
    };

    let mut tree = match figment.extract::<Value>() {
        Ok(tree) => tree,
        Err(e) => {
            let problems = e
                .into_iter()
                .map(|e| Problem {
                    severity: Severity::Error,
                    key: key_of(&e.path),
                    line: None,
                    message: e.kind.to_string(),
                })
                .map(locate)
                .collect();
            return Checked {
                config: None,
                problems,
            };
        }
    };

    let mut problems = Vec::new();
    // Keys reported or replaced: semantic findings under them are about our repairs.
    let mut touched: Vec<String> = Vec::new();
    // Paths whose bad value was removed by us: a "missing" for them is no news.
    let mut removed: HashSet<Vec<String>> = HashSet::new();
    let mut config = None;
    for _ in 0..MAX_ROUNDS {
        let e = match tree.deserialize::<Config>() {
            Ok(c) => {
                config = Some(c);
                break;
            }
            Err(e) => e,
        };
        let mut report = |path: &[String], message: String| {
            let key = key_of(path);
            if !touched.iter().any(|t| under(&key, t)) {
                problems.push(Problem {
                    severity: Severity::Error,
                    key: key.clone(),
                    line: None,
                    message,
                });
            }
            touched.push(key);
        };
        let repaired = match &e.kind {
            Kind::UnknownField(name, expected) => {
                report(
                    &e.path,
                    format!(
                        "unknown key {name:?}; expected one of: {}",
                        expected.join(", ")
                    ),
                );
                remove(&mut tree, &e.path)
            }
            Kind::MissingField(name) => {
                let mut path = e.path.clone();
                path.push(name.to_string());
                if !removed.contains(&path) {
                    report(&path, "missing".into());
                }
                touched.push(key_of(&path));
                match placeholder(&path) {
                    Some(value) => set(&mut tree, &path, value),
                    None => false,
                }
            }
            kind => {
                report(&e.path, kind.to_string());
                let in_array = e.path.last().is_some_and(|s| s.parse::<usize>().is_ok());
                if in_array {
                    placeholder(&e.path).is_some_and(|v| set(&mut tree, &e.path, v))
                } else {
                    removed.insert(e.path.clone()) && remove(&mut tree, &e.path)
                }
            }
        };
        if !repaired {
            break;
        }
    }

    let checked_semantics = config.is_some();
    if let Some(cfg) = &config {
        problems.extend(
            cfg.problems()
                .into_iter()
                .filter(|p| !touched.iter().any(|t| under(&p.key, t))),
        );
    }
    // A configuration repaired with placeholders must never run anything.
    if !touched.is_empty() {
        config = None;
    }
    if !checked_semantics {
        problems.push(Problem {
            severity: Severity::Error,
            key: "file".into(),
            line: None,
            message: "the other checks could not run: fix the errors above first".into(),
        });
    }
    let mut problems: Vec<Problem> = problems.into_iter().map(locate).collect();
    // Errors first, then in file order.
    problems.sort_by_key(|p| (p.severity != Severity::Error, p.line.unwrap_or(usize::MAX)));
    Checked { config, problems }
}

/// True if `key` is `prefix` or a key inside it (`mailbox[1]` holds `mailbox[1].port`).
fn under(key: &str, prefix: &str) -> bool {
    key == prefix
        || key
            .strip_prefix(prefix)
            .is_some_and(|rest| rest.starts_with('.') || rest.starts_with('['))
}

/// `["mailbox", "1", "port"]` → `mailbox[1].port`.
fn key_of(path: &[String]) -> String {
    let mut key = String::new();
    for seg in path {
        if seg.parse::<usize>().is_ok() {
            key.push_str(&format!("[{seg}]"));
        } else {
            if !key.is_empty() {
                key.push('.');
            }
            key.push_str(seg);
        }
    }
    key
}

/// The inverse of [`key_of`].
fn path_of(key: &str) -> Vec<String> {
    let mut path = Vec::new();
    for part in key.split('.') {
        let mut pieces = part.split('[');
        if let Some(name) = pieces.next() {
            if !name.is_empty() {
                path.push(name.to_owned());
            }
        }
        for index in pieces {
            path.push(index.trim_end_matches(']').to_owned());
        }
    }
    path
}

/// A value of the right shape for a required key, so that the rest can be checked. Strings
/// are unique per path, so that two placeholders never collide (a duplicate slug or name).
fn placeholder(path: &[String]) -> Option<Value> {
    let last = path.last()?;
    let parent = path.len().checked_sub(2).and_then(|i| path.get(i));
    let string = || Value::from(format!("placeholder-{}", path.join("-")).as_str());
    Some(if last.parse::<usize>().is_ok() {
        match parent.map(String::as_str) {
            Some("mailbox" | "area") => Value::from(Dict::new()),
            Some("addresses" | "staff") => string(),
            _ => return None,
        }
    } else {
        match last.as_str() {
            "database" | "storage" | "security" | "smtp" => Value::from(Dict::new()),
            "port" => Value::from(1u16),
            "tls" => Value::from("tls"),
            "addresses" => Value::from(Vec::<Value>::new()),
            "url" => Value::from("sqlite::memory:"),
            "host" | "name" | "slug" | "username" | "password" | "dir" | "address" | "kind" => {
                string()
            }
            _ => return None,
        }
    })
}

fn slot<'a>(tree: &'a mut Value, path: &[String]) -> Option<&'a mut Value> {
    let mut here = tree;
    for seg in path {
        here = match here {
            Value::Dict(_, dict) => dict.get_mut(seg)?,
            Value::Array(_, items) => items.get_mut(seg.parse::<usize>().ok()?)?,
            _ => return None,
        };
    }
    Some(here)
}

/// Removes the key at `path`; false if there is none (nothing was repaired).
fn remove(tree: &mut Value, path: &[String]) -> bool {
    let Some((last, parent)) = path.split_last() else {
        return false;
    };
    match slot(tree, parent) {
        Some(Value::Dict(_, dict)) => dict.remove(last).is_some(),
        _ => false,
    }
}

/// Sets the key or array element at `path`; false if its parent is not there.
fn set(tree: &mut Value, path: &[String], value: Value) -> bool {
    let Some((last, parent)) = path.split_last() else {
        return false;
    };
    match slot(tree, parent) {
        Some(Value::Dict(_, dict)) => {
            dict.insert(last.clone(), value);
            true
        }
        Some(Value::Array(_, items)) => {
            match last.parse::<usize>().ok().and_then(|i| items.get_mut(i)) {
                Some(item) => {
                    *item = value;
                    true
                }
                None => false,
            }
        }
        _ => false,
    }
}

/// 1-based line of byte `offset` in `text`.
fn line_at(text: &str, offset: usize) -> usize {
    let end = offset.min(text.len());
    text.as_bytes()
        .get(..end)
        .map(|b| b.iter().filter(|&&c| c == b'\n').count())
        .unwrap_or(0)
        + 1
}

/// A node of the parsed document while walking a key path.
#[derive(Clone, Copy)]
enum Node<'a> {
    Item(&'a toml_edit::Item),
    Value(&'a toml_edit::Value),
    Table(&'a toml_edit::Table),
}

/// The line of `key` in the file: of the key itself, or of the deepest part of its path that
/// is there (the table a missing key belongs in).
fn line_of(doc: &toml_edit::ImDocument<&str>, text: &str, key: &str) -> Option<usize> {
    let mut node = Node::Table(doc.as_table());
    let mut best = None;
    for seg in path_of(key) {
        let next = match (node, seg.parse::<usize>()) {
            (Node::Table(t), _) => {
                if let Some(k) = t.key(&seg).and_then(|k| k.span()) {
                    best = Some(k.start);
                }
                t.get(&seg).map(Node::Item)
            }
            (Node::Item(toml_edit::Item::Table(t)), _) => {
                if let Some(k) = t.key(&seg).and_then(|k| k.span()) {
                    best = Some(k.start);
                }
                t.get(&seg).map(Node::Item)
            }
            (Node::Item(toml_edit::Item::ArrayOfTables(a)), Ok(i)) => a.get(i).map(Node::Table),
            (Node::Item(toml_edit::Item::Value(v)), _) | (Node::Value(v), _) => {
                match (v, seg.parse::<usize>()) {
                    (toml_edit::Value::Array(a), Ok(i)) => a.get(i).map(Node::Value),
                    (toml_edit::Value::InlineTable(t), _) => {
                        if let Some(k) = t.key(&seg).and_then(|k| k.span()) {
                            best = Some(k.start);
                        }
                        t.get(&seg).map(Node::Value)
                    }
                    _ => None,
                }
            }
            _ => None,
        };
        let Some(next) = next else { break };
        let span = match next {
            Node::Item(i) => i.span(),
            Node::Value(v) => v.span(),
            Node::Table(t) => t.span(),
        };
        if let Some(s) = span {
            best = Some(s.start);
        }
        node = next;
    }
    best.map(|offset| line_at(text, offset))
}
