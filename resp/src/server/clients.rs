//! The registry of connected clients.
//!
//! Owns [`ClientRegistry`] and [`ClientHandle`]: what other connections may see of a client
//! (`CLIENT LIST`, `CLIENT INFO`, `INFO clients`) and the one thing they may do to it (`CLIENT
//! KILL`, and the server's shutdown). A connection task owns its own state (`conn::ConnState`) and mirrors here only what
//! others read: its name, library, protocol, last command and last activity. The registry never
//! reads or writes a socket; a kill or shutdown only wakes the connection task, which closes
//! itself.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicU8, AtomicUsize, Ordering};
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
            close: AtomicU8::new(NO_CLOSE),
            close_notify: Notify::new(),
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
    /// A [`CloseRequest`] (as its `u8`) or [`NO_CLOSE`]; the connection closes at its next
    /// wait for input.
    close: AtomicU8,
    /// Wakes the connection task when a close is requested.
    close_notify: Notify,
}

/// `ClientHandle::close` when no close was requested.
const NO_CLOSE: u8 = 0;

/// Why a connection is asked to close by someone other than its client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum CloseRequest {
    /// `CLIENT KILL` from another client.
    Killed = 1,
    /// The server is shutting down.
    Shutdown = 2,
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
    /// Records `at` as the client's last activity. The connection calls it once per read
    /// batch rather than per request, as Redis sets `lastinteraction` once per read: `idle=`
    /// counts seconds, and a clock read per pipelined request would cost more than the request.
    pub(crate) fn mark_active(&self, at: Instant) {
        let at_ms = at.saturating_duration_since(self.created).as_millis();
        self.idle_since_ms
            .store(u64::try_from(at_ms).unwrap_or(u64::MAX), Ordering::Relaxed);
    }

    /// Records the table index of the command it is running.
    pub(crate) fn set_last_command(&self, command_index: usize) {
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

    /// Asks the connection to close (`CLIENT KILL`, shutdown). The first request wins.
    pub(crate) fn request_close(&self, reason: CloseRequest) {
        let _ = self.close.compare_exchange(
            NO_CLOSE,
            reason as u8,
            Ordering::AcqRel,
            Ordering::Acquire,
        );
        // `notify_one` keeps a permit when the task is not waiting yet, so a request that
        // lands while the connection runs a command still wakes its next wait.
        self.close_notify.notify_one();
    }

    /// Whether, and why, a close was requested.
    pub(crate) fn close_requested(&self) -> Option<CloseRequest> {
        match self.close.load(Ordering::Acquire) {
            1 => Some(CloseRequest::Killed),
            2 => Some(CloseRequest::Shutdown),
            _ => None,
        }
    }

    /// Completes when a close is requested, with its reason.
    pub(crate) async fn closing(&self) -> CloseRequest {
        loop {
            if let Some(reason) = self.close_requested() {
                return reason;
            }
            self.close_notify.notified().await;
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
    async fn a_close_request_wakes_a_later_waiter_and_the_first_reason_wins() {
        let registry = ClientRegistry::new();
        let handle = registry
            .register(addr(1), addr(6379), 7, 10)
            .expect("register");
        assert_eq!(handle.close_requested(), None);
        handle.request_close(CloseRequest::Killed);
        handle.request_close(CloseRequest::Shutdown);
        assert_eq!(handle.closing().await, CloseRequest::Killed);
    }
}
