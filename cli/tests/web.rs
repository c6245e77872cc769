//! The web console in a real browser: Debian's headless Chromium driven
//! over WebDriver (chromedriver) against a whole cluster of real servers
//! (tests/common). A maintainer signs in through sso's page, opens the
//! app, scales it and watches the new instance turn healthy without a
//! reload (SSE), deploys a release and rolls back (the router serves
//! each), reads a live log; a non-maintainer sees the app read-only and a
//! crafted form post of theirs is refused, changes nothing and is
//! audited; an admin cordons and uncordons the node and filters the
//! audit log. The main pages are saved as screenshots in docs/screenshots
//! (a phone-width one too), and an accessibility sweep checks labels,
//! headings, button names and chart titles on each.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::{write_app, TestCluster};
use fantoccini::{Client, ClientBuilder, Locator};
use lain_testkit::process::{Logged, ServerDir};
use serde_json::{json, Value};

const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const CHROMIUM: &str = "/usr/bin/chromium";
/// The longest any page state is waited for (a rollout included).
const WAIT: Duration = Duration::from_secs(90);

/// chromedriver and the Chromium it drives. [`Browser::close`] ends the
/// session; dropping it (also when the test fails half-way) kills
/// chromedriver and every process using this test's profile, and waits
/// for them before the profile goes.
struct Browser {
    c: Client,
    /// Where the screenshots go: docs/screenshots with
    /// `LAIN_SCREENSHOTS=1`, else the test's kept directory.
    shots: PathBuf,
    profile: tempfile::TempDir,
    _driver: Logged,
}

impl Drop for Browser {
    fn drop(&mut self) {
        // Chromium is chromedriver's child and outlives it.
        let pids: Vec<u32> =
            lain_testkit::sys::processes_mentioning(&self.profile.path().display().to_string())
                .into_iter()
                .map(|p| p.pid)
                .collect();
        let left = lain_testkit::sys::kill_pids(&pids, Duration::from_secs(10));
        assert!(
            left.is_empty() || std::thread::panicking(),
            "browser processes left: {left:?}"
        );
    }
}

impl Browser {
    async fn start(dir: &ServerDir) -> Browser {
        assert!(
            Path::new(CHROMEDRIVER).exists() && Path::new(CHROMIUM).exists(),
            "this test needs Debian's chromium and chromium-driver (scripts/test installs them)"
        );
        let port = lain_testkit::free_port();
        let mut cmd = Command::new(CHROMEDRIVER);
        cmd.arg(format!("--port={port}"));
        let mut driver = Logged::spawn("chromedriver", cmd, &dir.log_path("chromedriver")).unwrap();
        let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
        // chromedriver keeps connections open, so ask with a real client.
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(2))
            .build()
            .unwrap();
        let mut ready = false;
        for _ in 0..150 {
            assert!(
                driver.is_running(),
                "chromedriver exited:\n{}",
                driver.log_tail()
            );
            if let Ok(r) = http.get(format!("http://{addr}/status")).send().await {
                if r.json::<Value>()
                    .await
                    .is_ok_and(|v| v["value"]["ready"] == json!(true))
                {
                    ready = true;
                    break;
                }
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        assert!(
            ready,
            "chromedriver did not start: see {}",
            dir.log_path("chromedriver").display()
        );
        let profile = tempfile::tempdir().unwrap();
        let caps = json!({
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": CHROMIUM,
                "args": [
                    "--headless", "--no-sandbox", "--disable-gpu",
                    "--disable-background-networking", "--disable-component-update",
                    "--disable-sync", "--disable-dev-shm-usage", "--no-first-run",
                    "--window-size=1280,900",
                    format!("--user-data-dir={}", profile.path().display()),
                ]
            }
        });
        let caps = caps.as_object().unwrap().clone();
        let c = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(caps)
            .connect(&format!("http://{addr}"))
            .await
            .expect("a browser session");
        let shots = if std::env::var_os("LAIN_SCREENSHOTS").is_some_and(|v| v == "1") {
            screenshots()
        } else {
            dir.path().join("screenshots")
        };
        std::fs::create_dir_all(&shots).unwrap();
        Browser {
            c,
            shots,
            profile,
            _driver: driver,
        }
    }

    fn c(&self) -> &Client {
        &self.c
    }

    /// Ends the WebDriver session (Chromium exits).
    async fn close(&self) {
        self.c
            .clone()
            .close()
            .await
            .expect("close the browser session");
    }

    /// Clicks the element, once it is there.
    async fn click(&self, css: &str) {
        self.wait_for(css).await.click().await.unwrap();
    }

    /// Waits until the browser is at a URL containing `part`.
    async fn wait_url(&self, part: &str) {
        let end = std::time::Instant::now() + WAIT;
        while !self.url().await.contains(part) {
            assert!(
                std::time::Instant::now() < end,
                "not at {part} within {WAIT:?}, but at {}",
                self.url().await
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn goto(&self, url: &str) {
        self.c()
            .goto(url)
            .await
            .unwrap_or_else(|e| panic!("goto {url}: {e}"));
    }

    /// Waits for an element (never a fixed sleep); on timeout the page
    /// source is in the panic.
    async fn wait_for(&self, css: &str) -> fantoccini::elements::Element {
        match self
            .c()
            .wait()
            .at_most(WAIT)
            .for_element(Locator::Css(css))
            .await
        {
            Ok(e) => e,
            Err(e) => {
                let src = self.c().source().await.unwrap_or_default();
                panic!("no `{css}` within {WAIT:?}: {e}\n--- page ---\n{src}");
            }
        }
    }

    async fn text(&self) -> String {
        self.c()
            .find(Locator::Css("body"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    async fn js(&self, script: &str) -> Value {
        self.c().execute(script, Vec::new()).await.unwrap()
    }

    async fn url(&self) -> String {
        self.c().current_url().await.unwrap().to_string()
    }

    async fn shot(&self, name: &str) {
        let png = self.c().screenshot().await.unwrap();
        std::fs::write(self.shots.join(format!("{name}.png")), png).unwrap();
    }

    /// Signs in on sso's page as `user` (the browser is there).
    async fn sso_login(&self, sso: &str, user: &str) {
        let url = self.url().await;
        assert!(url.starts_with(sso), "at sso's sign-in page, not {url}");
        self.wait_for("#username")
            .await
            .send_keys(user)
            .await
            .unwrap();
        self.c()
            .find(Locator::Css("#password"))
            .await
            .unwrap()
            .send_keys(common::PASSWORD)
            .await
            .unwrap();
        self.click("button[type=submit]").await;
    }

    /// Confirms the action on a confirmation page with the keyboard only:
    /// the page puts focus on its question; Tab reaches the button, Enter
    /// presses it.
    async fn confirm(&self) {
        self.wait_for("button[data-confirm]").await;
        // The page's script runs once the page is parsed.
        let end = std::time::Instant::now() + WAIT;
        while self.js("return document.activeElement.id").await != json!("confirm-h") {
            assert!(
                std::time::Instant::now() < end,
                "focus is not on the question"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let focused = self.c().active_element().await.unwrap();
        focused.send_keys("\u{E004}").await.unwrap();
        let button = self.c().active_element().await.unwrap();
        assert_eq!(
            button.attr("data-confirm").await.unwrap().as_deref(),
            Some(""),
            "Tab from the question reaches the confirm button"
        );
        button.send_keys("\u{E007}").await.unwrap();
    }

    /// Signs out; the browser ends on the signed-out page (sso sends it
    /// back there).
    async fn sign_out(&self) {
        self.click("form.who button").await;
        self.wait_url("/ui/logged-out").await;
    }

    /// The page's accessibility basics: a language, one h1, a label for
    /// every visible field, a name on every button, a title in every
    /// chart, and no horizontal scrolling at the window's width.
    async fn a11y(&self, page: &str) {
        let r = self
            .js(
                r#"
                const problems = [];
                if (!document.documentElement.lang) problems.push("no html[lang]");
                const h1 = document.querySelectorAll("h1").length;
                if (h1 !== 1) problems.push(h1 + " h1 elements");
                for (const f of document.querySelectorAll("input:not([type=hidden]), select, textarea")) {
                    if (!f.labels || f.labels.length === 0) problems.push("unlabelled " + f.outerHTML);
                }
                for (const b of document.querySelectorAll("button")) {
                    if (!b.textContent.trim()) problems.push("unnamed button");
                }
                for (const s of document.querySelectorAll("svg[role=img]")) {
                    if (!s.querySelector("title")) problems.push("chart without title");
                }
                if (document.documentElement.scrollWidth > window.innerWidth + 1)
                    problems.push("scrolls sideways: " + document.documentElement.scrollWidth + " > " + window.innerWidth);
                return problems;
                "#,
            )
            .await;
        assert_eq!(r, json!([]), "accessibility of {page}");
    }
}

fn screenshots() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/screenshots")
}

#[test]
fn web_console_in_a_browser() {
    let c = TestCluster::start();
    c.admin_with_node("e2e");
    let home = c.home.path();

    // Two releases of hello; v1 deployed; alice maintains it.
    let app = tempfile::tempdir().unwrap();
    let dir = app.path();
    write_app(dir, 1);
    c.ok(dir, &["app", "create", "hello"]);
    c.ok(dir, &["build"]);
    c.ok(dir, &["push"]);
    write_app(dir, 2);
    c.ok(dir, &["build"]);
    c.ok(dir, &["push"]);
    let list: Value = serde_json::from_str(&c.ok(dir, &["releases", "-o", "json"])).unwrap();
    let mut versions: Vec<String> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["version"].as_str().unwrap().to_owned())
        .collect();
    versions.sort();
    let (v1, v2) = (versions[0].clone(), versions[1].clone());
    c.ok(dir, &["deploy", "--version", &v1]);
    c.ok(home, &["maintainer", "add", "hello", "alice"]);
    let serves = |want: &str| {
        c.through_router("hello.lain.local", "/index.html")
            .is_some_and(|(code, body)| code == 200 && body.contains(want))
    };
    c.wait("v1 through the router", Duration::from_secs(30), || {
        serves("hello v1")
    });

    let console = c.console.url();
    let sso = c.sso.url();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let logs = ServerDir::new("e2e-browser").unwrap();
    rt.block_on(async {
        let b = Browser::start(&logs).await;

        // alice signs in: /ui/ sends her to sso, and sso back.
        b.goto(&format!("{console}/ui/")).await;
        b.wait_for("#username").await;
        b.shot("login").await;
        b.sso_login(&sso, "alice").await;
        let row = b.wait_for("tr[data-app='hello']").await;
        assert!(b.url().await.starts_with(&format!("{console}/ui/")));
        assert!(
            row.text().await.unwrap().contains("healthy"),
            "{}",
            b.text().await
        );
        b.shot("apps").await;
        b.a11y("apps").await;

        // The app: one healthy instance, actions offered.
        row.find(Locator::Css("a"))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
        b.wait_for("#procs tr[data-instance='1'][data-health='healthy']")
            .await;
        let page = b.text().await;
        assert!(!page.contains("read-only"), "{page}");
        assert!(
            page.contains("Secrets") && page.contains("Maintainers"),
            "{page}"
        );
        b.a11y("app").await;

        // Scale web to 2: confirm (with the keyboard), then the
        // deployment page follows it live until it succeeds, and the new
        // instance turns healthy without a reload.
        let field = b.wait_for("#scale-web").await;
        field.clear().await.unwrap();
        field.send_keys("2").await.unwrap();
        b.click("form[action$='/procs/web/scale'] button").await;
        b.wait_for("button[data-confirm]").await;
        assert!(b.text().await.contains("web: 1 → 2 instances"));
        b.shot("confirm").await;
        b.a11y("confirm").await;
        b.confirm().await;
        b.wait_for("[data-outcome='succeeded']").await;
        b.wait_for("#procs tr[data-instance='2'][data-health='healthy']")
            .await;
        // The stream sends the tables at once, then on each change: more
        // than one update means the page followed the rollout live.
        let updates: Value = b
            .js("return Number(document.querySelector('#procs').dataset.updates || 0)")
            .await;
        assert!(
            updates.as_u64().is_some_and(|n| n >= 2),
            "the procs were updated over SSE: {updates}"
        );
        b.shot("deployment").await;
        b.a11y("deployment").await;

        // Deploy v2 from the releases page; the router serves it.
        b.goto(&format!("{console}/ui/apps/hello/releases")).await;
        b.click(&format!("tr[data-release='{v2}'] a[data-action='deploy']"))
            .await;
        b.confirm().await;
        b.wait_for("[data-outcome='succeeded']").await;
        c.wait("v2 through the router", Duration::from_secs(30), || {
            serves("hello v2")
        });

        // Roll back to v1.
        b.goto(&format!("{console}/ui/apps/hello/releases")).await;
        b.wait_for(&format!("tr[data-release='{v2}'].current"))
            .await;
        b.shot("releases").await;
        b.a11y("releases").await;
        b.click(&format!(
            "tr[data-release='{v1}'] a[data-action='rollback']"
        ))
        .await;
        b.confirm().await;
        b.wait_for("[data-outcome='succeeded']").await;
        c.wait(
            "v1 again through the router",
            Duration::from_secs(30),
            || serves("hello v1"),
        );

        // A live log of web: the container's first line arrives.
        b.goto(&format!("{console}/ui/apps/hello/procs/web/logs"))
            .await;
        let first = b
            .c()
            .wait()
            .at_most(WAIT)
            .for_element(Locator::XPath(
                "//*[@data-log]/*[contains(., 'web-started')]",
            ))
            .await;
        assert!(
            first.is_ok(),
            "web-started in the live log: {}",
            b.text().await
        );
        b.shot("logs").await;
        b.a11y("logs").await;

        // alice's view of her app's audit log names what she did here.
        b.goto(&format!("{console}/ui/audit?app=hello&action=scale"))
            .await;
        let entry = b.wait_for("tr[data-action='scale']").await;
        let t = entry.text().await.unwrap();
        assert!(t.contains("alice") && t.contains("\"via\":\"web\""), "{t}");

        // Signing out ends the session: /ui/ asks for a sign-in again.
        b.sign_out().await;
        assert!(
            b.url().await.contains("/ui/logged-out"),
            "{}",
            b.url().await
        );
        b.goto(&format!("{console}/ui/")).await;
        b.wait_for("#username").await;
        assert!(b.url().await.starts_with(&sso));

        // bob maintains nothing: hello is read-only, with no forms, no
        // secrets and no logs; asking for the confirmation page is 403.
        b.sso_login(&sso, "bob").await;
        b.wait_url(&format!("{console}/ui/")).await;
        b.goto(&format!("{console}/ui/apps/hello")).await;
        b.wait_for("#procs tr[data-instance]").await;
        let page = b.text().await;
        assert!(page.contains("read-only"), "{page}");
        assert!(
            !page.contains("Secrets") && !page.contains("Logs"),
            "{page}"
        );
        let forms: Value = b
            .js("return document.querySelectorAll('main form').length")
            .await;
        assert_eq!(forms, json!(0), "no action forms for bob");
        b.goto(&format!(
            "{console}/ui/apps/hello/procs/web/scale?instances=5"
        ))
        .await;
        assert!(b.text().await.contains("Not allowed"));
        // A crafted post with bob's own session and form token: refused.
        b.goto(&format!("{console}/ui/apps/hello")).await;
        b.wait_for("h1").await;
        let desired = || {
            c.etcd
                .etcdctl(&["get", "/lain/desired/hello/web", "--print-value-only"])
                .unwrap()
        };
        let desired_before = desired();
        let status: Value = b
            .js(r#"
                const csrf = document.querySelector("input[name=csrf]").value;
                const x = new XMLHttpRequest();
                x.open("POST", "/ui/apps/hello/procs/web/scale", false);
                x.setRequestHeader("Content-Type", "application/x-www-form-urlencoded");
                x.send("instances=5&csrf=" + encodeURIComponent(csrf));
                return x.status;
                "#)
            .await;
        assert_eq!(status, json!(403));
        assert_eq!(desired(), desired_before, "nothing written");
        b.sign_out().await;

        // The admin: the cluster page, a cordon and an uncordon, and the
        // audit log filtered to the denied scale.
        b.goto(&format!("{console}/ui/cluster")).await;
        b.sso_login(&sso, "admin").await;
        let node = b.wait_for("tr[data-node='node-1']").await;
        assert!(node.text().await.unwrap().contains("alive"));
        b.shot("cluster").await;
        b.a11y("cluster").await;
        b.goto(&format!("{console}/ui/nodes/node-1/cordon")).await;
        b.confirm().await;
        b.wait_for("[role=status]").await;
        assert!(
            b.text().await.contains("Now cordoned"),
            "{}",
            b.text().await
        );
        b.goto(&format!("{console}/ui/cluster")).await;
        b.wait_for("tr[data-node='node-1'][data-flags='cordoned']")
            .await;
        b.goto(&format!("{console}/ui/nodes/node-1/uncordon")).await;
        b.confirm().await;
        b.wait_for("[role=status]").await;
        b.goto(&format!("{console}/ui/cluster")).await;
        b.wait_for("tr[data-node='node-1'][data-flags='schedulable']")
            .await;

        b.goto(&format!("{console}/ui/audit?action=scale&result=denied"))
            .await;
        let denied = b.wait_for("tr[data-action='scale']").await;
        let t = denied.text().await.unwrap();
        assert!(t.contains("bob") && t.contains("\"via\":\"web\""), "{t}");
        b.shot("audit").await;
        b.a11y("audit").await;

        // The app page on a phone: no sideways scrolling.
        b.goto(&format!("{console}/ui/apps/hello")).await;
        b.wait_for("#procs tr[data-instance]").await;
        b.shot("app").await;
        b.c().set_window_size(390, 844).await.unwrap();
        b.goto(&format!("{console}/ui/apps/hello")).await;
        b.wait_for("#procs tr[data-instance]").await;
        b.a11y("app on a phone").await;
        b.shot("app-phone").await;
        // By now the sampler has counted hello's instances: its charts.
        let charts: Value = b
            .js("return document.querySelectorAll('svg[role=img]').length")
            .await;
        assert_eq!(charts, json!(2), "the instances and restarts charts");
        b.close().await;
    });
}
