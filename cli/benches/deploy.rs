//! `lain deploy` of a 3-instance web app against raw `docker run` plus
//! health waiting for the same 3 containers, on the same engine, in one
//! run (DESIGN.md §6: at most 1.25x).
//!
//! The cluster is the end-to-end tests' (tests/common): every part real.
//! Each lain round starts from an undeployed app and ends when `lain
//! deploy` has returned (the rollout converged: every instance healthy)
//! and the router serves the app; each raw round runs the release image
//! three times at once (`docker run -d`, the docker CLI, three threads)
//! with a published port, on a user-defined bridge network as lain's
//! instances are (each app has its own), and polls each container's health
//! path every 200 ms (deployd's probe interval for starting instances)
//! until all answer 200, then removes them. For reference, the same raw
//! round also runs on docker's default bridge, which starts a little
//! faster (no embedded DNS server).
//!
//! `cargo bench -p lain-cli --bench deploy` for the figures (7 rounds
//! each); under `cargo test` one round each, as a smoke test.

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use common::{write_app_with, TestCluster};

fn median(v: &mut [Duration]) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let rounds = if full { 7 } else { 1 };
    let rounds = std::env::var("ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(rounds);
    let c = TestCluster::start();
    c.admin_with_node("bench");
    let app = tempfile::tempdir().unwrap();
    let dir = app.path();
    write_app_with(dir, 1, 3);
    c.ok(dir, &["app", "create", "hello"]);
    c.ok(dir, &["build"]);
    c.ok(dir, &["push"]);
    let releases = c.ok(dir, &["releases", "-o", "json"]);
    let releases: serde_json::Value = serde_json::from_str(&releases).unwrap();
    let image = releases[0]["image"].as_str().unwrap().to_owned();

    let serves = || {
        c.through_router("hello.lain.local", "/index.html")
            .is_some_and(|(code, _)| code == 200)
    };
    // The same containers as lain's: on a user-defined bridge network of
    // their own, as each app's instances are (not docker's default bridge,
    // which skips the embedded DNS and starts faster).
    c.docker
        .docker(&["network", "create", "raw-bench"])
        .expect("docker network create");
    let (mut lain, mut returned) = (Vec::new(), Vec::new());
    let (mut raw, mut raw_default) = (Vec::new(), Vec::new());
    for round in 0..rounds {
        // lain: from nothing to 3 healthy, routed instances.
        let t = Instant::now();
        c.ok(dir, &["deploy"]);
        returned.push(t.elapsed());
        // Polled often: this wait is the measurement, not the product.
        let end = Instant::now() + Duration::from_secs(30);
        while !serves() {
            assert!(
                Instant::now() < end,
                "the app never answered through the router"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        lain.push(t.elapsed());
        // Returns once every instance has stopped: the next round starts
        // from an engine without the app's containers, as the raw round's
        // `docker rm -f` leaves it.
        c.ok(dir, &["undeploy"]);
        c.wait(
            "the app gone from the router",
            Duration::from_secs(30),
            || !serves(),
        );

        // raw: docker run x3 on the same kind of network, then on docker's
        // default bridge (for reference).
        raw.push(raw_round(
            &c,
            &image,
            &format!("{round}"),
            Some("raw-bench"),
        ));
        raw_default.push(raw_round(&c, &image, &format!("{round}d"), None));
    }
    let (l, r, back) = (median(&mut lain), median(&mut raw), median(&mut returned));
    let d = median(&mut raw_default);
    println!(
        "deploy of 3 instances, median of {rounds}: lain deploy (healthy and routed) {l:?}, \
         docker run + health waiting {r:?}, ratio {:.2}x (goal <= 1.25x)",
        l.as_secs_f64() / r.as_secs_f64()
    );
    println!(
        "on docker's default bridge instead: docker run + health waiting {d:?}, ratio {:.2}x",
        l.as_secs_f64() / d.as_secs_f64()
    );
    println!("lain deploy returned (every instance healthy) after {back:?} (median)");
    println!("lain rounds: {lain:?}\nraw rounds: {raw:?}\ndefault-bridge rounds: {raw_default:?}");
    if std::env::var("TIMELINE").is_ok() {
        eprintln!("{}\n{}", c.deployd.log(), c.console.log());
    }
}

/// Three `docker run -d` at once (the docker CLI from three threads, the
/// baseline at its fastest) on `network` (docker's default bridge when
/// `None`), then each container's health path polled every 200 ms until
/// all answer 200; the containers are removed after. The time taken.
fn raw_round(c: &TestCluster, image: &str, tag: &str, network: Option<&str>) -> Duration {
    let t = Instant::now();
    let ports: Vec<(String, std::net::SocketAddr)> = std::thread::scope(|scope| {
        let runs: Vec<_> = (0..3)
            .map(|i| {
                scope.spawn(move || {
                    let name = format!("raw-{tag}-{i}");
                    let mut args = vec!["run", "-d", "--name", &name];
                    if let Some(n) = network {
                        args.extend(["--network", n]);
                    }
                    args.extend([
                        "-p",
                        "127.0.0.1::8080",
                        "--memory",
                        "32m",
                        image,
                        "sh",
                        "-c",
                        "echo web-started; exec httpd -f -v -p 8080 -h /www",
                    ]);
                    c.docker.docker(&args).expect("docker run");
                    let port = c
                        .docker
                        .docker(&["port", &name, "8080"])
                        .expect("docker port");
                    let addr = port.lines().next().unwrap().trim().parse().unwrap();
                    (name, addr)
                })
            })
            .collect();
        runs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let mut pending: Vec<std::net::SocketAddr> = ports.iter().map(|(_, a)| *a).collect();
    while !pending.is_empty() {
        pending.retain(|a| {
            lain_testkit::http::get(*a, "127.0.0.1", "/index.html")
                .is_none_or(|(code, _)| code != 200)
        });
        if !pending.is_empty() {
            std::thread::sleep(Duration::from_millis(200));
        }
        assert!(
            t.elapsed() < Duration::from_secs(60),
            "raw containers never became healthy"
        );
    }
    let took = t.elapsed();
    for (name, _) in &ports {
        let _ = c.docker.docker(&["rm", "-f", name]);
    }
    took
}
