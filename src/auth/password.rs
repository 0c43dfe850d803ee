//! argon2id password hashing off the async runtime.
//!
//! Hashing is deliberately slow (tens of milliseconds of CPU), so it runs on
//! its own threads, one per core, at a lower scheduling priority (nice 10):
//! they use idle CPU freely, but under a login flood the runtime's threads
//! serving every other request come first. A semaphore bounds the work in
//! flight; a sign-in that times out while queued costs nothing.

use std::sync::{Arc, Mutex, mpsc};

use anyhow::Context;
use argon2::{
    Algorithm, Argon2, Params, PasswordHash, PasswordVerifier, Version,
    password_hash::{PasswordHasher as _, SaltString, rand_core::OsRng},
};
use tokio::sync::Semaphore;

use crate::error::{AppError, AppResult};

/// OWASP's recommended argon2id parameters: 19 MiB, 2 iterations, 1 lane.
const MEMORY_KIB: u32 = 19_456;
const ITERATIONS: u32 = 2;
const PARALLELISM: u32 = 1;

type Job = Box<dyn FnOnce() + Send>;

#[derive(Clone)]
pub struct PasswordHasher {
    permits: Arc<Semaphore>,
    jobs: mpsc::Sender<Job>,
    /// Verified against when an email is unknown, so that case costs the
    /// same as a wrong password and reveals nothing.
    dummy_hash: Arc<str>,
}

fn argon2() -> Argon2<'static> {
    let params = Params::new(MEMORY_KIB, ITERATIONS, PARALLELISM, None)
        .expect("argon2 parameters are valid constants");
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

fn hash_now(password: &[u8]) -> anyhow::Result<String> {
    let salt = SaltString::generate(&mut OsRng);
    let hash = argon2()
        .hash_password(password, &salt)
        .map_err(|e| anyhow::anyhow!("{e}"))
        .context("failed to hash a password")?;
    Ok(hash.to_string())
}

impl PasswordHasher {
    /// `concurrency` hashes may run at once (normally the number of cores).
    pub fn new(concurrency: usize) -> anyhow::Result<Self> {
        let concurrency = concurrency.max(1);
        let (jobs, queue) = mpsc::channel::<Job>();
        let queue = Arc::new(Mutex::new(queue));
        for i in 0..concurrency {
            let queue = queue.clone();
            std::thread::Builder::new()
                .name(format!("argon2-{i}"))
                .spawn(move || {
                    lower_priority();
                    loop {
                        let job = queue.lock().unwrap_or_else(|e| e.into_inner()).recv();
                        match job {
                            // A panicking job drops its answer; the thread goes on.
                            Ok(job) => {
                                let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(job));
                            }
                            // Every hasher handle is gone.
                            Err(_) => break,
                        }
                    }
                })
                .context("failed to start a password hashing thread")?;
        }
        Ok(Self {
            permits: Arc::new(Semaphore::new(concurrency)),
            jobs,
            dummy_hash: hash_now(b"not a real password: timing equaliser")?.into(),
        })
    }

    pub async fn hash(&self, password: String) -> AppResult<String> {
        self.run(move || hash_now(password.as_bytes())).await
    }

    /// Checks `password` against `hash`; with no hash (unknown account) it
    /// does the same work against a dummy hash and answers `false`.
    pub async fn verify(&self, password: String, hash: Option<String>) -> AppResult<bool> {
        let known = hash.is_some();
        let hash = hash.unwrap_or_else(|| self.dummy_hash.to_string());
        let matches = self
            .run(move || {
                let parsed = PasswordHash::new(&hash)
                    .map_err(|e| anyhow::anyhow!("{e}"))
                    .context("stored password hash is malformed")?;
                Ok(argon2()
                    .verify_password(password.as_bytes(), &parsed)
                    .is_ok())
            })
            .await?;
        Ok(known && matches)
    }

    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> anyhow::Result<T> + Send + 'static,
    ) -> AppResult<T> {
        let _permit = self
            .permits
            .acquire()
            .await
            .context("password hasher is shut down")?;
        let (done, result) = tokio::sync::oneshot::channel();
        self.jobs
            .send(Box::new(move || {
                let _ = done.send(work());
            }))
            .ok()
            .context("password hashing threads are gone")?;
        result
            .await
            .context("password hashing failed")?
            .map_err(AppError::Internal)
    }
}

/// Nice 10 for the calling thread (Linux schedules threads one by one);
/// elsewhere hashing runs at normal priority.
fn lower_priority() {
    #[cfg(target_os = "linux")]
    // SAFETY: plain system calls on the calling thread's own id.
    unsafe {
        let tid = libc::gettid();
        if libc::setpriority(libc::PRIO_PROCESS, tid as libc::id_t, 10) != 0 {
            tracing::warn!("could not lower the priority of a password hashing thread");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hashes_verify_and_unknown_accounts_never_match() {
        let hasher = PasswordHasher::new(2).unwrap();
        let hash = hasher.hash("correct horse".into()).await.unwrap();
        assert!(
            hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
            "{hash}"
        );
        assert!(
            hasher
                .verify("correct horse".into(), Some(hash.clone()))
                .await
                .unwrap()
        );
        assert!(
            !hasher
                .verify("wrong horse".into(), Some(hash))
                .await
                .unwrap()
        );
        assert!(
            !hasher
                .verify("not a real password: timing equaliser".into(), None)
                .await
                .unwrap()
        );
    }
}
