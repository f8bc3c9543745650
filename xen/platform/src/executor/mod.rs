//! A small single-threaded async executor for `no_std + alloc`.
//!
//! # Why our own and not embassy-executor
//!
//! On a PV guest the executor's idle step *is* the interesting part: with event upcalls
//! masked, the guest blocks in `SCHEDOP_poll(ports, timeout)`, which needs exactly the set of
//! ports that tasks wait on and the earliest timer deadline, and afterwards the guest must
//! test-and-clear the pending bits of the ports that fired and wake their tasks. embassy's
//! executor hides that step behind a `__pender`/WFE model (one global "something happened"
//! signal, interrupt-driven wakers) and its timer queue behind a global time driver; gluing
//! `SCHEDOP_poll` under it would mean re-implementing the port bookkeeping beside it anyway.
//! The sim, in turn, needs to step one task at a time in an order chosen by a seeded RNG and
//! to run several executors (one per simulated domain) in one thread. A few hundred lines
//! doing precisely this are easier to trust than adapting a general executor.
//!
//! # Model
//!
//! * [`Executor`] owns tasks (`'static` futures, not `Send`: one vCPU) and a ready queue.
//!   Wakers are real `Waker`s (an `Arc` flag + queue), so any future works, including ones
//!   from other crates.
//! * [`Reactor`] records which tasks wait on which event port or timer deadline. Platforms
//!   build `EventChannels::wait` and `Timers::sleep_until` on [`Reactor::wait_port`] and
//!   [`Reactor::sleep_until`].
//! * [`Idle`] is the platform hook: [`Executor::block_on`] runs ready tasks, and when none is
//!   ready calls [`Idle::block`] with the waited ports and the next deadline; the hook reports
//!   fired ports back. Between batches of ready tasks it calls [`Idle::poll`] (non-blocking)
//!   so that busy tasks cannot starve event delivery.
//! * The sim instead drives [`Executor::run_one`] (choosing which ready task runs) and feeds
//!   the reactor itself.

mod reactor;

pub use reactor::{PortWait, Reactor, Sleep};

use alloc::boxed::Box;
use alloc::collections::{BTreeMap, VecDeque};
use alloc::rc::Rc;
use alloc::sync::Arc;
use alloc::task::Wake;
use alloc::vec::Vec;
use core::cell::RefCell;
use core::future::Future;
use core::pin::{Pin, pin};
use core::sync::atomic::{AtomicBool, Ordering};
use core::task::{Context, Poll, Waker};

use crate::types::{Instant, Port};

/// The platform's idle step; see the [module docs](self).
pub trait Idle {
    /// The current monotonic time.
    fn now(&mut self) -> Instant;

    /// Blocks until one of `ports` is pending or `deadline` passes (`None`: no deadline;
    /// `ports` and `deadline` are never both empty), then test-and-clears the pending bit of
    /// each of `ports` that is set and reports it through `fired`.
    ///
    /// Must not lose a wake-up: a port that became pending before the call must make it
    /// return at once (`SCHEDOP_poll` checks atomically). Returning early or spuriously is
    /// allowed.
    fn block(&mut self, ports: &[Port], deadline: Option<Instant>, fired: &mut dyn FnMut(Port));

    /// Like [`block`](Self::block) without blocking: reports the ports among `ports` that are
    /// pending now.
    fn poll(&mut self, ports: &[Port], fired: &mut dyn FnMut(Port));
}

/// [`Executor::block_on`] found its future pending with no ready task, no waited port and no
/// timer: nothing can ever wake it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stalled;

impl core::fmt::Display for Stalled {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("executor stalled: every task waits, and no event port or timer can wake one")
    }
}

type TaskId = u64;
const MAIN_TASK: TaskId = u64::MAX;

#[derive(Default)]
struct ReadyQueue {
    ids: spin::Mutex<VecDeque<TaskId>>,
}

struct TaskWaker {
    id: TaskId,
    queued: AtomicBool,
    queue: Arc<ReadyQueue>,
}

impl Wake for TaskWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        // Queue each task at most once however often it is woken.
        if !self.queued.swap(true, Ordering::AcqRel) {
            self.queue.ids.lock().push_back(self.id);
        }
    }
}

struct Task {
    future: Pin<Box<dyn Future<Output = ()>>>,
    flag: Arc<TaskWaker>,
    waker: Waker,
}

type NewTask = Pin<Box<dyn Future<Output = ()>>>;

/// Spawns tasks onto an [`Executor`] from inside its tasks (cloneable, not `Send`).
#[derive(Clone, Default)]
pub struct Spawner {
    incoming: Rc<RefCell<Vec<NewTask>>>,
}

impl Spawner {
    /// Spawns `future`; it first runs on the executor's next step.
    pub fn spawn<F>(&self, future: F) -> JoinHandle<F::Output>
    where
        F: Future + 'static,
    {
        let slot = Rc::new(RefCell::new(JoinSlot {
            result: None,
            finished: false,
            waker: None,
        }));
        let task_slot = slot.clone();
        let task = async move {
            let output = future.await;
            let waker = {
                let mut s = task_slot.borrow_mut();
                s.result = Some(output);
                s.finished = true;
                s.waker.take()
            };
            if let Some(w) = waker {
                w.wake();
            }
        };
        self.incoming.borrow_mut().push(Box::pin(task));
        JoinHandle { slot }
    }
}

struct JoinSlot<T> {
    result: Option<T>,
    finished: bool,
    waker: Option<Waker>,
}

/// The output of a spawned task, as a future. Dropping it detaches the task.
pub struct JoinHandle<T> {
    slot: Rc<RefCell<JoinSlot<T>>>,
}

impl<T> JoinHandle<T> {
    /// Whether the task has completed.
    pub fn is_finished(&self) -> bool {
        self.slot.borrow().finished
    }

    /// Takes the output if the task has completed and it was not taken yet.
    pub fn try_take(&self) -> Option<T> {
        self.slot.borrow_mut().result.take()
    }
}

impl<T> Future for JoinHandle<T> {
    type Output = T;

    /// Completes with the task's output. Polling again after that stays pending.
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<T> {
        let mut s = self.slot.borrow_mut();
        match s.result.take() {
            Some(v) => Poll::Ready(v),
            None => {
                s.waker = Some(cx.waker().clone());
                Poll::Pending
            }
        }
    }
}

/// Lets other ready tasks run once before continuing (cooperative scheduling for long
/// computations).
pub fn yield_now() -> impl Future<Output = ()> {
    YieldNow { yielded: false }
}

struct YieldNow {
    yielded: bool,
}

impl Future for YieldNow {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.yielded {
            return Poll::Ready(());
        }
        self.yielded = true;
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

/// A single-threaded executor; see the [module docs](self).
pub struct Executor {
    reactor: Reactor,
    spawner: Spawner,
    tasks: BTreeMap<TaskId, Task>,
    next_id: TaskId,
    queue: Arc<ReadyQueue>,
    ports_buf: Vec<Port>,
}

impl Default for Executor {
    fn default() -> Self {
        Self::new()
    }
}

impl Executor {
    /// An executor with its own [`Reactor`].
    pub fn new() -> Self {
        Executor {
            reactor: Reactor::new(),
            spawner: Spawner::default(),
            tasks: BTreeMap::new(),
            next_id: 0,
            queue: Arc::new(ReadyQueue::default()),
            ports_buf: Vec::new(),
        }
    }

    /// The reactor, for the platform's `wait` and `sleep_until`.
    pub fn reactor(&self) -> &Reactor {
        &self.reactor
    }

    /// A spawner for tasks that spawn tasks.
    pub fn spawner(&self) -> Spawner {
        self.spawner.clone()
    }

    /// Spawns `future`.
    pub fn spawn<F>(&self, future: F) -> JoinHandle<F::Output>
    where
        F: Future + 'static,
    {
        self.spawner.spawn(future)
    }

    /// Number of live (not yet completed) tasks, including ones spawned but not yet run.
    pub fn task_count(&self) -> usize {
        self.tasks.len() + self.spawner.incoming.borrow().len()
    }

    /// Number of tasks ready to run.
    pub fn ready_count(&mut self) -> usize {
        self.admit_spawned();
        self.queue.ids.lock().len()
    }

    fn admit_spawned(&mut self) {
        let incoming = core::mem::take(&mut *self.spawner.incoming.borrow_mut());
        for future in incoming {
            let id = self.next_id;
            self.next_id += 1;
            let flag = Arc::new(TaskWaker {
                id,
                queued: AtomicBool::new(true),
                queue: self.queue.clone(),
            });
            let waker = Waker::from(flag.clone());
            self.tasks.insert(
                id,
                Task {
                    future,
                    flag,
                    waker,
                },
            );
            self.queue.ids.lock().push_back(id);
        }
    }

    fn poll_task(&mut self, id: TaskId) {
        let Some(task) = self.tasks.get_mut(&id) else {
            return; // completed; a stale wake-up
        };
        task.flag.queued.store(false, Ordering::Release);
        let mut cx = Context::from_waker(&task.waker);
        if task.future.as_mut().poll(&mut cx).is_ready() {
            self.tasks.remove(&id);
        }
    }

    /// Polls one ready task, chosen by `pick(ready_count)` (an index, taken modulo the
    /// count). Returns `false` if no task was ready. This is how the sim interleaves tasks
    /// in a seeded order; `pick = |_| 0` is FIFO.
    pub fn run_one(&mut self, pick: &mut dyn FnMut(usize) -> usize) -> bool {
        self.admit_spawned();
        let id = {
            let mut q = self.queue.ids.lock();
            if q.is_empty() {
                return false;
            }
            let i = pick(q.len()) % q.len();
            q.remove(i)
        };
        if let Some(id) = id {
            self.poll_task(id);
        }
        true
    }

    /// Polls, once each in FIFO order, the tasks that are ready now. Returns how many.
    pub fn run_ready(&mut self) -> usize {
        self.admit_spawned();
        let batch = self.queue.ids.lock().len();
        let mut ran = 0;
        for _ in 0..batch {
            let Some(id) = self.queue.ids.lock().pop_front() else {
                break;
            };
            self.poll_task(id);
            ran += 1;
        }
        ran
    }

    /// Runs `future` and the spawned tasks until `future` completes, idling through `idle`.
    ///
    /// Returns [`Stalled`] if `future` can never complete (nothing ready, no waited port, no
    /// timer). Spawned tasks that are still alive stay in the executor.
    pub fn block_on<F: Future>(
        &mut self,
        future: F,
        idle: &mut dyn Idle,
    ) -> Result<F::Output, Stalled> {
        let mut future = pin!(future);
        let main = Arc::new(TaskWaker {
            id: MAIN_TASK,
            queued: AtomicBool::new(true),
            queue: self.queue.clone(),
        });
        let main_waker = Waker::from(main.clone());
        self.queue.ids.lock().push_back(MAIN_TASK);
        self.reactor.advance_time(idle.now());
        let result = loop {
            self.admit_spawned();
            let batch = self.queue.ids.lock().len();
            let mut output = None;
            for _ in 0..batch {
                let Some(id) = self.queue.ids.lock().pop_front() else {
                    break;
                };
                if id == MAIN_TASK {
                    main.queued.store(false, Ordering::Release);
                    let mut cx = Context::from_waker(&main_waker);
                    if let Poll::Ready(v) = future.as_mut().poll(&mut cx) {
                        output = Some(v);
                        break;
                    }
                } else {
                    self.poll_task(id);
                }
            }
            if let Some(v) = output {
                break Ok(v);
            }
            if let Err(e) = self.idle_step(idle) {
                break Err(e);
            }
        };
        // Do not leave the main task's id queued for a later block_on.
        self.queue.ids.lock().retain(|&i| i != MAIN_TASK);
        result
    }

    /// Runs until every spawned task has completed, idling through `idle`; [`Stalled`] if
    /// some task can never complete.
    pub fn run(&mut self, idle: &mut dyn Idle) -> Result<(), Stalled> {
        self.reactor.advance_time(idle.now());
        loop {
            self.run_ready();
            if self.task_count() == 0 {
                return Ok(());
            }
            self.idle_step(idle)?;
        }
    }

    /// After a batch of tasks: update the time, then either collect pending events without
    /// blocking (tasks are ready) or block until an event or the next deadline.
    fn idle_step(&mut self, idle: &mut dyn Idle) -> Result<(), Stalled> {
        self.reactor.advance_time(idle.now());
        let mut ports = core::mem::take(&mut self.ports_buf);
        ports.clear();
        self.reactor.waited_ports(&mut ports);
        let reactor = self.reactor.clone();
        let result = if self.ready_count() > 0 {
            if !ports.is_empty() {
                idle.poll(&ports, &mut |p| reactor.wake_port(p));
            }
            Ok(())
        } else {
            let deadline = reactor.next_deadline();
            if ports.is_empty() && deadline.is_none() {
                Err(Stalled)
            } else {
                idle.block(&ports, deadline, &mut |p| reactor.wake_port(p));
                reactor.advance_time(idle.now());
                Ok(())
            }
        };
        self.ports_buf = ports;
        result
    }
}

#[cfg(test)]
mod tests;
