//! Seeded whole-cluster simulations of the ownership protocol (issue 3, item 7). Each test runs many seeds;
//! `HACTL_SIM_SEEDS=N` runs N seeds per test, `HACTL_SIM_SEED=S` replays one seed; a failure prints the seed and
//! the command that replays it.

use hactl::proto::sim::{self, Scenario};

fn seeds(default: u64) -> Vec<u64> {
    if let Some(s) = std::env::var("HACTL_SIM_SEED").ok().and_then(|v| v.parse().ok()) {
        return vec![s];
    }
    let n = std::env::var("HACTL_SIM_SEEDS").ok().and_then(|v| v.parse().ok()).unwrap_or(default);
    (0..n).collect()
}

fn run_seeds(test: &str, scenario: &Scenario, default: u64) {
    // Wall-clock time of the test itself, for the report line only; the simulation never reads it.
    #[allow(clippy::disallowed_methods)]
    let started = std::time::Instant::now();
    let list = seeds(default);
    let mut datagrams = 0;
    let mut stale = 0;
    for &seed in &list {
        match sim::run(seed, scenario) {
            Ok(stats) => {
                datagrams += stats.datagrams;
                stale += stats.stale_overlaps;
            }
            Err(v) => panic!(
                "{test}: seed {seed} broke {v}\nreplay: HACTL_SIM_SEED={seed} cargo test --test main {test} -- --nocapture"
            ),
        }
    }
    println!(
        "{test}: {} seeds passed in {:.1?} ({datagrams} datagrams, {stale} tolerated stale-address steps)",
        list.len(),
        started.elapsed()
    );
}

#[test]
fn sim_majority_three_nodes() {
    run_seeds("sim_majority_three_nodes", &Scenario::majority(3, false), 3000);
}

#[test]
fn sim_majority_two_plus_witness() {
    run_seeds("sim_majority_two_plus_witness", &Scenario::majority(2, true), 3000);
}

#[test]
fn sim_majority_five_nodes() {
    run_seeds("sim_majority_five_nodes", &Scenario::majority(5, false), 1500);
}

#[test]
fn sim_majority_rollout_joint() {
    let s = Scenario { rollout: true, ..Scenario::majority(3, false) };
    run_seeds("sim_majority_rollout_joint", &s, 1500);
}

#[test]
fn sim_ignore_two_nodes_converge() {
    run_seeds("sim_ignore_two_nodes_converge", &Scenario::ignore_pair(), 1000);
}
