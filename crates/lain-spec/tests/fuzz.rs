//! No input may panic `parse`, and every rejection must point into the
//! file. Property tests over raw bytes, YAML-ish text and generated
//! lain.yaml-shaped documents, plus hand-made pathological inputs.

use lain_spec::{parse, LainConf, ParseOptions, ResourceParam};
use proptest::prelude::*;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// Parses and checks the invariants that hold for any input.
fn check(text: &str) {
    let opts = ParseOptions::default();
    match parse("fuzz.yaml", text, &opts) {
        Ok(v) => {
            // What validates can be stored and read back unchanged.
            let json = serde_json::to_string(&v.conf).expect("a valid conf serializes");
            let back: LainConf = serde_json::from_str(&json).expect("and deserializes");
            assert_eq!(back, v.conf);
            for w in &v.warnings {
                assert!(w.line >= 1 && w.col >= 1, "{w}");
            }
            router_safe(&v.conf);
        }
        Err(d) => {
            assert!(d.errors().next().is_some(), "rejected without an error");
            // YAML ends lines at `\r\n`, `\r` or `\n`; a position may be
            // just past the last line break.
            let lines = text.replace("\r\n", "\n").matches(['\n', '\r']).count() + 1;
            for e in &d {
                assert!(e.line >= 1 && e.line <= lines, "line outside the file: {e}");
                assert!(e.col >= 1, "{e}");
                assert!(!e.message.is_empty());
            }
            assert!(!d.to_string().is_empty());
        }
    }
}

/// What reaches the router's nginx configuration and the host's paths
/// from an accepted file is plain: mountpoints are normalised DNS names and
/// paths, health checks clean paths, logs stay under /lain/logs.
fn router_safe(conf: &LainConf) {
    for (p, m) in conf.mountpoints() {
        let parsed = lain_spec::parse_mountpoint(m)
            .unwrap_or_else(|e| panic!("{}: stored mountpoint {m:?} is invalid: {e}", p.name));
        assert_eq!(parsed.mountpoint, m, "stored mountpoints are normalised");
        assert!(!parsed.lowercased && !m.starts_with('/'), "{m:?}");
    }
    for p in conf.procs() {
        if let Some(h) = &p.healthcheck {
            assert_eq!(lain_spec::path_problem(h), None, "healthcheck {h:?}");
        }
        for l in &p.logs {
            assert!(!l.is_empty() && !l.starts_with('/'), "log {l:?}");
            assert!(!l.split('/').any(|c| c == ".."), "log {l:?}");
            assert!(!l.chars().any(char::is_control), "log {l:?}");
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn hostile_mountpoints_and_paths_never_get_through(
        mps in prop::collection::vec("[a-zA-Z0-9./;{}$# \"'\\\\*:?%_~\n\t-]{0,24}", 0..4),
        hc in "[a-zA-Z0-9./;{}$# \"'\\\\?%_~\n-]{0,16}",
        logs in prop::collection::vec("[a-z./\n]{0,12}", 0..3),
        name in prop::sample::select(&["web", "web.api"][..]),
    ) {
        let quote = |s: &String| serde_json::to_string(s).expect("a string serializes");
        let doc = format!(
            "appname: hello\nbuild:\n  base: b\n  script: [make]\n{name}:\n  cmd: x\n  \
             mountpoint: [{}]\n  healthcheck: {}\n  logs: [{}]\n",
            mps.iter().map(quote).collect::<Vec<_>>().join(", "),
            quote(&hc),
            logs.iter().map(quote).collect::<Vec<_>>().join(", "),
        );
        check(&doc);
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..1024)) {
        check(&String::from_utf8_lossy(&bytes));
    }

    #[test]
    fn yamlish_text_never_panics(text in "[a-z0-9 :\\-\\[\\]{}#&*!|>'\"%@`,.?~=<\n\t]{0,400}") {
        check(&text);
    }
}

// ---- structured documents ------------------------------------------------------

/// A YAML value to render; `flow` picks `[a, b]` / `{k: v}` over block style.
#[derive(Debug, Clone)]
enum Y {
    Scalar(String),
    List(Vec<Y>, bool),
    Map(Vec<(String, Y)>, bool),
}

const SCALARS: &[&str] = &[
    "yes",
    "no",
    "on",
    "off",
    "true",
    "~",
    "null",
    "",
    "0",
    "1",
    "80",
    "-2",
    "0x50",
    "010",
    "1:20",
    "99999999999999999999999",
    "1.5",
    ".inf",
    "2016-09-13",
    "=",
    "32m",
    "256M",
    "1g",
    "256mb",
    "0m",
    "/ping",
    "ping",
    "/",
    "/api",
    "a.example.com/x",
    "/lain/app",
    "..",
    "../x",
    "/lain/app/../../etc/x",
    "conf/secret",
    "{{ memory|default('64M') }}",
    "9501:80/udp",
    "9500",
    "80:tcp",
    "uu80:udp",
    "constraint:group==a",
    "affinity:a!=b",
    "group=a",
    "key:value",
    "A=1",
    "NOVALUE",
    "web",
    "worker",
    "oneshot",
    "portal",
    "cron",
    "multi",
    "single",
    "**",
    "./app -p 80",
    "\"quoted\"",
    "'single'",
    "\"80\"",
    "'yes'",
    "#comment",
    "a # trailing",
    "&anchor x",
    "*nope",
    "!!str 80",
    "!!int x",
    "!custom v",
    "|",
    ">",
    "- dash",
    "? q",
    ": colon",
    "x: y",
    "[1, 2",
    "{a: b",
    "%TAG",
    "@at",
    "`tick",
    "\t",
    "é",
    "<<",
];

/// Keys beyond the proc keys (`lain_spec::PROC_KEYS`) that the generator
/// mixes in: nested keys, prefixes and near misses.
const EXTRA_KEYS: &[&str] = &[
    "type",
    "portal",
    "service_name",
    "allow_clients",
    "dns_search",
    "backup_full",
    "backup_increment",
    "schedule",
    "expire",
    "pre_run",
    "post_run",
    "dirs",
    "options",
    "interval",
    "retries",
    "src",
    "dest",
    "services",
    "version",
    "script",
    "keep",
    "build_arg",
    "base",
    "slack",
    "<<",
    "9501:80",
    "80",
    "yes",
    "~",
    "x y",
];

/// Section keys beyond `lain_spec::TOP_KEYS`: proc sections, near misses.
const SECTION_KEYS: &[&str] = &[
    "web",
    "web.admin",
    "web.web",
    "worker",
    "worker.w",
    "worker.api",
    "web.api",
    "proc.api",
    "oneshot",
    "oneshot.o",
    "proc.p",
    "proc.web",
    "portal.portal-p",
    "service.s",
    "service.p",
    "cron.x",
    "portal",
    "web.a_b",
    "secret_files",
    "webb",
    "proc.",
    "80",
];

fn scalar() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => prop::sample::select(SCALARS).prop_map(str::to_owned),
        1 => "[a-zA-Z0-9/._=:-]{0,12}",
        1 => any::<i64>().prop_map(|i| i.to_string()),
    ]
}

fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        6 => prop::sample::select([lain_spec::PROC_KEYS, EXTRA_KEYS].concat()).prop_map(str::to_owned),
        1 => "[a-z_]{1,8}",
    ]
}

fn value() -> impl Strategy<Value = Y> {
    scalar()
        .prop_map(Y::Scalar)
        .prop_recursive(4, 48, 6, |inner| {
            prop_oneof![
                (prop::collection::vec(inner.clone(), 0..5), any::<bool>())
                    .prop_map(|(v, f)| Y::List(v, f)),
                (prop::collection::vec((key(), inner), 0..6), any::<bool>())
                    .prop_map(|(v, f)| Y::Map(v, f)),
            ]
        })
}

/// A proc-like body: mostly a mapping of proc keys.
fn section() -> impl Strategy<Value = Y> {
    prop_oneof![
        4 => prop::collection::vec((key(), value()), 0..8).prop_map(|v| Y::Map(v, false)),
        1 => value(),
    ]
}

/// A whole document; half of them start with a valid head so that the
/// proc rules, not the missing appname, are exercised.
fn document() -> impl Strategy<Value = String> {
    (
        any::<bool>(),
        prop::collection::vec(
            (
                prop::sample::select([lain_spec::TOP_KEYS, SECTION_KEYS].concat())
                    .prop_map(str::to_owned),
                section(),
            ),
            0..7,
        ),
    )
        .prop_map(|(head, sections)| {
            let mut out = String::new();
            if head {
                out.push_str("appname: fuzz\nbuild:\n  base: b\n  script: []\n");
            }
            render(&Y::Map(sections, false), 0, &mut out);
            out
        })
}

fn render(y: &Y, indent: usize, out: &mut String) {
    let pad = " ".repeat(indent);
    match y {
        Y::Scalar(s) => {
            out.push_str(&pad);
            out.push_str(s);
            out.push('\n');
        }
        Y::List(..) | Y::Map(..) if is_empty(y) => {
            out.push_str(&pad);
            out.push_str(if matches!(y, Y::List(..)) {
                "[]\n"
            } else {
                "{}\n"
            });
        }
        Y::List(_, true) | Y::Map(_, true) => {
            out.push_str(&pad);
            flow(y, out);
            out.push('\n');
        }
        Y::List(items, false) => {
            for item in items {
                match item {
                    Y::Scalar(s) => out.push_str(&format!("{pad}- {s}\n")),
                    _ => {
                        out.push_str(&format!("{pad}-\n"));
                        render(item, indent + 2, out);
                    }
                }
            }
        }
        Y::Map(entries, false) => {
            for (k, v) in entries {
                match v {
                    Y::Scalar(s) => out.push_str(&format!("{pad}{k}: {s}\n")),
                    _ => {
                        out.push_str(&format!("{pad}{k}:\n"));
                        render(v, indent + 2, out);
                    }
                }
            }
        }
    }
}

fn is_empty(y: &Y) -> bool {
    match y {
        Y::List(v, _) => v.is_empty(),
        Y::Map(v, _) => v.is_empty(),
        Y::Scalar(_) => false,
    }
}

fn flow(y: &Y, out: &mut String) {
    match y {
        Y::Scalar(s) => out.push_str(s),
        Y::List(items, _) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                flow(item, out);
            }
            out.push(']');
        }
        Y::Map(entries, _) => {
            out.push('{');
            for (i, (k, v)) in entries.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                out.push_str(k);
                out.push_str(": ");
                flow(v, out);
            }
            out.push('}');
        }
    }
}

/// Inline values that are right (mostly) for a proc key.
fn good_value(key: &'static str) -> BoxedStrategy<String> {
    let pick = |v: &'static [&'static str]| prop::sample::select(v).prop_map(str::to_owned).boxed();
    match key {
        "cmd" | "entrypoint" => pick(&["./app -p 80", "[./app, \"-x\"]", "", "/init"]),
        "memory" => pick(&["32m", "1g", "256M", "2G", "64m"]),
        "num_instances" | "cpu" => (0..5u32).prop_map(|n| n.to_string()).boxed(),
        "port" => pick(&["80", "8080", "0", "10000"]),
        "ports" => pick(&["\"9501:80/udp\"", "{9502: , \"9503:53/udp\": }", "[9504]"]),
        "env" => pick(&["[A=1, B=2]", "[PATH=/bin]", "[]"]),
        "volumes" | "persistent_dirs" => pick(&[
            "[/data, logs]",
            "[{/b: {backup_full: {schedule: \"0 3 * * *\"}}}]",
        ]),
        "secret_files" => pick(&["[conf/x, /etc/y]", "[secret]"]),
        "logs" => pick(&["[a.log, b.log]", "[]"]),
        "mountpoint" => pick(&["[/api]", "[a.example.com, /x]", "[/]"]),
        "https_only" | "stateful" | "secret_files_bypass" => pick(&["true", "false", "yes", "off"]),
        "healthcheck" => pick(&["/ping", "/"]),
        "setup_time" => (0..=120u32).prop_map(|n| n.to_string()).boxed(),
        "kill_timeout" => (10..=60u32).prop_map(|n| n.to_string()).boxed(),
        "labels" => pick(&["[a:b]", "role:router"]),
        "filters" => pick(&["[constraint:group==x]", "affinity:a!=b"]),
        "type" => pick(&["web", "worker", "oneshot"]),
        "service_name" => pick(&["svc", "echo"]),
        "allow_clients" => pick(&["\"**\"", "app1"]),
        "portal" => pick(&["{cmd: ./proxy, port: 4321}", "{allow_clients: \"**\"}"]),
        "container_healthcheck" => pick(&["{cmd: curl localhost, options: {retries: 3}}"]),
        "cloud_volumes" => pick(&["{dirs: [/c]}", "{type: single, dirs: [/d]}"]),
        _ => pick(&["nobody", "/srv", "registry.lain.local/x:1"]),
    }
}

const PROC_SECTION_NAMES: &[&str] = &[
    "web",
    "web.admin",
    "web.web",
    "worker",
    "worker.w",
    "oneshot",
    "oneshot.o",
    "proc.p",
    "proc.web",
    "portal.portal-p",
    "service.s",
    "service.api",
];

/// Keys of typed procs, portals and services (`lain_spec::PROC_KEYS` plus the
/// section-specific ones).
const SECTION_PROC_KEYS: &[&str] = &["type", "portal", "service_name", "allow_clients"];

/// One `key: value` line of a proc: usually a sensible value, sometimes junk.
fn proc_line() -> impl Strategy<Value = String> {
    prop::sample::select([lain_spec::PROC_KEYS, SECTION_PROC_KEYS].concat()).prop_flat_map(|k| {
        prop_oneof![
            6 => good_value(k),
            1 => scalar(),
        ]
        .prop_map(move |v| format!("  {k}: {v}\n"))
    })
}

/// Documents shaped like real lain.yaml files, so that many validate and
/// the model, defaults and serialization get exercised too.
fn lainish_document() -> impl Strategy<Value = String> {
    let section = (
        prop::sample::select(PROC_SECTION_NAMES),
        prop::collection::vec(proc_line(), 0..7),
    )
        .prop_map(|(name, lines)| format!("{name}:\n  cmd: x\n{}", lines.concat()));
    (
        prop::sample::select(&["hello", "foo-bar", "a1", "bad_name"][..]),
        prop::collection::vec(section, 0..5),
        prop::sample::select(
            &[
                "",
                "release:\n  dest_base: u\n  copy: [a]\n",
                "use_services:\n  a: [b]\n",
            ][..],
        ),
    )
        .prop_map(|(app, sections, extra)| {
            format!(
                "appname: {app}\nbuild:\n  base: b\n  script: [make]\n{extra}{}",
                sections.concat()
            )
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn structured_documents_never_panic(doc in document()) {
        check(&doc);
    }

    #[test]
    fn lain_shaped_documents_never_panic(doc in lainish_document()) {
        check(&doc);
    }
}

// ---- pathological inputs ---------------------------------------------------------

/// Runs `check` and asserts it is quick even in a debug build.
/// A hang guard, not a performance figure (those are in the benches): a
/// quadratic path on these ~1 MiB inputs takes many minutes, a linear one
/// well under a second, so a bound this loose only trips on the former,
/// however loaded the machine.
fn quick(text: &str) {
    let start = Instant::now();
    check(text);
    let took = start.elapsed();
    assert!(
        took < Duration::from_secs(120),
        "took {took:?} on {} bytes: is a path quadratic?",
        text.len()
    );
}

#[test]
fn deep_nesting_is_bounded() {
    quick(&"[".repeat(100_000));
    quick(&"{".repeat(100_000));
    quick(&format!("a: {}", "[".repeat(100_000)));
    quick(&"- ".repeat(100_000));
    let nested_maps: String = (0..5_000)
        .map(|i| format!("{}k:\n", " ".repeat(i)))
        .collect();
    quick(&nested_maps);
    quick(&format!("{}x{}", "[".repeat(60), "]".repeat(60)));
}

#[test]
fn deep_but_legal_nesting_is_an_error_not_a_crash() {
    let text = format!(
        "appname: a\nbuild:\n  base: b\n  script: []\nweb:\n  cmd: {}x{}\n",
        "[".repeat(80),
        "]".repeat(80)
    );
    let err = parse("lain.yaml", &text, &ParseOptions::default()).expect_err("too deep");
    // `  cmd: ` then the brackets: the top mapping and `web:` are two
    // levels, so the 63rd `[` (column 7 + 63) is one too many.
    assert_eq!((err.0[0].line, err.0[0].col), (6, 70));
}

#[test]
fn alias_bombs_are_bounded() {
    let mut text = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
    for i in 1..20 {
        let items = vec![format!("*a{}", i - 1); 10].join(", ");
        text.push_str(&format!("a{i}: &a{i} [{items}]\n"));
    }
    quick(&text);
    let big = "y".repeat(500_000);
    quick(&format!(
        "s: &s {big}\nl: [{}]\n",
        vec!["*s"; 100].join(", ")
    ));
}

#[test]
fn big_files_stay_linear() {
    // ~1 MiB of distinct keys, of duplicate keys, of procs and of list items.
    let keys: String = (0..90_000).map(|i| format!("k{i}: v\n")).collect();
    quick(&keys[..keys.len().min(lain_spec::MAX_FILE_BYTES)]);
    quick(&"a: 1\n".repeat(200_000));
    let head = "appname: a\nbuild:\n  base: b\n  script: []\n";
    let procs: String = (0..30_000)
        .map(|i| format!("worker.w{i}:\n  cmd: x\n"))
        .collect();
    quick(&format!("{head}{procs}"));
    let dup_procs: String = (0..30_000)
        .map(|i| format!("proc.w{}:\n  cmd: x\n", i % 2))
        .collect();
    quick(&format!("{head}{dup_procs}"));
    let logs: String = (0..60_000).map(|i| format!("    - l{i}.log\n")).collect();
    quick(&format!("{head}web:\n  cmd: x\n  logs:\n{logs}"));
    let long_key = "k".repeat(900_000);
    quick(&format!("{head}{long_key}: 1\n"));
    quick(&format!("{head}web:\n  {long_key}: 1\n"));
}

#[test]
fn odd_characters_do_not_crash() {
    for text in [
        "\u{feff}appname: a\n",
        "appname: a\0\n",
        "appname: \u{202e}x\n",
        "\r\n\r\n",
        "appname: a\rbuild: b\r",
        "%YAML 1.1\n---\nappname: a\n",
        "%FOO bar\n---\na: 1\n",
        "--- |\n  text\n",
        "...\n",
        "? [a]\n: b\n",
        "[a]: b\n",
        "{a: 1}: b\n",
        "&a a: *a\n",
        "a: *unknown\n",
        "a: !!binary aGVsbG8=\n",
        "a: !!set {x}\n",
        "<<: [1, 2]\n",
        "<<: 1\n",
    ] {
        quick(text);
    }
}

// ---- resource templates ----------------------------------------------------------

/// Instantiates a template and checks what holds for any input: an
/// instance is named and fenced for its client and router-safe; a refusal
/// points into the file and names the resource and the client.
fn check_instance(text: &str, params: &BTreeMap<String, ResourceParam>) {
    let opts = ParseOptions::default();
    let start = Instant::now();
    let result = lain_spec::instantiate(text, "res.yaml", "res", "cli", params, &opts);
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "{:?}",
        start.elapsed()
    );
    match result {
        Ok(v) => {
            assert_eq!(v.conf.appname, "resource.res.cli");
            assert_eq!(v.conf.apptype, lain_spec::AppType::App);
            for p in v.conf.procs() {
                if p.kind == lain_spec::ProcKind::Portal {
                    assert_eq!(p.allow_clients.as_deref(), Some("cli"));
                }
            }
            let json = serde_json::to_string(&v.conf).expect("a valid conf serializes");
            let back: LainConf = serde_json::from_str(&json).expect("and deserializes");
            assert_eq!(back, v.conf);
            router_safe(&v.conf);
        }
        Err(d) => {
            assert!(d.errors().next().is_some(), "rejected without an error");
            let lines = text.replace("\r\n", "\n").matches(['\n', '\r']).count() + 1;
            for e in &d {
                assert!(e.line >= 1 && e.line <= lines, "line outside the file: {e}");
                assert!(e.col >= 1, "{e}");
                assert!(
                    e.message.contains("`res`") && e.message.contains("`cli`"),
                    "{e}"
                );
            }
        }
    }
}

/// A template expression: mostly plausible, sometimes forbidden or broken.
fn expression() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => prop::sample::select(&[
            "{{ memory|default('64m') }}",
            "{{ n|default(3)|int(3) }}",
            "{{ n|int }}",
            "{{ flag|default(false) }}",
            "{{ memory if memory is defined else '32m' }}",
            "{{ x|lower|trim }}",
            "{{ nothing }}",
            "{# note #}{{ n }}",
            "{{ n|int(default=2, base=16) }}",
            "{{ x|int(1, 99) }}",
        ][..]).prop_map(str::to_owned),
        2 => "\\{\\{ [a-z0-9|()'\",.~*+<=!% -]{0,16} \\}\\}",
        1 => "\\{[%#{] ?[a-z ]{0,8}[%#}]?\\}?",
        1 => "[a-z{}%#]{0,10}",
    ]
}

fn templated_value() -> impl Strategy<Value = String> {
    (
        "[a-z0-9 ./=-]{0,6}",
        expression(),
        "[a-z0-9 ./=-]{0,6}",
        0..4usize,
    )
        .prop_map(|(pre, expr, post, style)| {
            let text = format!("{pre}{expr}{post}");
            match style {
                0 => text,
                1 => format!("'{}'", text.replace('\'', "''")),
                _ => serde_json::to_string(&text).expect("a string serializes"),
            }
        })
}

fn resource_template() -> impl Strategy<Value = String> {
    let line = (
        prop::sample::select([lain_spec::PROC_KEYS, SECTION_PROC_KEYS].concat()),
        prop_oneof![2 => templated_value(), 1 => scalar()],
    )
        .prop_map(|(k, v)| format!("  {k}: {v}\n"));
    let section = (
        prop::sample::select(PROC_SECTION_NAMES),
        prop::collection::vec(line, 0..5),
    )
        .prop_map(|(name, lines)| format!("{name}:\n  cmd: x\n{}", lines.concat()));
    (
        prop::sample::select(&["res", "other", "\"{{ name }}\""][..]),
        prop::sample::select(&["resource", "app", "\"{{ t }}\""][..]),
        prop::collection::vec(section, 0..4),
    )
        .prop_map(|(app, kind, sections)| {
            format!(
                "appname: {app}\napptype: {kind}\nbuild:\n  base: b\n  script: []\n{}",
                sections.concat()
            )
        })
}

fn resource_params() -> impl Strategy<Value = BTreeMap<String, ResourceParam>> {
    let value = prop_oneof![
        any::<i64>().prop_map(ResourceParam::Integer),
        any::<bool>().prop_map(ResourceParam::Bool),
        "[a-z0-9{}%:\n -]{0,12}".prop_map(ResourceParam::String),
        prop::sample::select(&["64m", "1g", "3", "true"][..])
            .prop_map(|s| ResourceParam::String(s.to_owned())),
    ];
    prop::collection::btree_map(
        prop::sample::select(&["memory", "n", "x", "flag", "name", "t", "services"][..])
            .prop_map(str::to_owned),
        value,
        0..5,
    )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 500, ..ProptestConfig::default() })]

    #[test]
    fn resource_templates_never_panic(text in resource_template(), params in resource_params()) {
        check_instance(&text, &params);
    }

    #[test]
    fn arbitrary_templates_never_panic(
        text in "[a-z0-9 :\\-\\[\\]{}#&*!|>'\"%@`,.?~=<()+\n]{0,300}",
        params in resource_params(),
    ) {
        check_instance(&text, &params);
    }
}

#[test]
fn pathological_expressions_are_bounded() {
    let head = "appname: res\napptype: resource\nbuild:\n  base: b\n  script: []\nweb:\n  cmd: ";
    let none = BTreeMap::new();
    // Chains that nest as deep as the token cap allows, and far deeper
    // ones (refused before minijinja's recursive parser sees them), and
    // values too long for it.
    for n in [24, 3_000] {
        for expr in [
            format!("{{{{ {}x{} }}}}", "(".repeat(2 * n), ")".repeat(2 * n)),
            format!("{{{{ {}x{} }}}}", "[".repeat(2 * n), "]".repeat(2 * n)),
            format!("{{{{ {}x }}}}", "not ".repeat(4 * n)),
            format!("{{{{ {}x }}}}", "-".repeat(4 * n)),
            format!("{{{{ x{} }}}}", "|d".repeat(2 * n)),
            format!("{{{{ x{} }}}}", ".a".repeat(2 * n)),
            format!("{{{{ x{} }}}}", " or x".repeat(2 * n)),
            format!("{{{{ x{} }}}}", " == x".repeat(2 * n)),
            format!("{{{{ {}1 }}}}", "x if x else ".repeat(n)),
            "{{ x }".repeat(n),
            "{#".repeat(n),
        ] {
            let doc = format!("{head}{}\n", serde_json::to_string(&expr).expect("json"));
            check_instance(&doc, &none);
        }
    }
    for expr in [
        "{% raw %}{{ x }}{% endraw %}".to_owned(),
        format!("{{{{ x }}}}{}", "y".repeat(200_000)),
        format!("{{{{ {}x }}}}", "not ".repeat(100_000)),
    ] {
        check_instance(
            &format!("{head}{}\n", serde_json::to_string(&expr).expect("json")),
            &none,
        );
    }
}
