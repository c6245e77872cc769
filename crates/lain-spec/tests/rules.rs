//! One test per rule, with the exact position of each diagnostic.

use lain_spec::{parse, Diagnostic, ParseOptions, Severity, Validated};

/// Lines 1-4 of every test file; sections under test start on line 5.
const HEAD: &str = "appname: hello\nbuild:\n  base: golang\n  script: [go build]\n";

fn opts() -> ParseOptions {
    ParseOptions::default()
}

fn run(text: &str) -> Result<Validated, Vec<Diagnostic>> {
    parse("lain.yaml", text, &opts()).map_err(|d| d.0)
}

fn ok(text: &str) -> Validated {
    match run(text) {
        Ok(v) => v,
        Err(d) => panic!(
            "expected valid, got:\n{}",
            d.iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("\n")
        ),
    }
}

/// The errors of a rejected file as `(line, col, message)`.
fn errors(text: &str) -> Vec<(usize, usize, String)> {
    match run(text) {
        Ok(_) => panic!("expected errors, file was accepted:\n{text}"),
        Err(d) => d
            .into_iter()
            .filter(|d| d.severity == Severity::Error)
            .map(|d| (d.line, d.col, d.message))
            .collect(),
    }
}

/// Asserts exactly one error, at `line:col`, whose message contains every needle.
fn one_error(text: &str, line: usize, col: usize, needles: &[&str]) {
    let errs = errors(text);
    assert_eq!(errs.len(), 1, "expected one error, got {errs:#?}");
    let (l, c, m) = &errs[0];
    assert_eq!((*l, *c), (line, col), "position of: {m}");
    for n in needles {
        assert!(m.contains(n), "message lacks {n:?}: {m}");
    }
}

fn with(section: &str) -> String {
    format!("{HEAD}{section}")
}

// ---- YAML level -----------------------------------------------------------

#[test]
fn tab_indentation_points_at_the_tab() {
    let text = "appname: tabdemo\nbuild:\n\tbase: golang:1.8\n";
    one_error(text, 3, 1, &["tab", "spaces"]);
}

#[test]
fn yaml_syntax_error_has_position() {
    one_error("appname: [a, b\n", 2, 1, &["YAML syntax error"]);
}

#[test]
fn empty_file_and_non_mapping() {
    one_error("", 1, 1, &["empty", "appname"]);
    one_error("# nothing\n", 1, 1, &["empty"]);
    one_error(
        "- a\n- b\n",
        1,
        1,
        &["top level must be a mapping", "a list"],
    );
    one_error("hello\n", 1, 1, &["top level must be a mapping", "`hello`"]);
}

#[test]
fn oversized_file_is_rejected_up_front() {
    let big = format!("{HEAD}# {}\n", "x".repeat(lain_spec::MAX_FILE_BYTES));
    one_error(&big, 1, 1, &["at most 1048576 bytes"]);
}

#[test]
fn byte_order_mark_and_crlf_are_fine() {
    let v = ok("\u{feff}appname: a\r\nbuild:\r\n  base: b\r\n  script: []\r\n");
    assert_eq!(v.conf.appname, "a");
    one_error(
        "\u{feff}appname: a\r\nbuild:\r\n  base: b\r\n  script: []\r\nweb:\r\n  cmd: x\r\n  memory: 1x\r\n",
        7,
        11,
        &["`web.memory`"],
    );
}

#[test]
fn second_document_is_rejected() {
    one_error(
        &format!("{HEAD}---\nappname: x\n"),
        5,
        1,
        &["second YAML document"],
    );
}

#[test]
fn duplicate_yaml_keys_warn_and_the_last_wins() {
    let v = ok(&with("web:\n  cmd: a\n  memory: 64m\n  memory: 128m\n"));
    assert_eq!(v.conf.proc("web").map(|p| p.memory.as_str()), Some("128m"));
    assert_eq!(v.warnings.len(), 1);
    assert_eq!((v.warnings[0].line, v.warnings[0].col), (8, 3));
    assert!(v.warnings[0].message.contains("duplicate key"));
}

#[test]
fn bare_equals_is_refused_like_pyyaml() {
    one_error(&with("web:\n  cmd: =\n"), 6, 8, &["`=`", "quote"]);
}

#[test]
fn unknown_tags_are_refused() {
    one_error(
        &with("web:\n  cmd: !shell ls\n"),
        6,
        15,
        &["unsupported tag `!shell`"],
    );
}

// ---- top level --------------------------------------------------------------

#[test]
fn missing_appname_and_build() {
    let errs = errors("web:\n  cmd: x\n");
    assert_eq!(errs.len(), 2, "{errs:#?}");
    assert!(errs.iter().all(|(l, c, _)| (*l, *c) == (1, 1)));
    assert!(errs
        .iter()
        .any(|(_, _, m)| m.contains("missing `appname:`")));
    assert!(errs.iter().any(|(_, _, m)| m.contains("missing `build:`")));
}

#[test]
fn bad_appnames() {
    let t = |name: &str| format!("appname: {name}\nbuild:\n  base: b\n  script: []\n");
    one_error(&t("my_app!"), 1, 10, &["not a valid app name", "[a-zA-Z]"]);
    one_error(&t("1app"), 1, 10, &["not a valid app name"]);
    one_error(&t("a--b"), 1, 10, &["not a valid app name"]);
    one_error(&t("a.b"), 1, 10, &["not a valid app name"]);
    one_error(&t("service"), 1, 10, &["reserved"]);
    one_error(&t("resource"), 1, 10, &["reserved"]);
    one_error(&t("portal"), 1, 10, &["reserved"]);
    one_error(
        &t("yes"),
        1,
        10,
        &["expected a string", "boolean", "quote it"],
    );
    one_error(&t("123"), 1, 10, &["expected a string", "integer"]);
    ok(&t("foo-bar-1"));
}

#[test]
fn apptype_must_be_app_or_resource() {
    one_error(
        &format!("{HEAD}apptype: service\n"),
        5,
        10,
        &["`app` or `resource`"],
    );
    ok(&format!("{HEAD}apptype: resource\n"));
}

#[test]
fn unknown_top_level_key_suggests() {
    one_error(
        &with("webb:\n  cmd: x\n"),
        5,
        1,
        &["unknown top-level key `webb`", "did you mean `web`?"],
    );
    one_error(
        &with("notfy:\n  slack: x\n"),
        5,
        1,
        &["did you mean `notify`?"],
    );
}

#[test]
fn proc_key_at_top_level_is_explained() {
    one_error(
        &with("secret_files:\n  - a\n"),
        5,
        1,
        &["proc setting", "under a proc"],
    );
}

#[test]
fn unknown_proc_prefix() {
    one_error(
        &with("cron.nightly:\n  cmd: x\n"),
        5,
        1,
        &[
            "unknown section `cron.nightly`",
            "`cron` is not a proc type",
            "proc.NAME",
        ],
    );
    one_error(
        &with("wokrer.x:\n  cmd: x\n"),
        5,
        1,
        &["did you mean `worker`?"],
    );
}

#[test]
fn section_names() {
    one_error(
        &with("portal:\n  cmd: x\n"),
        5,
        1,
        &["needs a name", "portal.NAME"],
    );
    one_error(&with("proc.:\n  cmd: x\n"), 5, 1, &["needs a name"]);
    one_error(
        &with("web.my_admin:\n  cmd: x\n"),
        5,
        1,
        &["`my_admin` is not a valid proc name"],
    );
    one_error(
        &with("worker.a.b:\n  cmd: x\n"),
        5,
        1,
        &["`a.b` is not a valid proc name"],
    );
}

#[test]
fn sections_must_be_mappings() {
    one_error(
        &with("web:\n"),
        5,
        1,
        &["`web`: expected a mapping", "nothing"],
    );
    one_error(&with("build2: 1\n"), 5, 1, &["unknown top-level key"]);
}

// ---- build / release / test ------------------------------------------------

#[test]
fn build_requires_base_and_script() {
    one_error(
        "appname: a\nbuild:\n  base: b\n",
        2,
        1,
        &["`build` is missing `script:`"],
    );
    one_error(
        "appname: a\nbuild:\n  script: []\n",
        2,
        1,
        &["`build` is missing `base:`"],
    );
    // A present but empty script is fine, as in LAIN.
    ok("appname: a\nbuild:\n  base: b\n  script:\n");
    one_error(
        "appname: a\nbuild:\n",
        2,
        1,
        &["`build`: expected a mapping"],
    );
}

#[test]
fn unknown_build_key_suggests() {
    one_error(
        "appname: a\nbuild:\n  base: b\n  script: []\n  scripts: []\n",
        5,
        3,
        &[
            "unknown key `scripts` in `build`",
            "did you mean `script`?",
            "base, prepare, script",
        ],
    );
}

#[test]
fn prepare_forms() {
    let v = ok("appname: a\nbuild:\n  base: b\n  prepare:\n    - make deps\n  script: []\n");
    let prep = v.conf.build.prepare.expect("prepare");
    assert!(prep.legacy_list);
    assert_eq!(prep.version, "0");
    assert_eq!(prep.script, ["make deps"]);

    let v = ok(
        "appname: a\nbuild:\n  base: b\n  prepare:\n    version: 201706121457\n    keep: [node_modules]\n  script: []\n",
    );
    let prep = v.conf.build.prepare.expect("prepare");
    assert_eq!(prep.version, "201706121457");
    assert_eq!(prep.keep, ["node_modules"]);

    one_error(
        "appname: a\nbuild:\n  base: b\n  prepare:\n    version: \"1.5\"\n  script: []\n",
        5,
        14,
        &["not a valid version", "[a-zA-Z0-9]+"],
    );
    one_error(
        "appname: a\nbuild:\n  base: b\n  prepare:\n  script: []\n",
        4,
        3,
        &["`build.prepare`: expected a mapping", "nothing"],
    );
    // LAIN's schema let unknown prepare keys through: a warning here.
    let v = ok("appname: a\nbuild:\n  base: b\n  prepare:\n    verison: 1\n  script: []\n");
    assert_eq!(v.warnings.len(), 1);
    assert_eq!((v.warnings[0].line, v.warnings[0].col), (5, 5));
    assert!(v.warnings[0].message.contains("did you mean `version`?"));
}

#[test]
fn release_requires_dest_base_and_copy() {
    one_error(
        &format!("{HEAD}release:\n  dest_base: ubuntu\n"),
        5,
        1,
        &["`release` is missing `copy:`"],
    );
    one_error(
        &format!("{HEAD}release:\n  copy: [a]\n"),
        5,
        1,
        &["`release` is missing `dest_base:`"],
    );
    one_error(
        &format!("{HEAD}release:\n  dest_base: u\n  copy:\n    - [a]\n"),
        8,
        7,
        &["`release.copy[0]`: expected a path or `{src: ..., dest: ...}`"],
    );
    one_error(
        &format!("{HEAD}release:\n  dest_base: u\n  copy:\n    - dest: /x\n"),
        8,
        7,
        &["`release.copy[0]` is missing `src:`"],
    );
}

#[test]
fn test_requires_script() {
    let errs = errors(&format!("{HEAD}test:\n  scrpt: [x]\n"));
    assert_eq!(errs.len(), 2, "{errs:#?}");
    assert_eq!((errs[0].0, errs[0].1), (5, 1));
    assert!(errs[0].2.contains("`test` is missing `script:`"));
    assert_eq!((errs[1].0, errs[1].1), (6, 3));
    assert!(errs[1].2.contains("did you mean `script`?"));
    let errs = errors(&format!("{HEAD}test: {{}}\n"));
    assert_eq!((errs[0].0, errs[0].1), (5, 1));
    assert!(errs[0].2.contains("`test` is missing `script:`"));
}

// ---- procs: keys -------------------------------------------------------------

#[test]
fn unknown_proc_key_suggests_and_lists() {
    one_error(
        &with("web:\n  cmd: x\n  memroy: 64m\n"),
        7,
        3,
        &[
            "unknown key `memroy` in `web`",
            "did you mean `memory`?",
            "valid keys in a proc:",
            "num_instances",
        ],
    );
    one_error(
        &with("worker:\n  cmd: x\n  num_instance: 2\n"),
        7,
        3,
        &["did you mean `num_instances`?"],
    );
    // LAIN's parser read dns_search, but its schema rejected it.
    one_error(
        &with("worker:\n  cmd: x\n  dns_search: [a]\n"),
        7,
        3,
        &["unknown key `dns_search`"],
    );
}

#[test]
fn type_only_on_proc_and_service() {
    one_error(
        &with("worker.foo:\n  cmd: x\n  type: web\n"),
        7,
        3,
        &["`type` is not allowed in `worker.foo`", "proc.foo"],
    );
    one_error(
        &with("portal.p:\n  service_name: s\n  type: portal\n"),
        7,
        3,
        &["`type` is not allowed in `portal.p`"],
    );
    one_error(
        &with("proc.nightly:\n  type: cron\n  cmd: x\n"),
        6,
        9,
        &["unknown proc type `cron`", "web, worker, oneshot"],
    );
    one_error(
        &with("proc.p:\n  type: portal\n  cmd: x\n"),
        6,
        9,
        &["portal.NAME"],
    );
    let v = ok(&with("proc.x:\n  type: oneshot\n  cmd: x\n"));
    assert_eq!(
        v.conf.proc("x").map(|p| p.kind),
        Some(lain_spec::ProcKind::Oneshot)
    );
}

#[test]
fn portal_keys_only_on_portals() {
    one_error(
        &with("proc.x:\n  cmd: x\n  service_name: s\n"),
        7,
        3,
        &["`service_name` is not allowed in `proc.x`", "only portals"],
    );
    one_error(
        &with("web:\n  cmd: x\n  allow_clients: \"**\"\n"),
        7,
        3,
        &["`allow_clients` is not allowed"],
    );
    one_error(
        &with("worker:\n  cmd: x\n  portal:\n    cmd: y\n"),
        7,
        3,
        &["only a `service.NAME` section takes a `portal:`"],
    );
}

#[test]
fn portal_needs_service_name() {
    one_error(
        &with("portal.portal-echo:\n  cmd: ./proxy\n"),
        5,
        1,
        &["missing `service_name:`"],
    );
    one_error(
        &with("portal.p:\n  service_name: s\n  allow_clients: [a, b]\n"),
        7,
        18,
        &["`portal.p.allow_clients`: expected a string, found a list"],
    );
}

#[test]
fn service_without_portal() {
    one_error(
        &with("service.echo:\n  cmd: ./echo\n  port: 9000\n"),
        5,
        1,
        &["`service.echo` has no `portal:`", "portal.portal-echo"],
    );
    one_error(
        &with("service.echo:\n  cmd: ./echo\n  portal:\n"),
        7,
        3,
        &["`service.echo.portal`: expected a mapping"],
    );
}

// ---- procs: duplicates ---------------------------------------------------------

#[test]
fn duplicate_proc_names_across_prefixes() {
    let cases = [
        (
            "web.api:\n  cmd: a\n  mountpoint: [/api]\nworker.api:\n  cmd: b\n",
            8,
            "`worker.api` and `web.api` (line 5)",
        ),
        (
            "web.api:\n  cmd: a\n  mountpoint: [/api]\nproc.api:\n  cmd: b\n",
            8,
            "`proc.api` and `web.api` (line 5)",
        ),
        (
            "web:\n  cmd: a\nweb.web:\n  cmd: b\n",
            7,
            "`web.web` and `web` (line 5)",
        ),
        (
            "worker:\n  cmd: a\nproc.worker:\n  cmd: b\n",
            7,
            "`proc.worker` and `worker` (line 5)",
        ),
        (
            "proc.echo:\n  cmd: a\nservice.echo:\n  cmd: b\n  portal:\n    cmd: p\n",
            7,
            "`service.echo` and `proc.echo` (line 5)",
        ),
    ];
    for (section, line, needle) in cases {
        one_error(&with(section), line, 1, &["duplicate proc name", needle]);
    }
    // The portal a service generates clashes with an explicit one.
    one_error(
        &with("service.echo:\n  cmd: a\n  portal:\n    cmd: p\nportal.portal-echo:\n  service_name: echo\n"),
        9,
        1,
        &["duplicate proc name `portal-echo`", "`service.echo.portal` (line 7)"],
    );
}

// ---- procs: values ---------------------------------------------------------------

#[test]
fn memory_strings() {
    one_error(
        &with("web:\n  cmd: x\n  memory: 256mb\n"),
        7,
        11,
        &["`web.memory`", "found `256mb`", "write `256m`"],
    );
    one_error(
        &with("web:\n  cmd: x\n  memory: 256\n"),
        7,
        11,
        &["without a unit", "write `256m`"],
    );
    one_error(
        &with("web:\n  cmd: x\n  memory: 0m\n"),
        7,
        11,
        &["[1-9][0-9]*[mMgG]"],
    );
    one_error(
        &with("web:\n  cmd: x\n  memory: 1.5g\n"),
        7,
        11,
        &["[1-9][0-9]*[mMgG]"],
    );
    for good in ["32m", "32M", "1g", "2G", "1024m"] {
        ok(&with(&format!("web:\n  cmd: x\n  memory: {good}\n")));
    }
}

#[test]
fn num_instances_and_cpu() {
    // A deliberate deviation: LAIN accepted a negative count.
    one_error(
        &with("worker:\n  cmd: x\n  num_instances: -2\n"),
        7,
        18,
        &["-2 is negative"],
    );
    one_error(
        &with("worker:\n  cmd: x\n  num_instances: \"3\"\n"),
        7,
        18,
        &["without quotes"],
    );
    one_error(
        &with("worker:\n  cmd: x\n  num_instances: 1.5\n"),
        7,
        18,
        &["found the number `1.5`"],
    );
    one_error(
        &with("worker:\n  cmd: x\n  cpu: 1a\n"),
        7,
        8,
        &["`worker.cpu`", "found `1a`"],
    );
    one_error(&with("worker:\n  cmd: x\n  cpu: -1\n"), 7, 8, &["negative"]);
    let v = ok(&with("worker:\n  cmd: x\n  num_instances: 0\n  cpu: 2\n"));
    let w = v.conf.proc("worker").expect("worker");
    assert_eq!((w.num_instances, w.cpu), (0, 2));
}

#[test]
fn port_is_an_integer() {
    one_error(
        &with("web:\n  cmd: x\n  port: \"8080\"\n"),
        7,
        9,
        &["without quotes"],
    );
    one_error(
        &with("web:\n  cmd: x\n  port: 80:tcp\n"),
        7,
        9,
        &["takes no protocol", "ports:"],
    );
    one_error(
        &with("web:\n  cmd: x\n  port: eighty\n"),
        7,
        9,
        &["port number", "`eighty`"],
    );
    one_error(
        &with("web:\n  cmd: x\n  port: 70000\n"),
        7,
        9,
        &["1 to 65535"],
    );
    one_error(
        &with("web:\n  cmd: x\n  port: {80: ['type:tcp']}\n"),
        7,
        9,
        &["found a mapping"],
    );
    // 0 means "not set", as in LAIN: a web proc then listens on 80.
    let v = ok(&with("web:\n  cmd: x\n  port: 0\n"));
    assert_eq!(v.conf.proc("web").and_then(|p| p.port), Some(80));
    // YAML 1.1: 0x50 is 80.
    let v = ok(&with("web:\n  cmd: x\n  port: 0x1F90\n"));
    assert_eq!(v.conf.proc("web").and_then(|p| p.port), Some(8080));
}

#[test]
fn ports_mappings() {
    let v = ok(&with(
        "worker:\n  cmd: x\n  ports:\n    9506:8000/udp:\n    9504:\n",
    ));
    let w = v.conf.proc("worker").expect("worker");
    assert_eq!(w.ports.len(), 2);
    assert_eq!(
        (w.ports[0].src, w.ports[0].dst, w.ports[0].proto),
        (9506, 8000, lain_spec::Protocol::Udp)
    );
    assert_eq!(
        (w.ports[1].src, w.ports[1].dst, w.ports[1].proto),
        (9504, 9504, lain_spec::Protocol::Tcp)
    );
    one_error(
        &with("worker:\n  cmd: x\n  ports:\n    80:\n"),
        8,
        5,
        &["cluster port 80 is out of range", "9500 and 10000"],
    );
    one_error(
        &with("worker:\n  cmd: x\n  ports:\n    9501:80:\n    9501/udp:\n"),
        9,
        5,
        &["mapped twice"],
    );
    one_error(
        &with("worker:\n  cmd: x\n  ports: \"9501:99999\"\n"),
        7,
        10,
        &["container port 99999"],
    );
    one_error(
        &with("worker:\n  cmd: x\n  ports: \"abc\"\n"),
        7,
        10,
        &["not a port mapping"],
    );
    let v = ok(&with("worker:\n  cmd: x\n  ports: \"9501/sctp\"\n"));
    assert_eq!((v.warnings[0].line, v.warnings[0].col), (7, 10));
    assert!(v.warnings[0].message.contains("taken as tcp"));
}

#[test]
fn timeouts_are_range_checked() {
    one_error(
        &with("web:\n  cmd: x\n  setup_time: 121\n"),
        7,
        15,
        &["between 0 and 120"],
    );
    one_error(
        &with("web:\n  cmd: x\n  setup_time: -1\n"),
        7,
        15,
        &["between 0 and 120"],
    );
    one_error(
        &with("web:\n  cmd: x\n  kill_timeout: 5\n"),
        7,
        17,
        &["between 10 and 60"],
    );
    one_error(
        &with("web:\n  cmd: x\n  kill_timeout: 61\n"),
        7,
        17,
        &["between 10 and 60"],
    );
    let v = ok(&with(
        "web:\n  cmd: x\n  setup_time: 120\n  kill_timeout: 60\n",
    ));
    let w = v.conf.proc("web").expect("web");
    assert_eq!((w.setup_time, w.kill_timeout), (120, 60));
}

#[test]
fn booleans_follow_yaml_1_1() {
    let v = ok(&with(
        "web:\n  cmd: x\n  stateful: yes\n  https_only: on\n  secret_files_bypass: True\n",
    ));
    let w = v.conf.proc("web").expect("web");
    assert!(w.stateful && w.https_only && w.secret_files_bypass);
    one_error(
        &with("web:\n  cmd: x\n  stateful: \"true\"\n"),
        7,
        13,
        &["remove the quotes"],
    );
    one_error(
        &with("web:\n  cmd: x\n  stateful: 1\n"),
        7,
        13,
        &["true or false"],
    );
}

#[test]
fn commands() {
    let v = ok(&with(
        "web:\n  cmd: ./app  -p 80\n  entrypoint: [\"/init\", \"--\"]\n",
    ));
    let w = v.conf.proc("web").expect("web");
    assert_eq!(
        w.argv(),
        Some(vec!["./app".to_owned(), "-p".to_owned(), "80".to_owned()])
    );
    assert_eq!(
        w.entrypoint,
        Some(lain_spec::Command::Exec(vec!["/init".into(), "--".into()]))
    );
    one_error(
        &with("web:\n  cmd: [\"./app\", 8080]\n"),
        6,
        18,
        &["`web.cmd[1]`", "quote it"],
    );
    one_error(
        &with("web:\n  cmd: {a: b}\n"),
        6,
        8,
        &["expected a command"],
    );
    // `cmd:` left empty is allowed (null), as in LAIN.
    assert_eq!(
        ok(&with("web:\n  cmd:\n"))
            .conf
            .proc("web")
            .and_then(|p| p.cmd.clone()),
        None
    );
}

#[test]
fn typed_proc_without_command_warns() {
    let v = ok(&with("worker:\n  memory: 64m\n"));
    assert_eq!(v.warnings.len(), 1);
    assert_eq!((v.warnings[0].line, v.warnings[0].col), (5, 1));
    assert!(v.warnings[0]
        .message
        .contains("neither `cmd:` nor `entrypoint:`"));
}

#[test]
fn healthcheck_on_a_worker_is_a_warning() {
    let v = ok(&with(
        "worker.consumer:\n  cmd: ./consume\n  healthcheck: /ping\n",
    ));
    assert_eq!(v.warnings.len(), 1);
    let w = &v.warnings[0];
    assert_eq!((w.line, w.col, w.severity), (7, 3, Severity::Warning));
    assert!(
        w.message.contains("only applies to web procs"),
        "{}",
        w.message
    );
    assert!(w.to_string().starts_with("lain.yaml:7:3: warning: "), "{w}");
    // It is dropped, as LAIN dropped it.
    assert_eq!(
        v.conf.proc("consumer").and_then(|p| p.healthcheck.clone()),
        None
    );
}

#[test]
fn web_only_keys_elsewhere_warn() {
    let v = ok(&with(
        "worker:\n  cmd: x\n  mountpoint: [a.com]\n  https_only: true\n",
    ));
    let pos: Vec<_> = v.warnings.iter().map(|w| (w.line, w.col)).collect();
    assert_eq!(pos, vec![(7, 3), (8, 3)]);
}

#[test]
fn web_proc_not_named_web_needs_mountpoint() {
    one_error(
        &with("web:\n  cmd: a\nweb.admin:\n  cmd: b\n  port: 8081\n"),
        7,
        1,
        &[
            "`web.admin` is a web proc not named `web`",
            "mountpoint",
            "hello.lain.local",
        ],
    );
    one_error(
        &with("proc.iii:\n  type: web\n  cmd: x\n"),
        5,
        1,
        &["`proc.iii` is a web proc"],
    );
    one_error(
        &with("web.admin:\n  cmd: b\n  mountpoint: []\n"),
        5,
        1,
        &["needs its own `mountpoint:`"],
    );
    // `proc.web` with `type: web` is the web proc and needs none.
    ok(&with("proc.web:\n  type: web\n  cmd: x\n"));
}

#[test]
fn secret_files_traversal_is_rejected() {
    one_error(
        &with("web:\n  cmd: x\n  secret_files:\n    - /lain/app/../../etc/secret.conf\n"),
        8,
        7,
        &["contains `..`", "path traversal"],
    );
    one_error(
        &with("web:\n  cmd: x\n  secret_files:\n    - ../secret\n"),
        8,
        7,
        &["contains `..`"],
    );
    one_error(
        &with("web:\n  cmd: x\n  secret_files:\n    - \"\"\n"),
        8,
        7,
        &["cannot be empty"],
    );
    // Absolute paths elsewhere are LAIN's way of placing a file (accepted).
    let v = ok(&with(
        "web:\n  cmd: x\n  secret_files:\n    - /etc/icinga2/x.conf\n    - config/prod.json\n",
    ));
    assert_eq!(
        v.conf.proc("web").map(|p| p.secret_files.clone()),
        Some(vec![
            "/etc/icinga2/x.conf".to_owned(),
            "/lain/app/config/prod.json".to_owned()
        ])
    );
}

#[test]
fn volumes() {
    one_error(
        &with("web:\n  cmd: x\n  volumes:\n    - /lain/app\n"),
        8,
        7,
        &["cannot be a volume", "/lain/app"],
    );
    one_error(
        &with("web:\n  cmd: x\n  volumes:\n    - .\n"),
        8,
        7,
        &["resolves to `/lain/app`"],
    );
    one_error(
        &with("web:\n  cmd: x\n  volumes:\n    - /logs:\n"),
        8,
        7,
        &["expected backup settings", "drop the trailing `:`"],
    );
    one_error(
        &with(
            "web:\n  cmd: x\n  volumes:\n    - /d:\n        backup_full:\n          schedul: x\n",
        ),
        10,
        11,
        &["unknown key `schedul`", "did you mean `schedule`?"],
    );
    one_error(
        &with("web:\n  cmd: x\n  volumes: 3\n"),
        7,
        12,
        &["expected a list of paths"],
    );
}

#[test]
fn logs_are_relative() {
    one_error(
        &with("web:\n  cmd: x\n  logs:\n    - /var/log/a.log\n"),
        8,
        7,
        &["relative to /lain/logs"],
    );
    let v = ok(&with("web:\n  cmd: x\n  logs: [a.log, b.log, a.log]\n"));
    assert_eq!(
        v.conf.proc("web").map(|p| p.logs.clone()),
        Some(vec!["a.log".into(), "b.log".into()])
    );
}

#[test]
fn cloud_volumes_and_container_healthcheck() {
    one_error(
        &with("web:\n  cmd: x\n  cloud_volumes:\n    type: shared\n    dirs: [/c]\n"),
        8,
        11,
        &["`shared` is not a cloud volume type"],
    );
    one_error(
        &with("web:\n  cmd: x\n  cloud_volumes:\n    type: single\n"),
        8,
        5,
        &["missing `dirs:`"],
    );
    one_error(
        &with("web:\n  cmd: x\n  container_healthcheck:\n    options: {retries: 3}\n"),
        8,
        5,
        &["missing `cmd:`"],
    );
    one_error(
        &with("web:\n  cmd: x\n  container_healthcheck:\n    cmd: curl localhost\n    options: {retires: 3}\n"),
        9,
        15,
        &["unknown key `retires`", "did you mean `retries`?"],
    );
    let v = ok(&with(
        "web:\n  cmd: x\n  cloud_volumes:\n    type: single\n    dirs: [/cloud]\n  container_healthcheck:\n    cmd: curl localhost\n    options: {interval: 30, timeout: 5, retries: 3}\n",
    ));
    let w = v.conf.proc("web").expect("web");
    let cv = w.cloud_volumes.clone().expect("cloud volumes");
    assert_eq!(
        (cv.kind, cv.dirs),
        (
            lain_spec::CloudVolumeType::Single,
            vec!["/cloud".to_owned()]
        )
    );
    let hc = w.container_healthcheck.clone().expect("healthcheck");
    assert_eq!(
        (hc.interval, hc.timeout, hc.retries),
        (Some(30), Some(5), Some(3))
    );
}

#[test]
fn labels_and_filters() {
    let v = ok(&with(
        "worker:\n  cmd: x\n  labels: proctype:router\n  filters:\n    - affinity:proctype!=~router\n    - constraint:group==group1\n",
    ));
    let w = v.conf.proc("worker").expect("worker");
    assert_eq!(w.labels.get("proctype").map(String::as_str), Some("router"));
    assert_eq!(w.filters.len(), 2);
    assert_eq!(
        (
            w.filters[0].key.as_str(),
            w.filters[0].equal,
            w.filters[0].value.as_str()
        ),
        ("proctype", false, "~router")
    );
    assert_eq!(
        (w.filters[1].key.as_str(), w.filters[1].equal),
        ("group", true)
    );
    one_error(
        &with("worker:\n  cmd: x\n  labels: [router]\n"),
        7,
        12,
        &["not a label", "key:value"],
    );
    one_error(
        &with("worker:\n  cmd: x\n  filters: [group=a]\n"),
        7,
        13,
        &["not a filter", "constraint:KEY==VALUE"],
    );
}

#[test]
fn env_entries() {
    let v = ok(&with(
        "web:\n  cmd: x\n  env:\n    - A=1\n    - B=x=y\n    - C=\n",
    ));
    let w = v.conf.proc("web").expect("web");
    let pairs: Vec<_> = w.env_pairs().collect();
    assert_eq!(pairs, vec![("A", "1"), ("B", "x=y"), ("C", "")]);
    let v = ok(&with("web:\n  cmd: x\n  env:\n    - JUSTANAME\n"));
    assert_eq!((v.warnings[0].line, v.warnings[0].col), (8, 7));
    one_error(
        &with("web:\n  cmd: x\n  env:\n    - PORT: 80\n"),
        8,
        7,
        &["`web.env[0]`: expected a string, found a mapping"],
    );
    // A single string is a one-item list (with a warning).
    let v = ok(&with("web:\n  cmd: x\n  env: A=1\n"));
    assert_eq!(
        v.conf.proc("web").map(|p| p.env.clone()),
        Some(vec!["A=1".to_owned()])
    );
    assert_eq!((v.warnings[0].line, v.warnings[0].col), (7, 8));
}

// ---- use_services / use_resources / notify -----------------------------------------

#[test]
fn use_services_and_resources() {
    let v = ok(&format!(
        "{HEAD}use_services:\n  echo-server: [echo1, echo2]\nuse_resources:\n  redis:\n    services: [redis]\n    memory: 128M\n    num_instances: 2\n"
    ));
    assert_eq!(
        v.conf.use_services.get("echo-server"),
        Some(&vec!["echo1".to_owned(), "echo2".to_owned()])
    );
    let r = v.conf.use_resources.get("redis").expect("redis");
    assert_eq!(r.services, ["redis"]);
    assert_eq!(
        r.params.get("memory"),
        Some(&lain_spec::ResourceParam::String("128M".into()))
    );
    assert_eq!(
        r.params.get("num_instances"),
        Some(&lain_spec::ResourceParam::Integer(2))
    );

    one_error(
        &format!("{HEAD}use_services: redis-service-sm\n"),
        5,
        15,
        &["`use_services`: expected a mapping"],
    );
    one_error(
        &format!("{HEAD}use_services:\n  bad_app: [x]\n"),
        6,
        3,
        &["`bad_app` is not a valid app name"],
    );
    one_error(
        &format!("{HEAD}use_services:\n  app: [bad_name]\n"),
        6,
        9,
        &["`bad_name` is not a valid service name"],
    );
    one_error(
        &format!("{HEAD}use_resources:\n  redis:\n    memory: 128M\n"),
        6,
        3,
        &["missing `services:`"],
    );
    one_error(
        &format!("{HEAD}use_resources:\n  redis:\n    services: [r]\n    memory: [1]\n"),
        8,
        13,
        &["string or an integer"],
    );
}

#[test]
fn notify_channels() {
    let v = ok(&format!("{HEAD}notify:\n  slack: \"#lain\"\n"));
    assert_eq!(v.conf.notify.slack.as_deref(), Some("#lain"));
    let v = ok(&format!("{HEAD}notify:\n  slak: \"#lain\"\n"));
    assert_eq!((v.warnings[0].line, v.warnings[0].col), (6, 3));
    assert!(v.warnings[0].message.contains("did you mean `slack`?"));
    one_error(
        &format!("{HEAD}notify:\n"),
        5,
        1,
        &["`notify`: expected a mapping"],
    );
}

#[test]
fn giturl_yaml_1_1_hint() {
    one_error(
        &format!("{HEAD}giturl: yes\n"),
        5,
        9,
        &["boolean", "quote it"],
    );
}

// ---- reporting -------------------------------------------------------------------

#[test]
fn all_errors_are_reported_at_once() {
    let text = "appname: my_app\nbuild:\n  base: b\n  script: []\nweb:\n  cmd: x\n  memory: 256mb\n  num_instances: -1\n  colour: red\nworker.a:\n  cmd: y\n  type: web\ncron.x:\n  cmd: z\n";
    let errs = errors(text);
    let positions: Vec<(usize, usize)> = errs.iter().map(|(l, c, _)| (*l, *c)).collect();
    assert_eq!(
        positions,
        vec![(1, 10), (7, 11), (8, 18), (9, 3), (12, 3), (13, 1)],
        "{errs:#?}"
    );
}

#[test]
fn diagnostics_display_one_per_line() {
    let err =
        parse("app/lain.yaml", "appname: a\nbuild:\n  base: b\n", &opts()).expect_err("invalid");
    assert_eq!(
        err.to_string(),
        "app/lain.yaml:2:1: `build` is missing `script:` (the list of build commands; LAIN requires the key, even if empty)"
    );
    let as_error: &dyn std::error::Error = &err;
    assert!(!as_error.to_string().is_empty());
    assert_eq!(err.errors().count(), 1);
}

#[test]
fn readings_that_differ_from_lain_warn() {
    // A lone string mountpoint is a one-item list.
    let v = ok(&with(
        "web.admin:\n  cmd: x\n  mountpoint: admin.example.com\n",
    ));
    assert_eq!(
        v.conf.proc("admin").map(|p| p.mountpoints.clone()),
        Some(vec!["admin.example.com".to_owned()])
    );
    assert_eq!((v.warnings[0].line, v.warnings[0].col), (7, 15));
    // Several paths in one volume item: one volume each.
    let v = ok(&with(
        "worker:\n  cmd: x\n  volumes:\n    - {/a: {}, /b: {}}\n",
    ));
    let paths: Vec<String> = v
        .conf
        .proc("worker")
        .map(|p| p.volumes.iter().map(|v| v.path.clone()).collect())
        .unwrap_or_default();
    assert_eq!(paths, ["/a", "/b"]);
    assert_eq!((v.warnings[0].line, v.warnings[0].col), (8, 7));
    // `ports` as a list.
    let v = ok(&with(
        "worker:\n  cmd: x\n  ports: [9501, \"9502:80/udp\"]\n",
    ));
    let ports = v
        .conf
        .proc("worker")
        .map(|p| p.ports.clone())
        .unwrap_or_default();
    assert_eq!(
        ports.iter().map(|p| (p.src, p.dst)).collect::<Vec<_>>(),
        [(9501, 9501), (9502, 80)]
    );
}

#[test]
fn diagnostics_are_capped_but_errors_are_never_lost() {
    let many: String = (0..300).map(|i| format!("bad{i}: 1\n")).collect();
    let err = parse("lain.yaml", &format!("{HEAD}{many}"), &opts()).expect_err("invalid");
    assert_eq!(err.len(), lain_spec::MAX_DIAGNOSTICS + 1);
    let last = err.0.last().expect("summary");
    assert!(
        last.message
            .contains("100 more problems (100 errors, 0 warnings)"),
        "{}",
        last.message
    );

    // 250 warnings first, then one error: the file is still rejected.
    let dups: String = (0..250).map(|_| "  memory: 64m\n".to_owned()).collect();
    let text = format!("{HEAD}web:\n  cmd: x\n{dups}  port: -1\n");
    let err = parse("lain.yaml", &text, &opts()).expect_err("the error past the cap still counts");
    assert_eq!(err.errors().count(), 1, "only the summary line is an error");
    assert!(err.0.last().is_some_and(|d| d.message.contains("1 errors")));
}

// ---- mountpoints, health checks, logs: what reaches nginx and the host --------

/// The warnings of an accepted file as `(line, col, message)`.
fn warnings(v: &Validated) -> Vec<(usize, usize, String)> {
    v.warnings
        .iter()
        .map(|w| (w.line, w.col, w.message.clone()))
        .collect()
}

#[test]
fn mountpoints_cannot_inject_router_config() {
    let errs = errors(&with(
        "web:\n  cmd: x\n  mountpoint:\n    - \"a.com; } server { listen 80; root /; } #\"\n    - \"b.com/x y\"\n    - \"/p$host\"\n    - \"c.com/\\n\"\n    - \"\"\n",
    ));
    let got: Vec<(usize, usize)> = errs.iter().map(|(l, c, _)| (*l, *c)).collect();
    assert_eq!(
        got,
        [(8, 7), (9, 7), (10, 7), (11, 7), (12, 7)],
        "{errs:#?}"
    );
    let needles = [
        "contains `;`",
        "contains a space",
        "contains `$`",
        "control character (U+000A)",
        "cannot be empty",
    ];
    for ((_, _, m), n) in errs.iter().zip(needles) {
        assert!(m.contains(n), "message lacks {n:?}: {m}");
        assert!(
            m.starts_with("`web.mountpoint[") || m.contains("`web.mountpoint"),
            "{m}"
        );
        // Every message says what a mountpoint may be.
        assert!(m.contains("`/path`") && m.contains("`host[/path]`"), "{m}");
    }
    one_error(
        &with("web:\n  cmd: x\n  mountpoint: [\"a.com;b\"]\n"),
        7,
        16,
        &["contains `;`", "letters, digits, `-` and `.`"],
    );
    one_error(
        &with("web:\n  cmd: x\n  mountpoint: [\"\"]\n"),
        7,
        16,
        &["`web.mountpoint[0]`", "cannot be empty"],
    );
}

#[test]
fn mountpoint_hosts_are_dns_names() {
    let bad = [
        ("\"*.a.com\"", "wildcard"),
        ("a..com", "empty label"),
        ("-a.com", "starts or ends with `-`"),
        ("a.com.", "empty label"),
        ("a.com:8080", "contains `:`"),
        ("é.com", "xn--"),
        ("a_b.com", "contains `_`"),
    ];
    for (mp, needle) in bad {
        one_error(
            &with(&format!("web:\n  cmd: x\n  mountpoint:\n    - {mp}\n")),
            8,
            7,
            &[needle, "DNS name"],
        );
    }
    let long_label = "a".repeat(64);
    one_error(
        &with(&format!(
            "web:\n  cmd: x\n  mountpoint: [{long_label}.com]\n"
        )),
        7,
        16,
        &["longer than 63"],
    );
    let long_name = vec!["a".repeat(63); 4].join(".") + ".com"; // 259 characters
    one_error(
        &with(&format!("web:\n  cmd: x\n  mountpoint: [{long_name}]\n")),
        7,
        16,
        &["longer than 253"],
    );
    // 63-character labels and 253 characters in all are fine.
    let max_name = format!("{}.{}", vec!["a".repeat(63); 3].join("."), "b".repeat(61));
    assert_eq!(max_name.len(), 253);
    ok(&with(&format!(
        "web:\n  cmd: x\n  mountpoint: [{long_label_ok}.com, {max_name}]\n",
        long_label_ok = "a".repeat(63)
    )));
}

#[test]
fn mountpoint_paths_are_plain() {
    let bad = [
        ("a.com/../admin", "`..`"),
        ("/./x", "`.`"),
        ("a.com//x", "empty segment"),
        ("/x?y=1", "contains `?`"),
        ("/%zz", "`%` must start"),
        ("\"/a'b\"", "contains `'`"),
        ("\"/a\\\\b\"", "contains `\\`"),
        ("/a{b}", "contains `{`"),
        ("/é", "percent-encode"),
    ];
    for (mp, needle) in bad {
        one_error(
            &with(&format!("web:\n  cmd: x\n  mountpoint:\n    - {mp}\n")),
            8,
            7,
            &[needle, "letters, digits and `-._~%/`"],
        );
    }
    let v = ok(&with(
        "web:\n  cmd: x\n  mountpoint:\n    - /api/\n    - a.com/\n    - b.com/v1/x_y-z.~%20/\n",
    ));
    assert_eq!(
        v.conf.proc("web").map(|p| p.mountpoints.clone()),
        Some(vec![
            "a.com".to_owned(),
            "b.com/v1/x_y-z.~%20".to_owned(),
            "hello.lain.local".to_owned(),
            "hello.lain".to_owned(),
            "hello.lain.local/api".to_owned(),
            "hello.lain/api".to_owned(),
        ])
    );
}

#[test]
fn uppercase_hosts_are_lowercased_with_a_warning() {
    let v = ok(&with(
        "web.admin:\n  cmd: x\n  mountpoint: [Admin.Example.COM/Path]\n",
    ));
    assert_eq!(
        v.conf.proc("admin").map(|p| p.mountpoints.clone()),
        Some(vec!["admin.example.com/Path".to_owned()])
    );
    let w = warnings(&v);
    assert_eq!(w.len(), 1, "{w:#?}");
    assert_eq!((w[0].0, w[0].1), (7, 16));
    assert!(w[0].2.contains("`admin.example.com/Path`"), "{}", w[0].2);
}

#[test]
fn root_mountpoint_means_the_default_domains() {
    // LAIN dropped a bare `/`, leaving a non-`web` proc with no route at
    // all; here it is the root of the default domains.
    let v = ok(&with("web.api:\n  cmd: x\n  mountpoint: [/]\n"));
    assert_eq!(
        v.conf.proc("api").map(|p| p.mountpoints.clone()),
        Some(vec!["hello.lain.local".to_owned(), "hello.lain".to_owned()])
    );
    // On `web` it changes nothing (corpus: laincloud/todomvc).
    let v = ok(&with("web:\n  cmd: x\n  mountpoint: [/]\n"));
    assert_eq!(
        v.conf.proc("web").map(|p| p.mountpoints.clone()),
        Some(vec!["hello.lain.local".to_owned(), "hello.lain".to_owned()])
    );
    // With a `web` proc too, the root is taken.
    one_error(
        &with("web:\n  cmd: x\nweb.api:\n  cmd: y\n  mountpoint: [/]\n"),
        9,
        16,
        &[
            "`web.api`",
            "mountpoints `hello.lain.local`, `hello.lain` (from `/`) are already served by \
             `web` (line 5)",
        ],
    );
}

#[test]
fn two_procs_cannot_share_a_mountpoint() {
    one_error(
        &with("web.a:\n  cmd: x\n  mountpoint: [a.com/x]\nweb.b:\n  cmd: y\n  mountpoint:\n    - b.com\n    - A.com/x/\n"),
        12,
        7,
        &[
            "`web.b`: mountpoint `a.com/x` is already served by `web.a` (line 5)",
        ],
    );
    // A default domain of `web` claimed earlier by another proc.
    one_error(
        &with("web.a:\n  cmd: x\n  mountpoint: [hello.lain]\nweb:\n  cmd: y\n"),
        8,
        1,
        &[
            "`web`: mountpoint `hello.lain` (default domains of `web`) is already served by \
             `web.a` (line 5)",
            "remove it from `web.a`",
        ],
    );
    // Within one proc a repeat is just dropped.
    let v = ok(&with("web.a:\n  cmd: x\n  mountpoint: [a.com, a.com/]\n"));
    assert_eq!(
        v.conf.proc("a").map(|p| p.mountpoints.clone()),
        Some(vec!["a.com".to_owned()])
    );
}

#[test]
fn healthcheck_is_a_clean_path() {
    let v = ok(&with("web:\n  cmd: x\n  healthcheck: ping\n"));
    assert_eq!(
        v.conf.proc("web").and_then(|p| p.healthcheck.clone()),
        Some("/ping".to_owned())
    );
    let w = warnings(&v);
    assert_eq!((w[0].0, w[0].1), (7, 16), "{w:#?}");
    assert!(w[0].2.contains("`/ping`"), "{}", w[0].2);
    for (hc, needle) in [
        ("\"/p ing\"", "contains a space"),
        ("/a/../b", "`..`"),
        ("\"/x;y\"", "contains `;`"),
        ("\"/x\\n\"", "control character"),
        ("/health?full=1", "contains `?`"),
    ] {
        one_error(
            &with(&format!("web:\n  cmd: x\n  healthcheck: {hc}\n")),
            7,
            16,
            &["`web.healthcheck`", needle, "letters, digits and `-._~%/`"],
        );
    }
    // A trailing slash is part of the request path and kept.
    let v = ok(&with("web:\n  cmd: x\n  healthcheck: /status/\n"));
    assert_eq!(
        v.conf.proc("web").and_then(|p| p.healthcheck.clone()),
        Some("/status/".to_owned())
    );
    // Empty means no check, as in LAIN.
    let v = ok(&with("web:\n  cmd: x\n  healthcheck: \"\"\n"));
    assert_eq!(v.conf.proc("web").and_then(|p| p.healthcheck.clone()), None);
    assert_eq!((v.warnings[0].line, v.warnings[0].col), (7, 16));
}

#[test]
fn log_paths_stay_under_lain_logs() {
    one_error(
        &with("web:\n  cmd: x\n  logs: [\"../../../etc/shadow\"]\n"),
        7,
        10,
        &["`..`", "path traversal", "relative to /lain/logs"],
    );
    one_error(
        &with("web:\n  cmd: x\n  logs:\n    - app/../../x.log\n"),
        8,
        7,
        &["`..`"],
    );
    one_error(
        &with("web:\n  cmd: x\n  logs: [\"\"]\n"),
        7,
        10,
        &["cannot be empty"],
    );
    one_error(
        &with("web:\n  cmd: x\n  logs: [\"a.log\\nb\"]\n"),
        7,
        10,
        &["control character"],
    );
    let v = ok(&with("web:\n  cmd: x\n  logs: [app/a.log, a..b.log]\n"));
    assert!(v.warnings.is_empty(), "{:#?}", v.warnings);
}

// ---- messages --------------------------------------------------------------------

#[test]
fn leading_zero_numbers_explain_octal() {
    let errs = errors(&with(
        "worker:\n  cmd: x\n  num_instances: 08\n  cpu: 019\n",
    ));
    assert_eq!(errs.len(), 2, "{errs:#?}");
    assert_eq!((errs[0].0, errs[0].1), (7, 18));
    assert_eq!((errs[1].0, errs[1].1), (8, 8));
    for ((_, _, m), fix) in errs.iter().zip(["write `8`", "write `19`"]) {
        assert!(m.contains("leading 0") && m.contains("octal"), "{m}");
        assert!(m.contains(fix), "{m}");
        assert!(!m.contains("without quotes"), "{m}");
    }
    // Quoted numbers still get "without quotes".
    one_error(
        &with("worker:\n  cmd: x\n  num_instances: \"08\"\n"),
        7,
        18,
        &["without quotes"],
    );
}

#[test]
fn digitless_integers_are_invalid_not_too_large() {
    for bad in ["0b_", "0x_", "-0x__"] {
        let errs = errors(&with(&format!("worker:\n  cmd: x\n  cpu: {bad}\n")));
        assert_eq!(errs.len(), 1, "{errs:#?}");
        let (l, c, m) = &errs[0];
        assert_eq!((*l, *c), (7, 8));
        assert!(m.contains("not a valid integer"), "{m}");
        assert!(!m.contains("too large"), "{m}");
    }
    one_error(
        &with("worker:\n  cmd: x\n  cpu: 99999999999999999999\n"),
        7,
        8,
        &["too large", "at most 4294967295"],
    );
}

#[test]
fn recursive_alias_is_named_as_such() {
    one_error(
        &format!("{HEAD}a: &x [*x]\n"),
        5,
        8,
        &["`*x`", "recursive", "`&x`"],
    );
    one_error(
        &format!("{HEAD}a: &top\n  b:\n    c: *top\n"),
        7,
        8,
        &["`*top`", "recursive"],
    );
}

#[test]
fn too_large_states_the_maximum() {
    one_error(
        &with("worker:\n  cmd: x\n  cpu: 99999999999\n"),
        7,
        8,
        &["99999999999 is too large", "at most 4294967295"],
    );
    one_error(
        &with("worker:\n  cmd: x\n  num_instances: 4294967296\n"),
        7,
        18,
        &["at most 4294967295"],
    );
    one_error(
        &with("worker:\n  cmd: x\n  memory: 99999999999999999999g\n"),
        7,
        11,
        &["too large", "at most `8589934591g` (`8796093022207m`)"],
    );
    one_error(
        &with("worker:\n  cmd: x\n  memory: 8589934592g\n"),
        7,
        11,
        &["too large"],
    );
    ok(&with("worker:\n  cmd: x\n  memory: 8589934591g\n"));
}

#[test]
fn empty_workdir_falls_back_to_working_dir() {
    let v = ok(&with(
        "worker:\n  cmd: x\n  workdir: \"\"\n  working_dir: /app\n",
    ));
    assert_eq!(
        v.conf.proc("worker").and_then(|p| p.working_dir.clone()),
        Some("/app".to_owned())
    );
    let w = warnings(&v);
    assert_eq!(w.len(), 1, "{w:#?}");
    assert_eq!((w[0].0, w[0].1), (7, 3));
    assert!(
        w[0].2
            .contains("`workdir` is empty, so `working_dir` is used"),
        "{}",
        w[0].2
    );
    // Both set: `workdir` wins, and the message says so.
    let v = ok(&with(
        "worker:\n  cmd: x\n  workdir: /a\n  working_dir: /b\n",
    ));
    assert_eq!(
        v.conf.proc("worker").and_then(|p| p.working_dir.clone()),
        Some("/a".to_owned())
    );
    assert!(v.warnings[0].message.contains("`workdir` is used"));
}

#[test]
fn a_tab_after_indenting_spaces_is_accepted() {
    // PyYAML refused this; it is unambiguous, so it is accepted (documented).
    let v = ok(&with("web:\n \tcmd: x\n"));
    assert!(v.conf.proc("web").is_some_and(|p| p.cmd.is_some()));
    // A tab that starts the indentation is still an error.
    one_error(&with("web:\n\tcmd: x\n"), 6, 1, &["tab", "spaces"]);
    // Where the scanner notices a tab at the end of the previous value,
    // the error still points at the tab.
    one_error(
        &with("web:\n  cmd: x\n \tport: 81\n"),
        7,
        2,
        &["tab", "spaces"],
    );
    one_error(
        &with("web:\n \tcmd: x\n \tport: 81\n"),
        7,
        2,
        &["tab", "spaces"],
    );
}
