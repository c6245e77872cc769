//! The kit's PostgreSQL: a real server from Debian's package.

use lain_testkit::Postgres;

#[test]
fn starts_serves_sql_and_isolates_databases() {
    let pg = Postgres::start().expect("postgres starts");
    assert_eq!(pg.psql("SELECT 40 + 2").expect("psql").trim(), "42");
    let a = pg.create_database().expect("db a");
    let b = pg.create_database().expect("db b");
    assert_ne!(a, b);
    assert!(a.starts_with("postgres://lain@127.0.0.1:"), "{a}");
    let dbs = pg
        .psql("SELECT count(*) FROM pg_database WHERE datname LIKE 'test_%'")
        .expect("psql");
    assert_eq!(dbs.trim(), "2");
    let data = pg.data_dir();
    assert!(data.join("PG_VERSION").is_file());
    let dir = pg.dir().to_owned();
    drop(pg);
    assert!(!dir.exists(), "state removed on drop");
}

#[test]
fn stops_even_with_a_client_connected() {
    let mut pg = Postgres::start().expect("postgres starts");
    // A client that holds its session open, as a test's pool would.
    let mut client = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!(
            "(echo 'SELECT 1;'; sleep 5) | psql -X -q -h 127.0.0.1 -p {} -U lain -d postgres",
            pg.port()
        ))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("psql client");
    std::thread::sleep(std::time::Duration::from_millis(500));
    let start = std::time::Instant::now();
    pg.stop();
    assert!(
        start.elapsed() < std::time::Duration::from_secs(9),
        "fast shutdown"
    );
    let _ = client.kill();
    let _ = client.wait();
}
