//! A positioned YAML tree built from saphyr-parser's event stream.
//!
//! Why our own tree: every diagnostic needs the line and column of the node
//! it is about, and the scalars must be typed the YAML 1.1 way (see
//! [`crate::resolve`]). The builder is iterative (an explicit stack, no
//! recursion) and bounded: nesting depth, node count and bytes produced by
//! alias expansion are capped, so hostile input cannot blow the stack or
//! the heap.

use crate::diag::{Pos, Sink};
use crate::resolve::{self, Scalar};
use saphyr_parser::{Event, Parser, ScalarStyle, Span, Tag};
use std::collections::HashMap;

/// Deepest nesting of collections accepted. A real lain.yaml needs about 6.
pub const MAX_DEPTH: usize = 64;
/// Most nodes a document may expand to (aliases count at full size).
pub const MAX_NODES: usize = 200_000;
/// Most scalar bytes a document may expand to (aliases count at full size).
pub const MAX_EXPANDED_BYTES: usize = 16 * 1024 * 1024;

/// A YAML node and where it starts.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Node {
    pub value: Value,
    pub pos: Pos,
    /// The scalar as written (empty for collections), for messages.
    pub text: String,
    /// A plain (unquoted) scalar: only those get YAML 1.1 implicit types,
    /// and only those can be the merge key `<<`.
    pub plain: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Value {
    Null,
    Bool(bool),
    Int(i64),
    BigInt,
    Float(f64),
    Str(String),
    Timestamp,
    Seq(Vec<Node>),
    Map(Vec<(Node, Node)>),
}

impl Node {
    pub fn as_str(&self) -> Option<&str> {
        match &self.value {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }

    /// "a string", "an integer (`80`)" ...: what was found, for messages.
    pub fn describe(&self) -> String {
        let t = short(&self.text);
        match &self.value {
            Value::Null => "nothing (null)".to_owned(),
            Value::Bool(_) => format!("the boolean `{t}`"),
            Value::Int(_) => format!("the integer `{t}`"),
            Value::BigInt if crate::resolve::int_has_digits(&self.text) => {
                format!("the integer `{t}` (too large for a 64-bit integer)")
            }
            Value::BigInt => {
                format!("`{t}`, which is not a valid integer (it has no digits after `0b` or `0x`)")
            }
            Value::Float(_) => format!("the number `{t}`"),
            Value::Timestamp => format!("the date `{t}`"),
            Value::Str(s) if self.plain => format!("`{}`", short(s)),
            Value::Str(s) => format!("the string \"{}\"", short(s)),
            Value::Seq(_) => "a list".to_owned(),
            Value::Map(_) => "a mapping".to_owned(),
        }
    }

    /// Identity of a scalar key as a Python dict sees it (hashable, so
    /// maps with many keys stay linear); collections never compare equal.
    fn key_id(&self) -> Option<String> {
        match &self.value {
            Value::Str(s) => Some(format!("s:{s}")),
            Value::Int(i) => Some(format!("i:{i}")),
            Value::Bool(b) => Some(format!("b:{b}")),
            Value::Null => Some("n".to_owned()),
            Value::Timestamp => Some(format!("t:{}", self.text)),
            Value::BigInt => Some(format!("I:{}", self.text)),
            Value::Float(f) => Some(format!("f:{}", f.to_bits())),
            Value::Seq(_) | Value::Map(_) => None,
        }
    }

    fn is_merge_key(&self) -> bool {
        self.plain && self.text == "<<"
    }
}

/// Shortens a value for a message; never splits a character.
pub(crate) fn short(s: &str) -> String {
    const MAX: usize = 60;
    let one_line = s.replace('\n', "\\n");
    if one_line.chars().count() <= MAX {
        one_line
    } else {
        let cut: String = one_line.chars().take(MAX).collect();
        format!("{cut}...")
    }
}

fn pos_of(span: &Span) -> Pos {
    // saphyr lines are 1-based, columns 0-based.
    Pos {
        line: span.start.line(),
        col: span.start.col() + 1,
    }
}

/// Size of a finished subtree, kept so aliases can be charged in O(1).
#[derive(Debug, Clone, Copy, Default)]
struct Stats {
    nodes: usize,
    bytes: usize,
    height: usize,
}

enum Frame {
    Seq {
        pos: Pos,
        anchor: usize,
        items: Vec<Node>,
        stats: Stats,
    },
    Map {
        pos: Pos,
        anchor: usize,
        entries: Vec<(Node, Node)>,
        key: Option<Node>,
        stats: Stats,
    },
}

impl Frame {
    fn anchor(&self) -> usize {
        match self {
            Frame::Seq { anchor, .. } | Frame::Map { anchor, .. } => *anchor,
        }
    }

    fn stats_mut(&mut self) -> &mut Stats {
        match self {
            Frame::Seq { stats, .. } | Frame::Map { stats, .. } => stats,
        }
    }
}

struct Builder<'s> {
    sink: &'s mut Sink,
    src: &'s str,
    stack: Vec<Frame>,
    anchors: HashMap<usize, (Node, Stats)>,
    root: Option<Node>,
    documents: usize,
    total_nodes: usize,
    total_bytes: usize,
}

/// Stops the build after a fatal error (already reported).
struct Abort;

/// Loads one YAML document. `None` means a fatal problem was reported
/// (syntax error, limits, a second document); an empty stream loads as a
/// null node, like PyYAML's `safe_load("")`.
pub(crate) fn load(text: &str, sink: &mut Sink) -> Option<Node> {
    let mut b = Builder {
        sink,
        src: text,
        stack: Vec::new(),
        anchors: HashMap::new(),
        root: None,
        documents: 0,
        total_nodes: 0,
        total_bytes: 0,
    };
    for item in Parser::new_from_str(text) {
        match item {
            Ok((event, span)) => {
                if b.event(event, &span).is_err() {
                    return None;
                }
            }
            Err(e) => {
                let m = e.marker();
                let mut pos = Pos {
                    line: m.line(),
                    col: m.col() + 1,
                };
                if e.info().contains("tab") {
                    pos = first_tab(text, pos.line, pos.col).unwrap_or(pos);
                }
                let msg = syntax_message(e.info());
                b.sink.error(pos, msg);
                return None;
            }
        }
    }
    Some(b.root.unwrap_or(Node {
        value: Value::Null,
        pos: Pos::START,
        text: String::new(),
        plain: true,
    }))
}

/// The scanner flags a tab where it notices it, which may be the start of
/// the value before it; the author needs to see the tab itself: the first
/// tab in the indentation of the marked line if the mark is within that
/// indentation, else of the next line with content.
fn first_tab(text: &str, line: usize, col: usize) -> Option<Pos> {
    let indent_tab = |l: &str| {
        l.chars()
            .take_while(|c| *c == ' ' || *c == '\t')
            .position(|c| c == '\t')
    };
    let indent_len = |l: &str| l.chars().take_while(|c| *c == ' ' || *c == '\t').count();
    let mut lines = yaml_lines(text).enumerate().skip(line.checked_sub(1)?);
    let (_, first) = lines.next()?;
    if col <= indent_len(first) + 1 {
        return indent_tab(first).map(|c| Pos { line, col: c + 1 });
    }
    let (i, next) = lines.find(|(_, l)| !l.trim().is_empty())?;
    indent_tab(next).map(|c| Pos {
        line: i + 1,
        col: c + 1,
    })
}

/// The name of the alias written at `pos` (`*name`), for messages.
fn alias_name(text: &str, pos: Pos) -> String {
    let Some(line) = pos
        .line
        .checked_sub(1)
        .and_then(|i| yaml_lines(text).nth(i))
    else {
        return String::new();
    };
    let rest: String = line.chars().skip(pos.col.saturating_sub(1)).collect();
    let name: String = rest
        .strip_prefix('*')
        .unwrap_or(&rest)
        .chars()
        .take_while(|c| !c.is_whitespace() && !matches!(c, ',' | '[' | ']' | '{' | '}'))
        .collect();
    short(&name)
}

/// Lines as YAML counts them: `\r\n`, `\r` and `\n` all end a line.
fn yaml_lines(text: &str) -> impl Iterator<Item = &str> {
    text.split('\n')
        .flat_map(|l| l.strip_suffix('\r').unwrap_or(l).split('\r'))
}

fn syntax_message(info: &str) -> String {
    if info.contains("tab") {
        format!(
            "YAML syntax error: {info}; a tab character cannot indent YAML, \
             indent with spaces only"
        )
    } else {
        format!("YAML syntax error: {info}")
    }
}

impl Builder<'_> {
    fn event(&mut self, event: Event<'_>, span: &Span) -> Result<(), Abort> {
        let pos = pos_of(span);
        match event {
            Event::DocumentStart(_) => {
                self.documents += 1;
                if self.documents > 1 {
                    self.sink.error(
                        pos,
                        "a second YAML document starts here; a lain.yaml holds exactly one \
                         document (remove the `---` and what follows, or merge them)",
                    );
                    return Err(Abort);
                }
            }
            Event::Scalar(text, style, anchor, tag) => {
                let node = self.scalar(&text, style, tag.as_deref(), pos);
                let stats = Stats {
                    nodes: 1,
                    bytes: node.text.len(),
                    height: 0,
                };
                self.charge(stats, pos)?;
                self.finish(node, stats, anchor)?;
            }
            Event::SequenceStart(anchor, tag) => {
                self.check_collection_tag(tag.as_deref(), "seq", pos);
                self.open(
                    Frame::Seq {
                        pos,
                        anchor,
                        items: Vec::new(),
                        stats: Stats::default(),
                    },
                    pos,
                )?;
            }
            Event::MappingStart(anchor, tag) => {
                self.check_collection_tag(tag.as_deref(), "map", pos);
                self.open(
                    Frame::Map {
                        pos,
                        anchor,
                        entries: Vec::new(),
                        key: None,
                        stats: Stats::default(),
                    },
                    pos,
                )?;
            }
            Event::SequenceEnd | Event::MappingEnd => {
                if let Some(frame) = self.stack.pop() {
                    let (node, stats, anchor) = self.close(frame);
                    self.finish(node, stats, anchor)?;
                }
            }
            Event::Alias(id) => {
                let Some((node, stats)) = self.anchors.get(&id).cloned() else {
                    // The parser rejects undefined anchors, so an anchor it
                    // knows but that has no finished node is still open:
                    // the alias is inside the node it names.
                    let name = alias_name(self.src, pos);
                    let message = if self.stack.iter().any(|f| f.anchor() == id) {
                        format!(
                            "the alias `*{name}` is inside the node its anchor `&{name}` names \
                             (a recursive alias), which would make the value infinitely deep; \
                             refer to `*{name}` only after that node ends"
                        )
                    } else {
                        format!("the alias `*{name}` refers to an anchor that is not defined")
                    };
                    self.sink.error(pos, message);
                    return Err(Abort);
                };
                if self.stack.len() + stats.height > MAX_DEPTH {
                    self.too_deep(pos);
                    return Err(Abort);
                }
                self.charge(stats, pos)?;
                // The copy reports positions of the anchored original, which
                // is where the text to fix is.
                self.finish(node, stats, 0)?;
            }
            Event::StreamStart | Event::StreamEnd | Event::DocumentEnd | Event::Nothing => {}
        }
        Ok(())
    }

    fn too_deep(&mut self, pos: Pos) {
        self.sink.error(
            pos,
            format!(
                "nesting is too deep here: at most {MAX_DEPTH} levels of lists and \
                 mappings are accepted (a lain.yaml needs about 6)"
            ),
        );
    }

    fn open(&mut self, frame: Frame, pos: Pos) -> Result<(), Abort> {
        if self.stack.len() >= MAX_DEPTH {
            self.too_deep(pos);
            return Err(Abort);
        }
        self.charge(
            Stats {
                nodes: 1,
                bytes: 0,
                height: 0,
            },
            pos,
        )?;
        self.stack.push(frame);
        Ok(())
    }

    /// Counts nodes and bytes against the document budget.
    fn charge(&mut self, stats: Stats, pos: Pos) -> Result<(), Abort> {
        self.total_nodes = self.total_nodes.saturating_add(stats.nodes);
        self.total_bytes = self.total_bytes.saturating_add(stats.bytes);
        if self.total_nodes > MAX_NODES || self.total_bytes > MAX_EXPANDED_BYTES {
            self.sink.error(
                pos,
                format!(
                    "the document expands to too much data (aliases included): at most \
                     {MAX_NODES} nodes and {} MiB of text are accepted",
                    MAX_EXPANDED_BYTES / (1024 * 1024)
                ),
            );
            return Err(Abort);
        }
        Ok(())
    }

    /// Attaches a finished node to its parent (or makes it the root).
    fn finish(&mut self, node: Node, stats: Stats, anchor: usize) -> Result<(), Abort> {
        if anchor != 0 {
            self.anchors.insert(anchor, (node.clone(), stats));
        }
        let Some(top) = self.stack.last_mut() else {
            self.root = Some(node);
            return Ok(());
        };
        let s = top.stats_mut();
        s.nodes = s.nodes.saturating_add(stats.nodes);
        s.bytes = s.bytes.saturating_add(stats.bytes);
        s.height = s.height.max(stats.height + 1);
        match top {
            Frame::Seq { items, .. } => items.push(node),
            Frame::Map { entries, key, .. } => match key.take() {
                None => *key = Some(node),
                Some(k) => {
                    let mut node = node;
                    // `key:` with nothing after it: the place to fix is the
                    // key, not the column after its colon.
                    if node.plain
                        && (node.text.is_empty() || node.text == "~")
                        && node.value == Value::Null
                    {
                        node.pos = k.pos;
                    }
                    entries.push((k, node));
                }
            },
        }
        Ok(())
    }

    fn close(&mut self, frame: Frame) -> (Node, Stats, usize) {
        match frame {
            Frame::Seq {
                pos,
                anchor,
                items,
                mut stats,
            } => {
                stats.nodes += 1;
                stats.height = stats.height.max(1);
                (
                    Node {
                        value: Value::Seq(items),
                        pos,
                        text: String::new(),
                        plain: false,
                    },
                    stats,
                    anchor,
                )
            }
            Frame::Map {
                pos,
                anchor,
                entries,
                mut stats,
                ..
            } => {
                stats.nodes += 1;
                stats.height = stats.height.max(1);
                let entries = self.flatten_map(entries);
                (
                    Node {
                        value: Value::Map(entries),
                        pos,
                        text: String::new(),
                        plain: false,
                    },
                    stats,
                    anchor,
                )
            }
        }
    }

    /// Applies merge keys (`<<`) and resolves duplicate keys the way PyYAML
    /// does: explicit keys win over merged ones, and a later duplicate wins
    /// over an earlier one (with a warning, since that is rarely meant).
    fn flatten_map(&mut self, entries: Vec<(Node, Node)>) -> Vec<(Node, Node)> {
        let mut out: Vec<(Node, Node)> = Vec::with_capacity(entries.len());
        let mut index: HashMap<String, usize> = HashMap::with_capacity(entries.len());
        let mut merges: Vec<Node> = Vec::new();
        for (k, v) in entries {
            if k.is_merge_key() {
                merges.push(v);
                continue;
            }
            let id = k.key_id();
            if let Some(&i) = id.as_ref().and_then(|id| index.get(id)) {
                self.sink.warn(
                    k.pos,
                    format!(
                        "duplicate key {} (first on line {}); the later value is used, \
                         as LAIN did: remove one of them",
                        k.describe(),
                        out[i].0.pos.line
                    ),
                );
                // Replaced in place: a dict keeps one entry per key.
                out[i] = (k, v);
                continue;
            }
            if let Some(id) = id {
                index.insert(id, out.len());
            }
            out.push((k, v));
        }
        // With several `<<` keys the later one wins, and in a list of
        // mappings the first one wins: walk them in reverse precedence.
        for merge in merges.into_iter().rev() {
            let sources: Vec<Vec<(Node, Node)>> = match merge.value {
                Value::Map(es) => vec![es],
                Value::Seq(items) => {
                    let mut maps = Vec::new();
                    for item in items {
                        match item.value {
                            Value::Map(es) => maps.push(es),
                            _ => self.sink.error(
                                item.pos,
                                format!(
                                    "a merge key `<<` takes mappings, found {}",
                                    item.describe()
                                ),
                            ),
                        }
                    }
                    maps
                }
                _ => {
                    self.sink.error(
                        merge.pos,
                        format!(
                            "a merge key `<<` takes a mapping (e.g. `<<: *defaults`) or a \
                             list of mappings, found {}",
                            merge.describe()
                        ),
                    );
                    Vec::new()
                }
            };
            for source in sources {
                for (k, v) in source {
                    match k.key_id() {
                        Some(id) if index.contains_key(&id) => {}
                        Some(id) => {
                            index.insert(id, out.len());
                            out.push((k, v));
                        }
                        None => out.push((k, v)),
                    }
                }
            }
        }
        out
    }

    fn check_collection_tag(&mut self, tag: Option<&Tag>, want: &str, pos: Pos) {
        let Some(tag) = tag else { return };
        let ok = (is_core(tag) && tag.suffix == want) || is_non_specific(tag);
        if !ok {
            self.sink.error(
                pos,
                format!(
                    "unsupported tag `{}`; lain.yaml uses plain YAML without tags",
                    tag_text(tag)
                ),
            );
        }
    }

    fn scalar(&mut self, text: &str, style: ScalarStyle, tag: Option<&Tag>, pos: Pos) -> Node {
        let plain = style == ScalarStyle::Plain && tag.is_none();
        let value = match tag {
            None if plain => match resolve::resolve_plain(text) {
                Ok(s) => from_scalar(s),
                Err(msg) => {
                    self.sink.error(pos, msg);
                    Value::Str(text.to_owned())
                }
            },
            None => Value::Str(text.to_owned()),
            Some(t) if is_non_specific(t) => Value::Str(text.to_owned()),
            Some(t) if is_core(t) => self.core_tagged(text, &t.suffix, pos),
            Some(t) => {
                self.sink.error(
                    pos,
                    format!(
                        "unsupported tag `{}`; lain.yaml uses plain YAML without tags",
                        tag_text(t)
                    ),
                );
                Value::Str(text.to_owned())
            }
        };
        Node {
            value,
            pos,
            text: text.to_owned(),
            plain,
        }
    }

    /// `!!str 80` and friends: explicit core tags, as PyYAML constructs them.
    fn core_tagged(&mut self, text: &str, suffix: &str, pos: Pos) -> Value {
        let bad = |sink: &mut Sink, what: &str| {
            sink.error(
                pos,
                format!("`!!{suffix}` needs {what}, found `{}`", short(text)),
            );
            Value::Str(text.to_owned())
        };
        match suffix {
            "str" => Value::Str(text.to_owned()),
            "null" => Value::Null,
            "bool" => match resolve::parse_bool(text) {
                Some(b) => Value::Bool(b),
                None => bad(self.sink, "yes/no/true/false/on/off"),
            },
            "int" => match resolve::parse_int(text) {
                Some(i) => Value::Int(i),
                None => bad(self.sink, "an integer"),
            },
            "float" => match text.trim().parse::<f64>() {
                Ok(f) => Value::Float(f),
                Err(_) => match resolve::resolve_plain(text) {
                    Ok(Scalar::Float(f)) => Value::Float(f),
                    Ok(Scalar::Int(i)) => Value::Float(i as f64),
                    _ => bad(self.sink, "a number"),
                },
            },
            other => {
                self.sink.error(
                    pos,
                    format!(
                        "unsupported tag `!!{other}` on a scalar; lain.yaml uses plain YAML \
                         (strings, numbers, booleans)"
                    ),
                );
                Value::Str(text.to_owned())
            }
        }
    }
}

fn from_scalar(s: Scalar) -> Value {
    match s {
        Scalar::Null => Value::Null,
        Scalar::Bool(b) => Value::Bool(b),
        Scalar::Int(i) => Value::Int(i),
        Scalar::BigInt => Value::BigInt,
        Scalar::Float(f) => Value::Float(f),
        Scalar::Str(s) => Value::Str(s),
        Scalar::Timestamp => Value::Timestamp,
    }
}

fn is_core(tag: &Tag) -> bool {
    tag.handle == "tag:yaml.org,2002:"
}

/// The non-specific tag `!`: forces a string, as YAML says.
fn is_non_specific(tag: &Tag) -> bool {
    (tag.handle.is_empty() && tag.suffix == "!") || (tag.handle == "!" && tag.suffix.is_empty())
}

fn tag_text(tag: &Tag) -> String {
    if is_core(tag) {
        format!("!!{}", tag.suffix)
    } else {
        format!("{}{}", tag.handle, tag.suffix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load_ok(text: &str) -> (Option<Node>, Vec<crate::Diagnostic>) {
        let mut sink = Sink::new("t.yaml");
        let node = load(text, &mut sink);
        (node, sink.into_sorted())
    }

    fn map_get<'a>(node: &'a Node, key: &str) -> Option<&'a Node> {
        match &node.value {
            Value::Map(es) => es
                .iter()
                .find(|(k, _)| k.as_str() == Some(key))
                .map(|(_, v)| v),
            _ => None,
        }
    }

    #[test]
    fn positions_are_one_based() {
        let (n, d) = load_ok("a: 1\nbb:\n  c: yes\n");
        assert!(d.is_empty());
        let n = n.expect("loads");
        assert_eq!(n.pos, Pos { line: 1, col: 1 });
        let bb = map_get(&n, "bb").expect("bb");
        let c = map_get(bb, "c").expect("c");
        assert_eq!(c.pos, Pos { line: 3, col: 6 });
        assert_eq!(c.value, Value::Bool(true));
    }

    #[test]
    fn quoted_scalars_stay_strings() {
        let (n, _) = load_ok("a: \"80\"\nb: 'yes'\nc: 80\n");
        let n = n.expect("loads");
        assert_eq!(
            map_get(&n, "a").map(|v| &v.value),
            Some(&Value::Str("80".into()))
        );
        assert_eq!(
            map_get(&n, "b").map(|v| &v.value),
            Some(&Value::Str("yes".into()))
        );
        assert_eq!(map_get(&n, "c").map(|v| &v.value), Some(&Value::Int(80)));
    }

    #[test]
    fn tags_are_honoured() {
        let (n, d) = load_ok("a: !!str 80\nb: !!int \"7\"\nc: ! 12\n");
        assert!(d.is_empty(), "{d:?}");
        let n = n.expect("loads");
        assert_eq!(
            map_get(&n, "a").map(|v| &v.value),
            Some(&Value::Str("80".into()))
        );
        assert_eq!(map_get(&n, "b").map(|v| &v.value), Some(&Value::Int(7)));
        assert_eq!(
            map_get(&n, "c").map(|v| &v.value),
            Some(&Value::Str("12".into()))
        );
        let (_, d) = load_ok("a: !foo x\n");
        assert_eq!(d.len(), 1);
        assert_eq!((d[0].line, d[0].col), (1, 9));
    }

    #[test]
    fn aliases_and_merge_keys() {
        let text = "base: &b\n  memory: 64m\n  cpu: 1\nweb:\n  <<: *b\n  cpu: 2\n";
        let (n, d) = load_ok(text);
        assert!(d.is_empty(), "{d:?}");
        let n = n.expect("loads");
        let web = map_get(&n, "web").expect("web");
        assert_eq!(map_get(web, "cpu").map(|v| &v.value), Some(&Value::Int(2)));
        let mem = map_get(web, "memory").expect("merged");
        assert_eq!(mem.value, Value::Str("64m".into()));
        // The merged node keeps the position of the anchored original.
        assert_eq!(mem.pos, Pos { line: 2, col: 11 });
    }

    #[test]
    fn duplicate_keys_warn_and_last_wins() {
        let (n, d) = load_ok("a: 1\na: 2\n");
        let n = n.expect("loads");
        assert_eq!(map_get(&n, "a").map(|v| &v.value), Some(&Value::Int(2)));
        assert_eq!(d.len(), 1);
        assert_eq!(d[0].severity, crate::Severity::Warning);
        assert_eq!((d[0].line, d[0].col), (2, 1));
    }

    #[test]
    fn empty_stream_is_null() {
        let (n, d) = load_ok("# only a comment\n");
        assert!(d.is_empty());
        assert_eq!(n.map(|n| n.value), Some(Value::Null));
    }

    #[test]
    fn second_document_is_rejected() {
        let (n, d) = load_ok("a: 1\n---\nb: 2\n");
        assert!(n.is_none());
        assert_eq!((d[0].line, d[0].col), (2, 1));
    }

    #[test]
    fn tab_indentation_is_a_syntax_error_with_position() {
        let (n, d) = load_ok("build:\n\tbase: x\n");
        assert!(n.is_none());
        assert_eq!(d.len(), 1);
        assert_eq!((d[0].line, d[0].col), (2, 1));
        assert!(d[0].message.contains("tab"), "{}", d[0].message);
    }

    #[test]
    fn depth_is_capped() {
        let deep_flow = "[".repeat(100_000);
        let (n, d) = load_ok(&deep_flow);
        assert!(n.is_none());
        assert_eq!(d.len(), 1);

        let deep_block: String = (0..200)
            .map(|i| format!("{}k:\n", "  ".repeat(i)))
            .collect();
        let (n, d) = load_ok(&deep_block);
        assert!(n.is_none());
        assert!(d[0].message.contains("too deep"), "{}", d[0].message);

        let deep_seq = "- ".repeat(100_000);
        let (n, d) = load_ok(&deep_seq);
        assert!(n.is_none());
        assert_eq!(d.len(), 1);
    }

    #[test]
    fn alias_bombs_are_capped() {
        let mut text = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 1..12 {
            let prev = format!("*a{}", i - 1);
            let items = [prev.as_str(); 10].join(", ");
            text.push_str(&format!("a{i}: &a{i} [{items}]\n"));
        }
        let (n, d) = load_ok(&text);
        assert!(n.is_none());
        assert!(d[0].message.contains("too much"), "{}", d[0].message);
    }
}
