//! One key-lock stripe: an async mutex that costs a plain lock and unlock when nobody waits.
//!
//! Owns [`Stripe`] and [`StripeGuard`]. tokio's `Mutex` spent about 350 instructions per lock
//! and unlock here (a semaphore whose release takes its waiter list's lock every time); this one
//! takes a `parking_lot` mutex around a flag. Waiters queue in arrival order and a release hands
//! the stripe straight to the first of them, so nobody can overtake a waiter (tokio's fairness).
//! Must stay cancellation safe: a waiter dropped before it was handed the stripe leaves the
//! queue, and one dropped after passes the stripe on, so a stripe is never left held by nobody.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

use parking_lot::Mutex;

/// An async mutex without data: held by at most one [`StripeGuard`] at a time.
#[derive(Default)]
pub(crate) struct Stripe {
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// Whether someone holds the stripe, or it was handed to a waiter that has not yet seen it.
    /// False implies an empty queue: a release with waiters hands over instead of clearing it.
    held: bool,
    /// The waiter the stripe was handed to, until its next poll claims it.
    handed_to: Option<u64>,
    /// Waiters in arrival order, by ticket.
    queue: VecDeque<(u64, Waker)>,
    /// The next waiter's ticket.
    next_ticket: u64,
}

/// The stripe, held; released on drop.
pub(crate) struct StripeGuard<'a> {
    stripe: &'a Stripe,
}

impl Stripe {
    /// The stripe at once if nobody holds it or waits for it.
    pub(crate) fn try_lock(&self) -> Option<StripeGuard<'_>> {
        let mut state = self.state.lock();
        if state.held {
            return None;
        }
        state.held = true;
        Some(StripeGuard { stripe: self })
    }

    /// The stripe, after every earlier waiter has had it.
    pub(crate) fn lock(&self) -> Acquire<'_> {
        Acquire {
            stripe: self,
            ticket: None,
            done: false,
        }
    }

    /// Passes the stripe to the first waiter, or frees it.
    fn release(&self) {
        let waker = {
            let mut state = self.state.lock();
            match state.queue.pop_front() {
                Some((ticket, waker)) => {
                    state.handed_to = Some(ticket);
                    Some(waker)
                }
                None => {
                    state.held = false;
                    None
                }
            }
        };
        if let Some(waker) = waker {
            waker.wake();
        }
    }
}

impl Drop for StripeGuard<'_> {
    fn drop(&mut self) {
        self.stripe.release();
    }
}

/// A wait for a [`Stripe`]: [`Stripe::lock`].
pub(crate) struct Acquire<'a> {
    stripe: &'a Stripe,
    /// This waiter's place in the queue, once it has one.
    ticket: Option<u64>,
    /// The guard was returned: nothing to undo on drop.
    done: bool,
}

impl<'a> Future for Acquire<'a> {
    type Output = StripeGuard<'a>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<StripeGuard<'a>> {
        let stripe = self.stripe;
        let mut state = stripe.state.lock();
        match self.ticket {
            None => {
                if !state.held {
                    state.held = true;
                    drop(state);
                    self.done = true;
                    return Poll::Ready(StripeGuard { stripe });
                }
                let ticket = state.next_ticket;
                state.next_ticket = ticket.wrapping_add(1);
                state.queue.push_back((ticket, cx.waker().clone()));
                drop(state);
                self.ticket = Some(ticket);
                Poll::Pending
            }
            Some(ticket) => {
                if state.handed_to == Some(ticket) {
                    state.handed_to = None;
                    drop(state);
                    self.done = true;
                    return Poll::Ready(StripeGuard { stripe });
                }
                if let Some((_, waker)) = state.queue.iter_mut().find(|(t, _)| *t == ticket) {
                    waker.clone_from(cx.waker());
                }
                Poll::Pending
            }
        }
    }
}

impl Drop for Acquire<'_> {
    fn drop(&mut self) {
        let Some(ticket) = self.ticket else {
            return;
        };
        if self.done {
            return;
        }
        let mut state = self.stripe.state.lock();
        if state.handed_to == Some(ticket) {
            // Handed over but never claimed: pass it on as its holder would have.
            state.handed_to = None;
            drop(state);
            self.stripe.release();
        } else if let Some(pos) = state.queue.iter().position(|(t, _)| *t == ticket) {
            state.queue.remove(pos);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use std::task::Wake;

    use super::*;

    struct CountingWaker(AtomicUsize);

    impl Wake for CountingWaker {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn poll<F: Future + Unpin>(fut: &mut F, waker: &Arc<CountingWaker>) -> Poll<F::Output> {
        let waker = Waker::from(Arc::clone(waker));
        Pin::new(fut).poll(&mut Context::from_waker(&waker))
    }

    fn waker() -> Arc<CountingWaker> {
        Arc::new(CountingWaker(AtomicUsize::new(0)))
    }

    #[test]
    fn a_free_stripe_is_taken_at_once_and_freed_on_drop() {
        let s = Stripe::default();
        let g = s.try_lock().expect("free");
        assert!(s.try_lock().is_none());
        drop(g);
        assert!(s.try_lock().is_some());
    }

    #[test]
    fn waiters_get_the_stripe_in_arrival_order_and_cannot_be_overtaken() {
        let s = Stripe::default();
        let held = s.try_lock().expect("free");
        let (wa, wb) = (waker(), waker());
        let mut a = s.lock();
        let mut b = s.lock();
        assert!(poll(&mut a, &wa).is_pending());
        assert!(poll(&mut b, &wb).is_pending());
        drop(held);
        assert_eq!(wa.0.load(Ordering::SeqCst), 1);
        assert_eq!(wb.0.load(Ordering::SeqCst), 0);
        // Handed to `a`: a newcomer cannot take it, and `b` is still queued.
        assert!(s.try_lock().is_none());
        assert!(poll(&mut b, &wb).is_pending());
        let Poll::Ready(ga) = poll(&mut a, &wa) else {
            panic!("a was handed the stripe");
        };
        drop(ga);
        assert_eq!(wb.0.load(Ordering::SeqCst), 1);
        assert!(poll(&mut b, &wb).is_ready());
    }

    #[test]
    fn a_cancelled_waiter_leaves_the_queue() {
        let s = Stripe::default();
        let held = s.try_lock().expect("free");
        let (wa, wb) = (waker(), waker());
        let mut a = s.lock();
        let mut b = s.lock();
        assert!(poll(&mut a, &wa).is_pending());
        assert!(poll(&mut b, &wb).is_pending());
        drop(a);
        drop(held);
        assert_eq!(wb.0.load(Ordering::SeqCst), 1);
        assert!(poll(&mut b, &wb).is_ready());
    }

    #[test]
    fn a_waiter_cancelled_after_the_handover_passes_the_stripe_on() {
        let s = Stripe::default();
        let held = s.try_lock().expect("free");
        let (wa, wb) = (waker(), waker());
        let mut a = s.lock();
        let mut b = s.lock();
        assert!(poll(&mut a, &wa).is_pending());
        assert!(poll(&mut b, &wb).is_pending());
        drop(held);
        drop(a);
        assert_eq!(wb.0.load(Ordering::SeqCst), 1);
        let Poll::Ready(gb) = poll(&mut b, &wb) else {
            panic!("b was handed the stripe");
        };
        drop(gb);
        // Nobody left: the stripe is free again.
        assert!(s.try_lock().is_some());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn contended_holders_never_overlap() {
        let s = Arc::new(Stripe::default());
        let inside = Arc::new(AtomicUsize::new(0));
        let tasks: Vec<_> = (0..4)
            .map(|_| {
                let (s, inside) = (Arc::clone(&s), Arc::clone(&inside));
                tokio::spawn(async move {
                    for i in 0..2_000 {
                        let _g = s.lock().await;
                        assert_eq!(inside.fetch_add(1, Ordering::SeqCst), 0);
                        if i % 7 == 0 {
                            tokio::task::yield_now().await;
                        }
                        inside.fetch_sub(1, Ordering::SeqCst);
                    }
                })
            })
            .collect();
        for t in tasks {
            t.await.expect("no overlap, no panic");
        }
        assert!(s.try_lock().is_some());
    }
}
