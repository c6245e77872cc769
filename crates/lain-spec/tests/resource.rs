//! Resource instances: a resource's template rendered for one client.

use lain_spec::{
    instance_name, instantiate, is_appname, is_instance_name, parse, parse_instance_name,
    Diagnostic, Diagnostics, ParseOptions, ProcKind, ResourceParam, Severity, Validated,
};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// The white paper's ipaddr resource (usermanual/resource.md), with the
/// `build:` section the excerpt leaves out.
const IPADDR: &str = r#"appname: ipaddr-resource
apptype: resource
build:
  base: laincloud/centos-lain:20160503
  script: [pip install -r pip-req.txt]
web:
  cmd: python service.py
  memory: "{{ memory|default('64M') }}"
  port: 10000
portal.portal-ipaddr-r:
  service_name: ipaddr-r
  allow_clients: "**"
  cmd: python proxy.py
  port: 10000
"#;

fn params(pairs: &[(&str, ResourceParam)]) -> BTreeMap<String, ResourceParam> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), v.clone()))
        .collect()
}

fn s(v: &str) -> ResourceParam {
    ResourceParam::String(v.to_owned())
}

fn render(
    template: &str,
    resource: &str,
    client: &str,
    p: &BTreeMap<String, ResourceParam>,
) -> Result<Validated, Diagnostics> {
    instantiate(
        template,
        "lain.yaml",
        resource,
        client,
        p,
        &ParseOptions::default(),
    )
}

fn ok(template: &str, resource: &str, client: &str, p: &[(&str, ResourceParam)]) -> Validated {
    render(template, resource, client, &params(p))
        .unwrap_or_else(|d| panic!("expected a valid instance, got:\n{d}"))
}

fn errors(template: &str, p: &[(&str, ResourceParam)]) -> Vec<Diagnostic> {
    match render(template, "ipaddr-resource", "ipaddr-client", &params(p)) {
        Ok(_) => panic!("expected errors, the instance was accepted"),
        Err(d) => {
            d.0.into_iter()
                .filter(|d| d.severity == Severity::Error)
                .collect()
        }
    }
}

/// Exactly one error, at `line`, naming the resource and the client and
/// containing every needle.
fn one_error(template: &str, p: &[(&str, ResourceParam)], line: usize, needles: &[&str]) {
    let errs = errors(template, p);
    assert_eq!(errs.len(), 1, "expected one error, got {errs:#?}");
    let e = &errs[0];
    assert_eq!(e.line, line, "line of: {e}");
    for n in ["`ipaddr-resource`", "`ipaddr-client`"]
        .iter()
        .chain(needles)
    {
        assert!(e.message.contains(n), "message lacks {n:?}: {e}");
    }
}

// ---- names ----------------------------------------------------------------------

#[test]
fn instance_names_round_trip() {
    let name = instance_name("ipaddr-resource", "ipaddr-client");
    assert_eq!(name, "resource.ipaddr-resource.ipaddr-client");
    assert_eq!(
        parse_instance_name(&name),
        Some(("ipaddr-resource", "ipaddr-client"))
    );
    assert!(is_instance_name(&name));
    for bad in [
        "",
        "resource",
        "resource.",
        "resource.a",
        "resource.a.",
        "resource..b",
        "resource.a.b.c",
        "resources.a.b",
        "Resource.a.b",
        "resource.a-.b",
        "resource.a.-b",
        "resource.1a.b",
        "resource.a.b c",
        "resource.resource.b",
        "resource.a.portal",
        "x.resource.a.b",
    ] {
        assert_eq!(parse_instance_name(bad), None, "{bad:?}");
        assert!(!is_instance_name(bad), "{bad:?}");
    }
    assert!(is_appname("hello") && !is_appname("service") && !is_appname("a.b"));
}

#[test]
fn plain_appnames_still_reject_dots() {
    let text = "appname: resource.ipaddr-resource.c\nbuild:\n  base: b\n  script: []\n";
    let err = parse("lain.yaml", text, &ParseOptions::default()).expect_err("dotted appname");
    assert_eq!((err.0[0].line, err.0[0].col), (1, 10), "{err}");
    assert!(err.0[0].message.contains("not a valid app name"), "{err}");
}

#[test]
fn bad_resource_or_client_names_are_refused() {
    for (r, c) in [("a.b", "c"), ("r", "resource"), ("r", ""), ("", "c")] {
        let err = render(IPADDR, r, c, &BTreeMap::new()).expect_err("bad name");
        assert_eq!((err.0[0].line, err.0[0].col), (1, 1), "{err}");
        assert!(err.0[0].message.contains("not a valid"), "{err}");
    }
}

#[test]
fn oversized_parameters_are_refused() {
    let big = "9".repeat(lain_spec::resource::MAX_PARAM_BYTES + 1);
    let err = render(IPADDR, "r", "c", &params(&[("memory", s(&big))])).expect_err("too big");
    assert_eq!((err.0[0].line, err.0[0].col), (1, 1), "{err}");
    assert!(err.0[0].message.contains("`memory`"), "{err}");
}

#[test]
fn instance_images_are_the_resources() {
    let v = ok(IPADDR, "ipaddr-resource", "c1", &[]);
    assert_eq!(
        v.conf
            .release_image("registry.lain.local", "1500000000-abc"),
        "registry.lain.local/ipaddr-resource:release-1500000000-abc"
    );
    assert_eq!(
        lain_spec::release_image("r", "hello", "1"),
        "r/hello:release-1"
    );
}

// ---- instances --------------------------------------------------------------------

#[test]
fn two_clients_get_two_instances() {
    let a = ok(
        IPADDR,
        "ipaddr-resource",
        "client-a",
        &[("memory", s("32M"))],
    );
    let b = ok(
        IPADDR,
        "ipaddr-resource",
        "client-b",
        &[("memory", s("1g")), ("services", s("ignored"))],
    );
    assert_eq!(a.conf.appname, "resource.ipaddr-resource.client-a");
    assert_eq!(b.conf.appname, "resource.ipaddr-resource.client-b");
    for v in [&a, &b] {
        assert_eq!(v.conf.apptype, lain_spec::AppType::App);
        assert!(v.warnings.is_empty(), "{:?}", v.warnings);
    }
    let web = |v: &Validated| v.conf.proc("web").expect("web").clone();
    assert_eq!(web(&a).memory, "32M");
    assert_eq!(web(&b).memory, "1g");
    assert_eq!(web(&b).memory_bytes, 1 << 30);
    assert_eq!(
        web(&a).mountpoints,
        [
            "client-a.ipaddr-resource.resource.lain.local",
            "client-a.ipaddr-resource.resource.lain"
        ]
    );
    assert_eq!(a.conf.default_domains, web(&a).mountpoints);
    assert_ne!(web(&a).mountpoints, web(&b).mountpoints);
    for (v, client) in [(&a, "client-a"), (&b, "client-b")] {
        let portals: Vec<_> = v
            .conf
            .procs()
            .filter(|p| p.kind == ProcKind::Portal)
            .collect();
        assert_eq!(portals.len(), 1);
        assert_eq!(portals[0].service_name.as_deref(), Some("ipaddr-r"));
        assert_eq!(portals[0].allow_clients.as_deref(), Some(client));
    }
    assert_ne!(a.conf, b.conf);

    // Without the parameter, the template's default.
    let d = ok(IPADDR, "ipaddr-resource", "client-c", &[]);
    assert_eq!(web(&d).memory, "64M");
}

#[test]
fn rendered_integers_and_booleans_are_typed() {
    let t = "appname: r\napptype: resource\nbuild: {base: b, script: []}\nworker.db:\n  cmd: \
             run --size={{ size }} {{ nothing }}x\n  num_instances: \"{{ n|default(3)|int(3) }}\"\n  \
             stateful: \"{{ stateful|default(false) }}\"\n  port: \"{{ port }}\"\n";
    let db = |p: &[(&str, ResourceParam)]| ok(t, "r", "c", p).conf.proc("db").expect("db").clone();
    let v = db(&[("port", ResourceParam::Integer(3306))]);
    assert_eq!(v.num_instances, 3);
    assert!(!v.stateful);
    assert_eq!(v.port, Some(3306));
    // An undefined name renders empty, as in Jinja2.
    assert_eq!(v.argv().expect("cmd"), ["run", "--size=", "x"]);
    let v = db(&[
        ("n", ResourceParam::Integer(5)),
        ("stateful", ResourceParam::Bool(true)),
        ("port", s("80")),
        ("size", s("9")),
    ]);
    assert_eq!((v.num_instances, v.stateful, v.port), (5, true, Some(80)));
    assert_eq!(v.argv().expect("cmd"), ["run", "--size=9", "x"]);
    // Jinja2's `int` gives its default for what does not convert.
    let v = db(&[("n", s("many")), ("port", s("1"))]);
    assert_eq!(v.num_instances, 3);
}

#[test]
fn a_parameter_cannot_add_keys() {
    let errs = errors(
        IPADDR,
        &[("memory", s("64m\nsecret_files_bypass: true\nvolumes: [/]"))],
    );
    assert_eq!(errs.len(), 1, "{errs:#?}");
    assert_eq!(errs[0].line, 8);
    assert!(errs[0].message.contains("`web.memory`"), "{}", errs[0]);
}

#[test]
fn keys_and_other_values_are_kept_as_written() {
    let t = "appname: r\napptype: resource\nbuild:\n  base: b\n  script: [\"echo '*' {{ x }}\"]\n\
             web:\n  cmd: echo 1\n  env: [\"A={{ a }}\", \"B=**\"]\n";
    let v = ok(t, "r", "c", &[("a", s("1")), ("x", s("y"))]);
    assert_eq!(v.conf.build.script, ["echo '*' y"]);
    assert_eq!(v.conf.proc("web").expect("web").env, ["A=1", "B=**"]);
}

// ---- errors -----------------------------------------------------------------------

#[test]
fn template_syntax_error_names_the_line() {
    let t = IPADDR.replace("default('64M') }}", "default('64M') }");
    one_error(&t, &[], 8, &["`web.memory`", "syntax error"]);
    let t = IPADDR.replace("default('64M')", "default('64M'");
    one_error(&t, &[], 8, &["`web.memory`", "syntax error"]);
}

#[test]
fn rendered_file_that_fails_validation_names_the_line() {
    one_error(
        IPADDR,
        &[("memory", s("lots"))],
        8,
        &["`web.memory`", "\"lots\"", "256m"],
    );
    // The template renders fine but is wrong on its own: every problem at once.
    let t = IPADDR.replace(
        "  port: 10000\nportal",
        "  port: 10000\n  setup_time: 999\nportal",
    );
    one_error(&t, &[], 10, &["`web.setup_time`"]);
}

#[test]
fn appname_must_be_the_resource() {
    one_error(
        &IPADDR.replace("appname: ipaddr-resource", "appname: other"),
        &[],
        1,
        &["`appname`", "`other`", "must be `ipaddr-resource`"],
    );
}

#[test]
fn apptype_must_be_resource() {
    one_error(
        &IPADDR.replace("apptype: resource", "apptype: app"),
        &[],
        2,
        &["apptype: resource"],
    );
    one_error(
        &IPADDR.replace("apptype: resource\n", ""),
        &[],
        1,
        &["apptype: resource"],
    );
}

#[test]
fn unsafe_or_unknown_constructs_are_refused() {
    let cases: &[(&str, &[&str])] = &[
        ("{% for i in x %}{{ i }}{% endfor %}", &["statements"]),
        ("{{ 'x' * 100000000 }}", &["`*`"]),
        ("{{ 2 ** 10 }}", &["`**`"]),
        ("{{ memory ~ memory }}", &["`~`"]),
        ("{{ memory|join(',') }}", &["unknown filter", "default"]),
        ("{{ range(10) }}", &["unknown function"]),
        ("{{ memory is mapping }}", &["unknown test", "defined"]),
        ("{{ memory.x.y }}", &["failed to render"]),
    ];
    for (expr, needles) in cases {
        let t = IPADDR.replace("{{ memory|default('64M') }}", expr);
        one_error(&t, &[], 8, needles);
    }
}

#[test]
fn unquoted_expression_is_explained() {
    one_error(
        &IPADDR.replace("\"{{ memory|default('64M') }}\"", "{{ memory }}"),
        &[],
        8,
        &["unquoted", "quote the value"],
    );
}

#[test]
fn output_size_limit() {
    let big = "9".repeat(lain_spec::resource::MAX_PARAM_BYTES);
    let mut t = IPADDR.to_owned();
    t.push_str("  env:\n");
    for i in 0..300 {
        t.push_str(&format!("    - \"V{i}={{{{ big }}}}\"\n"));
    }
    let errs = errors(&t, &[("big", s(&big))]);
    assert_eq!(errs.len(), 1, "{errs:#?}");
    assert!(errs[0].message.contains("exceed"), "{}", errs[0]);
    assert!(errs[0].line > 15, "{}", errs[0]);
}

#[test]
fn fuel_limit_is_quick() {
    let mut t = IPADDR.to_owned();
    t.push_str("  env:\n");
    for _ in 0..30_000 {
        t.push_str("    - \"{{ a|d|d|d|d }}\"\n");
    }
    let start = Instant::now();
    let errs = errors(&t, &[]);
    assert!(
        start.elapsed() < Duration::from_secs(10),
        "{:?}",
        start.elapsed()
    );
    assert_eq!(errs.len(), 1, "{errs:#?}");
    assert!(errs[0].message.contains("steps"), "{}", errs[0]);
}

#[test]
fn errors_everywhere_are_all_reported() {
    let t = IPADDR
        .replace("python service.py", "\"{{ x\"")
        .replace("port: 10000\nportal", "port: \"{{ 'a' * 3 }}\"\nportal")
        .replace("appname: ipaddr-resource", "appname: nope");
    let errs = errors(&t, &[]);
    let lines: Vec<usize> = errs.iter().map(|e| e.line).collect();
    assert_eq!(lines, [1, 7, 9], "{errs:#?}");
}

// ---- the corpus -------------------------------------------------------------------

fn corpus_dir() -> PathBuf {
    match std::env::var_os("LAIN_YAML_CORPUS") {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/lain-yaml"),
    }
}

/// `(file name, text)` of every corpus file under real/.
fn real_files() -> Vec<(String, String)> {
    let dir = corpus_dir().join("real");
    let mut out: Vec<(String, String)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("the corpus is missing: {} ({e})", dir.display()))
        .map(|e| {
            let path = e.expect("a directory entry").path();
            let text = std::fs::read_to_string(&path).expect("a corpus file");
            (
                path.file_name()
                    .unwrap_or_default()
                    .to_string_lossy()
                    .into_owned(),
                text,
            )
        })
        .collect();
    out.sort();
    out
}

fn top_value<'a>(text: &'a str, key: &str) -> Option<&'a str> {
    text.lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))
        .map(str::trim)
}

/// A white-paper excerpt that leaves out `build:` (LAIN rejected it for
/// that alone, see MANIFEST.tsv).
const EXCERPTS: &[&str] = &["laincloud__white-paper__usermanual_resource.md_L8.yaml"];

#[test]
fn every_corpus_resource_instantiates() {
    let sample = params(&[
        ("memory", s("128m")),
        ("num_instances", ResourceParam::Integer(2)),
        ("pool_size", s("64m")),
    ]);
    let mut resources = 0;
    for (file, text) in real_files() {
        if top_value(&text, "apptype") != Some("resource") {
            continue;
        }
        resources += 1;
        let name = top_value(&text, "appname").expect("an appname");
        let result = instantiate(
            &text,
            &file,
            name,
            "sample-client",
            &sample,
            &ParseOptions::default(),
        );
        let v = if EXCERPTS.contains(&file.as_str()) {
            let d = result.expect_err("an excerpt without build");
            let errs: Vec<_> = d.errors().collect();
            assert_eq!(errs.len(), 1, "{file}:\n{d}");
            assert!(errs[0].message.contains("missing `build:`"), "{file}:\n{d}");
            let whole = format!("{text}build:\n  base: b\n  script: []\n");
            instantiate(
                &whole,
                &file,
                name,
                "sample-client",
                &sample,
                &ParseOptions::default(),
            )
        } else {
            result
        }
        .unwrap_or_else(|d| panic!("{file} does not instantiate:\n{d}"));
        assert_eq!(v.conf.appname, format!("resource.{name}.sample-client"));
        assert!(v
            .conf
            .procs()
            .filter(|p| p.kind == ProcKind::Portal)
            .all(|p| p.allow_clients.as_deref() == Some("sample-client")));
        // Nothing templated is left.
        let json = serde_json::to_string(&v.conf).expect("serializes");
        assert!(!json.contains("{{"), "{file}: {json}");
    }
    assert!(resources >= 4, "found {resources} resources");
}

/// Each client in the corpus that uses a resource of the corpus gets an
/// instance that offers the services it asks for, to it alone.
#[test]
fn corpus_clients_get_their_services() {
    let files = real_files();
    let opts = ParseOptions::default();
    let mut pairs = 0;
    for (file, text) in &files {
        if !text.contains("use_resources") {
            continue;
        }
        let Ok(client) = parse(file, text, &opts) else {
            continue; // INVALID in MANIFEST.tsv; the corpus test checks that.
        };
        for (resource, use_) in &client.conf.use_resources {
            let Some((rfile, template)) = files.iter().find(|(_, t)| {
                top_value(t, "appname") == Some(resource.as_str())
                    && top_value(t, "apptype") == Some("resource")
                    && t.contains("build:")
            }) else {
                continue;
            };
            pairs += 1;
            let v = instantiate(
                template,
                rfile,
                resource,
                &client.conf.appname,
                &use_.params,
                &opts,
            )
            .unwrap_or_else(|d| panic!("{file} -> {rfile}:\n{d}"));
            for svc in &use_.services {
                let portal = v
                    .conf
                    .procs()
                    .find(|p| p.service_name.as_deref() == Some(svc.as_str()))
                    .unwrap_or_else(|| panic!("{rfile} offers no service {svc}"));
                assert_eq!(
                    portal.allow_clients.as_deref(),
                    Some(client.conf.appname.as_str())
                );
            }
        }
    }
    assert!(pairs >= 1, "no client of a corpus resource found");
}
