//! A TLS Docker endpoint (the production setup): a real dockerd with
//! `--tlsverify` on loopback and certificates made with openssl. deployd's
//! engine client pings it and reads its version with the right client
//! certificate, and fails (a miss, not a hang) with a foreign CA.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use deployd::docker::Engine;
use lain_store::{DockerEndpoint, DockerTls};
use lain_testkit::{free_port, Bridge, Dockerd, DockerdOptions, ServerDir};

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .current_dir(dir)
        .args(args)
        .output()
        .expect("run openssl");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A CA, and a certificate signed by it with the given extensions.
fn make_ca(dir: &Path, name: &str) {
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            &format!("{name}.key"),
            "-out",
            &format!("{name}.pem"),
            "-days",
            "1",
            "-subj",
            &format!("/CN={name}"),
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        ],
    );
}

fn make_cert(dir: &Path, ca: &str, name: &str, ext: &str) {
    openssl(
        dir,
        &[
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            &format!("{name}.key"),
            "-out",
            &format!("{name}.csr"),
            "-subj",
            &format!("/CN={name}"),
        ],
    );
    std::fs::write(dir.join(format!("{name}.ext")), ext).expect("write ext");
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            &format!("{name}.csr"),
            "-CA",
            &format!("{ca}.pem"),
            "-CAkey",
            &format!("{ca}.key"),
            "-CAcreateserial",
            "-out",
            &format!("{name}.pem"),
            "-days",
            "1",
            "-extfile",
            &format!("{name}.ext"),
        ],
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pings_a_tls_engine_with_client_certificates() {
    let certs = ServerDir::new("deployd-tls").expect("dir");
    let dir = certs.path();
    make_ca(dir, "ca");
    make_cert(
        dir,
        "ca",
        "server",
        "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\nbasicConstraints=CA:FALSE\n",
    );
    make_cert(
        dir,
        "ca",
        "client",
        "extendedKeyUsage=clientAuth\nbasicConstraints=CA:FALSE\n",
    );
    make_ca(dir, "other");
    let path = |f: &str| dir.join(f).display().to_string();

    let port = free_port();
    let engine = tokio::task::block_in_place(|| {
        Dockerd::start_with(
            DockerdOptions::default()
                .bridge(Bridge::None)
                .arg("--tlsverify")
                .arg(format!("--tlscacert={}", path("ca.pem")))
                .arg(format!("--tlscert={}", path("server.pem")))
                .arg(format!("--tlskey={}", path("server.key")))
                .arg(format!("--host=tcp://127.0.0.1:{port}")),
        )
        .expect("start dockerd with TLS")
    });

    let endpoint = |ca: &str| DockerEndpoint::Tcp {
        address: format!("127.0.0.1:{port}"),
        tls: Some(DockerTls {
            ca_cert: path(ca),
            client_cert: path("client.pem"),
            client_key: path("client.key"),
        }),
    };
    let timeout = Duration::from_millis(800);
    let client = Engine::connect(&endpoint("ca.pem"), timeout).expect("TLS client");
    client.ping(timeout).await.expect("TLS ping");
    let version = client.version(timeout).await.expect("version");
    assert!(version.is_some_and(|v| !v.is_empty()));

    // A server certificate from a CA we do not trust: refused, promptly.
    let foreign = Engine::connect(&endpoint("other.pem"), timeout).expect("TLS client");
    let started = std::time::Instant::now();
    let e = foreign
        .ping(timeout)
        .await
        .expect_err("untrusted server accepted");
    assert!(started.elapsed() <= timeout + Duration::from_millis(200));
    assert!(e.to_string().contains(&format!("127.0.0.1:{port}")), "{e}");
    drop(engine);
}
