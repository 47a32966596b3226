//! Hostile input must produce errors, never panics or stack overflows.

use std::path::PathBuf;

use fhirpath::{compile, Context, ParseError, MAX_DEPTH};
use serde_json::{json, Value};

fn patient() -> Value {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/patient-example.json");
    serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
}

/// Every prefix and suffix of every official expression, compiled and (when
/// it compiles) evaluated: exercises error paths of lexer, parser and
/// evaluator on thousands of malformed inputs.
#[test]
fn truncated_expressions_never_panic() {
    let suite = std::fs::read_to_string(
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/tests-fhir-r4.xml"),
    )
    .unwrap();
    let input = patient();
    let ctx = Context::default();
    let mut runs = 0;
    for chunk in suite.split("<expression").skip(1) {
        let Some(body) = chunk
            .split_once('>')
            .and_then(|(_, b)| b.split_once("</expression>"))
        else {
            continue;
        };
        let expr = body
            .0
            .replace("&lt;", "<")
            .replace("&gt;", ">")
            .replace("&amp;", "&");
        let cut_points: Vec<usize> = expr.char_indices().map(|(i, _)| i).collect();
        for &i in &cut_points {
            for candidate in [&expr[..i], &expr[i..]] {
                runs += 1;
                if let Ok(e) = compile(candidate) {
                    let _ = e.evaluate(&input, &ctx);
                }
            }
        }
    }
    assert!(runs > 10_000);
}

#[test]
fn deep_nesting_is_rejected_at_compile_time() {
    for src in [
        "(".repeat(10_000) + "1" + &")".repeat(10_000),
        "-".repeat(10_000) + "1",
        vec!["name"; 10_000].join("."),
        vec!["1"; 10_000].join(" + "),
        "name.where(".repeat(5_000) + "true" + &")".repeat(5_000),
        "{".repeat(10_000),
        "'".repeat(10_001),
    ] {
        assert!(compile(&src).is_err());
    }
    assert!(matches!(
        compile(&"(".repeat(200)),
        Err(ParseError::TooDeep(_))
    ));
}

/// The deepest accepted expression must evaluate within a default test
/// thread's stack (2 MiB), in a debug build.
#[test]
fn deepest_accepted_expressions_evaluate() {
    let input = json!({"a": {"a": {"a": true}}, "name": [{"given": ["x"]}]});
    let ctx = Context::default();
    let nested_where = "where(".repeat(MAX_DEPTH / 2 - 1) + "true" + &")".repeat(MAX_DEPTH / 2 - 1);
    let nested_iif =
        "iif(true, ".repeat(MAX_DEPTH / 2 - 1) + "1" + &", 0)".repeat(MAX_DEPTH / 2 - 1);
    let chain = vec!["a"; MAX_DEPTH - 2].join(".");
    let sum = vec!["1"; MAX_DEPTH - 2].join(" + ");
    let parens = "(".repeat(MAX_DEPTH - 2) + "1" + &")".repeat(MAX_DEPTH - 2);
    for src in [nested_where, nested_iif, chain, sum, parens] {
        let e = compile(&src).unwrap_or_else(|err| panic!("{err}: {src}"));
        e.evaluate(&input, &ctx).unwrap();
    }
}

#[test]
fn runaway_repeat_is_bounded() {
    let ctx = Context::default();
    let input = json!({});
    // Each step produces a new, larger value: repeat() must stop with an error.
    let e = compile("1.repeat($this + 1)").unwrap();
    assert!(e.evaluate(&input, &ctx).is_err());
    let e = compile("'a'.repeat($this + 'a')").unwrap();
    assert!(e.evaluate(&input, &ctx).is_err());
}

#[test]
fn arithmetic_overflow_is_an_error() {
    let ctx = Context::default();
    let input = json!({});
    for src in [
        "9223372036854775807 + 1",
        "(-9223372036854775807 - 1) * -1",
        "9223372036854775807.power(2)",
        "@9999-12-31 + 1 day",
        "99999999999999999999.0 * 99999999999999999999.0 * 99999999999999999999.0",
    ] {
        let e = compile(src).unwrap();
        assert!(e.evaluate(&input, &ctx).is_err(), "{src}");
    }
    let e = compile("1 / 0").unwrap();
    assert!(e.evaluate(&input, &ctx).unwrap().is_empty());
}

#[test]
fn invalid_dynamic_regex_is_an_error() {
    let ctx = Context::default();
    let input = json!({"p": "("});
    let e = compile("'abc'.matches(p)").unwrap();
    assert!(e.evaluate(&input, &ctx).is_err());
}

#[test]
fn exponential_growth_is_bounded() {
    let ctx = Context::default();
    let input = json!({});
    let src = "(1 | 2)".to_string() + &".select($this.combine($this))".repeat(40);
    let e = compile(&src).unwrap();
    assert!(e.evaluate(&input, &ctx).is_err());
}

#[test]
fn string_blow_up_is_bounded() {
    let ctx = Context::default();
    let input = json!({});
    for src in [
        "'ab'.repeat($this + $this)",
        "('abcdefghij' + 'abcdefghij').select($this.replace('', $this)).select($this.replace('', $this)).select($this.replace('', $this))",
        "'abcdefghij'.select($this.replaceMatches('x?', $this)).select($this.replaceMatches('x?', $this)).select($this.replaceMatches('x?', $this)).select($this.replaceMatches('x?', $this))",
    ] {
        let e = compile(src).unwrap();
        assert!(e.evaluate(&input, &ctx).is_err(), "{src}");
    }
}
