use super::*;
use lain_store::ProcType;

fn desired(instances: u32, image: &str, generation: u64) -> DesiredProc {
    DesiredProc {
        app: "hello".into(),
        proc: "web".into(),
        proc_type: ProcType::Web,
        release: image.rsplit(':').next().unwrap_or(image).into(),
        image: image.into(),
        instances,
        cmd: vec![],
        entrypoint: vec![],
        user: None,
        workdir: None,
        cpu_millis: 0,
        memory_bytes: 32 << 20,
        env: Default::default(),
        secrets: vec![],
        port: Some(80),
        healthcheck: None,
        mountpoints: vec!["hello.example.com".into()],
        https_only: false,
        volumes: vec![],
        labels: Default::default(),
        kill_timeout_secs: 10,
        setup_time_secs: 0,
        stateful: false,
        filters: vec![],
        services: vec![],
        backups: vec![],
        restore: None,
        portal: None,
        generation,
    }
}

fn record(
    d: &DesiredProc,
    n: u32,
    node: &str,
    state: InstanceState,
    health: Health,
    rev: i64,
) -> Record {
    Record {
        slot: slot(n, d.generation),
        obs: ObservedInstance {
            node: node.into(),
            container_id: Some(format!("c{n}-{}", d.generation)),
            generation: d.generation,
            release: d.release.clone(),
            image: d.image.clone(),
            state,
            health,
            address: Some(format!("10.0.0.1:{}", 30000 + n)),
            restarts: 0,
            started_at_ms: Some(1_000),
            updated_at_ms: 1_000,
            message: None,
            instance: n,
            spec: spec_hash(d),
            recent_restarts_ms: vec![],
            volumes_from: None,
        },
        rev,
    }
}

fn ready(d: &DesiredProc, n: u32, node: &str, rev: i64) -> Record {
    record(d, n, node, InstanceState::Running, Health::Healthy, rev)
}

fn alive(_: &str) -> NodeView {
    NodeView::Alive
}

fn run(
    d: Option<&DesiredProc>,
    rollout: Option<&ProcRollout>,
    records: &[Record],
    routers: Option<i64>,
    now_ms: u64,
) -> Plan {
    run_on(d, rollout, records, routers, now_ms, &alive)
}

fn run_on(
    d: Option<&DesiredProc>,
    rollout: Option<&ProcRollout>,
    records: &[Record],
    routers: Option<i64>,
    now_ms: u64,
    node: &dyn Fn(&str) -> NodeView,
) -> Plan {
    plan(&Input {
        desired: d,
        rollout,
        records,
        node,
        routers_applied: routers,
        now_ms,
        leading_since_ms: 0,
        policy: Policy {
            health_timeout_ms: 10_000,
            max_surge: 1,
            drain_timeout_ms: 30_000,
        },
    })
}

fn states(plan: &Plan) -> Vec<(String, InstanceState)> {
    plan.puts
        .iter()
        .map(|(s, o)| (s.clone(), o.state))
        .collect()
}

fn converged(d: &DesiredProc) -> ProcRollout {
    ProcRollout {
        generation: d.generation,
        spec: spec_hash(d),
        phase: RolloutPhase::Converged,
        last_good: Some(d.clone()),
        failed_spec: None,
        message: None,
        updated_at_ms: 0,
        homes: Default::default(),
    }
}

/// `from` converged, a rollout to `to` under way.
fn rolling_to(from: &DesiredProc, to: &DesiredProc) -> ProcRollout {
    ProcRollout {
        generation: to.generation,
        spec: spec_hash(to),
        phase: RolloutPhase::Progressing,
        ..converged(from)
    }
}

#[test]
fn a_first_deploy_places_every_instance_and_starts_a_rollout() {
    let d = desired(3, "reg/hello:release-1", 1);
    let p = run(Some(&d), None, &[], None, 5_000);
    let slots: Vec<_> = p.place.iter().map(|r| r.slot.as_str()).collect();
    assert_eq!(slots, ["1-1", "2-1", "3-1"]);
    let r = p.rollout.expect("a rollout record");
    assert_eq!(r.phase, RolloutPhase::Progressing);
    assert_eq!(p.events[0].kind, EventKind::RolloutStarted);
    assert!(p.puts.is_empty() && p.deletes.is_empty());
}

#[test]
fn all_ready_converges_once() {
    let d = desired(2, "reg/hello:release-1", 1);
    let records = [ready(&d, 1, "n1", 10), ready(&d, 2, "n2", 11)];
    let mut progressing = converged(&d);
    progressing.phase = RolloutPhase::Progressing;
    progressing.last_good = None;
    let p = run(Some(&d), Some(&progressing), &records, None, 5_000);
    let r = p.rollout.expect("converged");
    assert_eq!(r.phase, RolloutPhase::Converged);
    assert_eq!(r.last_good.as_ref(), Some(&d));
    assert_eq!(p.events[0].kind, EventKind::RolloutSucceeded);
    // Level-triggered: the same state again plans nothing.
    let again = run(Some(&d), Some(&r), &records, None, 6_000);
    assert!(again.is_empty(), "{again:?}");
}

#[test]
fn a_new_release_replaces_one_instance_at_a_time() {
    let v1 = desired(2, "reg/hello:release-1", 1);
    let v2 = desired(2, "reg/hello:release-2", 2);
    let records = [ready(&v1, 1, "n1", 10), ready(&v1, 2, "n2", 11)];
    let p = run(Some(&v2), Some(&converged(&v1)), &records, None, 5_000);
    assert_eq!(p.place.len(), 1, "{p:?}");
    assert_eq!(p.place[0].slot, "1-2");
    assert!(p.puts.is_empty(), "old instances keep serving: {p:?}");
    assert_eq!(p.rollout.unwrap().phase, RolloutPhase::Progressing);
}

#[test]
fn an_old_instance_drains_only_after_routers_saw_its_replacement() {
    let v1 = desired(2, "reg/hello:release-1", 1);
    let v2 = desired(2, "reg/hello:release-2", 2);
    let rollout = rolling_to(&v1, &v2);
    let new1 = ready(&v2, 1, "n3", 20);
    let records = [
        ready(&v1, 1, "n1", 10),
        ready(&v1, 2, "n2", 11),
        new1.clone(),
    ];

    // The router has applied revision 19 only: it does not route to new1.
    let p = run(Some(&v2), Some(&rollout), &records, Some(19), 5_000);
    assert!(p.puts.is_empty(), "{p:?}");
    // Instance 2's replacement may start: instance 1's is ready.
    assert_eq!(p.place.len(), 1);
    assert_eq!(p.place[0].slot, "2-2");

    let p = run(Some(&v2), Some(&rollout), &records, Some(20), 5_000);
    assert_eq!(states(&p), [("1-1".to_owned(), InstanceState::Draining)]);

    // Draining is written at revision 21; once routers applied it, stop.
    let mut draining = records[0].clone();
    draining.obs.state = InstanceState::Draining;
    draining.rev = 21;
    let records = [draining, records[1].clone(), new1];
    let p = run(Some(&v2), Some(&rollout), &records, Some(20), 5_000);
    assert!(!p.puts.iter().any(|(s, _)| s == "1-1"), "{p:?}");
    let p = run(Some(&v2), Some(&rollout), &records, Some(21), 5_000);
    assert!(
        states(&p).contains(&("1-1".to_owned(), InstanceState::Stopping)),
        "{p:?}"
    );
}

#[test]
fn no_router_means_nothing_to_wait_for() {
    let v1 = desired(1, "reg/hello:release-1", 1);
    let v2 = desired(1, "reg/hello:release-2", 2);
    let records = [ready(&v1, 1, "n1", 10), ready(&v2, 1, "n2", 20)];
    let p = run(Some(&v2), Some(&converged(&v1)), &records, None, 5_000);
    assert_eq!(states(&p), [("1-1".to_owned(), InstanceState::Draining)]);
}

#[test]
fn a_new_release_that_never_gets_healthy_rolls_back() {
    let v1 = desired(2, "reg/hello:release-1", 1);
    let v2 = desired(2, "reg/hello:release-2", 2);
    let rollout = rolling_to(&v1, &v2);
    let starting = record(&v2, 1, "n3", InstanceState::Starting, Health::Starting, 20);
    let records = [ready(&v1, 1, "n1", 10), ready(&v1, 2, "n2", 11), starting];

    // Within setup time + health timeout (10 s after start at 1 s): wait.
    let p = run(Some(&v2), Some(&rollout), &records, None, 10_000);
    assert!(p.rollout.is_none() && p.puts.is_empty(), "{p:?}");
    // A leader that took over at 5 s gives it until 15 s.
    let p = plan(&Input {
        desired: Some(&v2),
        rollout: Some(&rollout),
        records: &records,
        node: &alive,
        routers_applied: None,
        now_ms: 12_000,
        leading_since_ms: 5_000,
        policy: Policy {
            health_timeout_ms: 10_000,
            max_surge: 1,
            drain_timeout_ms: 30_000,
        },
    });
    assert!(p.rollout.is_none(), "{p:?}");

    let p = run(Some(&v2), Some(&rollout), &records, None, 12_000);
    let r = p.rollout.clone().expect("rolled back");
    assert_eq!(r.phase, RolloutPhase::RolledBack);
    assert_eq!(r.failed_spec.as_deref(), Some(spec_hash(&v2).as_str()));
    assert_eq!(r.last_good.as_ref(), Some(&v1));
    let kinds: Vec<_> = p.events.iter().map(|e| e.kind).collect();
    assert_eq!(kinds, [EventKind::RolloutFailed, EventKind::RolledBack]);
    assert!(
        p.events[0].message.contains("did not become healthy"),
        "{:?}",
        p.events
    );

    // The next step targets release 1 again: the new instance goes, the
    // old ones stay.
    let t = target(Some(&v2), Some(&r)).unwrap();
    assert!(t.rolled_back);
    assert_eq!(t.spec, spec_hash(&v1));
    let p = run(Some(&v2), Some(&r), &records, None, 12_100);
    assert_eq!(states(&p), [("1-2".to_owned(), InstanceState::Stopping)]);
    assert!(p.place.is_empty());

    // Once it is gone the proc has converged back, still rolled back.
    let p = run(Some(&v2), Some(&r), &records[..2], None, 12_200);
    let after = p.rollout.expect("status");
    assert_eq!(after.phase, RolloutPhase::RolledBack);
    assert_eq!(after.last_good.as_ref(), Some(&v1));
    assert!(p.events.is_empty());
    // A new deploy (a new generation) tries again.
    let mut v2b = v2.clone();
    v2b.generation = 3;
    assert!(!target(Some(&v2b), Some(&after)).unwrap().rolled_back);
}

#[test]
fn a_crash_loop_fails_the_first_deploy_once() {
    let d = desired(1, "reg/hello:release-1", 1);
    let mut r = record(&d, 1, "n1", InstanceState::Failed, Health::Unhealthy, 10);
    r.obs.message = Some("exited with code 1".into());
    let p = run(Some(&d), None, &[r.clone()], None, 5_000);
    let status = p.rollout.expect("failed");
    assert_eq!(status.phase, RolloutPhase::Failed);
    assert!(
        p.events[0].message.contains("keeps crashing"),
        "{:?}",
        p.events
    );
    let again = run(Some(&d), Some(&status), &[r], None, 6_000);
    assert!(again.is_empty(), "{again:?}");
}

#[test]
fn scaling_down_removes_the_highest_numbers() {
    let d3 = desired(3, "reg/hello:release-1", 1);
    let records = [
        ready(&d3, 1, "n1", 1),
        ready(&d3, 2, "n2", 2),
        ready(&d3, 3, "n3", 3),
    ];
    let mut d1 = d3.clone();
    d1.instances = 1;
    d1.generation = 2;
    let p = run(Some(&d1), Some(&converged(&d3)), &records, None, 5_000);
    assert_eq!(
        states(&p),
        [
            ("3-1".to_owned(), InstanceState::Draining),
            ("2-1".to_owned(), InstanceState::Draining)
        ]
    );
    assert!(p.place.is_empty());
    // Same spec: no rollout event, just progress.
    assert!(p.events.is_empty(), "{:?}", p.events);
}

#[test]
fn workers_stop_without_draining() {
    let mut d = desired(2, "reg/hello:release-1", 1);
    d.proc_type = ProcType::Worker;
    d.mountpoints.clear();
    let records = [ready(&d, 1, "n1", 1), ready(&d, 2, "n2", 2)];
    let mut d1 = d.clone();
    d1.instances = 1;
    let p = run(Some(&d1), Some(&converged(&d)), &records, Some(0), 5_000);
    assert_eq!(states(&p), [("2-1".to_owned(), InstanceState::Stopping)]);
}

#[test]
fn instances_on_a_lost_node_move_and_stateful_ones_wait() {
    let d = desired(2, "reg/hello:release-1", 1);
    let records = [ready(&d, 1, "n1", 1), ready(&d, 2, "lost", 2)];
    let node = |n: &str| {
        if n == "lost" {
            NodeView::Lost
        } else {
            NodeView::Alive
        }
    };
    let p = run_on(Some(&d), Some(&converged(&d)), &records, None, 5_000, &node);
    assert_eq!(p.place.len(), 1);
    assert_eq!(p.place[0].slot, "2-1");
    assert_eq!(p.place[0].instance, 2);
    assert!(p.place[0].moves.is_some());
    assert!(p.puts.is_empty() && p.deletes.is_empty());

    let mut s = d.clone();
    s.stateful = true;
    let records = [ready(&s, 1, "n1", 1), ready(&s, 2, "lost", 2)];
    let p = run_on(Some(&s), Some(&converged(&s)), &records, None, 5_000, &node);
    assert!(p.place.is_empty(), "{p:?}");
    assert_eq!(states(&p), [("2-1".to_owned(), InstanceState::Lost)]);
    assert!(p.puts[0].1.message.as_deref().unwrap().contains("waits"));
}

#[test]
fn suspect_nodes_are_left_alone() {
    let d = desired(1, "reg/hello:release-1", 1);
    let records = [ready(&d, 1, "maybe", 1)];
    let node = |_: &str| NodeView::Doubtful;
    let p = run_on(Some(&d), Some(&converged(&d)), &records, None, 5_000, &node);
    assert!(p.is_empty(), "{p:?}");
}

#[test]
fn a_removed_proc_stops_everything_then_forgets_its_rollout() {
    let d = desired(2, "reg/hello:release-1", 1);
    let mut w = d.clone();
    w.proc_type = ProcType::Worker;
    let records = [ready(&d, 1, "n1", 1), ready(&d, 2, "n2", 2)];
    let p = run(None, Some(&converged(&d)), &records, None, 5_000);
    // Not routed without a desired proc: straight to stopping.
    assert_eq!(
        states(&p),
        [
            ("2-1".to_owned(), InstanceState::Stopping),
            ("1-1".to_owned(), InstanceState::Stopping)
        ]
    );
    let p = run(None, Some(&converged(&d)), &[], None, 5_000);
    assert!(p.forget_rollout);
}

#[test]
fn stateful_procs_stop_the_old_version_before_starting_the_new_on_the_same_node() {
    let mut v1 = desired(1, "reg/db:release-1", 1);
    v1.stateful = true;
    let mut v2 = v1.clone();
    v2.image = "reg/db:release-2".into();
    v2.generation = 2;
    let old = ready(&v1, 1, "n1", 1);
    let mut status = converged(&v1);
    let p = run(
        Some(&v2),
        Some(&status),
        std::slice::from_ref(&old),
        None,
        5_000,
    );
    assert!(p.place.is_empty());
    assert_eq!(states(&p), [("1-1".to_owned(), InstanceState::Draining)]);
    // The home is remembered in the rollout record.
    status = p.rollout.clone().expect("rollout with homes");
    assert_eq!(status.homes.get(&1).map(String::as_str), Some("n1"));

    // While the old one is stopping, nothing new starts.
    let mut stopping = old.clone();
    stopping.obs.state = InstanceState::Stopping;
    let p = run(Some(&v2), Some(&status), &[stopping], None, 5_000);
    assert!(p.place.is_empty(), "{p:?}");

    // Once it is gone, the successor goes home.
    let p = run(Some(&v2), Some(&status), &[], None, 5_000);
    assert_eq!(p.place.len(), 1);
    assert_eq!(p.place[0].home.as_deref(), Some("n1"));
}

#[test]
fn a_draining_instance_serves_again_when_its_replacement_falls_over() {
    let v1 = desired(1, "reg/hello:release-1", 1);
    let v2 = desired(1, "reg/hello:release-2", 2);
    let rollout = rolling_to(&v1, &v2);
    let mut old = ready(&v1, 1, "n1", 10);
    old.obs.state = InstanceState::Draining;
    old.obs.updated_at_ms = 4_000;
    let mut new = ready(&v2, 1, "n2", 20);
    new.obs.health = Health::Unhealthy;
    new.obs.started_at_ms = Some(4_000);
    let p = run(Some(&v2), Some(&rollout), &[old, new], Some(0), 5_000);
    assert_eq!(states(&p), [("1-1".to_owned(), InstanceState::Running)]);
}

#[test]
fn a_replacement_that_turns_unhealthy_fails_the_rollout() {
    let v1 = desired(1, "reg/hello:release-1", 1);
    let v2 = desired(1, "reg/hello:release-2", 2);
    let rollout = rolling_to(&v1, &v2);
    let mut new = ready(&v2, 1, "n2", 20);
    new.obs.health = Health::Unhealthy;
    let p = run(
        Some(&v2),
        Some(&rollout),
        &[ready(&v1, 1, "n1", 10), new],
        None,
        20_000,
    );
    assert_eq!(p.rollout.expect("status").phase, RolloutPhase::RolledBack);
}

#[test]
fn a_drain_stops_anyway_when_routers_never_confirm() {
    let v1 = desired(1, "reg/hello:release-1", 1);
    let v2 = desired(1, "reg/hello:release-2", 2);
    let mut old = ready(&v1, 1, "n1", 10);
    old.obs.state = InstanceState::Draining;
    old.obs.updated_at_ms = 1_000;
    let records = [old, ready(&v2, 1, "n2", 20)];
    // A router stuck at revision 5 (a rejected config).
    let p = run(Some(&v2), Some(&converged(&v1)), &records, Some(5), 20_000);
    assert!(!states(&p).contains(&("1-1".to_owned(), InstanceState::Stopping)));
    let p = run(Some(&v2), Some(&converged(&v1)), &records, Some(5), 40_000);
    assert!(
        states(&p).contains(&("1-1".to_owned(), InstanceState::Stopping)),
        "{p:?}"
    );
    assert!(
        p.events.iter().any(|e| e.message.contains("router")),
        "{:?}",
        p.events
    );
}

#[test]
fn a_draining_node_is_evacuated_but_not_its_stateful_instances() {
    let d = desired(1, "reg/hello:release-1", 1);
    let node = |n: &str| {
        if n == "n1" {
            NodeView::Draining
        } else {
            NodeView::Alive
        }
    };
    let p = run_on(
        Some(&d),
        Some(&converged(&d)),
        &[ready(&d, 1, "n1", 1)],
        None,
        5_000,
        &node,
    );
    assert_eq!(p.place.len(), 1, "a replacement elsewhere: {p:?}");
    let mut s = d.clone();
    s.stateful = true;
    let p = run_on(
        Some(&s),
        Some(&converged(&s)),
        &[ready(&s, 1, "n1", 1)],
        None,
        5_000,
        &node,
    );
    assert!(p.place.is_empty() && p.puts.is_empty(), "{p:?}");
}

#[test]
fn redeploying_a_crash_looped_instance_is_not_a_failed_rollout() {
    let d = desired(1, "reg/hello:release-1", 1);
    let r = record(&d, 1, "n1", InstanceState::Failed, Health::Unhealthy, 10);
    let mut again = d.clone();
    again.generation = 2;
    let mut failed = converged(&d);
    failed.phase = RolloutPhase::Failed;
    let p = run(Some(&again), Some(&failed), &[r], None, 5_000);
    assert!(
        !p.events.iter().any(|e| e.kind == EventKind::RolloutFailed),
        "{:?}",
        p.events
    );
}

#[test]
fn a_failed_instance_restarts_on_a_new_deploy() {
    let d = desired(1, "reg/hello:release-1", 1);
    let r = record(&d, 1, "n1", InstanceState::Failed, Health::Unhealthy, 10);
    let mut again = d.clone();
    again.generation = 2;
    let p = run(Some(&again), Some(&converged(&d)), &[r], None, 5_000);
    assert_eq!(states(&p), [("1-1".to_owned(), InstanceState::Pending)]);
    assert_eq!(p.puts[0].1.generation, 2);
}

#[test]
fn slots_never_collide() {
    let set = |s: &[&'static str]| {
        s.iter()
            .copied()
            .collect::<std::collections::HashSet<&str>>()
    };
    assert_eq!(fresh_slot(1, 2, &set(&["1-2"])), "1-2.1");
    assert_eq!(fresh_slot(1, 2, &set(&["1-2", "1-2.1"])), "1-2.2");
    assert_eq!(fresh_slot(1, 2, &set(&[])), "1-2");
}

/// The home a proc with volumes is remembered at, as its rollout would.
fn homed(d: &DesiredProc, n: u32, node: &str) -> ProcRollout {
    let mut r = converged(d);
    r.homes.insert(n, node.to_owned());
    r
}

#[test]
fn volumes_move_with_a_drain_with_volumes_and_not_with_a_plain_one() {
    let mut d = desired(1, "reg/db:release-1", 1);
    d.volumes = vec!["/data".into()];
    let view = |evacuating: bool| {
        move |n: &str| match n {
            "n1" if evacuating => NodeView::Evacuating,
            "n1" => NodeView::Draining,
            _ => NodeView::Alive,
        }
    };
    // A plain drain leaves it; with volumes it is stopped first.
    let p = run_on(
        Some(&d),
        Some(&homed(&d, 1, "n1")),
        &[ready(&d, 1, "n1", 1)],
        None,
        5_000,
        &view(false),
    );
    assert!(p.place.is_empty() && p.puts.is_empty(), "{p:?}");
    let p = run_on(
        Some(&d),
        Some(&homed(&d, 1, "n1")),
        &[ready(&d, 1, "n1", 1)],
        None,
        5_000,
        &view(true),
    );
    assert!(p.place.is_empty(), "{p:?}");
    // (A routed proc: it drains before it stops.)
    assert_eq!(states(&p), [("1-1".to_owned(), InstanceState::Draining)]);
    // Once gone, its successor goes anywhere, copying from the drained node.
    let p = run_on(
        Some(&d),
        Some(&homed(&d, 1, "n1")),
        &[],
        None,
        5_000,
        &view(true),
    );
    assert_eq!(p.place.len(), 1, "{p:?}");
    assert_eq!(p.place[0].home, None);
    assert_eq!(p.place[0].volumes_from.as_deref(), Some("n1"));
}

#[test]
fn a_copy_not_yet_made_is_made_by_the_successor() {
    let mut v1 = desired(1, "reg/db:release-1", 1);
    v1.volumes = vec!["/data".into()];
    let mut v2 = v1.clone();
    v2.image = "reg/db:release-2".into();
    v2.generation = 2;
    let view = |n: &str| {
        if n == "n1" {
            NodeView::Evacuating
        } else {
            NodeView::Alive
        }
    };
    // Placed on n2 with its data still on n1, then replaced by v2 before
    // the copy: the data's node stays the home.
    let mut moving = record(&v1, 1, "n2", InstanceState::Pending, Health::Unknown, 2);
    moving.obs.volumes_from = Some("n1".into());
    let p = run_on(
        Some(&v2),
        Some(&homed(&v1, 1, "n2")),
        std::slice::from_ref(&moving),
        None,
        5_000,
        &view,
    );
    let remembered = p.rollout.as_ref().map(|r| r.homes.get(&1).cloned());
    assert_eq!(remembered, Some(Some("n1".to_owned())), "{p:?}");
    let status = p.rollout.clone().unwrap();
    let p = run_on(Some(&v2), Some(&status), &[], None, 5_000, &view);
    assert_eq!(p.place.len(), 1, "{p:?}");
    assert_eq!(p.place[0].volumes_from.as_deref(), Some("n1"));
}

#[test]
fn an_instance_with_volumes_whose_node_is_gone_starts_afresh_unless_stateful() {
    let mut d = desired(1, "reg/db:release-1", 1);
    d.volumes = vec!["/data".into()];
    let lost = |n: &str| {
        if n == "n1" {
            NodeView::Lost
        } else {
            NodeView::Alive
        }
    };
    let p = run_on(Some(&d), Some(&homed(&d, 1, "n1")), &[], None, 5_000, &lost);
    assert_eq!(p.place.len(), 1, "{p:?}");
    assert_eq!(p.place[0].home, None);
    d.stateful = true;
    let p = run_on(Some(&d), Some(&homed(&d, 1, "n1")), &[], None, 5_000, &lost);
    assert_eq!(p.place.len(), 1, "{p:?}");
    assert_eq!(
        p.place[0].home.as_deref(),
        Some("n1"),
        "a stateful one waits for it"
    );
}
