//! Throughput check (ignored by default; timing is meaningless in debug):
//! `cargo test --release -p fhirpath --test perf -- --ignored --nocapture`

use std::path::PathBuf;
use std::time::Instant;

use fhirpath::{compile, Context, Expression, ModelInfo, StructureDefinitionModel};
use serde_json::Value;

fn data(path: &str) -> Value {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(path);
    serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
}

/// Resource-level R4 constraints for `rtype`, plus the dom-* rules.
fn invariants_for(rtype: &str) -> Vec<Expression> {
    data("r4-constraints.json")
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| {
            let key = c["key"].as_str().unwrap();
            (c["path"] == rtype || key.starts_with("dom-")) && key != "dom-6"
        })
        .map(|c| compile(c["expression"].as_str().unwrap()).unwrap())
        .collect()
}

fn throughput(resource: &Value, exprs: &[Expression], model: Option<&dyn ModelInfo>) -> f64 {
    let ctx = Context {
        model,
        ..Context::default()
    };
    let rounds = 20_000;
    let start = Instant::now();
    for _ in 0..rounds {
        for e in exprs {
            assert!(e.evaluate_bool(resource, &ctx).unwrap());
        }
    }
    rounds as f64 / start.elapsed().as_secs_f64()
}

#[test]
#[ignore]
fn resource_invariants_throughput() {
    let mut model = StructureDefinitionModel::new();
    model.add_bundle(&data("r4-model.json"));
    for file in [
        "r4-examples/servicerequest-example.json",
        "r4-examples/patient-example.json",
        "r4-examples/observation-example-bloodpressure.json",
    ] {
        let resource = data(file);
        let rtype = resource["resourceType"].as_str().unwrap().to_string();
        let exprs = invariants_for(&rtype);
        let without = throughput(&resource, &exprs, None);
        let with = throughput(&resource, &exprs, Some(&model));
        println!(
            "{file}: {} invariants, {without:.0} resources/s without model, {with:.0} with model",
            exprs.len()
        );
    }
}

#[test]
#[ignore]
fn element_invariant_throughput() {
    let resource = data("r4-examples/servicerequest-example-di.json");
    let ctx = Context::default();
    let nodes = compile("descendants()")
        .unwrap()
        .evaluate(&resource, &ctx)
        .unwrap();
    let ele1 = compile("hasValue() or (children().count() > id.count())").unwrap();
    let rounds = 20_000;
    let start = Instant::now();
    for _ in 0..rounds {
        for n in &nodes {
            if let Some(node) = n.as_node() {
                ele1.evaluate_node_bool(*node, &ctx).unwrap();
            }
        }
    }
    let per_sec = (rounds * nodes.len()) as f64 / start.elapsed().as_secs_f64();
    println!(
        "ele-1: {per_sec:.0} element evaluations/s ({} elements per resource)",
        nodes.len()
    );
    let contained = data("r4-examples/servicerequest-example-lipid.json");
    let dom3 = compile(
        data("r4-constraints.json")
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["key"] == "dom-3")
            .unwrap()["expression"]
            .as_str()
            .unwrap(),
    )
    .unwrap();
    let start = Instant::now();
    for _ in 0..rounds {
        dom3.evaluate_bool(&contained, &ctx).unwrap();
    }
    println!(
        "dom-3: {:.0} evaluations/s",
        rounds as f64 / start.elapsed().as_secs_f64()
    );
}
