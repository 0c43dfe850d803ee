use std::process::ExitCode;

use anyhow::Context;
use conduit::{
    config::Config,
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

const USAGE: &str = "usage: conduit [serve | migrate | schema | seed [OPTIONS]]

  serve    run the HTTP server (default)
  migrate  apply pending database migrations and exit
  schema   print the GraphQL SDL (the content of schema.graphql)
  seed     fill an empty database with a deterministic demo data set:
             --users N      (default 10000)
             --articles N   (default 100000)
             --favorites N  (default 500000)
             --comments N   (default 300000)
             --follows N    (default 50000)
           every seeded user signs in as userN@example.com / password123

Configuration comes from environment variables (and .env); see README.md.";

enum Command {
    Serve,
    Migrate,
    Schema,
    Seed(SeedSize),
}

fn parse_seed(options: &[&str]) -> Result<SeedSize, String> {
    let mut size = SeedSize::default();
    let mut rest = options.iter();
    while let Some(flag) = rest.next() {
        let value = rest
            .next()
            .ok_or_else(|| format!("{flag} needs a number"))?;
        let n: i64 = value
            .parse()
            .map_err(|_| format!("{flag} needs a number, got `{value}`"))?;
        match *flag {
            "--users" => size.users = n,
            "--articles" => size.articles = n,
            "--favorites" => size.favorites = n,
            "--comments" => size.comments = n,
            "--follows" => size.follows = n,
            other => return Err(format!("unknown seed option {other}")),
        }
    }
    Ok(size)
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
        ["seed", options @ ..] => parse_seed(options).map(Command::Seed),
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
        Command::Seed(size) => {
            let (url, embedded) = startup::resolve_database(&config).await?;
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
