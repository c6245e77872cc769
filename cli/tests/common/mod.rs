//! A whole one-node cluster for the CLI's end-to-end tests, every part a
//! real server: etcd, a private dockerd (the node, which also builds),
//! a docker-registry with token auth pointing at console, and this
//! workspace's sso, console, deployd and webrouter binaries (with nginx),
//! each started from a generated config with its log kept. The `lain`
//! binary runs against it with its own config dir, as a user would.
#![allow(dead_code)]

use std::io::{BufRead as _, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use lain_testkit::process::{Logged, ServerDir};
use lain_testkit::{free_port, http, Dockerd, Etcd, Registry, TokenAuth};

pub const ADMIN_GROUP: &str = "lain-admins";
pub const PASSWORD: &str = "e2e-password-correct-horse";

/// Where this workspace's binaries are: beside `lain`.
pub fn bin(name: &str) -> PathBuf {
    let lain = Path::new(env!("CARGO_BIN_EXE_lain"));
    let path = lain.with_file_name(name);
    if !path.is_file() {
        // `cargo test -p lain-cli` alone does not build the daemons.
        let profile_dir = lain.parent().expect("profile dir");
        let target = profile_dir.parent().expect("target dir");
        // `cargo bench` builds into target/release.
        let release = profile_dir.file_name().is_some_and(|d| d == "release");
        let status = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
            .args(["build", "--bin", name, "-p", name])
            .args(release.then_some("--release"))
            .env("CARGO_TARGET_DIR", target)
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .status()
            .expect("run cargo build");
        assert!(status.success(), "cargo build --bin {name} failed");
    }
    path
}

/// A daemon of this workspace started with `config` on a chosen address.
pub struct Service {
    pub proc: Logged,
    pub addr: SocketAddr,
    pub dir: ServerDir,
    pub config: PathBuf,
}

impl Service {
    fn start(name: &str, addr: SocketAddr, config: &str, dir: ServerDir) -> Service {
        let path = dir.path().join(format!("{name}.toml"));
        std::fs::write(&path, config).unwrap();
        let mut cmd = Command::new(bin(name));
        cmd.arg("--config").arg(&path).env(
            "RUST_LOG",
            std::env::var("LAIN_E2E_LOG").unwrap_or_else(|_| "info".into()),
        );
        let mut proc = Logged::spawn(name, cmd, &dir.log_path(name)).unwrap();
        proc.wait_ready(Duration::from_secs(60), || {
            http::get(addr, "127.0.0.1", "/healthz").is_some_and(|(c, _)| c == 200)
        })
        .unwrap_or_else(|e| panic!("{name} did not start: {e}"));
        Service {
            proc,
            addr,
            dir,
            config: path,
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.proc.log()).unwrap_or_default()
    }
}

fn private(path: &Path, text: &str) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
}

fn run_ok(cmd: &mut Command) -> String {
    let out = cmd.output().expect("run");
    assert!(
        out.status.success(),
        "{cmd:?}: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The running cluster. Fields drop in order: the daemons first, then the
/// servers they use.
pub struct TestCluster {
    pub webrouter: Service,
    pub deployd: Service,
    pub console: Service,
    pub sso: Service,
    pub registry: Registry,
    pub docker: Dockerd,
    pub etcd: Etcd,
    /// The lain config dir and the keys.
    pub home: ServerDir,
    /// Where nginx serves apps.
    pub http: SocketAddr,
    /// Where nginx serves HTTPS for domains with a certificate (`lain cert set`).
    pub https: SocketAddr,
    /// The secret of sso client `ci` (client credentials, for console).
    pub ci_secret: String,
}

impl TestCluster {
    pub fn start() -> TestCluster {
        let home = ServerDir::new("lain-e2e").unwrap();
        let etcd = Etcd::start().expect("etcd");
        let docker = Dockerd::start().expect("dockerd");
        lain_testkit::image::import_base_image(&docker).expect("base image");

        // sso: the first admin, the CLI's public client (device flow),
        // console's client for deployd's API.
        let sso_addr = SocketAddr::from(([127, 0, 0, 1], free_port()));
        let sso_dir = ServerDir::new("e2e-sso").unwrap();
        let sso_config = format!(
            "listen = \"{sso_addr}\"\nadmin_group = \"{ADMIN_GROUP}\"\n\
             database = \"sqlite://{}/sso.db?mode=rwc\"\n\
             [tokens]\ndevice_poll_interval_secs = 1\n\
             [password_hash]\nmemory_kib = 64\niterations = 1\nparallelism = 1\n",
            sso_dir.path().display()
        );
        let sso_toml = sso_dir.path().join("sso.toml");
        std::fs::write(&sso_toml, &sso_config).unwrap();
        let sso_cli = |args: &[&str]| {
            run_ok(
                Command::new(bin("sso"))
                    .arg("--config")
                    .arg(&sso_toml)
                    .args(args),
            )
        };
        let pw = home.path().join("admin.password");
        private(&pw, PASSWORD);
        sso_cli(&[
            "bootstrap",
            "--user",
            "admin",
            "--password-file",
            &pw.to_string_lossy(),
        ]);
        // alice and bob: users in no group (the tests make alice a
        // maintainer; bob maintains nothing).
        for user in ["alice", "bob"] {
            sso_cli(&[
                "user",
                "add",
                user,
                "--password-file",
                &pw.to_string_lossy(),
            ]);
        }
        sso_cli(&[
            "client",
            "add",
            "lain-cli",
            "--kind",
            "public",
            "--name",
            "lain CLI",
            "--grant",
            "device_code",
            "--grant",
            "refresh_token",
            "--audience",
            "console",
        ]);
        // The web console's client (authorization code with PKCE),
        // registered for console's address, picked here for that.
        let console_addr = SocketAddr::from(([127, 0, 0, 1], free_port()));
        let out = sso_cli(&[
            "client",
            "add",
            "console-web",
            "--kind",
            "confidential",
            "--name",
            "lain console",
            "--redirect-uri",
            &format!("http://{console_addr}/ui/callback"),
            "--post-logout-redirect-uri",
            &format!("http://{console_addr}/ui/logged-out"),
            "--grant",
            "authorization_code",
            "--grant",
            "refresh_token",
            "--audience",
            "console",
        ]);
        let web_secret = home.path().join("console-web.secret");
        private(&web_secret, &secret_of(&out));
        // A confidential client-credentials client; its secret.
        let client = |id: &str, audience: &str| {
            let out = sso_cli(&[
                "client",
                "add",
                id,
                "--kind",
                "confidential",
                "--name",
                id,
                "--grant",
                "client_credentials",
                "--audience",
                audience,
            ]);
            secret_of(&out)
        };
        // console's client for deployd's API.
        let secret = client("console", "deployd");
        // ci: a daemon/CI client whose tokens are for console.
        let ci_secret = client("ci", "console");
        // deployd's own client: its token is the password for pulls from
        // the token-auth registry (console grants daemons pull).
        let deployd_secret = home.path().join("deployd-registry.secret");
        private(&deployd_secret, &client("deployd", "console"));
        let console_secret = home.path().join("console-deployd.secret");
        private(&console_secret, &secret);
        let sso = Service::start("sso", sso_addr, &sso_config, sso_dir);
        let issuer = sso.url();

        // The registry's token key pair, made before console and the
        // registry start (each needs the other's address).
        let (key, cert) = (
            home.path().join("registry.key"),
            home.path().join("registry.crt"),
        );
        self_signed(&key, &cert, "lain e2e registry tokens", None);
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
        let registry = Registry::start_with_token_auth(
            std::net::Ipv4Addr::LOCALHOST,
            &TokenAuth {
                realm: format!("http://{console_addr}/api/v1/registry/token"),
                service: "lain-registry".into(),
                issuer: "lain-console".into(),
                root_cert: cert.clone(),
            },
        )
        .expect("registry");

        let secrets_key = home.path().join("secrets.key");
        private(&secrets_key, &lain_store_key());
        let console_dir = ServerDir::new("e2e-console").unwrap();
        let console = Service::start(
            "console",
            console_addr,
            &format!(
                "listen = \"{console_addr}\"\ndatabase = \"sqlite://{}/console.db?mode=rwc\"\n\
                 etcd = [\"{}\"]\nsecrets_key_file = \"{}\"\ncluster_domain = \"lain.local\"\n\
                 registry = \"{}\"\n\
                 [auth]\nissuer = \"{issuer}\"\nadmin_group = \"{ADMIN_GROUP}\"\n\
                 [registry_auth]\nkey_file = \"{}\"\ncert_file = \"{}\"\n\
                 [deployd]\nclient_id = \"console\"\nclient_secret_file = \"{}\"\n\
                 [web]\nclient_secret_file = \"{}\"\n",
                console_dir.path().display(),
                etcd.endpoint(),
                secrets_key.display(),
                registry.host(),
                key.display(),
                cert.display(),
                console_secret.display(),
                web_secret.display(),
            ),
            console_dir,
        );

        let deployd_addr = SocketAddr::from(([127, 0, 0, 1], free_port()));
        let deployd = Service::start(
            "deployd",
            deployd_addr,
            &format!(
                "listen = \"{deployd_addr}\"\netcd = [\"{}\"]\nid = \"deployd-e2e\"\n\
                 secrets_key_file = \"{}\"\nhealth_timeout_secs = 20\nhealth_interval_ms = 500\n\
                 restart_backoff_ms = 200\nrestart_backoff_max_ms = 2000\n\
                 [auth]\nissuer = \"{issuer}\"\nallowed_clients = [\"client:console\"]\n\
                 [registry_auth]\nissuer = \"{issuer}\"\nclient_id = \"deployd\"\n\
                 client_secret_file = \"{}\"\n\
                 [backup]\ncheck_interval_secs = 5\n\
                 [backup.target]\nkind = \"dir\"\npath = \"{}\"\n",
                etcd.endpoint(),
                secrets_key.display(),
                deployd_secret.display(),
                home.path().join("backups").display(),
            ),
            ServerDir::new("e2e-deployd").unwrap(),
        );

        let router_addr = SocketAddr::from(([127, 0, 0, 1], free_port()));
        let http = SocketAddr::from(([127, 0, 0, 1], free_port()));
        let https = SocketAddr::from(([127, 0, 0, 1], free_port()));
        let router_dir = ServerDir::new("e2e-webrouter").unwrap();
        let webrouter = Service::start(
            "webrouter",
            router_addr,
            &format!(
                "listen = \"{router_addr}\"\netcd = [\"{}\"]\nrouter_id = \"router-e2e\"\n\
                 advertise_address = \"{http}\"\nnginx_user = \"root\"\n\
                 state_dir = \"{}\"\nhttp_listen = \"{http}\"\nstatus_listen = \"127.0.0.1:{}\"\n\
                 https_listen = \"{https}\"\nsecrets_key_file = \"{}\"\n",
                etcd.endpoint(),
                router_dir.path().join("state").display(),
                free_port(),
                secrets_key.display(),
            ),
            router_dir,
        );
        TestCluster {
            webrouter,
            deployd,
            console,
            sso,
            registry,
            docker,
            etcd,
            home,
            http,
            https,
            ci_secret,
        }
    }

    /// Runs `lain ARGS` in `dir` as the test's user (its own config dir,
    /// the node's engine), with `stdin` piped in.
    pub fn lain_in(&self, dir: &Path, args: &[&str], stdin: Option<&[u8]>) -> Output {
        self.lain_as("lain", dir, args, stdin)
    }

    /// [`TestCluster::lain_in`] with the config dir `profile` (another user).
    pub fn lain_as(
        &self,
        profile: &str,
        dir: &Path,
        args: &[&str],
        stdin: Option<&[u8]>,
    ) -> Output {
        use std::io::Write as _;
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_lain"));
        cmd.args(args)
            .current_dir(dir)
            .env("LAIN_CONFIG_DIR", self.home.path().join(profile))
            .env("DOCKER_HOST", self.docker.docker_host())
            .env("NO_COLOR", "1")
            .env_remove("LAIN_CLUSTER")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("run lain");
        if let Some(input) = stdin {
            child.stdin.take().unwrap().write_all(input).unwrap();
        }
        drop(child.stdin.take());
        child.wait_with_output().expect("lain output")
    }

    /// `lain cluster add NAME`, the admin logged in through the device
    /// flow, and this test's dockerd registered as `node-1`, alive.
    pub fn admin_with_node(&self, cluster: &str) {
        let home = self.home.path();
        self.ok(
            home,
            &["cluster", "add", cluster, "--console", &self.console.url()],
        );
        device_login(self, "lain", "admin");
        let socket = format!("unix://{}", self.docker.socket_path().display());
        self.ok(
            home,
            &[
                "node",
                "add",
                "node-1",
                "--docker",
                &socket,
                "--address",
                "127.0.0.1",
                "--cpu",
                "2",
                "--memory",
                "4g",
            ],
        );
        self.wait(
            "deployd to see node-1 alive",
            Duration::from_secs(30),
            || self.ok(home, &["node", "list"]).contains("alive"),
        );
    }

    pub fn lain(&self, args: &[&str]) -> Output {
        self.lain_in(self.home.path(), args, None)
    }

    /// `lain ARGS`, which must succeed; its stdout.
    pub fn ok(&self, dir: &Path, args: &[&str]) -> String {
        let out = self.lain_in(dir, args, None);
        assert!(
            out.status.success(),
            "lain {args:?} failed ({}):\n{}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// GET `path` on the router with `Host: host`: status and body.
    pub fn through_router(&self, host: &str, path: &str) -> Option<(u16, String)> {
        http::get(self.http, host, path)
    }

    /// Waits until `f` holds, or panics naming `what`.
    pub fn wait(&self, what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
        let end = Instant::now() + timeout;
        while Instant::now() < end {
            if f() {
                return;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        panic!(
            "timed out waiting for {what}\n--- deployd log tail ---\n{}\n--- webrouter log tail ---\n{}",
            lain_testkit::process::tail(self.deployd.proc.log(), 40),
            lain_testkit::process::tail(self.webrouter.proc.log(), 20),
        );
    }
}

/// A self-signed P-256 certificate at `cert` and its PKCS#8 key at `key`
/// (made by openssl), naming `dns` in its subjectAltName when given.
pub fn self_signed(key: &Path, cert: &Path, cn: &str, dns: Option<&str>) {
    let mut cmd = Command::new("openssl");
    cmd.args([
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
    ])
    .args(["-nodes", "-days", "30", "-subj", &format!("/CN={cn}")]);
    if let Some(d) = dns {
        cmd.args(["-addext", &format!("subjectAltName=DNS:{d}")]);
    }
    cmd.arg("-keyout")
        .arg(key)
        .arg("-out")
        .arg(cert)
        .stderr(Stdio::null());
    run_ok(&mut cmd);
}

/// The secret `sso client add` printed for a confidential client.
fn secret_of(out: &str) -> String {
    out.lines()
        .find_map(|l| l.strip_prefix("client_secret="))
        .expect("a client secret")
        .trim()
        .to_owned()
}

/// A fresh cluster secrets key (32 random bytes, base64).
fn lain_store_key() -> String {
    use base64::Engine as _;
    let mut bytes = [0u8; 32];
    let mut f = std::fs::File::open("/dev/urandom").unwrap();
    std::io::Read::read_exact(&mut f, &mut bytes).unwrap();
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// `lain login` through the device flow, approved on sso's page by
/// `user` as a browser would.
pub fn device_login(c: &TestCluster, profile: &str, user: &str) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_lain"))
        .args(["login", "--no-browser"])
        .current_dir(c.home.path())
        .env("LAIN_CONFIG_DIR", c.home.path().join(profile))
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut err = BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    while !line.contains("enter the code") {
        line.clear();
        assert!(
            err.read_line(&mut line).unwrap() > 0,
            "lain login said nothing"
        );
    }
    // "To log in, open URL and enter the code CODE"
    let words: Vec<&str> = line.split_whitespace().collect();
    let uri = words[words.iter().position(|w| *w == "open").unwrap() + 1];
    let code = words.last().unwrap().to_owned();
    assert!(uri.starts_with(&c.sso.url()), "{line}");
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let browser = reqwest::Client::builder()
            .cookie_store(true)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        let page = browser
            .get(format!("{uri}?user_code={code}"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let mut form = lain_testkit::html::hidden_fields(&page);
        form.retain(|(k, _)| k != "user_code");
        for (k, v) in [
            ("user_code", code),
            ("confirm_code", "yes"),
            ("username", user),
            ("password", PASSWORD),
            ("action", "approve"),
        ] {
            form.push((k.into(), v.into()));
        }
        let r = browser
            .post(format!("{}/device", c.sso.url()))
            .form(&form)
            .send()
            .await
            .unwrap();
        let body = r.text().await.unwrap();
        assert!(body.contains("Device approved"), "{body}");
    });
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "login: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("Logged in to `") && stdout.contains(&format!("` as {user}")),
        "{stdout}"
    );
}

/// A git repo with the example app at release `n`: a prepare step (its
/// own cached image), a build script that writes the site, and a release
/// image made of busybox plus the copied site.
pub fn write_app(dir: &std::path::Path, n: u32) {
    write_app_with(dir, n, 1)
}

/// [`write_app`] with `instances` web instances.
pub fn write_app_with(dir: &std::path::Path, n: u32, instances: u32) {
    let base = lain_testkit::image::BASE_IMAGE;
    std::fs::create_dir_all(dir.join("www")).unwrap();
    std::fs::write(
        dir.join("lain.yaml"),
        format!(
            "appname: hello\n\
             build:\n  base: {base}\n  prepare:\n    version: \"1\"\n    script:\n      \
             - mkdir -p /opt/deps && echo prepared > /opt/deps/marker\n  script:\n    \
             - mkdir -p out && cp www/index.html out/ && cat /opt/deps/marker >> out/index.html\n\
             release:\n  dest_base: {base}\n  copy:\n    - src: out\n      dest: /www\n\
             web:\n  cmd: [\"sh\", \"-c\", \"echo web-started; exec httpd -f -v -p 8080 -h /www\"]\n  \
             port: 8080\n  memory: 32m\n  num_instances: {instances}\n  healthcheck: /index.html\n"
        ),
    )
    .unwrap();
    std::fs::write(dir.join("www/index.html"), format!("hello v{n}\n")).unwrap();
    let git = |args: &[&str]| {
        let out = Command::new("git")
            .args(args)
            .current_dir(dir)
            .env("GIT_AUTHOR_NAME", "dev")
            .env("GIT_AUTHOR_EMAIL", "dev@example.com")
            .env("GIT_COMMITTER_NAME", "dev")
            .env("GIT_COMMITTER_EMAIL", "dev@example.com")
            .env("GIT_COMMITTER_DATE", format!("2026-01-0{n}T00:00:00Z"))
            .env("GIT_AUTHOR_DATE", format!("2026-01-0{n}T00:00:00Z"))
            .output()
            .unwrap();
        assert!(out.status.success(), "git {args:?}: {out:?}");
    };
    if n == 1 {
        git(&["init", "-q"]);
    }
    git(&["add", "-A"]);
    git(&["commit", "-q", "-m", &format!("v{n}")]);
}
