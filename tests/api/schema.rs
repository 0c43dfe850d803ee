/// `schema.graphql` is what the code serves; regenerate it with
/// `cargo run -- schema > schema.graphql`.
#[test]
fn committed_schema_matches_the_code() {
    let committed = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/schema.graphql"))
        .expect("schema.graphql exists");
    let generated = conduit::graphql::sdl();
    assert!(
        committed == generated,
        "schema.graphql is stale: run `cargo run -- schema > schema.graphql`"
    );
}

/// Every migration's `down.sql` works: all of them revert cleanly, leave no
/// table behind, and apply again.
#[tokio::test]
async fn migrations_revert_and_reapply_cleanly() {
    use diesel::Connection;
    use diesel_async::{AsyncPgConnection, async_connection_wrapper::AsyncConnectionWrapper};
    use diesel_migrations::MigrationHarness;

    let db = crate::helpers::TestDatabase::create().await;
    let url = db.url.clone();
    let migrations = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/migrations"))
        .unwrap()
        .count();
    tokio::task::spawn_blocking(move || {
        let mut conn = <AsyncConnectionWrapper<AsyncPgConnection> as Connection>::establish(&url).unwrap();
        let reverted = conn.revert_all_migrations(conduit::db::MIGRATIONS).unwrap();
        assert_eq!(reverted.len(), migrations);
        use diesel::RunQueryDsl;
        #[derive(diesel::QueryableByName)]
        struct Left {
            #[diesel(sql_type = diesel::sql_types::BigInt)]
            n: i64,
        }
        let left: Left = diesel::sql_query(
            "SELECT count(*) AS n FROM pg_tables WHERE schemaname = 'public' AND tablename <> '__diesel_schema_migrations'",
        )
        .get_result(&mut conn)
        .unwrap();
        assert_eq!(left.n, 0, "down.sql files leave no tables");
        let functions: Left = diesel::sql_query(
            "SELECT count(*) AS n FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname = 'public'",
        )
        .get_result(&mut conn)
        .unwrap();
        assert_eq!(functions.n, 0, "down.sql files leave no functions");
        let applied = conn.run_pending_migrations(conduit::db::MIGRATIONS).unwrap();
        assert_eq!(applied.len(), migrations);
    })
    .await
    .unwrap();
    assert_eq!(
        db.count("SELECT count(*) FROM pg_tables WHERE schemaname = 'public' AND tablename <> '__diesel_schema_migrations'")
            .await,
        14,
        "users, sessions, refresh_tokens, follows, articles, tags, article_tags, favorites, comments, events, jobs, job_schedules, webhook_endpoints, webhook_deliveries"
    );
}
