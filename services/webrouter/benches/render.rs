//! Render time for 10,000 web procs (goal: under 100 ms), and how long
//! `nginx -t` takes on the result. Run: `cargo bench -p webrouter --bench render`.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use lain_store::{ClusterConfig, DesiredProc, Health, InstanceState, ObservedInstance, ProcType};
use webrouter::render::{main_conf, render, CertPair, MainOptions, RenderOptions, RouteState};

const PROCS: usize = 10_000;
const INSTANCES: usize = 3;

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
    for i in 0..PROCS {
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
                },
            );
        }
    }
    s
}

fn main() {
    let mut s = state();
    let dir = tempfile::tempdir().expect("temp dir");
    let opts = RenderOptions {
        state_dir: dir.path().to_owned(),
        http_listen: "127.0.0.1:18080".parse().expect("addr"),
        https_listen: Some("127.0.0.1:18443".parse().expect("addr")),
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
        .arg(dir.path().join("k.pem"))
        .arg("-out")
        .arg(dir.path().join("c.pem"))
        .output();
    if let Ok(o) = out {
        if o.status.success() {
            if let (Ok(cert), Ok(key)) = (
                std::fs::read(dir.path().join("c.pem")),
                std::fs::read(dir.path().join("k.pem")),
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
        "render {PROCS} procs x {INSTANCES} instances: median {:?}, min {:?}, max {:?}; {} upstreams, {} domains, {} bytes",
        times[times.len() / 2],
        times[0],
        times[times.len() - 1],
        r.upstreams,
        r.domains,
        r.http_conf.len()
    );

    // nginx -t on the result, as the router runs it.
    for d in ["certs", "temp"] {
        std::fs::create_dir_all(dir.path().join(d)).expect("dir");
    }
    for f in &r.files {
        std::fs::write(dir.path().join(&f.path), &f.contents).expect("write");
    }
    let http = dir.path().join("http.conf");
    std::fs::write(&http, &r.http_conf).expect("write");
    let main = MainOptions {
        state_dir: dir.path().to_owned(),
        status_listen: "127.0.0.1:18081".parse().expect("addr"),
        worker_processes: 1,
        worker_shutdown_timeout_secs: 30,
        user: Some("root".into()),
    };
    let conf = dir.path().join("nginx.conf");
    std::fs::write(&conf, main_conf(&main, 1, &PathBuf::from(&http))).expect("write");
    let t = Instant::now();
    let out = std::process::Command::new("nginx")
        .arg("-t")
        .arg("-q")
        .arg("-p")
        .arg(dir.path())
        .arg("-c")
        .arg(&conf)
        .arg("-e")
        .arg(dir.path().join("error.log"))
        .output();
    match out {
        Ok(o) if o.status.success() => println!("nginx -t on it: {:?}", t.elapsed()),
        Ok(o) => println!("nginx -t failed: {}", String::from_utf8_lossy(&o.stderr)),
        Err(e) => println!("nginx not runnable: {e}"),
    }
}
