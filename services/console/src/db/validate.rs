//! The rules for names and values the repositories store. Each check
//! returns [`DbError::Invalid`] saying what would be valid; none quotes a
//! secret value.

use super::DbError;

/// Largest lain.yaml a release stores.
pub const MAX_LAIN_YAML_BYTES: usize = 256 * 1024;
/// Largest secret value.
pub const MAX_SECRET_BYTES: usize = 64 * 1024;
/// Largest secret name.
pub const MAX_SECRET_NAME: usize = 128;
/// Largest app name (a DNS label once reversed into the app domain).
pub const MAX_APP_NAME: usize = 63;
/// Largest subject (user or client id as sso names it).
pub const MAX_SUBJECT: usize = 255;
/// Largest git URL, image reference, error text and audit target.
pub const MAX_TEXT: usize = 1024;
/// Largest serialized audit detail or deployment snapshot part.
pub const MAX_DETAIL_BYTES: usize = 16 * 1024;
/// Largest desired-state snapshot of a deployment.
pub const MAX_DESIRED_BYTES: usize = 1024 * 1024;

pub use lain_spec::RESERVED_APPNAMES;

const NAME_RULE: &str = "a letter, then letters and digits, with single dashes between them \
                         ([a-zA-Z][a-zA-Z0-9]*(-[a-zA-Z0-9]+)*)";

/// Quotes at most 64 characters of user input in a message.
pub(crate) fn short(s: &str) -> String {
    let mut out: String = s.chars().take(64).collect();
    if out.len() < s.len() {
        out.push('…');
    }
    out.escape_debug().to_string()
}

/// `[a-zA-Z][a-zA-Z0-9]*(-[a-zA-Z0-9]+)*`, the lain.yaml name rule (apps,
/// procs), from lain-spec.
pub use lain_spec::is_core_name;

/// An app name as lain.yaml's `appname` allows it.
pub fn app_name(name: &str) -> Result<(), DbError> {
    // A resource instance (`resource.RES.CLIENT`), made by console when
    // the client deploys; the API does not let anyone create one.
    if lain_spec::is_instance_name(name) && name.len() <= 2 * MAX_APP_NAME + 10 {
        return Ok(());
    }
    if !is_core_name(name) {
        return Err(DbError::invalid(
            "app name",
            format!("`{}` is not a valid app name: use {NAME_RULE}", short(name)),
        ));
    }
    if name.len() > MAX_APP_NAME {
        return Err(DbError::invalid(
            "app name",
            format!(
                "`{}` is {} characters long; at most {MAX_APP_NAME} are allowed",
                short(name),
                name.len()
            ),
        ));
    }
    if RESERVED_APPNAMES.contains(&name.to_ascii_lowercase().as_str()) {
        return Err(DbError::invalid(
            "app name",
            format!("`{name}` is reserved by LAIN (service, resource and portal are): choose another name"),
        ));
    }
    Ok(())
}

/// A proc name (`web`, `worker.NAME`, ... as their full names use it: the
/// core rule, optionally `TYPE.NAME`).
pub fn proc_name(name: &str) -> Result<(), DbError> {
    let ok = name.len() <= MAX_APP_NAME
        && name.split('.').count() <= 2
        && name.split('.').all(is_core_name);
    if ok {
        Ok(())
    } else {
        Err(DbError::invalid(
            "proc name",
            format!(
                "`{}` is not a proc name: use {NAME_RULE}, optionally TYPE.NAME",
                short(name)
            ),
        ))
    }
}

/// A secret name: `[A-Za-z0-9_.-]{1,128}`.
pub fn secret_name(name: &str) -> Result<(), DbError> {
    if name.is_empty() || name.len() > MAX_SECRET_NAME {
        return Err(DbError::invalid(
            "secret name",
            format!(
                "`{}` is {} characters long; use 1 to {MAX_SECRET_NAME} of A-Z a-z 0-9 _ . -",
                short(name),
                name.len()
            ),
        ));
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-')))
    {
        return Err(DbError::invalid(
            "secret name",
            format!(
                "`{}` contains {c:?}; use only A-Z a-z 0-9 _ . -",
                short(name)
            ),
        ));
    }
    if name == "." || name == ".." {
        return Err(DbError::invalid(
            "secret name",
            format!("`{name}` is not a usable name; use a name with a letter or digit"),
        ));
    }
    Ok(())
}

/// A secret value's size (the value itself is never quoted).
pub fn secret_value(value: &[u8]) -> Result<(), DbError> {
    if value.len() > MAX_SECRET_BYTES {
        return Err(DbError::TooLarge {
            what: "the secret value",
            size: value.len(),
            max: MAX_SECRET_BYTES,
        });
    }
    Ok(())
}

/// A release version: `<commit unix time>-<40 hex sha>`. Returns the
/// commit time.
pub fn release_version(version: &str) -> Result<i64, DbError> {
    let bad = || {
        DbError::invalid(
            "release version",
            format!(
                "`{}` is not `<commit unix time>-<full 40-hex git sha>` \
                 (e.g. 1700000000-0123456789abcdef0123456789abcdef01234567)",
                short(version)
            ),
        )
    };
    let (time, sha) = version.split_once('-').ok_or_else(bad)?;
    if time.is_empty()
        || time.len() > 12
        || !time.bytes().all(|b| b.is_ascii_digit())
        || sha.len() != 40
        || !sha.bytes().all(|b| b.is_ascii_hexdigit())
    {
        return Err(bad());
    }
    time.parse().map_err(|_| bad())
}

/// An image digest: `sha256:<64 lowercase hex>`.
pub fn digest(d: &str) -> Result<(), DbError> {
    let ok = d.strip_prefix("sha256:").is_some_and(|h| {
        h.len() == 64
            && h.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    });
    if ok {
        Ok(())
    } else {
        Err(DbError::invalid(
            "image digest",
            format!(
                "`{}` is not `sha256:` and 64 lowercase hex digits",
                short(d)
            ),
        ))
    }
}

/// An image reference: printable, no spaces, at most [`MAX_TEXT`] bytes.
pub fn image(r: &str) -> Result<(), DbError> {
    if r.is_empty() || r.len() > MAX_TEXT || r.chars().any(|c| c.is_whitespace() || c.is_control())
    {
        return Err(DbError::invalid(
            "image",
            format!(
                "`{}` is not an image reference (REGISTRY/APP:TAG, no spaces, at most {MAX_TEXT} bytes)",
                short(r)
            ),
        ));
    }
    Ok(())
}

/// A lain.yaml's size and encoding (its content is lain-spec's to check).
pub fn lain_yaml(text: &str) -> Result<(), DbError> {
    if text.len() > MAX_LAIN_YAML_BYTES {
        return Err(DbError::TooLarge {
            what: "lain.yaml",
            size: text.len(),
            max: MAX_LAIN_YAML_BYTES,
        });
    }
    if text.contains('\0') {
        return Err(DbError::invalid("lain.yaml", "it contains a NUL byte"));
    }
    Ok(())
}

/// A subject (who did something): 1 to 255 printable characters.
pub fn subject(what: &'static str, s: &str) -> Result<(), DbError> {
    if s.is_empty() || s.len() > MAX_SUBJECT || s.chars().any(char::is_control) {
        return Err(DbError::invalid(
            what,
            format!(
                "`{}` is not a subject: use 1 to {MAX_SUBJECT} printable characters",
                short(s)
            ),
        ));
    }
    Ok(())
}

/// A git URL: printable, no spaces, at most [`MAX_TEXT`] bytes.
pub fn giturl(u: &str) -> Result<(), DbError> {
    if u.is_empty() || u.len() > MAX_TEXT || u.chars().any(|c| c.is_whitespace() || c.is_control())
    {
        return Err(DbError::invalid(
            "giturl",
            format!(
                "`{}` is not a git URL (no spaces, at most {MAX_TEXT} bytes); leave it out if there is none",
                short(u)
            ),
        ));
    }
    Ok(())
}

/// An audit action: `[a-z][a-z0-9_.-]*`, at most 64 bytes (e.g. `app.create`).
pub fn audit_action(a: &str) -> Result<(), DbError> {
    let ok = a.len() <= 64
        && a.starts_with(|c: char| c.is_ascii_lowercase())
        && a.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'_' | b'.' | b'-')
        });
    if ok {
        Ok(())
    } else {
        Err(DbError::invalid(
            "audit action",
            format!(
                "`{}` is not an action like `app.create`: use [a-z][a-z0-9_.-]*, at most 64 bytes",
                short(a)
            ),
        ))
    }
}

/// Cuts `s` to at most `max` bytes on a character boundary.
pub(crate) fn truncate(mut s: String, max: usize) -> String {
    if s.len() > max {
        let mut end = max;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn app_names() {
        for ok in ["hello", "a", "Hello-World2", "a1-b2-c3", "x-1"] {
            app_name(ok).unwrap_or_else(|e| panic!("{ok}: {e}"));
        }
        for bad in ["", "1app", "-a", "a-", "a--b", "a_b", "a.b", "héllo", "a b"] {
            let e = app_name(bad).unwrap_err().to_string();
            assert!(
                e.contains("[a-zA-Z][a-zA-Z0-9]*(-[a-zA-Z0-9]+)*"),
                "{bad}: {e}"
            );
        }
        for reserved in ["service", "resource", "portal", "Portal"] {
            let e = app_name(reserved).unwrap_err().to_string();
            assert!(e.contains("reserved"), "{e}");
        }
        assert!(app_name(&"a".repeat(64))
            .unwrap_err()
            .to_string()
            .contains("at most 63"));
        app_name(&"a".repeat(63)).unwrap();
    }

    #[test]
    fn proc_names() {
        for ok in ["web", "worker.mail", "web.admin-2"] {
            proc_name(ok).unwrap();
        }
        for bad in ["", "web.", ".web", "a.b.c", "web_1", "we b"] {
            assert!(proc_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn secret_names() {
        for ok in ["DB_PASSWORD", "tls.key", "a-b", "0", &"x".repeat(128)] {
            secret_name(ok).unwrap();
        }
        assert!(secret_name("")
            .unwrap_err()
            .to_string()
            .contains("1 to 128"));
        assert!(secret_name(&"x".repeat(129)).is_err());
        assert!(secret_name("a/b").unwrap_err().to_string().contains("'/'"));
        assert!(secret_name("a b").is_err());
        assert!(secret_name("ключ").is_err());
        assert!(secret_name("..").is_err());
    }

    #[test]
    fn secret_values_are_sized_never_quoted() {
        secret_value(&[]).unwrap();
        secret_value(&[b'x'; MAX_SECRET_BYTES]).unwrap();
        let e = secret_value(&[b'x'; MAX_SECRET_BYTES + 1])
            .unwrap_err()
            .to_string();
        assert!(e.contains("65537") && !e.contains("xxx"), "{e}");
    }

    #[test]
    fn versions_and_digests() {
        let sha = "0123456789abcdef0123456789ABCDEF01234567";
        assert_eq!(
            release_version(&format!("1700000000-{sha}")).unwrap(),
            1_700_000_000
        );
        for bad in [
            "",
            "1700000000",
            "-0123456789abcdef0123456789abcdef01234567",
            "17a0-0123456789abcdef0123456789abcdef01234567",
            "1700000000-0123456789abcdef",
            "1700000000-0123456789abcdef0123456789abcdef0123456g",
            "1700000000-0123456789abcdef0123456789abcdef012345678",
        ] {
            let e = release_version(bad).unwrap_err().to_string();
            assert!(
                e.contains("<commit unix time>-<full 40-hex git sha>"),
                "{bad}: {e}"
            );
        }
        digest(&format!("sha256:{}", "ab".repeat(32))).unwrap();
        for bad in [
            "",
            "sha256:",
            &format!("sha512:{}", "ab".repeat(32)),
            &format!("sha256:{}", "AB".repeat(32)),
            &format!("sha256:{}", "ab".repeat(31)),
        ] {
            assert!(digest(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn other_fields() {
        image("registry.lain.local/hello:release-1-abc").unwrap();
        assert!(image("").is_err());
        assert!(image("a b").is_err());
        lain_yaml("appname: hello\n").unwrap();
        assert!(matches!(
            lain_yaml(&"#".repeat(MAX_LAIN_YAML_BYTES + 1)),
            Err(DbError::TooLarge { .. })
        ));
        assert!(lain_yaml("a\0").is_err());
        subject("actor", "alice").unwrap();
        subject("actor", "client:deployd").unwrap();
        assert!(subject("actor", "").is_err());
        assert!(subject("actor", "a\nb").is_err());
        giturl("https://git.example.com/hello.git").unwrap();
        assert!(giturl("x y").is_err());
        audit_action("app.create").unwrap();
        audit_action("secret.set").unwrap();
        assert!(audit_action("App.create").is_err());
        assert!(audit_action("").is_err());
        assert!(audit_action("a b").is_err());
        assert_eq!(truncate("héllo".into(), 2), "h");
        assert_eq!(short(&"z".repeat(100)).chars().count(), 65);
    }
}
