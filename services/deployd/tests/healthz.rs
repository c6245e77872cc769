//! The real `deployd` binary with a generated config against a real etcd:
//! `/healthz`, `/metrics`, leading alone, a clean exit (and resignation) on
//! SIGTERM, and configs with an unknown key or a bad value refused by name.

mod common;

use std::time::Duration;

use common::{metric, wait_until};
use lain_testkit::daemon::{refused_config, Daemon};
use lain_testkit::{http, Etcd};
use nix::sys::signal::Signal;

const BIN: &str = env!("CARGO_BIN_EXE_deployd");

#[test]
fn serves_healthz_and_metrics_leads_and_stops_on_sigterm() {
    let etcd = Etcd::start().expect("start etcd");
    let config = format!(
        "listen = \"{{listen}}\"\nlog_format = \"json\"\netcd = [\"{}\"]\nid = \"deployd-healthz\"\n",
        etcd.endpoint()
    );
    let mut d = Daemon::spawn("deployd", BIN, &config).expect("deployd starts");

    let (code, body) = http::get(d.addr, "127.0.0.1", "/healthz").expect("healthz answers");
    assert_eq!(code, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).expect("healthz is JSON");
    assert_eq!(v["service"], "deployd");
    assert_eq!(v["status"], "ok");

    // Alone, it leads within a moment.
    wait_until("deployd to lead", Duration::from_secs(10), || {
        metric(d.addr, "deployd_is_leader") == Some(1)
    });
    let (code, text) = http::get(d.addr, "127.0.0.1", "/metrics").expect("metrics answer");
    assert_eq!(code, 200);
    for want in [
        "# TYPE deployd_is_leader gauge",
        "deployd_nodes{liveness=\"alive\"} 0",
        "deployd_node_pings_total 0",
        "deployd_node_pings_failed_total 0",
    ] {
        assert!(
            text.lines().any(|l| l == want),
            "{want:?} missing in\n{text}"
        );
    }
    let key = etcd
        .etcdctl(&["get", "--prefix", "--keys-only", "/lain/election/deployd/"])
        .expect("etcdctl");
    assert!(!key.trim().is_empty(), "no candidate key while leading");

    d.proc.signal(Signal::SIGTERM).expect("SIGTERM");
    let status = d
        .proc
        .wait_exit(Duration::from_secs(10))
        .expect("deployd still running 10 s after SIGTERM");
    assert!(
        status.success(),
        "deployd exited with {status} after SIGTERM"
    );
    // It resigned on the way out rather than leaving its lease to lapse.
    let left = etcd
        .etcdctl(&["get", "--prefix", "--keys-only", "/lain/election/deployd/"])
        .expect("etcdctl");
    assert!(left.trim().is_empty(), "candidate key left behind: {left}");
}

fn refused(config: &str) -> String {
    refused_config("deployd", BIN, config)
}

#[test]
fn unknown_keys_and_bad_values_are_refused_by_name() {
    let err = refused(
        "listen = \"127.0.0.1:1\"\netcd = [\"http://127.0.0.1:2379\"]\nping_intervall_ms = 5\n",
    );
    assert!(
        err.contains("ping_intervall_ms") && err.contains("bad.toml"),
        "{err}"
    );
    let err = refused(
        "listen = \"127.0.0.1:1\"\netcd = [\"http://127.0.0.1:2379\"]\nlost_after_misses = 0\n",
    );
    assert!(
        err.contains("lost_after_misses") && err.contains("bad.toml"),
        "{err}"
    );
}
