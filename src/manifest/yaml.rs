//! A YAML tree that remembers where every node came from.
//!
//! serde stops at the first error of a document and, with `#[serde(tag)]`, loses positions altogether; an
//! operator fixing a manifest repository in CI wants every mistake with its line and column. So we build our own
//! small tree from the events of `saphyr-parser` (the parser under serde-saphyr) and convert it by hand
//! (`decode.rs`). Building the tree ourselves is also where hostile input is bounded: duplicate keys are
//! reported, aliases are expanded against a node budget (billion laughs), and nesting has a depth limit.

use std::borrow::Cow;
use std::collections::HashMap;

use saphyr_parser::{Event, Parser, ScalarStyle, Span};

/// Deepest nesting accepted; manifests need about six levels, so this only stops abuse.
pub const MAX_DEPTH: usize = 64;
/// Nodes one file may expand to (aliases included), so that an alias bomb fails fast instead of eating memory.
pub const MAX_NODES: usize = 2_000_000;

/// A place in a source file, both 1-based, as editors and compilers print it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Pos {
    /// Line, from 1.
    pub line: u32,
    /// Column in characters, from 1.
    pub column: u32,
}

impl Pos {
    fn of(span: &Span) -> Pos {
        Pos {
            line: u32::try_from(span.start.line()).unwrap_or(u32::MAX),
            column: u32::try_from(span.start.col() + 1).unwrap_or(u32::MAX),
        }
    }
}

/// One YAML node with its position.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    /// Where the node starts.
    pub pos: Pos,
    /// What the node holds.
    pub value: Value,
}

/// The shapes a node can take. Mappings keep their source order, so errors come out in reading order.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// A scalar, with its text and whether it was written plain (unquoted), which decides its YAML 1.2 type.
    Scalar {
        /// The scalar's text after YAML unescaping.
        text: String,
        /// Plain scalars resolve to null, bool, int or float when they look like one; quoted ones are strings.
        plain: bool,
    },
    /// A sequence.
    Seq(Vec<Node>),
    /// A mapping with scalar keys (the key node keeps its own position for errors about the key).
    Map(Vec<(Node, Node)>),
}

/// A problem found while reading YAML, before any manifest rule applies.
#[derive(Debug, Clone, PartialEq)]
pub struct YamlProblem {
    /// Where.
    pub pos: Pos,
    /// Whether the whole file had to be given up (a syntax error), or only one key (a duplicate).
    pub fatal: bool,
    /// What, in words.
    pub message: String,
    /// Short code for the diagnostic.
    pub code: &'static str,
}

/// One document of a multi-document file; empty documents are skipped by the caller.
#[derive(Debug, Clone, PartialEq)]
pub struct Document {
    /// The document's root node, `None` for an empty document.
    pub root: Option<Node>,
    /// Where the document starts.
    pub pos: Pos,
}

/// Parses every document of `src`. A syntax error ends the file (YAML cannot be resynchronised reliably);
/// documents read before it are returned with the problem so the caller can decide what to keep.
pub fn parse(src: &str) -> (Vec<Document>, Vec<YamlProblem>) {
    let mut builder = Builder::default();
    let mut parser = Parser::new_from_str(src);
    loop {
        match parser.next_event() {
            None => break,
            Some(Ok((event, span))) => {
                if let Err(problem) = builder.event(event, span) {
                    builder.problems.push(problem);
                    builder.docs.clear();
                    break;
                }
            }
            Some(Err(err)) => {
                let m = err.marker();
                builder.problems.push(YamlProblem {
                    pos: Pos {
                        line: u32::try_from(m.line()).unwrap_or(u32::MAX),
                        column: u32::try_from(m.col() + 1).unwrap_or(u32::MAX),
                    },
                    fatal: true,
                    message: format!("YAML syntax error: {}", err.info()),
                    code: "yaml-syntax",
                });
                break;
            }
        }
    }
    (builder.docs, builder.problems)
}

/// A container being built: its position, anchor and the children so far.
enum Open {
    Seq(Pos, usize, Vec<Node>),
    Map(Pos, usize, Vec<(Node, Node)>, Option<Node>),
}

#[derive(Default)]
struct Builder {
    docs: Vec<Document>,
    problems: Vec<YamlProblem>,
    stack: Vec<Open>,
    anchors: HashMap<usize, Node>,
    /// Nodes created so far, aliases counted by the size of what they expand to.
    nodes: usize,
    doc_pos: Pos,
    root: Option<Node>,
}

fn count(node: &Node) -> usize {
    match &node.value {
        Value::Scalar { .. } => 1,
        Value::Seq(items) => 1 + items.iter().map(count).sum::<usize>(),
        Value::Map(entries) => 1 + entries.iter().map(|(k, v)| count(k) + count(v)).sum::<usize>(),
    }
}

impl Builder {
    fn event(&mut self, event: Event<'_>, span: Span) -> Result<(), YamlProblem> {
        let pos = Pos::of(&span);
        let fatal = |message: String, code: &'static str| YamlProblem { pos, fatal: true, message, code };
        match event {
            Event::Nothing | Event::StreamStart | Event::StreamEnd => {}
            Event::DocumentStart(_) => {
                self.doc_pos = pos;
                self.root = None;
                self.anchors.clear();
            }
            Event::DocumentEnd => {
                let root = self.root.take();
                self.docs.push(Document { root, pos: self.doc_pos });
            }
            Event::Alias(id) => {
                let node = self.anchors.get(&id).cloned().ok_or_else(|| {
                    fatal("alias refers to an anchor that is not defined before it".into(), "yaml-syntax")
                })?;
                self.nodes = self.nodes.saturating_add(count(&node));
                if self.nodes > MAX_NODES {
                    return Err(fatal(
                        format!("aliases expand to more than {MAX_NODES} nodes; refusing (alias bomb?)"),
                        "yaml-too-large",
                    ));
                }
                self.push(Node { pos, value: node.value })?;
            }
            Event::Scalar(text, style, anchor, _tag) => {
                let node = Node {
                    pos,
                    value: Value::Scalar { text: Cow::into_owned(text), plain: matches!(style, ScalarStyle::Plain) },
                };
                if anchor != 0 {
                    self.anchors.insert(anchor, node.clone());
                }
                self.bump(pos)?;
                self.push(node)?;
            }
            Event::SequenceStart(anchor, _) => {
                self.open(pos)?;
                self.stack.push(Open::Seq(pos, anchor, Vec::new()));
            }
            Event::MappingStart(anchor, _) => {
                self.open(pos)?;
                self.stack.push(Open::Map(pos, anchor, Vec::new(), None));
            }
            Event::SequenceEnd | Event::MappingEnd => {
                let (node, anchor) = match self.stack.pop() {
                    Some(Open::Seq(p, a, items)) => (Node { pos: p, value: Value::Seq(items) }, a),
                    Some(Open::Map(p, a, entries, _)) => (Node { pos: p, value: Value::Map(entries) }, a),
                    None => return Err(fatal("unbalanced collection end".into(), "yaml-syntax")),
                };
                if anchor != 0 {
                    self.anchors.insert(anchor, node.clone());
                }
                self.push(node)?;
            }
        }
        Ok(())
    }

    fn bump(&mut self, pos: Pos) -> Result<(), YamlProblem> {
        self.nodes += 1;
        if self.nodes > MAX_NODES {
            return Err(YamlProblem {
                pos,
                fatal: true,
                message: format!("more than {MAX_NODES} YAML nodes in one file; refusing"),
                code: "yaml-too-large",
            });
        }
        Ok(())
    }

    fn open(&mut self, pos: Pos) -> Result<(), YamlProblem> {
        self.bump(pos)?;
        if self.stack.len() >= MAX_DEPTH {
            return Err(YamlProblem {
                pos,
                fatal: true,
                message: format!("nesting deeper than {MAX_DEPTH} levels; manifests need far fewer"),
                code: "yaml-too-deep",
            });
        }
        Ok(())
    }

    /// Attaches a finished node to its parent (or makes it the document root).
    fn push(&mut self, node: Node) -> Result<(), YamlProblem> {
        match self.stack.last_mut() {
            None => self.root = Some(node),
            Some(Open::Seq(_, _, items)) => items.push(node),
            Some(Open::Map(_, _, entries, pending)) => match pending.take() {
                None => {
                    if !matches!(node.value, Value::Scalar { .. }) {
                        return Err(YamlProblem {
                            pos: node.pos,
                            fatal: true,
                            message: "mapping keys must be plain strings, not collections".into(),
                            code: "yaml-syntax",
                        });
                    }
                    *pending = Some(node);
                }
                Some(key) => {
                    let Value::Scalar { text, .. } = &key.value else {
                        unreachable!("only scalar keys are ever left pending (checked above)")
                    };
                    if let Some((first, _)) =
                        entries.iter().find(|(k, _)| matches!(&k.value, Value::Scalar { text: t, .. } if t == text))
                    {
                        self.problems.push(YamlProblem {
                            pos: key.pos,
                            fatal: false,
                            message: format!(
                                "duplicate key \"{text}\" (first at line {}); YAML keys must be unique",
                                first.pos.line
                            ),
                            code: "duplicate-key",
                        });
                    } else {
                        entries.push((key, node));
                    }
                }
            },
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scalar(node: &Node) -> &str {
        match &node.value {
            Value::Scalar { text, .. } => text,
            other => panic!("not a scalar: {other:?}"),
        }
    }

    #[test]
    fn positions_are_one_based_for_keys_and_values() {
        let (docs, problems) = parse("a: 1\nb:\n  c: x\n");
        assert!(problems.is_empty(), "{problems:?}");
        let Some(Node { value: Value::Map(entries), .. }) = &docs[0].root else { panic!("not a map") };
        assert_eq!(entries[1].0.pos, Pos { line: 2, column: 1 });
        let Value::Map(inner) = &entries[1].1.value else { panic!("not a map") };
        assert_eq!(inner[0].1.pos, Pos { line: 3, column: 6 });
        assert_eq!(scalar(&inner[0].1), "x");
    }

    #[test]
    fn duplicate_keys_are_reported_at_the_second_occurrence() {
        let (_, problems) = parse("a: 1\nb: 2\na: 3\n");
        assert_eq!(problems.len(), 1);
        assert_eq!(problems[0].pos, Pos { line: 3, column: 1 });
        assert_eq!(problems[0].code, "duplicate-key");
        assert!(problems[0].message.contains("first at line 1"));
    }

    #[test]
    fn multi_documents_and_empty_ones() {
        let (docs, problems) = parse("---\na: 1\n---\n---\nb: 2\n");
        assert!(problems.is_empty());
        assert_eq!(docs.len(), 3);
        // An empty document is reported as an empty plain scalar (null); the loader skips it.
        let empty = docs[1].root.as_ref().map(|n| n.value.clone());
        assert!(matches!(empty, None | Some(Value::Scalar { plain: true, .. })), "{empty:?}");
    }

    #[test]
    fn quoted_scalars_are_not_plain() {
        let (docs, _) = parse("a: \"1\"\nb: 1\n");
        let Some(Node { value: Value::Map(entries), .. }) = &docs[0].root else { panic!("not a map") };
        assert!(matches!(entries[0].1.value, Value::Scalar { plain: false, .. }));
        assert!(matches!(entries[1].1.value, Value::Scalar { plain: true, .. }));
    }

    #[test]
    fn alias_bomb_is_refused() {
        let mut src = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 1..12 {
            let p = i - 1;
            src.push_str(&format!(
                "a{i}: &a{i} [*a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}]\n"
            ));
        }
        let (_, problems) = parse(&src);
        assert_eq!(problems.last().map(|p| p.code), Some("yaml-too-large"));
    }

    #[test]
    fn deep_nesting_is_refused() {
        let src = "[".repeat(10_000);
        let (_, problems) = parse(&src);
        assert!(problems.iter().any(|p| p.fatal), "{problems:?}");
    }

    #[test]
    fn syntax_error_has_position() {
        let (_, problems) = parse("a: 1\n b: 2\n");
        assert_eq!(problems[0].code, "yaml-syntax");
        assert_eq!(problems[0].pos.line, 2);
    }
}
