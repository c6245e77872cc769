//! Unit tests for each rule, and properties checked against a slow,
//! obviously correct reference scheduler.

use std::collections::{BTreeMap, HashMap, HashSet};

use proptest::prelude::*;

use super::*;

const M: u64 = 1 << 20;
const G: u64 = 1 << 30;

fn node(name: &str, cpu_millis: u64, memory_bytes: u64) -> Node {
    Node::new(name, Resources::new(cpu_millis, memory_bytes))
}

fn req(proc: &str, cpu_millis: u64, memory_bytes: u64, n: u32) -> ProcRequest {
    ProcRequest::new("app", proc, Resources::new(cpu_millis, memory_bytes)).with_pending(1..=n)
}

/// `(proc, instance) -> node name` of every placement.
fn placed(nodes: &[Node], requests: &[ProcRequest]) -> BTreeMap<(String, u32), String> {
    let s = schedule(nodes, requests).expect("valid input");
    s.named(nodes, requests)
        .map(|(_, proc, i, node)| ((proc.to_owned(), i), node.to_owned()))
        .collect()
}

/// The reasons of the unplaced instances, as text.
fn reasons(nodes: &[Node], requests: &[ProcRequest]) -> Vec<String> {
    let s = schedule(nodes, requests).expect("valid input");
    s.unplaced.iter().map(|u| u.reason.to_string()).collect()
}

fn nodes_of(map: &BTreeMap<(String, u32), String>) -> Vec<&str> {
    map.values().map(String::as_str).collect()
}

// ---- fit -------------------------------------------------------------

#[test]
fn fits_by_memory_with_usage_subtracted() {
    // a has the larger capacity but only 1g free; b has 2g free.
    let nodes = [
        node("a", 8000, 8 * G).with_used(Resources::new(0, 7 * G)),
        node("b", 8000, 2 * G),
    ];
    let p = placed(&nodes, &[req("web", 0, 3 * G / 2, 1)]);
    assert_eq!(nodes_of(&p), ["b"]);

    // Neither has 3g free once usage is subtracted.
    let r = reasons(&nodes, &[req("web", 0, 3 * G, 1)]);
    assert_eq!(r, ["no node has 3g free memory; largest free is b with 2g"]);
}

#[test]
fn fits_by_cpu_with_usage_subtracted() {
    // a has the most memory (so would be preferred) but only 0.5 cpu free.
    let nodes = [
        node("a", 4000, 16 * G).with_used(Resources::new(3500, 0)),
        node("b", 2000, 4 * G),
    ];
    let p = placed(&nodes, &[req("web", 1000, 256 * M, 1)]);
    assert_eq!(nodes_of(&p), ["b"]);

    let r = reasons(&nodes, &[req("web", 2500, 256 * M, 1)]);
    assert_eq!(
        r,
        ["no node has 2.5 cpus free; largest free is b with 2 cpus"]
    );
}

#[test]
fn fills_a_node_then_fails_with_the_memory_left() {
    let nodes = [node("n1", 0, 2 * G), node("n2", 0, G + 512 * M)];
    let requests = [req("web", 0, G, 4)];
    let s = schedule(&nodes, &requests).unwrap();
    assert_eq!(s.placements.len(), 3);
    assert_eq!(s.unplaced.len(), 1);
    assert_eq!(s.unplaced[0].instance, 4);
    assert_eq!(
        s.unplaced[0].reason.to_string(),
        "no node has 1g free memory; largest free is n2 with 512m"
    );
}

#[test]
fn zero_cpu_means_no_cpu_reservation() {
    let nodes = [node("n1", 0, 4 * G)];
    assert_eq!(placed(&nodes, &[req("web", 0, G, 2)]).len(), 2);
}

#[test]
fn over_committed_node_has_nothing_free() {
    // Usage above capacity (capacity lowered under running instances).
    let nodes = [node("n1", 1000, G).with_used(Resources::new(2000, 2 * G))];
    let r = reasons(&nodes, &[req("web", 0, M, 1)]);
    assert_eq!(
        r,
        ["no node has 1m free memory; largest free is n1 with 0m"]
    );
}

// ---- failure messages ---------------------------------------------------

#[test]
fn memory_failure_message_is_exact() {
    let nodes = [
        node("node-1", 4000, 4 * G).with_used(Resources::new(0, 3 * G)),
        node("node-2", 4000, 512 * M),
        node("node-3", 4000, 3 * G / 2),
    ];
    let r = reasons(&nodes, &[req("web", 0, 2 * G, 1)]);
    assert_eq!(
        r,
        ["no node has 2g free memory; largest free is node-3 with 1.5g"]
    );
}

#[test]
fn cpu_failure_message_is_exact() {
    let nodes = [
        node("node-1", 500, 8 * G),
        node("node-2", 4000, 8 * G).with_used(Resources::new(3750, 0)),
    ];
    let r = reasons(&nodes, &[req("web", 2000, G, 1)]);
    assert_eq!(
        r,
        ["no node has 2 cpus free; largest free is node-1 with 0.5 cpu"]
    );
}

#[test]
fn memory_and_cpu_on_different_nodes_message() {
    let nodes = [node("big-mem", 500, 8 * G), node("big-cpu", 8000, 512 * M)];
    let r = reasons(&nodes, &[req("web", 1000, G, 1)]);
    assert_eq!(
        r,
        [
            "no node has both 1g free memory and 1 cpu free; big-mem has the most memory free \
          (8g) but 0.5 cpu, big-cpu the most cpu free (8 cpus) but 512m memory"
        ]
    );
}

#[test]
fn failure_message_counts_nodes_left_out() {
    let nodes = [
        node("a", 0, 8 * G).with_status(NodeStatus::Lost),
        node("b", 0, 8 * G).with_status(NodeStatus::Cordoned),
        node("c", 0, 8 * G).with_label("zone", "x"),
        node("d", 0, G).with_label("zone", "y"),
    ];
    let r = reasons(
        &nodes,
        &[req("web", 0, 2 * G, 1).with_filter("constraint:zone==y")],
    );
    assert_eq!(
        r,
        ["no node has 2g free memory; largest free is d with 1g \
          (not counted: 1 lost, 1 cordoned; filters excluded 1 node)"]
    );
}

#[test]
fn a_full_cluster_still_places_what_fits() {
    // `a` fails and leaves cached stats; `b` is smaller and must still be
    // placed; `c` fails again from the cache with the same message.
    let nodes = [node("n1", 0, G), node("n2", 0, 512 * M)];
    let requests = [
        ProcRequest::new("a", "web", Resources::new(0, 2 * G)).with_pending([1]),
        ProcRequest::new("b", "web", Resources::new(0, 768 * M)).with_pending([1, 2]),
        ProcRequest::new("c", "web", Resources::new(0, 2 * G)).with_pending([1]),
    ];
    let s = schedule(&nodes, &requests).unwrap();
    let got: Vec<(&str, u32, &str)> = s
        .named(&nodes, &requests)
        .map(|(a, _, i, n)| (a, i, n))
        .collect();
    assert_eq!(got, [("b", 1, "n1")]);
    let why: Vec<(usize, u32, String)> = s
        .unplaced
        .iter()
        .map(|u| (u.request, u.instance, u.reason.to_string()))
        .collect();
    assert_eq!(
        why,
        [
            (
                0,
                1,
                "no node has 2g free memory; largest free is n1 with 1g".to_owned()
            ),
            (
                1,
                2,
                "no node has 768m free memory; largest free is n2 with 512m".to_owned()
            ),
            (
                2,
                1,
                "no node has 2g free memory; largest free is n2 with 512m".to_owned()
            ),
        ]
    );
}

#[test]
fn no_nodes_at_all() {
    assert_eq!(
        reasons(&[], &[req("web", 0, M, 1)]),
        ["no nodes are registered"]
    );
}

// ---- node status ------------------------------------------------------

#[test]
fn skips_cordoned_draining_lost_suspect_and_unknown_nodes() {
    let statuses = [
        NodeStatus::Cordoned,
        NodeStatus::Draining,
        NodeStatus::Lost,
        NodeStatus::Suspect,
        NodeStatus::Unknown,
    ];
    // The unavailable nodes are bigger, so they would win if considered.
    let mut nodes: Vec<Node> = statuses
        .iter()
        .enumerate()
        .map(|(i, &s)| node(&format!("bad-{i}"), 64_000, 64 * G).with_status(s))
        .collect();
    nodes.push(node("good", 1000, G));
    let p = placed(&nodes, &[req("web", 100, 100 * M, 3)]);
    assert_eq!(nodes_of(&p), ["good", "good", "good"]);

    nodes.pop();
    let r = reasons(&nodes, &[req("web", 100, 100 * M, 1)]);
    assert_eq!(
        r,
        [
            "all 5 nodes are unavailable (1 lost, 1 suspect, 1 not yet seen alive, \
          1 cordoned, 1 draining)"
        ]
    );
}

// ---- spread -------------------------------------------------------------

#[test]
fn three_instances_on_three_nodes_land_on_three_nodes() {
    // Unequal nodes: without spread all three would go to the biggest.
    let nodes = [
        node("n1", 8000, 32 * G),
        node("n2", 8000, 4 * G),
        node("n3", 8000, 2 * G),
    ];
    let p = placed(&nodes, &[req("web", 100, 256 * M, 3)]);
    let distinct: HashSet<&str> = nodes_of(&p).into_iter().collect();
    assert_eq!(distinct.len(), 3);
}

#[test]
fn three_instances_on_two_nodes_are_two_and_one() {
    let nodes = [node("n1", 8000, 8 * G), node("n2", 8000, 8 * G)];
    let p = placed(&nodes, &[req("web", 100, 256 * M, 3)]);
    let mut per_node: BTreeMap<&str, usize> = BTreeMap::new();
    for n in nodes_of(&p) {
        *per_node.entry(n).or_default() += 1;
    }
    // Equal nodes: the tie goes to n1 by name, so n1 takes the second.
    assert_eq!(per_node, BTreeMap::from([("n1", 2), ("n2", 1)]));
}

#[test]
fn spread_evens_out_many_instances() {
    let nodes = [
        node("n1", 0, 64 * G),
        node("n2", 0, 64 * G),
        node("n3", 0, 64 * G),
    ];
    let p = placed(&nodes, &[req("web", 0, 256 * M, 10)]);
    let mut per_node: BTreeMap<&str, usize> = BTreeMap::new();
    for n in nodes_of(&p) {
        *per_node.entry(n).or_default() += 1;
    }
    assert_eq!(per_node, BTreeMap::from([("n1", 4), ("n2", 3), ("n3", 3)]));
}

#[test]
fn spread_counts_instances_already_placed() {
    let nodes = [
        node("n1", 0, 64 * G),
        node("n2", 0, 8 * G),
        node("n3", 0, 8 * G),
    ];
    // n1 already holds instances 1 and 2; the new ones go elsewhere first.
    let r = ProcRequest::new("app", "web", Resources::new(0, G))
        .with_placed(1, "n1")
        .with_placed(2, "n1")
        .with_pending([3, 4, 5]);
    let p = placed(&nodes, &[r]);
    assert_eq!(p[&("web".to_owned(), 3)], "n2");
    assert_eq!(p[&("web".to_owned(), 4)], "n3");
    // n2 and n3 now hold one each, n1 two: the next goes to n2 (tie, name).
    assert_eq!(p[&("web".to_owned(), 5)], "n2");
}

#[test]
fn spread_is_per_proc() {
    let nodes = [node("n1", 0, 64 * G), node("n2", 0, 8 * G)];
    // Each proc spreads on its own; both start on the node with most memory.
    let p = placed(&nodes, &[req("web", 0, G, 1), req("worker", 0, G, 1)]);
    assert_eq!(nodes_of(&p), ["n1", "n1"]);
}

#[test]
fn spread_yields_to_fit() {
    // n2 is full, so both instances go to n1 rather than failing.
    let nodes = [node("n1", 0, 8 * G), node("n2", 0, 512 * M)];
    let p = placed(&nodes, &[req("web", 0, G, 2)]);
    assert_eq!(nodes_of(&p), ["n1", "n1"]);
}

// ---- filters -----------------------------------------------------------

fn zoned() -> Vec<Node> {
    vec![
        node("n1", 8000, 8 * G).with_label("zone", "a"),
        node("n2", 8000, 16 * G)
            .with_label("zone", "b")
            .with_label("group", "db"),
        node("n3", 8000, 8 * G)
            .with_label("zone", "a")
            .with_label("group", "web"),
        node("n4", 8000, 32 * G),
    ]
}

#[test]
fn equal_filter_keeps_to_matching_nodes() {
    let p = placed(
        &zoned(),
        &[req("web", 0, G, 4).with_filter("constraint:zone==a")],
    );
    assert_eq!(nodes_of(&p), ["n1", "n3", "n1", "n3"]);
}

#[test]
fn not_equal_filter_avoids_matching_nodes() {
    // n2 is the db node; n4 has no group label and passes `!=`.
    let p = placed(
        &zoned(),
        &[req("web", 0, G, 3).with_filter("constraint:group!=db")],
    );
    let got: HashSet<&str> = nodes_of(&p).into_iter().collect();
    assert_eq!(got, HashSet::from(["n1", "n3", "n4"]));
}

#[test]
fn node_filter_matches_the_node_name() {
    let p = placed(
        &zoned(),
        &[req("web", 0, G, 2).with_filter("constraint:node==n3")],
    );
    assert_eq!(nodes_of(&p), ["n3", "n3"]);
}

#[test]
fn filters_combine() {
    let p = placed(
        &zoned(),
        &[req("web", 0, G, 2)
            .with_filter("constraint:zone==a")
            .with_filter("constraint:group!=web")],
    );
    assert_eq!(nodes_of(&p), ["n1", "n1"]);
}

#[test]
fn filters_that_exclude_every_node_say_so() {
    let mut nodes = zoned();
    nodes.push(node("n5", 0, G).with_status(NodeStatus::Lost));
    let r = reasons(
        &nodes,
        &[req("web", 0, G, 1).with_filter("constraint:zone==c")],
    );
    assert_eq!(
        r,
        ["filters `constraint:zone==c` exclude all 4 ready nodes (not counted: 1 lost)"]
    );
}

#[test]
fn malformed_filters_fail_the_proc_clearly_and_others_still_place() {
    for bad in [
        "zone==a",
        "constraint:zone",
        "constraint:==a",
        "affinity:container==web",
        "constraint:zone==~a",
        "",
    ] {
        let requests = [req("bad", 0, G, 2).with_filter(bad), req("good", 0, G, 1)];
        let s = schedule(&zoned(), &requests).unwrap();
        assert_eq!(s.placements.len(), 1, "{bad:?}");
        assert_eq!(s.placements[0].request, 1);
        assert_eq!(s.unplaced.len(), 2);
        for u in &s.unplaced {
            assert!(matches!(*u.reason, Reason::InvalidFilter(_)), "{bad:?}");
            assert!(u.reason.to_string().starts_with("invalid filter: "));
        }
    }
    assert!(check_filters(&["constraint:a==b"]).is_ok());
    let err = check_filters(&["affinity:image==redis"]).unwrap_err();
    assert!(err
        .to_string()
        .contains("affinity filters are not supported"));
}

// ---- stateful ----------------------------------------------------------

fn stateful(home: Option<&str>) -> ProcRequest {
    let mut r = ProcRequest::new("app", "db", Resources::new(500, 2 * G));
    r.stateful = true;
    r.pending.push(PendingInstance {
        instance: 1,
        home: home.map(str::to_owned),
    });
    r
}

#[test]
fn stateful_instance_stays_on_its_home() {
    // n4 has the most memory and would be picked without the pin.
    let p = placed(&zoned(), &[stateful(Some("n1"))]);
    assert_eq!(nodes_of(&p), ["n1"]);
}

#[test]
fn stateful_instance_without_home_is_placed_normally() {
    let p = placed(&zoned(), &[stateful(None)]);
    assert_eq!(nodes_of(&p), ["n4"]);
}

#[test]
fn home_is_ignored_for_stateless_procs() {
    let mut r = stateful(Some("n1"));
    r.stateful = false;
    assert_eq!(nodes_of(&placed(&zoned(), &[r])), ["n4"]);
}

#[test]
fn stateful_instance_is_not_moved_off_an_unavailable_home() {
    for status in [NodeStatus::Lost, NodeStatus::Cordoned, NodeStatus::Draining] {
        let mut nodes = zoned();
        nodes[0].status = status;
        let s = schedule(&nodes, &[stateful(Some("n1"))]).unwrap();
        assert!(s.placements.is_empty(), "{status:?}");
        assert_eq!(
            *s.unplaced[0].reason,
            Reason::HomeUnavailable {
                node: "n1".into(),
                status
            }
        );
        assert!(s.unplaced[0].reason.is_pinned());
        assert_eq!(
            s.unplaced[0].reason.to_string(),
            format!(
                "not moved: its volumes are on n1, which is {status}; a stateful instance is \
                 not moved off the node that holds its volumes"
            )
        );
    }
}

#[test]
fn stateful_instance_waits_for_room_on_its_home() {
    let mut nodes = zoned();
    nodes[0].used = Resources::new(0, 7 * G);
    let r = reasons(&nodes, &[stateful(Some("n1"))]);
    assert_eq!(
        r,
        [
            "not moved: its volumes are on n1, which has 1g memory and 8 cpus free but it needs \
          2g memory and 0.5 cpu; a stateful instance is not moved off the node that holds \
          its volumes"
        ]
    );
}

#[test]
fn stateful_home_that_is_gone_or_filtered_out() {
    let r = reasons(&zoned(), &[stateful(Some("n9"))]);
    assert!(r[0].starts_with("not moved: its volumes are on n9, which is not registered"));
    let r = reasons(
        &zoned(),
        &[stateful(Some("n1")).with_filter("constraint:zone==b")],
    );
    assert!(r[0].starts_with(
        "not moved: its volumes are on n1, which filters `constraint:zone==b` exclude"
    ));
}

#[test]
fn pinned_instances_are_placed_before_free_ones() {
    // `aaa` sorts first and would take n1's last 2g; the db's volumes are there.
    let nodes = [node("n1", 4000, 2 * G)];
    let requests = [req("aaa", 0, 2 * G, 1), stateful(Some("n1"))];
    let s = schedule(&nodes, &requests).unwrap();
    assert_eq!(s.placements.len(), 1);
    assert_eq!(s.placements[0].request, 1);
    assert_eq!(s.unplaced[0].request, 0);
}

#[test]
fn pinned_instances_count_for_spread() {
    let nodes = [node("n1", 0, 64 * G), node("n2", 0, 8 * G)];
    let mut r = stateful(Some("n1"));
    r.resources = Resources::new(0, G);
    r.pending.push(PendingInstance::new(2));
    let p = placed(&nodes, &[r]);
    assert_eq!(p[&("db".to_owned(), 1)], "n1");
    assert_eq!(p[&("db".to_owned(), 2)], "n2");
}

// ---- keeping placements, determinism, input -----------------------------

#[test]
fn keeps_existing_placements() {
    let nodes = [
        node("n1", 0, 4 * G).with_used(Resources::new(0, 2 * G)),
        node("n2", 0, 4 * G).with_used(Resources::new(0, 2 * G)),
    ];
    let r = ProcRequest::new("app", "web", Resources::new(0, 2 * G))
        .with_placed(1, "n1")
        .with_placed(2, "n2")
        .with_pending([3, 4, 5]);
    let s = schedule(&nodes, &[r]).unwrap();
    // Instances 1 and 2 are not touched; their memory is already in `used`.
    let got: Vec<u32> = s.placements.iter().map(|p| p.instance).collect();
    assert_eq!(got, [3, 4]);
    assert_eq!(s.unplaced.len(), 1);
    assert_eq!(s.unplaced[0].instance, 5);
}

#[test]
fn duplicate_and_already_placed_instances_are_reported() {
    let nodes = [node("n1", 0, 8 * G)];
    let r = ProcRequest::new("app", "web", Resources::new(0, G))
        .with_placed(1, "n1")
        .with_pending([2, 1, 2]);
    let s = schedule(&nodes, &[r]).unwrap();
    assert_eq!(s.placements.len(), 1);
    let mut why: Vec<(u32, String)> = s
        .unplaced
        .iter()
        .map(|u| (u.instance, u.reason.to_string()))
        .collect();
    why.sort();
    assert_eq!(
        why,
        [
            (1, "the instance is already placed on n1".to_owned()),
            (
                2,
                "the instance number is pending twice in one request".to_owned()
            )
        ]
    );
}

#[test]
fn duplicate_node_names_are_refused() {
    let nodes = [node("n1", 0, G), node("n1", 0, G)];
    assert_eq!(
        schedule(&nodes, &[]),
        Err(InputError::DuplicateNode("n1".into()))
    );
}

#[test]
fn ties_go_to_the_smallest_name() {
    let nodes = [
        node("b", 0, 8 * G),
        node("c", 0, 8 * G),
        node("a", 0, 8 * G),
    ];
    let p = placed(&nodes, &[req("web", 0, G, 1)]);
    assert_eq!(nodes_of(&p), ["a"]);
}

#[test]
fn deterministic_in_any_input_order() {
    let mut nodes = zoned();
    let mut requests = vec![
        req("web", 0, G, 5),
        req("worker", 0, 2 * G, 4).with_filter("constraint:zone==a"),
        req("cron", 0, 3 * G, 2).with_filter("constraint:group!=db"),
        stateful(Some("n2")),
    ];
    let first = placed(&nodes, &requests);
    assert_eq!(first, placed(&nodes, &requests));
    nodes.reverse();
    requests.reverse();
    assert_eq!(first, placed(&nodes, &requests));
    nodes.rotate_left(1);
    requests.rotate_left(2);
    assert_eq!(first, placed(&nodes, &requests));
}

// ---- scaling -------------------------------------------------------------

#[test]
fn scale_down_removes_the_highest_numbers_first() {
    assert_eq!(instances_to_remove(&[1, 2, 3, 4, 5], 3), [5, 4]);
    assert_eq!(instances_to_remove(&[3, 9, 1, 7], 2), [9, 7]);
    assert_eq!(instances_to_remove(&[2, 2, 1], 1), [2]);
    assert_eq!(instances_to_remove(&[1, 2], 2), Vec::<u32>::new());
    assert_eq!(instances_to_remove(&[1, 2], 5), Vec::<u32>::new());
    assert_eq!(instances_to_remove(&[4, 1, 2], 0), [4, 2, 1]);
}

#[test]
fn scale_up_fills_the_lowest_free_numbers() {
    assert_eq!(instances_to_add(&[1, 2], 4), [3, 4]);
    assert_eq!(instances_to_add(&[1, 3, 5], 5), [2, 4]);
    assert_eq!(instances_to_add(&[], 2), [1, 2]);
    assert_eq!(instances_to_add(&[1, 2, 3], 2), Vec::<u32>::new());
}

// ---- lain-store conversions ---------------------------------------------

#[test]
fn status_from_registration_and_liveness() {
    use lain_store::{Capacity, DockerEndpoint, Liveness, NodeRegistration, ObservedNode};
    let reg = |schedulable, draining| NodeRegistration {
        docker: DockerEndpoint::Unix {
            socket: "/run/docker.sock".into(),
        },
        address: "10.0.0.1".into(),
        labels: BTreeMap::from([("zone".to_owned(), "a".to_owned())]),
        capacity: Capacity {
            cpu_millis: 4000,
            memory_bytes: 8 * G,
        },
        schedulable,
        draining,
        drain_volumes: false,
        registered_at_ms: 0,
    };
    let seen = |liveness| ObservedNode {
        liveness,
        last_seen_ms: 0,
        since_ms: 0,
        docker_version: None,
        instances: 0,
        message: None,
    };
    let alive = seen(Liveness::Alive);
    assert_eq!(
        NodeStatus::of(&reg(true, false), Some(&alive)),
        NodeStatus::Ready
    );
    assert_eq!(
        NodeStatus::of(&reg(false, false), Some(&alive)),
        NodeStatus::Cordoned
    );
    assert_eq!(
        NodeStatus::of(&reg(true, true), Some(&alive)),
        NodeStatus::Draining
    );
    assert_eq!(
        NodeStatus::of(&reg(true, false), Some(&seen(Liveness::Lost))),
        NodeStatus::Lost
    );
    assert_eq!(
        NodeStatus::of(&reg(false, false), Some(&seen(Liveness::Suspect))),
        NodeStatus::Suspect
    );
    assert_eq!(NodeStatus::of(&reg(true, false), None), NodeStatus::Unknown);
    let n = Node::from_registration("n1", &reg(true, false), Some(&alive), Resources::ZERO);
    assert_eq!(n.capacity, Resources::new(4000, 8 * G));
    assert_eq!(n.labels["zone"], "a");
}

// ---- properties -----------------------------------------------------------

/// The rule of the module docs, the slow way: every instance scans every
/// node.
fn reference(nodes: &[Node], requests: &[ProcRequest]) -> BTreeMap<(usize, u32), String> {
    let mut free: HashMap<&str, Resources> =
        nodes.iter().map(|n| (n.name.as_str(), n.free())).collect();
    let mut out = BTreeMap::new();
    let mut order: Vec<usize> = (0..requests.len()).collect();
    order.sort_by(|&a, &b| {
        (&requests[a].app, &requests[a].proc, a).cmp(&(&requests[b].app, &requests[b].proc, b))
    });
    let filters: Vec<Option<FilterSet>> = requests
        .iter()
        .map(|r| FilterSet::parse(&r.filters).ok())
        .collect();
    let mut counts: Vec<HashMap<&str, u32>> = vec![HashMap::new(); requests.len()];
    for &ri in &order {
        let r = &requests[ri];
        for p in &r.placed {
            *counts[ri].entry(p.node.as_str()).or_default() += 1;
        }
    }
    for &ri in &order {
        let r = &requests[ri];
        let Some(f) = &filters[ri] else { continue };
        if !r.stateful {
            continue;
        }
        for p in &r.pending {
            let Some(home) = &p.home else { continue };
            let Some(n) = nodes.iter().find(|n| &n.name == home) else {
                continue;
            };
            let fr = free[n.name.as_str()];
            if n.status.is_schedulable() && f.matches(&n.name, &n.labels) && r.resources.fits_in(fr)
            {
                free.insert(&n.name, fr.saturating_sub(r.resources));
                *counts[ri].entry(n.name.as_str()).or_default() += 1;
                out.insert((ri, p.instance), n.name.clone());
            }
        }
    }
    for &ri in &order {
        let r = &requests[ri];
        let Some(f) = &filters[ri] else { continue };
        let mut pending: Vec<u32> = r
            .pending
            .iter()
            .filter(|p| !(r.stateful && p.home.is_some()))
            .map(|p| p.instance)
            .collect();
        pending.sort();
        for instance in pending {
            let best = nodes
                .iter()
                .filter(|n| n.status.is_schedulable() && f.matches(&n.name, &n.labels))
                .filter(|n| r.resources.fits_in(free[n.name.as_str()]))
                .min_by_key(|n| {
                    let fr = free[n.name.as_str()];
                    (
                        counts[ri].get(n.name.as_str()).copied().unwrap_or(0),
                        std::cmp::Reverse(fr.memory_bytes),
                        std::cmp::Reverse(fr.cpu_millis),
                        n.name.clone(),
                    )
                });
            if let Some(n) = best {
                let fr = free[n.name.as_str()];
                free.insert(&n.name, fr.saturating_sub(r.resources));
                *counts[ri].entry(n.name.as_str()).or_default() += 1;
                out.insert((ri, instance), n.name.clone());
            }
        }
    }
    out
}

fn arb_status() -> impl Strategy<Value = NodeStatus> {
    prop_oneof![
        6 => Just(NodeStatus::Ready),
        1 => Just(NodeStatus::Cordoned),
        1 => Just(NodeStatus::Draining),
        1 => Just(NodeStatus::Lost),
        1 => Just(NodeStatus::Suspect),
    ]
}

fn arb_nodes(max: usize) -> impl Strategy<Value = Vec<Node>> {
    prop::collection::vec(
        (
            0u64..8_000,
            0u64..16,
            0u64..6_000,
            0u64..12,
            arb_status(),
            prop::option::of(prop::sample::select(vec!["a", "b", "c"])),
            prop::option::of(prop::sample::select(vec!["db", "web"])),
        ),
        0..max,
    )
    .prop_map(|specs| {
        specs
            .into_iter()
            .enumerate()
            .map(|(i, (cpu, mem, used_cpu, used_mem, status, zone, group))| {
                let mut n = node(&format!("n{i}"), cpu, mem * 512 * M)
                    .with_used(Resources::new(used_cpu, used_mem * 512 * M))
                    .with_status(status);
                if let Some(z) = zone {
                    n = n.with_label("zone", z);
                }
                if let Some(g) = group {
                    n = n.with_label("group", g);
                }
                n
            })
            .collect()
    })
}

fn arb_filter() -> impl Strategy<Value = String> {
    prop::sample::select(vec![
        "constraint:zone==a",
        "constraint:zone==b",
        "constraint:zone!=c",
        "constraint:group==db",
        "constraint:group!=db",
        "constraint:node==n1",
        "constraint:node!=n0",
        "affinity:container==x",
        "constraint:zone",
        "zone==a",
    ])
    .prop_map(str::to_owned)
}

/// Up to `max` requests of up to `pending` instances, on nodes `n0..n{nodes}`
/// (homes and placed nodes may name a node that does not exist).
fn arb_requests(
    max: usize,
    pending: usize,
    nodes: usize,
) -> impl Strategy<Value = Vec<ProcRequest>> {
    prop::collection::vec(
        (
            prop::sample::select(vec!["web", "worker", "db", "cron"]),
            0u64..3_000,
            0u64..8,
            prop::collection::vec(arb_filter(), 0..3),
            any::<bool>(),
            prop::collection::vec((1u32..4, prop::option::of(0..nodes + 1)), 0..4),
            prop::collection::vec(prop::option::of(0..nodes + 1), 0..pending),
        ),
        0..max,
    )
    .prop_map(|specs| {
        specs
            .into_iter()
            .enumerate()
            .map(
                |(i, (proc, cpu, mem, filters, stateful, placed, pending))| {
                    // (app, proc) pairs are unique, as in etcd.
                    let mut r = ProcRequest::new(
                        format!("app{}", i % 3),
                        format!("{proc}{i}"),
                        Resources::new(cpu, mem * 256 * M),
                    );
                    r.filters = filters;
                    r.stateful = stateful;
                    // Placed instances get the low numbers, pending the rest,
                    // so each instance number is used once.
                    let mut number = 0;
                    for (_, on) in placed {
                        number += 1;
                        if let Some(on) = on {
                            r.placed.push(PlacedInstance {
                                instance: number,
                                node: format!("n{on}"),
                            });
                        }
                    }
                    for home in pending {
                        number += 1;
                        r.pending.push(PendingInstance {
                            instance: number,
                            home: home.map(|h| format!("n{h}")),
                        });
                    }
                    r
                },
            )
            .collect()
    })
}

/// The properties every schedule has, and agreement with [`reference`].
fn check_schedule(nodes: &[Node], requests: &[ProcRequest]) -> Result<(), TestCaseError> {
    let s = schedule(nodes, requests).unwrap();

    // No node over capacity: what was placed fits in capacity minus
    // usage (a node already over capacity takes nothing that needs
    // the exhausted resource).
    let mut added = vec![Resources::ZERO; nodes.len()];
    for p in &s.placements {
        added[p.node] = added[p.node].saturating_add(requests[p.request].resources);
    }
    for (n, a) in nodes.iter().zip(&added) {
        prop_assert!(
            a.fits_in(n.free()),
            "{} over capacity: {:?} added",
            n.name,
            a
        );
    }

    for p in &s.placements {
        let n = &nodes[p.node];
        let r = &requests[p.request];
        // Filters hold; only ready nodes.
        let f = FilterSet::parse(&r.filters);
        prop_assert!(f.is_ok());
        prop_assert!(f.unwrap().matches(&n.name, &n.labels));
        prop_assert!(n.status.is_schedulable());
        // Stateful instances with a home are on it.
        if r.stateful {
            let home = r
                .pending
                .iter()
                .find(|q| q.instance == p.instance)
                .and_then(|q| q.home.as_ref());
            if let Some(home) = home {
                prop_assert_eq!(home, &n.name);
            }
        }
    }

    // Every pending instance is placed or has a reason, exactly once.
    let mut seen: HashMap<(usize, u32), usize> = HashMap::new();
    for p in &s.placements {
        *seen.entry((p.request, p.instance)).or_default() += 1;
    }
    for u in &s.unplaced {
        prop_assert!(!u.reason.to_string().is_empty());
        *seen.entry((u.request, u.instance)).or_default() += 1;
    }
    let expected: usize = requests.iter().map(|r| r.pending.len()).sum();
    prop_assert_eq!(seen.len(), expected);
    prop_assert!(seen.values().all(|&c| c == 1));

    // Same placements as the slow reference.
    let got: BTreeMap<(usize, u32), String> = s
        .placements
        .iter()
        .map(|p| ((p.request, p.instance), nodes[p.node].name.clone()))
        .collect();
    prop_assert_eq!(got, reference(nodes, requests));
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn placements_respect_every_rule(
        nodes in arb_nodes(9),
        requests in arb_requests(7, 12, 9),
    ) {
        check_schedule(&nodes, &requests)?;
    }

    #[test]
    fn input_order_does_not_matter(
        nodes in arb_nodes(9),
        requests in arb_requests(7, 12, 9),
        seed in any::<u64>(),
    ) {
        let named = |nodes: &[Node], requests: &[ProcRequest]| {
            let s = schedule(nodes, requests).unwrap();
            let mut v: Vec<(String, String, u32, String)> = s
                .named(nodes, requests)
                .map(|(a, p, i, n)| (a.to_owned(), p.to_owned(), i, n.to_owned()))
                .collect();
            v.sort();
            v
        };
        let before = named(&nodes, &requests);
        let (mut n2, mut r2) = (nodes.clone(), requests.clone());
        let k = (seed as usize) % n2.len().max(1);
        n2.rotate_left(k);
        n2.reverse();
        let k = (seed as usize >> 8) % r2.len().max(1);
        r2.rotate_left(k);
        prop_assert_eq!(before, named(&n2, &r2));
    }
}

proptest! {
    // Bigger inputs, fewer cases: deep spread levels, many groups sharing
    // nodes (stale heap entries), clusters filling up.
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn larger_schedules_match_the_reference(
        nodes in arb_nodes(40),
        requests in arb_requests(30, 80, 40),
    ) {
        check_schedule(&nodes, &requests)?;
    }
}
