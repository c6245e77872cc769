//! Values LAIN derives from a lain.yaml: domains, mountpoints, paths, sizes.

/// Where the app lives in its image; relative paths are taken from here.
pub const APP_ROOT: &str = "/lain/app";
/// The internal domain suffix LAIN always adds to web procs.
pub const INTERNAL_DOMAIN: &str = "lain";

/// `{appdomain}`: the dot-separated parts of the appname, reversed.
///
/// A lain.yaml appname cannot contain dots (its pattern forbids them), so
/// for every app written by a user this is the appname itself: `foo-bar`
/// stays `foo-bar` (dashes are kept, not split). The reversal matters for
/// the resource instances LAIN generates, named `resource.{resource}.{client}`:
/// `resource.redis.hello` becomes `hello.redis.resource`.
pub fn app_domain(appname: &str) -> String {
    appname.rsplit('.').collect::<Vec<_>>().join(".")
}

/// The default domains of an app, as LAIN's `default_mountpoints`:
/// `{appdomain}.{domain}` for the cluster domain and then for each extra
/// domain (LAIN's cluster config `domains`), then `{appdomain}.lain` (the
/// cluster-internal name); without duplicates. Domains are taken
/// lowercased and without surrounding dots; empty ones are skipped. Check
/// them with [`domain_problem`] first: this function does not reject.
pub fn default_domains(
    appname: &str,
    cluster_domain: &str,
    extra_domains: &[String],
) -> Vec<String> {
    let app = app_domain(appname);
    let mut out: Vec<String> = Vec::with_capacity(2 + extra_domains.len());
    let domains = std::iter::once(cluster_domain)
        .chain(extra_domains.iter().map(String::as_str))
        .chain(std::iter::once(INTERNAL_DOMAIN));
    for d in domains {
        let d = tidy_domain(d);
        if d.is_empty() {
            continue;
        }
        let full = format!("{app}.{d}");
        if !out.contains(&full) {
            out.push(full);
        }
    }
    out
}

/// A cluster domain as [`default_domains`] uses it: trimmed, without
/// leading or trailing dots, lowercase.
pub fn tidy_domain(domain: &str) -> String {
    domain.trim().trim_matches('.').to_ascii_lowercase()
}

/// The full mountpoints of a web proc, as LAIN computes them:
/// - the proc named `web` also gets every default domain;
/// - an entry `/path` is replaced by `{domain}/path` for every default
///   domain, and a bare `/` (the root of the default domains) by the
///   default domains themselves (LAIN dropped it, which left a proc other
///   than `web` with no route; for `web` it changes nothing);
/// - other entries (`host` or `host/path`) are kept as written.
///
/// Entries are expected normalised by [`parse_mountpoint`]. Duplicates
/// are dropped, first occurrence wins.
pub fn expand_mountpoints(
    proc_name: &str,
    declared: &[String],
    defaults: &[String],
) -> Vec<String> {
    let declared: Vec<(String, ())> = declared.iter().map(|d| (d.clone(), ())).collect();
    expand_mountpoints_from(proc_name, &declared, defaults, ())
        .into_iter()
        .map(|(m, ())| m)
        .collect()
}

/// [`expand_mountpoints`], keeping with each result the origin of the
/// entry it came from (`default_origin` for the default domains of `web`).
pub(crate) fn expand_mountpoints_from<T: Clone>(
    proc_name: &str,
    declared: &[(String, T)],
    defaults: &[String],
    default_origin: T,
) -> Vec<(String, T)> {
    let mut all: Vec<(&str, T)> = declared
        .iter()
        .map(|(m, o)| (m.as_str(), o.clone()))
        .collect();
    if proc_name == "web" {
        for d in defaults {
            if !all.iter().any(|(m, _)| *m == d.as_str()) {
                all.push((d, default_origin.clone()));
            }
        }
    }
    let mut out: Vec<(String, T)> = Vec::new();
    let mut expanded: Vec<(String, T)> = Vec::new();
    for (mp, origin) in all {
        if mp.starts_with('/') {
            let path = mp.trim_end_matches('/');
            expanded.extend(
                defaults
                    .iter()
                    .map(|d| (format!("{d}{path}"), origin.clone())),
            );
        } else {
            out.push((mp.to_owned(), origin));
        }
    }
    out.extend(expanded);
    let mut seen = std::collections::HashSet::new();
    out.retain(|(m, _)| seen.insert(m.clone()));
    out
}

/// What a mountpoint may be, for messages.
pub const MOUNTPOINT_RULE: &str = "a mountpoint is `/path` (a path on the default domains) or \
     `host[/path]`: host a DNS name (letters, digits, `-` and `.`; labels of 1 to 63 characters, \
     253 in all) and path made of letters, digits and `-._~%/`";

/// What a URL path may be made of, for messages.
pub const PATH_RULE: &str = "an HTTP path is `/` followed by letters, digits and `-._~%/` \
     (`%` starting a percent-encoded byte such as `%20`), without `.` or `..` segments";

/// A mountpoint as the router will use it, or why it cannot be one.
///
/// `raw` is `/path` or `host[/path]`. The host must be a DNS name (see
/// [`domain_problem`]); uppercase is accepted and lowercased (`lowercased`
/// says so, for a warning). The path may only hold `[A-Za-z0-9._~%/-]`
/// (see [`path_problem`]); a trailing `/` is dropped, as LAIN's router
/// did (`a.com/` is `a.com`, `/api/` is `/api`). Everything that could
/// break out of an nginx `server_name` or `location` (whitespace, `;`,
/// `{`, `}`, `$`, `#`, quotes, `\`, control characters) is refused.
pub fn parse_mountpoint(raw: &str) -> Result<ParsedMountpoint, String> {
    if raw.is_empty() {
        return Err("a mountpoint cannot be empty".to_owned());
    }
    let (host, path) = match raw.find('/') {
        Some(i) => raw.split_at(i),
        None => (raw, ""),
    };
    let mut normalized = String::with_capacity(raw.len());
    let mut lowercased = false;
    if !host.is_empty() {
        let lower = host.to_ascii_lowercase();
        if let Some(p) = domain_problem(&lower) {
            return Err(format!("the host `{}` {p}", crate::yaml::short(host)));
        }
        lowercased = lower != host;
        normalized.push_str(&lower);
    }
    if !path.is_empty() {
        if let Some(p) = path_problem(path) {
            return Err(format!("the path `{}` {p}", crate::yaml::short(path)));
        }
        let trimmed = path.trim_end_matches('/');
        if trimmed.is_empty() && host.is_empty() {
            normalized.push('/');
        } else {
            normalized.push_str(trimmed);
        }
    }
    Ok(ParsedMountpoint {
        mountpoint: normalized,
        lowercased,
    })
}

/// The result of [`parse_mountpoint`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedMountpoint {
    /// Lowercase host, path without a trailing `/` (`/` stays `/`).
    pub mountpoint: String,
    /// The host was written with uppercase letters.
    pub lowercased: bool,
}

/// Why `name` is not a DNS name usable as an nginx `server_name`, or
/// `None`: lowercase letters, digits and `-` in dot-separated labels of 1
/// to 63 characters, not starting or ending with `-`, 253 characters in
/// all. Wildcards (`*.a.com`) are refused: LAIN never documented them and
/// one would catch every unrouted name under a domain. Lowercase the name
/// first if uppercase is to be accepted.
pub fn domain_problem(name: &str) -> Option<String> {
    if name.is_empty() {
        return Some("is empty".to_owned());
    }
    if name.starts_with("*.") {
        return Some(
            "is a wildcard: wildcard hosts (`*.`) are not supported, list each domain".to_owned(),
        );
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-' || *c == '.'))
    {
        let why = if c.is_ascii_uppercase() {
            " (write it in lowercase)".to_owned()
        } else if !c.is_ascii() && !c.is_control() && !c.is_whitespace() {
            ": write an internationalised domain in its ASCII form (`xn--...`)".to_owned()
        } else if c == ':' {
            ": a port cannot be given".to_owned()
        } else {
            String::new()
        };
        return Some(format!("contains {}{why}", describe_char(c)));
    }
    if name.len() > 253 {
        return Some(format!("is {} characters, longer than 253", name.len()));
    }
    for label in name.split('.') {
        if label.is_empty() {
            return Some(
                "has an empty label (two dots in a row, or a dot at the start or end)".to_owned(),
            );
        }
        if label.len() > 63 {
            return Some(format!(
                "has a label of {} characters, longer than 63",
                label.len()
            ));
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Some(format!(
                "has a label `{label}` that starts or ends with `-`"
            ));
        }
    }
    None
}

/// Why `path` is not a plain absolute URL path, or `None`: `/` then only
/// `[A-Za-z0-9._~%/-]`, `%` followed by two hex digits, no empty (`//`),
/// `.` or `..` segments (a trailing `/` is fine).
pub fn path_problem(path: &str) -> Option<String> {
    if !path.starts_with('/') {
        return Some("does not start with `/`".to_owned());
    }
    let bytes = path.as_bytes();
    for (i, c) in path.char_indices() {
        let ok = c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '~' | '%' | '/' | '-');
        if !ok {
            let why = match c {
                '?' => ": a query string is not supported",
                c if !c.is_ascii() && !c.is_control() && !c.is_whitespace() => {
                    ": percent-encode it (e.g. `%C3%A9` for `é`)"
                }
                _ => "",
            };
            return Some(format!("contains {}{why}", describe_char(c)));
        }
        if c == '%'
            && !(bytes.get(i + 1).is_some_and(u8::is_ascii_hexdigit)
                && bytes.get(i + 2).is_some_and(u8::is_ascii_hexdigit))
        {
            return Some(
                "has a `%` that is not followed by two hex digits: `%` must start a \
                         percent-encoded byte such as `%20`"
                    .to_owned(),
            );
        }
    }
    let segments: Vec<&str> = path[1..].split('/').collect();
    let last = segments.len() - 1;
    for (i, seg) in segments.iter().enumerate() {
        match *seg {
            "" if i < last => return Some("has an empty segment (`//`)".to_owned()),
            "." => return Some("has a `.` segment: write the path without it".to_owned()),
            ".." => {
                return Some(
                    "has a `..` segment, which would climb out of the path: write the path \
                     without it"
                        .to_owned(),
                )
            }
            _ => {}
        }
    }
    None
}

/// A character for a message: `;`, "a space", "a control character (U+000A)".
pub(crate) fn describe_char(c: char) -> String {
    match c {
        ' ' => "a space".to_owned(),
        '\t' => "a tab".to_owned(),
        c if c.is_control() => format!("a control character (U+{:04X})", u32::from(c)),
        c if c.is_whitespace() => format!("a space character (U+{:04X})", u32::from(c)),
        '`' => "a backquote".to_owned(),
        c => format!("`{c}`"),
    }
}

/// `os.path.normpath(os.path.join("/lain/app", path))`: where a volume or
/// cloud volume path lands in the container.
pub fn lain_based_path(path: &str) -> String {
    if path.starts_with('/') {
        normpath(path)
    } else {
        normpath(&format!("{APP_ROOT}/{path}"))
    }
}

/// POSIX path normalisation of an absolute path: collapses `//` and `.`,
/// resolves `..` (never above `/`), drops a trailing slash.
pub fn normpath(path: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            p => parts.push(p),
        }
    }
    format!("/{}", parts.join("/"))
}

/// A secret file's absolute path: relative paths are under /lain/app.
/// Callers reject `..` beforehand; here `.` and `//` are just tidied.
pub fn secret_file_path(path: &str) -> String {
    lain_based_path(path)
}

/// The largest memory, in bytes: Docker counts memory in a signed 64-bit
/// integer. That is `8589934591g` or `8796093022207m`.
pub const MAX_MEMORY_BYTES: u64 = i64::MAX as u64;

/// Bytes of a validated memory string (`[1-9][0-9]*[mMgG]`): m is MiB and
/// g is GiB, as Docker reads them. `None` if malformed or larger than
/// [`MAX_MEMORY_BYTES`].
pub fn memory_bytes(memory: &str) -> Option<u64> {
    let unit = memory.chars().last()?;
    let digits = &memory[..memory.len() - unit.len_utf8()];
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) || digits.starts_with('0') {
        return None;
    }
    let n: u64 = digits.parse().ok()?;
    let mult: u64 = match unit {
        'm' | 'M' => 1 << 20,
        'g' | 'G' => 1 << 30,
        _ => return None,
    };
    n.checked_mul(mult).filter(|b| *b <= MAX_MEMORY_BYTES)
}

/// `{registry}/{app}:release-{version}`. A resource instance
/// (`resource.{resource}.{client}`) runs the resource's images, so its
/// `{app}` is the resource (LAIN's console looked them up there too).
pub fn release_image(registry: &str, appname: &str, version: &str) -> String {
    let appname = crate::resource::parse_instance_name(appname).map_or(appname, |(r, _)| r);
    format!(
        "{}/{appname}:release-{version}",
        registry.trim_end_matches('/')
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn app_domain_reverses_dots_and_keeps_dashes() {
        assert_eq!(app_domain("hello"), "hello");
        assert_eq!(app_domain("foo-bar"), "foo-bar");
        assert_eq!(
            app_domain("resource.demo-service.hello"),
            "hello.demo-service.resource"
        );
    }

    #[test]
    fn default_domains_for_foo_bar() {
        assert_eq!(
            default_domains("foo-bar", "lain.local", &[]),
            vec!["foo-bar.lain.local".to_owned(), "foo-bar.lain".to_owned()]
        );
        assert_eq!(default_domains("a", "lain", &[]), vec!["a.lain".to_owned()]);
        assert_eq!(default_domains("a", "", &[]), vec!["a.lain".to_owned()]);
        let extra = ["X.com".to_owned(), "".to_owned(), "lain.local".to_owned()];
        assert_eq!(
            default_domains("a", "lain.local", &extra),
            ["a.lain.local", "a.x.com", "a.lain"]
        );
    }

    #[test]
    fn mountpoints_like_lain() {
        let defaults = default_domains("hello", "lain.local", &[]);
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        // `web` gets the defaults; `/web` is expanded onto them.
        assert_eq!(
            expand_mountpoints("web", &s(&["/web", "a.foo", "c.com/y/z"]), &defaults),
            s(&[
                "a.foo",
                "c.com/y/z",
                "hello.lain.local",
                "hello.lain",
                "hello.lain.local/web",
                "hello.lain/web"
            ])
        );
        // Another web proc gets only what it declares.
        assert_eq!(
            expand_mountpoints("admin", &s(&["/admin"]), &defaults),
            s(&["hello.lain.local/admin", "hello.lain/admin"])
        );
        // A bare `/` is the root of the default domains: nothing new for
        // `web`, the default domains for another proc.
        assert_eq!(
            expand_mountpoints("web", &s(&["/"]), &defaults),
            s(&["hello.lain.local", "hello.lain"])
        );
        assert_eq!(
            expand_mountpoints("api", &s(&["/"]), &defaults),
            s(&["hello.lain.local", "hello.lain"])
        );
    }

    #[test]
    fn mountpoint_parsing() {
        let p = |raw: &str| parse_mountpoint(raw).map(|m| (m.mountpoint, m.lowercased));
        assert_eq!(p("a.com"), Ok(("a.com".into(), false)));
        assert_eq!(p("A.com/X/"), Ok(("a.com/X".into(), true)));
        assert_eq!(p("a.com/"), Ok(("a.com".into(), false)));
        assert_eq!(p("/"), Ok(("/".into(), false)));
        assert_eq!(
            p("//"),
            Err("the path `//` has an empty segment (`//`)".into())
        );
        assert_eq!(
            p("/api//"),
            Err("the path `/api//` has an empty segment (`//`)".into())
        );
        assert_eq!(p("/api/"), Ok(("/api".into(), false)));
        assert!(p("").is_err());
        assert!(p("a.com/x y").is_err_and(|e| e.contains("a space")));
        assert!(p("a.com\n").is_err_and(|e| e.contains("U+000A")));
        assert!(p("a.com/%2f").is_ok());
        assert!(p("a.com/%2").is_err());
        assert!(p("a.com/%").is_err());
        assert!(p("*.a.com").is_err_and(|e| e.contains("wildcard")));
    }

    #[test]
    fn domain_names() {
        for ok in [
            "a",
            "a.com",
            "x-1.b2.c",
            "10.0.0.1",
            "xn--bcher-kva.example",
        ] {
            assert_eq!(domain_problem(ok), None, "{ok}");
        }
        for bad in [
            "", "A.com", "a..b", ".a", "a.", "-a", "a-.b", "a_b", "a b", "a;b", "é",
        ] {
            assert!(domain_problem(bad).is_some(), "{bad}");
        }
    }

    #[test]
    fn paths() {
        assert_eq!(lain_based_path("config"), "/lain/app/config");
        assert_eq!(lain_based_path("/var/lib/mysql/"), "/var/lib/mysql");
        assert_eq!(lain_based_path("./a//b/."), "/lain/app/a/b");
        assert_eq!(lain_based_path("/lain/app/../../etc"), "/etc");
        assert_eq!(normpath("/../.."), "/");
    }

    #[test]
    fn memory_sizes() {
        assert_eq!(memory_bytes("32m"), Some(32 << 20));
        assert_eq!(memory_bytes("2G"), Some(2 << 30));
        assert_eq!(memory_bytes("256mb"), None);
        assert_eq!(memory_bytes("0m"), None);
        assert_eq!(memory_bytes("m"), None);
        assert_eq!(memory_bytes("99999999999999999999g"), None);
        assert_eq!(
            memory_bytes("8589934591g"),
            Some((i64::MAX as u64) >> 30 << 30)
        );
        assert_eq!(memory_bytes("8589934592g"), None);
        assert_eq!(
            memory_bytes("8796093022207m"),
            Some((i64::MAX as u64) >> 20 << 20)
        );
        assert_eq!(memory_bytes("8796093022208m"), None);
    }

    #[test]
    fn images() {
        assert_eq!(
            release_image("registry.lain.local/", "hello", "1428553798-7142797e"),
            "registry.lain.local/hello:release-1428553798-7142797e"
        );
    }
}
