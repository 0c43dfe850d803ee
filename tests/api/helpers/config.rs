//! The configuration of a server under test. Tests change it with a
//! closure over the typed [`Config`], so a misspelt setting does not
//! compile rather than being silently ignored.

use conduit::config::Config;

pub const JWT_SECRET: &str = "test-secret-that-is-long-enough-for-hs256-keys";

/// The Redis the tests share: `REDIS_URL`, or the one on this machine's
/// default port.
pub fn redis_url() -> String {
    std::env::var("REDIS_URL")
        .ok()
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| "redis://127.0.0.1:6379".into())
}

/// The tests' configuration on `database_url`, changed by `configure`:
/// a free port, a fixed JWT secret (tests make tokens of their own), and
/// sign-up and sign-in budgets no test runs out of by accident (they sign
/// many users up and in from one address).
pub fn test_config(database_url: &str, configure: impl FnOnce(&mut Config)) -> Config {
    let mut config = Config::defaults();
    config.database_url = Some(database_url.to_owned());
    config.port = 0;
    config.jwt_secret = Some(JWT_SECRET.to_owned());
    config.rate_limits.sign_up_per_address = 10_000;
    config.rate_limits.sign_in_per_address = 10_000;
    config.rate_limits.sign_in_per_account = 10_000;
    through_pooler(&mut config);
    configure(&mut config);
    config.check().expect("test configuration is valid");
    config
}

/// With `TEST_DATABASE_POOLER_URL` (a PgBouncer in transaction mode in
/// front of the tests' server, forwarding every database), the server
/// talks to PostgreSQL through it, as `DATABASE_POOLER=transaction`.
fn through_pooler(config: &mut Config) {
    let Some(pooler) = std::env::var("TEST_DATABASE_POOLER_URL")
        .ok()
        .filter(|v| !v.is_empty())
    else {
        return;
    };
    let server = |url: &str| {
        let url = url::Url::parse(url).expect("a database URL");
        (url.host_str().map(str::to_owned), url.port())
    };
    let direct = config.database_url.clone().expect("a database URL");
    let tests_server = std::env::var("DATABASE_URL").unwrap_or_default();
    if tests_server.is_empty() || server(&direct) != server(&tests_server) {
        // A PostgreSQL of the test's own, which the pooler does not front.
        return;
    }
    let name = url::Url::parse(&direct).expect("a database URL").path()[1..].to_owned();
    config.database_url = Some(super::with_database(&pooler, &name));
    config.database_direct_url = Some(direct);
    config.database_pooler = conduit::config::DatabasePooler::Transaction;
}
