//! The `conduit` binary: parses the command line and runs a subcommand.

use std::process::ExitCode;

use anyhow::Context;
use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};
use conduit::{
    config::{self, Config},
    db::{self, seed::SeedSize},
    graphql,
    startup::{self, Application},
    telemetry,
};

/// mimalloc rather than the system allocator: a GraphQL response is built
/// from many small allocations on several threads at once, where glibc's
/// arenas contend and hold on to freed memory (see BENCHMARKS.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The Conduit GraphQL API. Configuration comes from environment variables
/// (and `.env`), or the flags of the same names; `conduit serve --help`
/// lists them.
#[derive(Parser)]
#[command(name = "conduit", version)]
struct Cli {
    /// What to do; `serve` when none is given.
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the HTTP server (the default).
    Serve(Box<Config>),
    /// Run background jobs only (webhooks, retention), for deployments that
    /// keep them apart from the servers (which then set `JOB_WORKERS=0`).
    Worker(Box<Config>),
    /// Apply pending database migrations and exit.
    Migrate(Box<Config>),
    /// Print the GraphQL SDL (the content of schema.graphql); reads no
    /// configuration.
    Schema,
    /// Fill an empty database with a deterministic demo data set.
    Seed {
        #[command(flatten)]
        size: SeedSize,
        #[command(flatten)]
        config: Box<Config>,
    },
}

#[tokio::main]
async fn main() -> ExitCode {
    dotenvy::dotenv().ok();
    let command = config::reading_environment(Cli::command());
    let cli = match command
        .try_get_matches()
        .and_then(|matches| Cli::from_arg_matches(&matches))
    {
        Ok(cli) => cli,
        // Help and version print and exit 0; mistakes print and exit 2.
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(u8::try_from(e.exit_code()).unwrap_or(2));
        }
    };
    let command = match cli.command {
        Some(command) => command,
        // `conduit` alone serves, configured as `conduit serve` would be.
        None => {
            let command = config::reading_environment(Config::command());
            match command
                .try_get_matches_from(["conduit"])
                .and_then(|matches| Config::from_arg_matches(&matches))
            {
                Ok(config) => Command::Serve(Box::new(config)),
                Err(e) => {
                    let _ = e.print();
                    return ExitCode::from(2);
                }
            }
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
    match command {
        Command::Serve(config) => {
            let config = config.for_serving().context("invalid configuration")?;
            telemetry::init_with_traces(
                config.log_format(),
                &config.log_filter,
                config.traces().as_ref(),
            )?;
            let app = Application::build(&config).await?;
            let served = app.run_until(startup::shutdown_signal()).await;
            telemetry::traces::shutdown().await;
            served
        }
        Command::Worker(config) => {
            let config = config.for_serving().context("invalid configuration")?;
            telemetry::init(config.log_format(), &config.log_filter);
            startup::run_workers(&config, startup::shutdown_signal()).await
        }
        Command::Migrate(config) => {
            config.check().context("invalid configuration")?;
            telemetry::init(config.log_format(), &config.log_filter);
            let (url, embedded) = startup::resolve_database(&config).await?;
            let migrated =
                db::run_migrations(config.database_direct_url.as_deref().unwrap_or(&url)).await;
            if let Some(embedded) = embedded {
                embedded.stop().await?;
            }
            migrated
        }
        Command::Seed { size, config } => {
            config.check().context("invalid configuration")?;
            telemetry::init(config.log_format(), &config.log_filter);
            let (url, embedded) = startup::resolve_database(&config).await?;
            // Seeding is bulk work for one connection: it goes to the
            // primary itself, not through a pooler.
            let url = config.database_direct_url.clone().unwrap_or(url);
            let seeded = async {
                db::run_migrations(&url).await?;
                db::seed::seed(&url, size).await
            }
            .await;
            if let Some(embedded) = embedded {
                embedded.stop().await?;
            }
            let report = seeded?;
            tracing::info!(?report, "seeded");
            println!(
                "seeded {} users, {} articles ({} tag links), {} follows, {} favorites, {} comments in {:.1}s",
                report.users,
                report.articles,
                report.tags_on_articles,
                report.follows,
                report.favorites,
                report.comments,
                report.seconds
            );
            Ok(())
        }
        Command::Schema => unreachable!("handled before configuration is read"),
    }
}
