//! `conduit seed`: a realistic, deterministic data set of a requested size.
//!
//! Rows are generated inside PostgreSQL with `generate_series`, so 100k
//! articles take seconds. "Random" choices come from a hash of the row
//! number, so the same sizes always give the same data: user `userN`
//! (password `password123`), popular authors, tags and articles drawn from
//! skewed distributions.

use std::time::Instant;

use anyhow::{Context, bail};
use diesel::{OptionalExtension, sql_types::BigInt};
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl, SimpleAsyncConnection};

use crate::auth::password::PasswordHasher;

/// Password of every seeded user.
pub const SEED_PASSWORD: &str = "password123";

/// How large a data set `conduit seed` makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::Args)]
pub struct SeedSize {
    /// Users; each signs in as userN@example.com / password123.
    #[arg(long, default_value_t = 10_000)]
    pub users: i64,
    #[arg(long, default_value_t = 100_000)]
    pub articles: i64,
    #[arg(long, default_value_t = 500_000)]
    pub favorites: i64,
    #[arg(long, default_value_t = 300_000)]
    pub comments: i64,
    #[arg(long, default_value_t = 50_000)]
    pub follows: i64,
}

const TAGS: i64 = 200;

/// Real-looking names for the most used tags; the long tail is `topic-N`.
const TAG_NAMES: [&str; 24] = [
    "programming",
    "rust",
    "graphql",
    "postgres",
    "web",
    "javascript",
    "react",
    "devops",
    "design",
    "career",
    "testing",
    "security",
    "performance",
    "databases",
    "cloud",
    "mobile",
    "ai",
    "open-source",
    "productivity",
    "architecture",
    "frontend",
    "backend",
    "tutorial",
    "news",
];

/// Uniform pseudo-random number in [0, 1) from a row number and a salt.
const HASH_FUNCTION: &str = "
CREATE FUNCTION pg_temp.h(i bigint, salt int) RETURNS double precision AS $$
    SELECT ('x' || substr(md5(i::text || ':' || salt::text), 1, 8))::bit(32)::bigint / 4294967296.0
$$ LANGUAGE sql IMMUTABLE;
";

/// What a step inserted, for the log.
#[derive(Debug)]
pub struct SeedReport {
    pub users: i64,
    pub articles: i64,
    pub tags_on_articles: i64,
    pub follows: i64,
    pub favorites: i64,
    pub comments: i64,
    pub seconds: f64,
}

/// Fills an empty database; refuses one that already has users.
pub async fn seed(url: &str, size: SeedSize) -> anyhow::Result<SeedReport> {
    let started = Instant::now();
    let hash = PasswordHasher::new(1)?
        .hash(SEED_PASSWORD.to_owned())
        .await
        .map_err(|e| anyhow::anyhow!("{}", e.client_message()))?;
    let mut conn = AsyncPgConnection::establish(url)
        .await
        .context("failed to connect to the database to seed it")?;
    let existing: Option<i64> = diesel::sql_query("SELECT count(*) AS n FROM users")
        .get_result::<Count>(&mut conn)
        .await
        .optional()
        .context("failed to count users")?
        .map(|c| c.n);
    if existing.unwrap_or(0) > 0 {
        bail!("the database already has users; seed a fresh database");
    }
    if size.users < 2
        || size.articles < 0
        || size.favorites < 0
        || size.comments < 0
        || size.follows < 0
    {
        bail!("seed needs at least 2 users and non-negative counts");
    }

    let report = conn
        .transaction(async |conn| -> anyhow::Result<SeedReport> {
            conn.batch_execute(HASH_FUNCTION).await?;
            // A demo data set has no history for subscribers to replay:
            // its rows record no events (see the events migration).
            conn.batch_execute(
                "ALTER TABLE articles DISABLE TRIGGER articles_record_event;
                 ALTER TABLE comments DISABLE TRIGGER comments_record_event;
                 ALTER TABLE favorites DISABLE TRIGGER favorites_record_event;
                 ALTER TABLE follows DISABLE TRIGGER follows_record_event;
                 ALTER TABLE users DISABLE TRIGGER users_record_event;
                 ALTER TABLE articles DISABLE TRIGGER articles_set_updated_at;",
            )
            .await?;
            let users = exec(conn, &format!(
                "INSERT INTO users (id, username, email, password_hash, bio, created_at, updated_at)
                 SELECT md5('user' || i)::uuid, 'user' || i, 'user' || i || '@example.com', {hash},
                        'I am user ' || i || '.', t, t
                 FROM generate_series(1, {u}) i,
                      LATERAL (SELECT timestamptz '2024-01-01' + i * interval '1 minute' AS t) x",
                hash = quote(&hash), u = size.users,
            )).await?;

            let names = TAG_NAMES.iter().map(|n| quote(n)).collect::<Vec<_>>().join(", ");
            exec(conn, &format!(
                "INSERT INTO tags (id, name)
                 SELECT md5('tag' || i)::uuid,
                        coalesce((ARRAY[{names}])[i], 'topic-' || i)
                 FROM generate_series(1, {TAGS}) i"
            )).await?;

            // Authors skew towards low user numbers (a few prolific writers).
            let articles = exec(conn, &format!(
                "INSERT INTO articles (id, author_id, slug, title, description, body, created_at, updated_at)
                 SELECT md5('article' || i)::uuid,
                        md5('user' || (1 + floor({u} * pow(pg_temp.h(i, 1), 2)))::bigint)::uuid,
                        'seed-article-' || i,
                        'Article number ' || i,
                        'What article ' || i || ' is about',
                        repeat('This is the body of article ' || i || '. ', 25),
                        t, t
                 FROM generate_series(1, {a}) i,
                      LATERAL (SELECT timestamptz '2024-06-01' + i * interval '20 seconds' AS t) x",
                u = size.users, a = size.articles,
            )).await?;

            // One to four tags each, heavily skewed towards the first tags.
            let tags_on_articles = exec(conn, &format!(
                "INSERT INTO article_tags (article_id, tag_id, position)
                 SELECT md5('article' || i)::uuid,
                        md5('tag' || (1 + floor({TAGS} * pow(pg_temp.h(i, 10 + j), 3)))::bigint)::uuid,
                        j
                 FROM generate_series(1, {a}) i, generate_series(0, 3) j
                 WHERE j < 1 + floor(pg_temp.h(i, 2) * 4)
                 ON CONFLICT DO NOTHING",
                a = size.articles,
            )).await?;

            // Followees skew towards popular users.
            let follows = exec(conn, &format!(
                "INSERT INTO follows (follower_id, followee_id, created_at, updated_at)
                 SELECT f, e, t, t FROM (
                     SELECT DISTINCT ON (f, e) f, e, k FROM (
                         SELECT md5('user' || (1 + floor({u} * pg_temp.h(k, 3)))::bigint)::uuid AS f,
                                md5('user' || (1 + floor({u} * pow(pg_temp.h(k, 4), 2)))::bigint)::uuid AS e,
                                k
                         FROM generate_series(1, {w} * 2) k
                     ) pairs
                     WHERE f <> e
                     ORDER BY f, e, k
                 ) distinct_pairs,
                 LATERAL (SELECT timestamptz '2024-03-01' + k * interval '10 seconds' AS t) x
                 ORDER BY k
                 LIMIT {w}",
                u = size.users, w = size.follows,
            )).await?;

            let favorites = if size.articles == 0 { 0 } else {
                exec(conn, &format!(
                    "INSERT INTO favorites (user_id, article_id, created_at, updated_at)
                     SELECT usr, art, t, t FROM (
                         SELECT DISTINCT ON (usr, art) usr, art, k FROM (
                             SELECT md5('user' || (1 + floor({u} * pg_temp.h(k, 5)))::bigint)::uuid AS usr,
                                    md5('article' || (1 + floor({a} * pow(pg_temp.h(k, 6), 2)))::bigint)::uuid AS art,
                                    k
                             FROM generate_series(1, {f} * 2) k
                         ) pairs
                         ORDER BY usr, art, k
                     ) distinct_pairs,
                     LATERAL (SELECT timestamptz '2024-09-01' + k * interval '2 seconds' AS t) x
                     ORDER BY k
                     LIMIT {f}",
                    u = size.users, a = size.articles, f = size.favorites,
                )).await?
            };

            let comments = if size.articles == 0 { 0 } else {
                exec(conn, &format!(
                    "INSERT INTO comments (id, article_id, author_id, body, created_at, updated_at)
                     SELECT md5('comment' || k)::uuid,
                            md5('article' || (1 + floor({a} * pow(pg_temp.h(k, 7), 2)))::bigint)::uuid,
                            md5('user' || (1 + floor({u} * pg_temp.h(k, 8)))::bigint)::uuid,
                            'Comment number ' || k || ': well said.',
                            t, t
                     FROM generate_series(1, {c}) k,
                          LATERAL (SELECT timestamptz '2024-10-01' + k * interval '3 seconds' AS t) x",
                    u = size.users, a = size.articles, c = size.comments,
                )).await?
            };

            conn.batch_execute(
                "ALTER TABLE articles ENABLE TRIGGER articles_record_event;
                 ALTER TABLE comments ENABLE TRIGGER comments_record_event;
                 ALTER TABLE favorites ENABLE TRIGGER favorites_record_event;
                 ALTER TABLE follows ENABLE TRIGGER follows_record_event;
                 ALTER TABLE users ENABLE TRIGGER users_record_event;
                 ALTER TABLE articles ENABLE TRIGGER articles_set_updated_at;",
            )
            .await?;
            Ok(SeedReport {
                users,
                articles,
                tags_on_articles,
                follows,
                favorites,
                comments,
                seconds: 0.0,
            })
        })
        .await?;
    conn.batch_execute("ANALYZE")
        .await
        .context("failed to analyze")?;
    Ok(SeedReport {
        seconds: started.elapsed().as_secs_f64(),
        ..report
    })
}

#[derive(diesel::QueryableByName)]
struct Count {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

async fn exec(conn: &mut AsyncPgConnection, sql: &str) -> anyhow::Result<i64> {
    let rows = diesel::sql_query(sql)
        .execute(conn)
        .await
        .with_context(|| {
            format!(
                "seed step failed: {}",
                sql.lines().next().unwrap_or_default()
            )
        })?;
    Ok(rows as i64)
}

/// A SQL string literal (the values are ours, but quote them properly).
fn quote(value: &str) -> String {
    format!("'{}'", value.replace('\'', "''"))
}
