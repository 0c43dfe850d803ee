use std::process::ExitCode;

use anyhow::Context;
use conduit::{
    config::Config,
    db, graphql,
    startup::{self, Application},
    telemetry,
};

const USAGE: &str = "usage: conduit [serve | migrate | schema]

  serve    run the HTTP server (default)
  migrate  apply pending database migrations and exit
  schema   print the GraphQL SDL (the content of schema.graphql)

Configuration comes from environment variables (and .env); see README.md.";

enum Command {
    Serve,
    Migrate,
    Schema,
}

fn parse_args() -> Result<Command, String> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        [] | ["serve"] => Ok(Command::Serve),
        ["migrate"] => Ok(Command::Migrate),
        ["schema"] => Ok(Command::Schema),
        ["-h" | "--help" | "help"] => Err(String::new()),
        other => Err(format!("unknown arguments: {}", other.join(" "))),
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let command = match parse_args() {
        Ok(command) => command,
        Err(problem) => {
            if !problem.is_empty() {
                eprintln!("{problem}\n");
            }
            eprintln!("{USAGE}");
            return if problem.is_empty() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(2)
            };
        }
    };
    if let Command::Schema = command {
        print!("{}", graphql::sdl());
        return ExitCode::SUCCESS;
    }
    match run(command).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = format!("{e:#}"), "fatal");
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(command: Command) -> anyhow::Result<()> {
    dotenvy::dotenv().ok();
    let config = Config::from_env().context("invalid configuration")?;
    telemetry::init(config.log_format);
    match command {
        Command::Serve => {
            let app = Application::build(&config).await?;
            app.run_until(startup::shutdown_signal()).await
        }
        Command::Migrate => {
            let (url, embedded) = startup::resolve_database(&config).await?;
            let migrated = db::run_migrations(&url).await;
            if let Some(embedded) = embedded {
                embedded.stop().await?;
            }
            migrated
        }
        Command::Schema => unreachable!("handled before configuration is read"),
    }
}
