//! Defaults and derived values: what a valid lain.yaml means.

use lain_spec::{parse, BackupMode, Command, CopySpec, LainConf, ParseOptions, ProcKind, Protocol};

fn conf_with(text: &str, domain: &str) -> LainConf {
    let opts = ParseOptions {
        cluster_domain: domain.to_owned(),
        ..ParseOptions::default()
    };
    match parse("lain.yaml", text, &opts) {
        Ok(v) => v.conf,
        Err(d) => panic!("expected valid:\n{d}"),
    }
}

fn conf(text: &str) -> LainConf {
    conf_with(text, "lain.local")
}

const HEAD: &str = "build:\n  base: golang\n  script: [go build]\n";

#[test]
fn default_domain_keeps_dashes() {
    // LAIN reverses the dot-separated parts of the appname; an appname has
    // no dots, so `foo-bar` stays as it is: no `bar.foo`.
    let c = conf(&format!("appname: foo-bar\n{HEAD}web:\n  cmd: x\n"));
    assert_eq!(c.default_domains, ["foo-bar.lain.local", "foo-bar.lain"]);
    assert_eq!(c.app_domain(), "foo-bar");
    let web = c.proc("web").expect("web");
    assert_eq!(web.mountpoints, ["foo-bar.lain.local", "foo-bar.lain"]);
    // The reversal shows for LAIN's generated resource instance names.
    assert_eq!(
        lain_spec::app_domain("resource.redis.hello"),
        "hello.redis.resource"
    );
}

#[test]
fn cluster_domain_comes_from_the_options() {
    let c = conf_with(
        &format!("appname: hello\n{HEAD}web:\n  cmd: x\n"),
        "example.com",
    );
    assert_eq!(
        c.proc("web").map(|p| p.mountpoints.clone()),
        Some(vec![
            "hello.example.com".to_owned(),
            "hello.lain".to_owned()
        ])
    );
}

#[test]
fn mountpoints_are_expanded() {
    let c = conf(&format!(
        "appname: hello\n{HEAD}web:\n  cmd: a\n  mountpoint:\n    - /web\n    - a.foo\n    - c.com/y/z\nweb.admin:\n  cmd: b\n  mountpoint: [/admin, admin.example.com]\n"
    ));
    let web = c.proc("web").expect("web");
    assert_eq!(
        web.mountpoints,
        [
            "a.foo",
            "c.com/y/z",
            "hello.lain.local",
            "hello.lain",
            "hello.lain.local/web",
            "hello.lain/web"
        ]
    );
    let admin = c.proc("admin").expect("admin");
    assert_eq!(admin.kind, ProcKind::Web);
    assert_eq!(admin.key, "web.admin");
    assert_eq!(
        admin.mountpoints,
        [
            "admin.example.com",
            "hello.lain.local/admin",
            "hello.lain/admin"
        ]
    );
    let all: Vec<(&str, &str)> = c.mountpoints().map(|(p, m)| (p.name.as_str(), m)).collect();
    assert_eq!(all.len(), 9);
    assert!(all.contains(&("admin", "hello.lain/admin")));
}

#[test]
fn proc_defaults() {
    let c = conf(&format!(
        "appname: hello\n{HEAD}web:\n  cmd: ./web\nworker:\n  cmd: ./work\n"
    ));
    let web = c.proc("web").expect("web");
    assert_eq!(web.kind, ProcKind::Web);
    assert_eq!((web.key.as_str(), web.section.as_str()), ("web.web", "web"));
    assert_eq!(web.num_instances, 1);
    assert_eq!(web.cpu, 0);
    assert_eq!(web.memory, "32m");
    assert_eq!(web.memory_bytes, 32 * 1024 * 1024);
    assert_eq!(web.port, Some(80));
    assert_eq!((web.setup_time, web.kill_timeout), (0, 10));
    assert!(!web.https_only && !web.stateful && !web.secret_files_bypass);
    assert_eq!(web.image, None);
    assert_eq!(web.healthcheck, None);
    assert!(web.filters.is_empty() && web.labels.is_empty());

    let worker = c.proc("worker").expect("worker");
    assert_eq!(worker.kind, ProcKind::Worker);
    assert_eq!(worker.port, None);
    assert!(worker.mountpoints.is_empty());
    assert_eq!(worker.full_name("hello"), "hello.worker.worker");
    assert_eq!(c.procs().count(), 2);
    assert_eq!(c.web_procs().count(), 1);
}

#[test]
fn declared_values() {
    let c = conf(&format!(
        "appname: hello\n{HEAD}web:\n  cmd: [./web, -p, \"8080\"]\n  port: 8080\n  memory: 1g\n  cpu: 2\n  num_instances: 3\n  healthcheck: /ping\n  https_only: true\n  image: registry.lain.local/other:1\n  user: nobody\n  working_dir: /srv\n  setup_time: 30\n  kill_timeout: 20\n  stateful: true\n"
    ));
    let web = c.proc("web").expect("web");
    assert_eq!(
        web.cmd,
        Some(Command::Exec(vec![
            "./web".into(),
            "-p".into(),
            "8080".into()
        ]))
    );
    assert_eq!(web.port, Some(8080));
    assert_eq!((web.memory.as_str(), web.memory_bytes), ("1g", 1 << 30));
    assert_eq!((web.cpu, web.num_instances), (2, 3));
    assert_eq!(web.healthcheck.as_deref(), Some("/ping"));
    assert!(web.https_only && web.stateful);
    assert_eq!(web.user.as_deref(), Some("nobody"));
    assert_eq!(web.working_dir.as_deref(), Some("/srv"));
    assert_eq!((web.setup_time, web.kill_timeout), (30, 20));
    assert_eq!(
        c.image_for(web, "registry.lain.local", "1-abc"),
        "registry.lain.local/other:1"
    );
}

#[test]
fn service_expands_into_proc_and_portal() {
    let c = conf(&format!(
        "appname: hello\n{HEAD}service.echo:\n  cmd: ./echo -p 1234\n  port: 1234\n  num_instances: 3\n  portal:\n    cmd: ./proxy\n    port: 4321\n"
    ));
    assert_eq!(c.procs.len(), 2);
    let echo = &c.procs[0];
    assert_eq!(
        (echo.name.as_str(), echo.kind, echo.key.as_str()),
        ("echo", ProcKind::Worker, "worker.echo")
    );
    assert_eq!((echo.port, echo.num_instances), (Some(1234), 3));
    assert_eq!(echo.section, "service.echo");
    let portal = &c.procs[1];
    assert_eq!(
        (portal.name.as_str(), portal.kind, portal.key.as_str()),
        ("portal-echo", ProcKind::Portal, "portal.portal-echo")
    );
    assert_eq!(portal.section, "service.echo.portal");
    assert_eq!(portal.service_name.as_deref(), Some("echo"));
    assert_eq!(portal.allow_clients.as_deref(), Some("**"));
    assert_eq!(portal.port, Some(4321));
    // The portal's settings are its own: nothing leaks from the service.
    assert_eq!(portal.num_instances, 1);
}

#[test]
fn service_type_and_explicit_portal() {
    let c = conf(&format!(
        "appname: hello\n{HEAD}service.api:\n  type: web\n  cmd: a\n  mountpoint: [/api]\n  portal:\n    cmd: p\n    allow_clients: \"app1\"\nportal.portal-x:\n  service_name: x\n  cmd: p\nproc.x:\n  cmd: x\n"
    ));
    let api = c.proc("api").expect("api");
    assert_eq!(api.kind, ProcKind::Web);
    assert_eq!(api.port, Some(80));
    assert_eq!(
        c.proc("portal-api")
            .and_then(|p| p.allow_clients.clone())
            .as_deref(),
        Some("app1")
    );
    assert_eq!(
        c.proc("portal-x")
            .and_then(|p| p.service_name.clone())
            .as_deref(),
        Some("x")
    );
    assert_eq!(c.proc("x").map(|p| p.kind), Some(ProcKind::Worker));
}

#[test]
fn paths_volumes_and_backups() {
    let c = conf(&format!(
        "appname: hello\n{HEAD}worker:\n  cmd: x\n  secret_files: [config, /lain/app/a.json, ./b//c]\n  persistent_dirs:\n    - data\n    - /var/lib/mysql/\n    - /backup:\n        backup_full:\n          schedule: \"0 3 * * *\"\n          expire: 30d\n          pre_run: pre.sh\n        backup_increment:\n          schedule: \"*/5 * * * *\"\n  ports: \"9501:53/udp\"\n"
    ));
    let w = c.proc("worker").expect("worker");
    assert_eq!(
        w.secret_files,
        ["/lain/app/config", "/lain/app/a.json", "/lain/app/b/c"]
    );
    let paths: Vec<&str> = w.volumes.iter().map(|v| v.path.as_str()).collect();
    assert_eq!(paths, ["/lain/app/data", "/var/lib/mysql", "/backup"]);
    let b = &w.volumes[2].backups;
    assert_eq!(b.len(), 2);
    assert_eq!(
        (
            b[0].mode,
            b[0].schedule.as_str(),
            b[0].expire.as_str(),
            b[0].pre_run.as_str()
        ),
        (BackupMode::Full, "0 3 * * *", "30d", "pre.sh")
    );
    assert_eq!(b[1].mode, BackupMode::Increment);
    assert_eq!(
        (w.ports[0].src, w.ports[0].dst, w.ports[0].proto),
        (9501, 53, Protocol::Udp)
    );
}

#[test]
fn persistent_dirs_win_over_volumes() {
    let v = parse(
        "lain.yaml",
        &format!(
            "appname: hello\n{HEAD}worker:\n  cmd: x\n  volumes: [/a]\n  persistent_dirs: [/b]\n"
        ),
        &ParseOptions::default(),
    )
    .expect("valid");
    let w = v.conf.proc("worker").expect("worker");
    assert_eq!(w.volumes.len(), 1);
    assert_eq!(w.volumes[0].path, "/b");
    assert_eq!(v.warnings.len(), 1);
}

#[test]
fn build_release_test_notify() {
    let c = conf(
        "appname: hello\ngiturl: https://example.com/hello\nbuild:\n  base: golang\n  prepare:\n    version: \"7\"\n    script: [make deps]\n    keep: [vendor]\n  script: [go build]\n  build_arg: [A=1]\n  volumes: [/lain/app/node_modules]\nrelease:\n  dest_base: ubuntu\n  script: [echo hi]\n  copy:\n    - hello\n    - src: entry.sh\n      dest: /entry.sh\n    - src: only-src\ntest:\n  script: [go test]\nnotify:\n  slack: \"#hello\"\n",
    );
    assert_eq!(c.giturl.as_deref(), Some("https://example.com/hello"));
    assert_eq!(c.build.base, "golang");
    assert_eq!(c.build.build_arg, ["A=1"]);
    assert_eq!(c.build.volumes, ["/lain/app/node_modules"]);
    let p = c.build.prepare.clone().expect("prepare");
    assert_eq!((p.version.as_str(), p.legacy_list), ("7", false));
    let r = c.release.clone().expect("release");
    assert_eq!(r.dest_base, "ubuntu");
    assert_eq!(
        r.copy,
        [
            CopySpec {
                src: "hello".into(),
                dest: "hello".into()
            },
            CopySpec {
                src: "entry.sh".into(),
                dest: "/entry.sh".into()
            },
            CopySpec {
                src: "only-src".into(),
                dest: "only-src".into()
            },
        ]
    );
    assert_eq!(
        c.test.as_ref().map(|t| t.script.clone()),
        Some(vec!["go test".to_owned()])
    );
    assert_eq!(c.notify.slack.as_deref(), Some("#hello"));
    assert_eq!(
        c.release_image("registry.lain.local", "1500000000-abc"),
        "registry.lain.local/hello:release-1500000000-abc"
    );
    assert!(c.procs.is_empty());
}

#[test]
fn anchors_and_merge_keys_share_settings() {
    let c = conf(&format!(
        "appname: hello\n{HEAD}worker.a: &base\n  cmd: x\n  memory: 64m\n  env: [A=1]\nworker.b:\n  <<: *base\n  memory: 128m\n"
    ));
    let b = c.proc("b").expect("b");
    assert_eq!(b.memory, "128m");
    assert_eq!(b.env, ["A=1"]);
    assert_eq!(b.cmd, Some(Command::Shell("x".into())));
}

#[test]
fn conf_round_trips_through_json() {
    let text = std::fs::read_to_string(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(
        "../../../shared/lain-yaml/real/laincloud__lain-sdk__fixtures_data_for_validate.yaml",
    ))
    .unwrap_or_else(|_| format!("appname: hello\n{HEAD}web:\n  cmd: x\n"));
    let c = conf(&text);
    let json = serde_json::to_string_pretty(&c).expect("serializes");
    let back: LainConf = serde_json::from_str(&json).expect("deserializes");
    assert_eq!(back, c);
}

#[test]
fn parse_file_reads_and_names_the_file() {
    let dir = std::env::temp_dir().join(format!("lain-spec-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("tmp dir");
    let path = dir.join("lain.yaml");
    std::fs::write(&path, "appname: a\nbuild:\n  base: b\n").expect("write");
    let err = lain_spec::parse_file(&path, &ParseOptions::default()).expect_err("invalid");
    assert!(
        err.to_string()
            .starts_with(&format!("{}:2:1: ", path.display())),
        "{err}"
    );
    std::fs::write(&path, b"appname: a\nbuild: \xff\n").expect("write");
    let err = lain_spec::parse_file(&path, &ParseOptions::default()).expect_err("not utf-8");
    assert!(err.to_string().contains(":2:8: "), "{err}");
    let missing = lain_spec::parse_file(&dir.join("nope.yaml"), &ParseOptions::default());
    assert!(matches!(missing, Err(lain_spec::SpecError::Io { .. })));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn extra_domains_get_the_default_and_path_mountpoints() {
    // LAIN's cluster config `domains`: the main domain, then the extra
    // ones; `{appdomain}.lain` last.
    let opts = ParseOptions {
        cluster_domain: "lain.local".to_owned(),
        extra_domains: vec![
            "Example.com".to_owned(),
            "lain.local".to_owned(),
            "b.org.".to_owned(),
        ],
    };
    let text = format!(
        "appname: hello\n{HEAD}web:\n  cmd: a\nweb.admin:\n  cmd: b\n  mountpoint: [/admin]\n"
    );
    let c = match parse("lain.yaml", &text, &opts) {
        Ok(v) => v.conf,
        Err(d) => panic!("expected valid:\n{d}"),
    };
    let defaults = [
        "hello.lain.local",
        "hello.example.com",
        "hello.b.org",
        "hello.lain",
    ];
    assert_eq!(c.default_domains, defaults);
    assert_eq!(
        c.proc("web").map(|p| p.mountpoints.clone()),
        Some(defaults.map(String::from).to_vec())
    );
    assert_eq!(
        c.proc("admin").map(|p| p.mountpoints.clone()),
        Some(defaults.map(|d| format!("{d}/admin")).to_vec())
    );
    assert_eq!(ParseOptions::default().extra_domains, Vec::<String>::new());
}

#[test]
fn a_bad_cluster_domain_is_reported_not_used() {
    let opts = ParseOptions {
        cluster_domain: "lain.local".to_owned(),
        extra_domains: vec!["a.com; }".to_owned()],
    };
    let err = parse(
        "lain.yaml",
        &format!("appname: hello\n{HEAD}web:\n  cmd: a\n"),
        &opts,
    )
    .expect_err("a bad extra domain is an error");
    let e: Vec<_> = err.errors().collect();
    assert_eq!(e.len(), 1, "{err}");
    assert_eq!((e[0].line, e[0].col), (1, 1));
    assert!(
        e[0].message.contains("extra domain `a.com; }`"),
        "{}",
        e[0].message
    );
    assert!(e[0].message.contains("contains `;`"), "{}", e[0].message);
}
