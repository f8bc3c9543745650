//! Clocks and timers.

use core::future::Future;
use core::pin::Pin;
use core::task::{Context, Poll};
use core::time::Duration;

use crate::types::{Instant, WallTime};

/// Monotonic and wall clocks.
pub trait Clock {
    /// Monotonic time (never goes backwards).
    fn now(&self) -> Instant;

    /// Wall-clock time (may jump when the host's clock is set).
    fn wall_time(&self) -> WallTime;
}

/// Timers on the monotonic clock.
pub trait Timers: Clock {
    /// Completes once `now() >= deadline`.
    fn sleep_until(&self, deadline: Instant) -> impl Future<Output = ()> + '_;
}

/// Completes after `duration`.
pub fn sleep<T: Timers + ?Sized>(timers: &T, duration: Duration) -> impl Future<Output = ()> + '_ {
    timers.sleep_until(timers.now() + duration)
}

/// The deadline of a [`timeout`] passed before the future completed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Elapsed;

impl core::fmt::Display for Elapsed {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("deadline elapsed")
    }
}

/// Runs `future` for at most `duration`; `Err(Elapsed)` if it did not complete in time
/// (the future is dropped).
pub async fn timeout<T: Timers + ?Sized, F: Future>(
    timers: &T,
    duration: Duration,
    future: F,
) -> Result<F::Output, Elapsed> {
    timeout_at(timers, timers.now() + duration, future).await
}

/// Like [`timeout`] with an absolute deadline.
pub async fn timeout_at<T: Timers + ?Sized, F: Future>(
    timers: &T,
    deadline: Instant,
    future: F,
) -> Result<F::Output, Elapsed> {
    let sleep = timers.sleep_until(deadline);
    Race {
        first: core::pin::pin!(future),
        second: core::pin::pin!(sleep),
    }
    .await
    .map_err(|()| Elapsed)
}

/// Polls `first`, then `second`; completes with whichever completes first (`first` wins
/// ties, so a future that is ready is never reported as timed out).
struct Race<'a, A, B> {
    first: Pin<&'a mut A>,
    second: Pin<&'a mut B>,
}

impl<A: Future, B: Future<Output = ()>> Future for Race<'_, A, B> {
    type Output = Result<A::Output, ()>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        if let Poll::Ready(v) = this.first.as_mut().poll(cx) {
            return Poll::Ready(Ok(v));
        }
        if let Poll::Ready(()) = this.second.as_mut().poll(cx) {
            return Poll::Ready(Err(()));
        }
        Poll::Pending
    }
}
