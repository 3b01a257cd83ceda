//! The registry of connected clients.
//!
//! Owns [`ClientRegistry`] and [`ClientHandle`]: what other connections may see of a client
//! (`CLIENT LIST`, `CLIENT INFO`, `INFO clients`) and the one thing they may do to it (`CLIENT
//! KILL`). A connection task owns its own state (`conn::ConnState`) and mirrors here only what
//! others read: its name, library, protocol, last command and last activity. The registry never
//! reads or writes a socket; a kill only wakes the connection task, which closes itself.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use parking_lot::Mutex;
use tokio::sync::Notify;

use crate::reply::Protocol;

/// Every connected client, by id.
#[derive(Debug)]
pub struct ClientRegistry {
    /// The next client id; ids start at 1 and are never reused, as in Redis.
    next_id: AtomicU64,
    /// Connected clients. A `BTreeMap` so `CLIENT LIST` comes out in id order.
    clients: Mutex<BTreeMap<u64, Arc<ClientHandle>>>,
}

/// Why a connection was not registered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TooManyClients;

impl ClientRegistry {
    /// An empty registry.
    pub(crate) fn new() -> Self {
        ClientRegistry {
            next_id: AtomicU64::new(1),
            clients: Mutex::new(BTreeMap::new()),
        }
    }

    /// Registers a new connection unless `maxclients` are already connected.
    pub(crate) fn register(
        &self,
        addr: SocketAddr,
        local_addr: SocketAddr,
        fd: i64,
        maxclients: usize,
    ) -> Result<Arc<ClientHandle>, TooManyClients> {
        let mut clients = self.clients.lock();
        if clients.len() >= maxclients {
            return Err(TooManyClients);
        }
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let handle = Arc::new(ClientHandle {
            id,
            addr,
            local_addr,
            fd,
            created: Instant::now(),
            idle_since_ms: AtomicU64::new(0),
            last_command: AtomicUsize::new(0),
            details: Mutex::new(ClientDetails::default()),
            killed: AtomicBool::new(false),
            kill: Notify::new(),
        });
        clients.insert(id, Arc::clone(&handle));
        Ok(handle)
    }

    /// Forgets a connection that has closed.
    pub(crate) fn unregister(&self, id: u64) {
        self.clients.lock().remove(&id);
    }

    /// How many clients are connected.
    pub fn len(&self) -> usize {
        self.clients.lock().len()
    }

    /// Whether no client is connected.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The connected clients, in id order.
    pub fn snapshot(&self) -> Vec<Arc<ClientHandle>> {
        self.clients.lock().values().cloned().collect()
    }

    /// The client with this id, if connected.
    pub fn get(&self, id: u64) -> Option<Arc<ClientHandle>> {
        self.clients.lock().get(&id).cloned()
    }
}

/// One connected client as others see it.
#[derive(Debug)]
pub struct ClientHandle {
    /// Redis's client id: unique, increasing.
    pub id: u64,
    /// The peer's address.
    pub addr: SocketAddr,
    /// The local address the client connected to.
    pub local_addr: SocketAddr,
    /// The socket's file descriptor, for `CLIENT LIST` (-1 where there is none).
    pub fd: i64,
    /// When it connected.
    pub created: Instant,
    /// Milliseconds after `created` of its last request, for `idle=`.
    idle_since_ms: AtomicU64,
    /// Command-table index + 1 of its last command; 0 before the first.
    last_command: AtomicUsize,
    /// What the client told about itself.
    details: Mutex<ClientDetails>,
    /// Set by `CLIENT KILL`; the connection closes at its next wait.
    killed: AtomicBool,
    /// Wakes the connection task when killed.
    kill: Notify,
}

/// What a client told about itself, shown by `CLIENT LIST`.
#[derive(Debug, Clone, Default)]
pub struct ClientDetails {
    /// `CLIENT SETNAME` / `HELLO SETNAME`; empty: none.
    pub name: Bytes,
    /// `CLIENT SETINFO LIB-NAME`.
    pub lib_name: Bytes,
    /// `CLIENT SETINFO LIB-VER`.
    pub lib_ver: Bytes,
    /// Its protocol.
    pub protocol: Protocol,
}

impl ClientHandle {
    /// Records a request: the command's table index, and now as the last activity.
    pub(crate) fn touch(&self, command_index: usize) {
        let now_ms = u64::try_from(self.created.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.idle_since_ms.store(now_ms, Ordering::Relaxed);
        self.last_command
            .store(command_index.saturating_add(1), Ordering::Relaxed);
    }

    /// Seconds since it connected.
    pub fn age_secs(&self) -> u64 {
        self.created.elapsed().as_secs()
    }

    /// Seconds since its last request (or since it connected).
    pub fn idle_secs(&self) -> u64 {
        let now_ms = u64::try_from(self.created.elapsed().as_millis()).unwrap_or(u64::MAX);
        now_ms.saturating_sub(self.idle_since_ms.load(Ordering::Relaxed)) / 1000
    }

    /// The table index of its last command, if any.
    pub fn last_command(&self) -> Option<usize> {
        self.last_command.load(Ordering::Relaxed).checked_sub(1)
    }

    /// A copy of what it told about itself.
    pub fn details(&self) -> ClientDetails {
        self.details.lock().clone()
    }

    /// Changes what it told about itself.
    pub(crate) fn update(&self, change: impl FnOnce(&mut ClientDetails)) {
        change(&mut self.details.lock());
    }

    /// Asks the connection to close (`CLIENT KILL`).
    pub(crate) fn kill(&self) {
        self.killed.store(true, Ordering::Release);
        // `notify_one` keeps a permit when the task is not waiting yet, so a kill that lands
        // while the connection runs a command still wakes its next wait.
        self.kill.notify_one();
    }

    /// Whether `CLIENT KILL` named it.
    pub(crate) fn is_killed(&self) -> bool {
        self.killed.load(Ordering::Acquire)
    }

    /// Completes when the client is killed.
    pub(crate) async fn killed(&self) {
        while !self.is_killed() {
            self.kill.notified().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(port: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], port))
    }

    #[test]
    fn registry_refuses_past_maxclients_and_frees_slots() {
        let registry = ClientRegistry::new();
        let a = registry.register(addr(1), addr(6379), 7, 2).expect("first");
        let b = registry
            .register(addr(2), addr(6379), 8, 2)
            .expect("second");
        assert_eq!(
            registry.register(addr(3), addr(6379), 9, 2).err(),
            Some(TooManyClients)
        );
        assert!(b.id > a.id);
        registry.unregister(a.id);
        let c = registry.register(addr(3), addr(6379), 9, 2).expect("freed");
        assert!(c.id > b.id);
        let ids: Vec<u64> = registry.snapshot().iter().map(|h| h.id).collect();
        assert_eq!(ids, vec![b.id, c.id]);
    }

    #[tokio::test]
    async fn kill_wakes_a_waiter_even_if_it_comes_first() {
        let registry = ClientRegistry::new();
        let handle = registry
            .register(addr(1), addr(6379), 7, 10)
            .expect("register");
        handle.kill();
        handle.killed().await;
        assert!(handle.is_killed());
    }
}
