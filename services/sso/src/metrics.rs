//! Counters served at `/metrics` in the Prometheus text format.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};

macro_rules! counters {
    ($($field:ident => $name:literal, $help:literal, $labels:literal;)*) => {
        /// Process-wide counters.
        #[derive(Debug, Default)]
        pub struct Metrics { $(pub $field: AtomicU64,)* }

        impl Metrics {
            /// The exposition text, with `extra` gauges appended.
            pub fn render(&self, extra: &[(&str, &str, i64)]) -> String {
                let mut s = String::new();
                let mut seen = std::collections::HashSet::new();
                $(
                    if seen.insert($name) {
                        let _ = writeln!(s, "# HELP {} {}\n# TYPE {} counter", $name, $help, $name);
                    }
                    let _ = writeln!(s, "{}{} {}", $name, $labels, self.$field.load(Ordering::Relaxed));
                )*
                for (name, help, v) in extra {
                    let _ = writeln!(s, "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {v}");
                }
                s
            }
        }
    };
}

counters! {
    tokens_authorization_code => "sso_tokens_issued_total", "Token responses issued, by grant type.", "{grant_type=\"authorization_code\"}";
    tokens_refresh => "sso_tokens_issued_total", "Token responses issued, by grant type.", "{grant_type=\"refresh_token\"}";
    tokens_client_credentials => "sso_tokens_issued_total", "Token responses issued, by grant type.", "{grant_type=\"client_credentials\"}";
    tokens_device => "sso_tokens_issued_total", "Token responses issued, by grant type.", "{grant_type=\"device_code\"}";
    token_errors => "sso_token_errors_total", "Token endpoint requests refused.", "";
    logins_ok => "sso_logins_total", "Password logins, by result.", "{result=\"success\"}";
    logins_failed => "sso_logins_total", "Password logins, by result.", "{result=\"failure\"}";
    logins_locked => "sso_logins_total", "Password logins, by result.", "{result=\"locked\"}";
    lockouts => "sso_lockouts_total", "Times a user or address got locked out.", "";
    refresh_reuse => "sso_refresh_token_reuse_total", "Reused refresh tokens or codes detected (their grant was revoked).", "";
    revocations => "sso_revocations_total", "Grants revoked through the revocation endpoint.", "";
}

impl Metrics {
    pub fn inc(c: &AtomicU64) {
        c.fetch_add(1, Ordering::Relaxed);
    }
}
