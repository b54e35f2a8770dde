//! `tr7 schema` stays in sync with the model: its objects have exactly the fields the reader
//! accepts, every example validates against it (with a small checker of the keywords the
//! schema uses), and it refuses what the reader refuses (unknown fields, options of another
//! interface type).

use std::collections::BTreeSet;
use std::path::PathBuf;

use serde_json::{Value, json};
use tr7::config::file::{
    ClusterFile, GatewayCheckEntry, GatewayEntry, InterfaceEntry, NodeEntry, SlotEntry, VipEntry,
    VipsEntry, VrrpEntry,
};
use tr7::config::{self, schema};

/// A checker for the subset of JSON Schema 2020-12 that the generated schema uses. `pattern`
/// and `format` are annotations here (the reader checks those values itself).
fn check(root: &Value, schema: &Value, value: &Value, path: &str, errors: &mut Vec<String>) {
    let Some(s) = schema.as_object() else {
        if schema == &Value::Bool(false) {
            errors.push(format!("{path}: not allowed here"));
        }
        return;
    };
    if let Some(r) = s.get("$ref").and_then(Value::as_str) {
        let target = root
            .pointer(r.trim_start_matches('#'))
            .expect("$ref resolves");
        check(root, target, value, path, errors);
    }
    if let Some(t) = s.get("type") {
        let types: Vec<&str> = match t {
            Value::String(t) => vec![t.as_str()],
            Value::Array(ts) => ts.iter().filter_map(Value::as_str).collect(),
            _ => vec![],
        };
        let ok = types.iter().any(|t| match *t {
            "string" => value.is_string(),
            "integer" => value.is_i64() || value.is_u64(),
            "number" => value.is_number(),
            "boolean" => value.is_boolean(),
            "object" => value.is_object(),
            "array" => value.is_array(),
            "null" => value.is_null(),
            _ => false,
        });
        if !ok {
            errors.push(format!("{path}: {value} is not {types:?}"));
            return;
        }
    }
    if let Some(e) = s.get("enum").and_then(Value::as_array)
        && !e.contains(value)
    {
        errors.push(format!("{path}: {value} not in {e:?}"));
    }
    if let Some(c) = s.get("const")
        && c != value
    {
        errors.push(format!("{path}: {value} is not {c}"));
    }
    if let (Some(min), Some(v)) = (s.get("minimum").and_then(Value::as_i64), value.as_i64())
        && v < min
    {
        errors.push(format!("{path}: {v} < {min}"));
    }
    if let (Some(max), Some(v)) = (s.get("maximum").and_then(Value::as_i64), value.as_i64())
        && v > max
    {
        errors.push(format!("{path}: {v} > {max}"));
    }
    if let Some(obj) = value.as_object() {
        let props = s.get("properties").and_then(Value::as_object);
        for req in s
            .get("required")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let req = req.as_str().expect("required names");
            if !obj.contains_key(req) {
                errors.push(format!("{path}: missing {req}"));
            }
        }
        for (k, v) in obj {
            let p = format!("{path}.{k}");
            match props.and_then(|p| p.get(k)) {
                Some(ps) => check(root, ps, v, &p, errors),
                None => match s.get("additionalProperties") {
                    Some(Value::Bool(false)) => errors.push(format!("{p}: unknown property")),
                    Some(ap) => check(root, ap, v, &p, errors),
                    None => {}
                },
            }
        }
    }
    if let (Some(items), Some(arr)) = (s.get("items"), value.as_array()) {
        for (i, v) in arr.iter().enumerate() {
            check(root, items, v, &format!("{path}[{i}]"), errors);
        }
    }
    if let Some(any) = s.get("anyOf").and_then(Value::as_array) {
        let ok = any.iter().any(|alt| {
            let mut e = Vec::new();
            check(root, alt, value, path, &mut e);
            e.is_empty()
        });
        if !ok {
            errors.push(format!("{path}: matches no anyOf alternative"));
        }
    }
    for sub in s
        .get("allOf")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        if let Some(cond) = sub.get("if") {
            let mut e = Vec::new();
            check(root, cond, value, path, &mut e);
            if e.is_empty()
                && let Some(then) = sub.get("then")
            {
                check(root, then, value, path, errors);
            }
        } else {
            check(root, sub, value, path, errors);
        }
    }
}

fn errors_of(value: &Value) -> Vec<String> {
    let root = schema::schema();
    let mut errors = Vec::new();
    check(&root, &root, value, "$", &mut errors);
    errors
}

fn keys(v: &Value) -> BTreeSet<String> {
    v.get("properties")
        .and_then(Value::as_object)
        .map(|p| p.keys().cloned().collect())
        .unwrap_or_default()
}

fn set(fields: &[&str]) -> BTreeSet<String> {
    fields.iter().map(|f| (*f).to_owned()).collect()
}

// Proves every object of the schema has exactly the fields the reader accepts.
#[test]
fn schema_fields_match_reader() {
    let s = schema::schema();
    assert_eq!(keys(&s), set(ClusterFile::FIELDS));
    let defs = &s["$defs"];
    assert_eq!(keys(&defs["NodeEntry"]), set(NodeEntry::FIELDS));
    assert_eq!(keys(&defs["InterfaceEntry"]), set(InterfaceEntry::FIELDS));
    assert_eq!(keys(&defs["VrrpEntry"]), set(VrrpEntry::FIELDS));
    assert_eq!(keys(&defs["SlotEntry"]), set(SlotEntry::FIELDS));
    assert_eq!(keys(&defs["VipsEntry"]), set(VipsEntry::FIELDS));
    assert_eq!(keys(&defs["VipEntry"]), set(VipEntry::FIELDS));
    assert_eq!(keys(&defs["GatewayEntry"]), set(GatewayEntry::FIELDS));
    assert_eq!(
        keys(&defs["GatewayCheckEntry"]),
        set(GatewayCheckEntry::FIELDS)
    );
    for (name, def) in defs.as_object().expect("defs") {
        if def.get("properties").is_some() {
            assert_eq!(
                def["additionalProperties"], false,
                "{name} refuses unknown fields"
            );
        }
    }
}

// Proves every example file validates against the schema.
#[test]
fn examples_validate_against_schema() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../examples");
    for entry in std::fs::read_dir(dir).expect("examples/") {
        let path = entry.expect("entry").path();
        let text = std::fs::read_to_string(&path).expect("read");
        let file = config::parse_file(&text, &path.display().to_string()).expect("parses");
        let value = serde_json::to_value(&file).expect("json");
        let errors = errors_of(&value);
        assert!(errors.is_empty(), "{}: {errors:#?}", path.display());
    }
}

// Proves the schema refuses an unknown field and an option of another interface type, as the
// reader does.
#[test]
fn schema_refuses_what_reader_refuses() {
    let base = json!({"name": "t", "nodes": [{"name": "a"}],
        "interfaces": [{"name": "br0", "type": "bridge", "members": []}]});
    assert!(errors_of(&base).is_empty());
    let mut with_id = base.clone();
    with_id["interfaces"][0]["id"] = json!(5);
    assert!(!errors_of(&with_id).is_empty(), "id on a bridge");
    let mut unknown = base.clone();
    unknown["interfaces"][0]["colour"] = json!("red");
    assert!(!errors_of(&unknown).is_empty(), "unknown field");
    let vlan = json!({"name": "t", "nodes": [{"name": "a"}],
        "interfaces": [{"name": "v5", "type": "vlan", "parent": "eth0"}]});
    assert!(!errors_of(&vlan).is_empty(), "vlan without id");
}
