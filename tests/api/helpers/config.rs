//! The configuration of a server under test. Tests change it with a
//! closure over the typed [`Config`], so a misspelt setting does not
//! compile rather than being silently ignored.

use conduit::config::Config;

pub const JWT_SECRET: &str = "test-secret-that-is-long-enough-for-hs256-keys";

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
    configure(&mut config);
    config.check().expect("test configuration is valid");
    config
}
