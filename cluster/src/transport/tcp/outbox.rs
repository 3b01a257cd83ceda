//! A connection's outbox: the bytes of the frames waiting for the writer task.
//!
//! Owns [`Outbox`]: one byte buffer behind a mutex, into which senders encode whole frames in
//! place (no frame or payload buffer of their own, no queue of messages) and which the writer
//! swaps out whole, so every frame queued since its last write leaves in one write. The buffer
//! is bounded by admission: each sender says how large its frame will be (a hint, clamped to
//! the cap so a frame larger than the cap still goes once the outbox is empty), and goes
//! straight in only while nobody waits and its hint fits beside the buffered and reserved
//! bytes. Otherwise it waits in line; whenever room appears (the writer takes the buffer, an
//! admitted sender writes or gives up) the oldest waiters are admitted while their hints fit:
//! their room is reserved and they are woken, and each writes whenever it is next polled. So
//! senders get room in the order they asked for it, a large frame is not starved by small ones,
//! and a sender that was admitted but is not polled for a while (a caller busy with its local
//! replica) holds only its own reservation, never the line behind it. A hint that
//! underestimates lets the buffer exceed the cap by the difference. Closing fails waiting and
//! later senders and drops the bytes not yet taken. Must never touch the socket or decide what
//! a frame says.

use std::collections::BTreeMap;
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
    /// Room promised to admitted senders that have not written yet (their clamped hints).
    reserved: usize,
    /// Senders waiting to be admitted, by ticket: tickets only grow, so the first is the
    /// oldest, and a sender finds or removes its own entry in logarithmic time.
    waiting: BTreeMap<u64, Waiter>,
    next_ticket: u64,
    /// The writer, when it waits for bytes.
    writer: Option<Waker>,
}

struct Waiter {
    /// The room it will take (its hint, clamped to the cap).
    need: usize,
    waker: Waker,
}

impl State {
    fn fits(&self, need: usize, cap: usize) -> bool {
        self.buf.len() + self.reserved + need <= cap
    }

    /// Admits the oldest waiters while their frames fit, reserving their room, and has them
    /// woken. Stops at the first that does not fit: a later, smaller one must not overtake it.
    #[inline]
    fn admit(&mut self, cap: usize, wakes: &mut Wakes) {
        // Called on every push: the common case, nobody waiting, stays inline.
        if !self.waiting.is_empty() {
            self.admit_waiting(cap, wakes);
        }
    }

    #[inline(never)]
    fn admit_waiting(&mut self, cap: usize, wakes: &mut Wakes) {
        let used = self.buf.len();
        while let Some(first) = self.waiting.first_entry() {
            if used + self.reserved + first.get().need > cap {
                break;
            }
            let waiter = first.remove();
            self.reserved += waiter.need;
            wakes.senders.push(waiter.waker);
        }
    }

    /// Gives back the room reserved for an admitted sender.
    fn release(&mut self, need: usize) {
        debug_assert!(self.reserved >= need, "released more room than reserved");
        self.reserved = self.reserved.saturating_sub(need);
    }
}

/// Wakers to wake once the outbox's lock is released. Declared before the lock guard, so it is
/// dropped (and wakes) after the guard, on every way out of a function, unwinding included.
/// The writer has a slot of its own: it is the one woken on the common path, which then costs
/// no walk over an empty list (profiled: the list's drain was most of an uncontended push).
#[derive(Default)]
struct Wakes {
    writer: Option<Waker>,
    senders: Vec<Waker>,
}

impl Drop for Wakes {
    #[inline]
    fn drop(&mut self) {
        if let Some(writer) = self.writer.take() {
            writer.wake();
        }
        if !self.senders.is_empty() {
            for waker in std::mem::take(&mut self.senders) {
                waker.wake();
            }
        }
    }
}

impl Outbox {
    /// An empty outbox whose senders wait once their frames would take it past `cap` bytes.
    pub(super) fn new(cap: usize) -> Self {
        Self {
            cap,
            state: Mutex::new(State {
                buf: BytesMut::new(),
                closed: false,
                reserved: 0,
                waiting: BTreeMap::new(),
                next_ticket: 0,
                writer: None,
            }),
        }
    }

    /// Waits for room for a frame of about `size_hint` bytes, then lets `put` append to the
    /// buffer and returns what it returns. `put` must append whole frames or nothing (it runs
    /// under the outbox's lock, once; if it panics, what it appended is cut off again). Done at
    /// the first poll when nobody waits and the frame fits.
    pub(super) fn push<T, F: FnOnce(&mut BytesMut) -> T>(
        &self,
        size_hint: usize,
        put: F,
    ) -> Push<'_, F> {
        Push {
            outbox: self,
            need: size_hint.min(self.cap),
            put: Some(put),
            ticket: None,
        }
    }

    /// Resolves to `true` once the buffer holds bytes, `false` once the outbox is closed.
    pub(super) fn ready(&self) -> Ready<'_> {
        Ready { outbox: self }
    }

    /// Swaps the buffered bytes into `out` (expected empty; its memory becomes the buffer's)
    /// and admits the waiting senders that now fit.
    pub(super) fn take(&self, out: &mut BytesMut) {
        let mut wakes = Wakes::default();
        let mut state = self.state.lock();
        std::mem::swap(&mut state.buf, out);
        state.admit(self.cap, &mut wakes);
    }

    /// Closes the outbox: drops the bytes not taken, fails every waiting and later sender and
    /// tells the writer. Closing twice does nothing.
    pub(super) fn close(&self) {
        let mut wakes = Wakes::default();
        let mut state = self.state.lock();
        if state.closed {
            return;
        }
        state.closed = true;
        state.buf = BytesMut::new();
        state.reserved = 0;
        let waiting = std::mem::take(&mut state.waiting);
        wakes.senders = waiting.into_values().map(|waiter| waiter.waker).collect();
        wakes.writer = state.writer.take();
    }

    #[cfg(test)]
    pub(super) fn buffered(&self) -> usize {
        self.state.lock().buf.len()
    }
}

/// [`Outbox::push`]'s future. Dropped while waiting it leaves the line; dropped once admitted
/// it gives its reserved room to the next in line.
pub(super) struct Push<'a, F> {
    outbox: &'a Outbox,
    /// The room it takes: its hint, clamped to the cap.
    need: usize,
    put: Option<F>,
    /// Its place in line, from its first wait until it writes (or the outbox closes): in
    /// `waiting` while it waits, gone from it once admitted.
    ticket: Option<u64>,
}

// `put` is never pinned: it is only moved out and called.
impl<F> Unpin for Push<'_, F> {}

impl<T, F: FnOnce(&mut BytesMut) -> T> Future for Push<'_, F> {
    type Output = Result<T, OutboxClosed>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        let cap = this.outbox.cap;
        let mut wakes = Wakes::default();
        let mut state = this.outbox.state.lock();
        if state.closed {
            // `close` emptied the line and dropped the reservations.
            this.ticket = None;
            return Poll::Ready(Err(OutboxClosed));
        }
        match this.ticket {
            Some(ticket) => {
                if let Some(waiter) = state.waiting.get_mut(&ticket) {
                    waiter.waker.clone_from(cx.waker());
                    return Poll::Pending;
                }
                // Admitted: its reserved room becomes the bytes it writes now.
                this.ticket = None;
                state.release(this.need);
            }
            None => {
                if this.put.is_none() {
                    // Polled after it completed: nothing left to send.
                    return Poll::Ready(Err(OutboxClosed));
                }
                if !state.waiting.is_empty() || !state.fits(this.need, cap) {
                    let ticket = state.next_ticket;
                    state.next_ticket += 1;
                    let waker = cx.waker().clone();
                    state.waiting.insert(
                        ticket,
                        Waiter {
                            need: this.need,
                            waker,
                        },
                    );
                    this.ticket = Some(ticket);
                    return Poll::Pending;
                }
            }
        }
        let Some(put) = this.put.take() else {
            return Poll::Ready(Err(OutboxClosed));
        };
        let start = state.buf.len();
        let mut append = Append {
            state: &mut state,
            wakes: &mut wakes,
            cap,
            start,
            done: false,
        };
        // Room for the frame at once, from the hint the sender was admitted with, so the
        // encoding does not grow the buffer step by step.
        append.state.buf.reserve(this.need);
        let out = put(&mut append.state.buf);
        append.done = true;
        drop(append);
        Poll::Ready(Ok(out))
    }
}

/// Ends a sender's append however its `put` ends. A `put` that panics leaves no partial frame
/// behind (every later frame on the connection would be read out of step), and either way the
/// writer is told of new bytes and the room left goes to the waiters, whose reservations would
/// otherwise wait for the next take.
struct Append<'a> {
    state: &'a mut State,
    wakes: &'a mut Wakes,
    cap: usize,
    /// The buffer's length before the frame.
    start: usize,
    /// `put` returned.
    done: bool,
}

impl Drop for Append<'_> {
    fn drop(&mut self) {
        if !self.done {
            self.state.buf.truncate(self.start);
        }
        if self.state.buf.len() > self.start {
            self.wakes.writer = self.state.writer.take();
        }
        // The frame may have come out smaller than its hint, or not at all.
        self.state.admit(self.cap, self.wakes);
    }
}

impl<F> Drop for Push<'_, F> {
    fn drop(&mut self) {
        let Some(ticket) = self.ticket else {
            return;
        };
        let mut wakes = Wakes::default();
        let mut state = self.outbox.state.lock();
        if state.closed {
            return;
        }
        if state.waiting.remove(&ticket).is_none() {
            // Admitted but never written: its room goes to the next in line.
            state.release(self.need);
        }
        state.admit(self.outbox.cap, &mut wakes);
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

    /// A push of an `n`-byte frame whose hint is exact.
    fn push(outbox: &Outbox, n: usize) -> Push<'_, impl FnOnce(&mut BytesMut) -> usize> {
        outbox.push(n, move |buf: &mut BytesMut| {
            buf.extend_from_slice(&vec![7u8; n]);
            n
        })
    }

    #[test]
    fn a_push_with_room_completes_at_its_first_poll_and_wakes_the_writer() {
        let outbox = Outbox::new(16);
        let writer = Arc::new(Count::default());
        let mut ready = outbox.ready();
        assert!(poll(&mut ready, &writer).is_pending());
        let sender = Arc::new(Count::default());
        assert_eq!(poll(&mut push(&outbox, 3), &sender), Poll::Ready(Ok(3)));
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
        assert_eq!(poll(&mut push(&outbox, 8), &sender), Poll::Ready(Ok(8)));
        let first = Arc::new(Count::default());
        let second = Arc::new(Count::default());
        let mut a = push(&outbox, 6);
        let mut b = push(&outbox, 5);
        assert!(poll(&mut a, &first).is_pending());
        assert!(poll(&mut b, &second).is_pending());
        let mut out = BytesMut::new();
        outbox.take(&mut out);
        assert_eq!(out.len(), 8);
        assert_eq!(first.get(), 1, "the oldest sender is let in");
        // 6 + 5 bytes do not fit in 10: the second waits for the next take.
        assert_eq!(second.get(), 0);
        assert!(poll(&mut b, &second).is_pending());
        assert_eq!(poll(&mut a, &first), Poll::Ready(Ok(6)));
        assert_eq!(second.get(), 0);
        outbox.take(&mut BytesMut::new());
        assert_eq!(second.get(), 1);
        assert_eq!(poll(&mut b, &second), Poll::Ready(Ok(5)));
        assert_eq!(outbox.buffered(), 5);
    }

    #[test]
    fn a_woken_first_waiter_that_is_not_polled_does_not_hold_up_later_senders() {
        let outbox = Outbox::new(10);
        let sender = Arc::new(Count::default());
        assert!(poll(&mut push(&outbox, 10), &sender).is_ready());
        let parked = Arc::new(Count::default());
        let behind = Arc::new(Count::default());
        let mut first = push(&outbox, 2);
        let mut second = push(&outbox, 2);
        assert!(poll(&mut first, &parked).is_pending());
        assert!(poll(&mut second, &behind).is_pending());
        outbox.take(&mut BytesMut::new());
        // `first` is woken and never polled again (its caller is busy elsewhere): the sender
        // behind it and a newcomer still go, each at its next poll.
        assert_eq!((parked.get(), behind.get()), (1, 1));
        assert_eq!(poll(&mut second, &behind), Poll::Ready(Ok(2)));
        assert_eq!(poll(&mut push(&outbox, 3), &sender), Poll::Ready(Ok(3)));
        // Its room stays reserved, so the cap still holds while it is away.
        let over = Arc::new(Count::default());
        let mut late = push(&outbox, 4);
        assert!(poll(&mut late, &over).is_pending());
        assert_eq!(poll(&mut first, &parked), Poll::Ready(Ok(2)));
        assert_eq!(outbox.buffered(), 7);
    }

    #[test]
    fn a_small_newcomer_does_not_overtake_a_waiting_large_frame() {
        let outbox = Outbox::new(10);
        let sender = Arc::new(Count::default());
        assert!(poll(&mut push(&outbox, 5), &sender).is_ready());
        let large = Arc::new(Count::default());
        let small = Arc::new(Count::default());
        let mut a = push(&outbox, 8);
        assert!(poll(&mut a, &large).is_pending());
        // 5 + 2 would fit, but the large frame asked first.
        let mut b = push(&outbox, 2);
        assert!(poll(&mut b, &small).is_pending());
        outbox.take(&mut BytesMut::new());
        assert_eq!(
            (large.get(), small.get()),
            (1, 1),
            "both fit in the empty outbox"
        );
        assert_eq!(poll(&mut b, &small), Poll::Ready(Ok(2)));
        assert_eq!(poll(&mut a, &large), Poll::Ready(Ok(8)));
    }

    #[test]
    fn a_frame_larger_than_the_cap_goes_once_the_outbox_is_empty() {
        let outbox = Outbox::new(10);
        let sender = Arc::new(Count::default());
        assert!(poll(&mut push(&outbox, 1), &sender).is_ready());
        let big = Arc::new(Count::default());
        let mut a = push(&outbox, 25);
        assert!(poll(&mut a, &big).is_pending());
        outbox.take(&mut BytesMut::new());
        assert_eq!(big.get(), 1);
        assert_eq!(poll(&mut a, &big), Poll::Ready(Ok(25)));
        assert_eq!(outbox.buffered(), 25);
    }

    #[test]
    fn a_waiting_sender_dropped_passes_its_turn_on() {
        let outbox = Outbox::new(4);
        let sender = Arc::new(Count::default());
        assert!(poll(&mut push(&outbox, 2), &sender).is_ready());
        let first = Arc::new(Count::default());
        let second = Arc::new(Count::default());
        let mut a = push(&outbox, 3);
        let mut b = push(&outbox, 1);
        assert!(poll(&mut a, &first).is_pending());
        assert!(poll(&mut b, &second).is_pending());
        // `b` fits beside the buffered bytes, and only `a` stood before it.
        drop(a);
        assert_eq!(second.get(), 1);
        assert_eq!(poll(&mut b, &second), Poll::Ready(Ok(1)));
    }

    #[test]
    fn an_admitted_sender_dropped_gives_its_room_to_the_next() {
        let outbox = Outbox::new(10);
        let sender = Arc::new(Count::default());
        assert!(poll(&mut push(&outbox, 10), &sender).is_ready());
        let first = Arc::new(Count::default());
        let second = Arc::new(Count::default());
        let mut a = push(&outbox, 6);
        let mut b = push(&outbox, 6);
        assert!(poll(&mut a, &first).is_pending());
        assert!(poll(&mut b, &second).is_pending());
        outbox.take(&mut BytesMut::new());
        assert_eq!((first.get(), second.get()), (1, 0));
        drop(a);
        assert_eq!(second.get(), 1);
        assert_eq!(poll(&mut b, &second), Poll::Ready(Ok(6)));
        assert_eq!(poll(&mut push(&outbox, 4), &sender), Poll::Ready(Ok(4)));
    }

    #[test]
    fn a_frame_smaller_than_its_hint_lets_the_next_in() {
        let outbox = Outbox::new(10);
        let sender = Arc::new(Count::default());
        assert!(poll(&mut push(&outbox, 10), &sender).is_ready());
        let first = Arc::new(Count::default());
        let second = Arc::new(Count::default());
        let mut a = outbox.push(8, |buf: &mut BytesMut| buf.extend_from_slice(&[1, 2]));
        let mut b = push(&outbox, 5);
        assert!(poll(&mut a, &first).is_pending());
        assert!(poll(&mut b, &second).is_pending());
        outbox.take(&mut BytesMut::new());
        assert_eq!(second.get(), 0);
        assert_eq!(poll(&mut a, &first), Poll::Ready(Ok(())));
        assert_eq!(second.get(), 1, "2 + 5 bytes fit");
        assert_eq!(poll(&mut b, &second), Poll::Ready(Ok(5)));
    }

    #[test]
    fn closing_fails_waiting_and_later_senders_and_ends_the_writer() {
        let outbox = Outbox::new(4);
        let sender = Arc::new(Count::default());
        assert!(poll(&mut push(&outbox, 4), &sender).is_ready());
        let waiter = Arc::new(Count::default());
        let mut waiting = push(&outbox, 1);
        assert!(poll(&mut waiting, &waiter).is_pending());
        outbox.close();
        outbox.close();
        assert_eq!(waiter.get(), 1);
        assert_eq!(poll(&mut waiting, &waiter), Poll::Ready(Err(OutboxClosed)));
        assert_eq!(
            poll(&mut push(&outbox, 1), &sender),
            Poll::Ready(Err(OutboxClosed))
        );
        assert_eq!(poll(&mut outbox.ready(), &sender), Poll::Ready(false));
        assert_eq!(outbox.buffered(), 0);
    }

    /// Polls `push`, whose `put` panics.
    fn poll_panicking<F: Future + Unpin>(push: &mut F, count: &Arc<Count>) {
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| poll(push, count)));
        assert!(outcome.is_err());
    }

    fn broken(buf: &mut BytesMut) {
        buf.extend_from_slice(&[1, 2]);
        panic!("an encoding bug");
    }

    #[test]
    fn a_put_that_panics_leaves_no_partial_frame_and_lets_the_next_in() {
        let outbox = Outbox::new(10);
        let sender = Arc::new(Count::default());
        assert!(poll(&mut push(&outbox, 3), &sender).is_ready());
        poll_panicking(&mut outbox.push(2, broken), &sender);
        assert_eq!(
            outbox.buffered(),
            3,
            "the two bytes of the broken frame are gone"
        );
        assert!(poll(&mut push(&outbox, 7), &sender).is_ready());
        let first = Arc::new(Count::default());
        let second = Arc::new(Count::default());
        let mut a = outbox.push(6, broken);
        let mut b = push(&outbox, 6);
        assert!(poll(&mut a, &first).is_pending());
        assert!(poll(&mut b, &second).is_pending());
        outbox.take(&mut BytesMut::new());
        assert_eq!((first.get(), second.get()), (1, 0));
        poll_panicking(&mut a, &first);
        assert_eq!(outbox.buffered(), 0);
        assert_eq!(second.get(), 1, "the room `a` had reserved goes to `b`");
        assert_eq!(poll(&mut b, &second), Poll::Ready(Ok(6)));
    }

    #[derive(Clone, Debug)]
    enum Op {
        /// A sender with a frame of this many bytes, polled once.
        Push(usize),
        /// Polls the pending sender at this index (modulo their number).
        Poll(usize),
        /// Drops the pending sender at this index.
        Drop(usize),
        Take,
    }

    fn op(cap: usize) -> impl Strategy<Value = Op> {
        prop_oneof![
            (1..=cap).prop_map(Op::Push),
            any::<usize>().prop_map(Op::Poll),
            any::<usize>().prop_map(Op::Drop),
            Just(Op::Take),
        ]
    }

    /// A sender that did not complete at its first poll.
    struct Waiting<'a> {
        push: Push<'a, Put>,
        count: Arc<Count>,
        /// Wake-ups seen by its last poll.
        polled_at: usize,
    }

    type Put = Box<dyn FnOnce(&mut BytesMut) -> usize>;

    fn boxed(n: usize) -> Put {
        Box::new(move |buf: &mut BytesMut| {
            buf.extend_from_slice(&vec![7u8; n]);
            n
        })
    }

    use proptest::prelude::*;

    proptest! {
        /// Whatever senders do, the buffer stays within the cap, waiters are admitted oldest
        /// first, every byte written is taken once, and a driver that polls only the senders
        /// it was told to (as an executor does) gets every sender through.
        #[test]
        fn senders_keep_the_cap_the_line_and_their_wake_ups(ops in proptest::collection::vec(op(16), 1..80)) {
            let cap = 16;
            let outbox = Outbox::new(cap);
            // Oldest first (`Push` polls at once, so creation order is the order of the line).
            let mut waiting: Vec<Waiting<'_>> = Vec::new();
            let (mut written, mut taken) = (0usize, 0usize);
            for op in ops {
                match op {
                    Op::Push(n) => {
                        let count = Arc::new(Count::default());
                        let mut push = outbox.push(n, boxed(n));
                        match poll(&mut push, &count) {
                            Poll::Ready(done) => {
                                // Not ahead of anyone still waiting to be let in.
                                prop_assert!(waiting.iter().all(|w| w.count.get() > 0));
                                written += done.expect("open");
                            }
                            Poll::Pending => waiting.push(Waiting { push, count, polled_at: 0 }),
                        }
                    }
                    Op::Poll(i) if !waiting.is_empty() => {
                        let i = i % waiting.len();
                        let sender = &mut waiting[i];
                        sender.polled_at = sender.count.get();
                        if let Poll::Ready(done) = poll(&mut sender.push, &sender.count) {
                            written += done.expect("open");
                            waiting.remove(i);
                        }
                    }
                    Op::Drop(i) if !waiting.is_empty() => {
                        let i = i % waiting.len();
                        waiting.remove(i);
                    }
                    Op::Take => {
                        let mut out = BytesMut::new();
                        outbox.take(&mut out);
                        taken += out.len();
                    }
                    Op::Poll(_) | Op::Drop(_) => {}
                }
                prop_assert!(outbox.buffered() <= cap);
                prop_assert_eq!(written, taken + outbox.buffered());
                // Nobody woken while someone older still waits unwoken.
                let first_unwoken = waiting.iter().position(|w| w.count.get() == 0);
                if let Some(at) = first_unwoken {
                    prop_assert!(waiting[at..].iter().all(|w| w.count.get() == 0));
                }
            }
            let mut rounds = 0;
            while !waiting.is_empty() {
                rounds += 1;
                prop_assert!(rounds <= 100, "senders stuck: {}", waiting.len());
                let mut i = 0;
                while i < waiting.len() {
                    let sender = &mut waiting[i];
                    if sender.count.get() > sender.polled_at {
                        sender.polled_at = sender.count.get();
                        if let Poll::Ready(done) = poll(&mut sender.push, &sender.count) {
                            written += done.expect("open");
                            waiting.remove(i);
                            continue;
                        }
                    }
                    i += 1;
                }
                let mut out = BytesMut::new();
                outbox.take(&mut out);
                taken += out.len();
            }
            prop_assert_eq!(written, taken + outbox.buffered());
        }
    }
}
