//! A Redis server of the test's own, started with the arguments the test
//! needs (a memory limit, an eviction policy), so a test may fill it or
//! flush it without touching anyone else's keys.

use std::{
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use redis::aio::MultiplexedConnection;

use super::free_port;

pub struct RedisServer {
    /// None while stopped.
    child: Option<Child>,
    pub url: String,
    port: u16,
    args: Vec<String>,
    dir: PathBuf,
}

impl RedisServer {
    /// `redis-server` on a free port, keeping nothing on disk, with `args`
    /// on top (`["--maxmemory", "4mb"]`); answers once it is ready.
    pub async fn start(args: &[&str]) -> Self {
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("redis-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).unwrap();
        let port = free_port();
        let mut server = Self {
            child: None,
            url: format!("redis://127.0.0.1:{port}"),
            port,
            args: args.iter().map(|a| (*a).to_owned()).collect(),
            dir,
        };
        server.restart().await;
        server
    }

    /// Kills the server at once, as a crash would: its clients' connections
    /// break and new ones are refused.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again on its port, empty (it keeps nothing on
    /// disk); answers once it is ready.
    pub async fn restart(&mut self) {
        self.stop();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("redis.log"))
            .unwrap();
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(&self.dir)
            .args(&self.args)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("redis-server is installed");
        self.child = Some(child);
        let server = &*self;
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Ok(mut connection) = server.try_connect().await
                && redis::cmd("PING")
                    .query_async::<String>(&mut connection)
                    .await
                    .is_ok()
            {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "redis-server did not answer within 10 s: {}",
                std::fs::read_to_string(server.dir.join("redis.log")).unwrap_or_default()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    async fn try_connect(&self) -> redis::RedisResult<MultiplexedConnection> {
        redis::Client::open(self.url.as_str())?
            .get_multiplexed_async_connection()
            .await
    }

    /// A connection of the test's, as an operator's client.
    pub async fn connection(&self) -> MultiplexedConnection {
        self.try_connect().await.unwrap()
    }

    /// Runs `command` (`["FLUSHALL"]`) as an operator would.
    pub async fn run(&self, command: &[&str]) -> redis::Value {
        let mut cmd = redis::cmd(command[0]);
        for arg in &command[1..] {
            cmd.arg(*arg);
        }
        cmd.query_async(&mut self.connection().await).await.unwrap()
    }

    /// Takes all the memory left under `maxmemory` with keys of the
    /// test's, until Redis refuses a write for lack of memory, and then
    /// 1 MB more (a script may go past the limit), so that what frees
    /// memory on its own (a connection's buffers) does not bring it under.
    pub async fn fill(&self) {
        let mut connection = self.connection().await;
        let chunk = "x".repeat(16 * 1024);
        for n in 0.. {
            assert!(n < 10_000, "Redis took 160 MB without refusing a write");
            let set: redis::RedisResult<()> = redis::cmd("SET")
                .arg(format!("test:filler:{n}"))
                .arg(&chunk)
                .query_async(&mut connection)
                .await;
            match set {
                Ok(()) => {}
                Err(e) if e.code() == Some("OOM") => break,
                Err(e) => panic!("filling Redis: {e}"),
            }
        }
        let _: () = redis::cmd("EVAL")
            .arg("#!lua flags=allow-oom\nredis.call('SET', KEYS[1], ARGV[1])")
            .arg(1)
            .arg("test:filler:over")
            .arg("x".repeat(1024 * 1024))
            .query_async(&mut connection)
            .await
            .unwrap();
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
