//! `tr7 schema`: the JSON Schema of the cluster file, for editors to validate and complete.
//!
//! The schema is generated from the same file types the parser fills (`file.rs`), so field
//! names and documentation cannot drift from the code. What derive cannot express, that each
//! interface type takes only its own options, is added from the same tables the reader uses.

use serde_json::{Map, Value, json};

use super::file::{ClusterFile, InterfaceEntry};
use super::model::InterfaceType;

/// The JSON Schema (draft 2020-12) of the cluster file.
pub fn schema() -> Value {
    let generator = schemars::generate::SchemaSettings::draft2020_12().into_generator();
    let mut root = generator.into_root_schema_for::<ClusterFile>().to_value();
    if let Some(obj) = root.as_object_mut() {
        obj.insert(
            "$id".into(),
            json!("https://tr7.invalid/schema/cluster-file.json"),
        );
    }
    if let Some(iface) = root
        .pointer_mut("/$defs/InterfaceEntry")
        .and_then(Value::as_object_mut)
    {
        iface.insert("allOf".into(), Value::Array(per_type_rules()));
    }
    root
}

/// One `if type == T then (required options of T, other types' options forbidden)` per type.
fn per_type_rules() -> Vec<Value> {
    InterfaceType::ALL
        .iter()
        .map(|&t| {
            let own = InterfaceEntry::type_fields(t);
            let forbidden: Map<String, Value> = InterfaceEntry::FIELDS
                .iter()
                .filter(|f| !InterfaceEntry::COMMON_FIELDS.contains(f) && !own.contains(f))
                .map(|f| ((*f).to_owned(), Value::Bool(false)))
                .collect();
            json!({
                "if": { "properties": { "type": { "const": t.as_str() } }, "required": ["type"] },
                "then": {
                    "required": InterfaceEntry::required_fields(t),
                    "properties": forbidden,
                }
            })
        })
        .collect()
}

/// The schema as pretty JSON text.
pub fn schema_text() -> String {
    // Serializing a `Value` cannot fail; fall back to the compact form rather than panic.
    let v = schema();
    serde_json::to_string_pretty(&v).unwrap_or_else(|_| v.to_string())
}
