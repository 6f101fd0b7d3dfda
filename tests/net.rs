//! The kernel-networking layer on the real kernel, in network namespaces (DESIGN.md §5): netlink add/remove/dump,
//! lifetimes and their renewal, events, gratuitous ARP and unsolicited NA seen by a peer, and the ARP probe.
//! Only documentation addresses are used. Time bounds are generous; measured figures are printed (`--nocapture`).

use std::net::IpAddr;
use std::time::Duration;

use hactl::sys::clock::{LeaseClock, LeaseTime};
use hactl::sys::net::{
    self, FloatingAddr, Lifetime, NetError, NetEvent, NetEvents, Netlink, ProbeResult, Removed, Renewal,
};

use crate::support::netns::{Lab, Ns, eventually, netns_available};

fn floating(addr: &str, label: Option<&str>) -> FloatingAddr {
    FloatingAddr { ifname: "eth0".into(), address: addr.parse().unwrap(), label: label.map(String::from) }
}

/// The kernel's view, as `ip` prints it (independent of our own dump code).
fn ip_addr_show(ns: &Ns) -> String {
    ns.ip(&["-d", "addr", "show", "dev", "eth0"])
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

#[test]
fn netlink_add_with_label_and_lifetime_dump_and_remove() {
    if !netns_available("netlink_add_with_label_and_lifetime_dump_and_remove") {
        return;
    }
    let mut lab = Lab::start();
    let a = lab.add_node("a");
    let (dumped, timings) = a.block_on(|| async {
        let nl = Netlink::connect().unwrap();
        let fl = floating("192.0.2.10/24", Some("eth0:web"));
        let t0 = LeaseClock::read();
        nl.add(&fl, Lifetime::Seconds(300)).await.unwrap();
        let t1 = LeaseClock::read();
        // Adding again is idempotent (NLM_F_REPLACE), as adoption needs.
        nl.add(&fl, Lifetime::Seconds(300)).await.unwrap();
        let dumped = nl.addresses("eth0").await.unwrap();
        (dumped, (t1 - t0, fl))
    });
    let (add_latency, fl) = timings;
    let ours = dumped.iter().find(|d| d.address == fl.address).expect("added address in our dump");
    assert_eq!(ours.label.as_deref(), Some("eth0:web"));
    assert!(matches!(ours.valid, Lifetime::Seconds(s) if (290..=300).contains(&s)), "{ours:?}");
    assert_eq!(ours.valid, ours.preferred);
    let shown = ip_addr_show(&a);
    assert!(shown.contains("inet 192.0.2.10/24") && shown.contains("eth0:web"), "{shown}");
    assert!(shown.contains("valid_lft 29") || shown.contains("valid_lft 300"), "{shown}");
    let promote = a.cmd("cat").arg("/proc/sys/net/ipv4/conf/eth0/promote_secondaries").output().unwrap();
    assert_eq!(String::from_utf8_lossy(&promote.stdout).trim(), "1", "promote_secondaries set in the node's namespace");

    let (first, second, after, del_latency) = a.block_on(move || async move {
        let nl = Netlink::connect().unwrap();
        let t0 = LeaseClock::read();
        let first = nl.remove(&fl).await.unwrap();
        let t1 = LeaseClock::read();
        let second = nl.remove(&fl).await.unwrap();
        (first, second, nl.addresses("eth0").await.unwrap(), t1 - t0)
    });
    assert_eq!((first, second), (Removed::Deleted, Removed::Absent));
    assert!(after.iter().all(|d| d.address.addr().to_string() != "192.0.2.10"), "{after:?}");
    assert!(!ip_addr_show(&a).contains("192.0.2.10"));
    eprintln!("netlink add {:.3} ms, delete {:.3} ms", ms(add_latency), ms(del_latency));
}

#[test]
fn missing_interface_is_an_error_value() {
    if !netns_available("missing_interface_is_an_error_value") {
        return;
    }
    let mut lab = Lab::start();
    let a = lab.add_node("a");
    a.block_on(|| async {
        let nl = Netlink::connect().unwrap();
        let gone = FloatingAddr { ifname: "nope0".into(), address: "192.0.2.10/24".parse().unwrap(), label: None };
        assert!(matches!(nl.link("nope0").await, Err(NetError::NoSuchInterface(n)) if n == "nope0"));
        assert!(matches!(nl.add(&gone, Lifetime::Seconds(5)).await, Err(NetError::NoSuchInterface(_))));
        assert!(matches!(nl.addresses("nope0").await, Err(NetError::NoSuchInterface(_))));
        assert!(matches!(nl.link("way-too-long-ifname").await, Err(NetError::NoSuchInterface(_))));
        assert_eq!(nl.remove(&gone).await.unwrap(), Removed::Absent);
        let ip: IpAddr = "192.0.2.10".parse().unwrap();
        assert!(matches!(net::announce(&nl, "nope0", ip).await, Err(NetError::NoSuchInterface(_))));
        // The link itself is found, with the MAC the lab gave it, and by its index too.
        let link = nl.link("eth0").await.unwrap();
        assert_eq!(link.mac, Some([0x02, 0x48, 0x58, 0, 0, 1]));
        assert!(link.up && link.carrier);
        assert_eq!(nl.link_by_index(link.index).await.unwrap(), link);
        assert!(matches!(nl.link_by_index(999_999).await, Err(NetError::NoSuchInterface(_))));
    });
}

/// A lease clock whose readings the test scripts: the renewal must read it exactly before the request and at the
/// acknowledgement.
struct ScriptedClock(std::sync::Mutex<Vec<Duration>>);

impl LeaseTime for ScriptedClock {
    fn now(&self) -> Duration {
        self.0.lock().unwrap().remove(0)
    }
}

#[test]
fn renewal_sets_lifetime_and_a_late_ack_fences() {
    if !netns_available("renewal_sets_lifetime_and_a_late_ack_fences") {
        return;
    }
    let mut lab = Lab::start();
    let a = lab.add_node("a");
    a.block_on(|| async {
        let nl = Netlink::connect().unwrap();
        let fl = floating("198.51.100.7/24", None);
        nl.add(&fl, Lifetime::Seconds(3)).await.unwrap();

        // A real renewal: the lifetime becomes ceil(deadline − now).
        let deadline = LeaseClock::read() + Duration::from_millis(29_500);
        let mut acks = Vec::new();
        for _ in 0..50 {
            match nl.renew(&fl, deadline, &LeaseClock).await.unwrap() {
                Renewal::Renewed(ack) => acks.push(ack),
                other => panic!("renewal well before the deadline fenced: {other:?}"),
            }
        }
        assert!(acks.iter().all(|a| a.lifetime == Lifetime::Seconds(30) && a.acked_at >= a.sent_at), "{acks:?}");
        let got = nl.addresses("eth0").await.unwrap();
        let ours = got.iter().find(|d| d.address == fl.address).expect("still there");
        assert!(matches!(ours.valid, Lifetime::Seconds(s) if (28..=30).contains(&s)), "{ours:?}");
        let mut rtt: Vec<Duration> = acks.iter().map(|a| a.acked_at - a.sent_at).collect();
        rtt.sort();
        eprintln!("renew: send→ack median {:.3} ms, max {:.3} ms (50 renewals)", ms(rtt[25]), ms(rtt[49]));

        // IPv6 takes the same path (the kernel's modify path differs from IPv4's).
        let v6 = floating("2001:db8:7::7/64", None);
        nl.add(&v6, Lifetime::Seconds(3)).await.unwrap();
        let renewed = nl.renew(&v6, deadline, &LeaseClock).await.unwrap();
        assert!(matches!(renewed, Renewal::Renewed(a) if a.lifetime == Lifetime::Seconds(30)), "{renewed:?}");
        let got = nl.addresses("eth0").await.unwrap();
        let ours = got.iter().find(|d| d.address == v6.address).expect("IPv6 still there");
        assert!(matches!(ours.valid, Lifetime::Seconds(s) if (28..=30).contains(&s)) && ours.nodad, "{ours:?}");

        // The acknowledgement comes back after the deadline: the address is deleted at once.
        let base = Duration::from_secs(1000);
        let clock = ScriptedClock(vec![base, base + Duration::from_secs(2)].into());
        let late = nl.renew(&fl, base + Duration::from_secs(1), &clock).await.unwrap();
        assert!(matches!(late, Renewal::Fenced { ack: Some(ack) } if ack.lifetime == Lifetime::Seconds(1)), "{late:?}");
        assert!(nl.addresses("eth0").await.unwrap().iter().all(|d| d.address != fl.address), "fenced address gone");

        // The deadline already passed before sending: nothing is renewed, and the address (re-added) is deleted.
        nl.add(&fl, Lifetime::Seconds(3)).await.unwrap();
        let clock = ScriptedClock(vec![base + Duration::from_secs(5)].into());
        let expired = nl.renew(&fl, base, &clock).await.unwrap();
        assert_eq!(expired, Renewal::Fenced { ack: None });
        assert!(nl.addresses("eth0").await.unwrap().iter().all(|d| d.address != fl.address));
    });
}

/// The kernel counts a lifetime from when it takes the request: one acknowledged so late that the address could
/// outlive its deadline by more than the rounding second is set again from a fresh read; one that stays late
/// through every retry is deleted.
#[test]
fn a_renewal_acknowledged_late_is_set_again_or_the_address_goes() {
    if !netns_available("a_renewal_acknowledged_late_is_set_again_or_the_address_goes") {
        return;
    }
    let mut lab = Lab::start();
    let a = lab.add_node("a");
    a.block_on(|| async {
        let nl = Netlink::connect().unwrap();
        let fl = floating("198.51.100.8/24", None);
        nl.add(&fl, Lifetime::Seconds(3)).await.unwrap();
        let ms = Duration::from_millis;
        let base = Duration::from_secs(1000);
        let deadline = base + ms(1050);
        // Read at base: ceil(1.05 s) = 2 s; acknowledged 100 ms later, the address could live to base + 2.1 s, past
        // deadline + 1 s. Set again at base + 100 ms: 1 s, acknowledged at once.
        let clock = ScriptedClock(vec![base, base + ms(100), base + ms(100), base + ms(110)].into());
        let renewed = nl.renew(&fl, deadline, &clock).await.unwrap();
        assert!(
            matches!(renewed, Renewal::Renewed(ack) if ack.lifetime == Lifetime::Seconds(1) && ack.sent_at == base + ms(100)),
            "{renewed:?}"
        );
        let got = nl.addresses("eth0").await.unwrap();
        let ours = got.iter().find(|d| d.address == fl.address).expect("still there");
        assert!(matches!(ours.valid, Lifetime::Seconds(s) if s <= 1), "the lifetime set again: {ours:?}");

        // Late at every attempt (each read 1.05 s before the deadline, each acknowledgement 100 ms later): after
        // the retries the address is deleted.
        let attempts = usize::try_from(hactl::sys::net::LATE_RETRIES).unwrap() + 1;
        let reads: Vec<Duration> = [base, base + ms(100)].into_iter().cycle().take(2 * attempts).collect();
        let clock = ScriptedClock(reads.into());
        let late = nl.renew(&fl, base + ms(1050), &clock).await.unwrap();
        assert!(matches!(late, Renewal::Fenced { ack: Some(_) }), "{late:?}");
        assert!(nl.addresses("eth0").await.unwrap().iter().all(|d| d.address != fl.address), "deleted after the retries");
    });
}

#[test]
fn kernel_lifetime_expires_the_address_by_itself() {
    if !netns_available("kernel_lifetime_expires_the_address_by_itself") {
        return;
    }
    let mut lab = Lab::start();
    let a = lab.add_node("a");
    let (v4, v6) = a.block_on(|| async {
        let nl = Netlink::connect().unwrap();
        let v4 = floating("203.0.113.5/24", None);
        let v6 = floating("2001:db8:5::5/64", None);
        let start = LeaseClock::read();
        nl.add(&v4, Lifetime::Seconds(1)).await.unwrap();
        nl.add(&v6, Lifetime::Seconds(1)).await.unwrap();
        let (mut gone4, mut gone6) = (None, None);
        // Bounded: at most 5 s in 10 ms steps.
        for _ in 0..500 {
            let now = nl.addresses("eth0").await.unwrap();
            let elapsed = LeaseClock::read() - start;
            if gone4.is_none() && now.iter().all(|d| d.address != v4.address) {
                gone4 = Some(elapsed);
            }
            if gone6.is_none() && now.iter().all(|d| d.address != v6.address) {
                gone6 = Some(elapsed);
            }
            if gone4.is_some() && gone6.is_some() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        (gone4, gone6)
    });
    let v4 = v4.expect("IPv4 address with valid_lft 1 still there after 5 s");
    let v6 = v6.expect("IPv6 address with valid_lft 1 still there after 5 s");
    assert!(v4 >= Duration::from_millis(900) && v6 >= Duration::from_millis(900), "expired too early: {v4:?} {v6:?}");
    eprintln!("valid_lft 1 expired after: IPv4 {:.0} ms, IPv6 {:.0} ms", ms(v4), ms(v6));
}

#[test]
fn events_report_external_delete_and_link_down() {
    if !netns_available("events_report_external_delete_and_link_down") {
        return;
    }
    let mut lab = Lab::start();
    let a = lab.add_node("a");
    let ns = a.clone();
    let bridge = lab.bridge().clone();
    a.block_on(move || async move {
        let mut events = NetEvents::subscribe().unwrap();
        let nl = Netlink::connect().unwrap();
        let fl = floating("192.0.2.30/24", None);
        nl.add(&fl, Lifetime::Seconds(60)).await.unwrap();
        let added = next_matching(&mut events, |e| matches!(e, NetEvent::AddressAdded(d) if d.address == fl.address));
        assert!(added.await.is_some(), "no event for our own add");

        // An administrator deletes the address by hand.
        let t0 = LeaseClock::read();
        ns.ip(&["addr", "del", "192.0.2.30/24", "dev", "eth0"]);
        let removed =
            next_matching(&mut events, |e| matches!(e, NetEvent::AddressRemoved(d) if d.address == fl.address));
        assert!(removed.await.is_some(), "no event for `ip addr del`");
        eprintln!("address removal event {:.3} ms after starting `ip addr del`", ms(LeaseClock::read() - t0));

        // The cable is cut (the bridge's end of the veth goes down): the node's link loses carrier, stays up.
        bridge.ip(&["link", "set", "va", "down"]); // as Lab::unplug, from inside the namespace thread
        let cut = next_matching(
            &mut events,
            |e| matches!(e, NetEvent::LinkChanged(l) if l.name == "eth0" && l.up && !l.carrier),
        );
        assert!(cut.await.is_some(), "no event for the loss of carrier");
        bridge.ip(&["link", "set", "va", "up"]);
        let back =
            next_matching(&mut events, |e| matches!(e, NetEvent::LinkChanged(l) if l.name == "eth0" && l.carrier));
        assert!(back.await.is_some(), "no event for the carrier coming back");

        // The link is set down by hand.
        ns.ip(&["link", "set", "eth0", "down"]);
        let down = next_matching(&mut events, |e| matches!(e, NetEvent::LinkChanged(l) if l.name == "eth0" && !l.up));
        assert!(down.await.is_some(), "no event for the link going down");
    });
}

/// Reads events until one matches, for at most 5 s and 1000 events.
async fn next_matching(events: &mut NetEvents, want: impl Fn(&NetEvent) -> bool) -> Option<NetEvent> {
    let search = async {
        for _ in 0..1000 {
            let event = events.next().await?;
            if want(&event) {
                return Some(event);
            }
        }
        None
    };
    tokio::time::timeout(Duration::from_secs(5), search).await.ok().flatten()
}

/// Two nodes on one bridge; `b` has an address of the subnet and knows `ip` at a made-up MAC.
fn two_nodes_with_stale_neighbour(lab: &mut Lab, b_addr: &str, ip: &str) -> (Ns, Ns) {
    let a = lab.add_node("a");
    let b = lab.add_node("b");
    b.ip(&["addr", "add", b_addr, "dev", "eth0", "nodad"]);
    b.ip(&["neigh", "replace", ip, "lladdr", "02:00:5e:00:00:99", "dev", "eth0", "nud", "stale"]);
    assert!(b.ip(&["neigh", "show", ip, "dev", "eth0"]).contains("02:00:5e:00:00:99"));
    (a, b)
}

/// Waits up to 5 s for `ns`'s neighbour entry for `ip` to carry `mac`.
fn neighbour_becomes(ns: &Ns, ip: &str, mac: &str) -> bool {
    neighbour_becomes_within(ns, ip, mac, Duration::from_secs(5))
}

fn neighbour_becomes_within(ns: &Ns, ip: &str, mac: &str, limit: Duration) -> bool {
    eventually(limit, || ns.ip(&["neigh", "show", ip, "dev", "eth0"]).contains(mac).then_some(())).is_some()
}

#[test]
fn gratuitous_arp_moves_the_peers_neighbour_entry() {
    if !netns_available("gratuitous_arp_moves_the_peers_neighbour_entry") {
        return;
    }
    let mut lab = Lab::start();
    let (a, b) = two_nodes_with_stale_neighbour(&mut lab, "192.0.2.2/24", "192.0.2.40");
    let a_mac = a.mac("eth0");
    a.block_on(|| async {
        let nl = Netlink::connect().unwrap();
        nl.add(&floating("192.0.2.40/24", None), Lifetime::Seconds(60)).await.unwrap();
    });
    // Control: adding the address alone does not tell the peer (the kernel sends no gratuitous ARP on add).
    assert!(!neighbour_becomes_within(&b, "192.0.2.40", &a_mac, Duration::from_millis(300)));
    a.block_on(|| async {
        let nl = Netlink::connect().unwrap();
        net::announce(&nl, "eth0", "192.0.2.40".parse().unwrap()).await.unwrap();
    });
    assert!(neighbour_becomes(&b, "192.0.2.40", &a_mac), "{}", b.ip(&["neigh", "show", "dev", "eth0"]));
}

#[test]
fn unsolicited_na_moves_the_peers_neighbour_entry() {
    if !netns_available("unsolicited_na_moves_the_peers_neighbour_entry") {
        return;
    }
    let mut lab = Lab::start();
    let (a, b) = two_nodes_with_stale_neighbour(&mut lab, "2001:db8:1::2/64", "2001:db8:1::40");
    let a_mac = a.mac("eth0");
    let dumped = a.block_on(|| async {
        let nl = Netlink::connect().unwrap();
        nl.add(&floating("2001:db8:1::40/64", None), Lifetime::Seconds(60)).await.unwrap();
        nl.addresses("eth0").await.unwrap()
    });
    // Control: with nodad the kernel sends no advertisement of its own on add.
    assert!(!neighbour_becomes_within(&b, "2001:db8:1::40", &a_mac, Duration::from_millis(300)));
    a.block_on(|| async {
        let nl = Netlink::connect().unwrap();
        net::announce(&nl, "eth0", "2001:db8:1::40".parse().unwrap()).await.unwrap();
    });
    let ours = dumped.iter().find(|d| d.address.to_string() == "2001:db8:1::40/64").expect("IPv6 address added");
    assert!(ours.nodad && !ours.tentative && !ours.dad_failed, "{ours:?}");
    assert!(ip_addr_show(&a).contains("nodad"));
    assert!(neighbour_becomes(&b, "2001:db8:1::40", &a_mac), "{}", b.ip(&["-6", "neigh", "show", "dev", "eth0"]));
    let (first, second) = a.block_on(|| async {
        let nl = Netlink::connect().unwrap();
        let fl = floating("2001:db8:1::40/64", None);
        (nl.remove(&fl).await.unwrap(), nl.remove(&fl).await.unwrap())
    });
    assert_eq!((first, second), (Removed::Deleted, Removed::Absent));
    assert!(!ip_addr_show(&a).contains("2001:db8:1::40"));
}

#[test]
fn arp_probe_detects_another_holder() {
    if !netns_available("arp_probe_detects_another_holder") {
        return;
    }
    let mut lab = Lab::start();
    let a = lab.add_node("a");
    let b = lab.add_node("b");
    b.ip(&["addr", "add", "192.0.2.50/24", "dev", "eth0"]);
    let b_mac = b.mac("eth0");
    let (held, free, elapsed) = a.block_on(|| async {
        let nl = Netlink::connect().unwrap();
        let wait = Duration::from_millis(500);
        let held = net::probe(&nl, "eth0", "192.0.2.50".parse().unwrap(), wait).await.unwrap();
        let t0 = LeaseClock::read();
        let free = net::probe(&nl, "eth0", "192.0.2.51".parse().unwrap(), wait).await.unwrap();
        (held, free, LeaseClock::read() - t0)
    });
    match held {
        ProbeResult::Conflict { mac } => assert_eq!(net::format_mac(mac), b_mac),
        ProbeResult::Clear => panic!("probe missed the holder of 192.0.2.50"),
    }
    assert_eq!(free, ProbeResult::Clear);
    // The probe of a free address waits its bound, and not much longer.
    assert!(elapsed >= Duration::from_millis(490) && elapsed < Duration::from_secs(3), "{elapsed:?}");
}

#[test]
fn lab_deletes_its_namespaces_even_when_the_test_panics() {
    use std::os::unix::process::ExitStatusExt;
    if !netns_available("lab_deletes_its_namespaces_even_when_the_test_panics") {
        return;
    }
    let left = std::sync::Mutex::new(None);
    let outcome = std::panic::catch_unwind(|| {
        let mut lab = Lab::start();
        let a = lab.add_node("a");
        // A process left running inside the namespace is stopped too.
        let sleeper = a.cmd("sleep").arg("30").spawn().unwrap();
        // `ip netns exec` enters the namespace after the spawn returns: wait until the kernel lists it there, or
        // the lab could be dropped before the sleeper is inside (a race a loaded machine wins).
        let pid = sleeper.id().to_string();
        let inside = crate::support::netns::eventually(Duration::from_secs(5), || {
            let out = std::process::Command::new("ip").args(["netns", "pids", &a.name]).output().ok()?;
            String::from_utf8_lossy(&out.stdout).split_whitespace().any(|p| p == pid).then_some(())
        });
        assert!(inside.is_some(), "the sleeper never entered the namespace");
        *left.lock().unwrap() = Some((lab.bridge().name.clone(), a.name.clone(), sleeper));
        panic!("test body fails");
    });
    assert!(outcome.is_err());
    let (bridge, node, mut sleeper) = left.into_inner().unwrap().expect("lab was built");
    let listed = crate::support::netns::run(std::process::Command::new("ip").args(["netns", "list"])).stdout;
    let listed = String::from_utf8_lossy(&listed);
    for ns in [bridge, node] {
        assert!(!listed.split_whitespace().any(|n| n == ns), "{ns} left behind: {listed}");
    }
    assert_eq!(sleeper.wait().unwrap().signal(), Some(libc::SIGKILL), "the sleeper was killed by the lab");
}

#[test]
fn ipv6_probe_detects_another_holder() {
    if !netns_available("ipv6_probe_detects_another_holder") {
        return;
    }
    let mut lab = Lab::start();
    let a = lab.add_node("a");
    let b = lab.add_node("b");
    b.ip(&["addr", "add", "2001:db8:2::50/64", "dev", "eth0", "nodad"]);
    let b_mac = b.mac("eth0");
    let (held, free) = a.block_on(|| async {
        let nl = Netlink::connect().unwrap();
        let wait = Duration::from_millis(500);
        let held = net::probe(&nl, "eth0", "2001:db8:2::50".parse().unwrap(), wait).await.unwrap();
        let free = net::probe(&nl, "eth0", "2001:db8:2::51".parse().unwrap(), wait).await.unwrap();
        (held, free)
    });
    match held {
        ProbeResult::Conflict { mac } => assert_eq!(net::format_mac(mac), b_mac),
        ProbeResult::Clear => panic!("DAD probe missed the holder of 2001:db8:2::50"),
    }
    assert_eq!(free, ProbeResult::Clear);
}

#[test]
fn lab_unplug_and_power_off_behave_like_the_real_thing() {
    if !netns_available("lab_unplug_and_power_off_behave_like_the_real_thing") {
        return;
    }
    let mut lab = Lab::start();
    let a = lab.add_node("a");
    a.ip(&["addr", "add", "192.0.2.60/24", "dev", "eth0"]);
    lab.unplug("a");
    let cut =
        eventually(Duration::from_secs(5), || a.ip(&["link", "show", "eth0"]).contains("NO-CARRIER").then_some(()));
    assert!(cut.is_some(), "{}", a.ip(&["link", "show", "eth0"]));
    assert!(ip_addr_show(&a).contains("192.0.2.60/24"), "a cut cable keeps the address");
    lab.plug("a");
    let back =
        eventually(Duration::from_secs(5), || (!a.ip(&["link", "show", "eth0"]).contains("NO-CARRIER")).then_some(()));
    assert!(back.is_some());
    lab.power_off("a");
    assert!(!a.ip_ok(&["addr", "show", "dev", "eth0"]), "eth0 and its address are gone");
}

#[test]
fn an_overrun_event_says_events_were_lost() {
    if !netns_available("an_overrun_event_says_events_were_lost") {
        return;
    }
    let mut lab = Lab::start();
    let a = lab.add_node("a");
    let ns = a.clone();
    a.block_on(move || async move {
        // The smallest buffer the kernel allows; the stream is not read while 200 addresses come and go, because
        // this single-threaded runtime is blocked in `ip` meanwhile.
        let mut events = NetEvents::subscribe_with_buffer(0).unwrap();
        let batch: String = (1..=100).map(|i| format!("addr add 198.51.100.{i}/24 dev eth0\n")).collect();
        // Secondaries first: deleting the primary first would drop them all (promote_secondaries is 0 here).
        let undo: String = (1..=100).rev().map(|i| format!("addr del 198.51.100.{i}/24 dev eth0\n")).collect();
        for script in [batch, undo] {
            let mut child = ns.cmd("ip").args(["-batch", "-"]).stdin(std::process::Stdio::piped()).spawn().unwrap();
            std::io::Write::write_all(&mut child.stdin.take().unwrap(), script.as_bytes()).unwrap();
            assert!(child.wait().unwrap().success());
        }
        let overrun = next_matching(&mut events, |e| *e == NetEvent::Overrun).await;
        assert!(overrun.is_some(), "no overrun reported after 200 unread events in a minimal buffer");
    });
}

#[test]
fn releasing_a_primary_floating_address_keeps_the_secondaries() {
    if !netns_available("releasing_a_primary_floating_address_keeps_the_secondaries") {
        return;
    }
    let mut lab = Lab::start();
    let a = lab.add_node("a");
    let ns = a.clone();
    let left = a.block_on(move || async move {
        let nl = Netlink::connect().unwrap();
        let fl = floating("192.0.2.70/24", None);
        // First in its subnet, so the floating address is the primary ...
        nl.add(&fl, Lifetime::Seconds(60)).await.unwrap();
        // ... and an administrator's address of the same subnet is a secondary.
        ns.ip(&["addr", "add", "192.0.2.71/24", "dev", "eth0"]);
        let before = nl.addresses("eth0").await.unwrap();
        assert!(before.iter().any(|d| d.address.to_string() == "192.0.2.71/24" && d.secondary), "{before:?}");
        assert_eq!(nl.remove(&fl).await.unwrap(), Removed::Deleted);
        nl.addresses("eth0").await.unwrap()
    });
    let kept = left.iter().find(|d| d.address.to_string() == "192.0.2.71/24");
    assert!(kept.is_some_and(|d| !d.secondary), "the secondary was dropped instead of promoted: {left:?}");
}
