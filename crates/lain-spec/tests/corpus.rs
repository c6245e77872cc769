//! The compatibility corpus (`shared/lain-yaml/`): every file LAIN's
//! MANIFEST expects to be VALID must validate, every INVALID one must be
//! rejected with an error that names a line of the file.
//!
//! The corpus is found at `$LAIN_YAML_CORPUS`, else `../../../shared/lain-yaml`
//! from this crate. A missing corpus fails the test: it must not pass by
//! checking nothing.

use lain_spec::{parse, ParseOptions};
use std::path::PathBuf;

fn corpus_dir() -> PathBuf {
    match std::env::var_os("LAIN_YAML_CORPUS") {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/lain-yaml"),
    }
}

struct Row {
    file: String,
    expected: String,
    lain_message: String,
}

fn manifest() -> Vec<Row> {
    let dir = corpus_dir();
    let path = dir.join("MANIFEST.tsv");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "the lain.yaml corpus is missing: cannot read {} ({e}); set LAIN_YAML_CORPUS to the \
             directory holding MANIFEST.tsv",
            path.display()
        )
    });
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap_or_default().split('\t').collect();
    let col = |name: &str| {
        header
            .iter()
            .position(|h| *h == name)
            .unwrap_or_else(|| panic!("MANIFEST.tsv has no `{name}` column"))
    };
    let (c_file, c_expected, c_msg) = (col("file"), col("expected"), col("lain_message"));
    lines
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let cells: Vec<&str> = l.split('\t').collect();
            let cell = |i: usize| cells.get(i).copied().unwrap_or_default().to_owned();
            Row {
                file: cell(c_file),
                expected: cell(c_expected),
                lain_message: cell(c_msg),
            }
        })
        .collect()
}

#[test]
fn corpus_agrees_with_lain() {
    let dir = corpus_dir();
    let rows = manifest();
    assert!(!rows.is_empty(), "MANIFEST.tsv lists no files");
    let opts = ParseOptions {
        cluster_domain: "lain.local".to_owned(),
        ..ParseOptions::default()
    };
    let verbose = std::env::var_os("LAIN_CORPUS_VERBOSE").is_some();
    let mut agree = 0;
    let mut disagreements = Vec::new();
    for row in &rows {
        let path = dir.join(&row.file);
        let text = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("cannot read corpus file {}: {e}", path.display()));
        let line_count = text.lines().count().max(1);
        let result = parse(&row.file, &text, &opts);
        let verdict = match (&row.expected[..], &result) {
            ("VALID", Ok(v)) => {
                if verbose {
                    for w in &v.warnings {
                        eprintln!("  {w}");
                    }
                }
                Ok(())
            }
            ("VALID", Err(d)) => Err(format!("expected VALID, rejected:\n{d}")),
            ("INVALID", Ok(_)) => Err(format!(
                "expected INVALID (LAIN: {}), accepted",
                row.lain_message
            )),
            ("INVALID", Err(d)) => {
                if verbose {
                    eprintln!("{}  [LAIN: {}]\n{d}\n", row.file, row.lain_message);
                }
                // Every error must name a line of the file.
                match d.errors().find(|e| e.line < 1 || e.line > line_count + 1) {
                    Some(e) => Err(format!("error outside the file: {e}")),
                    None if d.errors().next().is_none() => Err("rejected without an error".into()),
                    None => Ok(()),
                }
            }
            (other, _) => Err(format!(
                "unknown expected verdict `{other}` in MANIFEST.tsv"
            )),
        };
        match verdict {
            Ok(()) => agree += 1,
            Err(why) => disagreements.push(format!("{}: {why}", row.file)),
        }
    }
    println!("{agree}/{} agree", rows.len());
    for d in &disagreements {
        println!("DISAGREE {d}");
    }
    assert!(
        disagreements.is_empty(),
        "{agree}/{} agree; disagreeing files:\n{}",
        rows.len(),
        disagreements.join("\n")
    );
}
