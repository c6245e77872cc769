//! Spawns the real `sso` binary with a generated config and checks `/healthz`.

#[test]
fn serves_healthz_and_stops_on_sigterm() {
    lain_testkit::daemon::check_healthz_daemon("sso", env!("CARGO_BIN_EXE_sso"));
}
