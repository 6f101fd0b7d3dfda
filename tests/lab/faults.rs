//! Scenarios e, f and g of issue 6: network faults made with nftables inside the nodes' namespaces (partitions,
//! random loss), judged by what the client's probe and the holder sampler saw.

use std::time::Duration;

use hactl::lab::{
    self, ArpRecord, ArpWatcher, HolderSample, Lab, LabGuard, LabSpec, ProbeRecord, double_holders, outage_after,
};

use super::{ONE_LAB, Watch, between, eventually, hactl_daemon, lab_available, logs, settle, status, tag};

/// When `node` last held the address in `samples` (from `since` on), and when it first did.
fn held(samples: &[HolderSample], node: &str, since: Duration) -> (Option<Duration>, Option<Duration>) {
    let mut times = samples.iter().filter(|s| s.at >= since && s.holders.iter().any(|h| h == node)).map(|s| s.at);
    let first = times.next();
    (times.next_back().or(first), first)
}

#[test]
fn majority_partition_the_minority_lets_go_before_the_majority_takes_over() {
    if !lab_available("hactl_majority_partition") {
        return;
    }
    let _one = ONE_LAB.lock().unwrap_or_else(|e| e.into_inner());
    let tag = tag("hmaj");
    let spec = LabSpec::new(&tag, &["ha1", "ha2", "ha3"]).unwrap();
    let tweaks = lab::Tweaks { majority: true, ..lab::Tweaks::default() };
    let lab = LabGuard::new(Lab::up(spec, &hactl_daemon(tweaks)).unwrap());
    settle(&lab, "ha1", Duration::from_secs(20));
    let watch = Watch::start(&lab, Duration::from_secs(40));
    std::thread::sleep(Duration::from_millis(500));

    let cut = watch.now();
    lab.partition("ha1", &["ha2", "ha3"]).unwrap();
    let new = eventually(Duration::from_secs(15), || match lab.holders().unwrap().as_slice() {
        [one] if one != "ha1" => Some(one.clone()),
        _ => None,
    })
    .unwrap_or_else(|| panic!("no majority node took over: {:?}\n{}", lab.holders(), logs(&lab)));
    super::wait_served_at(&lab, lab.spec().floating, &new, Duration::from_secs(10));
    std::thread::sleep(Duration::from_secs(2));
    let healed = watch.now();
    lab.heal("ha1").unwrap();
    // ha1 hears the majority again; the group stays where it is (stickiness), one holder.
    std::thread::sleep(Duration::from_secs(4));
    assert_eq!(lab.holders().unwrap(), [new.as_str()], "one holder after the heal\n{}", logs(&lab));
    let views = eventually(Duration::from_secs(10), || {
        let s = status(&lab, "ha1")?;
        (s["groups"][0]["holder"].as_str() == Some(new.as_str())).then_some(s)
    });
    assert!(views.is_some(), "the healed ha1 names {new} the holder\n{}", logs(&lab));
    let (records, samples) = watch.finish();

    assert_eq!(double_holders(&samples), Vec::<&HolderSample>::new(), "never two holders under majority");
    let (last_old, _) = held(&samples, "ha1", cut);
    let (_, first_new) = held(&samples, &new, cut);
    let first_new = first_new.expect("the sampler saw the new holder");
    let last_old = last_old.expect("ha1 held the address when it was cut off");
    assert!(last_old < first_new, "ha1 still held at {last_old:?}, {new} from {first_new:?}");
    let (gone, added) = (last_old - cut, first_new - cut);
    eprintln!("majority partition: ha1 last held {gone:?} after the cut; {new} first held {added:?} after it");
    let outage = outage_after(between(&records, cut, healed), cut).and_then(|o| o.duration());
    eprintln!("majority partition: client outage {outage:?} until {new} served");
    let after = between(&records, healed + Duration::from_secs(1), Duration::MAX);
    assert!(after.iter().all(|r| r.node() == Some(new.as_str())), "the heal disturbed the client");
    lab.down().unwrap();
}

/// What a split brain under `ignore` and its heal looked like to the client and the agents.
struct SplitBrain {
    /// The node left holding after the heal.
    keeper: String,
    /// When the partition was healed (the records' time axis).
    healed: Duration,
    records: Vec<ProbeRecord>,
    samples: Vec<HolderSample>,
    arps: Vec<ArpRecord>,
    /// The agents' logs (tails) after the heal.
    logs: String,
}

/// Scenario f up to the heal: two nodes under `ignore` are cut apart, both take the group and both say so in
/// `hactl status` (asserted here); then the heal, watched by the probe, the sampler and the ARP watcher.
fn split_brain_and_heal(test: &str, short: &str) -> Option<SplitBrain> {
    if !lab_available(test) {
        return None;
    }
    let _one = ONE_LAB.lock().unwrap_or_else(|e| e.into_inner());
    let tag = tag(short);
    let spec = LabSpec::new(&tag, &["ha1", "ha2"]).unwrap();
    let lab = LabGuard::new(Lab::up(spec, &hactl_daemon(lab::Tweaks::default())).unwrap());
    settle(&lab, "ha1", Duration::from_secs(20));

    // Cut apart, both take the group: the guide's no-quorum-policy=ignore, which status warns about.
    let watch = Watch::start(&lab, Duration::from_secs(50));
    let arp = ArpWatcher::start(&lab.spec().client_ns(), Duration::from_secs(50), watch.origin).unwrap();
    let cut = watch.now();
    lab.partition("ha2", &["ha1"]).unwrap();
    let both = eventually(Duration::from_secs(15), || (lab.holders().unwrap() == ["ha1", "ha2"]).then_some(()));
    assert!(both.is_some(), "under ignore both sides hold the address: {:?}\n{}", lab.holders(), logs(&lab));
    for (node, peer) in [("ha1", "ha2"), ("ha2", "ha1")] {
        let s = eventually(Duration::from_secs(10), || {
            let s = status(&lab, node)?;
            let peer_state = s["nodes"].as_array()?.iter().find(|n| n["name"] == peer)?["state"].clone();
            (s["groups"][0]["holder"] == node && peer_state == "offline").then_some(s)
        })
        .unwrap_or_else(|| panic!("{node} should report itself holding and {peer} offline\n{}", logs(&lab)));
        let warning = s["warning"].as_str().unwrap_or_default();
        assert!(warning.contains("split brain"), "{node} warns of split brain: {s}");
    }
    // Past the takeover's announcements (5 × 200 ms, one more after the lease): what follows the heal is new.
    std::thread::sleep(Duration::from_secs(4));

    let healed = watch.now();
    lab.heal("ha2").unwrap();
    let keeper = eventually(Duration::from_secs(10), || match lab.holders().unwrap().as_slice() {
        [one] => Some(one.clone()),
        _ => None,
    })
    .unwrap_or_else(|| panic!("still two holders after the heal: {:?}\n{}", lab.holders(), logs(&lab)));
    std::thread::sleep(Duration::from_secs(4));
    let neigh = std::process::Command::new("ip").args(["-n", &lab.spec().client_ns(), "neigh"]).output().unwrap();
    eprintln!("{test}: client neighbours after the heal: {}", String::from_utf8_lossy(&neigh.stdout).trim());
    let arps = arp.finish().unwrap();
    let (records, samples) = watch.finish();
    assert_eq!(lab.holders().unwrap(), [keeper.as_str()], "one holder stays");
    // The watcher hears announcements: ha2's takeover during the split sent a burst of them.
    let floating = lab.spec().floating;
    let mac2 = lab.spec().mac("ha2").unwrap();
    let takeover = arps.iter().filter(|a| a.at >= cut && a.at < healed && a.announces(floating) && a.mac() == mac2);
    assert!(takeover.count() >= 2, "the ARP watcher missed ha2's takeover announcements: {arps:?}");
    let logs = logs(&lab);
    lab.down().unwrap();
    Some(SplitBrain { keeper, healed, records, samples, arps, logs })
}

#[test]
fn ignore_partition_splits_the_brain_and_the_heal_leaves_one_holder() {
    let Some(seen) = split_brain_and_heal("hactl_ignore_partition", "hign") else { return };
    assert!(seen.logs.contains("split brain seen"), "an agent logs the split brain it resolved\n{}", seen.logs);
    let last_double = seen.samples.iter().rev().find(|s| s.holders.len() > 1).map(|s| s.at);
    let took = last_double.map(|d| d.saturating_sub(seen.healed));
    eprintln!("ignore heal: {} alone holds the address {took:?} after the heal", seen.keeper);
    assert!(took.is_some_and(|t| t < Duration::from_secs(3)), "two holders for {took:?} after the heal");
    let tail = &seen.samples[seen.samples.partition_point(|s| s.at < seen.healed + Duration::from_secs(3))..];
    assert!(tail.iter().all(|s| s.holders == [seen.keeper.as_str()]), "the address stays with {}", seen.keeper);
}

/// What the issue asks of the heal beyond one holder, and what fails today: a core bug, not the lab's (see the
/// ignore reason). The side with the higher ballot yields at once when it hears its peer before the peer hears
/// it (`blind`, src/proto/ignore.rs), so the keeper never sees a conflict and never re-announces; a client that
/// learned the loser's MAC during the split keeps sending there (measured: no answer for the 4 s watched).
#[test]
fn after_a_split_brain_heal_the_keeper_announces_and_clients_reach_it_quickly() {
    let Some(seen) = split_brain_and_heal("hactl_ignore_garp", "hgar") else { return };
    let keeper = seen.keeper.as_str();
    let answered = |n: &str| seen.records.iter().filter(|r| r.at >= seen.healed && r.node() == Some(n)).count();
    let failed = seen.records.iter().filter(|r| r.at >= seen.healed && r.node().is_none()).count();
    eprintln!("after the heal: {} answered by {keeper}, {failed} failed", answered(keeper));
    let floating = "192.0.2.100".parse().unwrap();
    let mac = LabSpec::new("x", &["ha1", "ha2"]).unwrap().mac(keeper).unwrap();
    // The keeper announces again (the whole schedule), which a periodic refresh (one every 10 s) cannot mimic.
    let fresh: Vec<Duration> = seen
        .arps
        .iter()
        .filter(|a| a.announces(floating) && a.mac() == mac && a.at >= seen.healed)
        .map(|a| a.at - seen.healed)
        .filter(|after| *after < Duration::from_secs(4))
        .collect();
    assert!(fresh.len() >= 2, "{keeper} sent {} gratuitous ARPs after the heal: {:?}", fresh.len(), seen.arps);
    let outage = outage_after(&seen.records, seen.healed).map_or(Some(Duration::ZERO), |o| o.duration());
    eprintln!("ignore heal: {keeper} announced {fresh:?} after the heal; client outage {outage:?}");
    assert!(outage.is_some_and(|o| o < Duration::from_secs(3)), "clients waited {outage:?} (open: never served)");
    let settled = between(&seen.records, seen.healed + Duration::from_secs(3), Duration::MAX);
    assert!(settled.iter().all(|r| r.node() == Some(keeper)), "the client reaches {keeper} after the heal");
}

#[test]
fn ten_percent_loss_on_every_link_causes_no_failover_and_no_flapping_for_a_minute() {
    if !lab_available("hactl_loss") {
        return;
    }
    let _one = ONE_LAB.lock().unwrap_or_else(|e| e.into_inner());
    let tag = tag("hlos");
    let spec = LabSpec::new(&tag, &["ha1", "ha2"]).unwrap();
    let lab = LabGuard::new(Lab::up(spec, &hactl_daemon(lab::Tweaks::default())).unwrap());
    settle(&lab, "ha1", Duration::from_secs(20));
    let round = status(&lab, "ha1").unwrap()["groups"][0]["round"].clone();
    // Loss on what arrives at every namespace: each link loses ~10 % in each direction.
    for target in ["ha1", "ha2", "client"] {
        lab.loss(target, 10).unwrap();
    }
    let minute = Duration::from_secs(60);
    let watch = Watch::start(&lab, minute + Duration::from_secs(5));
    std::thread::sleep(minute);
    let (records, samples) = watch.finish();
    for target in ["ha1", "ha2", "client"] {
        lab.heal(target).unwrap();
    }

    let not_ha1: Vec<_> = samples.iter().filter(|s| s.holders != ["ha1"]).take(5).collect();
    assert!(not_ha1.is_empty(), "the address left ha1 or was doubled under loss: {not_ha1:?}\n{}", logs(&lab));
    assert!(samples.len() > 3000, "the sampler ran ({} samples)", samples.len());
    let answered: Vec<_> = records.iter().filter_map(|r| r.node()).collect();
    assert!(answered.iter().all(|n| *n == "ha1"), "another node answered under loss");
    let share = answered.len() as f64 / records.len().max(1) as f64;
    eprintln!(
        "10 % loss for 60 s: {} of {} requests answered ({:.1} %), all by ha1",
        answered.len(),
        records.len(),
        share * 100.0
    );
    assert!(share > 0.5, "the client was mostly served ({:.1} %)", share * 100.0);
    let after = status(&lab, "ha1").unwrap();
    assert_eq!(after["groups"][0]["holder"], "ha1");
    assert_eq!(after["groups"][0]["round"], round, "the lease was never re-acquired (no flapping)");
    lab.down().unwrap();
}
