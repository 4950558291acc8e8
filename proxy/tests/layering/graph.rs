//! The file-level import graph of one crate, and its cycles.
//!
//! Each file of `src/` is a module (`a/b.rs` is `a::b`, `lib.rs` and `main.rs` the root). A
//! file uses the modules its paths name: `crate::a::b::X`, `super::x`, `self::x`, each also
//! inside grouped imports (`use crate::{a, b::{c, d}}`), resolved to the longest prefix that is
//! a file. Comments are left out, so a doc comment naming a path adds no edge. An edge between
//! a module and one of its ancestors is not counted: a parent declares its children (`mod x;`)
//! and they may use its items, so the two are one unit by construction. Every other edge is
//! lifted to the two siblings under the modules' lowest common ancestor (`a::x` using `b::y`
//! is `a` using `b`; `a::x` using `a::y` stays), so a cycle between whole subtrees (`report`
//! using `lesson::verdict` while `lesson::hot_key` uses `report`) is seen as well as one
//! between files of one folder.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

pub type Graph = BTreeMap<String, BTreeSet<String>>;

/// The module of a file, relative to `src/`: `a/b.rs` and `a/b/mod.rs` are `a::b`.
pub fn module_of(relative: &Path) -> String {
    let mut parts: Vec<String> = relative
        .components()
        .map(|c| c.as_os_str().to_string_lossy().to_string())
        .collect();
    if let Some(last) = parts.last_mut() {
        *last = last.trim_end_matches(".rs").to_string();
    }
    if parts.last().is_some_and(|l| l == "mod") {
        parts.pop();
    }
    if parts.len() == 1 && (parts[0] == "lib" || parts[0] == "main") {
        parts.clear();
    }
    parts.join("::")
}

/// The text with `//` comments removed (a `//` inside a string literal ends the line early,
/// which can only lose an edge on that line).
pub fn without_comments(text: &str) -> String {
    text.lines()
        .map(|line| line.split_once("//").map_or(line, |(code, _)| code))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Every path `text` (code of module `module`) names from `crate`, `super` or `self`, made
/// absolute (segments from the crate root), groups expanded.
pub fn paths_named(module: &str, text: &str) -> Vec<Vec<String>> {
    let code = without_comments(text);
    let bytes = code.as_bytes();
    let mut paths = Vec::new();
    for start in ["crate::", "super::", "self::"] {
        for (index, _) in code.match_indices(start) {
            let before = index.checked_sub(1).map(|i| bytes[i]);
            if before
                .is_some_and(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'$' || b == b':')
            {
                continue;
            }
            let head = &start[..start.len() - 2];
            let mut tree = Vec::new();
            parse_tree(&code[index + start.len()..], &mut Vec::new(), &mut tree);
            for relative in tree {
                let mut full = vec![head.to_string()];
                full.extend(relative);
                if let Some(absolute) = absolute(module, &full) {
                    paths.push(absolute);
                }
            }
        }
    }
    paths
}

/// Reads a path tree (`a::b`, `a::{b, c::d}`, `{a, b}`) at the start of `text` into `out`,
/// each path prefixed with `prefix`.
fn parse_tree(text: &str, prefix: &mut Vec<String>, out: &mut Vec<Vec<String>>) -> usize {
    let text_bytes = text.as_bytes();
    let mut at = skip_space(text, 0);
    if text_bytes.get(at) == Some(&b'{') {
        at += 1;
        loop {
            at = skip_space(text, at);
            match text_bytes.get(at) {
                None => return at,
                Some(b'}') => return at + 1,
                Some(b',') => at += 1,
                Some(_) => {
                    let before = at;
                    at += parse_tree(&text[at..], &mut prefix.clone(), out);
                    if at == before {
                        at += text[at..].chars().next().map_or(1, char::len_utf8);
                    }
                }
            }
        }
    }
    let name: String = text[at..]
        .chars()
        .take_while(|c| c.is_alphanumeric() || *c == '_')
        .collect();
    if name.is_empty() {
        out.push(prefix.clone());
        return at;
    }
    at += name.len();
    // `a::{self, b}`: `self` in a group is the group's prefix itself.
    if name != "self" {
        prefix.push(name);
    }
    if text[at..].starts_with("::") {
        return at + 2 + parse_tree(&text[at + 2..], prefix, out);
    }
    out.push(prefix.clone());
    at
}

fn skip_space(text: &str, mut at: usize) -> usize {
    while text.as_bytes().get(at).is_some_and(u8::is_ascii_whitespace) {
        at += 1;
    }
    at
}

/// `crate::a`, `super::super::a`, `self::a` from module `module`, as segments from the root.
fn absolute(module: &str, path: &[String]) -> Option<Vec<String>> {
    let mut base: Vec<String> = if module.is_empty() {
        Vec::new()
    } else {
        module.split("::").map(str::to_string).collect()
    };
    let mut rest = path;
    match rest.first().map(String::as_str) {
        Some("crate") => {
            base.clear();
            rest = &rest[1..];
        }
        Some("self") => rest = &rest[1..],
        _ => {
            while rest.first().is_some_and(|s| s == "super") {
                base.pop()?;
                rest = &rest[1..];
            }
        }
    }
    base.extend(rest.iter().cloned());
    Some(base)
}

/// The longest prefix of `path` that is one of `modules`.
pub fn resolve(path: &[String], modules: &BTreeSet<String>) -> Option<String> {
    (1..=path.len())
        .rev()
        .map(|n| path[..n].join("::"))
        .find(|candidate| modules.contains(candidate))
}

/// Whether one module is the other or an ancestor of it.
pub fn related(a: &str, b: &str) -> bool {
    let under = |parent: &str, child: &str| {
        parent.is_empty() || child == parent || child.starts_with(&format!("{parent}::"))
    };
    under(a, b) || under(b, a)
}

/// The children of the lowest common ancestor of two unrelated modules that contain them.
fn lift(from: &str, to: &str) -> (String, String) {
    let from: Vec<&str> = from.split("::").collect();
    let to: Vec<&str> = to.split("::").collect();
    let common = from.iter().zip(&to).take_while(|(a, b)| a == b).count();
    (from[..=common].join("::"), to[..=common].join("::"))
}

/// The graph of the files in `sources` (module, text), edges lifted.
pub fn build(sources: &[(String, String)]) -> Graph {
    let modules: BTreeSet<String> = sources.iter().map(|(m, _)| m.clone()).collect();
    let mut graph = Graph::new();
    for (module, text) in sources {
        graph.entry(module.clone()).or_default();
        for path in paths_named(module, text) {
            if let Some(target) = resolve(&path, &modules) {
                if !related(module, &target) {
                    let (from, to) = lift(module, &target);
                    graph.entry(from).or_default().insert(to);
                }
            }
        }
    }
    graph
}

/// The strongly connected components of more than one module (each a file-level cycle),
/// sorted; Tarjan's algorithm.
pub fn cycles(graph: &Graph) -> Vec<BTreeSet<String>> {
    struct Walk<'g> {
        graph: &'g Graph,
        index: BTreeMap<&'g str, usize>,
        low: BTreeMap<&'g str, usize>,
        stack: Vec<&'g str>,
        on_stack: BTreeSet<&'g str>,
        found: Vec<BTreeSet<String>>,
    }
    impl<'g> Walk<'g> {
        fn visit(&mut self, node: &'g str) {
            let n = self.index.len();
            self.index.insert(node, n);
            self.low.insert(node, n);
            self.stack.push(node);
            self.on_stack.insert(node);
            for next in self.graph.get(node).into_iter().flatten() {
                let next = next.as_str();
                if !self.index.contains_key(next) {
                    self.visit(next);
                    let low = self.low[node].min(self.low[next]);
                    self.low.insert(node, low);
                } else if self.on_stack.contains(next) {
                    let low = self.low[node].min(self.index[next]);
                    self.low.insert(node, low);
                }
            }
            if self.low[node] == self.index[node] {
                let mut component = BTreeSet::new();
                while let Some(top) = self.stack.pop() {
                    self.on_stack.remove(top);
                    component.insert(top.to_string());
                    if top == node {
                        break;
                    }
                }
                if component.len() > 1 {
                    self.found.push(component);
                }
            }
        }
    }
    let mut walk = Walk {
        graph,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        found: Vec::new(),
    };
    for node in graph.keys() {
        if !walk.index.contains_key(node.as_str()) {
            walk.visit(node);
        }
    }
    walk.found.sort();
    walk.found
}

/// What is wrong with `found` given the `known` cycles: a cycle not known exactly (a new
/// one, or a known one that grew), or a known one that is gone (so the list stays true).
pub fn unexplained(found: &[BTreeSet<String>], known: &[BTreeSet<String>]) -> Vec<String> {
    let mut problems: Vec<String> = found
        .iter()
        .filter(|cycle| !known.contains(cycle))
        .map(|cycle| format!("new cycle: {}", names(cycle)))
        .collect();
    problems.extend(
        known
            .iter()
            .filter(|cycle| !found.contains(cycle))
            .map(|cycle| format!("listed cycle no longer found (remove it): {}", names(cycle))),
    );
    problems
}

fn names(cycle: &BTreeSet<String>) -> String {
    cycle.iter().cloned().collect::<Vec<_>>().join(" <-> ")
}
