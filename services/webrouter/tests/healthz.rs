//! The real `webrouter` binary: starts from a config file with etcd from
//! the kit, serves `/healthz` and `/metrics`, runs nginx, and on SIGTERM
//! stops nginx and exits 0. A config with an unknown key is refused.

use std::time::{Duration, Instant};

use lain_testkit::daemon::{refused_config, Daemon};
use lain_testkit::{free_port, http, Etcd, ServerDir};
use nix::sys::signal::Signal;

fn config(etcd: &Etcd, state: &std::path::Path) -> String {
    format!(
        "listen = \"{{listen}}\"\n\
         log_format = \"json\"\n\
         etcd = [\"{}\"]\n\
         router_id = \"bin-test\"\n\
         state_dir = \"{}\"\n\
         http_listen = \"127.0.0.1:{}\"\n\
         status_listen = \"127.0.0.1:{}\"\n\
         nginx_user = \"root\"\n",
        etcd.endpoint(),
        state.display(),
        free_port(),
        free_port()
    )
}

/// Whether the process whose pid `pid` (text) names is alive.
fn pid_alive(pid: &str) -> bool {
    pid.trim().parse().is_ok_and(lain_testkit::sys::pid_alive)
}

#[test]
fn binary_serves_metrics_runs_nginx_and_stops_cleanly() {
    let etcd = Etcd::start().expect("etcd");
    let state = ServerDir::new("webrouter-state").expect("dir");
    let mut d = Daemon::spawn(
        "webrouter",
        env!("CARGO_BIN_EXE_webrouter"),
        &config(&etcd, state.path()),
    )
    .expect("webrouter starts");
    let (code, body) = http::get(d.addr, "127.0.0.1", "/healthz").expect("healthz answers");
    assert_eq!(code, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).expect("healthz is JSON");
    assert_eq!(v["service"], "webrouter");

    // nginx runs, and the router has applied etcd's (empty) state.
    let deadline = Instant::now() + Duration::from_secs(20);
    let metrics = loop {
        let (_, m) = http::get(d.addr, "127.0.0.1", "/metrics").expect("metrics answer");
        if m.contains("webrouter_nginx_up 1") && !m.contains("webrouter_applied_revision 0\n") {
            break m;
        }
        assert!(Instant::now() < deadline, "router never applied:\n{m}");
        std::thread::sleep(Duration::from_millis(50));
    };
    for name in [
        "webrouter_config_generation 1",
        "webrouter_reloads_total",
        "webrouter_reload_failures_total 0",
        "webrouter_seconds_since_last_applied_change",
        "webrouter_upstreams 0",
    ] {
        assert!(metrics.contains(name), "{name} missing:\n{metrics}");
    }
    let pid = std::fs::read_to_string(state.path().join("nginx.pid")).expect("nginx pid file");
    assert!(pid_alive(&pid));

    d.proc.signal(Signal::SIGTERM).expect("SIGTERM");
    let status = d
        .proc
        .wait_exit(Duration::from_secs(20))
        .expect("webrouter exits within 20 s of SIGTERM");
    assert!(status.success(), "exit status {status}");
    assert!(!pid_alive(&pid), "nginx outlived webrouter");

    // Unknown keys are refused, naming the key and the file.
    let text = config(&etcd, state.path()).replace("{listen}", "127.0.0.1:1") + "debounce = 5\n";
    let err = refused_config("webrouter", env!("CARGO_BIN_EXE_webrouter"), &text);
    assert!(
        err.contains("debounce") && err.contains("bad.toml"),
        "{err}"
    );
}

/// webrouter crashes: nginx keeps serving (apps do not depend on the
/// control plane), and the next webrouter adopts that nginx instead of
/// starting a second one.
#[test]
fn a_crashed_webrouter_leaves_nginx_serving_and_the_next_one_adopts_it() {
    let etcd = Etcd::start().expect("etcd");
    let state = ServerDir::new("webrouter-state").expect("dir");
    let text = config(&etcd, state.path());
    let http_port: u16 = text
        .lines()
        .find_map(|l| l.strip_prefix("http_listen = \"127.0.0.1:"))
        .and_then(|p| p.trim_end_matches('"').parse().ok())
        .expect("http port");
    let http = std::net::SocketAddr::from(([127, 0, 0, 1], http_port));
    let bin = env!("CARGO_BIN_EXE_webrouter");

    let mut first = Daemon::spawn("webrouter", bin, &text).expect("webrouter starts");
    let deadline = Instant::now() + Duration::from_secs(20);
    while http::get(http, "nobody.test", "/").map(|(c, _)| c) != Some(404) {
        assert!(Instant::now() < deadline, "nginx never answered");
        std::thread::sleep(Duration::from_millis(50));
    }
    let pid = std::fs::read_to_string(state.path().join("nginx.pid")).expect("pid file");
    first.proc.kill();
    assert!(pid_alive(&pid), "nginx died with webrouter");
    assert_eq!(
        http::get(http, "nobody.test", "/").map(|(c, _)| c),
        Some(404)
    );

    let mut second = Daemon::spawn("webrouter", bin, &text).expect("webrouter restarts");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (_, m) = http::get(second.addr, "127.0.0.1", "/metrics").expect("metrics");
        if m.contains("webrouter_nginx_up 1") && !m.contains("webrouter_applied_revision 0\n") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "second router never applied:\n{m}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let now = std::fs::read_to_string(state.path().join("nginx.pid")).expect("pid file");
    assert_eq!(now.trim(), pid.trim(), "a second nginx was started");
    second.proc.signal(Signal::SIGTERM).expect("SIGTERM");
    let status = second
        .proc
        .wait_exit(Duration::from_secs(20))
        .expect("exits");
    assert!(status.success());
    assert!(!pid_alive(&pid), "adopted nginx outlived webrouter");
}
