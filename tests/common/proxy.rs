//! A UDP fault proxy in front of a node: QUIC sees real network faults.
//!
//! Every datagram from a client goes through a per-client socket to the
//! node and back. The fault can change at run time: pass, drop everything
//! (a partition), drop one direction only (a one-way partition), drop a
//! share, or delay.

use rand::Rng;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::UdpSocket;

/// What the proxy does to datagrams.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Fault {
    /// Forward everything.
    Pass,
    /// Drop everything: the node is partitioned from its clients.
    DropAll,
    /// Drop what clients send to the node; its replies (to what got
    /// through before) still arrive.
    DropToNode,
    /// Drop what the node sends: requests reach it and take effect, but no
    /// client hears back (writes applied, never acknowledged).
    DropFromNode,
    /// Drop this share of datagrams (0.0..=1.0).
    DropShare(f64),
    /// Forward everything after this delay.
    Delay(Duration),
}

/// A running proxy.
pub struct FaultProxy {
    /// Where clients send to.
    pub addr: SocketAddr,
    fault: Arc<Mutex<Fault>>,
    task: tokio::task::JoinHandle<()>,
}

impl FaultProxy {
    /// Starts a proxy on 127.0.0.1 (free port) in front of `target`.
    pub async fn start(target: SocketAddr) -> Self {
        let front = Arc::new(UdpSocket::bind("127.0.0.1:0").await.expect("bind proxy"));
        let addr = front.local_addr().expect("proxy address");
        let fault = Arc::new(Mutex::new(Fault::Pass));
        let task = tokio::spawn(relay(front, target, fault.clone()));
        Self { addr, fault, task }
    }

    /// Changes the fault from now on.
    pub fn set(&self, fault: Fault) {
        *self.fault.lock().unwrap() = fault;
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Sends `bytes` with `socket` to `to` (a client), or to the node (its
/// connected peer) when `to` is `None`, unless the fault says otherwise.
fn forward(fault: &Mutex<Fault>, socket: Arc<UdpSocket>, to: Option<SocketAddr>, bytes: Vec<u8>) {
    let send = move |socket: Arc<UdpSocket>, bytes: Vec<u8>| async move {
        let _ = match to {
            Some(to) => socket.send_to(&bytes, to).await,
            None => socket.send(&bytes).await,
        };
    };
    match *fault.lock().unwrap() {
        Fault::Pass => {
            tokio::spawn(send(socket, bytes));
        }
        Fault::DropAll => {}
        Fault::DropToNode if to.is_none() => {}
        Fault::DropFromNode if to.is_some() => {}
        Fault::DropToNode | Fault::DropFromNode => {
            tokio::spawn(send(socket, bytes));
        }
        Fault::DropShare(p) => {
            if !rand::thread_rng().gen_bool(p.clamp(0.0, 1.0)) {
                tokio::spawn(send(socket, bytes));
            }
        }
        Fault::Delay(d) => {
            tokio::spawn(async move {
                tokio::time::sleep(d).await;
                send(socket, bytes).await;
            });
        }
    }
}

async fn relay(front: Arc<UdpSocket>, target: SocketAddr, fault: Arc<Mutex<Fault>>) {
    let mut sessions: HashMap<SocketAddr, Arc<UdpSocket>> = HashMap::new();
    let mut buf = vec![0u8; 65_536];
    loop {
        let Ok((len, client)) = front.recv_from(&mut buf).await else {
            return;
        };
        let back = match sessions.get(&client) {
            Some(s) => s.clone(),
            None => {
                let back = Arc::new(UdpSocket::bind("127.0.0.1:0").await.expect("bind"));
                back.connect(target).await.expect("connect");
                // Node to client.
                let (b, f, fl) = (back.clone(), front.clone(), fault.clone());
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 65_536];
                    // A node restarting refuses datagrams for a moment
                    // (ICMP): keep relaying.
                    loop {
                        if let Ok(len) = b.recv(&mut buf).await {
                            forward(&fl, f.clone(), Some(client), buf[..len].to_vec());
                        }
                    }
                });
                sessions.insert(client, back.clone());
                back
            }
        };
        forward(&fault, back, None, buf[..len].to_vec());
    }
}
