//! From decoded documents to the `DesiredState`: envelopes, names across files, cross references, ranges and
//! timer sanity. Every rule reports at the exact place it concerns and all rules run, so one pass shows the
//! operator everything that is wrong.

mod cluster;
mod groups;
mod resources;

use std::collections::BTreeMap;
use std::fmt::Display;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::decode::{At, Cx, Fields, FromNode, closest};
use super::diag::Diagnostic;
use super::model::DesiredState;
use super::raw::{ClusterSpec, FloatingIpSpec, GroupSpec, Metadata, NodeSpec, ServiceSpec};
use super::values::{Dur, Name};
use super::yaml::{Node, Pos, Value};

/// The only API version there is; a future v2 will be converted, never guessed.
pub const API_VERSION: &str = "hactl/v1";
/// The kinds, in the order the README documents them.
pub const KINDS: [&str; 5] = ["Cluster", "Node", "FloatingIP", "Service", "Group"];

/// A document's kind with its decoded spec.
// Specs live only while a set is checked, one per document; boxing would buy nothing measurable.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone)]
pub enum Spec {
    /// Cluster settings.
    Cluster(ClusterSpec),
    /// A node.
    Node(NodeSpec),
    /// A floating address.
    FloatingIp(FloatingIpSpec),
    /// A service.
    Service(ServiceSpec),
    /// A group.
    Group(GroupSpec),
}

/// One decoded document with the file it came from.
#[derive(Debug, Clone)]
pub struct RawDoc {
    /// The file.
    pub file: PathBuf,
    /// `metadata.name` with its place.
    pub name: At<Name>,
    /// The kind, one of [`KINDS`].
    pub kind: &'static str,
    /// The spec; `None` when it had errors (reported), so that its name still resolves for references.
    pub spec: Option<Spec>,
}

impl RawDoc {
    /// FloatingIP and Service names share one namespace (both are group members).
    fn namespace(&self) -> &'static str {
        match self.kind {
            "FloatingIP" | "Service" => "resource",
            other => other,
        }
    }

    fn place(&self) -> String {
        format!("{}:{}", self.file.display(), self.name.pos.line)
    }
}

/// Decodes one document's envelope and spec; `None` when it has errors (all of them reported).
pub fn decode_document(root: &Node, file: &Path, diags: &mut Vec<Diagnostic>) -> Option<RawDoc> {
    let mut cx = Cx::new(file, diags);
    let mut fields = Fields::new(root, &mut cx)?;
    let api: Option<At<String>> = fields.get(&mut cx, "apiVersion");
    let kind: Option<At<String>> = fields.get(&mut cx, "kind");
    let metadata: Option<Metadata> = fields.get(&mut cx, "metadata");
    if let Some(api) = &api {
        if api.value != API_VERSION {
            cx.in_field("apiVersion", |cx| {
                cx.error(
                    api.pos,
                    "api-version",
                    format!("unsupported apiVersion \"{}\"; valid: {API_VERSION}", api.value),
                )
            });
        }
    }
    let known_kind = kind.as_ref().and_then(|k| {
        let found = KINDS.iter().find(|v| **v == k.value).copied();
        if found.is_none() {
            let hint = closest(&k.value, &KINDS).map(|n| format!(" (did you mean \"{n}\"?)")).unwrap_or_default();
            cx.in_field("kind", |cx| {
                cx.error(
                    k.pos,
                    "unknown-kind",
                    format!("unknown kind \"{}\"{hint}; valid: {}", k.value, KINDS.join(", ")),
                )
            });
        }
        found
    });
    let spec_node = fields.node("spec");
    let spec = match (known_kind, spec_node) {
        (Some(kind), Some(node)) => cx.in_field("spec", |cx| decode_spec(kind, node, cx)),
        (Some(_), None) => {
            cx.error(
                fields.pos(),
                "missing-field",
                "missing required field \"spec\" (write `spec: {}` for all defaults)",
            );
            None
        }
        (None, _) => None,
    };
    fields.finish(&mut cx, &["apiVersion", "kind", "metadata", "spec"]);
    api.filter(|a| a.value == API_VERSION)?;
    // An invalid name (reported above) still names the document for references, so that a group listing it
    // is not also told the member is unknown; the set is invalid anyway.
    let name = metadata.map(|m| m.name).or_else(|| unchecked_name(root))?;
    Some(RawDoc { file: file.to_path_buf(), name, kind: known_kind?, spec })
}

fn unchecked_name(root: &Node) -> Option<At<Name>> {
    let entry = |node: &Node, key: &str| match &node.value {
        Value::Map(entries) => entries
            .iter()
            .find(|(k, _)| matches!(&k.value, Value::Scalar { text, .. } if text == key))
            .map(|(_, v)| v.clone()),
        _ => None,
    };
    let name = entry(&entry(root, "metadata")?, "name")?;
    match name.value {
        Value::Scalar { text, .. } => Some(At { value: Name(text), pos: name.pos, path: "metadata.name".into() }),
        _ => None,
    }
}

fn decode_spec(kind: &str, node: &Node, cx: &mut Cx) -> Option<Spec> {
    match kind {
        "Cluster" => ClusterSpec::from_node(node, cx).map(Spec::Cluster),
        "Node" => NodeSpec::from_node(node, cx).map(Spec::Node),
        "FloatingIP" => FloatingIpSpec::from_node(node, cx).map(Spec::FloatingIp),
        "Service" => ServiceSpec::from_node(node, cx).map(Spec::Service),
        _ => GroupSpec::from_node(node, cx).map(Spec::Group),
    }
}

/// Emits findings about decoded documents at the places they concern.
pub(super) struct Report<'a> {
    diags: &'a mut Vec<Diagnostic>,
    errors: usize,
}

impl Report<'_> {
    fn error<T>(&mut self, doc: &RawDoc, at: &At<T>, code: &'static str, message: impl Into<String>) {
        self.error_at(doc, at.pos, &at.path, code, message);
    }

    fn error_at(&mut self, doc: &RawDoc, pos: Pos, path: &str, code: &'static str, message: impl Into<String>) {
        self.errors += 1;
        self.diags.push(Diagnostic::error(&doc.file, pos, code, path, message));
    }

    fn warning<T>(&mut self, doc: &RawDoc, at: &At<T>, code: &'static str, message: impl Into<String>) {
        self.diags.push(Diagnostic::warning(&doc.file, at.pos, code, at.path.clone(), message));
    }

    /// An error about the document as a whole, pointed at its name.
    fn error_doc(&mut self, doc: &RawDoc, code: &'static str, message: impl Into<String>) {
        self.error_at(doc, doc.name.pos, "metadata.name", code, message);
    }

    fn error_set(&mut self, code: &'static str, message: impl Into<String>) {
        self.errors += 1;
        self.diags.push(Diagnostic::error(Path::new(""), Pos::default(), code, "", message));
    }

    /// A duration field with its default and valid range; `None` (reported) when out of range.
    fn duration(
        &mut self,
        doc: &RawDoc,
        field: &Option<At<Dur>>,
        default: Duration,
        range: (Duration, Duration),
    ) -> Option<Duration> {
        let Some(at) = field else { return Some(default) };
        self.in_range(doc, at, at.value.0, range, |d| Dur(*d).to_string())
    }

    /// An integer field with its default and valid range.
    fn integer<T: Copy + PartialOrd + Display>(
        &mut self,
        doc: &RawDoc,
        field: &Option<At<T>>,
        default: T,
        range: (T, T),
    ) -> Option<T> {
        let Some(at) = field else { return Some(default) };
        self.in_range(doc, at, at.value, range, |v| v.to_string())
    }

    fn in_range<T, V: PartialOrd>(
        &mut self,
        doc: &RawDoc,
        at: &At<T>,
        value: V,
        (min, max): (V, V),
        show: impl Fn(&V) -> String,
    ) -> Option<V> {
        if value < min || value > max {
            let message = format!("{} is out of range; valid: {} to {}", show(&value), show(&min), show(&max));
            self.error(doc, at, "out-of-range", message);
            return None;
        }
        Some(value)
    }
}

/// The documents of a set sorted by kind, with names checked for uniqueness.
pub(super) struct Index<'d> {
    clusters: Vec<&'d RawDoc>,
    nodes: Table<'d>,
    resources: Table<'d>,
    groups: Table<'d>,
}

/// Documents of one namespace: looked up by name, iterated in reading order (files sorted, then documents),
/// so that of two conflicting documents the later one is the one reported.
#[derive(Default)]
pub(super) struct Table<'d> {
    by_name: BTreeMap<Name, &'d RawDoc>,
    in_order: Vec<&'d RawDoc>,
}

impl<'d> Table<'d> {
    fn get(&self, name: &Name) -> Option<&&'d RawDoc> {
        self.by_name.get(name)
    }

    fn contains_key(&self, name: &Name) -> bool {
        self.by_name.contains_key(name)
    }

    /// Names, sorted (for listings in messages).
    fn keys(&self) -> impl Iterator<Item = &Name> {
        self.by_name.keys()
    }

    /// Documents in reading order.
    fn values(&self) -> impl Iterator<Item = &&'d RawDoc> {
        self.in_order.iter()
    }

    fn is_empty(&self) -> bool {
        self.in_order.is_empty()
    }

    fn insert(&mut self, doc: &'d RawDoc) {
        self.by_name.insert(doc.name.value.clone(), doc);
        self.in_order.push(doc);
    }
}

fn index<'d>(docs: &'d [RawDoc], report: &mut Report) -> Index<'d> {
    let mut ix =
        Index { clusters: Vec::new(), nodes: Table::default(), resources: Table::default(), groups: Table::default() };
    for doc in docs {
        let table = match doc.namespace() {
            "Cluster" => {
                ix.clusters.push(doc);
                continue;
            }
            "Node" => &mut ix.nodes,
            "resource" => &mut ix.resources,
            _ => &mut ix.groups,
        };
        match table.get(&doc.name.value) {
            Some(first) => {
                let what = if doc.namespace() == "resource" { "resource (FloatingIP or Service)" } else { doc.kind };
                let message = format!(
                    "duplicate {what} name \"{}\"; first defined as a {} at {}; names must be unique",
                    doc.name.value,
                    first.kind,
                    first.place()
                );
                report.error(doc, &doc.name, "duplicate-name", message);
            }
            None => table.insert(doc),
        }
    }
    ix
}

/// Checks a whole set of decoded documents and builds the desired state when no error was found.
/// `complete` is false when some file could not be read or parsed: rules that need the whole set
/// (exactly one Cluster, every reference defined) would then report noise, so they are skipped.
pub fn build(docs: &[RawDoc], complete: bool, diags: &mut Vec<Diagnostic>) -> Option<DesiredState> {
    let mut report = Report { diags, errors: 0 };
    let ix = index(docs, &mut report);
    let nodes = cluster::nodes(&ix, &mut report);
    let resources = resources::resources(&ix, &mut report);
    if !complete {
        return None;
    }
    let cluster = cluster::cluster(&ix, &mut report);
    let defaults = cluster.as_ref().map(|(_, d)| *d).unwrap_or_default();
    let groups = groups::groups(&ix, &resources, &defaults, &mut report);
    if report.errors > 0 {
        return None;
    }
    Some(DesiredState { cluster: cluster?.0, nodes, groups })
}
