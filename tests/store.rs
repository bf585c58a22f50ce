//! Every `Store` operation, on both backends: each test body below runs once on a fresh
//! SQLite file and once on its own database of a private PostgreSQL (support::postgres), as
//! `<sentence>::on_sqlite` and `<sentence>::on_postgres`. The point of the portable SQL is
//! that the same calls give the same answers on both, so the bodies assert values, not just
//! the absence of errors.
//!
//! `cargo test --test store on_postgres` runs the PostgreSQL half only. PostgreSQL missing
//! is a failure, not a skip (install it with scripts/install-deps).

mod support;

use std::future::Future;

use mail_parser::MessageParser;
use serde_json::json;
use support::postgres::PgDatabase;
use ticketgate::domain::{
    AreaSlug, Channel, Direction, EmailAddress, EventKind, FiscalCode, MessageKind, OurMessageId,
    OutboxState, RawState, SignedIds, TicketKind, TicketRef, Transport,
};
use ticketgate::outbound::queue::{queue_mail, Queued};
use ticketgate::store::{
    now_millis, raw_sha256_hex, AccountTaken, Attempt, InboundPec, NewAttachment, NewCitizen,
    NewMessage, NewTicket, NotificationAttachment, RawIn, ReceiptEffect, Store, StoreError,
};

/// Which database a test body runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Backend {
    Sqlite,
    Postgres,
}

/// What a test body gets: a migrated store on an empty database, and its URL (to connect a
/// second time).
struct Db {
    store: Store,
    url: String,
    backend: Backend,
}

/// Keeps the database alive for the test: a temporary directory, or a PostgreSQL database
/// (whose drop drops it, and stops the private server after the last test using it).
enum Keep {
    Sqlite(#[allow(dead_code)] tempfile::TempDir),
    Postgres(#[allow(dead_code)] PgDatabase),
}

async fn run_on<F, Fut>(backend: Backend, body: F)
where
    F: FnOnce(Db) -> Fut,
    Fut: Future<Output = ()>,
{
    let (url, keep) = match backend {
        Backend::Sqlite => {
            let dir = tempfile::tempdir().expect("a temporary directory");
            let url = format!("sqlite://{}/ticketgate.db", dir.path().display());
            (url, Keep::Sqlite(dir))
        }
        Backend::Postgres => {
            let db = PgDatabase::create();
            (db.url.clone(), Keep::Postgres(db))
        }
    };
    let store = Store::connect(&url, 4)
        .await
        .unwrap_or_else(|e| panic!("connect to {url}: {e}"));
    store
        .migrate()
        .await
        .unwrap_or_else(|e| panic!("migrate {url}: {e}"));
    body(Db {
        store: store.clone(),
        url,
        backend,
    })
    .await;
    store.close().await;
    drop(keep);
}

/// `sentence` names an `async fn sentence(db: Db)` below; this makes `sentence::on_sqlite`
/// and `sentence::on_postgres` of it.
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test]
            async fn on_sqlite() {
                super::run_on(super::Backend::Sqlite, super::$name).await
            }
            #[tokio::test]
            async fn on_postgres() {
                super::run_on(super::Backend::Postgres, super::$name).await
            }
        }
    )*};
}

on_both_backends!(
    connecting_and_migrating_again_changes_nothing,
    a_checkpoint_is_absent_until_set_and_keeps_the_whole_u32_range,
    a_raw_batch_is_stored_with_its_checkpoint_and_a_uid_stored_before_is_skipped,
    raw_bytes_round_trip_exactly_including_zero_and_high_bytes,
    an_ingested_message_has_no_uid_and_stays_pending_until_finished,
    pending_and_unflagged_raw_messages_follow_their_state_and_the_server_flag,
    finishing_a_raw_message_changes_only_a_pending_row,
    a_quarantined_message_is_listed_and_can_be_requeued_once,
    a_dropped_message_leaves_the_quarantine_with_its_note_and_keeps_its_bytes,
    raw_messages_are_counted_by_state,
    ticket_sequences_count_per_year_and_a_rolled_back_transaction_leaves_no_gap,
    a_ticket_with_its_message_attachments_and_events_reads_back_through_the_views,
    a_new_office_is_sent_the_citizens_files_and_each_notification_records_what_it_carried,
    an_inbound_message_with_a_known_dedup_key_is_not_inserted_again,
    a_duplicate_ticket_reference_is_refused,
    a_second_account_with_a_taken_email_or_fiscal_code_is_refused_by_the_constraint,
    outbound_bytes_round_trip_exactly_including_binary_bytes,
    acknowledgments_are_counted_per_address_and_kind_since_a_time,
    tickets_are_listed_newest_first_up_to_the_limit,
    text_with_nul_characters_from_untrusted_mail_is_stored_on_both_backends,
    queued_mail_is_due_when_its_time_comes_oldest_first_and_up_to_the_limit,
    a_claimed_row_cannot_be_claimed_again_until_its_lease_expires,
    released_leases_make_rows_claimable_at_once,
    a_worker_renews_only_the_leases_it_holds_and_never_revives_a_lapsed_one,
    recording_attempts_moves_a_row_to_sent_queued_or_failed,
    a_batch_claim_takes_only_free_rows_and_batch_attempts_record_each_outcome,
    concurrent_claims_of_one_row_have_exactly_one_winner,
    concurrent_transactions_get_distinct_ticket_numbers_without_gaps,
    queued_mail_is_stored_as_bytes_that_parse_and_carry_a_verifiable_signed_message_id,
    queued_mail_outside_any_ticket_carries_a_verifiable_id_without_a_ticket,
    pec_facts_and_receipts_are_recorded_and_a_late_acceptance_never_undoes_a_delivery,
    mail_of_a_ticket_to_one_reader_is_due_only_after_the_earlier_one_is_done,
    a_ticket_without_the_citizens_address_reads_back_as_none_and_no_mail_is_queued_to_it,
    the_ticket_list_search_ignores_case_and_takes_like_wildcards_literally,
);

// ---------------------------------------------------------------------------------------
// Helpers

/// A fixed instant (2027-01-15) for the times the tests choose themselves.
const T0: i64 = 1_800_000_000_000;

const CITIZEN: &str = "anna.verdi@citizen.test";
const AREA_ADDR: &str = "lavori-pubblici@comune.test";
const SECRET: &[u8] = b"test-secret-test-secret-test-sec";

fn raw_in(uid: u32, bytes: &[u8]) -> RawIn {
    RawIn {
        uid: Some(uid),
        bytes: bytes.to_vec(),
        size: bytes.len() as u64,
        complete: true,
    }
}

/// A message that came through `ticketgate ingest`: no UID.
fn piped(bytes: &[u8]) -> RawIn {
    RawIn {
        uid: None,
        ..raw_in(0, bytes)
    }
}

fn mail(n: u32) -> Vec<u8> {
    format!(
        "From: {CITIZEN}\r\nTo: {AREA_ADDR}\r\nSubject: buca {n}\r\nMessage-ID: <m{n}@citizen.test>\r\n\r\nC'è una buca in via Roma {n}.\r\n"
    )
    .into_bytes()
}

/// Every byte value, twice, with NUL first and 0xFF last: what a BLOB/BYTEA must keep.
fn every_byte() -> Vec<u8> {
    (0..=255u8).chain(0..=255u8).collect()
}

fn addr(a: &str) -> EmailAddress {
    EmailAddress::parse(a).expect("a valid test address")
}

/// A ticket reference written in a test.
fn r(reference: &str) -> TicketRef {
    reference.parse().expect("a valid test reference")
}

/// A value that lives as long as the test process, for the borrowed fields of `NewTicket`.
fn leak<T>(value: T) -> &'static T {
    Box::leak(Box::new(value))
}

fn ticket<'a>(reference: &'a str, subject: &'a str, at: i64) -> NewTicket<'a> {
    NewTicket {
        reference: r(reference),
        kind: TicketKind::Segnalazione,
        area: leak(AreaSlug::parse("lavori-pubblici").expect("a valid slug")),
        citizen: leak(addr(CITIZEN)),
        citizen_name: Some("Anna Verdi"),
        subject,
        text: "C'è una buca in via Roma.",
        html: Some("<p>C'è una buca</p>"),
        channel: Channel::Email,
        at,
        certified: None,
        pec_address: None,
        reply_to: None,
        reply_to_asked: None,
    }
}

fn inbound<'a>(ticket_id: Option<i64>, dedup_key: Option<&'a str>, at: i64) -> NewMessage<'a> {
    NewMessage {
        ticket_id,
        direction: Direction::In,
        kind: MessageKind::Report,
        rfc_message_id: dedup_key,
        in_reply_to: None,
        dedup_key,
        from_addr: CITIZEN,
        to_addrs: AREA_ADDR,
        subject: "buca",
        text: "C'è una buca in via Roma.",
        html: None,
        at,
        sha256: "ab12",
        raw_message_id: None,
    }
}

fn outbound<'a>(ticket_id: Option<i64>, kind: &'a str, to: &'a str, at: i64) -> NewMessage<'a> {
    NewMessage {
        ticket_id,
        direction: Direction::Out,
        kind: kind.parse().expect("a message kind"),
        rfc_message_id: None,
        in_reply_to: Some("<m1@citizen.test>"),
        dedup_key: None,
        from_addr: AREA_ADDR,
        to_addrs: to,
        subject: "Re: buca",
        text: "Abbiamo ricevuto la sua segnalazione.",
        html: None,
        at,
        sha256: "",
        raw_message_id: None,
    }
}

/// A ticket (reference `reference`) in its own committed transaction; returns its id.
async fn make_ticket(store: &Store, reference: &str, at: i64) -> i64 {
    let mut tx = store.begin().await.unwrap();
    let id = Store::insert_ticket(&mut tx, &ticket(reference, "buca", at))
        .await
        .unwrap();
    tx.commit().await.unwrap();
    id
}

/// An outbound message with `raw` as its bytes, queued to `to`; returns the message id.
async fn make_queued(store: &Store, ticket_id: Option<i64>, to: &str, raw: &[u8]) -> i64 {
    let mut tx = store.begin().await.unwrap();
    let id = Store::insert_message(&mut tx, &outbound(ticket_id, "ack", to, T0))
        .await
        .unwrap()
        .expect("an outbound message has no dedup key to conflict on");
    Store::set_outbound_bytes(
        &mut tx,
        id,
        &format!("m{id}@comune.test"),
        raw,
        &raw_sha256_hex(raw),
    )
    .await
    .unwrap();
    Store::enqueue(&mut tx, id, AREA_ADDR, &[addr(to)], Transport::Smtp)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    id
}

/// The ids of the queued rows due at `now` (all of them, whatever their number).
async fn due(store: &Store, now: i64) -> Vec<i64> {
    store
        .due_outbox(now, 100)
        .await
        .unwrap()
        .iter()
        .map(|d| d.outbox_id)
        .collect()
}

/// `Store::inbound_by_dedup_key` in a transaction of its own (it reads inside the caller's).
async fn dedup_lookup(store: &Store, key: &str) -> ticketgate::store::Result<Option<i64>> {
    let mut tx = store.begin().await?;
    let found = Store::inbound_by_dedup_key(&mut tx, key).await;
    tx.rollback().await?;
    found
}

/// `Store::ticket_of_message` in a transaction of its own.
async fn ticket_of(
    store: &Store,
    message_id: i64,
) -> ticketgate::store::Result<Option<ticketgate::store::MessageTicket>> {
    let mut tx = store.begin().await?;
    let found = Store::ticket_of_message(&mut tx, message_id).await;
    tx.rollback().await?;
    found
}

fn sorted<T: Ord>(mut counts: Vec<(T, i64)>) -> Vec<(T, i64)> {
    counts.sort();
    counts
}

fn counts(pairs: &[(&str, i64)]) -> Vec<(String, i64)> {
    sorted(pairs.iter().map(|(s, n)| (s.to_string(), *n)).collect())
}

// ---------------------------------------------------------------------------------------
// Connection and migrations

async fn connecting_and_migrating_again_changes_nothing(db: Db) {
    assert_eq!(db.store.is_sqlite(), db.backend == Backend::Sqlite);
    db.store
        .set_checkpoint("INBOX", 11, 22)
        .await
        .expect("set_checkpoint");

    // A second process connecting to the same database migrates again: a no-op that
    // keeps the data.
    let again = Store::connect(&db.url, 2).await.expect("second connect");
    again.migrate().await.expect("second migrate");
    again.migrate().await.expect("third migrate");
    again.ping().await.expect("ping");
    assert_eq!(again.checkpoint("INBOX").await.unwrap(), Some((11, 22)));
    again.close().await;
    db.store.ping().await.expect("first store still works");

    match Store::connect("mysql://localhost/ticketgate", 1).await {
        Err(StoreError::UnsupportedUrl(url)) => assert_eq!(url, "mysql://localhost/ticketgate"),
        other => panic!("expected UnsupportedUrl, got {other:?}"),
    }
}

// ---------------------------------------------------------------------------------------
// Raw messages and checkpoints

async fn a_checkpoint_is_absent_until_set_and_keeps_the_whole_u32_range(db: Db) {
    let s = &db.store;
    assert_eq!(s.checkpoint("INBOX").await.unwrap(), None);
    s.set_checkpoint("INBOX", 1, 0).await.unwrap();
    assert_eq!(s.checkpoint("INBOX").await.unwrap(), Some((1, 0)));
    // UIDs and UIDVALIDITY are unsigned 32-bit (RFC 3501 §2.3.1.1): above i32::MAX they
    // must survive the BIGINT columns unchanged.
    s.set_checkpoint("INBOX", u32::MAX, 4_000_000_000)
        .await
        .unwrap();
    assert_eq!(
        s.checkpoint("INBOX").await.unwrap(),
        Some((u32::MAX, 4_000_000_000))
    );
    assert_eq!(s.checkpoint("Other").await.unwrap(), None);
}

async fn a_raw_batch_is_stored_with_its_checkpoint_and_a_uid_stored_before_is_skipped(db: Db) {
    let s = &db.store;
    let before = now_millis();
    let first = s
        .store_raw_batch("INBOX", 7, &[raw_in(1, &mail(1)), raw_in(2, &mail(2))], 2)
        .await
        .unwrap();
    let after = now_millis();
    assert_eq!(first.len(), 2, "{first:?}");
    assert!(first[0] < first[1], "{first:?}");
    assert_eq!(s.checkpoint("INBOX").await.unwrap(), Some((7, 2)));

    // A resync fetches UID 2 again: it is skipped, UID 3 is new, the checkpoint moves on.
    let second = s
        .store_raw_batch("INBOX", 7, &[raw_in(2, &mail(2)), raw_in(3, &mail(3))], 3)
        .await
        .unwrap();
    assert_eq!(second.len(), 1, "{second:?}");
    assert_eq!(s.checkpoint("INBOX").await.unwrap(), Some((7, 3)));
    // The same UID under a new UIDVALIDITY is another message.
    let third = s
        .store_raw_batch("INBOX", 8, &[raw_in(2, &mail(4))], 2)
        .await
        .unwrap();
    assert_eq!(third.len(), 1);
    assert_eq!(s.checkpoint("INBOX").await.unwrap(), Some((8, 2)));
    // An empty batch only moves the checkpoint.
    assert!(s
        .store_raw_batch("INBOX", 8, &[], 9)
        .await
        .unwrap()
        .is_empty());
    assert_eq!(s.checkpoint("INBOX").await.unwrap(), Some((8, 9)));

    let row = s.raw(first[1]).await.unwrap().expect("stored row");
    assert_eq!(row.raw_message_id, first[1]);
    assert_eq!(row.mailbox, "INBOX");
    assert_eq!(row.uid, Some(2));
    assert_eq!(row.bytes, mail(2));
    assert_eq!(row.sha256, raw_sha256_hex(&mail(2)));
    assert_eq!(row.size, mail(2).len() as i64);
    assert!(row.complete);
    assert_eq!(row.state, RawState::Pending);
    assert!(
        (before..=after).contains(&row.received_at),
        "{before} <= {} <= {after}",
        row.received_at
    );

    // An oversize message: only the header was kept, the size is the server's.
    let header = b"Subject: huge\r\n\r\n".to_vec();
    let big = RawIn {
        uid: Some(u32::MAX),
        bytes: header.clone(),
        size: 50_000_000_000,
        complete: false,
    };
    let ids = s.store_raw_batch("Big", 9, &[big], u32::MAX).await.unwrap();
    let row = s.raw(ids[0]).await.unwrap().unwrap();
    assert!(!row.complete);
    assert_eq!(row.size, 50_000_000_000);
    assert_eq!(row.uid, Some(i64::from(u32::MAX)));
    assert_eq!(row.bytes, header);
    assert_eq!(s.checkpoint("Big").await.unwrap(), Some((9, u32::MAX)));

    assert!(s.raw(ids[0] + 1000).await.unwrap().is_none());
}

async fn raw_bytes_round_trip_exactly_including_zero_and_high_bytes(db: Db) {
    let s = &db.store;
    let bytes = every_byte();
    let ids = s
        .store_raw_batch("INBOX", 1, &[raw_in(1, &bytes)], 1)
        .await
        .unwrap();
    let row = s.raw(ids[0]).await.unwrap().unwrap();
    assert_eq!(row.bytes, bytes);
    assert_eq!(row.sha256, raw_sha256_hex(&bytes));

    let id = s.store_raw_ingested("pipe", &piped(&bytes)).await.unwrap();
    assert_eq!(s.raw(id).await.unwrap().unwrap().bytes, bytes);
    // Empty is a value too, not NULL.
    let id = s.store_raw_ingested("pipe", &piped(b"")).await.unwrap();
    assert_eq!(s.raw(id).await.unwrap().unwrap().bytes, Vec::<u8>::new());
}

async fn an_ingested_message_has_no_uid_and_stays_pending_until_finished(db: Db) {
    let s = &db.store;
    let m = RawIn {
        uid: None,
        bytes: mail(1),
        size: mail(1).len() as u64,
        complete: true,
    };
    // Without a UID nothing conflicts: the same bytes piped twice are two rows (the
    // pipeline finds the duplicate by its dedup key later).
    let a = s.store_raw_ingested("lavori-pubblici", &m).await.unwrap();
    let b = s.store_raw_ingested("lavori-pubblici", &m).await.unwrap();
    assert_ne!(a, b);
    let row = s.raw(a).await.unwrap().unwrap();
    assert_eq!(row.uid, None);
    assert_eq!(row.mailbox, "lavori-pubblici");
    assert_eq!(row.state, RawState::Pending);
    assert_eq!(s.pending_ingested().await.unwrap(), vec![a, b]);
    // Fetched rows of the same mailbox are not "ingested", and ingested ones are not
    // pending for the IMAP poller.
    let fetched = s
        .store_raw_batch("lavori-pubblici", 3, &[raw_in(5, &mail(2))], 5)
        .await
        .unwrap();
    assert_eq!(s.pending_ingested().await.unwrap(), vec![a, b]);
    assert_eq!(s.pending_raw("lavori-pubblici").await.unwrap(), fetched);

    let mut tx = s.begin().await.unwrap();
    Store::finish_raw(&mut tx, a, RawState::Processed, None, Some(1))
        .await
        .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(s.pending_ingested().await.unwrap(), vec![b]);
    assert_eq!(s.raw(a).await.unwrap().unwrap().state, RawState::Processed);
}

async fn pending_and_unflagged_raw_messages_follow_their_state_and_the_server_flag(db: Db) {
    let s = &db.store;
    let a = s
        .store_raw_batch(
            "A",
            5,
            &[
                raw_in(30, &mail(1)),
                raw_in(10, &mail(2)),
                raw_in(20, &mail(3)),
            ],
            30,
        )
        .await
        .unwrap();
    let b = s
        .store_raw_batch("B", 5, &[raw_in(1, &mail(4))], 1)
        .await
        .unwrap();
    assert_eq!(s.pending_raw("A").await.unwrap(), a);
    assert_eq!(s.pending_raw("B").await.unwrap(), b);
    assert_eq!(s.pending_raw("C").await.unwrap(), Vec::<i64>::new());
    // Nothing handled yet: nothing to flag.
    assert!(s.unflagged_raw("A", 5).await.unwrap().is_empty());

    let mut tx = s.begin().await.unwrap();
    Store::finish_raw(&mut tx, a[0], RawState::Processed, None, Some(7))
        .await
        .unwrap();
    Store::finish_raw(
        &mut tx,
        a[1],
        RawState::Quarantined,
        Some("unparsable"),
        None,
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();

    assert_eq!(s.pending_raw("A").await.unwrap(), vec![a[2]]);
    // Ordered by UID: UID 10 (a[1]) before UID 30 (a[0]).
    assert_eq!(
        s.unflagged_raw("A", 5).await.unwrap(),
        vec![(a[1], 10), (a[0], 30)]
    );
    assert!(s.unflagged_raw("A", 6).await.unwrap().is_empty());
    assert!(s.unflagged_raw("B", 5).await.unwrap().is_empty());

    s.mark_server_done(&[a[1]]).await.unwrap();
    assert_eq!(s.unflagged_raw("A", 5).await.unwrap(), vec![(a[0], 30)]);
    s.mark_server_done(&[]).await.unwrap();
    s.mark_server_done(&[a[0], a[1]]).await.unwrap();
    assert!(s.unflagged_raw("A", 5).await.unwrap().is_empty());
}

async fn finishing_a_raw_message_changes_only_a_pending_row(db: Db) {
    let s = &db.store;
    let ids = s
        .store_raw_batch("INBOX", 1, &[raw_in(1, &mail(1)), raw_in(2, &mail(2))], 2)
        .await
        .unwrap();

    // A rolled-back finish leaves the row pending.
    let mut tx = s.begin().await.unwrap();
    Store::finish_raw(&mut tx, ids[0], RawState::Processed, None, Some(1))
        .await
        .unwrap();
    tx.rollback().await.unwrap();
    assert_eq!(
        s.raw(ids[0]).await.unwrap().unwrap().state,
        RawState::Pending
    );

    let mut tx = s.begin().await.unwrap();
    Store::finish_raw(
        &mut tx,
        ids[0],
        RawState::Quarantined,
        Some("first outcome"),
        None,
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    // A second process racing on the same row does not overwrite the first outcome.
    let mut tx = s.begin().await.unwrap();
    Store::finish_raw(
        &mut tx,
        ids[0],
        RawState::Processed,
        Some("second"),
        Some(9),
    )
    .await
    .unwrap();
    Store::finish_raw(&mut tx, ids[1], RawState::Duplicate, None, Some(3))
        .await
        .unwrap();
    tx.commit().await.unwrap();

    assert_eq!(
        s.raw(ids[0]).await.unwrap().unwrap().state,
        RawState::Quarantined
    );
    assert_eq!(
        s.raw(ids[1]).await.unwrap().unwrap().state,
        RawState::Duplicate
    );
    let q = s.quarantined().await.unwrap();
    assert_eq!(q.len(), 1);
    assert_eq!(q[0].raw_message_id, ids[0]);
    assert_eq!(q[0].reason, "first outcome");
}

async fn a_quarantined_message_is_listed_and_can_be_requeued_once(db: Db) {
    let s = &db.store;
    let before = now_millis();
    let ids = s
        .store_raw_batch(
            "INBOX",
            4,
            &[raw_in(41, &every_byte()), raw_in(42, &mail(2))],
            42,
        )
        .await
        .unwrap();
    let ingested = s
        .store_raw_ingested("pipe", &piped(&mail(3)))
        .await
        .unwrap();
    assert!(s.quarantined().await.unwrap().is_empty());

    let mut tx = s.begin().await.unwrap();
    Store::finish_raw(
        &mut tx,
        ids[0],
        RawState::Quarantined,
        Some("no From"),
        None,
    )
    .await
    .unwrap();
    Store::finish_raw(&mut tx, ids[1], RawState::Processed, None, Some(1))
        .await
        .unwrap();
    Store::finish_raw(&mut tx, ingested, RawState::Quarantined, None, None)
        .await
        .unwrap();
    tx.commit().await.unwrap();

    let q = s.quarantined().await.unwrap();
    assert_eq!(q.len(), 2, "{q:?}");
    assert_eq!(q[0].raw_message_id, ids[0]);
    assert_eq!(q[0].mailbox, "INBOX");
    assert_eq!(q[0].uid, Some(41));
    assert_eq!(q[0].size, 512);
    assert_eq!(q[0].sha256, raw_sha256_hex(&every_byte()));
    assert!(q[0].received_at >= before);
    assert_eq!(q[0].reason, "no From");
    assert_eq!(q[1].raw_message_id, ingested);
    assert_eq!(q[1].uid, None);
    assert_eq!(q[1].reason, "", "a NULL reason reads as empty");

    assert!(s.requeue_quarantined(ids[0]).await.unwrap());
    assert_eq!(
        s.raw(ids[0]).await.unwrap().unwrap().state,
        RawState::Pending
    );
    assert_eq!(s.pending_raw("INBOX").await.unwrap(), vec![ids[0]]);
    assert!(!s.requeue_quarantined(ids[0]).await.unwrap(), "not twice");
    assert!(
        !s.requeue_quarantined(ids[1]).await.unwrap(),
        "not processed"
    );
    assert!(
        !s.requeue_quarantined(ids[1] + 1000).await.unwrap(),
        "no row"
    );
    let q = s.quarantined().await.unwrap();
    assert_eq!(q.len(), 1);
    assert_eq!(q[0].raw_message_id, ingested);

    // Requeued, it goes through finish_raw again, and the old reason is gone.
    let mut tx = s.begin().await.unwrap();
    Store::finish_raw(&mut tx, ids[0], RawState::Quarantined, None, None)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let q = s.quarantined().await.unwrap();
    assert_eq!(q[0].raw_message_id, ids[0]);
    assert_eq!(q[0].reason, "");
}

async fn a_dropped_message_leaves_the_quarantine_with_its_note_and_keeps_its_bytes(db: Db) {
    let s = &db.store;
    // Longer than the head the list reads: the list gets the head, the bytes stay whole.
    let mut big = mail(7);
    big.extend(std::iter::repeat_n(b'z', 100_000));
    let ids = s
        .store_raw_batch("INBOX", 9, &[raw_in(1, &big), raw_in(2, &every_byte())], 2)
        .await
        .unwrap();
    let mut tx = s.begin().await.unwrap();
    for id in &ids {
        Store::finish_raw(&mut tx, *id, RawState::Quarantined, Some("odd"), None)
            .await
            .unwrap();
    }
    tx.commit().await.unwrap();
    let q = s.quarantined().await.unwrap();
    assert_eq!(q[0].head.len(), ticketgate::store::QUARANTINE_HEAD_BYTES);
    assert_eq!(q[0].head[..], big[..q[0].head.len()]);
    assert_eq!(q[1].head, every_byte(), "short messages are read whole");
    assert!(q
        .iter()
        .all(|m| m.dropped.is_none() && m.state == "quarantined"));

    assert!(s
        .drop_quarantined(ids[0], "operatore", "spam")
        .await
        .unwrap());
    assert!(
        !s.drop_quarantined(ids[0], "altro", "again").await.unwrap(),
        "once"
    );
    assert!(
        !s.drop_quarantined(ids[0] + 1000, "x", "y").await.unwrap(),
        "no row"
    );
    let q = s.quarantined().await.unwrap();
    assert_eq!(q.len(), 1);
    assert_eq!(q[0].raw_message_id, ids[1]);
    let all = s.quarantined_with_dropped().await.unwrap();
    assert_eq!(all.len(), 2);
    let dropped = all[0].dropped.as_ref().expect("a drop note");
    assert_eq!(
        (dropped.by.as_str(), dropped.reason.as_str()),
        ("operatore", "spam")
    );
    assert!(dropped.at > 0);
    assert_eq!(all[0].state, "dropped");
    assert_eq!(all[0].reason, "odd", "the quarantine reason stays");
    assert_eq!(s.raw(ids[0]).await.unwrap().unwrap().bytes, big);
    assert!(!s.requeue_quarantined(ids[0]).await.unwrap(), "dealt with");
}

async fn raw_messages_are_counted_by_state(db: Db) {
    let s = &db.store;
    assert!(s.raw_counts().await.unwrap().is_empty());
    let ids = s
        .store_raw_batch(
            "INBOX",
            1,
            &[
                raw_in(1, &mail(1)),
                raw_in(2, &mail(2)),
                raw_in(3, &mail(3)),
                raw_in(4, &mail(4)),
            ],
            4,
        )
        .await
        .unwrap();
    let mut tx = s.begin().await.unwrap();
    Store::finish_raw(&mut tx, ids[0], RawState::Processed, None, Some(1))
        .await
        .unwrap();
    Store::finish_raw(&mut tx, ids[1], RawState::Processed, None, Some(2))
        .await
        .unwrap();
    Store::finish_raw(&mut tx, ids[2], RawState::Duplicate, None, Some(1))
        .await
        .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(
        sorted(s.raw_counts().await.unwrap()),
        counts(&[("duplicate", 1), ("pending", 1), ("processed", 2)])
    );
}

// ---------------------------------------------------------------------------------------
// Tickets, messages, attachments, events

async fn ticket_sequences_count_per_year_and_a_rolled_back_transaction_leaves_no_gap(db: Db) {
    let s = &db.store;
    let next = |year: i64, commit: bool| async move {
        let mut tx = s.begin().await.unwrap();
        let seq = Store::next_ticket_seq(&mut tx, year).await.unwrap();
        if commit {
            tx.commit().await.unwrap();
        } else {
            tx.rollback().await.unwrap();
        }
        seq
    };
    assert_eq!(next(2026, true).await, 1);
    assert_eq!(next(2026, true).await, 2);
    assert_eq!(
        next(2026, false).await,
        3,
        "inside the rolled-back transaction"
    );
    assert_eq!(next(2026, true).await, 3, "no gap after the rollback");
    assert_eq!(next(2027, true).await, 1, "each year starts at 1");
    assert_eq!(next(2026, true).await, 4);

    // Two in one transaction.
    let mut tx = s.begin().await.unwrap();
    assert_eq!(Store::next_ticket_seq(&mut tx, 2027).await.unwrap(), 2);
    assert_eq!(Store::next_ticket_seq(&mut tx, 2027).await.unwrap(), 3);
    tx.commit().await.unwrap();
    // A transaction dropped without commit rolls back too.
    {
        let mut tx = s.begin().await.unwrap();
        assert_eq!(Store::next_ticket_seq(&mut tx, 2027).await.unwrap(), 4);
    }
    assert_eq!(next(2027, true).await, 4);
}

async fn a_new_office_is_sent_the_citizens_files_and_each_notification_records_what_it_carried(
    db: Db,
) {
    let s = &db.store;
    let ticket_id = make_ticket(s, "2026-000001", T0).await;
    let file = |name: &'static str, sha: &'static str| NewAttachment {
        filename: name,
        content_type: "image/jpeg",
        size: 10,
        sha256: sha,
        content_id: None,
        inline: false,
    };
    let mut tx = s.begin().await.unwrap();
    let report = Store::insert_message(&mut tx, &inbound(Some(ticket_id), Some("r@c"), T0))
        .await
        .unwrap()
        .expect("inserted");
    Store::insert_attachment(&mut tx, report, Some(ticket_id), &file("buca.jpg", "aa"))
        .await
        .unwrap();
    let answer = Store::insert_message(&mut tx, &outbound(Some(ticket_id), "answer", CITIZEN, T0))
        .await
        .unwrap()
        .expect("inserted");
    Store::insert_attachment(
        &mut tx,
        answer,
        Some(ticket_id),
        &file("ordinanza.jpg", "bb"),
    )
    .await
    .unwrap();
    let mut again = inbound(Some(ticket_id), Some("f@c"), T0 + 1);
    again.kind = MessageKind::FollowUp;
    let follow_up = Store::insert_message(&mut tx, &again)
        .await
        .unwrap()
        .expect("inserted");
    Store::insert_attachment(
        &mut tx,
        follow_up,
        Some(ticket_id),
        &file("vicino.jpg", "cc"),
    )
    .await
    .unwrap();

    let names = |files: Vec<ticketgate::store::AttachmentView>| -> Vec<String> {
        files.into_iter().map(|f| f.filename).collect()
    };
    assert_eq!(
        names(
            Store::citizen_attachments(&mut tx, ticket_id)
                .await
                .unwrap()
        ),
        ["buca.jpg", "vicino.jpg"],
        "the office's own answer files are not the citizen's"
    );
    let of_report = Store::message_attachments(&mut tx, report).await.unwrap();
    assert_eq!(names(of_report.clone()), ["buca.jpg"]);
    let of_follow_up = Store::message_attachments(&mut tx, follow_up)
        .await
        .unwrap();

    let note = Store::insert_message(
        &mut tx,
        &outbound(Some(ticket_id), "notification", "staff@comune.test", T0 + 2),
    )
    .await
    .unwrap()
    .expect("inserted");
    let (a, b) = (of_report[0].attachment_id, of_follow_up[0].attachment_id);
    Store::link_notification_attachment(&mut tx, note, a, true)
        .await
        .unwrap();
    Store::link_notification_attachment(&mut tx, note, b, false)
        .await
        .unwrap();
    // Written twice (a retried transaction): still one row.
    Store::link_notification_attachment(&mut tx, note, a, true)
        .await
        .unwrap();
    tx.commit().await.unwrap();

    let timeline = s.ticket_timeline(ticket_id).await.unwrap();
    assert_eq!(
        timeline.notification_attachments,
        [
            NotificationAttachment {
                message_id: note,
                attachment_id: a,
                carried: true
            },
            NotificationAttachment {
                message_id: note,
                attachment_id: b,
                carried: false
            },
        ]
    );
}

async fn a_ticket_with_its_message_attachments_and_events_reads_back_through_the_views(db: Db) {
    let s = &db.store;
    let raw_ids = s
        .store_raw_batch("INBOX", 1, &[raw_in(1, &mail(1))], 1)
        .await
        .unwrap();

    let mut tx = s.begin().await.unwrap();
    let ticket_id = Store::insert_ticket(&mut tx, &ticket("2026-000001", "Buca in via Roma", T0))
        .await
        .unwrap();
    let mut m = inbound(Some(ticket_id), Some("m1@citizen.test"), T0);
    m.raw_message_id = Some(raw_ids[0]);
    m.html = Some("<p>buca</p>");
    let message_id = Store::insert_message(&mut tx, &m)
        .await
        .unwrap()
        .expect("a new dedup key inserts");
    let photo = NewAttachment {
        filename: "foto via Roma.jpg",
        content_type: "image/jpeg",
        // Over 4 GiB: sizes are BIGINT everywhere.
        size: 5_000_000_000,
        sha256: "f0f0",
        content_id: Some("foto.1@citizen.test"),
        inline: true,
    };
    Store::insert_attachment(&mut tx, message_id, Some(ticket_id), &photo)
        .await
        .unwrap();
    let pdf = NewAttachment {
        filename: "pianta.pdf",
        content_type: "application/pdf",
        size: 1234,
        sha256: "0d0d",
        content_id: None,
        inline: false,
    };
    Store::insert_attachment(&mut tx, message_id, Some(ticket_id), &pdf)
        .await
        .unwrap();
    let received = json!({"message": message_id, "area": "lavori-pubblici", "also": ["ambiente"]});
    Store::insert_event(
        &mut tx,
        ticket_id,
        &EventKind::Other {
            kind: "received".into(),
            details: received.clone(),
        },
        CITIZEN,
        T0,
    )
    .await
    .unwrap();
    let noted = json!({"note": "sopralluogo \"domani\" — è urgente"});
    Store::insert_event(
        &mut tx,
        ticket_id,
        &EventKind::Other {
            kind: "note".into(),
            details: noted.clone(),
        },
        "mario.rossi",
        T0 + 5,
    )
    .await
    .unwrap();
    Store::touch_ticket(&mut tx, ticket_id, T0 + 5)
        .await
        .unwrap();
    Store::finish_raw(
        &mut tx,
        raw_ids[0],
        RawState::Processed,
        None,
        Some(message_id),
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();

    let t = s
        .ticket_by_ref(&r("2026-000001"))
        .await
        .unwrap()
        .expect("ticket");
    assert_eq!(t.ticket_id, ticket_id);
    assert_eq!(t.reference.to_string(), "2026-000001");
    assert_eq!(t.kind.as_str(), "segnalazione");
    assert_eq!(t.area.as_str(), "lavori-pubblici");
    assert_eq!(t.status.as_str(), "received");
    assert_eq!(t.citizen.as_str(), CITIZEN);
    assert_eq!(t.subject, "Buca in via Roma");
    assert_eq!(t.text, "C'è una buca in via Roma.");
    assert_eq!(t.channel.as_str(), "email");
    assert_eq!(t.created_at, T0);
    assert_eq!(t.updated_at, T0 + 5);
    assert!(s.ticket_by_ref(&r("2026-000002")).await.unwrap().is_none());

    let events = s.ticket_events(ticket_id).await.unwrap();
    assert_eq!(events.len(), 2);
    assert_eq!(events[0].event.kind(), "received");
    assert_eq!(events[0].at, T0);
    assert_eq!(events[0].actor, CITIZEN);
    let details: serde_json::Value = serde_json::from_str(&events[0].details).unwrap();
    assert_eq!(details, received);
    assert_eq!(events[1].event.kind(), "note");
    assert_eq!(events[1].actor, "mario.rossi");
    let details: serde_json::Value = serde_json::from_str(&events[1].details).unwrap();
    assert_eq!(details, noted);

    let attachments = s.ticket_attachments(ticket_id).await.unwrap();
    assert_eq!(attachments.len(), 2);
    assert_eq!(attachments[0].filename, "foto via Roma.jpg");
    assert_eq!(attachments[0].content_type, "image/jpeg");
    assert_eq!(attachments[0].size, 5_000_000_000);
    assert_eq!(attachments[0].sha256, "f0f0");
    assert_eq!(
        attachments[0].content_id.as_deref(),
        Some("foto.1@citizen.test")
    );
    assert!(attachments[0].inline);
    assert_eq!(attachments[1].filename, "pianta.pdf");
    assert_eq!(attachments[1].size, 1234);
    assert_eq!(attachments[1].content_id, None);
    assert!(!attachments[1].inline);

    let messages = s.ticket_messages(ticket_id).await.unwrap();
    assert_eq!(messages.len(), 1);
    let v = &messages[0];
    assert_eq!(v.message_id, message_id);
    assert_eq!(v.direction.as_str(), "in");
    assert_eq!(v.kind.as_str(), "report");
    assert_eq!(v.rfc_message_id.as_deref(), Some("m1@citizen.test"));
    assert_eq!(v.in_reply_to, None);
    assert_eq!(v.from_addr, CITIZEN);
    assert_eq!(v.to_addrs, AREA_ADDR);
    assert_eq!(v.subject, "buca");
    assert_eq!(v.text, "C'è una buca in via Roma.");
    assert_eq!(v.at, T0);
    assert_eq!(v.sha256, "ab12");
    // Inbound: nothing joined from the outbox.
    assert_eq!(v.delivery_state, None);
    assert_eq!(v.delivery_reply, None);
    assert_eq!(v.delivery_attempts, None);
    assert_eq!(v.sent_at, None);

    let of = ticket_of(s, message_id).await.unwrap().expect("ticket");
    assert_eq!(of.ticket_id, ticket_id);
    assert_eq!(of.reference.to_string(), "2026-000001");
    assert_eq!(of.area.as_str(), "lavori-pubblici");
    assert_eq!(of.citizen.as_str(), CITIZEN);
    assert_eq!(of.subject, "Buca in via Roma");
    assert!(ticket_of(s, message_id + 1000).await.unwrap().is_none());

    // A message outside any ticket has no ticket, and its attachment none either.
    let mut tx = s.begin().await.unwrap();
    let loose = Store::insert_message(&mut tx, &inbound(None, Some("loose@x"), T0))
        .await
        .unwrap()
        .unwrap();
    Store::insert_attachment(&mut tx, loose, None, &pdf)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    assert!(ticket_of(s, loose).await.unwrap().is_none());
    assert_eq!(s.ticket_attachments(ticket_id).await.unwrap().len(), 2);

    assert!(s.ticket_events(ticket_id + 1000).await.unwrap().is_empty());
    assert!(s
        .ticket_messages(ticket_id + 1000)
        .await
        .unwrap()
        .is_empty());
    assert!(s
        .ticket_attachments(ticket_id + 1000)
        .await
        .unwrap()
        .is_empty());
}

async fn an_inbound_message_with_a_known_dedup_key_is_not_inserted_again(db: Db) {
    let s = &db.store;
    assert_eq!(dedup_lookup(s, "m1@citizen.test").await.unwrap(), None);
    let mut tx = s.begin().await.unwrap();
    let first = Store::insert_message(&mut tx, &inbound(None, Some("m1@citizen.test"), T0))
        .await
        .unwrap()
        .expect("first insert");
    // The conflict is not an error and does not spoil the transaction (on PostgreSQL an
    // error would abort it): the caller rolls back or goes on as it decides.
    let again = Store::insert_message(&mut tx, &inbound(None, Some("m1@citizen.test"), T0 + 1))
        .await
        .unwrap();
    assert_eq!(again, None);
    let other = Store::insert_message(&mut tx, &inbound(None, Some("m2@citizen.test"), T0))
        .await
        .unwrap()
        .expect("another key inserts");
    // No key (outbound rows): never a conflict.
    let o1 = Store::insert_message(&mut tx, &outbound(None, "ack", CITIZEN, T0))
        .await
        .unwrap();
    let o2 = Store::insert_message(&mut tx, &outbound(None, "ack", CITIZEN, T0))
        .await
        .unwrap();
    tx.commit().await.unwrap();
    assert!(o1.is_some() && o2.is_some() && o1 != o2, "{o1:?} {o2:?}");
    assert_ne!(first, other);
    assert_eq!(
        dedup_lookup(s, "m1@citizen.test").await.unwrap(),
        Some(first)
    );
    assert_eq!(
        dedup_lookup(s, "m2@citizen.test").await.unwrap(),
        Some(other)
    );

    // In a later transaction too.
    let mut tx = s.begin().await.unwrap();
    let later = Store::insert_message(&mut tx, &inbound(None, Some("m2@citizen.test"), T0))
        .await
        .unwrap();
    assert_eq!(later, None);
    tx.rollback().await.unwrap();
}

async fn a_duplicate_ticket_reference_is_refused(db: Db) {
    let s = &db.store;
    make_ticket(s, "2026-000001", T0).await;
    let mut tx = s.begin().await.unwrap();
    let dup = Store::insert_ticket(&mut tx, &ticket("2026-000001", "again", T0)).await;
    assert!(matches!(dup, Err(StoreError::Db(_))), "{dup:?}");
    tx.rollback().await.unwrap();
    assert_eq!(s.list_tickets(10).await.unwrap().len(), 1);
    assert_eq!(
        s.ticket_by_ref(&r("2026-000001"))
            .await
            .unwrap()
            .unwrap()
            .subject,
        "buca"
    );
}

async fn a_second_account_with_a_taken_email_or_fiscal_code_is_refused_by_the_constraint(db: Db) {
    let s = &db.store;
    let (anna, other) = (addr(CITIZEN), addr("other@citizen.test"));
    let (code, other_code) = (
        FiscalCode::parse("RSSMRA85T10A562S").unwrap(),
        FiscalCode::parse("BNCLRA90A41F205I").unwrap(),
    );
    let new = |email, fiscal_code| NewCitizen {
        email,
        first_name: "Anna",
        last_name: "Verdi",
        fiscal_code,
        password_hash: "$argon2id$x",
        at: T0,
    };
    let mut tx = s.begin().await.unwrap();
    let id = Store::insert_citizen(&mut tx, &new(&anna, &code))
        .await
        .unwrap()
        .expect("a first account");
    tx.commit().await.unwrap();
    for (email, fiscal_code, taken) in [
        (&anna, &other_code, AccountTaken::Email),
        (&other, &code, AccountTaken::FiscalCode),
    ] {
        // Each in its own transaction: on PostgreSQL the violation aborts it.
        let mut tx = s.begin().await.unwrap();
        let second = Store::insert_citizen(&mut tx, &new(email, fiscal_code)).await;
        assert_eq!(second.unwrap(), Err(taken));
        tx.rollback().await.unwrap();
    }
    let c = s
        .citizen_by_email(&anna)
        .await
        .unwrap()
        .expect("the account");
    assert_eq!((c.citizen_id, c.fiscal_code.as_str()), (id, code.as_str()));
    assert!(s.citizen_by_email(&other).await.unwrap().is_none());
}

async fn outbound_bytes_round_trip_exactly_including_binary_bytes(db: Db) {
    let s = &db.store;
    let ticket_id = make_ticket(s, "2026-000001", T0).await;
    let bytes = every_byte();
    let message_id = make_queued(s, Some(ticket_id), CITIZEN, &bytes).await;

    let due = s.due_outbox(now_millis() + 1, 10).await.unwrap();
    assert_eq!(due.len(), 1);
    let item = s
        .outbox_item(due[0].outbox_id)
        .await
        .unwrap()
        .expect("item");
    assert_eq!(item.outbox_id, due[0].outbox_id);
    assert_eq!(item.message_id, message_id);
    assert_eq!(item.raw, bytes);
    assert_eq!(item.envelope_from, AREA_ADDR);
    assert_eq!(item.recipients, Ok(vec![addr(CITIZEN)]));
    assert_eq!(item.attempts, 0);

    let v = &s.ticket_messages(ticket_id).await.unwrap()[0];
    assert_eq!(
        v.rfc_message_id.as_deref(),
        Some(format!("m{message_id}@comune.test").as_str())
    );
    assert_eq!(v.sha256, raw_sha256_hex(&bytes));
    assert_eq!(v.direction.as_str(), "out");
    assert_eq!(v.in_reply_to.as_deref(), Some("<m1@citizen.test>"));

    // Bytes set again (a re-render) replace the old ones exactly.
    let mut tx = s.begin().await.unwrap();
    Store::set_outbound_bytes(&mut tx, message_id, "x@comune.test", b"\x00", "00")
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let item = s.outbox_item(due[0].outbox_id).await.unwrap().unwrap();
    assert_eq!(item.raw, vec![0u8]);
    assert!(s
        .outbox_item(due[0].outbox_id + 1000)
        .await
        .unwrap()
        .is_none());

    // Several recipients: stored and read back as a list of addresses.
    let mut tx = s.begin().await.unwrap();
    let id = Store::insert_message(
        &mut tx,
        &outbound(None, "notification", "a@x.it, b@y.it", T0),
    )
    .await
    .unwrap()
    .unwrap();
    Store::enqueue(
        &mut tx,
        id,
        AREA_ADDR,
        &[addr("a@x.it"), addr("b@y.it")],
        Transport::Pec,
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    let due = s.due_outbox(now_millis() + 1, 10).await.unwrap();
    let item = s.outbox_item(due[1].outbox_id).await.unwrap().unwrap();
    assert_eq!(item.recipients, Ok(vec![addr("a@x.it"), addr("b@y.it")]));
    assert_eq!(
        item.raw,
        Vec::<u8>::new(),
        "no bytes set: empty, not an error"
    );
    assert_eq!(
        item.transport,
        Transport::Pec,
        "the transport it was queued with"
    );
}

async fn acknowledgments_are_counted_per_address_and_kind_since_a_time(db: Db) {
    let s = &db.store;
    let mut tx = s.begin().await.unwrap();
    for (kind, to, at) in [
        ("ack", CITIZEN, T0 - 10),
        ("ack", CITIZEN, T0),
        ("ack", CITIZEN, T0 + 5),
        ("notification", CITIZEN, T0 + 5),
        ("ack", "luca.neri@citizen.test", T0 + 5),
    ] {
        Store::insert_message(&mut tx, &outbound(None, kind, to, at))
            .await
            .unwrap();
    }
    assert_eq!(Store::acks_to_since(&mut tx, CITIZEN, T0).await.unwrap(), 2);
    assert_eq!(Store::acks_to_since(&mut tx, CITIZEN, 0).await.unwrap(), 3);
    assert_eq!(
        Store::acks_to_since(&mut tx, CITIZEN, T0 + 6)
            .await
            .unwrap(),
        0
    );
    assert_eq!(
        Store::acks_to_since(&mut tx, "luca.neri@citizen.test", T0)
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        Store::acks_to_since(&mut tx, "nobody@x", 0).await.unwrap(),
        0
    );
    tx.commit().await.unwrap();
}

async fn tickets_are_listed_newest_first_up_to_the_limit(db: Db) {
    let s = &db.store;
    assert!(s.list_tickets(10).await.unwrap().is_empty());
    let a = make_ticket(s, "2026-000001", T0).await;
    let b = make_ticket(s, "2026-000002", T0 + 1).await;
    let c = make_ticket(s, "2026-000003", T0 + 2).await;
    let two = s.list_tickets(2).await.unwrap();
    assert_eq!(
        two.iter().map(|t| t.ticket_id).collect::<Vec<_>>(),
        vec![c, b]
    );
    assert_eq!(two[0].reference.to_string(), "2026-000003");
    assert_eq!(two[0].created_at, T0 + 2);
    assert_eq!(two[0].updated_at, T0 + 2);
    let all = s.list_tickets(100).await.unwrap();
    assert_eq!(
        all.iter()
            .map(|t| t.reference.to_string())
            .collect::<Vec<_>>(),
        vec!["2026-000003", "2026-000002", "2026-000001"]
    );
    assert_eq!(all[2].ticket_id, a);
    assert_eq!(s.list_tickets(i64::MAX).await.unwrap().len(), 3);
    assert_eq!(
        s.list_tickets(-1).await.unwrap().len(),
        3,
        "negative: no limit"
    );
    assert!(s.list_tickets(0).await.unwrap().is_empty());
}

async fn text_with_nul_characters_from_untrusted_mail_is_stored_on_both_backends(db: Db) {
    // PostgreSQL refuses U+0000 in TEXT, SQLite keeps it; mail can carry one (`=00`). The
    // store writes U+FFFD instead on both, and finds it again when looked up with the NUL.
    let s = &db.store;
    let ids = s
        .store_raw_batch("INBOX", 1, &[raw_in(1, b"Subject: a\0b\r\n\r\n\0")], 1)
        .await
        .unwrap();
    let mut tx = s.begin().await.unwrap();
    let mut t = ticket("2026-000001", "buca\0nascosta", T0);
    t.text = "testo\0con NUL";
    t.citizen_name = Some("Anna\0");
    t.html = Some("<p>\0</p>");
    let ticket_id = Store::insert_ticket(&mut tx, &t).await.unwrap();
    let mut m = inbound(Some(ticket_id), Some("mid:<nul\0@x>"), T0);
    m.rfc_message_id = Some("<nul\0@x>");
    m.in_reply_to = Some("<a\0@x>");
    m.from_addr = "anna\0@citizen.test";
    m.subject = "sub\0ject";
    m.text = "\0";
    let message_id = Store::insert_message(&mut tx, &m).await.unwrap().unwrap();
    let a = NewAttachment {
        filename: "foto\0.jpg",
        content_type: "image/jpeg\0",
        size: 1,
        sha256: "00",
        content_id: Some("id\0"),
        inline: false,
    };
    Store::insert_attachment(&mut tx, message_id, Some(ticket_id), &a)
        .await
        .unwrap();
    Store::insert_event(
        &mut tx,
        ticket_id,
        &EventKind::Other {
            kind: "note".into(),
            details: json!({"n": "a\0b"}),
        },
        "x\0y",
        T0,
    )
    .await
    .unwrap();
    let ack = Store::insert_message(&mut tx, &outbound(None, "ack", "luca\0@x", T0))
        .await
        .unwrap()
        .unwrap();
    Store::enqueue(&mut tx, ack, "from\0@x", &[addr(CITIZEN)], Transport::Smtp)
        .await
        .unwrap();
    assert_eq!(
        Store::acks_to_since(&mut tx, "luca\0@x", 0).await.unwrap(),
        1
    );
    Store::finish_raw(
        &mut tx,
        ids[0],
        RawState::Quarantined,
        Some("bad\0header"),
        None,
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();

    const R: char = '\u{FFFD}';
    let v = s.ticket_by_ref(&r("2026-000001")).await.unwrap().unwrap();
    assert_eq!(v.subject, format!("buca{R}nascosta"));
    assert_eq!(v.text, format!("testo{R}con NUL"));
    let v = &s.ticket_messages(ticket_id).await.unwrap()[0];
    assert_eq!(v.subject, format!("sub{R}ject"));
    assert_eq!(v.text, R.to_string());
    assert_eq!(v.from_addr, format!("anna{R}@citizen.test"));
    assert_eq!(v.rfc_message_id, Some(format!("<nul{R}@x>")));
    assert_eq!(v.in_reply_to, Some(format!("<a{R}@x>")));
    assert_eq!(
        dedup_lookup(s, "mid:<nul\0@x>").await.unwrap(),
        Some(message_id),
        "looked up with the NUL, found"
    );
    let att = &s.ticket_attachments(ticket_id).await.unwrap()[0];
    assert_eq!(att.filename, format!("foto{R}.jpg"));
    let ev = &s.ticket_events(ticket_id).await.unwrap()[0];
    assert_eq!(ev.actor, format!("x{R}y"));
    // JSON escapes the NUL itself: the details keep it, as `\u0000`.
    let details: serde_json::Value = serde_json::from_str(&ev.details).unwrap();
    assert_eq!(details, json!({"n": "a\0b"}));
    let item = s
        .outbox_item(due(s, i64::MAX).await[0])
        .await
        .unwrap()
        .unwrap();
    assert_eq!(item.envelope_from, format!("from{R}@x"));
    assert_eq!(
        s.quarantined().await.unwrap()[0].reason,
        format!("bad{R}header")
    );
    // The raw bytes keep the NUL exactly.
    assert_eq!(
        s.raw(ids[0]).await.unwrap().unwrap().bytes,
        b"Subject: a\0b\r\n\r\n\0"
    );
    assert!("2026-\0".parse::<TicketRef>().is_err(), "never looked up");
}

// ---------------------------------------------------------------------------------------
// Outbox

async fn queued_mail_is_due_when_its_time_comes_oldest_first_and_up_to_the_limit(db: Db) {
    let s = &db.store;
    assert_eq!(s.next_outbox_due().await.unwrap(), None);
    assert!(s.outbox_counts().await.unwrap().is_empty());
    let before = now_millis();
    make_queued(s, None, CITIZEN, b"1").await;
    make_queued(s, None, CITIZEN, b"2").await;
    make_queued(s, None, CITIZEN, b"3").await;
    let after = now_millis();

    let first = s.next_outbox_due().await.unwrap().expect("a due time");
    assert!(
        (before..=after).contains(&first),
        "{before} <= {first} <= {after}"
    );
    assert!(due(s, before - 1).await.is_empty(), "nothing due before");
    let all = due(s, after).await;
    assert_eq!(all.len(), 3);
    assert!(all.windows(2).all(|w| w[0] < w[1]), "oldest first: {all:?}");
    let limited = s.due_outbox(after, 2).await.unwrap();
    assert_eq!(
        limited.iter().map(|d| d.outbox_id).collect::<Vec<_>>(),
        all[..2]
    );
    assert_eq!(
        s.outbox_counts().await.unwrap(),
        vec![(OutboxState::Queued, 3)]
    );
}

async fn a_claimed_row_cannot_be_claimed_again_until_its_lease_expires(db: Db) {
    let s = &db.store;
    make_queued(s, None, CITIZEN, b"mail").await;
    let now = now_millis() + 10;
    let id = due(s, now).await[0];

    assert!(s.claim_outbox(id, now, now + 1_000).await.unwrap());
    assert!(
        !s.claim_outbox(id, now + 10, now + 2_000).await.unwrap(),
        "held by the first claim"
    );
    assert!(due(s, now + 10).await.is_empty(), "a leased row is not due");
    // The worker may sleep until the lease runs out, not until the original due time.
    assert_eq!(s.next_outbox_due().await.unwrap(), Some(now + 1_000));
    assert!(
        !s.claim_outbox(id, now + 1_000, now + 2_000).await.unwrap(),
        "still held at the last millisecond of the lease"
    );

    // The worker died: once the lease has expired, another one takes the row.
    assert_eq!(due(s, now + 1_001).await, vec![id]);
    assert!(s.claim_outbox(id, now + 1_001, now + 3_000).await.unwrap());
    assert_eq!(s.next_outbox_due().await.unwrap(), Some(now + 3_000));

    // A sent row is never claimed again.
    s.record_attempt(id, now + 1_100, true, "250 ok", None)
        .await
        .unwrap();
    assert!(!s.claim_outbox(id, now + 5_000, now + 6_000).await.unwrap());
    assert!(!s.claim_outbox(id + 1000, now, now + 1).await.unwrap());
    assert_eq!(s.next_outbox_due().await.unwrap(), None);
}

async fn released_leases_make_rows_claimable_at_once(db: Db) {
    let s = &db.store;
    make_queued(s, None, CITIZEN, b"1").await;
    make_queued(s, None, CITIZEN, b"2").await;
    make_queued(s, None, CITIZEN, b"3").await;
    let now = now_millis() + 10;
    let ids = due(s, now).await;
    assert!(s.claim_outbox(ids[0], now, now + 60_000).await.unwrap());
    assert!(s.claim_outbox(ids[1], now, now + 60_000).await.unwrap());
    s.record_attempt(ids[1], now, true, "250 ok", None)
        .await
        .unwrap();
    assert!(s.claim_outbox(ids[2], now, now + 60_000).await.unwrap());
    assert!(due(s, now + 1).await.is_empty());

    // ids[1] was sent (its lease already cleared): only the two queued leases go.
    assert_eq!(s.release_outbox_leases().await.unwrap(), 2);
    assert_eq!(s.release_outbox_leases().await.unwrap(), 0);
    assert_eq!(due(s, now + 1).await, vec![ids[0], ids[2]]);
    assert!(s.claim_outbox(ids[0], now + 1, now + 60_000).await.unwrap());
}

async fn a_worker_renews_only_the_leases_it_holds_and_never_revives_a_lapsed_one(db: Db) {
    let s = &db.store;
    for body in [b"1", b"2", b"3", b"4"] {
        make_queued(s, None, CITIZEN, body).await;
    }
    let now = now_millis() + 10;
    let ids = due(s, now).await;
    let owners = |leases: Vec<ticketgate::store::OutboxLease>| -> Vec<Option<String>> {
        leases.into_iter().map(|l| l.lease_owner).collect()
    };

    // Two workers split the rows; each renewal extends exactly its own.
    assert_eq!(
        s.claim_due_outbox(now, "w1", 60_000, 2).await.unwrap(),
        ids[..2]
    );
    assert_eq!(
        s.claim_due_outbox(now, "w2", 60_000, 1).await.unwrap(),
        ids[2..3]
    );
    assert_eq!(
        s.renew_outbox_leases("w1", now_millis(), 60_000)
            .await
            .unwrap(),
        ids[..2]
    );
    assert_eq!(
        s.renew_outbox_leases("w2", now_millis(), 60_000)
            .await
            .unwrap(),
        ids[2..3]
    );
    assert_eq!(
        owners(s.outbox_leases().await.unwrap()),
        [
            Some("w1".into()),
            Some("w1".into()),
            Some("w2".into()),
            None
        ]
    );

    // A recorded row is no longer held: not renewed, its owner cleared.
    s.record_attempt(ids[0], now, true, "250 ok", None)
        .await
        .unwrap();
    assert_eq!(
        s.renew_outbox_leases("w1", now_millis(), 60_000)
            .await
            .unwrap(),
        ids[1..2]
    );
    let leases = s.outbox_leases().await.unwrap();
    assert_eq!(
        (leases[0].state, &leases[0].lease_owner),
        (OutboxState::Sent, &None)
    );

    // A lease that ran out is not renewed (its holder must stop) and is free to claim.
    assert_eq!(
        s.claim_due_outbox(now, "w3", -1_000, 10).await.unwrap(),
        ids[3..4]
    );
    assert!(s
        .renew_outbox_leases("w3", now_millis(), 60_000)
        .await
        .unwrap()
        .is_empty());
    assert_eq!(
        s.claim_due_outbox(now_millis(), "w4", 60_000, 10)
            .await
            .unwrap(),
        ids[3..4]
    );
    assert_eq!(
        s.outbox_leases().await.unwrap()[3].lease_owner.as_deref(),
        Some("w4")
    );
    // Leases released at start (SQLite) drop the owner too.
    assert_eq!(s.release_outbox_leases().await.unwrap(), 3);
    assert_eq!(
        owners(s.outbox_leases().await.unwrap()),
        [None, None, None, None]
    );
}

async fn recording_attempts_moves_a_row_to_sent_queued_or_failed(db: Db) {
    let s = &db.store;
    let ticket_id = make_ticket(s, "2026-000001", T0).await;
    // Three readers: rows of one ticket for the same reader go one after the other.
    let m_sent = make_queued(s, Some(ticket_id), CITIZEN, b"sent").await;
    let m_retry = make_queued(s, Some(ticket_id), "b.bruni@citizen.test", b"retry").await;
    let m_failed = make_queued(s, Some(ticket_id), "c.conti@citizen.test", b"failed").await;
    let now = now_millis() + 10;
    let ids = due(s, now).await;
    assert_eq!(ids.len(), 3);
    for id in &ids {
        assert!(s.claim_outbox(*id, now, now + 60_000).await.unwrap());
    }

    s.record_attempt(ids[0], now + 1, true, "250 2.0.0 Ok: queued", None)
        .await
        .unwrap();
    s.record_attempt(ids[1], now + 2, false, "451 try later", Some(now + 300_000))
        .await
        .unwrap();
    s.record_attempt(ids[2], now + 3, false, "421 busy", Some(now + 100_000))
        .await
        .unwrap();
    // The retry row is queued again with its lease dropped: due at its next time, not before.
    assert!(due(s, now + 99_999).await.is_empty());
    assert_eq!(due(s, now + 100_000).await, vec![ids[2]]);
    assert_eq!(due(s, now + 300_000).await, vec![ids[1], ids[2]]);
    assert_eq!(s.next_outbox_due().await.unwrap(), Some(now + 100_000));
    assert_eq!(s.outbox_item(ids[2]).await.unwrap().unwrap().attempts, 1);

    // Second attempt of the last row is a permanent failure.
    assert!(s
        .claim_outbox(ids[2], now + 100_000, now + 160_000)
        .await
        .unwrap());
    s.record_attempt(ids[2], now + 100_001, false, "550 no such user", None)
        .await
        .unwrap();
    assert_eq!(s.outbox_item(ids[2]).await.unwrap().unwrap().attempts, 2);
    assert_eq!(due(s, i64::MAX).await, vec![ids[1]]);
    assert_eq!(s.next_outbox_due().await.unwrap(), Some(now + 300_000));
    assert_eq!(
        sorted(s.outbox_counts().await.unwrap()),
        sorted(vec![
            (OutboxState::Failed, 1),
            (OutboxState::Queued, 1),
            (OutboxState::Sent, 1)
        ])
    );

    let messages = s.ticket_messages(ticket_id).await.unwrap();
    let by_id = |id: i64| messages.iter().find(|m| m.message_id == id).unwrap();
    let sent = by_id(m_sent);
    assert_eq!(sent.delivery_state.as_deref(), Some("sent"));
    assert_eq!(sent.delivery_reply.as_deref(), Some("250 2.0.0 Ok: queued"));
    assert_eq!(sent.delivery_attempts, Some(1));
    assert_eq!(sent.sent_at, Some(now + 1));
    let retry = by_id(m_retry);
    assert_eq!(retry.delivery_state.as_deref(), Some("queued"));
    assert_eq!(retry.delivery_reply.as_deref(), Some("451 try later"));
    assert_eq!(retry.delivery_attempts, Some(1));
    assert_eq!(retry.sent_at, None);
    let failed = by_id(m_failed);
    assert_eq!(failed.delivery_state.as_deref(), Some("failed"));
    assert_eq!(failed.delivery_reply.as_deref(), Some("550 no such user"));
    assert_eq!(failed.delivery_attempts, Some(2));
    assert_eq!(failed.sent_at, None);
}

async fn a_batch_claim_takes_only_free_rows_and_batch_attempts_record_each_outcome(db: Db) {
    let s = &db.store;
    let ticket_id = make_ticket(s, "2026-000001", T0).await;
    let mut messages = Vec::new();
    for (raw, to) in [&b"a"[..], b"b", b"c", b"d"].into_iter().zip([
        "a.alba@citizen.test",
        "b.bruni@citizen.test",
        "c.conti@citizen.test",
        "d.dotti@citizen.test",
    ]) {
        messages.push(make_queued(s, Some(ticket_id), to, raw).await);
    }
    let now = now_millis() + 10;
    let ids = due(s, now).await;
    assert_eq!(ids.len(), 4);
    // Another worker holds ids[1]; ids[3] is already sent.
    assert!(s.claim_outbox(ids[1], now, now + 60_000).await.unwrap());
    s.record_attempt(ids[3], now, true, "250 ok", None)
        .await
        .unwrap();

    let taken = s
        .claim_outbox_batch(&ids, now + 1, now + 30_000)
        .await
        .unwrap();
    assert_eq!(taken, vec![ids[0], ids[2]]);
    assert!(s
        .claim_outbox_batch(&ids, now + 2, now + 30_000)
        .await
        .unwrap()
        .is_empty());
    assert!(s
        .claim_outbox_batch(&[], now, now + 1)
        .await
        .unwrap()
        .is_empty());

    s.record_attempts(&[]).await.unwrap();
    s.record_attempts(&[
        Attempt {
            outbox_id: ids[0],
            at: now + 5,
            ok: true,
            reply: "250 2.0.0 Ok".into(),
            next_attempt_at: None,
        },
        Attempt {
            outbox_id: ids[2],
            at: now + 6,
            ok: false,
            reply: "451 later".into(),
            next_attempt_at: Some(now + 90_000),
        },
        Attempt {
            outbox_id: ids[1],
            at: now + 7,
            ok: false,
            reply: "550 unknown".into(),
            next_attempt_at: None,
        },
    ])
    .await
    .unwrap();
    assert_eq!(
        sorted(s.outbox_counts().await.unwrap()),
        sorted(vec![
            (OutboxState::Failed, 1),
            (OutboxState::Queued, 1),
            (OutboxState::Sent, 2)
        ])
    );
    assert_eq!(s.next_outbox_due().await.unwrap(), Some(now + 90_000));
    assert_eq!(due(s, now + 90_000).await, vec![ids[2]]);

    let views = s.ticket_messages(ticket_id).await.unwrap();
    let state = |m: i64| {
        let v = views.iter().find(|v| v.message_id == m).unwrap();
        (
            v.delivery_state.clone().unwrap(),
            v.delivery_reply.clone().unwrap(),
            v.delivery_attempts.unwrap(),
            v.sent_at,
        )
    };
    assert_eq!(
        state(messages[0]),
        ("sent".into(), "250 2.0.0 Ok".into(), 1, Some(now + 5))
    );
    assert_eq!(
        state(messages[1]),
        ("failed".into(), "550 unknown".into(), 1, None)
    );
    assert_eq!(
        state(messages[2]),
        ("queued".into(), "451 later".into(), 1, None)
    );
    assert_eq!(
        state(messages[3]),
        ("sent".into(), "250 ok".into(), 1, Some(now))
    );
}

async fn concurrent_claims_of_one_row_have_exactly_one_winner(db: Db) {
    // Two gateways on one PostgreSQL: the conditional UPDATE must let exactly one of them
    // have the row, however the claims interleave (READ COMMITTED re-checks the WHERE
    // after waiting for the other's row lock).
    let s = &db.store;
    make_queued(s, None, CITIZEN, b"mail").await;
    let now = now_millis() + 10;
    let id = due(s, now).await[0];
    let other = Store::connect(&db.url, 4).await.unwrap();
    let claims = (0..8).map(|i| {
        let store = if i % 2 == 0 { s.clone() } else { other.clone() };
        async move { store.claim_outbox(id, now, now + 60_000 + i).await.unwrap() }
    });
    let won = futures::future::join_all(claims).await;
    assert_eq!(won.iter().filter(|w| **w).count(), 1, "{won:?}");
    let winner = won.iter().position(|w| *w).unwrap() as i64;
    assert_eq!(
        s.next_outbox_due().await.unwrap(),
        Some(now + 60_000 + winner)
    );
    other.close().await;
}

async fn concurrent_transactions_get_distinct_ticket_numbers_without_gaps(db: Db) {
    // Each transaction takes a number, makes its ticket and commits; running side by side
    // they must neither share a number nor skip one (the counter row lock serialises them
    // on PostgreSQL, BEGIN IMMEDIATE on SQLite).
    let s = &db.store;
    let makers = (0..8).map(|_| async move {
        let mut tx = s.begin().await.unwrap();
        let seq = Store::next_ticket_seq(&mut tx, 2026).await.unwrap();
        let reference = format!("2026-{seq:06}");
        Store::insert_ticket(&mut tx, &ticket(&reference, "buca", T0))
            .await
            .unwrap();
        tx.commit().await.unwrap();
        seq
    });
    let mut seqs = futures::future::join_all(makers).await;
    seqs.sort();
    assert_eq!(seqs, (1..=8).collect::<Vec<i64>>());
    assert_eq!(s.list_tickets(100).await.unwrap().len(), 8);
}

// ---------------------------------------------------------------------------------------
// outbound::queue on top of the store

/// A report staff registered without the citizen's address (`#registra … -`): the reserved
/// value is stored, read back as the no-address, and `queue_mail` refuses it as a recipient.
async fn a_ticket_without_the_citizens_address_reads_back_as_none_and_no_mail_is_queued_to_it(
    db: Db,
) {
    let s = &db.store;
    let none = EmailAddress::none();
    let reference = r("2026-000043");
    let mut tx = s.begin().await.unwrap();
    let ticket_id = Store::insert_ticket(
        &mut tx,
        &NewTicket {
            citizen: &none,
            citizen_name: Some("Mario Bianchi"),
            channel: Channel::Counter,
            ..ticket("2026-000043", "lampione", T0)
        },
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    let t = s
        .ticket_by_ref(&reference)
        .await
        .unwrap()
        .expect("the ticket");
    assert!(t.citizen.is_none(), "{}", t.citizen);
    assert_eq!(t.citizen_name.as_deref(), Some("Mario Bianchi"));
    assert_eq!(t.channel, Channel::Counter);

    let mut tx = s.begin().await.unwrap();
    let refused = queue_mail(
        &mut tx,
        &SignedIds::new(SECRET),
        &Queued {
            ticket: Some((ticket_id, reference)),
            kind: MessageKind::Answer,
            from_name: "Lavori pubblici",
            from_addr: AREA_ADDR,
            to: vec![t.citizen.clone()],
            reply_to: None,
            subject: "[Ticket #2026-000043] lampione",
            in_reply_to: None,
            references: Vec::new(),
            auto_replied: false,
            text: "Sostituito.",
            attachments: Vec::new(),
            transport: Transport::Smtp,
        },
    )
    .await;
    assert!(matches!(refused, Err(StoreError::NoAddress)), "{refused:?}");
    tx.rollback().await.unwrap();
    assert!(s.due_outbox(now_millis() + 1, 10).await.unwrap().is_empty());
}

async fn queued_mail_is_stored_as_bytes_that_parse_and_carry_a_verifiable_signed_message_id(
    db: Db,
) {
    let s = &db.store;
    let ids = SignedIds::new(SECRET);
    let reference: TicketRef = "2026-000042".parse().unwrap();
    let ticket_id = make_ticket(s, "2026-000042", T0).await;

    let mut tx = s.begin().await.unwrap();
    let message_id = queue_mail(
        &mut tx,
        &ids,
        &Queued {
            ticket: Some((ticket_id, reference)),
            kind: MessageKind::Ack,
            from_name: "Comune di Prova — Lavori pubblici",
            from_addr: AREA_ADDR,
            to: vec![addr(CITIZEN), addr("luca.neri@citizen.test")],
            reply_to: Some(("Lavori pubblici", AREA_ADDR)),
            subject: "[Ticket #2026-000042] Buca in via Roma",
            in_reply_to: Some("<m1@citizen.test>"),
            references: vec!["<m1@citizen.test>".to_owned()],
            auto_replied: true,
            text: "Gentile cittadina, abbiamo ricevuto la sua segnalazione. È la 2026-000042.",
            attachments: Vec::new(),
            transport: Transport::Smtp,
        },
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();

    let due = s.due_outbox(now_millis() + 1, 10).await.unwrap();
    assert_eq!(due.len(), 1);
    let item = s.outbox_item(due[0].outbox_id).await.unwrap().unwrap();
    assert_eq!(item.message_id, message_id);
    assert_eq!(item.envelope_from, AREA_ADDR);
    assert_eq!(
        item.recipients,
        Ok(vec![addr(CITIZEN), addr("luca.neri@citizen.test")])
    );

    let parsed = MessageParser::default()
        .parse(&item.raw[..])
        .expect("the stored bytes parse as a mail");
    let rfc_id = parsed.message_id().expect("a Message-ID").to_owned();
    assert_eq!(
        ids.verify(&rfc_id),
        Some(OurMessageId {
            ticket: Some(reference),
            message: message_id
        })
    );
    assert!(rfc_id.ends_with("@comune.test"), "{rfc_id}");
    assert_eq!(
        parsed.subject(),
        Some("[Ticket #2026-000042] Buca in via Roma")
    );
    assert_eq!(
        parsed.in_reply_to().as_text(),
        Some("m1@citizen.test"),
        "In-Reply-To"
    );
    assert_eq!(
        parsed.header_raw("Auto-Submitted").map(str::trim),
        Some("auto-replied")
    );
    let body = parsed.body_text(0).expect("a text body");
    assert!(body.contains("È la 2026-000042"), "{body}");
    let to: Vec<&str> = parsed
        .to()
        .expect("To")
        .iter()
        .filter_map(|a| a.address())
        .collect();
    assert_eq!(to, vec![CITIZEN, "luca.neri@citizen.test"]);

    // The message row records what was sent: same id, hash of the very bytes.
    let v = &s.ticket_messages(ticket_id).await.unwrap()[0];
    assert_eq!(v.message_id, message_id);
    assert_eq!(v.rfc_message_id.as_deref(), Some(rfc_id.as_str()));
    assert_eq!(v.sha256, raw_sha256_hex(&item.raw));
    assert_eq!(v.kind.as_str(), "ack");
    assert_eq!(v.direction.as_str(), "out");
    assert_eq!(v.to_addrs, format!("{CITIZEN}, luca.neri@citizen.test"));
    assert_eq!(v.delivery_state.as_deref(), Some("queued"));
    assert_eq!(v.delivery_attempts, Some(0));
    let of = ticket_of(s, message_id).await.unwrap().unwrap();
    assert_eq!(of.reference.to_string(), "2026-000042");
    // Counted for the per-sender acknowledgment limit.
    let mut tx = s.begin().await.unwrap();
    assert_eq!(
        Store::acks_to_since(&mut tx, &v.to_addrs, 0).await.unwrap(),
        1
    );
    tx.rollback().await.unwrap();
}

async fn queued_mail_outside_any_ticket_carries_a_verifiable_id_without_a_ticket(db: Db) {
    let s = &db.store;
    let ids = SignedIds::new(SECRET);
    let mut tx = s.begin().await.unwrap();
    let message_id = queue_mail(
        &mut tx,
        &ids,
        &Queued {
            ticket: None,
            kind: MessageKind::Notice,
            from_name: "Comune di Prova",
            from_addr: AREA_ADDR,
            to: vec![addr(CITIZEN)],
            reply_to: None,
            subject: "Messaggio troppo grande",
            in_reply_to: None,
            references: vec![],
            auto_replied: false,
            text: "Il suo messaggio supera il limite.",
            attachments: Vec::new(),
            transport: Transport::Smtp,
        },
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();

    let due = s.due_outbox(now_millis() + 1, 10).await.unwrap();
    let item = s.outbox_item(due[0].outbox_id).await.unwrap().unwrap();
    let parsed = MessageParser::default().parse(&item.raw[..]).unwrap();
    let rfc_id = parsed.message_id().expect("a Message-ID");
    assert!(
        rfc_id.starts_with(&format!("tn.m{message_id}.")),
        "{rfc_id}"
    );
    assert_eq!(
        ids.verify(rfc_id),
        Some(OurMessageId {
            ticket: None,
            message: message_id
        })
    );
    assert_eq!(parsed.header_raw("Auto-Submitted"), None);
    assert!(ticket_of(s, message_id).await.unwrap().is_none());
}

async fn pec_facts_and_receipts_are_recorded_and_a_late_acceptance_never_undoes_a_delivery(db: Db) {
    let store = &db.store;
    let mut tx = store.begin().await.unwrap();
    let ticket_id = Store::insert_ticket(
        &mut tx,
        &NewTicket {
            channel: Channel::Pec,
            certified: Some(true),
            pec_address: Some("protocollo@pec.comune.test"),
            reply_to: Some("ufficio.legale@pec.citizen.test"),
            ..ticket("2026-000077", "Reclamo", T0)
        },
    )
    .await
    .unwrap();
    let inbound_id =
        Store::insert_message(&mut tx, &inbound(Some(ticket_id), Some("mid:opec1"), T0))
            .await
            .unwrap()
            .unwrap();
    Store::set_inbound_pec(
        &mut tx,
        inbound_id,
        &InboundPec {
            pec_id: Some("opec1.20261126@pec.citizen.test"),
            certified_at: Some(T0 - 5_000),
            signature: "not verified",
            signature_detail: Some("certificate verify error"),
        },
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    let ours = make_queued(store, Some(ticket_id), CITIZEN, b"answer").await;

    // Delivery first, then a late acceptance: the state stays "consegnata"; the
    // identificativo is learned from the first receipt and kept.
    let delivered = json!({ "receipt": "avvenuta-consegna", "delivered_to": CITIZEN });
    let accepted = json!({ "receipt": "accettazione" });
    let mut tx = store.begin().await.unwrap();
    assert_eq!(
        Store::outbound_by_pec_id(&mut tx, "opec9.x@pec.comune.test")
            .await
            .unwrap(),
        None
    );
    for (state, detail, at) in [
        (Some("consegnata"), &delivered, T0 + 2_000),
        (None, &accepted, T0 + 3_000),
        (Some("accettata"), &accepted, T0 + 1_000),
    ] {
        Store::apply_receipt(
            &mut tx,
            ours,
            &ReceiptEffect {
                state,
                detail,
                pec_id: Some("opec9.x@pec.comune.test"),
                certified_at: Some(at),
            },
        )
        .await
        .unwrap();
    }
    assert_eq!(
        Store::outbound_by_pec_id(&mut tx, "opec9.x@pec.comune.test")
            .await
            .unwrap(),
        Some(ours)
    );
    // An inbound message with that id is not "ours".
    assert_eq!(
        Store::outbound_by_pec_id(&mut tx, "opec1.20261126@pec.citizen.test")
            .await
            .unwrap(),
        None
    );
    tx.commit().await.unwrap();

    let t = store
        .ticket_by_ref(&r("2026-000077"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(t.channel.as_str(), "pec");
    assert_eq!(t.certified, Some(true));
    assert_eq!(t.pec_address.as_deref(), Some("protocollo@pec.comune.test"));
    assert_eq!(
        t.reply_to.as_deref(),
        Some("ufficio.legale@pec.citizen.test")
    );
    let messages = store.ticket_messages(ticket_id).await.unwrap();
    let inbound = messages
        .iter()
        .find(|m| m.message_id == inbound_id)
        .unwrap();
    assert_eq!(
        inbound.pec_id.as_deref(),
        Some("opec1.20261126@pec.citizen.test")
    );
    assert_eq!(inbound.certified_at, Some(T0 - 5_000));
    assert_eq!(inbound.signature.as_deref(), Some("not verified"));
    assert_eq!(
        inbound.signature_detail.as_deref(),
        Some("certificate verify error")
    );
    let out = messages.iter().find(|m| m.message_id == ours).unwrap();
    assert_eq!(out.pec_state.as_deref(), Some("consegnata"));
    assert_eq!(out.certified_at, Some(T0 + 2_000));
    assert_eq!(out.pec_id.as_deref(), Some("opec9.x@pec.comune.test"));
    let detail: serde_json::Value =
        serde_json::from_str(out.pec_detail.as_deref().unwrap()).unwrap();
    assert_eq!(detail, delivered);
    assert_eq!(out.transport.as_deref(), Some("smtp"));

    // A failure after acceptance replaces it.
    let failed = json!({ "receipt": "errore-consegna", "reason": "5.1.1 user unknown" });
    let other = make_queued(store, Some(ticket_id), CITIZEN, b"second").await;
    let mut tx = store.begin().await.unwrap();
    for (state, detail) in [
        (Some("accettata"), &accepted),
        (Some("non consegnata"), &failed),
    ] {
        Store::apply_receipt(
            &mut tx,
            other,
            &ReceiptEffect {
                state,
                detail,
                pec_id: None,
                certified_at: Some(T0),
            },
        )
        .await
        .unwrap();
    }
    tx.commit().await.unwrap();
    let messages = store.ticket_messages(ticket_id).await.unwrap();
    let out = messages.iter().find(|m| m.message_id == other).unwrap();
    assert_eq!(out.pec_state.as_deref(), Some("non consegnata"));
    assert_eq!(out.pec_id, None);
}

/// After an outage the backoff of the rows written first is the longest, so without this an
/// answer could overtake its acknowledgment (docs/design-notes.md, "Fault rehearsal").
async fn mail_of_a_ticket_to_one_reader_is_due_only_after_the_earlier_one_is_done(db: Db) {
    let s = &db.store;
    let ticket_id = make_ticket(s, "2026-000001", T0).await;
    let other_ticket = make_ticket(s, "2026-000002", T0).await;
    let first = make_queued(s, Some(ticket_id), CITIZEN, b"ack").await;
    let second = make_queued(s, Some(ticket_id), CITIZEN, b"answer").await;
    let to_staff = make_queued(s, Some(ticket_id), "mario.rossi@comune.test", b"note").await;
    let other = make_queued(s, Some(other_ticket), CITIZEN, b"other ack").await;
    let no_ticket = make_queued(s, None, CITIZEN, b"account").await;
    let now = now_millis() + 10;
    let ids = due(s, now + 500_000).await;
    let outbox_of = |message: i64| async move {
        let all = due(s, i64::MAX).await;
        for id in all {
            if s.outbox_item(id).await.unwrap().unwrap().message_id == message {
                return id;
            }
        }
        panic!("no due outbox row for message {message}");
    };
    let first_row = outbox_of(first).await;
    // The second row to the citizen waits; other readers, tickets and account mail do not.
    assert_eq!(ids.len(), 4, "{ids:?}");
    assert!(ids.contains(&first_row));
    assert!(ids.contains(&outbox_of(to_staff).await));
    assert!(ids.contains(&outbox_of(other).await));
    assert!(ids.contains(&outbox_of(no_ticket).await));

    // The first fails for now with a retry due later than anything else.
    assert!(s.claim_outbox(first_row, now, now + 60_000).await.unwrap());
    assert_eq!(
        due(s, now + 1).await.len(),
        3,
        "a leased earlier row still blocks"
    );
    s.record_attempt(first_row, now + 1, false, "451 later", Some(now + 300_000))
        .await
        .unwrap();
    let due_soon = due(s, now + 2).await;
    assert_eq!(due_soon.len(), 3, "the answer still waits: {due_soon:?}");
    // The worker's sleep is not cut short by the row that waits behind another.
    for id in due_soon {
        s.record_attempt(id, now + 3, true, "250 ok", None)
            .await
            .unwrap();
    }
    assert_eq!(s.next_outbox_due().await.unwrap(), Some(now + 300_000));

    // Once the first is sent, the second is due (its own time has long passed).
    s.record_attempt(first_row, now + 300_001, true, "250 ok", None)
        .await
        .unwrap();
    let after = due(s, now + 300_002).await;
    assert_eq!(after.len(), 1);
    assert_eq!(
        s.outbox_item(after[0]).await.unwrap().unwrap().message_id,
        second
    );

    // A row that failed for good stops blocking too.
    let third = make_queued(s, Some(ticket_id), CITIZEN, b"status").await;
    assert_eq!(
        due(s, i64::MAX).await,
        after,
        "the status waits for the answer"
    );
    s.record_attempt(after[0], now + 300_003, false, "550 gone", None)
        .await
        .unwrap();
    let last = due(s, i64::MAX).await;
    assert_eq!(last.len(), 1);
    assert_eq!(
        s.outbox_item(last[0]).await.unwrap().unwrap().message_id,
        third
    );
}

async fn the_ticket_list_search_ignores_case_and_takes_like_wildcards_literally(db: Db) {
    let s = &db.store;
    for (reference, subject) in [
        ("2027-000001", "Sconto del 100%"),
        ("2027-000002", "Sconto del 1000"),
        ("2027-000003", "Rifiuti_ingombranti"),
    ] {
        let mut tx = s.begin().await.unwrap();
        Store::insert_ticket(&mut tx, &ticket(reference, subject, T0))
            .await
            .unwrap();
        tx.commit().await.unwrap();
    }
    let found = |search: &'static str| async move {
        let filter = ticketgate::store::TicketFilter {
            search: Some(search.to_owned()),
            ..Default::default()
        };
        let list = s.list_tickets_filtered(&filter, -1).await.unwrap();
        let mut subjects: Vec<String> = list.into_iter().map(|t| t.subject).collect();
        subjects.sort();
        subjects
    };
    assert_eq!(found("SCONTO DEL 100%").await, ["Sconto del 100%"]);
    assert_eq!(found("i_i").await, ["Rifiuti_ingombranti"]);
    assert_eq!(
        found("100_").await,
        Vec::<String>::new(),
        "_ is not any character"
    );
    assert_eq!(found("sconto").await.len(), 2);
    let since = ticketgate::store::TicketFilter {
        since: Some(T0 + 1),
        ..Default::default()
    };
    assert!(s
        .list_tickets_filtered(&since, -1)
        .await
        .unwrap()
        .is_empty());
}
