extern crate std;

use super::*;
use crate::time::{Clock, Timers, timeout};
use crate::types::WallTime;
use alloc::rc::Rc;
use alloc::vec;
use core::cell::{Cell, RefCell};
use core::time::Duration;
use std::collections::VecDeque as StdDeque;

/// A fake platform: virtual time, ports fired on a script of (time, port).
struct FakeIdle {
    now: Rc<Cell<u64>>,
    /// Events still to happen: at this time, this port becomes pending.
    script: StdDeque<(u64, u32)>,
    pending: Vec<Port>,
    blocks: Vec<(Vec<Port>, Option<Instant>)>,
}

impl FakeIdle {
    fn new(now: Rc<Cell<u64>>, script: &[(u64, u32)]) -> Self {
        FakeIdle {
            now,
            script: script.iter().copied().collect(),
            pending: Vec::new(),
            blocks: Vec::new(),
        }
    }
    fn deliver_due(&mut self) {
        while let Some(&(t, p)) = self.script.front() {
            if t > self.now.get() {
                break;
            }
            self.script.pop_front();
            if !self.pending.contains(&Port(p)) {
                self.pending.push(Port(p));
            }
        }
    }
    fn report(&mut self, ports: &[Port], fired: &mut dyn FnMut(Port)) {
        self.pending.retain(|p| {
            if ports.contains(p) {
                fired(*p);
                false
            } else {
                true
            }
        });
    }
}

impl Idle for FakeIdle {
    fn now(&mut self) -> Instant {
        Instant(self.now.get())
    }
    fn block(&mut self, ports: &[Port], deadline: Option<Instant>, fired: &mut dyn FnMut(Port)) {
        self.blocks.push((ports.to_vec(), deadline));
        self.deliver_due();
        if !self.pending.iter().any(|p| ports.contains(p)) {
            // Jump to whichever comes first: the next scripted event or the deadline.
            let next_event = self.script.front().map(|&(t, _)| t);
            let wake = match (next_event, deadline) {
                (Some(e), Some(d)) => e.min(d.0),
                (Some(e), None) => e,
                (None, Some(d)) => d.0,
                (None, None) => panic!("executor blocked forever"),
            };
            self.now.set(self.now.get().max(wake));
            self.deliver_due();
        }
        self.report(ports, fired);
    }
    fn poll(&mut self, ports: &[Port], fired: &mut dyn FnMut(Port)) {
        self.deliver_due();
        self.report(ports, fired);
    }
}

#[derive(Clone)]
struct FakeTimers {
    now: Rc<Cell<u64>>,
    reactor: Reactor,
}

impl Clock for FakeTimers {
    fn now(&self) -> Instant {
        Instant(self.now.get())
    }
    fn wall_time(&self) -> WallTime {
        WallTime::default()
    }
}

impl Timers for FakeTimers {
    fn sleep_until(&self, deadline: Instant) -> impl Future<Output = ()> + '_ {
        self.reactor.sleep_until(deadline)
    }
}

fn setup(script: &[(u64, u32)]) -> (Executor, FakeIdle, FakeTimers) {
    let now = Rc::new(Cell::new(0));
    let exec = Executor::new();
    let timers = FakeTimers {
        now: now.clone(),
        reactor: exec.reactor().clone(),
    };
    (exec, FakeIdle::new(now, script), timers)
}

#[test]
fn spawned_tasks_join_with_their_output() {
    let (mut exec, mut idle, _) = setup(&[]);
    let a = exec.spawn(async { 1 + 1 });
    let spawner = exec.spawner();
    let b = exec.spawn(async move { spawner.spawn(async { 40 }).await + 2 });
    let sum = exec
        .block_on(async { a.await + b.await }, &mut idle)
        .unwrap();
    assert_eq!(sum, 44);
    assert_eq!(exec.task_count(), 0);
}

#[test]
fn timers_fire_in_deadline_order_and_block_until_the_earliest() {
    let (mut exec, mut idle, timers) = setup(&[]);
    let order = Rc::new(RefCell::new(Vec::new()));
    for (i, ms) in [30u64, 10, 20, 10].into_iter().enumerate() {
        let t = timers.clone();
        let order = order.clone();
        exec.spawn(async move {
            crate::time::sleep(&t, Duration::from_millis(ms)).await;
            order.borrow_mut().push((i, t.now().0));
        });
    }
    exec.run(&mut idle).unwrap();
    assert_eq!(
        *order.borrow(),
        vec![
            (1, 10_000_000),
            (3, 10_000_000),
            (2, 20_000_000),
            (0, 30_000_000)
        ]
    );
    // The executor asked to block until the earliest deadline each time, never on ports.
    let deadlines: Vec<_> = idle
        .blocks
        .iter()
        .map(|(p, d)| (p.len(), d.unwrap().0))
        .collect();
    assert_eq!(
        deadlines,
        vec![(0, 10_000_000), (0, 20_000_000), (0, 30_000_000)]
    );
}

#[test]
fn port_wait_wakes_on_event_and_passes_waited_ports_to_idle() {
    let (mut exec, mut idle, _) = setup(&[(5, 7), (9, 8)]);
    let reactor = exec.reactor().clone();
    let r2 = reactor.clone();
    let seven = exec.spawn(async move { r2.wait_port(Port(7)).await });
    let r3 = reactor.clone();
    let eight = exec.spawn(async move { r3.wait_port(Port(8)).await });
    exec.block_on(
        async {
            seven.await;
            eight.await
        },
        &mut idle,
    )
    .unwrap();
    assert_eq!(idle.blocks[0], (vec![Port(7), Port(8)], None));
    assert_eq!(idle.now.get(), 9);
}

#[test]
fn an_event_before_the_wait_is_not_lost() {
    let (mut exec, mut idle, timers) = setup(&[]);
    let reactor = exec.reactor().clone();
    // The platform reported the port before anyone waited (e.g. in a poll between batches).
    reactor.wake_port(Port(3));
    let r = reactor.clone();
    exec.block_on(async move { r.wait_port(Port(3)).await }, &mut idle)
        .unwrap();
    assert!(
        idle.blocks.is_empty(),
        "must not block: the event was already recorded"
    );
    // ...but it is consumed: a second wait blocks (and times out: nothing fires).
    assert_eq!(
        second_wait(&mut exec, &mut idle, &timers, 3),
        Err(crate::time::Elapsed)
    );
    assert_eq!(idle.blocks, vec![(vec![Port(3)], Some(Instant(1_000_000)))]);
}

fn second_wait(
    exec: &mut Executor,
    idle: &mut FakeIdle,
    timers: &FakeTimers,
    port: u32,
) -> Result<(), crate::time::Elapsed> {
    let r = exec.reactor().clone();
    let t = timers.clone();
    exec.block_on(
        async move { timeout(&t, Duration::from_millis(1), r.wait_port(Port(port))).await },
        idle,
    )
    .unwrap()
}

#[test]
fn many_events_before_one_wait_coalesce() {
    let (mut exec, mut idle, timers) = setup(&[]);
    let reactor = exec.reactor().clone();
    for _ in 0..5 {
        reactor.wake_port(Port(1));
    }
    let r = reactor.clone();
    exec.block_on(async move { r.wait_port(Port(1)).await }, &mut idle)
        .unwrap();
    assert_eq!(
        second_wait(&mut exec, &mut idle, &timers, 1),
        Err(crate::time::Elapsed)
    );
}

#[test]
fn stalled_when_nothing_can_wake() {
    let (mut exec, mut idle, _) = setup(&[]);
    assert_eq!(
        exec.block_on(core::future::pending::<()>(), &mut idle),
        Err(Stalled)
    );
    exec.spawn(core::future::pending::<()>());
    assert_eq!(exec.run(&mut idle), Err(Stalled));
}

#[test]
fn timeout_cancels_and_withdraws_the_wait() {
    let (mut exec, mut idle, timers) = setup(&[(50_000_000, 4)]);
    let reactor = exec.reactor().clone();
    let t = timers.clone();
    let r = reactor.clone();
    let first = exec
        .block_on(
            async move { timeout(&t, Duration::from_millis(10), r.wait_port(Port(4))).await },
            &mut idle,
        )
        .unwrap();
    assert_eq!(first, Err(crate::time::Elapsed));
    assert!(
        !reactor.is_waited(Port(4)),
        "a dropped wait must be withdrawn"
    );
    assert_eq!(reactor.next_deadline(), None);
    let t = timers.clone();
    let r = reactor.clone();
    let second = exec
        .block_on(
            async move { timeout(&t, Duration::from_millis(100), r.wait_port(Port(4))).await },
            &mut idle,
        )
        .unwrap();
    assert_eq!(second, Ok(()));
    assert_eq!(timers.now().0, 50_000_000);
    assert_eq!(
        reactor.next_deadline(),
        None,
        "the abandoned timer is cancelled"
    );
}

#[test]
fn busy_tasks_do_not_starve_event_delivery() {
    let (mut exec, mut idle, _) = setup(&[(0, 2)]);
    let stop = Rc::new(Cell::new(false));
    let s = stop.clone();
    exec.spawn(async move {
        while !s.get() {
            yield_now().await;
        }
    });
    let r = exec.reactor().clone();
    exec.block_on(
        async move {
            r.wait_port(Port(2)).await;
            stop.set(true);
        },
        &mut idle,
    )
    .unwrap();
    assert!(idle.blocks.is_empty());
}

#[test]
fn run_one_follows_the_pick() {
    let (mut exec, _, _) = setup(&[]);
    let log = Rc::new(RefCell::new(Vec::new()));
    for i in 0..4 {
        let log = log.clone();
        exec.spawn(async move { log.borrow_mut().push(i) });
    }
    // Always pick the last ready task.
    while exec.run_one(&mut |n| n - 1) {}
    assert_eq!(*log.borrow(), vec![3, 2, 1, 0]);
}

#[test]
fn forgetting_a_port_completes_every_wait_on_it() {
    let (mut exec, mut idle, _) = setup(&[]);
    let reactor = exec.reactor().clone();
    let mut handles = Vec::new();
    for _ in 0..3 {
        let r = reactor.clone();
        handles.push(exec.spawn(async move { r.wait_port(Port(9)).await }));
    }
    assert_eq!(exec.run_ready(), 3);
    assert!(reactor.is_waited(Port(9)));
    reactor.forget_port(Port(9));
    exec.block_on(
        async move {
            for h in handles {
                h.await;
            }
        },
        &mut idle,
    )
    .unwrap();
    assert!(!reactor.is_waited(Port(9)));
}
