//! JSON Schema of the manifests, generated from the same Rust types the validator decodes into, so editors
//! (yaml-language-server) and outside validators (check-jsonschema) agree with `hactl validate` on shape.
//! Cross-document rules (references, one Cluster, timer sanity) are beyond JSON Schema; only hactl checks those.

use schemars::SchemaGenerator;
use schemars::generate::SchemaSettings;
use serde_json::{Map, Value, json};

use super::check::{API_VERSION, KINDS};
use super::raw::{ClusterSpec, FloatingIpSpec, GroupSpec, Metadata, NodeSpec, ServiceSpec};

/// The file name of the schema that accepts any manifest document.
pub const ANY_FILE: &str = "manifest.schema.json";

fn spec_ref(generator: &mut SchemaGenerator, kind: &str) -> Value {
    let schema = match kind {
        "Cluster" => generator.subschema_for::<ClusterSpec>(),
        "Node" => generator.subschema_for::<NodeSpec>(),
        "FloatingIP" => generator.subschema_for::<FloatingIpSpec>(),
        "Service" => generator.subschema_for::<ServiceSpec>(),
        _ => generator.subschema_for::<GroupSpec>(),
    };
    schema.to_value()
}

fn envelope(title: String, kind: Value, spec: Value, metadata: Value, defs: Map<String, Value>) -> Value {
    json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": title,
        "type": "object",
        "additionalProperties": false,
        "required": ["apiVersion", "kind", "metadata", "spec"],
        "properties": {
            "apiVersion": { "const": API_VERSION },
            "kind": kind,
            "metadata": metadata,
            "spec": spec,
        },
        "$defs": defs,
    })
}

/// File name of one kind's schema: `floatingip.schema.json`.
pub fn file_name(kind: &str) -> String {
    format!("{}.schema.json", kind.to_ascii_lowercase())
}

/// Every schema file: one per kind, and [`ANY_FILE`] for any document (it dispatches on `kind`).
pub fn schemas() -> Vec<(String, Value)> {
    let mut out = Vec::new();
    for kind in KINDS {
        let mut generator = SchemaSettings::draft2020_12().into_generator();
        let spec = spec_ref(&mut generator, kind);
        let metadata = generator.subschema_for::<Metadata>().to_value();
        let defs = generator.take_definitions(true);
        let schema = envelope(format!("hactl {kind} manifest"), json!({ "const": kind }), spec, metadata, defs);
        out.push((file_name(kind), schema));
    }
    let mut generator = SchemaSettings::draft2020_12().into_generator();
    let branches: Vec<Value> = KINDS
        .iter()
        .map(|kind| {
            let spec = spec_ref(&mut generator, kind);
            json!({ "if": { "properties": { "kind": { "const": kind } } }, "then": { "properties": { "spec": spec } } })
        })
        .collect();
    let metadata = generator.subschema_for::<Metadata>().to_value();
    let defs = generator.take_definitions(true);
    let mut any = envelope(
        "hactl manifest (any kind)".into(),
        json!({ "enum": KINDS }),
        json!({ "type": "object" }),
        metadata,
        defs,
    );
    any["allOf"] = Value::Array(branches);
    out.push((ANY_FILE.to_string(), any));
    out
}

/// A schema rendered as committed: pretty JSON with a final newline.
pub fn render(schema: &Value) -> String {
    let mut text = serde_json::to_string_pretty(schema).unwrap_or_default();
    text.push('\n');
    text
}
