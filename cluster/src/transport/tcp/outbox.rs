//! A connection's outbox: the bytes of the frames waiting for the writer task.
//!
//! Owns [`Outbox`]: one byte buffer behind a mutex, into which senders encode whole frames in
//! place (no frame or payload buffer of their own, no queue of messages) and which the writer
//! swaps out whole, so every frame queued since its last write leaves in one write. The buffer
//! is bounded: once it holds `cap` bytes a sender waits, and while any sender waits every
//! newcomer queues behind it, so senders get room in the order they asked for it and a large
//! frame is not starved by small ones. A frame is admitted whole while the buffer is under the
//! cap, so the buffer may exceed the cap by one frame (a frame larger than the cap still
//! goes, once the writer has emptied the buffer). Closing fails waiting and later senders and
//! drops the bytes not yet taken. Must never touch the socket or decide what a frame says.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

use bytes::BytesMut;
use parking_lot::Mutex;

/// The bound on an outbox's bytes before senders wait.
pub(super) const OUTBOX_CAP: usize = 4 * 1024 * 1024;

/// The outbox is closed: the frame was not queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct OutboxClosed;

/// Frames waiting for the writer, as bytes.
pub(super) struct Outbox {
    cap: usize,
    state: Mutex<State>,
}

struct State {
    buf: BytesMut,
    closed: bool,
    /// Senders waiting for room, oldest first, by ticket.
    waiting: VecDeque<(u64, Waker)>,
    next_ticket: u64,
    /// The writer, when it waits for bytes.
    writer: Option<Waker>,
}

impl State {
    /// The oldest waiting sender's waker, if the buffer has room for it.
    fn next_sender(&self, cap: usize) -> Option<Waker> {
        if self.buf.len() < cap {
            self.waiting.front().map(|(_, waker)| waker.clone())
        } else {
            None
        }
    }
}

impl Outbox {
    /// An empty outbox whose senders wait once it holds `cap` bytes.
    pub(super) fn new(cap: usize) -> Self {
        Self {
            cap,
            state: Mutex::new(State {
                buf: BytesMut::new(),
                closed: false,
                waiting: VecDeque::new(),
                next_ticket: 0,
                writer: None,
            }),
        }
    }

    /// Waits for room, then lets `put` append to the buffer and returns what it returns.
    /// `put` must append whole frames or nothing (it runs under the outbox's lock, once).
    /// Done at the first poll when there is room and nobody waits before this sender.
    pub(super) fn push<T, F: FnOnce(&mut BytesMut) -> T>(&self, put: F) -> Push<'_, F> {
        Push {
            outbox: self,
            put: Some(put),
            ticket: None,
        }
    }

    /// Resolves to `true` once the buffer holds bytes, `false` once the outbox is closed.
    pub(super) fn ready(&self) -> Ready<'_> {
        Ready { outbox: self }
    }

    /// Swaps the buffered bytes into `out` (expected empty; its memory becomes the buffer's)
    /// and lets the oldest waiting sender in.
    pub(super) fn take(&self, out: &mut BytesMut) {
        let mut state = self.state.lock();
        std::mem::swap(&mut state.buf, out);
        let next = state.next_sender(self.cap);
        drop(state);
        if let Some(waker) = next {
            waker.wake();
        }
    }

    /// Closes the outbox: drops the bytes not taken, fails every waiting and later sender and
    /// tells the writer. Closing twice does nothing.
    pub(super) fn close(&self) {
        let mut state = self.state.lock();
        if state.closed {
            return;
        }
        state.closed = true;
        state.buf = BytesMut::new();
        let waiting: Vec<Waker> = state.waiting.drain(..).map(|(_, waker)| waker).collect();
        let writer = state.writer.take();
        drop(state);
        for waker in waiting.into_iter().chain(writer) {
            waker.wake();
        }
    }

    #[cfg(test)]
    pub(super) fn buffered(&self) -> usize {
        self.state.lock().buf.len()
    }
}

/// [`Outbox::push`]'s future. Dropped while waiting, it gives up its place in the queue.
pub(super) struct Push<'a, F> {
    outbox: &'a Outbox,
    put: Option<F>,
    /// Our place in the queue, once we had to wait.
    ticket: Option<u64>,
}

// `put` is never pinned: it is only moved out and called.
impl<F> Unpin for Push<'_, F> {}

impl<T, F: FnOnce(&mut BytesMut) -> T> Future for Push<'_, F> {
    type Output = Result<T, OutboxClosed>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        let cap = this.outbox.cap;
        let mut state = this.outbox.state.lock();
        if state.closed {
            // `close` emptied the queue.
            this.ticket = None;
            return Poll::Ready(Err(OutboxClosed));
        }
        let first = match this.ticket {
            None => state.waiting.is_empty(),
            Some(ticket) => state.waiting.front().is_some_and(|(t, _)| *t == ticket),
        };
        if first && state.buf.len() < cap {
            let Some(put) = this.put.take() else {
                // Polled after it completed: nothing left to send.
                return Poll::Ready(Err(OutboxClosed));
            };
            if this.ticket.take().is_some() {
                state.waiting.pop_front();
            }
            let out = put(&mut state.buf);
            let writer = state.writer.take();
            let next = state.next_sender(cap);
            drop(state);
            for waker in writer.into_iter().chain(next) {
                waker.wake();
            }
            return Poll::Ready(Ok(out));
        }
        match this.ticket {
            Some(ticket) => {
                if let Some((_, waker)) = state.waiting.iter_mut().find(|(t, _)| *t == ticket) {
                    waker.clone_from(cx.waker());
                }
            }
            None => {
                let ticket = state.next_ticket;
                state.next_ticket += 1;
                state.waiting.push_back((ticket, cx.waker().clone()));
                this.ticket = Some(ticket);
            }
        }
        Poll::Pending
    }
}

impl<F> Drop for Push<'_, F> {
    fn drop(&mut self) {
        let Some(ticket) = self.ticket else {
            return;
        };
        let mut state = self.outbox.state.lock();
        let Some(at) = state.waiting.iter().position(|(t, _)| *t == ticket) else {
            return;
        };
        state.waiting.remove(at);
        // We may have been woken as the first in line: pass the turn on.
        let next = if at == 0 {
            state.next_sender(self.outbox.cap)
        } else {
            None
        };
        drop(state);
        if let Some(waker) = next {
            waker.wake();
        }
    }
}

/// [`Outbox::ready`]'s future.
pub(super) struct Ready<'a> {
    outbox: &'a Outbox,
}

impl Future for Ready<'_> {
    type Output = bool;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<bool> {
        let mut state = self.outbox.state.lock();
        if state.closed {
            return Poll::Ready(false);
        }
        if !state.buf.is_empty() {
            return Poll::Ready(true);
        }
        match &mut state.writer {
            Some(waker) => waker.clone_from(cx.waker()),
            slot => *slot = Some(cx.waker().clone()),
        }
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::task::Wake;

    use super::*;

    /// Counts its wake-ups.
    #[derive(Default)]
    struct Count(std::sync::atomic::AtomicUsize);

    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
    }

    impl Count {
        fn get(&self) -> usize {
            self.0.load(std::sync::atomic::Ordering::SeqCst)
        }
    }

    fn poll<F: Future + Unpin>(future: &mut F, count: &Arc<Count>) -> Poll<F::Output> {
        let waker = Waker::from(Arc::clone(count));
        Pin::new(future).poll(&mut Context::from_waker(&waker))
    }

    fn bytes(n: usize) -> impl FnOnce(&mut BytesMut) -> usize {
        move |buf: &mut BytesMut| {
            buf.extend_from_slice(&vec![7u8; n]);
            n
        }
    }

    #[test]
    fn a_push_with_room_completes_at_its_first_poll_and_wakes_the_writer() {
        let outbox = Outbox::new(16);
        let writer = Arc::new(Count::default());
        let mut ready = outbox.ready();
        assert!(poll(&mut ready, &writer).is_pending());
        let sender = Arc::new(Count::default());
        assert_eq!(
            poll(&mut outbox.push(bytes(3)), &sender),
            Poll::Ready(Ok(3))
        );
        assert_eq!(writer.get(), 1);
        assert_eq!(poll(&mut ready, &writer), Poll::Ready(true));
        let mut out = BytesMut::new();
        outbox.take(&mut out);
        assert_eq!(&out[..], &[7, 7, 7]);
        assert_eq!(outbox.buffered(), 0);
    }

    #[test]
    fn a_full_outbox_makes_senders_wait_in_order_until_the_writer_takes_its_bytes() {
        let outbox = Outbox::new(10);
        let sender = Arc::new(Count::default());
        // Admitted under the cap, even though it takes the buffer past it.
        assert_eq!(
            poll(&mut outbox.push(bytes(12)), &sender),
            Poll::Ready(Ok(12))
        );
        let first = Arc::new(Count::default());
        let second = Arc::new(Count::default());
        let mut a = outbox.push(bytes(4));
        let mut b = outbox.push(bytes(5));
        assert!(poll(&mut a, &first).is_pending());
        assert!(poll(&mut b, &second).is_pending());
        let mut out = BytesMut::new();
        outbox.take(&mut out);
        assert_eq!(out.len(), 12);
        assert_eq!(first.get(), 1, "the oldest sender is let in");
        // The second was queued first in line behind `a`: it cannot overtake it.
        assert!(poll(&mut b, &second).is_pending());
        assert_eq!(poll(&mut a, &first), Poll::Ready(Ok(4)));
        assert_eq!(second.get(), 1, "room is left: the next one is let in too");
        assert_eq!(poll(&mut b, &second), Poll::Ready(Ok(5)));
        assert_eq!(outbox.buffered(), 9);
    }

    #[test]
    fn a_newcomer_waits_behind_a_waiting_sender_even_when_there_is_room() {
        let outbox = Outbox::new(10);
        let sender = Arc::new(Count::default());
        assert!(poll(&mut outbox.push(bytes(10)), &sender).is_ready());
        let mut waiting = outbox.push(bytes(1));
        assert!(poll(&mut waiting, &sender).is_pending());
        outbox.take(&mut BytesMut::new());
        let newcomer = Arc::new(Count::default());
        let mut late = outbox.push(bytes(1));
        assert!(poll(&mut late, &newcomer).is_pending());
        assert_eq!(poll(&mut waiting, &sender), Poll::Ready(Ok(1)));
        assert_eq!(poll(&mut late, &newcomer), Poll::Ready(Ok(1)));
    }

    #[test]
    fn a_waiting_sender_dropped_passes_its_turn_on() {
        let outbox = Outbox::new(4);
        let sender = Arc::new(Count::default());
        assert!(poll(&mut outbox.push(bytes(4)), &sender).is_ready());
        let first = Arc::new(Count::default());
        let second = Arc::new(Count::default());
        let mut a = outbox.push(bytes(1));
        let mut b = outbox.push(bytes(1));
        assert!(poll(&mut a, &first).is_pending());
        assert!(poll(&mut b, &second).is_pending());
        outbox.take(&mut BytesMut::new());
        drop(a);
        assert_eq!(second.get(), 1);
        assert_eq!(poll(&mut b, &second), Poll::Ready(Ok(1)));
    }

    #[test]
    fn closing_fails_waiting_and_later_senders_and_ends_the_writer() {
        let outbox = Outbox::new(4);
        let sender = Arc::new(Count::default());
        assert!(poll(&mut outbox.push(bytes(4)), &sender).is_ready());
        let waiter = Arc::new(Count::default());
        let mut waiting = outbox.push(bytes(1));
        assert!(poll(&mut waiting, &waiter).is_pending());
        outbox.close();
        outbox.close();
        assert_eq!(waiter.get(), 1);
        assert_eq!(poll(&mut waiting, &waiter), Poll::Ready(Err(OutboxClosed)));
        assert_eq!(
            poll(&mut outbox.push(bytes(1)), &sender),
            Poll::Ready(Err(OutboxClosed))
        );
        assert_eq!(poll(&mut outbox.ready(), &sender), Poll::Ready(false));
        assert_eq!(outbox.buffered(), 0);
    }
}
