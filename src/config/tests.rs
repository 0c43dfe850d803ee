//! The configuration as the environment makes it: defaults, parsing,
//! production's rules, and the operations guide's table of variables.

use super::*;

/// The configuration `pairs` of variables make, given as the flags
/// clap maps those variables to (the process environment is shared by
/// every test).
fn config(pairs: &[(&str, &str)]) -> anyhow::Result<Config> {
    let command = Config::command().mut_args(|arg| arg.env(None::<&'static str>));
    let mut argv = vec!["conduit".to_owned()];
    for (name, value) in pairs {
        let arg = Config::command()
            .get_arguments()
            .find(|a| a.get_env() == Some(std::ffi::OsStr::new(name)))
            .map(|a| a.get_long().expect("a long flag").to_owned())
            .unwrap_or_else(|| panic!("{name} is not a variable"));
        argv.push(format!("--{arg}={value}"));
    }
    let matches = command.try_get_matches_from(argv)?;
    let config = Config::from_arg_matches(&matches)?;
    config.check()?;
    Ok(config)
}

#[test]
fn defaults_are_development_on_localhost() {
    let c = config(&[]).unwrap();
    assert_eq!(c.app_env, AppEnv::Development);
    assert_eq!(c.port, 8080);
    assert_eq!(c.host.to_string(), "127.0.0.1");
    assert!(c.database_url.is_none());
    assert_eq!(c.access_token_ttl, Duration::from_secs(900));
}

#[test]
fn a_bad_value_names_its_variable() {
    let err = config(&[("PORT", "eighty")]).unwrap_err();
    assert!(format!("{err:#}").contains("PORT"), "{err:#}");
    let err = config(&[("APP_ENV", "staging")]).unwrap_err();
    assert!(format!("{err:#}").contains("APP_ENV"), "{err:#}");
}

#[test]
fn cors_origins_parse_strictly() {
    assert_eq!("*".parse::<CorsOrigins>().unwrap(), CorsOrigins::Any);
    assert_eq!(
        "https://a.example.com, http://localhost:3000/"
            .parse::<CorsOrigins>()
            .unwrap(),
        CorsOrigins::List(vec![
            "https://a.example.com".into(),
            "http://localhost:3000".into()
        ])
    );
    assert!("a.example.com".parse::<CorsOrigins>().is_err());
    assert!("https://a.example.com/path".parse::<CorsOrigins>().is_err());
    let c = config(&[("CORS_ALLOWED_ORIGINS", "nope")]).unwrap_err();
    assert!(format!("{c:#}").contains("CORS_ALLOWED_ORIGINS"));
}

#[test]
fn production_refuses_missing_or_weak_secret() {
    assert!(config(&[("APP_ENV", "production")]).is_err());
    assert!(config(&[("APP_ENV", "production"), ("JWT_SECRET", "secret")]).is_err());
    assert!(
        config(&[
            ("APP_ENV", "production"),
            ("JWT_SECRET", "changeme-changeme-changeme-changeme")
        ])
        .is_err()
    );
    let ok = config(&[
        ("APP_ENV", "production"),
        ("JWT_SECRET", "q8Vd1kP0x7rT2mN9bW4yZ6cH3jL5sA0eF1gK8uR2"),
        (
            "WEBHOOK_SECRETS_KEY",
            "Wm5Tg8Qa2Lr7Zx0Kc4Vb9Nh1Jd6Fp3Ys-seal",
        ),
    ])
    .unwrap();
    assert_eq!(ok.log_format(), LogFormat::Json);
    assert!(!ok.graphiql());
    assert_eq!(ok.cors_allowed_origins(), CorsOrigins::List(vec![]));
}

#[test]
fn production_refuses_a_missing_or_weak_webhook_secrets_key() {
    let production = [
        ("APP_ENV", "production"),
        ("JWT_SECRET", "q8Vd1kP0x7rT2mN9bW4yZ6cH3jL5sA0eF1gK8uR2"),
    ];
    let err = config(&production).unwrap_err();
    assert!(
        format!("{err:#}").contains("WEBHOOK_SECRETS_KEY"),
        "{err:#}"
    );
    let weak = [
        production[0],
        production[1],
        ("WEBHOOK_SECRETS_KEY", "changeme"),
    ];
    let err = config(&weak).unwrap_err();
    assert!(
        format!("{err:#}").contains("WEBHOOK_SECRETS_KEY"),
        "{err:#}"
    );
    let strong = [
        production[0],
        production[1],
        (
            "WEBHOOK_SECRETS_KEY",
            "Wm5Tg8Qa2Lr7Zx0Kc4Vb9Nh1Jd6Fp3Ys-seal",
        ),
    ];
    assert!(config(&strong).is_ok());
    // Development stores secrets as they are when no key is set.
    assert!(config(&[]).unwrap().jobs.webhooks.secrets_key.is_none());
}

#[test]
fn defaults_need_no_secret_and_ignore_the_environment() {
    let defaults = Config::defaults();
    assert!(defaults.jwt_secret.is_none());
    assert_eq!(defaults.pagination.max_page_size, 100);
    let serving = defaults.for_serving().unwrap();
    assert!(serving.jwt_secret().unwrap().len() >= 32);
}

#[test]
fn every_variable_has_a_flag_and_a_description() {
    for arg in Config::command().get_arguments() {
        if arg.get_env().is_some() {
            assert!(arg.get_long().is_some(), "{}", arg.get_id());
            assert!(arg.get_help().is_some(), "{} is documented", arg.get_id());
        }
    }
}

/// The operations guide's table of variables: each row's name and
/// default cell.
fn documented_variables() -> Vec<(String, String)> {
    let guide = include_str!("../../docs/operations.md");
    let start = guide
        .find("| variable | default | meaning |")
        .expect("docs/operations.md has a table of variables");
    guide[start..]
        .lines()
        .skip(2)
        .take_while(|line| line.starts_with('|'))
        .map(|line| {
            let cells: Vec<&str> = line.split('|').map(str::trim).collect();
            (cells[1].trim_matches('`').to_owned(), cells[2].to_owned())
        })
        .collect()
}

#[test]
fn the_operations_guide_lists_every_variable_with_its_default() {
    let documented = documented_variables();
    let known = variables();
    for (name, default) in &known {
        let row = documented.iter().find(|(n, _)| n == name);
        let Some((_, cell)) = row else {
            panic!("{name} is missing from the table in docs/operations.md");
        };
        match default.as_deref() {
            Some("") | None => {}
            Some(default) => assert!(
                cell.starts_with(&format!("`{default}`")),
                "{name}: docs/operations.md says {cell}, the default is `{default}`"
            ),
        }
    }
    for (name, _) in &documented {
        assert!(
            known.iter().any(|(n, _)| n == name),
            "docs/operations.md lists {name}, which is not a variable"
        );
    }
}
