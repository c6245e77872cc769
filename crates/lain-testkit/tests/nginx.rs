//! nginx: serves a configured location, `test_config` rejects a broken
//! config with nginx's own message, `reload` applies a new config, and two
//! instances run side by side without sharing files.

use lain_testkit::{http, Nginx, NginxConfig};

const HELLO: &str = "server {
    listen {listen};
    location = /hello { return 200 'hello from nginx'; }
}";

#[test]
fn nginx_serves_checks_and_reloads() {
    let mut nginx = Nginx::start(HELLO).expect("nginx starts");
    let (code, body) = http::get(nginx.addr(), "test", "/hello").expect("nginx answers");
    assert_eq!((code, body.as_str()), (200, "hello from nginx"));
    assert_eq!(
        http::get(nginx.addr(), "test", "/bye").map(|r| r.0),
        Some(404)
    );

    // A broken file is refused with nginx's message, and nothing changes.
    let broken = nginx
        .write_conf(
            "broken",
            "server { listen {listen}; location / { retrun 200; } }",
        )
        .expect("write");
    let err = nginx
        .test_config()
        .expect_err("broken config is refused")
        .to_string();
    assert!(
        err.contains("retrun") && err.contains("broken.conf"),
        "{err}"
    );
    let err = nginx
        .reload()
        .expect_err("reload refuses it too")
        .to_string();
    assert!(err.contains("retrun"), "{err}");
    assert_eq!(
        http::get(nginx.addr(), "test", "/hello").map(|r| r.0),
        Some(200),
        "the old config still serves"
    );
    std::fs::remove_file(broken).expect("remove broken");
    nginx.test_config().expect("valid again");

    // A new location goes live on reload.
    nginx
        .write_conf(
            "main",
            "server {
                listen {listen};
                location = /hello { return 200 'hello again'; }
                location = /bye { return 200 'bye'; }
            }",
        )
        .expect("write");
    nginx.reload().expect("reload");
    assert_eq!(
        http::get(nginx.addr(), "test", "/hello"),
        Some((200, "hello again".to_owned()))
    );
    assert_eq!(
        http::get(nginx.addr(), "test", "/bye"),
        Some((200, "bye".to_owned()))
    );
    assert!(nginx.access_log().exists());
    assert!(std::fs::read_to_string(nginx.access_log())
        .unwrap_or_default()
        .contains("/bye"));
}

#[test]
fn two_instances_with_http_extensions_run_side_by_side() {
    let cfg = |tag: &str| NginxConfig {
        http: format!("add_header X-Kit {tag};"),
        servers: format!(
            "server {{ listen {{listen}}; location / {{ return 200 '{tag} at {{prefix}}'; }} }}"
        ),
        ..NginxConfig::default()
    };
    let a = Nginx::start_with(cfg("a")).expect("nginx a");
    let b = Nginx::start_with(cfg("b")).expect("nginx b");
    assert_ne!(a.port(), b.port());
    assert_ne!(a.prefix(), b.prefix());
    let (_, body_a) = http::get(a.addr(), "test", "/").expect("a answers");
    let (_, body_b) = http::get(b.addr(), "test", "/").expect("b answers");
    assert_eq!(body_a, format!("a at {}", a.prefix().display()));
    assert_eq!(body_b, format!("b at {}", b.prefix().display()));
    let pid = a.pid().expect("pid");
    drop(a);
    assert!(
        !std::path::Path::new(&format!("/proc/{pid}/cmdline")).exists()
            || !std::fs::read_to_string(format!("/proc/{pid}/cmdline"))
                .unwrap_or_default()
                .contains("nginx")
    );
}
