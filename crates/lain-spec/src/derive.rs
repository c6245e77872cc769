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

/// The default domains of an app: `{appdomain}.{cluster domain}`, then
/// `{appdomain}.lain` (the cluster-internal name), without duplicates.
pub fn default_domains(appname: &str, cluster_domain: &str) -> Vec<String> {
    let app = app_domain(appname);
    let mut out = Vec::with_capacity(2);
    let cluster = cluster_domain.trim().trim_matches('.');
    if !cluster.is_empty() {
        out.push(format!("{app}.{cluster}"));
    }
    let internal = format!("{app}.{INTERNAL_DOMAIN}");
    if !out.contains(&internal) {
        out.push(internal);
    }
    out
}

/// The full mountpoints of a web proc, as LAIN computes them:
/// - the proc named `web` also gets every default domain;
/// - an entry `/path` is replaced by `{domain}/path` for every default
///   domain (a bare `/` just drops out: the proc is mounted at the root of
///   the default domains only if it is `web`);
/// - other entries (`host` or `host/path`) are kept as written.
///
/// Duplicates are dropped, first occurrence wins.
pub fn expand_mountpoints(
    proc_name: &str,
    declared: &[String],
    defaults: &[String],
) -> Vec<String> {
    let mut all: Vec<&str> = declared.iter().map(String::as_str).collect();
    if proc_name == "web" {
        for d in defaults {
            if !all.contains(&d.as_str()) {
                all.push(d);
            }
        }
    }
    let mut out: Vec<String> = Vec::new();
    let mut expanded: Vec<String> = Vec::new();
    for mp in all {
        if mp.starts_with('/') {
            if mp.len() > 1 {
                expanded.extend(defaults.iter().map(|d| format!("{d}{mp}")));
            }
        } else {
            out.push(mp.to_owned());
        }
    }
    out.extend(expanded);
    let mut seen = std::collections::HashSet::new();
    out.retain(|m| seen.insert(m.clone()));
    out
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

/// Bytes of a validated memory string (`[1-9][0-9]*[mMgG]`): m is MiB and
/// g is GiB, as Docker reads them. `None` if malformed or too large.
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
    n.checked_mul(mult)
}

/// `{registry}/{app}:release-{version}`.
pub fn release_image(registry: &str, appname: &str, version: &str) -> String {
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
            default_domains("foo-bar", "lain.local"),
            vec!["foo-bar.lain.local".to_owned(), "foo-bar.lain".to_owned()]
        );
        assert_eq!(default_domains("a", "lain"), vec!["a.lain".to_owned()]);
        assert_eq!(default_domains("a", ""), vec!["a.lain".to_owned()]);
    }

    #[test]
    fn mountpoints_like_lain() {
        let defaults = default_domains("hello", "lain.local");
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
        // A bare `/` adds nothing.
        assert_eq!(
            expand_mountpoints("web", &s(&["/"]), &defaults),
            s(&["hello.lain.local", "hello.lain"])
        );
        assert!(expand_mountpoints("api", &s(&["/"]), &defaults).is_empty());
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
    }

    #[test]
    fn images() {
        assert_eq!(
            release_image("registry.lain.local/", "hello", "1428553798-7142797e"),
            "registry.lain.local/hello:release-1428553798-7142797e"
        );
    }
}
