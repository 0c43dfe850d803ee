//! Read replicas, on a primary and a streaming replica of the test's own:
//! queries read from the replica; a viewer's reads after their write come
//! from the primary until the replica has replayed it; a replica that lags
//! past the bound, or is down, is skipped and the primary answers.
//!
//! Where a read was served is told by what it sees: with the replica's
//! replay paused, a write on the primary is visible only there.

use std::time::Duration;

use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};
use tokio::time::Instant;

use conduit::config::List;
use serde_json::{Value, json};

use crate::helpers::{Replication, TestApp};

const TITLES: &str = "{ articles(first: 50) { edges { node { title } } } }";

async fn titles(app: &TestApp, token: Option<&str>) -> Vec<String> {
    let response = match token {
        Some(token) => app.query_as(token, TITLES, json!({})).await,
        None => app.query(TITLES, json!({})).await,
    };
    assert_eq!(response.status, 200, "{:?}", response.body);
    assert!(response.body["errors"].is_null(), "{:?}", response.body);
    response.body["data"]["articles"]["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|edge: &Value| edge["node"]["title"].as_str().unwrap().to_owned())
        .collect()
}

async fn spawn(replication: &Replication, max_lag: Duration) -> TestApp {
    let db = replication.database().await;
    let replica = replication.replica_url(&db);
    TestApp::spawn_on(db, |c| {
        c.replicas.urls = List(vec![replica]);
        c.replicas.max_lag = max_lag;
        c.replicas.poll_every = Duration::from_millis(20);
        c.jobs.workers = 0;
        // Reads are retried until they see what they wait for: no budget
        // may run out meanwhile.
        c.rate_limits.points = 0;
        // Where a read was served is what these tests see: no answer may
        // come from the response cache instead.
        c.response_cache.store = conduit::config::ResponseCacheStore::Off;
    })
    .await
}

/// How long a test waits for what the poller is to see.
const WAIT: Duration = Duration::from_secs(30);

/// Waits until the instance's router sends `reader`'s reads (a viewer's,
/// by username, or anonymous ones for `None`) to the replica: its poller
/// has seen the replica up, within the lag bound and, for a viewer, past
/// their last write. (Asking the router counts a read target, or a
/// fallback while it is not there yet, in the process's metrics.)
async fn until_reads_go_to_the_replica(app: &TestApp, reader: Option<&str>) {
    let reader = match reader {
        Some(username) => {
            let global = app.user_id(username).await;
            let raw = URL_SAFE_NO_PAD.decode(global).unwrap();
            let text = String::from_utf8(raw).unwrap();
            Some(text["User:".len()..].parse::<uuid::Uuid>().unwrap())
        }
        None => None,
    };
    let deadline = Instant::now() + WAIT;
    while app.state.reads.replica_for(reader).await.is_none() {
        assert!(
            Instant::now() < deadline,
            "after {WAIT:?} the poller had still not found the replica fit for {reader:?}'s reads"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The titles anonymous reads see once they see `title`, retried until
/// then; panics with the last answer after [`WAIT`].
async fn until_anonymous_reads_see(app: &TestApp, title: &str) -> Vec<String> {
    let deadline = Instant::now() + WAIT;
    loop {
        let response = app.query(TITLES, json!({})).await;
        let seen: Vec<String> = response.body["data"]["articles"]["edges"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|edge| edge["node"]["title"].as_str().map(str::to_owned))
            .collect();
        if response.status == 200
            && response.body["errors"].is_null()
            && seen.iter().any(|t| t == title)
        {
            return seen;
        }
        assert!(
            Instant::now() < deadline,
            "after {WAIT:?} anonymous reads still did not see {title:?}: {:?}",
            response.body
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queries_read_from_the_replica_and_a_writer_reads_their_own_writes() {
    let replication = Replication::start().await;
    let app = spawn(&replication, Duration::from_secs(60)).await;
    let writer = app.signed_in_user("writer").await;
    let other = app.signed_in_user("other").await;
    app.create_article(&writer.token, "Before the pause", &[])
        .await;
    replication.caught_up().await;
    until_reads_go_to_the_replica(&app, Some("writer")).await;

    replication.pause_replay().await;
    app.create_article(&writer.token, "Written while the replica waits", &[])
        .await;

    // The writer's next read comes from the primary: their write is there.
    let seen_by_writer = titles(&app, Some(&writer.token)).await;
    assert!(seen_by_writer.contains(&"Written while the replica waits".to_owned()));
    // Everyone else reads the replica, which has not replayed it yet.
    for token in [None, Some(other.token.as_str())] {
        let seen = titles(&app, token).await;
        assert!(seen.contains(&"Before the pause".to_owned()), "{seen:?}");
        assert!(
            !seen.contains(&"Written while the replica waits".to_owned()),
            "read from the replica: {seen:?}"
        );
    }

    replication.resume_replay().await;
    replication.caught_up().await;
    until_reads_go_to_the_replica(&app, Some("writer")).await;
    assert!(
        titles(&app, None)
            .await
            .contains(&"Written while the replica waits".to_owned())
    );

    // Once the replica has the write, the writer reads from it again: a
    // row written on the primary behind the paused replica is not seen.
    replication.pause_replay().await;
    app.db
        .execute("UPDATE articles SET title = 'Changed on the primary only' WHERE title = 'Before the pause'")
        .await;
    let seen_by_writer = titles(&app, Some(&writer.token)).await;
    assert!(
        seen_by_writer.contains(&"Before the pause".to_owned()),
        "{seen_by_writer:?}"
    );
    replication.resume_replay().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_account_reads_itself_at_once() {
    let replication = Replication::start().await;
    let app = spawn(&replication, Duration::from_secs(60)).await;
    until_reads_go_to_the_replica(&app, None).await;
    replication.pause_replay().await;
    // Signed up and in while the replica lags: the new account's first
    // read must find it.
    let session = app.signed_in_user("newcomer").await;
    let response = app.viewer_username(&session.token).await;
    assert_eq!(
        response.body["data"]["viewer"]["user"]["username"], "newcomer",
        "{:?}",
        response.body
    );
    replication.resume_replay().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_past_the_lag_bound_is_skipped_until_it_catches_up() {
    let replication = Replication::start().await;
    // Long enough that the reads just after the write come within it on a
    // busy machine.
    let app = spawn(&replication, Duration::from_secs(3)).await;
    let writer = app.signed_in_user("writer").await;
    replication.caught_up().await;
    until_reads_go_to_the_replica(&app, None).await;

    let lagging = [("reason", "replica_lagging")];
    let before = app
        .scrape()
        .await
        .value("db_replica_fallbacks_total", &lagging);
    replication.pause_replay().await;
    app.create_article(&writer.token, "Late on the replica", &[])
        .await;
    // Within the bound, anonymous reads stay on the replica...
    assert!(
        !titles(&app, None)
            .await
            .contains(&"Late on the replica".to_owned())
    );
    // ...past it, the primary answers them.
    until_anonymous_reads_see(&app, "Late on the replica").await;
    // Counted (other tests' replicas can only add to the count).
    let after = app
        .scrape()
        .await
        .value("db_replica_fallbacks_total", &lagging);
    assert!(after > before, "fallbacks for lag: {before} then {after}");
    replication.resume_replay().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_that_is_down_is_skipped_and_the_primary_answers() {
    let mut replication = Replication::start().await;
    let app = spawn(&replication, Duration::from_secs(60)).await;
    let writer = app.signed_in_user("writer").await;
    app.create_article(&writer.token, "Still here", &[]).await;
    replication.caught_up().await;
    until_reads_go_to_the_replica(&app, Some("writer")).await;
    assert!(titles(&app, None).await.contains(&"Still here".to_owned()));

    let down = [("reason", "replica_down")];
    let before = app
        .scrape()
        .await
        .value("db_replica_fallbacks_total", &down);
    replication.kill_replica();
    // A read in flight on the replica as it dies fails, retryably; once
    // the poller has seen it gone (or a checkout found it unreachable),
    // reads go to the primary.
    until_anonymous_reads_see(&app, "Still here").await;
    for _ in 0..20 {
        assert!(titles(&app, None).await.contains(&"Still here".to_owned()));
        assert!(
            titles(&app, Some(&writer.token))
                .await
                .contains(&"Still here".to_owned())
        );
    }
    // Counted. (The registry is the process's: other tests' replicas share
    // the gauge's label, and can only add to the counter.)
    let after = app
        .scrape()
        .await
        .value("db_replica_fallbacks_total", &down);
    assert!(
        after > before,
        "fallbacks for a replica down: {before} then {after}"
    );
}
