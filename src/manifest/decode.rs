//! Converting the positioned YAML tree into typed manifest values, reporting every error and never stopping
//! at the first: each field is decoded on its own, a struct is built only when all its fields were, and the
//! errors of the others are still collected.

use std::borrow::Cow;
use std::fmt::Display;
use std::path::Path;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};

use super::diag::Diagnostic;
use super::yaml::{Node, Pos, Value};

/// Decoding context: the file, the findings so far and the field path being decoded.
pub struct Cx<'a> {
    /// The file being decoded (named in every finding).
    pub file: &'a Path,
    /// Findings collected so far.
    pub diags: &'a mut Vec<Diagnostic>,
    path: Vec<Seg>,
}

enum Seg {
    Field(String),
    Index(usize),
}

impl<'a> Cx<'a> {
    /// A context at the root of a document.
    pub fn new(file: &'a Path, diags: &'a mut Vec<Diagnostic>) -> Self {
        Cx { file, diags, path: Vec::new() }
    }

    /// The current field path as users write it: `spec.members[1]`.
    pub fn path(&self) -> String {
        let mut out = String::new();
        for seg in &self.path {
            match seg {
                Seg::Field(name) => {
                    if !out.is_empty() {
                        out.push('.');
                    }
                    out.push_str(name);
                }
                Seg::Index(i) => {
                    out.push('[');
                    out.push_str(&i.to_string());
                    out.push(']');
                }
            }
        }
        out
    }

    /// Reports an error at `pos` for the current path.
    pub fn error(&mut self, pos: Pos, code: &'static str, message: impl Into<String>) {
        let path = self.path();
        self.diags.push(Diagnostic::error(self.file, pos, code, path, message));
    }

    /// Runs `f` one field deeper.
    pub fn in_field<T>(&mut self, name: &str, f: impl FnOnce(&mut Self) -> T) -> T {
        self.path.push(Seg::Field(name.to_string()));
        let out = f(self);
        self.path.pop();
        out
    }

    /// Runs `f` one list element deeper.
    pub fn in_index<T>(&mut self, index: usize, f: impl FnOnce(&mut Self) -> T) -> T {
        self.path.push(Seg::Index(index));
        let out = f(self);
        self.path.pop();
        out
    }
}

/// A manifest value that can be decoded from a YAML node, reporting its own errors.
pub trait FromNode: Sized {
    /// Decodes `node`; `None` means an error was reported.
    fn from_node(node: &Node, cx: &mut Cx) -> Option<Self>;

    /// The value when the field is absent: `None` for required fields (then "missing field" is reported).
    fn if_missing() -> Option<Self> {
        None
    }
}

/// The YAML 1.2 core-schema type of a plain scalar; quoted scalars are always strings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScalarKind {
    /// `~`, `null` or nothing.
    Null,
    /// `true`/`false`.
    Bool,
    /// A decimal, octal (`0o`) or hex (`0x`) integer.
    Int,
    /// A decimal float, `.inf` or `.nan`.
    Float,
    /// Anything else.
    Str,
}

/// Resolves a scalar's type the way YAML 1.2's core schema (and so the JSON Schema validators) do.
pub fn scalar_kind(text: &str, plain: bool) -> ScalarKind {
    if !plain {
        return ScalarKind::Str;
    }
    match text {
        "" | "~" | "null" | "Null" | "NULL" => return ScalarKind::Null,
        "true" | "True" | "TRUE" | "false" | "False" | "FALSE" => return ScalarKind::Bool,
        ".inf" | ".Inf" | ".INF" | "+.inf" | "+.Inf" | "+.INF" | "-.inf" | "-.Inf" | "-.INF" | ".nan" | ".NaN"
        | ".NAN" => return ScalarKind::Float,
        _ => {}
    }
    let digits = text.strip_prefix(['-', '+']).unwrap_or(text);
    if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
        return ScalarKind::Int;
    }
    let radix = |prefix: &str, ok: fn(u8) -> bool| {
        text.strip_prefix(prefix).is_some_and(|r| !r.is_empty() && r.bytes().all(ok))
    };
    if radix("0o", |b| (b'0'..=b'7').contains(&b)) || radix("0x", |b| b.is_ascii_hexdigit()) {
        return ScalarKind::Int;
    }
    if is_float(digits) {
        return ScalarKind::Float;
    }
    ScalarKind::Str
}

fn is_float(s: &str) -> bool {
    let (mantissa, exponent) = match s.find(['e', 'E']) {
        Some(i) => (&s[..i], Some(&s[i + 1..])),
        None => (s, None),
    };
    let (int, frac) = match mantissa.split_once('.') {
        Some((i, f)) => (i, Some(f)),
        None => (mantissa, None),
    };
    let all_digits = |t: &str| t.bytes().all(|b| b.is_ascii_digit());
    let mantissa_ok = match frac {
        Some(f) => all_digits(int) && all_digits(f) && !(int.is_empty() && f.is_empty()),
        None => !int.is_empty() && all_digits(int),
    };
    let exponent_ok = exponent.is_none_or(|e| {
        let e = e.strip_prefix(['-', '+']).unwrap_or(e);
        !e.is_empty() && all_digits(e)
    });
    mantissa_ok && exponent_ok && (frac.is_some() || exponent.is_some())
}

/// Says what a node is, for "expected X, found Y" messages.
pub fn describe(node: &Node) -> String {
    match &node.value {
        Value::Seq(_) => "a list".into(),
        Value::Map(_) => "a mapping".into(),
        Value::Scalar { text, plain } => match scalar_kind(text, *plain) {
            ScalarKind::Null => "an empty value".into(),
            ScalarKind::Bool => format!("the boolean {text}"),
            ScalarKind::Int => format!("the integer {text}"),
            ScalarKind::Float => format!("the number {text}"),
            ScalarKind::Str => format!("the string \"{text}\""),
        },
    }
}

/// True for `~`, `null` or an empty value.
pub fn is_null(node: &Node) -> bool {
    matches!(&node.value, Value::Scalar { text, plain } if scalar_kind(text, *plain) == ScalarKind::Null)
}

fn type_error(node: &Node, cx: &mut Cx, expected: &str) {
    cx.error(node.pos, "type", format!("expected {expected}, found {}", describe(node)));
}

/// The scalar text of a node of the wanted kind, or a reported type error.
fn scalar<'n>(node: &'n Node, cx: &mut Cx, want: ScalarKind, expected: &str) -> Option<&'n str> {
    match &node.value {
        Value::Scalar { text, plain } if scalar_kind(text, *plain) == want => Some(text),
        _ => {
            type_error(node, cx, expected);
            None
        }
    }
}

impl FromNode for String {
    fn from_node(node: &Node, cx: &mut Cx) -> Option<Self> {
        match &node.value {
            Value::Scalar { text, plain } if scalar_kind(text, *plain) == ScalarKind::Str => Some(text.clone()),
            Value::Scalar { text, plain } if scalar_kind(text, *plain) != ScalarKind::Null => {
                type_error(node, cx, &format!("a string (write \"{text}\" in quotes if you mean the text)"));
                None
            }
            _ => {
                type_error(node, cx, "a string");
                None
            }
        }
    }
}

impl FromNode for bool {
    fn from_node(node: &Node, cx: &mut Cx) -> Option<Self> {
        scalar(node, cx, ScalarKind::Bool, "true or false").map(|t| t.eq_ignore_ascii_case("true"))
    }
}

impl FromNode for f64 {
    fn from_node(node: &Node, cx: &mut Cx) -> Option<Self> {
        if let Value::Scalar { text, plain: true } = &node.value {
            if matches!(scalar_kind(text, true), ScalarKind::Int | ScalarKind::Float) {
                if let Ok(v) = text.parse::<f64>() {
                    if v.is_finite() {
                        return Some(v);
                    }
                }
            }
        }
        type_error(node, cx, "a finite number");
        None
    }
}

/// Parses a YAML 1.2 integer (decimal, `0o`, `0x`) into i128 so that any range check can follow.
fn parse_int(text: &str) -> Option<i128> {
    if let Some(r) = text.strip_prefix("0o") {
        return i128::from_str_radix(r, 8).ok();
    }
    if let Some(r) = text.strip_prefix("0x") {
        return i128::from_str_radix(r, 16).ok();
    }
    text.parse::<i128>().ok()
}

macro_rules! int_from_node {
    ($($t:ty),*) => {$(
        impl FromNode for $t {
            fn from_node(node: &Node, cx: &mut Cx) -> Option<Self> {
                let text = scalar(node, cx, ScalarKind::Int, "an integer")?;
                match parse_int(text).and_then(|v| <$t>::try_from(v).ok()) {
                    Some(v) => Some(v),
                    None => {
                        cx.error(node.pos, "out-of-range", format!(
                            "{text} does not fit; valid: {} to {}", <$t>::MIN, <$t>::MAX));
                        None
                    }
                }
            }
        }
    )*};
}
int_from_node!(u8, u16, u32, u64, i64);

impl<T: FromNode> FromNode for Option<T> {
    fn from_node(node: &Node, cx: &mut Cx) -> Option<Self> {
        if is_null(node) {
            return Some(None);
        }
        T::from_node(node, cx).map(Some)
    }

    fn if_missing() -> Option<Self> {
        Some(None)
    }
}

impl<T: FromNode> FromNode for Vec<T> {
    fn from_node(node: &Node, cx: &mut Cx) -> Option<Self> {
        let Value::Seq(items) = &node.value else {
            type_error(node, cx, "a list");
            return None;
        };
        let decoded: Vec<Option<T>> =
            items.iter().enumerate().map(|(i, item)| cx.in_index(i, |cx| T::from_node(item, cx))).collect();
        decoded.into_iter().collect()
    }
}

/// A value with the place it was written, so that checks across documents can point back at it.
#[derive(Debug, Clone, PartialEq)]
pub struct At<T> {
    /// The decoded value.
    pub value: T,
    /// Where it was written.
    pub pos: Pos,
    /// Its field path in the document.
    pub path: String,
}

impl<T: FromNode> FromNode for At<T> {
    fn from_node(node: &Node, cx: &mut Cx) -> Option<Self> {
        let value = T::from_node(node, cx)?;
        Some(At { value, pos: node.pos, path: cx.path() })
    }
}

impl<T: JsonSchema> JsonSchema for At<T> {
    fn inline_schema() -> bool {
        T::inline_schema()
    }
    fn schema_name() -> Cow<'static, str> {
        T::schema_name()
    }
    fn schema_id() -> Cow<'static, str> {
        T::schema_id()
    }
    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        T::json_schema(generator)
    }
}

/// A mapping from user-chosen keys (node names, OCF parameters) that keeps each key's place.
#[derive(Debug, Clone, PartialEq)]
pub struct Entries<T>(pub Vec<(At<String>, T)>);

impl<T: FromNode> FromNode for Entries<T> {
    fn from_node(node: &Node, cx: &mut Cx) -> Option<Self> {
        let Value::Map(entries) = &node.value else {
            type_error(node, cx, "a mapping");
            return None;
        };
        let mut out = Vec::new();
        let mut ok = true;
        for (key, value) in entries {
            let Value::Scalar { text, .. } = &key.value else { continue };
            let decoded = cx.in_field(text, |cx| {
                let at = At { value: text.clone(), pos: key.pos, path: cx.path() };
                T::from_node(value, cx).map(|v| (at, v))
            });
            match decoded {
                Some(entry) => out.push(entry),
                None => ok = false,
            }
        }
        ok.then_some(Entries(out))
    }
}

impl<T: JsonSchema> JsonSchema for Entries<T> {
    fn schema_name() -> Cow<'static, str> {
        format!("Map_of_{}", T::schema_name()).into()
    }
    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        json_schema!({ "type": "object", "additionalProperties": generator.subschema_for::<T>() })
    }
}

/// Reads the fields of one mapping, then reports the keys nobody asked for.
pub struct Fields<'n> {
    entries: &'n [(Node, Node)],
    used: Vec<bool>,
    pos: Pos,
}

impl<'n> Fields<'n> {
    /// Starts reading `node`, which must be a mapping.
    pub fn new(node: &'n Node, cx: &mut Cx) -> Option<Self> {
        match &node.value {
            Value::Map(entries) => Some(Fields { entries, used: vec![false; entries.len()], pos: node.pos }),
            _ => {
                type_error(node, cx, "a mapping");
                None
            }
        }
    }

    /// Position of the mapping itself, for errors about a missing field.
    pub fn pos(&self) -> Pos {
        self.pos
    }

    /// The raw node of `key`, marking it as known.
    pub fn node(&mut self, key: &str) -> Option<&'n Node> {
        let i = self.entries.iter().position(|(k, _)| matches!(&k.value, Value::Scalar { text, .. } if text == key))?;
        self.used[i] = true;
        Some(&self.entries[i].1)
    }

    /// Decodes field `key`; reports it missing when it is required.
    pub fn get<T: FromNode>(&mut self, cx: &mut Cx, key: &str) -> Option<T> {
        match self.node(key) {
            Some(node) => cx.in_field(key, |cx| T::from_node(node, cx)),
            None => {
                let missing = T::if_missing();
                if missing.is_none() {
                    cx.error(self.pos, "missing-field", format!("missing required field \"{key}\""));
                }
                missing
            }
        }
    }

    /// Reports every key that was not read, naming the valid ones.
    pub fn finish(self, cx: &mut Cx, valid: &[&str]) {
        for ((key, _), used) in self.entries.iter().zip(self.used) {
            if used {
                continue;
            }
            let Value::Scalar { text, .. } = &key.value else { continue };
            let hint = match closest(text, valid) {
                Some(near) => format!(" (did you mean \"{near}\"?)"),
                None => String::new(),
            };
            cx.in_field(text, |cx| {
                cx.error(
                    key.pos,
                    "unknown-field",
                    format!("unknown field \"{text}\"{hint}; valid fields: {}", valid.join(", ")),
                )
            });
        }
    }
}

/// The valid name nearest to a misspelt one, when it is near enough to be a likely typo.
pub fn closest<'v>(word: &str, valid: &[&'v str]) -> Option<&'v str> {
    let lower = word.to_ascii_lowercase();
    valid
        .iter()
        .map(|v| (distance(&lower, &v.to_ascii_lowercase()), *v))
        .filter(|(d, v)| *d <= 2.max(v.len() / 4))
        .min_by_key(|(d, _)| *d)
        .map(|(_, v)| v)
}

/// Levenshtein distance; names are short, so the quadratic table is cheap.
fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let old = row[j + 1];
            row[j + 1] = (prev + usize::from(ca != *cb)).min(row[j] + 1).min(row[j + 1] + 1);
            prev = old;
        }
    }
    row[b.len()]
}

/// Decodes a scalar string and parses it with `parse`, reporting `code` with the parser's message.
pub fn parse_str<T, E: Display>(
    node: &Node,
    cx: &mut Cx,
    code: &'static str,
    parse: impl FnOnce(&str) -> Result<T, E>,
) -> Option<T> {
    let text = String::from_node(node, cx)?;
    match parse(&text) {
        Ok(v) => Some(v),
        Err(e) => {
            cx.error(node.pos, code, e.to_string());
            None
        }
    }
}

/// Declares a manifest struct once: the Rust type, its JSON Schema (via schemars, doc comments become
/// descriptions) and its decoder, so that the schema and the validator cannot disagree about field names.
macro_rules! manifest_struct {
    (
        $(#[$meta:meta])*
        pub struct $name:ident {
            $(
                $(#[$fmeta:meta])*
                pub $field:ident : $ty:ty = $key:literal,
            )*
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, schemars::JsonSchema)]
        #[serde(deny_unknown_fields)]
        pub struct $name {
            $(
                $(#[$fmeta])*
                #[serde(rename = $key)]
                pub $field: $ty,
            )*
        }

        impl $crate::manifest::decode::FromNode for $name {
            fn from_node(
                node: &$crate::manifest::yaml::Node,
                cx: &mut $crate::manifest::decode::Cx,
            ) -> Option<Self> {
                let mut fields = $crate::manifest::decode::Fields::new(node, cx)?;
                $( let $field = fields.get::<$ty>(cx, $key); )*
                fields.finish(cx, &[$($key),*]);
                Some($name { $( $field: $field?, )* })
            }
        }
    };
}
pub(crate) use manifest_struct;

/// Declares a closed set of words (`majority | ignore`) with its schema and decoder.
macro_rules! manifest_enum {
    (
        $(#[$meta:meta])*
        pub enum $name:ident { $( $(#[$vmeta:meta])* $variant:ident = $word:literal, )* }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, schemars::JsonSchema, serde::Serialize)]
        pub enum $name {
            $( $(#[$vmeta])* #[serde(rename = $word)] $variant, )*
        }

        impl $crate::manifest::decode::FromNode for $name {
            fn from_node(
                node: &$crate::manifest::yaml::Node,
                cx: &mut $crate::manifest::decode::Cx,
            ) -> Option<Self> {
                let valid = [$($word),*];
                let text = String::from_node(node, cx)?;
                match text.as_str() {
                    $( $word => Some($name::$variant), )*
                    _ => {
                        cx.error(node.pos, "invalid-value",
                            format!("\"{text}\" is not valid; valid: {}", valid.join(", ")));
                        None
                    }
                }
            }
        }
    };
}
pub(crate) use manifest_enum;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::yaml;

    fn node(src: &str) -> Node {
        yaml::parse(src).0.remove(0).root.expect("a document")
    }

    #[test]
    fn core_schema_resolution() {
        assert_eq!(scalar_kind("694", true), ScalarKind::Int);
        assert_eq!(scalar_kind("694", false), ScalarKind::Str);
        assert_eq!(scalar_kind("0x1F", true), ScalarKind::Int);
        assert_eq!(scalar_kind("1e-3", true), ScalarKind::Float);
        assert_eq!(scalar_kind("0.001", true), ScalarKind::Float);
        assert_eq!(scalar_kind("12.34.56.78", true), ScalarKind::Str);
        assert_eq!(scalar_kind("yes", true), ScalarKind::Str);
        assert_eq!(scalar_kind("~", true), ScalarKind::Null);
        assert_eq!(scalar_kind("5s", true), ScalarKind::Str);
    }

    #[test]
    fn string_field_refuses_an_unquoted_number() {
        let mut diags = Vec::new();
        let mut cx = Cx::new(Path::new("f.yaml"), &mut diags);
        assert_eq!(String::from_node(&node("123"), &mut cx), None);
        assert!(diags[0].message.contains("in quotes"), "{}", diags[0].message);
    }

    #[test]
    fn integer_range_is_checked() {
        let mut diags = Vec::new();
        let mut cx = Cx::new(Path::new("f.yaml"), &mut diags);
        assert_eq!(u16::from_node(&node("70000"), &mut cx), None);
        assert_eq!(diags[0].code, "out-of-range");
    }

    #[test]
    fn closest_suggests_typos_only() {
        assert_eq!(closest("intreval", &["interval", "deadTime"]), Some("interval"));
        assert_eq!(closest("colour", &["interval", "deadTime"]), None);
    }
}
