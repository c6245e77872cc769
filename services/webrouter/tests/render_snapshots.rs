//! Snapshot tests of the pure renderer: committed expected files under
//! tests/snapshots/. Run with `UPDATE_SNAPSHOTS=1` to rewrite them after an
//! intended change, and review the diff.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use lain_store::{ClusterConfig, DesiredProc, Health, InstanceState, ObservedInstance, ProcType};
use webrouter::render::{main_conf, render, CertPair, MainOptions, RenderOptions, RouteState};

fn proc(app: &str, name: &str, mountpoints: &[&str], https_only: bool) -> DesiredProc {
    DesiredProc {
        app: app.into(),
        proc: name.into(),
        proc_type: if name.starts_with("web") {
            ProcType::Web
        } else {
            ProcType::Worker
        },
        release: "1700000000-abc".into(),
        image: format!("registry.lain.local/{app}:release-1700000000-abc"),
        instances: 2,
        cmd: vec![],
        entrypoint: vec![],
        user: None,
        workdir: None,
        cpu_millis: 0,
        memory_bytes: 32 << 20,
        env: BTreeMap::new(),
        secrets: vec![],
        port: Some(8080),
        healthcheck: None,
        mountpoints: mountpoints.iter().map(|s| s.to_string()).collect(),
        https_only,
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
    }
}

fn inst(state: InstanceState, health: Health, addr: Option<&str>) -> ObservedInstance {
    ObservedInstance {
        node: "n1".into(),
        container_id: Some("c".into()),
        generation: 1,
        release: String::new(),
        image: String::new(),
        state,
        health,
        address: addr.map(str::to_owned),
        restarts: 0,
        started_at_ms: None,
        updated_at_ms: 0,
        message: None,
        instance: 0,
        spec: String::new(),
        recent_restarts_ms: vec![],
        volumes_from: None,
    }
}

/// A cluster with most of what the renderer handles.
pub fn sample_state() -> RouteState {
    let mut s = RouteState {
        cluster: Some(ClusterConfig {
            name: "local".into(),
            domain: "lain.local".into(),
            extra_domains: vec!["example.com".into()],
            registry: "registry.lain.local:5000".into(),
            registry_insecure: false,
            node_lost_after_ms: 3000,
        }),
        ..RouteState::default()
    };
    let procs = [
        // `web` gets the default domains on top of what it declares.
        proc(
            "hello",
            "web",
            &["hello.lain.local", "www.hello.com"],
            false,
        ),
        proc(
            "hello",
            "web.api",
            &[
                "hello.lain.local/api",
                "api.example.com/v1",
                "api.example.com/v2/beta",
            ],
            false,
        ),
        proc("shop", "web", &[], true),
        // No healthy instance: a 503 page, not a broken config.
        proc("empty", "web.down", &["down.example.com"], false),
        // Conflict with hello/web.api: skipped with a warning.
        proc("zzz", "web.thief", &["hello.lain.local/api"], false),
        // Hostile values from etcd: skipped.
        proc(
            "evil",
            "web.x",
            &[
                "evil.com/a;b",
                "evil.com/$host",
                "evil.com/ok",
                "evil.com/x y",
                "bad host",
            ],
            false,
        ),
        proc("hello", "worker", &["not.routed.com"], false),
    ];
    for p in procs {
        s.procs.insert((p.app.clone(), p.proc.clone()), p);
    }
    let insts = [
        (
            "hello",
            "web",
            "i1",
            inst(
                InstanceState::Running,
                Health::Healthy,
                Some("10.0.0.2:8080"),
            ),
        ),
        (
            "hello",
            "web",
            "i2",
            inst(
                InstanceState::Running,
                Health::Healthy,
                Some("10.0.0.1:8080"),
            ),
        ),
        (
            "hello",
            "web",
            "i3",
            inst(
                InstanceState::Running,
                Health::Unhealthy,
                Some("10.0.0.3:8080"),
            ),
        ),
        (
            "hello",
            "web",
            "i4",
            inst(
                InstanceState::Draining,
                Health::Healthy,
                Some("10.0.0.4:8080"),
            ),
        ),
        (
            "hello",
            "web.api",
            "i1",
            inst(
                InstanceState::Running,
                Health::Healthy,
                Some("10.0.1.1:8080"),
            ),
        ),
        (
            "shop",
            "web",
            "i1",
            inst(
                InstanceState::Running,
                Health::Healthy,
                Some("[fd00::1]:80"),
            ),
        ),
        (
            "empty",
            "web.down",
            "i1",
            inst(
                InstanceState::Starting,
                Health::Starting,
                Some("10.0.2.1:80"),
            ),
        ),
        (
            "zzz",
            "web.thief",
            "i1",
            inst(InstanceState::Running, Health::Healthy, Some("10.0.3.1:80")),
        ),
        (
            "evil",
            "web.x",
            "i1",
            inst(
                InstanceState::Running,
                Health::Healthy,
                Some("1.2.3.4:80; include /etc/passwd"),
            ),
        ),
        (
            "evil",
            "web.x",
            "i2",
            inst(InstanceState::Running, Health::Healthy, Some("10.0.4.1:80")),
        ),
        // Addresses Rust parses but nginx refuses ("invalid port in
        // upstream", "invalid IPv6 address in upstream"): left out.
        (
            "hello",
            "web",
            "i5",
            inst(InstanceState::Running, Health::Healthy, Some("10.0.0.5:0")),
        ),
        (
            "hello",
            "web",
            "i6",
            inst(
                InstanceState::Running,
                Health::Healthy,
                Some("[fe80::1%2]:8080"),
            ),
        ),
        (
            "hello",
            "web",
            "i7",
            inst(
                InstanceState::Running,
                Health::Healthy,
                Some("0.0.0.0:8080"),
            ),
        ),
        (
            "hello",
            "web",
            "i8",
            inst(InstanceState::Running, Health::Healthy, Some("[::]:8080")),
        ),
        (
            "hello",
            "worker",
            "i1",
            inst(InstanceState::Running, Health::Healthy, Some("10.0.5.1:80")),
        ),
    ];
    for (a, p, i, v) in insts {
        s.instances.insert((a.into(), p.into(), i.into()), v);
    }
    s.certs.insert(
        "*.example.com".into(),
        CertPair {
            cert: b"WILDCARD CERT".to_vec(),
            key: b"WILDCARD KEY".to_vec(),
        },
    );
    s.certs.insert(
        "shop.lain.local".into(),
        CertPair {
            cert: b"SHOP CERT".to_vec(),
            key: b"SHOP KEY".to_vec(),
        },
    );
    s
}

fn opts(https: bool) -> RenderOptions {
    RenderOptions {
        state_dir: PathBuf::from("/var/lib/lain/webrouter"),
        http_listen: "0.0.0.0:80".parse().unwrap(),
        https_listen: https.then(|| "0.0.0.0:443".parse().unwrap()),
        map_routing_min_procs: 0,
    }
}

fn check(name: &str, actual: &str) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/snapshots")
        .join(name);
    if std::env::var_os("UPDATE_SNAPSHOTS").is_some() {
        std::fs::write(&path, actual).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e}; run with UPDATE_SNAPSHOTS=1 to create it",
            path.display()
        )
    });
    if expected != actual {
        let line = expected
            .lines()
            .zip(actual.lines())
            .position(|(a, b)| a != b)
            .map_or(expected.lines().count().min(actual.lines().count()), |i| i);
        panic!(
            "{name} differs from the snapshot at line {}:\nexpected: {:?}\nactual:   {:?}\n\
             (UPDATE_SNAPSHOTS=1 rewrites it)",
            line + 1,
            expected.lines().nth(line),
            actual.lines().nth(line)
        );
    }
}

#[test]
fn full_state_with_https() {
    let r = render(&sample_state(), &opts(true));
    check("full_https.conf", &r.http_conf);
    let mut summary = format!(
        "upstreams: {}\ndomains: {}\nhash: {}\nfiles:\n",
        r.upstreams, r.domains, r.hash
    );
    for f in &r.files {
        summary += &format!(
            "  {} {:o} {:?}\n",
            f.path.display(),
            f.mode,
            String::from_utf8_lossy(&f.contents)
        );
    }
    summary += "warnings:\n";
    for w in &r.warnings {
        summary += &format!("  {w}\n");
    }
    check("full_https.summary", &summary);
    // Keys are private; certificates are not.
    for f in &r.files {
        let want = if f.path.extension().is_some_and(|e| e == "key") {
            0o600
        } else {
            0o644
        };
        assert_eq!(f.mode, want, "{}", f.path.display());
    }
}

#[test]
fn addresses_nginx_refuses_are_left_out_with_a_warning() {
    let r = render(&sample_state(), &opts(false));
    for bad in ["10.0.0.5", "fe80::1", "0.0.0.0:8080", "[::]:8080"] {
        assert!(!r.http_conf.contains(bad), "{bad} was rendered");
    }
    for (i, why) in [
        ("i5", "has port 0"),
        ("i6", "has an IPv6 scope id"),
        ("i7", "is the unspecified address"),
        ("i8", "is the unspecified address"),
    ] {
        assert!(
            r.warnings
                .iter()
                .any(|w| w.starts_with(&format!("instance hello/web/{i}:")) && w.contains(why)),
            "no warning for {i}: {:?}",
            r.warnings
        );
    }
    // The good instances of the same proc are still routed.
    assert!(r.http_conf.contains("server 10.0.0.1:8080 "));
    assert!(r.http_conf.contains("server 10.0.0.2:8080 "));
}

#[test]
fn full_state_http_only() {
    let r = render(&sample_state(), &opts(false));
    check("full_http.conf", &r.http_conf);
    assert!(
        r.files.is_empty(),
        "no HTTPS listener, no certificate files"
    );
}

#[test]
fn empty_state_is_only_the_default_server() {
    let r = render(&RouteState::default(), &opts(true));
    check("empty.conf", &r.http_conf);
    assert_eq!(r.upstreams, 0);
}

#[test]
fn rendering_is_deterministic() {
    let a = render(&sample_state(), &opts(true));
    let b = render(&sample_state(), &opts(true));
    assert_eq!(a, b);
    // Another router, other ports and dir, same routing: same hash.
    let other = RenderOptions {
        state_dir: PathBuf::from("/srv/router-2"),
        http_listen: "10.0.0.9:8080".parse().unwrap(),
        https_listen: Some("0.0.0.0:443".parse().unwrap()),
        map_routing_min_procs: 0,
    };
    let c = render(&sample_state(), &other);
    assert_eq!(a.hash, c.hash);
    assert_ne!(a.http_conf, c.http_conf);
    assert!(!c.http_conf.contains('@'), "a placeholder was left");
}

#[test]
fn below_the_map_routing_threshold_every_proc_keeps_its_upstream() {
    let mut small = opts(true);
    small.map_routing_min_procs = 1_000_000;
    let r = render(&sample_state(), &small);
    assert!(!r.http_conf.contains("$lain_backend"), "{}", r.http_conf);
    // The production default below 2,000 procs, in full.
    check("full_https_upstreams.conf", &r.http_conf);
    let mapped = render(&sample_state(), &opts(true));
    assert!(mapped.http_conf.contains("$lain_backend"));
    // Every proc routed by the maps has an upstream below the threshold.
    let upstreams = |c: &str| c.lines().filter(|l| l.starts_with("upstream ")).count();
    assert!(
        upstreams(&r.http_conf) > upstreams(&mapped.http_conf),
        "{}",
        r.http_conf
    );
}

#[test]
fn main_conf_snapshot() {
    let text = main_conf(
        &MainOptions {
            state_dir: PathBuf::from("/var/lib/lain/webrouter"),
            status_listen: "127.0.0.1:9081".parse().unwrap(),
            worker_processes: 2,
            worker_shutdown_timeout_secs: 30,
            user: Some("www-data".into()),
        },
        42,
        Path::new("/var/lib/lain/webrouter/generations/00000042/http.conf"),
    );
    check("main.conf", &text);
}

/// The server blocks of a rendered config: (listen lines, server names,
/// locations text).
fn servers(conf: &str) -> Vec<(Vec<String>, Vec<String>, String)> {
    let mut out = Vec::new();
    for block in conf.split("\nserver {\n").skip(1) {
        let block = &block[..block.find("\n}\n").unwrap()];
        let listens = block
            .lines()
            .filter_map(|l| l.trim().strip_prefix("listen "))
            .map(|l| l.trim_end_matches(';').to_owned())
            .collect();
        let names = block
            .find("server_name ")
            .map(|i| {
                let rest = &block[i + "server_name ".len()..];
                rest[..rest.find(';').unwrap()]
                    .split_whitespace()
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default();
        let body = block
            .find("    location ")
            .map(|i| block[i..].to_owned())
            .unwrap_or_default();
        out.push((listens, names, body));
    }
    out
}

/// Domain -> locations, for the servers listening on `port`.
fn routes_on(conf: &str, port: &str) -> BTreeMap<String, String> {
    let mut m = BTreeMap::new();
    for (listens, names, body) in servers(conf) {
        if listens
            .iter()
            .any(|l| l.starts_with(port) && !l.contains("default_server"))
        {
            for n in names {
                assert!(
                    m.insert(n.clone(), body.clone()).is_none(),
                    "{n} twice on {port}"
                );
            }
        }
    }
    m
}

#[test]
fn root_only_domains_share_the_catch_all_server() {
    let r = render(&sample_state(), &opts(true));
    let http = routes_on(&r.http_conf, "0.0.0.0:80");
    let https = routes_on(&r.http_conf, "0.0.0.0:443");
    // Every routed domain on plain HTTP, exactly once.
    assert_eq!(http.len(), r.domains);
    // Root-only domains (of any proc, healthy or not) share the one
    // catch-all server per listener; the one that also mounts /api does
    // not.
    let catch_all = servers(&r.http_conf)
        .into_iter()
        .filter(|(l, _, body)| l == &["0.0.0.0:80"] && body.contains("$lain_backend"))
        .collect::<Vec<_>>();
    assert_eq!(catch_all.len(), 1);
    assert_eq!(
        catch_all[0].1,
        [
            "down.example.com",
            "hello.example.com",
            "hello.lain",
            "www.hello.com"
        ]
    );
    assert!(http["hello.lain.local"].contains("location /api/ {"));
    assert!(http["hello.lain.local"].contains("proxy_pass http://hello-web;"));
    assert!(http["hello.lain"].contains("proxy_pass http://$lain_backend;"));
    // The maps: host -> proc with a healthy instance, host -> 503 page of a
    // proc without one, proc and bucket -> an address of the proc.
    let conf = &r.http_conf;
    assert!(conf.contains("    hello.lain hello-web;\n"));
    assert!(conf.contains("    shop.lain shop-web;\n"));
    assert!(
        conf.contains("    down.example.com \"empty/web.down has no healthy instance right now.")
    );
    assert!(conf.contains("    hello-web:0 10.0.0.1:8080;\n"));
    assert!(conf.contains("    hello-web:1 10.0.0.2:8080;\n"));
    assert!(conf.contains("    shop-web:0 [fd00::1]:80;\n"));
    assert!(!conf.contains("    shop-web:1 "));
    // Address counts: 1 is the default; the index table is shared by all
    // procs with 2 addresses: bucket mod 2, 0 being the default.
    assert!(conf.contains("    hello-web 2;\n"));
    assert!(!conf.contains("    shop-web 1;\n"));
    for b in 0..256 {
        let line = format!("    2:{b:02x} 1;\n");
        assert_eq!(conf.contains(&line), b % 2 == 1, "{line}");
    }
    // Map-routed procs get no `upstream` block; those behind a path
    // mountpoint (or a domain with one) keep theirs.
    assert!(!conf.contains("upstream shop-web "));
    assert!(conf.contains("upstream hello-web {"));
    assert!(conf.contains("upstream hello-web_2Eapi {"));
    assert!(!conf.contains("hello-web_2Eapi:0"));
    // HTTPS: exactly the domains with a certificate, proxied (https_only
    // redirects only on plain HTTP).
    assert_eq!(
        https.keys().collect::<Vec<_>>(),
        [
            "api.example.com",
            "down.example.com",
            "hello.example.com",
            "shop.example.com",
            "shop.lain.local"
        ]
    );
    assert!(http["shop.example.com"].contains("return 301 https://$host$request_uri;"));
    assert!(https["shop.example.com"].contains("proxy_pass http://$lain_backend;"));
    assert!(https["shop.lain.local"].contains("proxy_pass http://$lain_backend;"));
    for (d, body) in &https {
        if !d.starts_with("shop.") {
            assert_eq!(body, &http[d], "{d}: HTTPS and HTTP differ");
        }
    }
    // Server blocks: the 404 default, api, the catch-all, evil,
    // hello.lain.local and the shop redirect on HTTP (6); the TLS default,
    // api and the catch-all with the shared wildcard, and the catch-all
    // with shop.lain.local's own certificate on HTTPS (4).
    assert_eq!(servers(&r.http_conf).len(), 10);
}

#[test]
fn a_proc_moves_between_the_maps_and_an_upstream() {
    // shop/web is map-routed; give one of its domains a path mountpoint
    // from another proc and that domain (and so shop/web) needs a server
    // and an upstream again, while its other domains stay in the maps.
    let mut s = sample_state();
    let p = proc("shop", "web.api", &["shop.lain/api"], false);
    s.procs.insert((p.app.clone(), p.proc.clone()), p);
    s.instances.insert(
        ("shop".into(), "web.api".into(), "i1".into()),
        inst(InstanceState::Running, Health::Healthy, Some("10.0.7.1:80")),
    );
    let r = render(&s, &opts(false));
    let conf = &r.http_conf;
    assert!(conf.contains("upstream shop-web {"));
    assert!(conf.contains("upstream shop-web_2Eapi {"));
    assert!(!conf.contains("    shop.lain shop-web;\n"));
    assert!(conf.contains("    shop.lain.local shop-web;\n"));
    assert!(conf.contains("    shop-web:0 [fd00::1]:80;\n"));
    let http = routes_on(conf, "0.0.0.0:80");
    assert!(http["shop.lain"].contains("location /api/ {"));
    // No root-only domain at all: no maps.
    let mut s = sample_state();
    s.procs.retain(|(_, p), _| p != "web" && p != "web.down");
    let r = render(&s, &opts(false));
    assert!(!r.http_conf.contains("$lain_backend"));
}

#[test]
fn the_most_used_certificate_is_loaded_once_by_the_default_server() {
    let r = render(&sample_state(), &opts(true));
    let all = servers(&r.http_conf);
    let (default, rest): (Vec<_>, Vec<_>) = all
        .iter()
        .partition(|(l, _, _)| l.iter().any(|l| l == "0.0.0.0:443 ssl default_server"));
    assert_eq!(default.len(), 1);
    let conf = &r.http_conf;
    let tls_default = &conf[conf.find("listen 0.0.0.0:443 ssl default_server;").unwrap()..];
    let tls_default = &tls_default[..tls_default.find("\n}\n").unwrap()];
    assert!(tls_default.contains("ssl_reject_handshake on;"));
    assert!(tls_default.contains("# certificate for *.example.com"));
    // One `ssl_certificate` for the wildcard (4 domains), one for
    // shop.lain.local's own certificate, in the one server that uses it.
    assert_eq!(conf.matches("ssl_certificate ").count(), 2);
    let ssl: Vec<_> = rest
        .iter()
        .filter(|(l, _, _)| l.iter().any(|l| l.ends_with(" ssl")))
        .collect();
    assert_eq!(ssl.len(), 1);
    assert_eq!(ssl[0].1, ["shop.lain.local"]);
    // Each certificate's files are written once.
    assert_eq!(r.files.len(), 4);
}

#[test]
fn a_tie_shares_the_first_certificate_by_name() {
    let mut s = sample_state();
    s.certs.remove("*.example.com");
    s.certs.insert(
        "api.example.com".into(),
        CertPair {
            cert: b"API CERT".to_vec(),
            key: b"API KEY".to_vec(),
        },
    );
    // api.example.com and shop.lain.local: one domain each.
    let r = render(&s, &opts(true));
    let conf = &r.http_conf;
    let tls_default = &conf[conf.find("listen 0.0.0.0:443 ssl default_server;").unwrap()..];
    let tls_default = &tls_default[..tls_default.find("\n}\n").unwrap()];
    assert!(
        tls_default.contains("# certificate for api.example.com"),
        "{tls_default}"
    );
    let own = servers(conf)
        .into_iter()
        .filter(|(l, _, _)| l.iter().any(|l| l == "0.0.0.0:443 ssl"))
        .map(|(_, n, _)| n)
        .collect::<Vec<_>>();
    assert_eq!(own, [vec!["shop.lain.local".to_owned()]]);
    // No certificate used: the default server only rejects.
    let mut s = sample_state();
    s.certs.clear();
    s.certs.insert(
        "unused.org".into(),
        CertPair {
            cert: b"C".to_vec(),
            key: b"K".to_vec(),
        },
    );
    let r = render(&s, &opts(true));
    assert!(!r.http_conf.contains("ssl_certificate"));
    assert!(r.http_conf.contains("ssl_reject_handshake on;"));
    assert!(r.files.is_empty());
}

#[test]
fn redirects_of_different_procs_share_a_server() {
    let mut s = sample_state();
    let p = proc("blog", "web", &[], true);
    s.procs.insert((p.app.clone(), p.proc.clone()), p);
    s.instances.insert(
        ("blog".into(), "web".into(), "i1".into()),
        inst(InstanceState::Running, Health::Healthy, Some("10.0.6.1:80")),
    );
    let r = render(&s, &opts(true));
    let redirect = servers(&r.http_conf)
        .into_iter()
        .filter(|(_, _, body)| body.contains("return 301"))
        .collect::<Vec<_>>();
    assert_eq!(redirect.len(), 1);
    assert_eq!(
        redirect[0].1,
        [
            "blog.example.com",
            "blog.lain",
            "blog.lain.local",
            "shop.example.com",
            "shop.lain",
            "shop.lain.local"
        ]
    );
    // On HTTPS both are routed by the catch-all.
    let https = routes_on(&r.http_conf, "0.0.0.0:443");
    assert!(https["blog.example.com"].contains("proxy_pass http://$lain_backend;"));
    assert!(https["shop.example.com"].contains("proxy_pass http://$lain_backend;"));
    assert!(r.http_conf.contains("    blog.example.com blog-web;\n"));
}
