//! The documentation kept true: the source map in `docs/architecture.md`
//! names every module of `src/`, and nothing that is gone.

use std::{
    collections::BTreeSet,
    fs,
    path::{Path, PathBuf},
};

const MAP: &str = "docs/architecture.md";

/// Every module of `src/` as the map names it: `src/` itself, each folder
/// (`src/db/`) and each file but a folder's `mod.rs` (`src/db/pool.rs`),
/// which its folder stands for.
fn modules(root: &Path) -> BTreeSet<String> {
    fn walk(root: &Path, dir: &Path, found: &mut BTreeSet<String>) {
        let mut entries: Vec<PathBuf> = fs::read_dir(dir)
            .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
            .map(|entry| entry.expect("a directory entry").path())
            .collect();
        entries.sort();
        for path in entries {
            let name = path
                .strip_prefix(root)
                .expect("under the crate")
                .to_string_lossy()
                .replace('\\', "/");
            if path.is_dir() {
                found.insert(format!("{name}/"));
                walk(root, &path, found);
            } else if name.ends_with(".rs") && !name.ends_with("/mod.rs") {
                found.insert(name);
            }
        }
    }
    let mut found = BTreeSet::from([String::from("src/")]);
    walk(root, &root.join("src"), &mut found);
    found
}

/// What the map's section names: a heading "### `src/folder/`" names that
/// folder and is where the names below it are relative to; a name in
/// backticks ending in `.rs` or `/` names a file or folder (from `src/`
/// when it starts with it, else from the heading's folder).
fn named(map: &str) -> BTreeSet<String> {
    let start = map
        .find("\n## Source map\n")
        .unwrap_or_else(|| panic!("{MAP} has a `## Source map` section"));
    let section = &map[start + 1..];
    let section = match section[1..].find("\n## ") {
        Some(end) => &section[..end + 1],
        None => section,
    };
    let mut names = BTreeSet::new();
    let mut folder = String::from("src/");
    for line in section.lines() {
        let mut quoted = line.split('`').skip(1).step_by(2);
        if line.starts_with("### ") {
            if let Some(heading) = quoted.next().filter(|h| h.starts_with("src/")) {
                folder = heading.to_owned();
                names.insert(folder.clone());
            }
            continue;
        }
        for name in quoted {
            if !(name.ends_with(".rs") || name.ends_with('/')) || name.contains(' ') {
                continue;
            }
            if name.starts_with("src/") {
                names.insert(name.to_owned());
            } else {
                names.insert(format!("{folder}{name}"));
            }
        }
    }
    names
}

#[test]
fn the_source_map_names_every_module_of_src_and_nothing_gone() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let map = fs::read_to_string(root.join(MAP)).expect("docs/architecture.md is readable");
    let modules = modules(root);
    let named = named(&map);
    let missing: Vec<&String> = modules.difference(&named).collect();
    let gone: Vec<&String> = named.difference(&modules).collect();
    let mut problems = Vec::new();
    if !missing.is_empty() {
        problems.push(format!(
            "the source map in {MAP} does not name {}: {}",
            missing.len(),
            list(&missing)
        ));
    }
    if !gone.is_empty() {
        problems.push(format!(
            "the source map in {MAP} names {} that src/ does not have: {}",
            gone.len(),
            list(&gone)
        ));
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

fn list(paths: &[&String]) -> String {
    paths
        .iter()
        .map(|p| p.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

#[test]
fn the_map_reader_resolves_names_under_their_folder() {
    let map = "# A\n\n## Source map\n\n### `src/`\n\n- `main.rs`: x; `AppError` is not a path.\n\n\
               ### `src/db/`\n\n- `pool.rs` and `src/db/models/`; `seed.rs`.\n\n## Next\n\n- `late.rs`\n";
    let expected: BTreeSet<String> = [
        "src/",
        "src/main.rs",
        "src/db/",
        "src/db/pool.rs",
        "src/db/models/",
        "src/db/seed.rs",
    ]
    .into_iter()
    .map(String::from)
    .collect();
    assert_eq!(named(map), expected);
}
