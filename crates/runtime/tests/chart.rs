//! The Helm chart's schema and the code agree on every shared setting: for each variable the
//! chart's templates set from a value, that value's `minimum` and `maximum` in
//! `values.schema.json` are the range the programs accept, so a chart-valid value never stops a
//! program and the chart refuses what a program would.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a test fails by panicking"
)]

use std::collections::BTreeMap;
use std::path::Path;

use gpudev_runtime::shared::INT_SETTINGS;
use serde_json::Value;

fn chart() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../../charts/gpudev"))
}

/// Variable → the value names the templates set it from (`MAX_GPUS_PER_USER: {{ $c.maxGpusPerUser
/// | int64 | quote }}` gives `maxGpusPerUser`).
fn template_values() -> BTreeMap<String, Vec<String>> {
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for entry in std::fs::read_dir(chart().join("templates")).unwrap() {
        let path = entry.unwrap().path();
        if !path.is_file() {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        for line in text.lines() {
            let Some((var, rest)) = line.trim().split_once(": {{") else {
                continue;
            };
            let Some(expr) = rest.split('|').next().map(str::trim) else {
                continue;
            };
            let Some(name) = expr.rsplit('.').next() else {
                continue;
            };
            if expr.contains('.') && !name.is_empty() {
                out.entry(var.to_owned()).or_default().push(name.to_owned());
            }
        }
    }
    out
}

/// Every property called `name` anywhere in the schema.
fn properties<'a>(schema: &'a Value, name: &str, out: &mut Vec<&'a Value>) {
    match schema {
        Value::Object(map) => {
            if let Some(Value::Object(props)) = map.get("properties")
                && let Some(p) = props.get(name)
            {
                out.push(p);
            }
            for v in map.values() {
                properties(v, name, out);
            }
        }
        Value::Array(items) => items.iter().for_each(|v| properties(v, name, out)),
        _ => {}
    }
}

#[test]
fn the_chart_schema_accepts_exactly_the_ranges_the_programs_accept() {
    let schema: Value =
        serde_json::from_str(&std::fs::read_to_string(chart().join("values.schema.json")).unwrap())
            .unwrap();
    let values = template_values();
    for setting in INT_SETTINGS {
        let names = values
            .get(setting.var)
            .unwrap_or_else(|| panic!("no chart template sets {}", setting.var));
        let mut found = Vec::new();
        for name in names {
            properties(&schema, name, &mut found);
        }
        assert!(!found.is_empty(), "{} has no schema entry", setting.var);
        for p in found {
            assert_eq!(
                (p["minimum"].as_u64(), p["maximum"].as_u64()),
                (Some(u64::from(setting.min)), Some(u64::from(setting.max))),
                "{}: the chart's schema and the code disagree",
                setting.var
            );
        }
    }
}

#[test]
fn the_chart_defaults_are_the_codes_defaults() {
    let values = std::fs::read_to_string(chart().join("values.yaml")).unwrap();
    let template = template_values();
    // Each program's pool is sized by the chart on its own (DB_POOL_SIZE per component).
    for setting in INT_SETTINGS.iter().filter(|s| s.var != "DB_POOL_SIZE") {
        let name = &template[setting.var][0];
        let line = values
            .lines()
            .find(|l| l.trim_start().starts_with(&format!("{name}:")))
            .unwrap_or_else(|| panic!("values.yaml has no {name}"));
        let value: u32 = line
            .split_once(':')
            .unwrap()
            .1
            .split('#')
            .next()
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        assert_eq!(value, setting.default, "{name} in values.yaml");
    }
}
