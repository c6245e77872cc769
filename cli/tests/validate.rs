//! `lain validate` as a user runs it: the real binary, real files.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn lain(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_lain"))
        .args(args)
        .output()
        .expect("run lain")
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn corpus() -> PathBuf {
    let dir = std::env::var_os("LAIN_YAML_CORPUS")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join("../shared/lain-yaml"));
    assert!(
        dir.join("MANIFEST.tsv").is_file(),
        "lain.yaml corpus not found at {}; set LAIN_YAML_CORPUS",
        dir.display()
    );
    dir
}

#[test]
fn agrees_with_the_corpus_manifest_on_every_file() {
    let dir = corpus();
    let manifest = std::fs::read_to_string(dir.join("MANIFEST.tsv")).expect("manifest");
    let mut agree = 0;
    let mut disagree = Vec::new();
    let mut total = 0;
    for row in manifest.lines().skip(1).filter(|l| !l.trim().is_empty()) {
        let cols: Vec<&str> = row.split('\t').collect();
        let (file, expected) = (cols[0], cols[4]);
        total += 1;
        let path = dir.join(file);
        let out = lain(&["validate", "-o", "json", path.to_str().expect("utf-8 path")]);
        let report: serde_json::Value =
            serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{file}: bad JSON: {e}"));
        let ok = match expected {
            "VALID" => out.status.code() == Some(0) && report["valid"] == true,
            "INVALID" => {
                let errors = report["errors"].as_array().cloned().unwrap_or_default();
                out.status.code() == Some(1)
                    && report["valid"] == false
                    && !errors.is_empty()
                    && errors
                        .iter()
                        .all(|e| e["line"].as_u64().is_some_and(|l| l >= 1))
            }
            other => panic!("{file}: unknown expected verdict {other}"),
        };
        if ok {
            agree += 1;
        } else {
            disagree.push(format!(
                "{file}: expected {expected}, got exit {:?}: {}",
                out.status.code(),
                report
            ));
        }
    }
    eprintln!("lain validate agrees with MANIFEST.tsv on {agree}/{total} files");
    assert!(total >= 100, "the manifest lists only {total} files");
    assert!(
        disagree.is_empty(),
        "disagreements:\n{}",
        disagree.join("\n")
    );
}

#[test]
fn valid_file_prints_a_summary_and_exits_0() {
    let file = repo().join("examples/hello/lain.yaml");
    let out = lain(&["validate", file.to_str().expect("path")]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    assert!(stdout.contains("valid"), "{stdout}");
    assert!(stdout.contains("hello.lain.local"), "{stdout}");
    assert!(stdout.lines().any(|l| l.starts_with("web ")), "{stdout}");
}

#[test]
fn invalid_file_lists_every_error_with_position_and_exits_1() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("lain.yaml");
    std::fs::write(
        &file,
        "appname: demo\nbuild:\n  base: golang\n  script: [make]\nweb:\n  cmd: ./app\n  memory: 256mb\n  num_instances: -1\n  prot: 80\n",
    )
    .expect("write");
    let out = lain(&["validate", file.to_str().expect("path")]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    let shown = file.display().to_string();
    for (line, needle) in [(7, "256mb"), (8, "-1"), (9, "port")] {
        assert!(
            stdout
                .lines()
                .any(|l| l.starts_with(&format!("{shown}:{line}:")) && l.contains(needle)),
            "no error at line {line} mentioning {needle}:\n{stdout}"
        );
    }
}

#[test]
fn json_output_carries_the_model() {
    let file = repo().join("examples/hello/lain.yaml");
    let out = lain(&["validate", "-o", "json", file.to_str().expect("path")]);
    assert_eq!(out.status.code(), Some(0));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(v["valid"], true);
    assert_eq!(v["app"]["appname"], "hello");
    assert_eq!(v["app"]["procs"][0]["port"], 8080);
}

#[test]
fn missing_file_is_a_user_error_with_a_hint() {
    let out = lain(&["validate", "/nonexistent/lain.yaml"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.starts_with("error: "), "{stderr}");
    assert!(stderr.contains("/nonexistent/lain.yaml"), "{stderr}");
}

#[test]
fn bad_usage_exits_2() {
    assert_eq!(lain(&["validate", "--no-such-flag"]).status.code(), Some(2));
    assert_eq!(lain(&["no-such-command"]).status.code(), Some(2));
}

#[test]
fn completions_are_generated() {
    let out = lain(&["completions", "bash"]);
    assert_eq!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stdout).contains("validate"));
}
