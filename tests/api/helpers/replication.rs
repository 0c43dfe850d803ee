//! A PostgreSQL primary and a streaming replica of the test's own: the
//! primary is the embedded server, the replica a `pg_basebackup` of it
//! that follows its WAL, both from the machine's PostgreSQL binaries.

use std::{
    os::unix::process::CommandExt as _,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use conduit::db::embedded::EmbeddedPostgres;
use diesel_async::{AsyncConnection, AsyncPgConnection, SimpleAsyncConnection};

use super::{TestDatabase, with_database};

pub struct Replication {
    pub primary: EmbeddedPostgres,
    replica: Option<Child>,
    replica_port: u16,
    dir: PathBuf,
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The newest PostgreSQL server binaries installed.
fn binaries() -> PathBuf {
    let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .expect("PostgreSQL's binaries under /usr/lib/postgresql")
        .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
        .filter(|bin| bin.join("pg_basebackup").is_file())
        .collect();
    found.sort();
    found.pop().expect("pg_basebackup is installed")
}

/// PostgreSQL refuses to run as root: as root, run it as `postgres`.
fn as_server_user(command: &mut Command, dir: &Path) {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return;
    }
    let name = std::ffi::CString::new("postgres").unwrap();
    // SAFETY: a NUL-terminated name; the fields are copied out at once.
    let entry = unsafe { libc::getpwnam(name.as_ptr()) };
    assert!(!entry.is_null(), "a `postgres` user to run PostgreSQL as");
    let (uid, gid) = unsafe { ((*entry).pw_uid, (*entry).pw_gid) };
    std::os::unix::fs::chown(dir, Some(uid), Some(gid)).unwrap();
    command.uid(uid).gid(gid);
}

impl Replication {
    pub async fn start() -> Self {
        let dir = std::env::temp_dir().join(format!(
            "conduit-replication-{}",
            uuid::Uuid::new_v4().simple()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let primary = EmbeddedPostgres::start(&dir.join("primary"), free_port())
            .await
            .expect("the primary starts");
        let replica_dir = dir.join("replica");
        std::fs::create_dir_all(&replica_dir).unwrap();
        std::fs::set_permissions(
            &replica_dir,
            std::os::unix::fs::PermissionsExt::from_mode(0o700),
        )
        .unwrap();
        let primary_port = url::Url::parse(&primary.admin_url())
            .unwrap()
            .port()
            .unwrap();
        let mut backup = Command::new(binaries().join("pg_basebackup"));
        backup
            .args(["-h", "127.0.0.1", "-p", &primary_port.to_string()])
            .args(["-U", "postgres", "-R", "-X", "stream", "-c", "fast", "-D"])
            .arg(&replica_dir)
            .stdin(Stdio::null());
        as_server_user(&mut backup, &replica_dir);
        let output = backup.output().expect("pg_basebackup runs");
        assert!(
            output.status.success(),
            "pg_basebackup: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        let mut replication = Self {
            primary,
            replica: None,
            replica_port: free_port(),
            dir,
        };
        replication.start_replica().await;
        replication
    }

    async fn start_replica(&mut self) {
        let replica_dir = self.dir.join("replica");
        let log = std::fs::File::create(self.dir.join("replica.log")).unwrap();
        let mut server = Command::new(binaries().join("postgres"));
        server
            .arg("-D")
            .arg(&replica_dir)
            .args([
                "-p",
                &self.replica_port.to_string(),
                "-h",
                "127.0.0.1",
                "-k",
            ])
            .arg(&replica_dir)
            .args(["-c", "hot_standby=on", "-c", "hot_standby_feedback=on"])
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .process_group(0);
        as_server_user(&mut server, &replica_dir);
        self.replica = Some(server.spawn().expect("the replica starts"));
        let deadline = Instant::now() + Duration::from_secs(30);
        while AsyncPgConnection::establish(&self.replica_admin_url())
            .await
            .is_err()
        {
            assert!(Instant::now() < deadline, "the replica accepts connections");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    fn replica_admin_url(&self) -> String {
        format!(
            "postgres://postgres@127.0.0.1:{}/postgres",
            self.replica_port
        )
    }

    /// `db` (made on the primary) as the replica serves it.
    pub fn replica_url(&self, db: &TestDatabase) -> String {
        with_database(&self.replica_admin_url(), &db.name)
    }

    /// A database on the primary, once the replica has it too.
    pub async fn database(&self) -> TestDatabase {
        let db = TestDatabase::create_on(&self.primary.admin_url()).await;
        self.caught_up().await;
        db
    }

    async fn replica_sql(&self, sql: &str) {
        let mut conn = AsyncPgConnection::establish(&self.replica_admin_url())
            .await
            .unwrap();
        conn.batch_execute(sql).await.unwrap();
    }

    /// The replica stops applying WAL (it still receives it).
    pub async fn pause_replay(&self) {
        self.replica_sql("SELECT pg_wal_replay_pause()").await;
    }

    pub async fn resume_replay(&self) {
        self.replica_sql("SELECT pg_wal_replay_resume()").await;
    }

    /// Waits until the replica has applied all the primary has written.
    pub async fn caught_up(&self) {
        use diesel::{dsl::sql, sql_types::Bool};
        use diesel_async::RunQueryDsl;
        let mut primary = AsyncPgConnection::establish(&self.primary.admin_url())
            .await
            .unwrap();
        let position: String =
            diesel::select(sql::<diesel::sql_types::Text>("pg_current_wal_lsn()::text"))
                .get_result(&mut primary)
                .await
                .unwrap();
        let mut replica = AsyncPgConnection::establish(&self.replica_admin_url())
            .await
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let done: bool = diesel::select(sql::<Bool>(&format!(
                "pg_last_wal_replay_lsn() >= '{position}'::pg_lsn"
            )))
            .get_result(&mut replica)
            .await
            .unwrap();
            if done {
                return;
            }
            assert!(Instant::now() < deadline, "the replica catches up");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Kills the replica's server at once.
    pub fn kill_replica(&mut self) {
        if let Some(mut child) = self.replica.take() {
            // The whole process group: the server and its backends.
            let group = i32::try_from(child.id()).expect("a pid");
            // SAFETY: signals a process group this test started.
            unsafe { libc::kill(-group, libc::SIGKILL) };
            let _ = child.wait();
        }
    }
}

impl Drop for Replication {
    fn drop(&mut self) {
        self.kill_replica();
        let _ = std::fs::remove_dir_all(self.dir.join("replica"));
    }
}
