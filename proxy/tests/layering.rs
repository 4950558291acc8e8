//! The code-shape rules ARCHITECTURE.md states, checked so they stay true: no module of the
//! proxy imports one that imports it back, and no Rust file in the workspace grows past 500
//! lines unless ARCHITECTURE.md names it with a reason.

#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

const MAX_LINES: usize = 500;

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name();
        if path.is_dir() {
            if name != "target" && name != "vendor" && !name.to_string_lossy().starts_with('.') {
                rust_files(&path, out);
            }
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// Top-level module -> the top-level modules its files name as `crate::x`.
fn proxy_module_graph() -> BTreeMap<String, BTreeSet<String>> {
    let src = workspace().join("proxy/src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for file in files {
        let relative = file.strip_prefix(&src).unwrap();
        let first = relative.components().next().unwrap();
        let module = first
            .as_os_str()
            .to_string_lossy()
            .trim_end_matches(".rs")
            .to_string();
        if module == "main" || module == "lib" {
            continue;
        }
        let text = std::fs::read_to_string(&file).unwrap();
        let uses = graph.entry(module.clone()).or_default();
        for (index, _) in text.match_indices("crate::") {
            let name: String = text[index + "crate::".len()..]
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            if !name.is_empty() && name != module {
                uses.insert(name);
            }
        }
    }
    graph
}

#[test]
fn no_proxy_module_imports_one_that_imports_it_back() {
    let graph = proxy_module_graph();
    assert!(graph.contains_key("service") && graph.contains_key("cache"));
    // Depth-first search from each module; reaching it again is a cycle.
    let mut cycles = Vec::new();
    for start in graph.keys() {
        let mut stack = vec![(start.clone(), vec![start.clone()])];
        let mut seen = BTreeSet::new();
        while let Some((module, path)) = stack.pop() {
            for next in graph.get(&module).into_iter().flatten() {
                if next == start {
                    cycles.push(format!("{} -> {next}", path.join(" -> ")));
                } else if seen.insert(next.clone()) {
                    let mut longer = path.clone();
                    longer.push(next.clone());
                    stack.push((next.clone(), longer));
                }
            }
        }
    }
    assert!(cycles.is_empty(), "module cycles:\n{}", cycles.join("\n"));
}

#[test]
fn long_files_are_named_in_architecture_md_with_a_reason() {
    let root = workspace();
    let architecture = std::fs::read_to_string(root.join("ARCHITECTURE.md")).unwrap();
    let mut files = Vec::new();
    for dir in ["proxy", "backends", "lab", "auth", "common", "test-support"] {
        rust_files(&root.join(dir), &mut files);
    }
    let mut unexplained = Vec::new();
    for file in files {
        let lines = std::fs::read_to_string(&file).unwrap().lines().count();
        let relative = file
            .strip_prefix(&root)
            .unwrap()
            .to_string_lossy()
            .to_string();
        if lines > MAX_LINES && !architecture.contains(&format!("`{relative}`")) {
            unexplained.push(format!("{relative}: {lines} lines"));
        }
    }
    assert!(
        unexplained.is_empty(),
        "files over {MAX_LINES} lines that ARCHITECTURE.md does not name (as `path`) with a reason:\n{}",
        unexplained.join("\n")
    );
}
