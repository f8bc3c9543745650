//! The platform conformance checks of `xen_platform::conformance` (the same ones the lab
//! guest runs under real Xen) against the simulated host.

use std::time::Duration;

use xen_platform::conformance;
use xen_sim::{Sim, for_each_seed};

const STEPS: u64 = 10_000_000;

#[test]
fn conformance_checks_pass_on_the_sim() {
    for_each_seed(0..5, |seed| {
        let mut sim = Sim::new(seed);
        // Duplicated and delayed (never lost) notifications: the checks must still pass.
        {
            let mut f = sim.faults();
            f.duplicate_notify = 0.2;
            f.delay_notify = 0.2;
            f.max_delay = Duration::from_micros(50);
        }
        let d = sim.create_domain();
        let me = d.domid();
        let h = sim.spawn(me, async move {
            let report = conformance::event_loopback(&d, 10_000).await?;
            assert_eq!(report.round_trips, 10_000);
            conformance::grant_self_map(&d, me).await?;
            conformance::grant_copy_self(&d, me).await?;
            conformance::timers_in_order(&d).await?;
            Ok::<_, conformance::Failure>(report)
        });
        let report = sim.run_until(&h, STEPS).unwrap().unwrap();
        assert!(report.elapsed > Duration::ZERO);
        sim.run(STEPS).unwrap();
        assert_eq!(sim.frames_in_use(), 0, "the checks leaked pages");
    });
}
