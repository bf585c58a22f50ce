//! What `/healthz` reports about the mail side: each mailbox poller's state (standing by,
//! connected, idling, backing off with its last error) and whether its folders can be used.
//!
//! Pollers write here as they go; the web server reads a snapshot. Process-wide (like the
//! metrics registry) so that no poller needs a handle threaded through to it: one `serve`
//! runs per process, and tests that build several gateways in one process name their
//! mailboxes apart.

use std::collections::BTreeMap;
use std::sync::{Mutex, OnceLock};

use crate::domain::now_millis;

/// Where a mailbox poller is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MailboxPhase {
    /// Started, not yet connected.
    Starting,
    /// Another instance holds the mailbox's lock; this one takes over when it dies.
    StandingBy,
    /// Logged in and syncing or fetching.
    Connected,
    /// Logged in, waiting for new mail (IDLE or between polls).
    Idle,
    /// The last attempt failed; waiting before the next.
    BackingOff,
}

/// One mailbox as `/healthz` shows it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct MailboxReport {
    pub name: String,
    pub phase: MailboxPhase,
    /// The last connection error, while the poller is failing.
    pub last_error: Option<String>,
    /// Unix millis since when the poller has been failing (no successful sync since).
    pub failing_since: Option<i64>,
    /// A folder the poller cannot use (e.g. `processed_folder`), with the server's answer.
    pub folder_problem: Option<String>,
}

fn registry() -> &'static Mutex<BTreeMap<String, MailboxReport>> {
    static REGISTRY: OnceLock<Mutex<BTreeMap<String, MailboxReport>>> = OnceLock::new();
    REGISTRY.get_or_init(|| Mutex::new(BTreeMap::new()))
}

fn update(name: &str, f: impl FnOnce(&mut MailboxReport)) {
    // A poisoned lock only means a panic elsewhere mid-update; the data is still usable.
    let mut map = registry().lock().unwrap_or_else(|e| e.into_inner());
    let entry = map.entry(name.to_owned()).or_insert_with(|| MailboxReport {
        name: name.to_owned(),
        phase: MailboxPhase::Starting,
        last_error: None,
        failing_since: None,
        folder_problem: None,
    });
    f(entry);
}

/// Records the phase of `mailbox`. Reaching `Connected` or `Idle` ends a failure.
pub fn set_phase(mailbox: &str, phase: MailboxPhase) {
    update(mailbox, |r| {
        r.phase = phase;
        if matches!(phase, MailboxPhase::Connected | MailboxPhase::Idle) {
            r.last_error = None;
            r.failing_since = None;
        }
    });
}

/// Records a failed attempt: the poller backs off with `error`.
pub fn set_failing(mailbox: &str, error: &str) {
    let now = now_millis();
    update(mailbox, |r| {
        r.phase = MailboxPhase::BackingOff;
        r.last_error = Some(error.to_owned());
        r.failing_since.get_or_insert(now);
    });
}

/// Records that a folder of `mailbox` cannot be used (`None`: it can again).
pub fn set_folder_problem(mailbox: &str, problem: Option<String>) {
    update(mailbox, |r| r.folder_problem = problem);
}

/// Every mailbox known so far, by name.
pub fn snapshot() -> Vec<MailboxReport> {
    let map = registry().lock().unwrap_or_else(|e| e.into_inner());
    map.values().cloned().collect()
}

/// Records that another instance holds the lock of `mailbox` (several instances on
/// PostgreSQL): polling it is that instance's job, so a failure this one had before is no
/// longer this one's to report.
pub fn set_standing_by(mailbox: &str) {
    update(mailbox, |r| {
        r.phase = MailboxPhase::StandingBy;
        r.last_error = None;
        r.failing_since = None;
    });
}

/// The reports of the mailboxes named in `names`, in that order; a mailbox whose poller
/// has not reported yet is `Starting`. Other names in the registry (another gateway built in
/// the same test process) are left out.
pub fn snapshot_of<'a>(names: impl IntoIterator<Item = &'a str>) -> Vec<MailboxReport> {
    let map = registry().lock().unwrap_or_else(|e| e.into_inner());
    names
        .into_iter()
        .map(|name| {
            map.get(name).cloned().unwrap_or_else(|| MailboxReport {
                name: name.to_owned(),
                phase: MailboxPhase::Starting,
                last_error: None,
                failing_since: None,
                folder_problem: None,
            })
        })
        .collect()
}

/// The overall state `/healthz` answers with, worst last.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Everything works.
    Ok,
    /// Mail becomes tickets, but something needs the operator (a folder that cannot be
    /// used, a mailbox failing for less than the threshold): HTTP 200.
    Degraded,
    /// A mailbox has been failing for longer than the threshold, or the database is
    /// unreachable: HTTP 503, so a load balancer or a monitor acts.
    Unavailable,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Ok => "ok",
            Verdict::Degraded => "degraded",
            Verdict::Unavailable => "unavailable",
        }
    }
}

/// How long `report` has been failing at `now` (millis), if it is.
pub fn failing_for_millis(report: &MailboxReport, now: i64) -> Option<i64> {
    report
        .failing_since
        .map(|since| now.saturating_sub(since).max(0))
}

/// What one mailbox contributes to the verdict: failing for longer than `threshold_millis`
/// is unavailable; failing for less, or a folder problem, is degraded.
pub fn verdict_of(report: &MailboxReport, threshold_millis: i64, now: i64) -> Verdict {
    match failing_for_millis(report, now) {
        Some(age) if age >= threshold_millis => Verdict::Unavailable,
        Some(_) => Verdict::Degraded,
        None if report.folder_problem.is_some() => Verdict::Degraded,
        None => Verdict::Ok,
    }
}

/// The current time as the registry records it (unix millis).
pub fn now() -> i64 {
    now_millis()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(name: &str) -> MailboxReport {
        snapshot()
            .into_iter()
            .find(|r| r.name == name)
            .expect("known")
    }

    #[test]
    fn a_failure_is_remembered_until_the_mailbox_is_connected_again() {
        let name = "health-test-failure";
        set_phase(name, MailboxPhase::Connected);
        set_failing(name, "connection refused");
        let first = report(name).failing_since.expect("failing");
        set_failing(name, "connection refused again");
        let r = report(name);
        assert_eq!(r.phase, MailboxPhase::BackingOff);
        assert_eq!(
            r.failing_since,
            Some(first),
            "the first failure's time is kept"
        );
        assert_eq!(r.last_error.as_deref(), Some("connection refused again"));
        set_phase(name, MailboxPhase::Idle);
        let r = report(name);
        assert_eq!((r.last_error, r.failing_since), (None, None));
    }

    #[test]
    fn a_folder_problem_is_independent_of_the_connection() {
        let name = "health-test-folder";
        set_folder_problem(name, Some("Processed: NO Permission denied".into()));
        set_phase(name, MailboxPhase::Idle);
        assert!(report(name).folder_problem.is_some());
        set_folder_problem(name, None);
        assert!(report(name).folder_problem.is_none());
    }

    fn failing(since: Option<i64>, folder: Option<&str>) -> MailboxReport {
        MailboxReport {
            name: "m".into(),
            phase: if since.is_some() {
                MailboxPhase::BackingOff
            } else {
                MailboxPhase::Idle
            },
            last_error: since.map(|_| "connection refused".into()),
            failing_since: since,
            folder_problem: folder.map(str::to_owned),
        }
    }

    #[test]
    fn a_mailbox_is_unavailable_only_once_it_has_failed_for_the_whole_threshold() {
        let now = 1_000_000;
        assert_eq!(verdict_of(&failing(None, None), 300_000, now), Verdict::Ok);
        assert_eq!(
            verdict_of(&failing(Some(now - 299_999), None), 300_000, now),
            Verdict::Degraded
        );
        assert_eq!(
            verdict_of(&failing(Some(now - 300_000), None), 300_000, now),
            Verdict::Unavailable
        );
        assert_eq!(
            verdict_of(&failing(None, Some("Processed: NO")), 300_000, now),
            Verdict::Degraded,
            "a folder problem alone never takes the service down"
        );
        // A clock that went backwards never makes a negative age.
        assert_eq!(
            failing_for_millis(&failing(Some(now + 5), None), now),
            Some(0)
        );
    }

    #[test]
    fn an_instance_standing_by_no_longer_reports_its_old_failure() {
        let name = "health-test-standby";
        set_failing(name, "connection reset");
        set_standing_by(name);
        let r = report(name);
        assert_eq!(r.phase, MailboxPhase::StandingBy);
        assert_eq!((r.last_error, r.failing_since), (None, None));
    }

    #[test]
    fn a_configured_mailbox_that_has_not_reported_is_starting_and_others_are_left_out() {
        set_phase("health-test-known", MailboxPhase::Idle);
        let reports = snapshot_of(["health-test-unknown", "health-test-known"]);
        let phases: Vec<(&str, MailboxPhase)> =
            reports.iter().map(|r| (r.name.as_str(), r.phase)).collect();
        assert_eq!(
            phases,
            vec![
                ("health-test-unknown", MailboxPhase::Starting),
                ("health-test-known", MailboxPhase::Idle)
            ]
        );
    }
}
