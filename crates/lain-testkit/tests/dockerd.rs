//! A root-namespace dockerd: starts, runs the busybox base image, publishes
//! a port through its own bridge, survives kill/restart, and leaves nothing
//! behind on drop. The two tests run side by side, which is itself part of
//! the check (two engines in one process and namespace).

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use lain_testkit::{
    free_port, http, import_base_image, sys, Bridge, Dockerd, DockerdOptions, BASE_IMAGE,
};

fn wait_for_body(addr: SocketAddr, want: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match http::get(addr, "test", "/") {
            Some((200, body)) if body.trim() == want => return,
            other if Instant::now() > deadline => {
                panic!("{addr} did not serve {want:?} within 20 s; last answer: {other:?}")
            }
            _ => std::thread::sleep(Duration::from_millis(100)),
        }
    }
}

#[test]
fn dockerd_runs_busybox_publishes_a_port_and_leaves_nothing_behind() {
    let started = Instant::now();
    let d = Dockerd::start().expect("dockerd starts");
    eprintln!("dockerd ready in {:?}", started.elapsed());

    let id = import_base_image(&d).expect("base image imports");
    assert!(id.starts_with("sha256:"), "{id}");
    let out = d
        .docker(&[
            "run",
            "--rm",
            "--network",
            "none",
            BASE_IMAGE,
            "echo",
            "hello from busybox",
        ])
        .expect("container runs");
    assert_eq!(out.trim(), "hello from busybox");
    let users = d
        .docker(&["run", "--rm", BASE_IMAGE, "cat", "/etc/passwd"])
        .expect("cat runs");
    assert!(users.starts_with("root:x:0:0"), "{users}");

    // Published on loopback through the userland proxy; the container
    // keeps running so that the drop has to stop it.
    let port = free_port();
    d.docker(&[
        "run",
        "-d",
        "--name",
        "web",
        "-p",
        &format!("127.0.0.1:{port}:8080"),
        BASE_IMAGE,
        "sh",
        "-c",
        "echo served-by-kit > /www/index.html && exec httpd -f -p 8080 -h /www",
    ])
    .expect("web container starts");
    wait_for_body(SocketAddr::from(([127, 0, 0, 1], port)), "served-by-kit");

    let fp = d.footprint();
    let bridge = d.bridge_name().expect("own bridge").to_owned();
    assert!(
        fp.processes()
            .iter()
            .any(|p| p.cmdline.contains("containerd-shim")),
        "a shim runs for the web container: {:?}",
        fp.processes()
    );
    assert!(!fp.mounts().is_empty(), "the container's rootfs is mounted");

    let t = Instant::now();
    drop(d);
    eprintln!("dockerd stopped and cleaned up in {:?}", t.elapsed());
    assert!(
        fp.processes().is_empty(),
        "left running: {:?}",
        fp.processes()
    );
    assert!(fp.mounts().is_empty(), "left mounted: {:?}", fp.mounts());
    assert!(
        !fp.run_dir.exists(),
        "runtime dir {} remains",
        fp.run_dir.display()
    );
    assert!(
        !fp.data_root.exists(),
        "data root {} remains",
        fp.data_root.display()
    );
    assert!(
        !sys::link_names().contains(&bridge),
        "bridge {bridge} remains"
    );
}

#[test]
fn dockerd_without_bridge_survives_kill_and_restart() {
    let mut d = Dockerd::start_with(DockerdOptions::default().bridge(Bridge::None))
        .expect("dockerd starts");
    assert!(d.bridge_name().is_none());
    import_base_image(&d).expect("base image imports");
    d.docker(&[
        "run",
        "-d",
        "--name",
        "sleeper",
        "--network",
        "none",
        // The restart after `kill` stops lost containers with their stop
        // timeout, and `sleep` as pid 1 ignores SIGTERM.
        "--stop-timeout",
        "1",
        BASE_IMAGE,
        "sleep",
        "600",
    ])
    .expect("sleeper starts");

    let t = Instant::now();
    d.kill();
    assert!(!d.ping(), "a killed dockerd does not answer");
    let fp = d.footprint();
    assert!(
        fp.processes()
            .iter()
            .any(|p| p.cmdline.contains("sleep 600")),
        "containers outlive a killed engine"
    );

    d.restart().expect("dockerd restarts");
    eprintln!("kill + restart took {:?}", t.elapsed());
    // Without live-restore, the restarted engine kills what it lost.
    let state = d
        .docker(&["inspect", "-f", "{{.State.Running}}", "sleeper"])
        .expect("inspect");
    assert_eq!(state.trim(), "false");
    assert!(!fp
        .processes()
        .iter()
        .any(|p| p.cmdline.contains("sleep 600")));

    d.docker(&["start", "sleeper"])
        .expect("sleeper starts again");
    let t = Instant::now();
    d.crash();
    assert!(
        fp.processes().is_empty(),
        "crash kills everything: {:?}",
        fp.processes()
    );
    d.restart().expect("dockerd restarts after crash");
    eprintln!("crash + restart took {:?}", t.elapsed());
    let out = d
        .docker(&[
            "run",
            "--rm",
            "--network",
            "none",
            BASE_IMAGE,
            "echo",
            "back",
        ])
        .expect("runs after crash");
    assert_eq!(out.trim(), "back");
    drop(d);
    assert!(
        fp.processes().is_empty(),
        "left running: {:?}",
        fp.processes()
    );
    assert!(fp.mounts().is_empty(), "left mounted: {:?}", fp.mounts());
}
