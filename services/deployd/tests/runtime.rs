//! The container lifecycle against a real dockerd: networks, create with
//! env, limits, a published port and a named volume, start,
//! inspect, HTTP to the published port, exec checks, logs, events, stop
//! with a kill timeout, remove, list, name conflicts, and pulls from a real
//! registry; secrets in RAM only (files and env through the stdin wrapper,
//! found nowhere in the data root, again after a restart). One engine for
//! all of it (starting one takes 20-30 s).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use deployd::docker::Engine;
use deployd::runtime::{
    ContainerEvent, ContainerSpec, ContainerState, LogStream, RuntimeError, SecretEnv, SecretFile,
    LABEL_MANAGED, SECRETS_DIR,
};
use futures::StreamExt;
use lain_store::DockerEndpoint;
use lain_testkit::{import_base_image, Dockerd, Registry, BASE_IMAGE};
use tokio::task::block_in_place;
use zeroize::Zeroizing;

const NETWORK: &str = "lain-rtest";
const VOLUME: &str = "lain-rtest-data";

fn spec(name: &str, instance: u32, cmd: &[&str]) -> ContainerSpec {
    ContainerSpec {
        name: name.into(),
        app: "rtest".into(),
        proc: "web".into(),
        instance,
        slot: format!("{instance}-3"),
        generation: 3,
        spec_hash: "hash-3".into(),
        image: BASE_IMAGE.into(),
        cmd: cmd.iter().map(|s| s.to_string()).collect(),
        env: vec![
            ("LAIN_APP".into(), "rtest".into()),
            ("GREETING".into(), "hi there".into()),
        ],
        host_ip: "127.0.0.1".into(),
        network: NETWORK.into(),
        ..Default::default()
    }
}

fn sh(script: &str) -> Vec<String> {
    vec!["sh".into(), "-c".into(), script.into()]
}

/// Files under `dir` (depth-limited, skipping `skip`) modified since
/// `since` whose contents hold `needle`.
fn files_holding(
    dir: &Path,
    skip: &Path,
    needle: &[u8],
    since: std::time::SystemTime,
) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut todo = vec![(dir.to_path_buf(), 0)];
    while let Some((d, depth)) = todo.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.starts_with(skip) {
                continue;
            }
            let Ok(meta) = std::fs::symlink_metadata(&p) else {
                continue;
            };
            if meta.is_dir() && depth < 6 {
                todo.push((p, depth + 1));
            } else if meta.is_file()
                && meta.len() < (16 << 20)
                && meta.modified().is_ok_and(|m| m >= since)
            {
                if let Ok(data) = std::fs::read(&p) {
                    if data.windows(needle.len()).any(|w| w == needle) {
                        found.push(p);
                    }
                }
            }
        }
    }
    found
}

/// Every regular file under `dir` (no depth limit, symlinks not followed)
/// whose contents hold `needle`.
fn grep_tree(dir: &Path, needle: &[u8]) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            let Ok(meta) = std::fs::symlink_metadata(&p) else {
                continue;
            };
            if meta.is_dir() {
                todo.push(p);
            } else if meta.is_file() && meta.len() < (64 << 20) {
                if let Ok(data) = std::fs::read(&p) {
                    if data.windows(needle.len()).any(|w| w == needle) {
                        found.push(p);
                    }
                }
            }
        }
    }
    found
}

fn sha256_hex(data: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The stdout of a container so far.
async fn stdout_of(engine: &Engine, id: &str) -> String {
    let chunks: Vec<_> = tokio::time::timeout(
        Duration::from_secs(10),
        engine.logs(id, false, None, false).collect::<Vec<_>>(),
    )
    .await
    .expect("logs end");
    chunks
        .into_iter()
        .map(|c| c.unwrap())
        .filter(|c| c.stream == LogStream::Stdout)
        .map(|c| String::from_utf8_lossy(&c.bytes).into_owned())
        .collect()
}

async fn http_get(port: u16) -> Option<(u16, String)> {
    let addr = format!("127.0.0.1:{port}").parse().unwrap();
    block_in_place(|| lain_testkit::http::get(addr, "127.0.0.1", "/"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn container_lifecycle_against_a_real_engine() {
    let started_test = std::time::SystemTime::now();
    let dockerd = block_in_place(Dockerd::start).expect("start dockerd");
    block_in_place(|| import_base_image(&dockerd)).expect("import the base image");
    let engine = Engine::connect(
        &DockerEndpoint::Unix {
            socket: dockerd.socket_path().display().to_string(),
        },
        Duration::from_secs(2),
    )
    .expect("connect");
    let cli = |args: &[&str]| block_in_place(|| dockerd.docker(args));

    // Events from the start, collected in the background.
    let (events_tx, mut events_rx) = tokio::sync::mpsc::unbounded_channel::<ContainerEvent>();
    let mut events = Box::pin(engine.events());
    let events_task = tokio::spawn(async move {
        while let Some(e) = events.next().await {
            match e {
                Ok(e) => {
                    if events_tx.send(e).is_err() {
                        break;
                    }
                }
                Err(e) => panic!("event stream failed: {e}"),
            }
        }
    });

    // Networks: twice is fine, and it is labelled as deployd's.
    engine
        .ensure_network(NETWORK)
        .await
        .expect("create network");
    engine.ensure_network(NETWORK).await.expect("network again");
    let label = cli(&[
        "network",
        "inspect",
        "-f",
        &format!("{{{{index .Labels \"{LABEL_MANAGED}\"}}}}"),
        NETWORK,
    ])
    .unwrap();
    assert_eq!(label.trim(), "deployd");
    // Concurrent creates of one network: all fine, one network.
    let racing = "lain-rtest-race";
    let results = futures::future::join_all((0..5).map(|_| engine.ensure_network(racing))).await;
    for r in results {
        r.expect("concurrent ensure_network");
    }
    let same = cli(&[
        "network",
        "ls",
        "-q",
        "--filter",
        &format!("name=^{racing}$"),
    ])
    .unwrap();
    assert_eq!(same.lines().count(), 1, "{same}");
    cli(&["network", "rm", racing]).unwrap();
    // Duplicates made before (the engine allows them without its check):
    // one is kept.
    let dup = "lain-rtest-dup";
    for _ in 0..3 {
        engine
            .docker()
            .create_network(bollard::network::CreateNetworkOptions {
                name: dup,
                driver: "bridge",
                labels: [(LABEL_MANAGED, "deployd")].into(),
                ..Default::default()
            })
            .await
            .expect("create a duplicate network");
    }
    engine.ensure_network(dup).await.expect("heal duplicates");
    let left = cli(&["network", "ls", "-q", "--filter", &format!("name=^{dup}$")]).unwrap();
    assert_eq!(left.lines().count(), 1, "{left}");
    cli(&["network", "rm", dup]).unwrap();

    assert!(engine.image_present(BASE_IMAGE).await.unwrap());
    assert!(!engine.image_present("lain-missing:1").await.unwrap());

    // The web container: env, limits, port, named volume.
    let mut web = spec("lain-rtest-web-1-3", 1, &[]);
    web.cmd = sh(
        "echo hello > /www/index.html; echo started; echo oops >&2; exec httpd -f -p 80 -h /www",
    );
    web.cpu_millis = 500;
    web.memory_bytes = 64 << 20;
    web.port = Some(80);
    web.volumes = vec![(VOLUME.into(), "/data".into())];
    web.extra_labels.insert("team".into(), "a".into());
    let id = engine.create(&web).await.expect("create web");
    let created = engine.inspect(&id).await.unwrap().expect("inspect created");
    assert_eq!(created.state, ContainerState::Created);
    assert_eq!(
        (
            created.name.as_str(),
            created.app.as_str(),
            created.proc.as_str()
        ),
        ("lain-rtest-web-1-3", "rtest", "web")
    );
    assert_eq!((created.instance, created.generation), (1, 3));
    assert_eq!(
        (created.slot.as_str(), created.spec_hash.as_str()),
        ("1-3", "hash-3")
    );
    assert_eq!(created.host_port, None);

    // A second create under the same name: a conflict to adopt.
    match engine.create(&web).await {
        Err(RuntimeError::NameConflict { name, endpoint }) => {
            assert_eq!(name, "lain-rtest-web-1-3");
            assert!(endpoint.contains("unix://"), "{endpoint}");
        }
        other => panic!("expected a name conflict, got {other:?}"),
    }
    let by_name = engine.inspect("lain-rtest-web-1-3").await.unwrap().unwrap();
    assert_eq!(by_name.id, id);

    engine.start(&id).await.expect("start");
    engine.start(&id).await.expect("start again is fine");
    let running = engine.inspect(&id).await.unwrap().unwrap();
    assert_eq!(running.state, ContainerState::Running);
    assert!(running.started_at_ms.is_some());
    let port = running.host_port.expect("a published port");

    let limits = cli(&[
        "inspect",
        "-f",
        "{{.HostConfig.NanoCpus}} {{.HostConfig.Memory}} {{.HostConfig.RestartPolicy.Name}} {{.HostConfig.NetworkMode}} {{index .Config.Labels \"team\"}}",
        &id,
    ])
    .unwrap();
    assert_eq!(limits.trim(), format!("500000000 67108864 no {NETWORK} a"));

    // HTTP through the published port (httpd needs a moment).
    let deadline = Instant::now() + Duration::from_secs(10);
    let body = loop {
        match http_get(port).await {
            Some((200, body)) => break body,
            other if Instant::now() > deadline => panic!("no answer on port {port}: {other:?}"),
            _ => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    };
    assert_eq!(body.trim(), "hello");

    // Env and the named volume are there.
    let check = "test \"$GREETING\" = 'hi there' && grep -q ' /data ' /proc/mounts";
    assert!(
        engine
            .exec_check(&id, &sh(check), Duration::from_secs(5))
            .await
            .unwrap(),
        "env or volume not as expected"
    );
    assert!(!engine
        .exec_check(&id, &sh("exit 3"), Duration::from_secs(5))
        .await
        .unwrap());
    let t = Instant::now();
    assert!(!engine
        .exec_check(&id, &sh("sleep 5"), Duration::from_millis(300))
        .await
        .unwrap());
    assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());

    // Secrets: two files and an env variable, in RAM only.
    let secret = format!("s3cret-{}", std::process::id());
    let token = format!("t0ken-{}-it's", std::process::id());
    let visible = format!("visible-{}", std::process::id());
    let db_conf = format!("password={secret}\nline two\n");
    let mut vault = spec(
        "lain-rtest-vault-5-3",
        5,
        &[
            "sh",
            "-c",
            "sha256sum < /lain/app/conf/db.conf; printf %s \"$TOKEN\" | sha256sum; \
             echo \"$GREETING\"; trap 'exit 0' TERM; sleep 1000 & wait",
        ],
    );
    vault.env.push(("VISIBLE".into(), visible.clone()));
    vault.secret_files = vec![
        SecretFile {
            path: "/lain/app/conf/db.conf".into(),
            contents: Zeroizing::new(db_conf.clone().into_bytes()),
            mode: 0,
        },
        SecretFile {
            path: "/tmp/other.key".into(),
            contents: Zeroizing::new(format!("other-{secret}").into_bytes()),
            mode: 0o640,
        },
    ];
    vault.secret_env = vec![SecretEnv {
        name: "TOKEN".into(),
        value: Zeroizing::new(token.clone()),
    }];
    let vault_id = engine.create(&vault).await.expect("create with secrets");
    let made = engine.inspect(&vault_id).await.unwrap().unwrap();
    assert!(made.secrets);
    engine
        .start_with_secrets(&vault_id, &vault.secret_files, &vault.secret_env)
        .await
        .expect("start with secrets");
    engine
        .start_with_secrets(&vault_id, &vault.secret_files, &vault.secret_env)
        .await
        .expect("starting a running one again is fine");
    let expected = format!(
        "{}  -\n{}  -\nhi there\n",
        sha256_hex(db_conf.as_bytes()),
        sha256_hex(token.as_bytes())
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let out = stdout_of(&engine, &vault_id).await;
        if out == expected {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the app saw {out:?}, not {expected:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Links into a tmpfs, files root's with their modes; /tmp kept its mode.
    let check = format!(
        "grep -q '^tmpfs {SECRETS_DIR} tmpfs rw,nosuid,nodev,noexec' /proc/mounts \
         && test \"$(readlink /lain/app/conf/db.conf)\" = {SECRETS_DIR}/1 \
         && test \"$(stat -L -c '%a %u %g' /lain/app/conf/db.conf)\" = '400 0 0' \
         && test \"$(stat -c '%a' /lain/app/conf)\" = 755 \
         && test \"$(stat -L -c '%a' /tmp/other.key)\" = 640 \
         && test \"$(stat -c '%a' /tmp)\" = 1777 \
         && test \"$(stat -c '%a' {SECRETS_DIR})\" = 700 \
         && test -z \"$TOKEN\""
    );
    assert!(
        engine
            .exec_check(&vault_id, &sh(&check), Duration::from_secs(5))
            .await
            .unwrap(),
        "secret files not as expected"
    );
    let config = cli(&[
        "inspect",
        "-f",
        "{{json .Config.Env}} {{.Config.OpenStdin}} {{json .HostConfig.Tmpfs}}",
        &vault_id,
    ])
    .unwrap();
    assert!(
        !config.contains("TOKEN") && !config.contains(&secret),
        "{config}"
    );
    assert!(config.contains(" true {"), "{config}");
    let data_root = dockerd.data_root();
    let shown = grep_tree(data_root, visible.as_bytes());
    assert!(
        shown.iter().any(|p| p.ends_with("config.v2.json")),
        "the positive control failed: {visible} is not in config.v2.json: {shown:?}"
    );
    for needle in [&secret, &token] {
        let leaked = grep_tree(data_root, needle.as_bytes());
        assert!(
            leaked.is_empty(),
            "a secret reached the node's disk: {leaked:?}"
        );
    }
    // A restart: the tmpfs is empty again and the secrets come again.
    engine
        .stop(&vault_id, Duration::from_secs(5))
        .await
        .expect("stop");
    let stopped = engine.inspect(&vault_id).await.unwrap().unwrap();
    assert_eq!(
        (stopped.state, stopped.exit_code),
        (ContainerState::Exited, Some(0))
    );
    engine
        .start_with_secrets(&vault_id, &vault.secret_files, &vault.secret_env)
        .await
        .expect("restart with secrets");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let out = stdout_of(&engine, &vault_id).await;
        if out == expected.repeat(2) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "after a restart the app saw {out:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for needle in [&secret, &token] {
        let leaked = grep_tree(data_root, needle.as_bytes());
        assert!(
            leaked.is_empty(),
            "a secret reached the node's disk: {leaked:?}"
        );
    }
    engine.remove(&vault_id).await.expect("remove");

    // An image without /bin/sh cannot take secrets, and says why.
    cli(&["run", "--name", "nosh", BASE_IMAGE, "rm", "/bin/sh"]).unwrap();
    cli(&["commit", "nosh", "lain-nosh:1"]).unwrap();
    cli(&["rm", "nosh"]).unwrap();
    let mut nosh = spec("lain-rtest-nosh-6-3", 6, &["true"]);
    nosh.image = "lain-nosh:1".into();
    nosh.secret_env = vault.secret_env.clone();
    let nosh_id = engine.create(&nosh).await.expect("create without a shell");
    let e = engine
        .start_with_secrets(&nosh_id, &[], &nosh.secret_env)
        .await
        .unwrap_err()
        .to_string();
    eprintln!("no shell: {e}");
    assert!(e.contains("the image has no /bin/sh"), "{e}");
    engine.remove(&nosh_id).await.expect("remove");
    cli(&["rmi", "lain-nosh:1"]).unwrap();

    let leaked = files_holding(
        &std::env::temp_dir(),
        dockerd.dir().path(),
        secret.as_bytes(),
        started_test,
    );
    assert!(
        leaked.is_empty(),
        "the secret reached the host's disk: {leaked:?}"
    );
    let leaked = files_holding(
        Path::new("/var/tmp"),
        dockerd.dir().path(),
        secret.as_bytes(),
        started_test,
    );
    assert!(
        leaked.is_empty(),
        "the secret reached the host's disk: {leaked:?}"
    );

    // Logs: the tail, split by stream.
    let chunks: Vec<_> = tokio::time::timeout(
        Duration::from_secs(10),
        engine.logs(&id, false, Some(10), false).collect::<Vec<_>>(),
    )
    .await
    .expect("logs end");
    let chunks: Vec<_> = chunks.into_iter().map(|c| c.unwrap()).collect();
    let text = |s: LogStream| -> String {
        chunks
            .iter()
            .filter(|c| c.stream == s)
            .map(|c| String::from_utf8_lossy(&c.bytes).into_owned())
            .collect()
    };
    assert_eq!(text(LogStream::Stdout).trim(), "started");
    assert_eq!(text(LogStream::Stderr).trim(), "oops");
    let with_ts = engine
        .logs(&id, false, Some(1), true)
        .collect::<Vec<_>>()
        .await;
    assert_eq!(with_ts.len(), 1, "{with_ts:?}");
    assert!(String::from_utf8_lossy(&with_ts[0].as_ref().unwrap().bytes).starts_with("20"));

    // Logs, following a container as it writes.
    let ticker_spec = spec(
        "lain-rtest-web-2-3",
        2,
        &[
            "sh",
            "-c",
            "i=0; while true; do echo tick $i; i=$((i+1)); sleep 0.2; done",
        ],
    );
    let ticker = engine.create(&ticker_spec).await.unwrap();
    engine.start(&ticker).await.unwrap();
    // Without secrets: no wrapper, no tmpfs, no stdin.
    let plain = cli(&[
        "inspect",
        "-f",
        "{{json .Config.Entrypoint}} {{.Config.OpenStdin}} {{json .HostConfig.Tmpfs}}",
        &ticker,
    ])
    .unwrap();
    assert_eq!(plain.trim(), "null false null");
    assert!(!engine.inspect(&ticker).await.unwrap().unwrap().secrets);
    let mut follow = Box::pin(engine.logs(&ticker, true, Some(0), false));
    let mut ticks = Vec::new();
    while ticks.len() < 3 {
        let c = tokio::time::timeout(Duration::from_secs(5), follow.next())
            .await
            .expect("a line while following")
            .expect("the stream goes on")
            .unwrap();
        ticks.push(String::from_utf8_lossy(&c.bytes).trim().to_owned());
    }
    drop(follow);
    assert!(ticks.iter().all(|t| t.starts_with("tick ")), "{ticks:?}");

    // A foreign container is never listed nor inspected as deployd's.
    cli(&["create", "--name", "foreign", BASE_IMAGE, "sleep", "1"]).unwrap();
    assert!(engine.inspect("foreign").await.unwrap().is_none());
    assert!(engine.inspect("no-such-container").await.unwrap().is_none());
    let listed = engine.list().await.unwrap();
    let mut names: Vec<_> = listed.iter().map(|c| c.name.as_str()).collect();
    names.sort();
    assert_eq!(names, ["lain-rtest-web-1-3", "lain-rtest-web-2-3"]);
    let listed_web = listed.iter().find(|c| c.id == id).unwrap();
    assert_eq!(listed_web.host_port, Some(port));
    assert_eq!(listed_web.state, ContainerState::Running);
    assert_eq!(listed_web.generation, 3);

    // Stop: a process ignoring SIGTERM is killed after the kill timeout.
    let stubborn_spec = spec(
        "lain-rtest-web-3-3",
        3,
        &["sh", "-c", "trap '' TERM; sleep 1000 & wait"],
    );
    let stubborn = engine.create(&stubborn_spec).await.unwrap();
    engine.start(&stubborn).await.unwrap();
    let t = Instant::now();
    engine
        .stop(&stubborn, Duration::from_secs(1))
        .await
        .expect("stop");
    let took = t.elapsed();
    eprintln!("MEASURED: stop of a SIGTERM-ignoring container with kill_timeout 1 s took {took:?}");
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(4),
        "{took:?}"
    );
    let stopped = engine.inspect(&stubborn).await.unwrap().unwrap();
    assert_eq!(stopped.state, ContainerState::Exited);
    assert_eq!(stopped.exit_code, Some(137));
    assert!(stopped.finished_at_ms.is_some());
    engine
        .stop(&stubborn, Duration::from_secs(1))
        .await
        .expect("stopping a stopped container is fine");
    let listed = engine.list().await.unwrap();
    let s = listed.iter().find(|c| c.id == stubborn).unwrap();
    assert_eq!((s.state, s.exit_code), (ContainerState::Exited, Some(137)));

    // The event stream saw it die.
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut seen = Vec::new();
    let die = loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let e = tokio::time::timeout(left, events_rx.recv())
            .await
            .unwrap_or_else(|_| panic!("no die event; saw {seen:?}"))
            .expect("events go on");
        if e.id == stubborn && e.action == "die" {
            break e;
        }
        seen.push(e);
    };
    assert_eq!(
        (die.app.as_str(), die.proc.as_str(), die.slot.as_str()),
        ("rtest", "web", "3-3")
    );
    assert_eq!(die.exit_code, Some(137));
    assert!(die.time_ms.is_some());
    assert!(
        seen.iter().any(|e| e.id == id && e.action == "start"),
        "{seen:?}"
    );
    assert!(
        seen.iter().all(|e| e.app == "rtest"),
        "a foreign container's event: {seen:?}"
    );

    // Remove: gone, twice is fine, the named volume stays.
    for c in [&id, &ticker, &stubborn] {
        engine.remove(c).await.expect("remove");
        engine.remove(c).await.expect("remove again");
        assert!(engine.inspect(c).await.unwrap().is_none());
    }
    engine
        .stop(&id, Duration::from_secs(1))
        .await
        .expect("stopping a removed container is fine");
    match engine.start(&id).await {
        Err(RuntimeError::NotFound { id: gone, .. }) => assert_eq!(gone, id),
        other => panic!("expected not found, got {other:?}"),
    }
    let logs: Vec<_> = engine.logs(&id, false, None, false).collect().await;
    assert!(
        matches!(logs.as_slice(), [Err(RuntimeError::NotFound { .. })]),
        "{logs:?}"
    );
    let volumes = cli(&["volume", "ls", "-q"]).unwrap();
    assert!(volumes.lines().any(|v| v == VOLUME), "{volumes}");
    assert!(engine.list().await.unwrap().is_empty());

    // A missing image is named when creating.
    let mut lost = spec("lain-rtest-web-4-3", 4, &["true"]);
    lost.image = "lain-missing:1".into();
    match engine.create(&lost).await {
        Err(RuntimeError::ImageMissing { image, .. }) => assert_eq!(image, "lain-missing:1"),
        other => panic!("expected a missing image, got {other:?}"),
    }

    // Pulls from a real registry.
    let registry = block_in_place(Registry::start).expect("start registry");
    let pushed = registry.image("lain-busybox:v1");
    cli(&["tag", BASE_IMAGE, &pushed]).unwrap();
    cli(&["push", &pushed]).unwrap();
    // Every reference to the image goes, so that its layer is downloaded.
    cli(&["rm", "-f", "foreign"]).unwrap();
    cli(&["rmi", &pushed, BASE_IMAGE]).unwrap();
    assert!(!engine.image_present(&pushed).await.unwrap());
    let mut progress = Vec::new();
    engine
        .pull(&pushed, None, |p| progress.push(p))
        .await
        .expect("pull");
    assert!(engine.image_present(&pushed).await.unwrap());
    eprintln!("pull progress: {progress:?}");
    assert!(
        progress
            .iter()
            .any(|p| p.status.starts_with("Pulling from")),
        "{progress:?}"
    );
    assert!(
        progress
            .iter()
            .any(|p| p.status == "Downloading" && p.total.is_some() && p.id.is_some()),
        "no layer download progress: {progress:?}"
    );
    assert!(
        progress
            .iter()
            .any(|p| p.status.starts_with("Status: Downloaded")),
        "{progress:?}"
    );
    let missing = registry.image("lain-busybox:missing");
    match engine.pull(&missing, None, |_| {}).await {
        Err(e @ RuntimeError::Pull { .. }) => {
            let text = e.to_string();
            assert!(text.contains(&missing), "{text}");
            eprintln!("missing tag: {text}");
        }
        other => panic!("expected a pull error, got {other:?}"),
    }

    cli(&["network", "rm", NETWORK]).unwrap();
    events_task.abort();
}
