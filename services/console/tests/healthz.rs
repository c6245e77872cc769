//! Spawns the real `console` binary with a generated config and checks `/healthz`.

#[test]
fn serves_healthz_and_stops_on_sigterm() {
    lain_testkit::daemon::check_healthz_daemon("console", env!("CARGO_BIN_EXE_console"));
}
