//! The closed sets the code and the database both hold, compared as the
//! migrated database has them: the event kinds (`events_kind_known` and
//! `EventKind`), the kinds `record_event` enqueues a webhook fan-out for
//! (and `EventType::announcing`), and the job kind it enqueues (`JobKind`).

use conduit::{
    db::models::{
        event::{self, EventKind},
        job::JobKind,
    },
    services::webhooks::EventType,
};
use diesel::{dsl::sql, sql_types::Text};
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};

use crate::helpers::TestDatabase;

/// The single-quoted names in `text`, sorted.
fn quoted(text: &str) -> Vec<String> {
    let mut names: Vec<String> = text
        .split('\'')
        .skip(1)
        .step_by(2)
        .map(str::to_owned)
        .collect();
    names.sort();
    names
}

fn names(kinds: impl IntoIterator<Item = EventKind>) -> Vec<String> {
    let mut names: Vec<String> = kinds.into_iter().map(|k| k.as_str().to_owned()).collect();
    names.sort();
    names
}

async fn text(conn: &mut AsyncPgConnection, query: &str) -> String {
    diesel::select(sql::<Text>(&format!("({query})")))
        .get_result(conn)
        .await
        .unwrap()
}

#[tokio::test]
async fn the_event_kinds_are_the_ones_the_database_accepts() {
    let db = TestDatabase::create().await;
    let mut conn = AsyncPgConnection::establish(&db.url).await.unwrap();
    let check = text(
        &mut conn,
        "SELECT pg_get_constraintdef(oid) FROM pg_constraint \
         WHERE conname = 'events_kind_known' AND conrelid = 'events'::regclass",
    )
    .await;
    assert_eq!(
        quoted(&check),
        names(EventKind::ALL.iter().copied()),
        "{check}"
    );
}

#[tokio::test]
async fn record_event_enqueues_a_fan_out_for_exactly_the_kinds_webhooks_announce() {
    let db = TestDatabase::create().await;
    let mut conn = AsyncPgConnection::establish(&db.url).await.unwrap();
    let source = text(
        &mut conn,
        "SELECT prosrc FROM pg_proc WHERE proname = 'record_event'",
    )
    .await;
    let (_, listed) = source
        .split_once("event_kind IN (")
        .unwrap_or_else(|| panic!("no list of kinds in record_event: {source}"));
    let (listed, rest) = listed.split_once(')').unwrap();
    let announced = EventKind::ALL
        .iter()
        .copied()
        .filter(|k| EventType::announcing(*k).is_some());
    assert_eq!(quoted(listed), names(announced), "{source}");
    // The job it enqueues is one the workers run.
    let (_, values) = rest.split_once("VALUES (").unwrap();
    let kind = values.split('\'').nth(1).unwrap();
    assert_eq!(
        JobKind::from_name(kind),
        Some(JobKind::FanOutWebhooks),
        "{source}"
    );
}

#[tokio::test]
async fn a_kind_this_build_does_not_know_is_skipped_and_refused_never_a_panic() {
    let db = TestDatabase::create().await;
    // As a newer migration would, while this build still runs.
    TestDatabase::execute(
        &db,
        "ALTER TABLE events DROP CONSTRAINT events_kind_known;
         INSERT INTO events (kind) VALUES ('from_a_newer_build');
         INSERT INTO users (username, email, password_hash)
             VALUES ('after', 'after@example.com', 'x');",
    )
    .await;
    let mut conn = AsyncPgConnection::establish(&db.url).await.unwrap();
    let unknown = db
        .count("SELECT max(id) FROM events WHERE kind = 'from_a_newer_build'")
        .await;

    // What follows the events reads past it.
    let read = event::after(&mut conn, unknown - 1, 500).await.unwrap();
    assert_eq!(
        read.iter().map(|e| e.kind).collect::<Vec<_>>(),
        [EventKind::UserCreated]
    );
    assert!(event::find(&mut conn, unknown).await.unwrap().is_none());

    // Read as a kind, it is a deserialization error.
    let refused = diesel::select(sql::<Text>("'from_a_newer_build'"))
        .get_result::<EventKind>(&mut conn)
        .await;
    assert!(
        matches!(refused, Err(diesel::result::Error::DeserializationError(_))),
        "{refused:?}"
    );
    let known = diesel::select(sql::<Text>("'comment_added'"))
        .get_result::<EventKind>(&mut conn)
        .await
        .unwrap();
    assert_eq!(known, EventKind::CommentAdded);
}
