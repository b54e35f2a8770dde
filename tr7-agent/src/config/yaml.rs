//! The YAML layer: a tree of values, each with the line and column it came from.
//!
//! serde-saphyr resolves YAML (anchors, aliases, merge keys, tags, scalar types) and gives each
//! node its position through `Spanned`. The typed model is then read from this tree by
//! `read.rs`, which can report every problem with its position instead of stopping at the first
//! one as a derived `Deserialize` would.

use std::fmt;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_saphyr::{Budget, DuplicateKeyPolicy, Spanned};

use super::error::Pos;

/// One YAML node with its position.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Node {
    pub(crate) pos: Pos,
    pub(crate) value: Value,
}

/// The resolved YAML value of a node.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Value {
    Null,
    Bool(bool),
    Int(i128),
    Float(f64),
    Str(String),
    Seq(Vec<Node>),
    /// Entries in file order; duplicate keys are kept so that the reader reports them.
    Map(Vec<(Node, Node)>),
}

impl Value {
    /// The YAML kind of the value, for "expected X, found Y" messages.
    pub(crate) fn kind(&self) -> &'static str {
        match self {
            Value::Null => "nothing (null)",
            Value::Bool(_) => "a boolean",
            Value::Int(_) => "an integer",
            Value::Float(_) => "a number",
            Value::Str(_) => "a string",
            Value::Seq(_) => "a list",
            Value::Map(_) => "a mapping",
        }
    }
}

/// A YAML syntax error with the position the parser gave.
#[derive(Debug)]
pub(crate) struct SyntaxError {
    pub(crate) pos: Pos,
    pub(crate) message: String,
}

/// Parses one YAML document into a positioned tree.
pub(crate) fn parse(text: &str) -> Result<Node, SyntaxError> {
    // Duplicate keys pass through to the reader, which reports each of them with the others.
    // The default budget (250,000 nodes) is below a 4,000-VLAN trunk (about 500,000);
    // the limits stay finite so a hostile file cannot exhaust memory.
    let mut budget = Budget::default();
    budget.max_nodes = 5_000_000;
    budget.max_events = 10_000_000;
    let options = serde_saphyr::options! {
        duplicate_keys: DuplicateKeyPolicy::PassThrough,
        budget: Some(budget),
    };
    match serde_saphyr::from_str_with_options::<Option<Spanned<Tree>>>(text, options) {
        Ok(Some(tree)) => Ok(to_node(tree)),
        Ok(None) => Ok(Node {
            pos: Pos::new(1, 1),
            value: Value::Null,
        }),
        Err(err) => {
            let pos = err
                .location()
                .map(|l| Pos::new(l.line() as u32, l.column() as u32))
                .unwrap_or_default();
            Err(SyntaxError {
                pos,
                message: clean_message(&err.without_snippet().to_string()),
            })
        }
    }
}

/// serde-saphyr's message starts with "error: line L column C: "; our diagnostics carry the
/// position in their own fields, so the prefix would only repeat it.
fn clean_message(raw: &str) -> String {
    let first = raw.lines().next().unwrap_or(raw);
    let s = first.strip_prefix("error: ").unwrap_or(first);
    let s = match s.strip_prefix("line ") {
        Some(rest) => match rest.find(": ") {
            Some(i) if rest[..i].contains("column") => &rest[i + 2..],
            _ => s,
        },
        None => s,
    };
    // Some messages repeat the position at their end as well.
    let s = match s.rfind(" at line ") {
        Some(i) if s[i..].contains(", column ") => &s[..i],
        _ => s,
    };
    s.trim().to_owned()
}

fn to_node(spanned: Spanned<Tree>) -> Node {
    let loc = spanned.referenced;
    let pos = Pos::new(loc.line() as u32, loc.column() as u32);
    let value = match spanned.value {
        Tree::Null => Value::Null,
        Tree::Bool(b) => Value::Bool(b),
        Tree::Int(i) => Value::Int(i),
        Tree::Float(f) => Value::Float(f),
        Tree::Str(s) => Value::Str(s),
        Tree::Seq(items) => Value::Seq(items.into_iter().map(to_node).collect()),
        Tree::Map(entries) => Value::Map(
            entries
                .into_iter()
                .map(|(k, v)| (to_node(k), to_node(v)))
                .collect(),
        ),
    };
    Node { pos, value }
}

/// The shape serde-saphyr deserializes into; `Spanned` at every level carries the positions.
enum Tree {
    Null,
    Bool(bool),
    Int(i128),
    Float(f64),
    Str(String),
    Seq(Vec<Spanned<Tree>>),
    Map(Vec<(Spanned<Tree>, Spanned<Tree>)>),
}

impl<'de> Deserialize<'de> for Tree {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(TreeVisitor)
    }
}

struct TreeVisitor;

impl<'de> Visitor<'de> for TreeVisitor {
    type Value = Tree;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any YAML value")
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Tree, E> {
        Ok(Tree::Bool(v))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Tree, E> {
        Ok(Tree::Int(v.into()))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Tree, E> {
        Ok(Tree::Int(v.into()))
    }

    fn visit_i128<E: de::Error>(self, v: i128) -> Result<Tree, E> {
        Ok(Tree::Int(v))
    }

    fn visit_u128<E: de::Error>(self, v: u128) -> Result<Tree, E> {
        // Anything beyond i128 is out of range for every field anyway.
        Ok(Tree::Int(i128::try_from(v).unwrap_or(i128::MAX)))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Tree, E> {
        Ok(Tree::Float(v))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Tree, E> {
        Ok(Tree::Str(v.to_owned()))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Tree, E> {
        Ok(Tree::Str(v))
    }

    fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<Tree, E> {
        Ok(Tree::Str(String::from_utf8_lossy(v).into_owned()))
    }

    fn visit_unit<E: de::Error>(self) -> Result<Tree, E> {
        Ok(Tree::Null)
    }

    fn visit_none<E: de::Error>(self) -> Result<Tree, E> {
        Ok(Tree::Null)
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<Tree, D::Error> {
        Tree::deserialize(deserializer)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Tree, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(Tree::Seq(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Tree, A::Error> {
        let mut entries = Vec::new();
        while let Some(key) = map.next_key()? {
            let value = map.next_value()?;
            entries.push((key, value));
        }
        Ok(Tree::Map(entries))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Proves that positions survive nesting, aliases and merge keys, and that duplicate keys
    // reach the reader instead of failing the parse.
    #[test]
    fn positions_and_duplicates() {
        let text = "a: 1\nb:\n  - x: on\n    x: 2\nbase: &b {q: 1}\nder:\n  <<: *b\n";
        let node = parse(text).expect("valid YAML");
        let Value::Map(entries) = &node.value else {
            panic!("top is a mapping")
        };
        assert_eq!(entries[0].1.pos, Pos::new(1, 4));
        let Value::Seq(items) = &entries[1].1.value else {
            panic!("b is a list")
        };
        let Value::Map(inner) = &items[0].value else {
            panic!("item is a mapping")
        };
        assert_eq!(inner.len(), 2, "duplicate key kept");
        assert_eq!(inner[1].0.pos, Pos::new(4, 5));
        assert_eq!(inner[0].1.value, Value::Bool(true));
    }

    // Proves that a syntax error carries a position and a message without the snippet.
    #[test]
    fn syntax_error_position() {
        let err = parse("a: [1, 2\nb: 3\n").expect_err("unclosed flow list");
        assert!(err.pos.line >= 1, "{err:?}");
        assert!(!err.message.contains('\n'), "{}", err.message);
    }
}
