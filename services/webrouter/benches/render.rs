//! Render time for 10,000 web procs (goal: under 100 ms), how long
//! `nginx -t` takes on the result, and a change applied as the router does
//! it (render, write, `nginx -t`, SIGHUP, until nginx serves the new
//! generation; goal: under 1 s). Run: `cargo bench -p webrouter --bench render`.
//!
//! Environment: `WEBROUTER_BENCH_NO_TLS=1` leaves the certificate out,
//! `WEBROUTER_BENCH_PROCS=N` renders N procs instead of 10,000,
//! `WEBROUTER_BENCH_KEEP=1` keeps the state dir for profiling nginx on it,
//! `WEBROUTER_BENCH_NO_NGINX=1` stops after rendering.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use lain_store::{ClusterConfig, DesiredProc, Health, InstanceState, ObservedInstance, ProcType};
use webrouter::render::{
    main_conf, render, CertPair, MainOptions, RenderOptions, Rendered, RouteState,
};

const INSTANCES: usize = 3;

/// 10,000 under `cargo bench`; a quick 200 when `cargo test --all-targets`
/// runs the bench binary (without `--bench`) as a smoke test.
fn procs() -> usize {
    let default = if std::env::args().any(|a| a == "--bench") {
        10_000
    } else {
        200
    };
    std::env::var("WEBROUTER_BENCH_PROCS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn state() -> RouteState {
    let mut s = RouteState {
        cluster: Some(ClusterConfig {
            name: "bench".into(),
            domain: "lain.local".into(),
            extra_domains: vec!["example.com".into()],
            registry: "r:5000".into(),
            registry_insecure: false,
            node_lost_after_ms: 3000,
        }),
        ..RouteState::default()
    };
    for i in 0..procs() {
        let app = format!("app{i}");
        // Every fifth app also has an API proc on a path of its domain.
        let (proc, mountpoints) = if i % 5 == 4 {
            (
                "web.api".to_owned(),
                vec![format!("app{}.lain.local/api", i - 1)],
            )
        } else {
            ("web".to_owned(), vec![])
        };
        let d = DesiredProc {
            app: app.clone(),
            proc: proc.clone(),
            proc_type: ProcType::Web,
            release: "1-a".into(),
            image: "i".into(),
            instances: INSTANCES as u32,
            cmd: vec![],
            entrypoint: vec![],
            user: None,
            workdir: None,
            cpu_millis: 0,
            memory_bytes: 1 << 25,
            env: BTreeMap::new(),
            secrets: vec![],
            port: Some(80),
            healthcheck: None,
            mountpoints,
            https_only: i % 7 == 0,
            volumes: vec![],
            labels: BTreeMap::new(),
            kill_timeout_secs: 10,
            setup_time_secs: 0,
            stateful: false,
            filters: vec![],
            services: vec![],
            backups: vec![],
            restore: None,
            portal: None,
            generation: 1,
        };
        s.procs.insert((app.clone(), proc.clone()), d);
        for j in 0..INSTANCES {
            let n = i * INSTANCES + j;
            let addr = format!(
                "10.{}.{}.{}:{}",
                n / 65536 % 256,
                n / 256 % 256,
                n % 256,
                8000 + j
            );
            s.instances.insert(
                (app.clone(), proc.clone(), format!("i{j}")),
                ObservedInstance {
                    node: "n".into(),
                    container_id: None,
                    generation: 1,
                    release: String::new(),
                    image: String::new(),
                    state: InstanceState::Running,
                    health: if j == 2 && i % 3 == 0 {
                        Health::Unhealthy
                    } else {
                        Health::Healthy
                    },
                    address: Some(addr),
                    restarts: 0,
                    started_at_ms: None,
                    updated_at_ms: 0,
                    message: None,
                    instance: 0,
                    spec: String::new(),
                    recent_restarts_ms: vec![],
                    volumes_from: None,
                },
            );
        }
    }
    s
}

fn main() {
    let mut s = state();
    let tmp = tempfile::tempdir().expect("temp dir");
    let dir = if std::env::var_os("WEBROUTER_BENCH_KEEP").is_some() {
        let p = tmp.keep();
        println!("state dir kept: {}", p.display());
        p
    } else {
        tmp.path().to_owned()
    };
    let opts = RenderOptions {
        state_dir: dir.as_path().to_owned(),
        http_listen: ([127, 0, 0, 1], lain_testkit::free_port()).into(),
        https_listen: Some(([127, 0, 0, 1], lain_testkit::free_port()).into()),
        map_routing_min_procs: 2000,
    };
    // A wildcard certificate, so the example.com servers get HTTPS too
    // (unless WEBROUTER_BENCH_NO_TLS is set, to see what TLS costs nginx).
    let tls = std::env::var_os("WEBROUTER_BENCH_NO_TLS").is_none();
    let out = std::process::Command::new(if tls { "openssl" } else { "false" })
        .args([
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=*.example.com",
        ])
        .arg("-keyout")
        .arg(dir.as_path().join("k.pem"))
        .arg("-out")
        .arg(dir.as_path().join("c.pem"))
        .output();
    if let Ok(o) = out {
        if o.status.success() {
            if let (Ok(cert), Ok(key)) = (
                std::fs::read(dir.as_path().join("c.pem")),
                std::fs::read(dir.as_path().join("k.pem")),
            ) {
                s.certs
                    .insert("*.example.com".into(), CertPair { cert, key });
            }
        }
    }
    let mut times: Vec<Duration> = Vec::new();
    let mut last = None;
    for _ in 0..15 {
        let t = Instant::now();
        let r = render(&s, &opts);
        times.push(t.elapsed());
        last = Some(r);
    }
    times.sort();
    let r = last.expect("rendered");
    println!(
        "render {} procs x {INSTANCES} instances: median {:?}, min {:?}, max {:?}; {} procs routed, {} domains, {} bytes; \
         {} upstream blocks, {} server blocks",
        procs(),
        times[times.len() / 2],
        times[0],
        times[times.len() - 1],
        r.upstreams,
        r.domains,
        r.http_conf.len(),
        r.http_conf.matches("\nupstream ").count(),
        r.http_conf.matches("\nserver {").count(),
    );

    if std::env::var_os("WEBROUTER_BENCH_NO_NGINX").is_some() {
        return;
    }
    // nginx -t on the result, as the router runs it.
    for d in ["certs", "temp"] {
        std::fs::create_dir_all(dir.join(d)).expect("dir");
    }
    let main = MainOptions {
        state_dir: dir.clone(),
        status_listen: ([127, 0, 0, 1], lain_testkit::free_port()).into(),
        worker_processes: 1,
        worker_shutdown_timeout_secs: 30,
        user: Some("root".into()),
    };
    let conf = dir.join("nginx.conf");
    write_generation(&dir, &main, 1, &r);
    let t = Instant::now();
    match nginx_t(&dir, &dir.join("g1/nginx.conf")) {
        Ok(()) => println!("nginx -t on it: {:?}", t.elapsed()),
        Err(e) => {
            println!("{e}");
            return;
        }
    }

    // A change applied as the router applies it: nginx serves generation 1,
    // one instance address changes, and the clock runs from rendering to
    // nginx's status server answering generation 2.
    std::fs::copy(dir.join("g1/nginx.conf"), &conf).expect("copy");
    let mut nginx = match std::process::Command::new("nginx")
        .arg("-p")
        .arg(&dir)
        .arg("-c")
        .arg(&conf)
        .arg("-e")
        .arg(dir.join("error.log"))
        .spawn()
    {
        Ok(c) => c,
        Err(e) => {
            println!("nginx not runnable: {e}");
            return;
        }
    };
    let started = Instant::now();
    while generation(main.status_listen).as_deref() != Some("1") {
        if started.elapsed() > Duration::from_secs(120) {
            println!(
                "nginx did not start; see {}",
                dir.join("error.log").display()
            );
            let _ = nginx.kill();
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    println!("nginx start: {:?}", started.elapsed());
    let mut gen = 1;
    let mut totals = Vec::new();
    for round in 0..3 {
        let key = ("app1".to_owned(), "web".to_owned(), "i0".to_owned());
        if let Some(inst) = s.instances.get_mut(&key) {
            inst.address = Some(format!("10.255.0.{}:9000", round + 1));
        }
        gen += 1;
        let t = Instant::now();
        let r = render(&s, &opts);
        let t_render = t.elapsed();
        write_generation(&dir, &main, gen, &r);
        let t_write = t.elapsed();
        let g = dir.join(format!("g{gen}/nginx.conf"));
        if let Err(e) = nginx_t(&dir, &g) {
            println!("{e}");
            break;
        }
        let t_check = t.elapsed();
        std::fs::rename(&g, &conf).expect("swap");
        let pid = nix::unistd::Pid::from_raw(i32::try_from(nginx.id()).expect("pid"));
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGHUP);
        let want = gen.to_string();
        while generation(main.status_listen).as_deref() != Some(want.as_str()) {
            if t.elapsed() > Duration::from_secs(120) {
                println!("reload did not go live");
                break;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        let total = t.elapsed();
        println!(
            "change -> serving: {total:?} (render {t_render:?}, write {:?}, nginx -t {:?}, SIGHUP -> serving {:?})",
            t_write - t_render,
            t_check - t_write,
            total - t_check
        );
        totals.push(total);
    }
    totals.sort();
    if let Some(m) = totals.get(totals.len() / 2) {
        println!("change -> serving median of {}: {m:?}", totals.len());
    }
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(i32::try_from(nginx.id()).expect("pid")),
        nix::sys::signal::Signal::SIGTERM,
    );
    let _ = nginx.wait();
}

/// Writes generation `gen`'s `http.conf`, `nginx.conf` and certificates.
fn write_generation(dir: &std::path::Path, main: &MainOptions, gen: u64, r: &Rendered) {
    let g = dir.join(format!("g{gen}"));
    std::fs::create_dir_all(&g).expect("dir");
    for f in &r.files {
        std::fs::write(dir.join(&f.path), &f.contents).expect("write");
    }
    let http = g.join("http.conf");
    std::fs::write(&http, &r.http_conf).expect("write");
    std::fs::write(g.join("nginx.conf"), main_conf(main, gen, &http)).expect("write");
}

fn nginx_t(dir: &std::path::Path, conf: &std::path::Path) -> Result<(), String> {
    let out = std::process::Command::new("nginx")
        .arg("-t")
        .arg("-q")
        .arg("-p")
        .arg(dir)
        .arg("-c")
        .arg(conf)
        .arg("-e")
        .arg(dir.join("error.log"))
        .output();
    match out {
        Ok(o) if o.status.success() => Ok(()),
        Ok(o) => Err(format!(
            "nginx -t failed: {}",
            String::from_utf8_lossy(&o.stderr)
        )),
        Err(e) => Err(format!("nginx not runnable: {e}")),
    }
}

/// The generation nginx's status server answers, if it answers.
fn generation(addr: std::net::SocketAddr) -> Option<String> {
    use std::io::{Read, Write};
    let mut c = std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(200)).ok()?;
    c.set_read_timeout(Some(Duration::from_secs(1))).ok()?;
    c.write_all(b"GET /lain-webrouter/generation HTTP/1.0\r\n\r\n")
        .ok()?;
    let mut buf = String::new();
    c.read_to_string(&mut buf).ok()?;
    buf.split("\r\n\r\n").nth(1).map(str::to_owned)
}
