//! The platform's modules must form a layered graph: a module that imports a
//! module which (through others) imports it back cannot be understood,
//! tested or moved on its own. This reads the source, builds the graph of
//! `crate::<module>` references (a folder module is one node; comments are
//! skipped; `crate::Item` re-exported by lib.rs counts as its module) and
//! fails naming every cycle it finds.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

type Graph = BTreeMap<String, BTreeSet<String>>;

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// Every `.rs` file under `path` (the file itself when it is one).
fn rust_files(path: &Path) -> Vec<PathBuf> {
    if path.is_file() {
        return vec![path.to_owned()];
    }
    let mut files = Vec::new();
    for entry in std::fs::read_dir(path).expect("readable source folder") {
        let entry = entry.expect("readable entry").path();
        if entry.is_dir() || entry.extension().is_some_and(|e| e == "rs") {
            files.extend(rust_files(&entry));
        }
    }
    files
}

/// The source without `//` comments (doc links are not imports).
fn code(text: &str) -> String {
    text.lines().map(|line| line.split("//").next().unwrap_or("")).collect::<Vec<_>>().join("\n")
}

fn ident(text: &str) -> &str {
    let end = text.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).unwrap_or(text.len());
    &text[..end]
}

/// The first path segment of every item of a `{a::b, c, d::{e}}` group.
fn group_heads(text: &str) -> Vec<String> {
    let mut heads = Vec::new();
    let mut depth = 0;
    let mut at_item_start = true;
    for (i, c) in text.char_indices() {
        match c {
            '{' => depth += 1,
            '}' if depth == 1 => break,
            '}' => depth -= 1,
            ',' if depth == 1 => at_item_start = true,
            c if c.is_whitespace() => {}
            _ if depth == 1 && at_item_start => {
                heads.push(ident(&text[i..]).to_owned());
                at_item_start = false;
            }
            _ => {}
        }
    }
    heads
}

/// What `crate::<name>` means: a module, or the module lib.rs re-exports an item from.
fn reexports(lib: &str) -> BTreeMap<String, String> {
    let mut items = BTreeMap::new();
    for line in code(lib).lines() {
        let Some(rest) = line.trim().strip_prefix("pub use ") else { continue };
        let module = ident(rest);
        let tail = &rest[module.len()..];
        let names = match tail.find('{') {
            Some(open) => group_heads(&tail[open..]),
            None => {
                vec![tail.trim_start_matches("::").trim_end_matches(';').rsplit("::").next().unwrap_or("").to_owned()]
            }
        };
        for name in names {
            items.insert(name, module.to_owned());
        }
    }
    items
}

fn graph() -> Graph {
    let src = src();
    let lib = std::fs::read_to_string(src.join("lib.rs")).expect("lib.rs");
    let items = reexports(&lib);
    let mut nodes = BTreeMap::new();
    for entry in std::fs::read_dir(&src).expect("src") {
        let path = entry.expect("entry").path();
        let name = path.file_stem().and_then(|s| s.to_str()).expect("utf-8 name").to_owned();
        if name != "lib" && (path.is_dir() || path.extension().is_some_and(|e| e == "rs")) {
            nodes.insert(name, path);
        }
    }
    let mut graph = Graph::new();
    for (name, path) in &nodes {
        let mut uses = BTreeSet::new();
        for file in rust_files(path) {
            let text = code(&std::fs::read_to_string(&file).expect("source file"));
            for (at, _) in text.match_indices("crate::") {
                let rest = &text[at + "crate::".len()..];
                let heads = if rest.starts_with('{') { group_heads(rest) } else { vec![ident(rest).to_owned()] };
                for head in heads {
                    let target = if nodes.contains_key(&head) { Some(head) } else { items.get(&head).cloned() };
                    if let Some(target) = target.filter(|t| t != name) {
                        uses.insert(target);
                    }
                }
            }
        }
        graph.insert(name.clone(), uses);
    }
    graph
}

/// Every cycle a depth-first walk meets, each as `a -> b -> a`.
fn cycles(graph: &Graph) -> Vec<String> {
    fn walk(node: &str, graph: &Graph, path: &mut Vec<String>, done: &mut BTreeSet<String>, found: &mut Vec<String>) {
        if let Some(at) = path.iter().position(|n| n == node) {
            let mut cycle = path[at..].to_vec();
            cycle.push(node.to_owned());
            found.push(cycle.join(" -> "));
            return;
        }
        if done.contains(node) {
            return;
        }
        path.push(node.to_owned());
        for next in graph.get(node).into_iter().flatten() {
            walk(next, graph, path, done, found);
        }
        path.pop();
        done.insert(node.to_owned());
    }
    let mut found = Vec::new();
    let mut done = BTreeSet::new();
    for node in graph.keys() {
        walk(node, graph, &mut Vec::new(), &mut done, &mut found);
    }
    found
}

#[test]
fn the_platforms_modules_import_each_other_in_one_direction_only() {
    let graph = graph();
    assert!(graph.get("config").is_some_and(BTreeSet::is_empty), "config is a leaf: {:?}", graph.get("config"));
    let found = cycles(&graph);
    assert!(found.is_empty(), "import cycles among the platform's modules:\n{}", found.join("\n"));
}

#[test]
fn the_graph_reader_sees_grouped_imports_reexports_and_skips_comments() {
    assert_eq!(group_heads("{a::b, c, d::{e, f}}"), ["a", "c", "d"]);
    assert_eq!(code("use crate::a; // see crate::b"), "use crate::a; ");
    let items = reexports("pub use auth::{Caller, Role};\npub use clock::Clock;");
    assert_eq!(items.get("Role").map(String::as_str), Some("auth"));
    assert_eq!(items.get("Clock").map(String::as_str), Some("clock"));
    let mut looped = Graph::new();
    looped.insert("a".into(), ["b".to_owned()].into());
    looped.insert("b".into(), ["a".to_owned()].into());
    assert_eq!(cycles(&looped), ["a -> b -> a"]);
}
