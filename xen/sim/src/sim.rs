//! The deterministic scheduler: one executor per domain, one seeded RNG for every choice.

use std::cell::{RefCell, RefMut};
use std::collections::BTreeMap;
use std::future::Future;
use std::rc::Rc;

use xen_platform::executor::{Executor, JoinHandle};
use xen_platform::{DomId, Instant, Port, Virq};

use crate::host::{FaultStats, Faults, Host, HostConfig};
use crate::platform::SimDomain;
use crate::rng::SplitMix64;

/// Environment variable that overrides the seed of [`Sim::from_env`], to replay a failure.
pub const SEED_ENV: &str = "XEN_SIM_SEED";

/// Why [`Sim::run_until`] gave up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SimError {
    /// Every task waits and nothing (event, timer, delayed notification) can wake one.
    Deadlock {
        /// The seed, to replay.
        seed: u64,
        /// Virtual time when it happened.
        at: Instant,
    },
    /// The step budget ran out (a livelock, or a budget too small).
    StepLimit {
        /// The seed, to replay.
        seed: u64,
        /// Steps taken.
        steps: u64,
    },
}

impl std::fmt::Display for SimError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SimError::Deadlock { seed, at } => write!(
                f,
                "deadlock at {} ns (replay with {SEED_ENV}={seed})",
                at.as_nanos()
            ),
            SimError::StepLimit { seed, steps } => {
                write!(
                    f,
                    "no completion after {steps} steps (replay with {SEED_ENV}={seed})"
                )
            }
        }
    }
}

impl std::error::Error for SimError {}

/// A simulated Xen host running async tasks in several domains, deterministically.
///
/// Each step the scheduler: delivers due (delayed) notifications; moves every domain's
/// pending, unmasked event-channel ports into its executor (test-and-clear, as a PV guest
/// does after `SCHEDOP_poll`); fires due timers; lets the fault injector scribble; then polls
/// one ready task of one domain, both chosen by the RNG. With no task ready, virtual time
/// jumps to the next timer or delayed notification. Same seed, same run.
///
/// If the thread panics while a `Sim` is alive (a failed assertion in a test), the seed is
/// printed so the run can be replayed with `XEN_SIM_SEED`.
pub struct Sim {
    seed: u64,
    host: Rc<RefCell<Host>>,
    execs: BTreeMap<DomId, Executor>,
    rng: SplitMix64,
    steps: u64,
    ports_buf: Vec<Port>,
}

impl Sim {
    /// A host with the default configuration.
    pub fn new(seed: u64) -> Sim {
        Sim::with_config(seed, HostConfig::default())
    }

    /// A host whose seed is `XEN_SIM_SEED` if set, else `default_seed`.
    pub fn from_env(default_seed: u64) -> Sim {
        Sim::new(seed_from_env(default_seed))
    }

    /// A host with `config`.
    pub fn with_config(seed: u64, config: HostConfig) -> Sim {
        let host = Host::new(seed, config).expect("memfd_create failed: the sim needs Linux");
        Sim {
            seed,
            host: Rc::new(RefCell::new(host)),
            execs: BTreeMap::new(),
            rng: SplitMix64::new(seed),
            steps: 0,
            ports_buf: Vec::new(),
        }
    }

    /// The seed.
    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// Creates a domain (ids 0, 1, 2, ... in creation order) and returns its platform.
    pub fn create_domain(&mut self) -> SimDomain {
        let domid = self.host.borrow_mut().create_domain();
        let exec = Executor::new();
        let dom = SimDomain {
            domid,
            host: self.host.clone(),
            reactor: exec.reactor().clone(),
        };
        self.execs.insert(domid, exec);
        dom
    }

    /// Spawns a task in `domid` (which must have been created by this sim).
    pub fn spawn<F>(&mut self, domid: DomId, future: F) -> JoinHandle<F::Output>
    where
        F: Future + 'static,
    {
        self.execs
            .get(&domid)
            .unwrap_or_else(|| panic!("{domid} was not created by this sim"))
            .spawn(future)
    }

    /// The domain disappears (a crashed or destroyed peer): its tasks are dropped, its
    /// mappings released, its ports closed (peers' ends revert to unbound, without a
    /// notification, as on Xen).
    pub fn destroy_domain(&mut self, domid: DomId) {
        self.host.borrow_mut().destroy_domain(domid);
        // Dropping the tasks runs their destructors (unmaps, revocations) against the host.
        self.execs.remove(&domid);
    }

    /// Raises a virtual IRQ in `domid` (if bound).
    pub fn raise_virq(&mut self, domid: DomId, virq: Virq) -> bool {
        self.host.borrow_mut().raise_virq(domid, virq)
    }

    /// The fault injector's configuration, to change at any time.
    pub fn faults(&self) -> RefMut<'_, Faults> {
        RefMut::map(self.host.borrow_mut(), |h| &mut h.faults)
    }

    /// What the fault injector did so far.
    pub fn fault_stats(&self) -> FaultStats {
        self.host.borrow().stats
    }

    /// Virtual time.
    pub fn now(&self) -> Instant {
        self.host.borrow().now
    }

    /// Steps taken.
    pub fn steps(&self) -> u64 {
        self.steps
    }

    /// Frames of simulated memory in use (to check for leaks).
    pub fn frames_in_use(&self) -> usize {
        self.host.borrow().frames.frames_in_use()
    }

    /// Delivers events and timers, then polls one ready task. Returns `false` when nothing
    /// can happen any more (all tasks done or waiting on something that cannot occur).
    pub fn step(&mut self) -> bool {
        self.steps += 1;
        self.deliver();
        self.scribble();
        let ready: Vec<DomId> = self
            .execs
            .iter_mut()
            .filter_map(|(&d, e)| (e.ready_count() > 0).then_some(d))
            .collect();
        if !ready.is_empty() {
            let domid = ready[self.rng.below(ready.len() as u64) as usize];
            let rng = &mut self.rng;
            let exec = self.execs.get_mut(&domid).expect("listed above");
            exec.run_one(&mut |n| rng.below(n as u64) as usize);
            let cost = {
                let h = self.host.borrow();
                h.config.poll_cost
            };
            let mut h = self.host.borrow_mut();
            h.now = h.now + cost;
            return true;
        }
        // Nothing ready: jump to the next thing that can happen.
        let next_timer = self
            .execs
            .values()
            .filter_map(|e| e.reactor().next_deadline())
            .min();
        let next_delivery = self.host.borrow().next_delivery();
        let next = match (next_timer, next_delivery) {
            (Some(a), Some(b)) => a.min(b),
            (a, b) => match a.or(b) {
                Some(t) => t,
                None => return false,
            },
        };
        let mut h = self.host.borrow_mut();
        if next > h.now {
            h.now = next;
        }
        true
    }

    fn deliver(&mut self) {
        let now = {
            let mut h = self.host.borrow_mut();
            h.deliver_due();
            h.now
        };
        for (&domid, exec) in &self.execs {
            self.ports_buf.clear();
            self.host
                .borrow_mut()
                .take_pending(domid, &mut self.ports_buf);
            for &p in &self.ports_buf {
                exec.reactor().wake_port(p);
            }
            exec.reactor().advance_time(now);
        }
    }

    fn scribble(&mut self) {
        let mut h = self.host.borrow_mut();
        let targets = h.faults.hostile.clone();
        for t in targets {
            if t.offsets.is_empty() || !h.rng.chance(t.per_step) {
                continue;
            }
            let off = t.offsets[h.rng.below(t.offsets.len() as u64) as usize];
            // Half the time a value near the current one (plausible but wrong), half the time
            // anything.
            let current = h.peek(t.granter, t.gref, off).unwrap_or(0);
            let value = if h.rng.chance(0.5) {
                current
                    .wrapping_add(h.rng.below(4096) as u32)
                    .wrapping_sub(1024)
            } else {
                h.rng.next_u64() as u32
            };
            if h.scribble(t.granter, t.gref, off, value) {
                h.stats.hostile_writes += 1;
            }
        }
    }

    /// Runs until `handle`'s task completes; then returns its output.
    pub fn run_until<T>(&mut self, handle: &JoinHandle<T>, max_steps: u64) -> Result<T, SimError> {
        let start = self.steps;
        loop {
            if let Some(v) = handle.try_take() {
                return Ok(v);
            }
            if self.steps - start >= max_steps {
                return Err(SimError::StepLimit {
                    seed: self.seed,
                    steps: self.steps - start,
                });
            }
            if !self.step() {
                return match handle.try_take() {
                    Some(v) => Ok(v),
                    None => Err(SimError::Deadlock {
                        seed: self.seed,
                        at: self.now(),
                    }),
                };
            }
        }
    }

    /// Runs until nothing can happen any more; returns the number of steps.
    pub fn run(&mut self, max_steps: u64) -> Result<u64, SimError> {
        let start = self.steps;
        while self.step() {
            if self.steps - start >= max_steps {
                return Err(SimError::StepLimit {
                    seed: self.seed,
                    steps: self.steps - start,
                });
            }
        }
        Ok(self.steps - start)
    }

    /// Live tasks in `domid`.
    pub fn task_count(&self, domid: DomId) -> usize {
        self.execs.get(&domid).map_or(0, |e| e.task_count())
    }
}

impl Drop for Sim {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "xen-sim: failing run used seed {}; replay with {SEED_ENV}={}",
                self.seed, self.seed
            );
        }
        // Tasks hold handles into the host: drop them first, while the host is intact.
        self.execs.clear();
    }
}

/// `XEN_SIM_SEED` if set (decimal or 0x-hex), else `default`.
pub fn seed_from_env(default: u64) -> u64 {
    match std::env::var(SEED_ENV) {
        Ok(s) => {
            let s = s.trim();
            let parsed = match s.strip_prefix("0x") {
                Some(hex) => u64::from_str_radix(hex, 16),
                None => s.parse(),
            };
            parsed.unwrap_or_else(|_| panic!("{SEED_ENV}={s:?} is not a number"))
        }
        Err(_) => default,
    }
}

/// Runs `test` once per seed (or only for `XEN_SIM_SEED` when set); a failing seed is
/// printed before the panic propagates.
pub fn for_each_seed(seeds: std::ops::Range<u64>, mut test: impl FnMut(u64)) {
    let seeds: Vec<u64> = match std::env::var(SEED_ENV) {
        Ok(_) => vec![seed_from_env(0)],
        Err(_) => seeds.collect(),
    };
    for seed in seeds {
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| test(seed)));
        if let Err(panic) = result {
            eprintln!("xen-sim: seed {seed} failed; replay with {SEED_ENV}={seed}");
            std::panic::resume_unwind(panic);
        }
    }
}
