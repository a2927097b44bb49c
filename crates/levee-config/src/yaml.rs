//! A YAML document as a tree whose every node knows its line and column.
//!
//! `saphyr-parser` does the YAML (1.2) parsing and hands us events with spans; this module
//! assembles them into [`Node`]s without recursion (an explicit stack), so hostile input can
//! neither overflow the stack nor expand without bound:
//!
//! - nesting deeper than [`MAX_DEPTH`] and documents of more than [`MAX_NODES`] nodes (alias
//!   expansion included, the "billion laughs" attack) are rejected;
//! - a second document in the file, non-core tags (`!include`) and duplicate keys are errors;
//! - anchors and aliases work, and so do merge keys (`<<: *defaults`), the usual way to share
//!   a block between upstreams. Merged keys keep the position where they were written.
//!
//! Scalars keep their text and style; [`Scalar::resolve`] applies the YAML 1.2 core schema
//! (null, booleans, integers, floats) to plain scalars only, so a quoted `"8080"` stays text.

use saphyr_parser::{Event, Parser, ScalarStyle, ScanError, Tag};
use std::collections::HashMap;
use std::fmt;

/// Deepest nesting accepted. The config's real depth is under ten.
pub(crate) const MAX_DEPTH: usize = 64;
/// Most nodes a document may have, counting every alias expansion.
pub(crate) const MAX_NODES: usize = 200_000;

/// A 1-based line and column (characters).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Pos {
    pub line: usize,
    pub column: usize,
}

impl Pos {
    /// The start of the file.
    pub const START: Pos = Pos { line: 1, column: 1 };

    fn from_marker(marker: &saphyr_parser::Marker) -> Pos {
        Pos {
            line: marker.line().max(1),
            column: marker.col() + 1,
        }
    }
}

/// A node of the document.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Node {
    pub pos: Pos,
    pub kind: Kind,
}

/// What a node holds.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Kind {
    Scalar(Scalar),
    Seq(Vec<Node>),
    Map(Vec<Entry>),
}

/// One `key: value` of a mapping.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Entry {
    pub key: Node,
    pub value: Node,
}

/// A scalar as written.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Scalar {
    pub text: String,
    /// Plain (unquoted) scalars are resolved to null, booleans and numbers; others are text.
    pub plain: bool,
}

/// A scalar's value under the YAML 1.2 core schema.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Value<'a> {
    Null,
    Bool(bool),
    U64(u64),
    I64(i64),
    F64(f64),
    Str(&'a str),
}

impl Scalar {
    /// Resolves a plain scalar per the YAML 1.2 core schema; quoted scalars are text.
    pub fn resolve(&self) -> Value<'_> {
        if !self.plain {
            return Value::Str(&self.text);
        }
        let t = self.text.as_str();
        match t {
            "" | "~" | "null" | "Null" | "NULL" => return Value::Null,
            "true" | "True" | "TRUE" => return Value::Bool(true),
            "false" | "False" | "FALSE" => return Value::Bool(false),
            ".inf" | ".Inf" | ".INF" | "+.inf" | "+.Inf" | "+.INF" => {
                return Value::F64(f64::INFINITY)
            }
            "-.inf" | "-.Inf" | "-.INF" => return Value::F64(f64::NEG_INFINITY),
            ".nan" | ".NaN" | ".NAN" => return Value::F64(f64::NAN),
            _ => {}
        }
        if let Some(hex) = t.strip_prefix("0x") {
            if !hex.is_empty() && hex.bytes().all(|b| b.is_ascii_hexdigit()) {
                if let Ok(v) = u64::from_str_radix(hex, 16) {
                    return Value::U64(v);
                }
            }
            return Value::Str(t);
        }
        if let Some(oct) = t.strip_prefix("0o") {
            if !oct.is_empty() && oct.bytes().all(|b| (b'0'..=b'7').contains(&b)) {
                if let Ok(v) = u64::from_str_radix(oct, 8) {
                    return Value::U64(v);
                }
            }
            return Value::Str(t);
        }
        let unsigned = t.strip_prefix(['+', '-']).unwrap_or(t);
        if !unsigned.is_empty() && unsigned.bytes().all(|b| b.is_ascii_digit()) {
            if let Some(digits) = t.strip_prefix('+') {
                if let Ok(v) = digits.parse::<u64>() {
                    return Value::U64(v);
                }
            } else if let Ok(v) = t.parse::<u64>() {
                return Value::U64(v);
            }
            if let Ok(v) = t.parse::<i64>() {
                return Value::I64(v);
            }
            // Too large for 64 bits: keep the magnitude as a float, as YAML libraries do.
            return t.parse::<f64>().map_or(Value::Str(t), Value::F64);
        }
        if is_core_float(unsigned) {
            if let Ok(v) = t.parse::<f64>() {
                return Value::F64(v);
            }
        }
        Value::Str(t)
    }
}

/// `(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?`, the core schema's float (sign removed).
fn is_core_float(t: &str) -> bool {
    let b = t.as_bytes();
    let mut i = 0;
    let digits = |i: &mut usize| {
        let start = *i;
        while *i < b.len() && b[*i].is_ascii_digit() {
            *i += 1;
        }
        *i - start
    };
    let whole = digits(&mut i);
    if i < b.len() && b[i] == b'.' {
        i += 1;
        let fraction = digits(&mut i);
        if whole == 0 && fraction == 0 {
            return false;
        }
    } else if whole == 0 {
        return false;
    }
    if i < b.len() && (b[i] == b'e' || b[i] == b'E') {
        i += 1;
        if i < b.len() && (b[i] == b'+' || b[i] == b'-') {
            i += 1;
        }
        if digits(&mut i) == 0 {
            return false;
        }
    }
    i == b.len()
}

impl Node {
    /// The scalar's text, for keys and names.
    pub fn as_text(&self) -> Option<&str> {
        match &self.kind {
            Kind::Scalar(s) => Some(&s.text),
            _ => None,
        }
    }

    /// The value of `key` in a mapping.
    pub fn get(&self, key: &str) -> Option<&Node> {
        self.entry(key).map(|e| &e.value)
    }

    /// The entry of `key` in a mapping.
    pub fn entry(&self, key: &str) -> Option<&Entry> {
        match &self.kind {
            Kind::Map(entries) => entries.iter().find(|e| e.key.as_text() == Some(key)),
            _ => None,
        }
    }

    /// True for a null scalar (`~`, `null` or nothing at all).
    pub fn is_null(&self) -> bool {
        matches!(&self.kind, Kind::Scalar(s) if s.resolve() == Value::Null)
    }
}

/// A YAML-level mistake found while building the tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TreeProblem {
    pub pos: Pos,
    /// Key path of the node concerned (empty for syntax errors).
    pub path: String,
    pub message: String,
}

/// The result of reading a document.
pub(crate) struct Document {
    /// `None` when the file holds no document (empty, or only comments).
    pub root: Option<Node>,
    /// Duplicate keys and the like: the tree is usable, but the file must be fixed.
    pub problems: Vec<TreeProblem>,
}

/// A stack frame of an unfinished collection.
enum Frame {
    Seq {
        pos: Pos,
        anchor: usize,
        flow: bool,
        items: Vec<Node>,
    },
    Map {
        pos: Pos,
        anchor: usize,
        flow: bool,
        entries: Vec<Entry>,
        key: Option<Node>,
    },
}

struct Builder {
    stack: Vec<Frame>,
    anchors: HashMap<usize, Node>,
    nodes: usize,
    root: Option<Node>,
}

/// Reads one YAML document. `Err` is a problem that leaves no usable tree (a syntax error).
pub(crate) fn read(text: &str) -> Result<Document, TreeProblem> {
    let mut builder = Builder {
        stack: Vec::new(),
        anchors: HashMap::new(),
        nodes: 0,
        root: None,
    };
    let mut documents = 0;
    for event in Parser::new_from_str(text) {
        let (event, span) = match event {
            Ok(event) => event,
            Err(error) => return Err(syntax_error(&error, builder.open_flow())),
        };
        let pos = Pos::from_marker(&span.start);
        // Block collections start with an empty span, flow ones (`[`, `{`) with a non-empty one.
        let flow = span.start.index() != span.end.index();
        match event {
            Event::StreamStart | Event::StreamEnd | Event::DocumentEnd | Event::Nothing => {}
            Event::DocumentStart(_) => {
                documents += 1;
                if documents > 1 {
                    return Err(TreeProblem {
                        pos,
                        path: String::new(),
                        message: "a second YAML document starts here: a Levee config is one \
                                  document, so remove this `---` and what follows, or merge it \
                                  into the first"
                            .to_string(),
                    });
                }
            }
            Event::Alias(id) => {
                let node = builder
                    .anchors
                    .get(&id)
                    .cloned()
                    .ok_or_else(|| TreeProblem {
                        pos,
                        path: String::new(),
                        message: "this alias (*name) refers to an anchor (&name) that is not \
                              defined above it"
                            .to_string(),
                    })?;
                let size = count_nodes(&node);
                builder.count(size, pos)?;
                builder.complete(node)?;
            }
            Event::Scalar(value, style, anchor, tag) => {
                builder.count(1, pos)?;
                let plain = style == ScalarStyle::Plain;
                let plain = match tag {
                    Some(tag) => scalar_tag(&tag, pos)? && plain,
                    None => plain,
                };
                let node = Node {
                    pos,
                    kind: Kind::Scalar(Scalar {
                        text: value.into_owned(),
                        plain,
                    }),
                };
                builder.remember(anchor, &node);
                builder.complete(node)?;
            }
            Event::SequenceStart(anchor, tag) => {
                builder.count(1, pos)?;
                if let Some(tag) = tag {
                    collection_tag(&tag, "seq", pos)?;
                }
                builder.push(
                    Frame::Seq {
                        pos,
                        anchor,
                        flow,
                        items: Vec::new(),
                    },
                    pos,
                )?;
            }
            Event::MappingStart(anchor, tag) => {
                builder.count(1, pos)?;
                if let Some(tag) = tag {
                    collection_tag(&tag, "map", pos)?;
                }
                builder.push(
                    Frame::Map {
                        pos,
                        anchor,
                        flow,
                        entries: Vec::new(),
                        key: None,
                    },
                    pos,
                )?;
            }
            Event::SequenceEnd | Event::MappingEnd => {
                let (node, anchor) = match builder.stack.pop() {
                    Some(Frame::Seq {
                        pos, anchor, items, ..
                    }) => (
                        Node {
                            pos,
                            kind: Kind::Seq(items),
                        },
                        anchor,
                    ),
                    Some(Frame::Map {
                        pos,
                        anchor,
                        entries,
                        ..
                    }) => (
                        Node {
                            pos,
                            kind: Kind::Map(merge_keys(entries)?),
                        },
                        anchor,
                    ),
                    None => continue,
                };
                builder.remember(anchor, &node);
                builder.complete(node)?;
            }
        }
    }
    let mut problems = Vec::new();
    let root = builder.root.map(|mut root| {
        dedupe_keys(&mut root, &mut String::new(), &mut problems, 0);
        root
    });
    Ok(Document { root, problems })
}

impl Builder {
    /// The innermost unclosed `[` or `{`, for syntax error hints.
    fn open_flow(&self) -> Option<(char, Pos)> {
        self.stack.iter().rev().find_map(|frame| match frame {
            Frame::Seq {
                flow: true, pos, ..
            } => Some(('[', *pos)),
            Frame::Map {
                flow: true, pos, ..
            } => Some(('{', *pos)),
            _ => None,
        })
    }

    fn count(&mut self, nodes: usize, pos: Pos) -> Result<(), TreeProblem> {
        self.nodes = self.nodes.saturating_add(nodes);
        if self.nodes > MAX_NODES {
            return Err(TreeProblem {
                pos,
                path: String::new(),
                message: format!(
                    "the document is too large: more than {MAX_NODES} values (counting every \
                     alias expansion); a Levee config is far smaller, so look for aliases that \
                     expand into each other"
                ),
            });
        }
        Ok(())
    }

    fn push(&mut self, frame: Frame, pos: Pos) -> Result<(), TreeProblem> {
        if self.stack.len() >= MAX_DEPTH {
            return Err(TreeProblem {
                pos,
                path: String::new(),
                message: format!(
                    "nested more than {MAX_DEPTH} levels deep: a Levee config needs far fewer; \
                     look for unclosed brackets"
                ),
            });
        }
        self.stack.push(frame);
        Ok(())
    }

    fn remember(&mut self, anchor: usize, node: &Node) {
        if anchor > 0 {
            self.anchors.insert(anchor, node.clone());
        }
    }

    /// Hands a finished node to its parent.
    fn complete(&mut self, node: Node) -> Result<(), TreeProblem> {
        match self.stack.last_mut() {
            None => self.root = Some(node),
            Some(Frame::Seq { items, .. }) => items.push(node),
            Some(Frame::Map { entries, key, .. }) => match key.take() {
                None => {
                    if !matches!(node.kind, Kind::Scalar(_)) {
                        return Err(TreeProblem {
                            pos: node.pos,
                            path: String::new(),
                            message: "a mapping key must be plain text, not a list or a \
                                      mapping"
                                .to_string(),
                        });
                    }
                    *key = Some(node);
                }
                Some(k) => entries.push(Entry {
                    key: k,
                    value: node,
                }),
            },
        }
        Ok(())
    }
}

fn count_nodes(node: &Node) -> usize {
    let mut count = 0usize;
    let mut pending = vec![node];
    while let Some(n) = pending.pop() {
        count += 1;
        match &n.kind {
            Kind::Scalar(_) => {}
            Kind::Seq(items) => pending.extend(items.iter()),
            Kind::Map(entries) => {
                for e in entries {
                    pending.push(&e.key);
                    pending.push(&e.value);
                }
            }
        }
    }
    count
}

fn tag_text(tag: &Tag) -> String {
    if tag.is_yaml_core_schema() {
        format!("!!{}", tag.suffix)
    } else if tag.handle == "!" || tag.handle.is_empty() {
        format!("!{}", tag.suffix)
    } else {
        format!("{}{}", tag.handle, tag.suffix)
    }
}

fn unsupported_tag(tag: &Tag, pos: Pos) -> TreeProblem {
    TreeProblem {
        pos,
        path: String::new(),
        message: format!(
            "the tag `{}` is not supported: a Levee config is plain YAML, so remove the tag \
             (quote a value to keep it as text)",
            tag_text(tag)
        ),
    }
}

/// Applies a scalar's tag: returns whether the scalar may still be resolved (false = text).
fn scalar_tag(tag: &Tag, pos: Pos) -> Result<bool, TreeProblem> {
    if tag.handle == "!" && tag.suffix.is_empty() {
        // The non-specific tag `!`: the scalar is text.
        return Ok(false);
    }
    if !tag.is_yaml_core_schema() {
        return Err(unsupported_tag(tag, pos));
    }
    match tag.suffix.as_str() {
        "str" => Ok(false),
        "null" | "bool" | "int" | "float" => Ok(true),
        _ => Err(unsupported_tag(tag, pos)),
    }
}

fn collection_tag(tag: &Tag, expected: &str, pos: Pos) -> Result<(), TreeProblem> {
    if tag.is_yaml_core_schema() && tag.suffix == expected {
        Ok(())
    } else {
        Err(unsupported_tag(tag, pos))
    }
}

/// Expands `<<` merge keys: the entries of the merged mapping(s) are added unless the mapping
/// sets the key itself; with a list of mappings, earlier ones win.
fn merge_keys(entries: Vec<Entry>) -> Result<Vec<Entry>, TreeProblem> {
    let is_merge = |e: &Entry| matches!(&e.key.kind, Kind::Scalar(s) if s.plain && s.text == "<<");
    if !entries.iter().any(is_merge) {
        return Ok(entries);
    }
    let (merges, mut own): (Vec<Entry>, Vec<Entry>) = entries.into_iter().partition(is_merge);
    for merge in merges {
        let sources: Vec<Node> = match merge.value.kind {
            Kind::Map(_) => vec![merge.value],
            Kind::Seq(items) if items.iter().all(|i| matches!(i.kind, Kind::Map(_))) => items,
            _ => {
                return Err(TreeProblem {
                    pos: merge.value.pos,
                    path: String::new(),
                    message: "a merge key `<<` takes a mapping (`<<: *defaults`) or a list of \
                              mappings (`<<: [*a, *b]`)"
                        .to_string(),
                })
            }
        };
        for source in sources {
            if let Kind::Map(source_entries) = source.kind {
                for entry in source_entries {
                    let taken = own.iter().any(|o| {
                        o.key.as_text().is_some() && o.key.as_text() == entry.key.as_text()
                    });
                    if !taken {
                        own.push(entry);
                    }
                }
            }
        }
    }
    Ok(own)
}

/// Reports and drops repeated keys (the first one stays), walking the whole tree.
fn dedupe_keys(node: &mut Node, path: &mut String, problems: &mut Vec<TreeProblem>, depth: usize) {
    if depth > MAX_DEPTH {
        return;
    }
    match &mut node.kind {
        Kind::Scalar(_) => {}
        Kind::Seq(items) => {
            for (i, item) in items.iter_mut().enumerate() {
                let len = path.len();
                path.push_str(&format!("[{i}]"));
                dedupe_keys(item, path, problems, depth + 1);
                path.truncate(len);
            }
        }
        Kind::Map(entries) => {
            let mut kept: Vec<Entry> = Vec::with_capacity(entries.len());
            for entry in std::mem::take(entries) {
                let first = kept
                    .iter()
                    .find(|k| k.key.as_text() == entry.key.as_text())
                    .map(|k| k.key.pos);
                match first {
                    Some(first) => problems.push(TreeProblem {
                        pos: entry.key.pos,
                        path: crate::path::join_key(path, entry.key.as_text().unwrap_or("")),
                        message: format!(
                            "duplicate key \"{}\": it is already set at line {}; keep one of \
                             them",
                            entry.key.as_text().unwrap_or(""),
                            first.line
                        ),
                    }),
                    None => kept.push(entry),
                }
            }
            for entry in &mut kept {
                let len = path.len();
                let joined = crate::path::join_key(path, entry.key.as_text().unwrap_or(""));
                *path = joined;
                dedupe_keys(&mut entry.value, path, problems, depth + 1);
                path.truncate(len);
            }
            *entries = kept;
        }
    }
}

/// A syntax error with a hint for the usual causes; `open_flow` is the innermost unclosed
/// `[` or `{`, the most common cause of confusing messages far from the mistake.
fn syntax_error(error: &ScanError, open_flow: Option<(char, Pos)>) -> TreeProblem {
    let info = error.info();
    if let Some((bracket, at)) = open_flow {
        let close = if bracket == '[' { ']' } else { '}' };
        return TreeProblem {
            pos: Pos::from_marker(error.marker()),
            path: String::new(),
            message: format!(
                "YAML syntax error: {info}; the `{bracket}` at line {}, column {} is not \
                 closed: add the missing `{close}` (or a `,` between items)",
                at.line, at.column
            ),
        };
    }
    let hint = if info.contains("tab") {
        "; YAML does not allow tabs for indentation: indent with spaces"
    } else if info.contains("mapping values are not allowed") {
        "; check the indentation of this line against the lines above, or quote a value that \
         contains \": \""
    } else if info.contains("flow sequence") {
        "; a `[` list is not closed: add the missing `]` or `,`"
    } else if info.contains("flow mapping") {
        "; a `{` mapping is not closed: add the missing `}` or `,`"
    } else if info.contains("quoted scalar") {
        "; a quoted text is not closed: add the closing quote"
    } else if info.contains("did not find expected '-'") {
        "; a list item and a key are mixed at the same indentation: indent the key, or start \
         it with `- `"
    } else if info.contains("block mapping") || info.contains("did not find expected key") {
        "; check the indentation: keys of one mapping must line up"
    } else if info.contains("unknown anchor") {
        "; an alias (*name) must come after its anchor (&name)"
    } else {
        ""
    };
    TreeProblem {
        pos: Pos::from_marker(error.marker()),
        path: String::new(),
        message: format!("YAML syntax error: {info}{hint}"),
    }
}

impl fmt::Display for Pos {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.line, self.column)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn root(text: &str) -> Node {
        read(text).expect("valid YAML").root.expect("a document")
    }

    #[test]
    fn positions_are_one_based() {
        let doc = root("a: 1\nb:\n  c: [x, y]\n");
        assert_eq!(doc.pos, Pos { line: 1, column: 1 });
        let b = doc.get("b").expect("b");
        assert_eq!(b.pos, Pos { line: 3, column: 3 });
        let c = b.get("c").expect("c");
        assert_eq!(c.pos, Pos { line: 3, column: 6 });
        match &c.kind {
            Kind::Seq(items) => assert_eq!(
                items[1].pos,
                Pos {
                    line: 3,
                    column: 10
                }
            ),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn resolves_the_core_schema() {
        let plain = |t: &str| Scalar {
            text: t.into(),
            plain: true,
        };
        assert_eq!(plain("").resolve(), Value::Null);
        assert_eq!(plain("~").resolve(), Value::Null);
        assert_eq!(plain("true").resolve(), Value::Bool(true));
        assert_eq!(plain("yes").resolve(), Value::Str("yes"));
        assert_eq!(plain("42").resolve(), Value::U64(42));
        assert_eq!(plain("+42").resolve(), Value::U64(42));
        assert_eq!(plain("-3").resolve(), Value::I64(-3));
        assert_eq!(plain("0x1f").resolve(), Value::U64(31));
        assert_eq!(plain("0o17").resolve(), Value::U64(15));
        assert_eq!(plain("1.5").resolve(), Value::F64(1.5));
        assert_eq!(plain("1e3").resolve(), Value::F64(1000.0));
        assert_eq!(plain("5s").resolve(), Value::Str("5s"));
        assert_eq!(plain("127.0.0.1:80").resolve(), Value::Str("127.0.0.1:80"));
        assert_eq!(plain("inf").resolve(), Value::Str("inf"));
        let quoted = Scalar {
            text: "42".into(),
            plain: false,
        };
        assert_eq!(quoted.resolve(), Value::Str("42"));
    }

    #[test]
    fn aliases_and_merge_keys() {
        let doc = root("base: &b {x: 1, y: 2}\nuse:\n  <<: *b\n  y: 3\n");
        let used = doc.get("use").expect("use");
        assert_eq!(used.get("x").and_then(Node::as_text), Some("1"));
        assert_eq!(used.get("y").and_then(Node::as_text), Some("3"));
        // The merged key keeps the position where it was written.
        assert_eq!(
            used.get("x").map(|n| n.pos),
            Some(Pos {
                line: 1,
                column: 14
            })
        );
    }

    #[test]
    fn duplicate_keys_are_reported_and_dropped() {
        let doc = read("a:\n  b: 1\n  b: 2\n").expect("valid");
        assert_eq!(doc.problems.len(), 1);
        assert_eq!(doc.problems[0].pos, Pos { line: 3, column: 3 });
        assert_eq!(doc.problems[0].path, "a.b");
        let root = doc.root.expect("root");
        assert_eq!(
            root.get("a")
                .and_then(|a| a.get("b"))
                .and_then(Node::as_text),
            Some("1")
        );
    }

    #[test]
    fn rejects_bombs_and_depth() {
        let deep = "[".repeat(MAX_DEPTH + 5);
        assert!(read(&deep).is_err());
        let mut bomb = String::from("a: &a [x, x, x, x, x, x, x, x, x, x]\n");
        let mut prev = 'a';
        for name in 'b'..='j' {
            bomb.push_str(&format!(
                "{name}: &{name} [*{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, \
                 *{prev}, *{prev}, *{prev}]\n"
            ));
            prev = name;
        }
        let err = read(&bomb).err().expect("rejected");
        assert!(err.message.contains("too large"), "{}", err.message);
    }

    #[test]
    fn second_documents_and_tags_are_errors() {
        let err = read("a: 1\n---\nb: 2\n").err().expect("rejected");
        assert_eq!(err.pos.line, 2);
        let err = read("a: !include other.yaml\n").err().expect("rejected");
        assert!(err.message.contains("`!include`"), "{}", err.message);
        let doc = root("a: !!str 5\n");
        assert_eq!(
            doc.get("a").map(|n| n.kind.clone()),
            Some(Kind::Scalar(Scalar {
                text: "5".into(),
                plain: false
            }))
        );
    }
}
