//! A TCP proxy that makes a healthy service look unreliable: it refuses a
//! share of connections outright and cuts the others after a short random
//! lifetime, so calls fail with UNAVAILABLE before, during and after the
//! target has acted on them (the last is a lost acknowledgement).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};

pub struct ChaosProxy {
    pub addr: SocketAddr,
    target: Arc<Mutex<Option<SocketAddr>>>,
    task: tokio::task::JoinHandle<()>,
}

/// A small deterministic generator: tests need variety, not security.
fn next(state: &AtomicU64) -> u64 {
    let mut x = state.load(Ordering::Relaxed);
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    state.store(x, Ordering::Relaxed);
    x
}

impl ChaosProxy {
    /// Refuses one connection in `refuse_one_in` and cuts each other one
    /// after a random lifetime up to `max_lifetime`.
    pub async fn start(refuse_one_in: u64, max_lifetime: Duration) -> ChaosProxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind chaos proxy");
        let addr = listener.local_addr().expect("addr");
        let target: Arc<Mutex<Option<SocketAddr>>> = Arc::new(Mutex::new(None));
        let seen = target.clone();
        let random = Arc::new(AtomicU64::new(0x9E37_79B9_7F4A_7C15));
        let task = tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                let Some(to) = *seen.lock().expect("lock") else { continue };
                if next(&random).is_multiple_of(refuse_one_in) {
                    continue; // dropped: the caller sees the connection close
                }
                let lifetime = Duration::from_millis(10 + next(&random) % max_lifetime.as_millis().max(1) as u64);
                tokio::spawn(async move {
                    if let Ok(mut server) = TcpStream::connect(to).await {
                        let _ = tokio::time::timeout(lifetime, tokio::io::copy_bidirectional(&mut client, &mut server))
                            .await;
                    }
                });
            }
        });
        ChaosProxy { addr, target, task }
    }

    pub fn point_at(&self, target: SocketAddr) {
        *self.target.lock().expect("lock") = Some(target);
    }
}

impl Drop for ChaosProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}
