//! The statements behind a page are planned once per connection, not on
//! every request. PostgreSQL keeps a prepared statement's generic plan
//! only while it costs no more than planning for the values at hand; a
//! bound `LIMIT $n` is priced as a tenth of the table, so a page statement
//! with one would be planned again each time it runs.

use diesel::{QueryableByName, sql_types::BigInt, sql_types::Text};
use serde_json::json;

use crate::{helpers::TestApp, query_count::populate_with};

const HOME_ANONYMOUS: &str = include_str!("../../scripts/bench/documents/home_anonymous.graphql");
const HOME_SIGNED_IN: &str = include_str!("../../scripts/bench/documents/home_signed_in.graphql");
const FEED: &str = include_str!("../../scripts/bench/documents/feed.graphql");
const ARTICLE: &str = include_str!("../../scripts/bench/documents/article.graphql");

#[derive(Debug, QueryableByName)]
struct Plans {
    #[diesel(sql_type = Text)]
    statement: String,
    #[diesel(sql_type = BigInt)]
    generic_plans: i64,
    #[diesel(sql_type = BigInt)]
    custom_plans: i64,
}

#[tokio::test]
async fn page_statements_run_on_a_plan_made_once() {
    let app = TestApp::spawn_with(|c| {
        c.database_pool_size = 2;
        c.rate_limits.points = 0;
        // Every request runs its statements: none is answered from the
        // response cache, whose hits would leave them unplanned here.
        c.response_cache.store = conduit::config::ResponseCacheStore::Off;
    })
    .await;
    // Enough rows that a tenth of the table is far more than a page.
    let token = populate_with(&app, 5000).await;
    // Fresh statistics and no dead rows, so autovacuum has nothing to do
    // here mid-test: a vacuum or analyze of a table invalidates the cached
    // plans of statements that read it, and each starts its five trial
    // plans again.
    app.db.execute("VACUUM ANALYZE").await;

    // Each statement runs well past PostgreSQL's five trial plans on at
    // least one of the two connections.
    for _ in 0..16 {
        for (token, document, variables) in [
            (None, HOME_ANONYMOUS, json!({ "first": 20 })),
            (Some(token.as_str()), HOME_SIGNED_IN, json!({ "first": 20 })),
            (Some(token.as_str()), FEED, json!({ "first": 20 })),
            (
                Some(token.as_str()),
                ARTICLE,
                json!({ "slug": "article-1" }),
            ),
        ] {
            let response = app
                .post(json!({ "query": document, "variables": variables }), token)
                .await;
            assert!(response.body["errors"].is_null(), "{}", response.body);
        }
    }

    // Both connections at once: each sees only its own statements.
    let mut first = app.state.db.conn().await.expect("a connection");
    let mut second = app.state.db.conn().await.expect("a second connection");
    let query = "SELECT statement, generic_plans, custom_plans FROM pg_prepared_statements";
    let mut plans: Vec<Plans> = Vec::new();
    for conn in [&mut *first, &mut *second] {
        use diesel_async::RunQueryDsl;
        plans.extend(diesel::sql_query(query).load::<Plans>(conn).await.unwrap());
    }
    for p in &plans {
        println!(
            "{:>3} generic, {:>3} custom: {}",
            p.generic_plans, p.custom_plans, p.statement
        );
    }
    // Lookups by a list of ids (`= ANY($n)`) are left out: PostgreSQL
    // prices them by the array's length, which differs from page to page
    // (one article, twenty), and whether it keeps planning them depends on
    // the arrays a connection happened to see first.
    let planned_again: Vec<&Plans> = plans
        .iter()
        .filter(|p| p.custom_plans > 5 && !p.statement.contains("= ANY($"))
        .collect();
    assert!(
        planned_again.is_empty(),
        "planned on every execution: {planned_again:#?}"
    );
    // The pages themselves were among what ran: the home page's list, the
    // feed and the article's comments.
    for needle in [
        r#"FROM "articles" WHERE ("articles"."deleted_at" IS NULL) ORDER BY"#,
        "FROM follows f",
        r#"FROM "comments""#,
    ] {
        assert!(
            plans
                .iter()
                .any(|p| p.statement.contains(needle) && p.generic_plans > 0),
            "no statement with `{needle}` ran on a generic plan"
        );
    }
}
