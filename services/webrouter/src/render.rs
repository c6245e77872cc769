//! Rendering: a pure function from routing state to nginx config text.
//!
//! [`render`] turns the desired procs, observed instances, cluster config
//! and certificates into `http.conf` (upstreams and servers) plus the
//! certificate files it references; [`main_conf`] wraps it in a complete
//! `nginx.conf`. No I/O happens here, and output order never depends on
//! hash-map order, so equal state renders byte-identical text.
//!
//! Every value taken from etcd is checked before it reaches the text:
//! hosts and paths against strict character sets, addresses parsed as
//! socket addresses, names re-encoded. Anything unexpected is left out with
//! a warning rather than written, so no value can break out of a directive
//! or make `nginx -t` fail for every other app.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use lain_store::{ClusterConfig, DesiredProc, Health, InstanceState, ObservedInstance, ProcType};
use sha2::{Digest, Sha256};

/// A certificate chain and its private key, both PEM. `Debug` leaves the
/// key out.
#[derive(Clone, PartialEq, Eq)]
pub struct CertPair {
    pub cert: Vec<u8>,
    pub key: Vec<u8>,
}

impl std::fmt::Debug for CertPair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CertPair")
            .field("cert_bytes", &self.cert.len())
            .field("key", &"<redacted>")
            .finish()
    }
}

/// Everything the router renders from.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RouteState {
    pub cluster: Option<ClusterConfig>,
    /// Keyed by `(app, proc)`.
    pub procs: BTreeMap<(String, String), DesiredProc>,
    /// Keyed by `(app, proc, instance)`.
    pub instances: BTreeMap<(String, String, String), ObservedInstance>,
    /// Keyed by the name the certificate serves: `a.example.com` or the
    /// wildcard `*.example.com`.
    pub certs: BTreeMap<String, CertPair>,
}

/// Where nginx listens and lives; fixed for a router's lifetime.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenderOptions {
    /// nginx's prefix; certificates go under `{state_dir}/certs/`.
    pub state_dir: PathBuf,
    pub http_listen: SocketAddr,
    pub https_listen: Option<SocketAddr>,
    /// Root-only domains go through the catch-all's maps once this many
    /// procs are routed (see `Config::map_routing_min_procs`); 0: always.
    pub map_routing_min_procs: usize,
}

/// A file the rendered config references, relative to the state dir.
/// `Debug` leaves the contents out (they may be a private key).
#[derive(Clone, PartialEq, Eq)]
pub struct OutFile {
    pub path: PathBuf,
    pub contents: Vec<u8>,
    /// Unix permission bits: 0600 for private keys.
    pub mode: u32,
}

impl std::fmt::Debug for OutFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OutFile")
            .field("path", &self.path)
            .field("bytes", &self.contents.len())
            .field("mode", &format_args!("{:o}", self.mode))
            .finish()
    }
}

/// The result of [`render`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    /// Upstreams and servers, included inside `http { }`.
    pub http_conf: String,
    /// Certificate and key files to write before `nginx -t`.
    pub files: Vec<OutFile>,
    /// Routed procs with at least one healthy instance (through an
    /// `upstream` block or the catch-all maps).
    pub upstreams: usize,
    /// Routed domains.
    pub domains: usize,
    /// Things left out, each saying what and why.
    pub warnings: Vec<String>,
    /// sha256 of `http_conf` (which names certificates by content hash).
    pub hash: String,
}

/// Settings of the main `nginx.conf`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MainOptions {
    pub state_dir: PathBuf,
    pub status_listen: SocketAddr,
    pub worker_processes: u32,
    /// `worker_shutdown_timeout` in seconds: how long workers of a replaced
    /// configuration may finish their connections; 0 leaves it unset.
    pub worker_shutdown_timeout_secs: u64,
    /// `user` for worker processes; `None` leaves nginx's default.
    pub user: Option<String>,
}

/// The path nginx's status server answers with the config generation.
pub const GENERATION_PATH: &str = "/lain-webrouter/generation";

/// One routed location: a proc behind `domain` + `path`.
#[derive(Debug, Clone)]
struct Route<'a> {
    app: &'a str,
    proc: &'a str,
    /// Index into the upstream names.
    upstream: usize,
    healthy: bool,
    https_only: bool,
}

/// Renders `http.conf` and the certificate files for `state`.
pub fn render(state: &RouteState, opts: &RenderOptions) -> Rendered {
    // Rendered first with placeholders for what differs between routers
    // (listen addresses, state dir), so that the hash names the routing
    // alone: routers fed the same state publish the same hash.
    let local = RenderOptions {
        state_dir: PathBuf::from(P_STATE),
        http_listen: opts.http_listen,
        https_listen: opts.https_listen,
        map_routing_min_procs: opts.map_routing_min_procs,
    };
    let (text, rest) = render_with(state, &local, P_HTTP, P_HTTPS);
    let hash = hex(&Sha256::digest(text.as_bytes()));
    let state_dir = opts.state_dir.display().to_string();
    let https = opts.https_listen.map(|a| a.to_string()).unwrap_or_default();
    let http = opts.http_listen.to_string();
    let http_conf = substitute(
        &text,
        &[(P_STATE, &state_dir), (P_HTTPS, &https), (P_HTTP, &http)],
    );
    Rendered {
        http_conf,
        hash,
        ..rest
    }
}

/// Replaces every placeholder in one pass (the text is megabytes at
/// 10,000 procs; a `replace` per placeholder would copy it each time).
fn substitute(text: &str, subs: &[(&str, &str)]) -> String {
    let mut out = String::with_capacity(text.len() + text.len() / 8);
    let mut rest = text;
    while let Some(i) = rest.find('@') {
        out.push_str(&rest[..i]);
        let tail = &rest[i..];
        match subs.iter().find(|(p, _)| tail.starts_with(p)) {
            Some((p, v)) => {
                out.push_str(v);
                rest = &tail[p.len()..];
            }
            None => {
                out.push('@');
                rest = &tail[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

// Cannot come from etcd: `@` is in no accepted host, path, name or address.
const P_STATE: &str = "@STATE@";
const P_HTTP: &str = "@HTTP@";
const P_HTTPS: &str = "@HTTPS@";

fn render_with(
    state: &RouteState,
    opts: &RenderOptions,
    http_listen: &str,
    https_listen: &str,
) -> (String, Rendered) {
    let mut warnings = Vec::new();
    let mut out = String::with_capacity(1024 * (state.procs.len() + 4));
    out.push_str(HTTP_PREAMBLE.trim_start());
    let _ = writeln!(
        out,
        "access_log {} lain_json;\n",
        opts.state_dir.join("access.log").display()
    );

    // Healthy addresses per proc, sorted and deduplicated. Instances come
    // in (app, proc) order, the same as procs, so one pass groups them
    // and a cursor joins them to their procs below.
    let mut healthy: Vec<((&str, &str), Vec<SocketAddr>)> = Vec::new();
    for ((app, proc, instance), inst) in &state.instances {
        if inst.state != InstanceState::Running || inst.health != Health::Healthy {
            continue;
        }
        let Some(addr) = inst.address.as_deref() else {
            continue;
        };
        match parse_upstream_addr(addr) {
            Ok(a) => match healthy.last_mut() {
                Some((k, v)) if *k == (app.as_str(), proc.as_str()) => v.push(a),
                _ => healthy.push(((app, proc), vec![a])),
            },
            Err(why) => warnings.push(format!(
                "instance {app}/{proc}/{instance}: address {:?} {why}; not routed",
                short(addr)
            )),
        }
    }
    for (_, v) in &mut healthy {
        v.sort_unstable();
        v.dedup();
    }
    let mut cursor = healthy.iter().peekable();

    let cluster_domains = state
        .cluster
        .as_ref()
        .map(|c| (c.domain.as_str(), c.extra_domains.as_slice()));

    // domain -> path ("" for the root) -> route; procs in key order, so a
    // conflict always resolves the same way.
    let mut domains: BTreeMap<String, BTreeMap<String, Route<'_>>> = BTreeMap::new();
    let mut upstream_names: Vec<String> = Vec::with_capacity(state.procs.len());
    // The route of each proc, by upstream index.
    let mut proc_routes: Vec<Route<'_>> = Vec::with_capacity(state.procs.len());
    // The healthy addresses of each proc, by upstream index, and whether
    // it was routed at all.
    let mut proc_addrs: Vec<&[SocketAddr]> = Vec::with_capacity(state.procs.len());
    let mut proc_routed: Vec<bool> = Vec::with_capacity(state.procs.len());
    for ((app, proc), desired) in &state.procs {
        let key = (app.as_str(), proc.as_str());
        while cursor.next_if(|(k, _)| *k < key).is_some() {}
        let addrs: &[SocketAddr] = match cursor.peek() {
            Some((k, v)) if *k == key => v,
            _ => &[],
        };
        if desired.proc_type != ProcType::Web {
            continue;
        }
        let upstream_idx = upstream_names.len();
        upstream_names.push(upstream_name(app, proc));
        let is_healthy = !addrs.is_empty();
        proc_routes.push(Route {
            app,
            proc,
            upstream: upstream_idx,
            healthy: is_healthy,
            https_only: desired.https_only,
        });
        let mut mountpoints: Vec<String> = desired.mountpoints.clone();
        if proc == "web" {
            if let Some((domain, extra)) = cluster_domains {
                mountpoints.extend(lain_spec::default_domains(app, domain, extra));
            }
        }
        let mut routed = false;
        let mut seen = BTreeSet::new();
        for mp in &mountpoints {
            let Some((host, path)) = parse_mountpoint(mp) else {
                warnings.push(format!(
                    "proc {app}/{proc}: mountpoint {:?} is not host[/path] with safe characters; skipped",
                    short(mp)
                ));
                continue;
            };
            if !seen.insert((host.clone(), path.clone())) {
                continue;
            }
            let paths = domains.entry(host.clone()).or_default();
            if let Some(other) = paths.get(&path) {
                warnings.push(format!(
                    "proc {app}/{proc}: mountpoint {host}{path} is already served by {}/{}; skipped",
                    other.app, other.proc
                ));
                continue;
            }
            paths.insert(
                path,
                Route {
                    app,
                    proc,
                    upstream: upstream_idx,
                    healthy: is_healthy,
                    https_only: desired.https_only,
                },
            );
            routed = true;
        }
        proc_addrs.push(addrs);
        proc_routed.push(routed);
    }
    let upstreams = proc_addrs
        .iter()
        .zip(&proc_routed)
        .filter(|(a, r)| **r && !a.is_empty())
        .count();

    // Which domains the catch-all serves: those whose only mountpoint is
    // the root. They are routed per request through hashed maps (host ->
    // proc, proc and bucket -> address), so they cost nginx no server
    // block, no location and no `upstream` of their own at load time.
    // Domains with path mountpoints keep a server with one location per
    // path, and their procs an `upstream` block.
    // Below the threshold every proc keeps its `upstream` (nginx retries
    // another instance when one fails); the maps pay off only at scale.
    let map_routing = proc_routed.iter().filter(|r| **r).count() >= opts.map_routing_min_procs;
    let catch_all = |paths: &BTreeMap<String, Route<'_>>| {
        map_routing && paths.len() == 1 && paths.contains_key("")
    };
    let mut needs_upstream = vec![false; upstream_names.len()];
    let mut in_maps = vec![false; upstream_names.len()];
    for paths in domains.values() {
        if catch_all(paths) {
            let r = &paths[""];
            in_maps[r.upstream] = true;
        } else {
            for r in paths.values() {
                needs_upstream[r.upstream] = true;
            }
        }
    }
    // nginx refuses an empty upstream: a proc without a healthy instance
    // gets none, and its locations answer 503 instead.
    for (i, addrs) in proc_addrs.iter().enumerate() {
        if !needs_upstream[i] || addrs.is_empty() {
            continue;
        }
        let _ = writeln!(out, "upstream {} {{", upstream_names[i]);
        for a in *addrs {
            let _ = writeln!(out, "    server {a} max_fails=1 fail_timeout=2s;");
        }
        out.push_str("}\n\n");
    }
    let any_catch_all = in_maps.iter().any(|m| *m);
    if any_catch_all {
        write_maps(
            &mut out,
            &domains,
            &proc_routes,
            &proc_addrs,
            &in_maps,
            &upstream_names,
        );
    }

    // Servers. nginx's cost grows with the number of server blocks (each
    // is merged with every module's settings) and, for HTTPS, with the
    // number of SSL contexts: every server with `listen ... ssl` loads its
    // certificate and key again (8,000 domains under one wildcard loaded
    // it 8,000 times in the benchmark). So domains whose locations are identical
    // share one server block (one `server_name` list), and the most used
    // certificate is loaded once, by the HTTPS default server: the servers
    // using it listen on the HTTPS port without `ssl` (the port is TLS
    // because the default server says so), have no SSL context of their
    // own, and a handshake whose SNI names them keeps the default server's
    // context. Names no server has still hit `ssl_reject_handshake`.
    let valid_certs: BTreeMap<&str, &CertPair> = state
        .certs
        .iter()
        .filter(|(name, _)| {
            let ok = valid_cert_name(name);
            if !ok {
                warnings.push(format!(
                    "certificate name {:?} is not a DNS name or *.name; ignored",
                    short(name)
                ));
            }
            ok
        })
        .map(|(n, c)| (n.as_str(), c))
        .collect();
    let https = opts.https_listen.filter(|_| !state.certs.is_empty());
    let redirect_port = match opts.https_listen.map(|a| a.port()) {
        Some(443) | None => String::new(),
        Some(p) => format!(":{p}"),
    };

    // Domains in name order, grouped by their locations: plain HTTP by
    // (path, proc, redirect) of each, HTTPS by certificate and (path, proc).
    let mut http_groups = Groups::default();
    let mut https_groups = Groups::default();
    for (domain, paths) in &domains {
        let root_only = catch_all(paths);
        // A redirect names no proc, so redirecting domains of different
        // procs share a server too.
        let http: Vec<Loc<'_>> = paths
            .iter()
            .map(|(path, r)| match r.https_only {
                true => (path.as_str(), REDIRECT, true),
                false if root_only => ("", CATCH_ALL, false),
                false => (path.as_str(), r.upstream, false),
            })
            .collect();
        http_groups.add("", http, domain);

        if https.is_none() {
            continue;
        }
        let Some((cert_name, _)) = find_cert(&valid_certs, domain) else {
            if paths.values().any(|r| r.https_only) {
                warnings.push(format!(
                    "domain {domain}: https_only but no certificate for it or *.{}; redirects to an HTTPS server that rejects it",
                    parent(domain).unwrap_or("")
                ));
            }
            continue;
        };
        let tls: Vec<Loc<'_>> = paths
            .iter()
            .map(|(path, r)| match root_only {
                true => ("", CATCH_ALL, false),
                false => (path.as_str(), r.upstream, false),
            })
            .collect();
        https_groups.add(cert_name, tls, domain);
    }
    // One server's locations.
    let body = |locs: &[Loc<'_>]| {
        let mut b = String::new();
        for &(path, upstream, redirect) in locs {
            if upstream == CATCH_ALL {
                b.push_str(CATCH_ALL_LOCATION);
            } else if redirect {
                let _ = writeln!(
                    b,
                    "    location {} {{\n        return 301 https://$host{redirect_port}$request_uri;\n    }}",
                    location_of(path)
                );
            } else {
                write_location(&mut b, path, &proc_routes[upstream], &upstream_names);
            }
        }
        b
    };

    // Certificate files, written once each, named by content.
    let http_groups = http_groups.into_list();
    let https_groups = https_groups.into_list();
    let mut files = BTreeMap::new();
    let mut cert_paths: BTreeMap<&str, (String, String)> = BTreeMap::new();
    for (name, _, _) in &https_groups {
        let Some((cert_name, pair)) = valid_certs.get_key_value(name) else {
            continue;
        };
        cert_paths.entry(cert_name).or_insert_with(|| {
            let id = cert_id(pair);
            let crt = PathBuf::from(format!("certs/{id}.crt"));
            let key = PathBuf::from(format!("certs/{id}.key"));
            let text = (
                opts.state_dir.join(&crt).display().to_string(),
                opts.state_dir.join(&key).display().to_string(),
            );
            files.insert(crt, (pair.cert.clone(), 0o644));
            files.insert(key, (pair.key.clone(), 0o600));
            text
        });
    }
    let shared_cert = shared_certificate(&https_groups);

    // Default servers: unknown hosts get a clear 404, not some app.
    let _ = writeln!(
        out,
        "server {{\n    listen {http_listen} default_server;\n    server_name _;\n    \
         return 404 \"404 Not Found: no app is routed at this host\\n\";\n}}\n"
    );
    if https.is_some() {
        let _ = writeln!(
            out,
            "server {{\n    listen {https_listen} ssl default_server;\n    server_name _;\n    \
             ssl_reject_handshake on;"
        );
        if let Some(name) = shared_cert {
            let (crt, key) = &cert_paths[name];
            let _ = writeln!(
                out,
                "    # certificate for {name}, shared by the servers below that\n    \
                 # listen on this port without `ssl`\n    \
                 ssl_certificate {crt};\n    ssl_certificate_key {key};"
            );
        }
        out.push_str("}\n\n");
    }

    for (_, locs, names) in &http_groups {
        let _ = writeln!(out, "server {{\n    listen {http_listen};");
        write_server_names(&mut out, names);
        out.push_str(&body(locs));
        out.push_str("}\n\n");
    }
    for (cert_name, locs, names) in &https_groups {
        let cert_name = *cert_name;
        if shared_cert == Some(cert_name) {
            let _ = writeln!(
                out,
                "server {{\n    # TLS with the default server's certificate for {cert_name}\n    \
                 listen {https_listen};"
            );
            write_server_names(&mut out, names);
        } else {
            let (crt, key) = &cert_paths[cert_name];
            let _ = writeln!(out, "server {{\n    listen {https_listen} ssl;");
            write_server_names(&mut out, names);
            let _ = writeln!(
                out,
                "    # certificate for {cert_name}\n    ssl_certificate {crt};\n    \
                 ssl_certificate_key {key};"
            );
        }
        out.push_str(&body(locs));
        out.push_str("}\n\n");
    }

    let rendered = Rendered {
        http_conf: String::new(),
        files: files
            .into_iter()
            .map(|(path, (contents, mode))| OutFile {
                path,
                contents,
                mode,
            })
            .collect(),
        upstreams,
        domains: domains.len(),
        warnings,
        hash: String::new(),
    };
    (out, rendered)
}

/// A location of a server: the path (`""` for the root), the proc's
/// upstream index ([`REDIRECT`] for a redirect), and whether it redirects
/// to HTTPS instead.
type Loc<'a> = (&'a str, usize, bool);

const REDIRECT: usize = usize::MAX;

/// The location of a domain routed by the maps (see [`write_maps`]).
const CATCH_ALL: usize = usize::MAX - 1;

/// Buckets a request falls into: the last two hex digits of nginx's
/// `$request_id` (random per request). Each bucket picks one of a proc's
/// addresses, so a proc's addresses share its requests evenly (within
/// one bucket in 256).
const BUCKETS: usize = 256;

/// The one location of every map-routed domain: a proc without a healthy
/// instance answers the 503 page, else the request goes to the address of
/// its bucket (an `ip:port`, so nothing is resolved; nginx still scans
/// its list of `upstream` blocks for the name on every request, which is
/// why the rest keep few of them).
const CATCH_ALL_LOCATION: &str = r#"    location / {
        if ($lain_down) {
            add_header X-Request-Id $lain_request_id always;
            add_header Retry-After 5 always;
            return 503 "503 Service Unavailable: $lain_down\n";
        }
        proxy_pass http://$lain_backend;
    }
"#;

/// The maps routing root-only domains, all hashed (no regex but the
/// bucket's):
/// - `$lain_proc`: host -> proc with a healthy instance;
/// - `$lain_down`: host -> the 503 message of a proc without one;
/// - `$lain_count`: proc -> how many addresses it has (default 1);
/// - `$lain_bucket`: the last two hex digits of `$request_id`;
/// - `$lain_index`: count and bucket -> index of an address (bucket mod
///   count, default 0), one table shared by all procs with that count;
/// - `$lain_backend`: proc and index -> `ip:port`, one entry per address.
///
/// So the maps grow with domains plus addresses, not with a multiple of
/// them.
fn write_maps(
    out: &mut String,
    domains: &BTreeMap<String, BTreeMap<String, Route<'_>>>,
    routes: &[Route<'_>],
    addrs: &[&[SocketAddr]],
    in_maps: &[bool],
    names: &[String],
) {
    out.push_str(
        "# Domains whose only mountpoint is the root, routed per request by\n\
         # hashed maps instead of a server and an upstream each.\n\
         map $host $lain_proc {\n    default \"\";\n",
    );
    let mut down = String::from("map $host $lain_down {\n    default \"\";\n");
    for (domain, paths) in domains {
        let Some(r) = paths.get("").filter(|_| paths.len() == 1) else {
            continue;
        };
        if r.healthy {
            let _ = writeln!(out, "    {domain} {};", names[r.upstream]);
        } else {
            // Names are etcd key segments (letters, digits, `._-`);
            // `clean` keeps it that way so the text cannot end the string
            // or add a variable.
            let _ = writeln!(
                down,
                "    {domain} \"{}/{} has no healthy instance right now. Try again shortly; \
                 its maintainers can check `lain ps {}`.\";",
                clean(r.app),
                clean(r.proc),
                clean(r.app)
            );
        }
    }
    out.push_str("}\n");
    out.push_str(&down);
    out.push_str("}\n");
    let routed = |i: &usize| in_maps[*i] && !addrs[*i].is_empty() && routes[*i].healthy;
    let mut counts = BTreeSet::new();
    out.push_str("map $lain_proc $lain_count {\n    default 1;\n");
    for i in (0..addrs.len()).filter(routed) {
        let n = addrs[i].len();
        counts.insert(n);
        if n > 1 {
            let _ = writeln!(out, "    {} {n};", names[i]);
        }
    }
    out.push_str(
        "}\n\
         map $request_id $lain_bucket {\n    \"~([0-9a-f]{2})$\" $1;\n}\n\
         map \"$lain_count:$lain_bucket\" $lain_index {\n    default 0;\n",
    );
    for &n in counts.iter().filter(|n| **n > 1) {
        for b in 0..BUCKETS {
            if b % n != 0 {
                let _ = writeln!(out, "    {n}:{b:02x} {};", b % n);
            }
        }
    }
    out.push_str("}\nmap \"$lain_proc:$lain_index\" $lain_backend {\n    default \"\";\n");
    for i in (0..addrs.len()).filter(routed) {
        for (k, a) in addrs[i].iter().enumerate() {
            let _ = writeln!(out, "    {}:{k} {a};", names[i]);
        }
    }
    out.push_str("}\n\n");
}

/// A server block: certificate name (`""` for plain HTTP), locations and
/// domains.
type Group<'a> = (&'a str, Vec<Loc<'a>>, Vec<&'a str>);

/// Server blocks being built: domains grouped by a key (the certificate
/// name, `""` for plain HTTP, and the locations), in the order
/// each key first appears. Domains come in name order, so the output
/// never depends on hash-map order.
#[derive(Debug, Default)]
struct Groups<'a> {
    index: HashMap<(&'a str, Vec<Loc<'a>>), usize>,
    /// The domains of each group, by index.
    names: Vec<Vec<&'a str>>,
}

impl<'a> Groups<'a> {
    fn add(&mut self, cert: &'a str, locs: Vec<Loc<'a>>, domain: &'a str) {
        let next = self.names.len();
        let i = *self.index.entry((cert, locs)).or_insert(next);
        if i == next {
            self.names.push(Vec::new());
        }
        self.names[i].push(domain);
    }

    /// `(certificate name, locations, domains)` per group, in order.
    fn into_list(self) -> Vec<Group<'a>> {
        let mut keys: Vec<Option<(&'a str, Vec<Loc<'a>>)>> = vec![None; self.names.len()];
        for (k, i) in self.index {
            keys[i] = Some(k);
        }
        keys.into_iter()
            .zip(self.names)
            .filter_map(|(k, names)| k.map(|(cert, body)| (cert, body, names)))
            .collect()
    }
}

/// The certificate the HTTPS default server loads and shares: the one
/// serving the most domains; on a tie, the first by name.
fn shared_certificate<'a>(https: &[Group<'a>]) -> Option<&'a str> {
    let mut count: BTreeMap<&str, usize> = BTreeMap::new();
    for (cert, _, names) in https {
        *count.entry(cert).or_default() += names.len();
    }
    let mut best: Option<(&str, usize)> = None;
    for (name, n) in count {
        if best.is_none_or(|(_, m)| n > m) {
            best = Some((name, n));
        }
    }
    best.map(|(name, _)| name)
}

/// `server_name a;`, or one name a line when a server has several.
fn write_server_names(out: &mut String, names: &[&str]) {
    out.push_str("    server_name ");
    for (i, n) in names.iter().enumerate() {
        if i > 0 {
            out.push_str("\n        ");
        }
        out.push_str(n);
    }
    out.push_str(";\n");
}

const HTTP_PREAMBLE: &str = r#"
# generated by webrouter from etcd; do not edit
# Sized for the routing maps below (set before the first map).
map_hash_max_size 1048576;
map_hash_bucket_size 256;
# A request id: the client's if it looks like one, else nginx's own.
map $http_x_request_id $lain_request_id {
    "~^[A-Za-z0-9._-]{1,128}$" $http_x_request_id;
    default $request_id;
}
map $http_upgrade $lain_connection {
    default upgrade;
    "" "";
}
log_format lain_json escape=json '{"time":"$time_iso8601","request_id":"$lain_request_id",'
    '"remote_addr":"$remote_addr","host":"$host","method":"$request_method",'
    '"uri":"$request_uri","status":$status,"bytes_sent":$bytes_sent,'
    '"request_time":$request_time,"upstream":"$upstream_addr",'
    '"upstream_status":"$upstream_status","upstream_time":"$upstream_response_time",'
    '"user_agent":"$http_user_agent","scheme":"$scheme"}';
server_names_hash_bucket_size 128;
server_names_hash_max_size 131072;
proxy_http_version 1.1;
proxy_set_header Host $host;
proxy_set_header X-Real-IP $remote_addr;
proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
proxy_set_header X-Forwarded-Proto $scheme;
proxy_set_header X-Request-Id $lain_request_id;
proxy_set_header Upgrade $http_upgrade;
proxy_set_header Connection $lain_connection;
proxy_connect_timeout 2s;
proxy_next_upstream error timeout;
proxy_next_upstream_tries 3;
add_header X-Request-Id $lain_request_id always;
"#;

fn write_location(out: &mut String, path: &str, route: &Route<'_>, upstreams: &[String]) {
    let loc = location_of(path);
    if route.healthy {
        // `proxy_pass http://u/` replaces the matched `/path/` with `/`
        // (LAIN's prefix stripping); the root passes the URI unchanged.
        let slash = if path.is_empty() { "" } else { "/" };
        let _ = writeln!(
            out,
            "    location {loc} {{\n        proxy_pass http://{}{slash};\n    }}",
            upstreams[route.upstream]
        );
    } else {
        // Names are etcd key segments (letters, digits, `._-`); `clean`
        // keeps it that way so the text cannot end the string or add a
        // variable.
        let _ = writeln!(
            out,
            "    location {loc} {{\n        default_type text/plain;\n        \
             add_header X-Request-Id $lain_request_id always;\n        \
             add_header Retry-After 5 always;\n        \
             return 503 \"503 Service Unavailable: {}/{} has no healthy instance right now. \
             Try again shortly; its maintainers can check `lain ps {}`.\\n\";\n    }}",
            clean(route.app),
            clean(route.proc),
            clean(route.app)
        );
    }
}

/// An instance address nginx accepts in `server` of an upstream: ip:port
/// with a port other than 0, no IPv6 scope id (`[fe80::1%2]:80` is
/// "invalid IPv6 address in upstream") and not the unspecified address.
/// `Err` says what is wrong with it.
pub fn parse_upstream_addr(addr: &str) -> Result<SocketAddr, &'static str> {
    let a: SocketAddr = addr.parse().map_err(|_| "is not ip:port")?;
    if a.port() == 0 {
        return Err("has port 0");
    }
    if a.ip().is_unspecified() {
        return Err("is the unspecified address");
    }
    if let SocketAddr::V6(v6) = a {
        if v6.scope_id() != 0 || addr.contains('%') {
            return Err("has an IPv6 scope id");
        }
    }
    Ok(a)
}

fn location_of(path: &str) -> String {
    if path.is_empty() {
        "/".to_owned()
    } else {
        format!("{path}/")
    }
}

/// `{app}-{proc}` with everything but ASCII letters and digits written as
/// `_XX` (hex), so distinct procs never share a name.
pub fn upstream_name(app: &str, proc: &str) -> String {
    let enc = |s: &str| {
        let mut o = String::with_capacity(s.len() + 8);
        for b in s.bytes() {
            if b.is_ascii_alphanumeric() {
                o.push(char::from(b));
            } else {
                let _ = write!(o, "_{b:02X}");
            }
        }
        o
    };
    format!("{}-{}", enc(app), enc(proc))
}

/// Splits an expanded mountpoint into a lowercase host and a path that is
/// `""` (the root) or starts with `/` and has no trailing `/`. `None` for
/// anything outside the lain.yaml mountpoint rules.
pub fn parse_mountpoint(mp: &str) -> Option<(String, String)> {
    let (host, path) = match mp.find('/') {
        Some(i) => (&mp[..i], &mp[i..]),
        None => (mp, ""),
    };
    let host = host.to_ascii_lowercase();
    if !valid_host(&host) {
        return None;
    }
    let path = path.trim_end_matches('/');
    if !path.is_empty() {
        let ok_chars = path
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~%/".contains(&b));
        let ok_segments = path[1..]
            .split('/')
            .all(|s| !s.is_empty() && s != "." && s != "..");
        if !ok_chars || !ok_segments || path.len() > 1024 {
            return None;
        }
    }
    Some((host, path.to_owned()))
}

/// A DNS name: dot-separated labels of letters, digits and inner `-`.
pub fn valid_host(host: &str) -> bool {
    !host.is_empty()
        && host.len() <= 253
        && host.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}

fn valid_cert_name(name: &str) -> bool {
    valid_host(name.strip_prefix("*.").unwrap_or(name))
}

fn parent(domain: &str) -> Option<&str> {
    domain
        .split_once('.')
        .map(|(_, p)| p)
        .filter(|p| p.contains('.') || !p.is_empty())
}

/// The exact certificate for `domain`, else the wildcard of its parent.
fn find_cert<'a>(
    certs: &BTreeMap<&'a str, &'a CertPair>,
    domain: &str,
) -> Option<(&'a str, &'a CertPair)> {
    if let Some((n, c)) = certs.get_key_value(domain) {
        return Some((n, c));
    }
    let wildcard = format!("*.{}", parent(domain)?);
    certs
        .get_key_value(wildcard.as_str())
        .map(|(n, c)| (*n, *c))
}

/// Names a certificate's files by content, so a changed certificate gets
/// new files and a new config hash (and with it a reload).
fn cert_id(pair: &CertPair) -> String {
    let mut h = Sha256::new();
    h.update(&pair.cert);
    h.update([0]);
    h.update(&pair.key);
    hex(&h.finalize()[..12])
}

fn hex(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

fn clean(s: &str) -> String {
    s.chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
        .take(253)
        .collect()
}

fn short(s: &str) -> String {
    s.chars().take(80).collect()
}

/// The complete `nginx.conf` of a generation, including `http_conf_path`.
/// Logs, pid, lock and temp files all live in the state dir, so several
/// routers on one host never collide.
pub fn main_conf(opts: &MainOptions, generation: u64, http_conf_path: &Path) -> String {
    let p = opts.state_dir.display();
    let user = opts
        .user
        .as_deref()
        .filter(|u| {
            !u.is_empty()
                && u.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
        })
        .map(|u| format!("user {u};\n"))
        .unwrap_or_default();
    let shutdown = match opts.worker_shutdown_timeout_secs {
        0 => String::new(),
        s => format!("worker_shutdown_timeout {s}s;\n"),
    };
    format!(
        "# generated by webrouter, generation {generation}; do not edit\n\
         daemon off;\n\
         master_process on;\n\
         worker_processes {workers};\n\
         {shutdown}\
         {user}\
         pid {p}/nginx.pid;\n\
         lock_file {p}/nginx.lock;\n\
         error_log {p}/error.log notice;\n\
         events {{ worker_connections 4096; }}\n\
         http {{\n\
         \x20   client_body_temp_path {p}/temp/body;\n\
         \x20   proxy_temp_path {p}/temp/proxy;\n\
         \x20   fastcgi_temp_path {p}/temp/fastcgi;\n\
         \x20   uwsgi_temp_path {p}/temp/uwsgi;\n\
         \x20   scgi_temp_path {p}/temp/scgi;\n\
         \x20   default_type text/plain;\n\
         \x20   # webrouter asks this server which generation is live\n\
         \x20   server {{\n\
         \x20       listen {status};\n\
         \x20       access_log off;\n\
         \x20       location = {GENERATION_PATH} {{ return 200 \"{generation}\"; }}\n\
         \x20       location / {{ return 404; }}\n\
         \x20   }}\n\
         \x20   include {http};\n\
         }}\n",
        workers = opts.worker_processes.max(1),
        status = opts.status_listen,
        http = http_conf_path.display(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mountpoints_parse_strictly() {
        assert_eq!(
            parse_mountpoint("A.example.com/api/"),
            Some(("a.example.com".into(), "/api".into()))
        );
        assert_eq!(
            parse_mountpoint("a.com"),
            Some(("a.com".into(), String::new()))
        );
        for bad in [
            "",
            "/api",
            "a.com/a b",
            "a.com/x;y",
            "a.com/$x",
            "a.com/{",
            "a.com/\"",
            "a.com//x",
            "a.com/../x",
            "a.com:80/x",
            "*.a.com",
            "-a.com",
            "a.com/x\n",
        ] {
            assert_eq!(parse_mountpoint(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn upstream_addresses_nginx_refuses_are_rejected() {
        for ok in [
            "10.0.0.1:8080",
            "[fd00::1]:80",
            "127.0.0.1:1",
            "[::1]:65535",
        ] {
            assert!(parse_upstream_addr(ok).is_ok(), "{ok:?}");
        }
        for bad in [
            "1.2.3.4:0",
            "[fd00::1]:0",
            "[fe80::1%2]:80",
            "0.0.0.0:80",
            "[::]:80",
            "1.2.3.4",
            "host:80",
            "1.2.3.4:80; x",
        ] {
            assert!(parse_upstream_addr(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn upstream_names_are_distinct_and_safe() {
        assert_eq!(upstream_name("hello", "web.admin"), "hello-web_2Eadmin");
        assert_ne!(upstream_name("a-b", "web"), upstream_name("a", "b-web"));
    }

    #[test]
    fn wildcard_certificates_cover_one_level() {
        let pair = CertPair {
            cert: b"c".to_vec(),
            key: b"k".to_vec(),
        };
        let certs: BTreeMap<&str, &CertPair> = [("*.example.com", &pair)].into_iter().collect();
        assert!(find_cert(&certs, "a.example.com").is_some());
        assert!(find_cert(&certs, "example.com").is_none());
        assert!(find_cert(&certs, "b.a.example.com").is_none());
    }
}
