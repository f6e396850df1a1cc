//! [`StallProxy`]: a TCP proxy in front of one real service (Garage, Postgres) that a test can tell to
//! stop answering, the way a paused or partitioned dependency does: while stalled it accepts
//! connections and keeps every socket open, but forwards no byte in either direction. Only the app
//! pointed at the proxy sees the stall; the shared service keeps serving the other tests.
//!
//! [`StallProxy::resume`] forwards again on new connections. Connections that lived through a stall
//! are closed instead of replaying what they held: a peer that gave up on them must not have stale
//! requests land afterwards (the network ate them).

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread;
use std::time::Duration;

/// How often a blocked thread looks at the proxy's state.
const TICK: Duration = Duration::from_millis(20);

#[derive(Default)]
struct State {
    stalled: AtomicBool,
    /// Bumped by every resume: a connection from an earlier epoch lived through a stall.
    epoch: AtomicU64,
    stopped: AtomicBool,
    /// Connections accepted so far.
    accepted: AtomicU64,
}

/// A stallable proxy to one upstream `host:port`; stops when dropped.
pub struct StallProxy {
    addr: String,
    state: Arc<State>,
}

impl StallProxy {
    /// Listens on a free loopback port and forwards each connection to `upstream` (`host:port`).
    pub fn start(upstream: &str) -> StallProxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("proxy listener");
        listener
            .set_nonblocking(true)
            .expect("nonblocking listener");
        let addr = listener.local_addr().expect("proxy address").to_string();
        let state = Arc::new(State::default());
        let upstream = upstream.to_owned();
        let st = state.clone();
        thread::spawn(move || {
            while !st.stopped.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((client, _)) => {
                        st.accepted.fetch_add(1, Ordering::SeqCst);
                        let (st, upstream) = (st.clone(), upstream.clone());
                        thread::spawn(move || connect(client, &upstream, st));
                    }
                    Err(e) if e.kind() == ErrorKind::WouldBlock => thread::sleep(TICK),
                    Err(_) => thread::sleep(TICK),
                }
            }
        });
        StallProxy { addr, state }
    }

    /// `127.0.0.1:port`.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// Stops forwarding bytes on every connection, open or new; sockets stay open.
    pub fn stall(&self) {
        self.state.stalled.store(true, Ordering::SeqCst);
    }

    /// Forwards again; connections that lived through the stall are closed.
    pub fn resume(&self) {
        self.state.epoch.fetch_add(1, Ordering::SeqCst);
        self.state.stalled.store(false, Ordering::SeqCst);
    }

    /// Connections accepted so far.
    pub fn accepted(&self) -> u64 {
        self.state.accepted.load(Ordering::SeqCst)
    }
}

impl Drop for StallProxy {
    fn drop(&mut self) {
        self.state.stopped.store(true, Ordering::SeqCst);
        // Threads blocked in a stall end too.
        self.resume();
    }
}

/// Whether a connection of `epoch` must end: the proxy stopped, or it lived through a stall.
fn ended(st: &State, epoch: u64) -> bool {
    st.stopped.load(Ordering::SeqCst) || st.epoch.load(Ordering::SeqCst) != epoch
}

/// Waits while stalled; false when the connection must end instead of going on.
fn wait_while_stalled(st: &State, epoch: u64) -> bool {
    while st.stalled.load(Ordering::SeqCst) {
        if st.stopped.load(Ordering::SeqCst) {
            return false;
        }
        thread::sleep(TICK);
    }
    !ended(st, epoch)
}

fn connect(client: TcpStream, upstream: &str, st: Arc<State>) {
    let epoch = st.epoch.load(Ordering::SeqCst);
    // A connection made during a stall is not forwarded either: its peer waits, as on a hung host.
    if !wait_while_stalled(&st, epoch) {
        let _ = client.shutdown(Shutdown::Both);
        return;
    }
    let Ok(server) = TcpStream::connect(upstream) else {
        let _ = client.shutdown(Shutdown::Both);
        return;
    };
    let _ = client.set_nonblocking(false);
    let (Ok(c2), Ok(s2)) = (client.try_clone(), server.try_clone()) else {
        return;
    };
    let st2 = st.clone();
    let up = thread::spawn(move || pump(client, server, &st2, epoch));
    pump(s2, c2, &st, epoch);
    let _ = up.join();
}

/// Copies `from` to `to` until either side closes, holding every byte while the proxy is stalled;
/// then closes both.
fn pump(mut from: TcpStream, mut to: TcpStream, st: &State, epoch: u64) {
    let _ = from.set_read_timeout(Some(TICK));
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        if ended(st, epoch) {
            break;
        }
        let n = match from.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                // Nothing to read; while stalled, also nothing is read, so the sender's side fills up.
                if !wait_while_stalled(st, epoch) {
                    break;
                }
                continue;
            }
            Err(_) => break,
        };
        if !wait_while_stalled(st, epoch) || to.write_all(&buf[..n]).is_err() {
            break;
        }
    }
    let _ = from.shutdown(Shutdown::Both);
    let _ = to.shutdown(Shutdown::Both);
}
