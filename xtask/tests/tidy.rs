//! Tidy: the rules of ARCHITECTURE.md and the style guide that a machine can check, checked on
//! every `cargo test` (rust-analyzer's `xtask/src/tidy.rs` is the model).
//!
//! The crate graph comes from `cargo metadata`; the rest reads the workspace's own files. When a
//! crate's job moves, update [`ALLOWED_DEPS`] together with ARCHITECTURE.md's "Dependency
//! direction" line: that table is the one place the allowed arrows live.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

/// Which workspace crates each workspace crate may depend on (normal and build dependencies;
/// dev-dependencies may also reach what those reach). An arrow missing here is a failure; an arrow
/// listed here but unused is fine.
const ALLOWED_DEPS: &[(&str, &[&str])] = &[
    ("atomic-write", &[]),
    ("semantic-index", &["atomic-write"]),
    ("index-publisher", &["atomic-write", "semantic-index"]),
    ("shm-reader", &["semantic-index"]),
    ("apprentice-core", &[]),
    ("apprentice-kinds", &["apprentice-core", "shm-reader", "semantic-index"]),
    (
        "memory-store",
        &[
            "atomic-write",
            "semantic-index",
            "index-publisher",
            "shm-reader",
            "apprentice-core",
            "apprentice-kinds",
            "memory-mcp",
            "replication",
            "embeddings",
        ],
    ),
    ("memory-mcp", &[]),
    ("replication", &["atomic-write", "semantic-index", "index-publisher"]),
    ("embeddings", &[]),
    ("xtask", &["embeddings"]),
    (
        "benches",
        &[
            "atomic-write",
            "semantic-index",
            "index-publisher",
            "shm-reader",
            "apprentice-core",
            "apprentice-kinds",
            "memory-store",
            "replication",
            "embeddings",
        ],
    ),
];

/// The published libraries: no anyhow in them, and an optional dependency only behind a feature.
const LIBRARIES: &[&str] = &[
    "atomic-write",
    "semantic-index",
    "index-publisher",
    "shm-reader",
    "apprentice-core",
    "apprentice-kinds",
    "memory-store",
    "memory-mcp",
    "replication",
    "embeddings",
];

/// What `memory-store`'s library must not pull in: only the `cli` feature (the mcs binary) may.
const CLI_ONLY: &[&str] =
    &["apprentice-core", "apprentice-kinds", "anyhow", "clap", "indicatif", "embeddings"];

/// Third-party crates that only one workspace crate may depend on, and the reason.
const CONFINED: &[(&str, &str, &str)] = &[
    ("memmap2", "shm-reader", "the only Mmap::map calls live in shm-reader"),
    ("rmp-serde", "apprentice-core", "only apprentice-core speaks the wire format"),
    ("interprocess", "apprentice-core", "only apprentice-core opens the sockets"),
    ("tantivy", "benches", "peers build only in benches"),
    ("rusqlite", "benches", "peers build only in benches"),
    ("async-nats", "replication", "only the replication crate speaks to NATS"),
    ("candle-core", "embeddings", "only embeddings runs the model"),
    ("candle-nn", "embeddings", "only embeddings runs the model"),
    ("gemm", "embeddings", "only embeddings runs the model"),
    ("tokenizers", "embeddings", "only embeddings tokenizes for the model"),
];

/// The index's files are written through atomic-write; these files may also write in place.
const IN_PLACE_WRITES: &[(&str, &str)] =
    &[("index-publisher/src/lib.rs", "the beacon, a fixed-size hint bumped in place")];

/// Dev-dependencies beyond what a crate may reach: the reader side's tests publish the stores
/// they read, through the writer-side publisher.
const DEV_EXTRA: &[(&str, &[&str])] =
    &[("shm-reader", &["index-publisher"]), ("apprentice-kinds", &["index-publisher"])];

/// Tests that still assert on wall-clock time, against "no timed unit tests". Shrink it.
const TIMED_TESTS_TO_REPLACE: &[&str] = &[];

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("xtask lives in the workspace").to_owned()
}

fn metadata() -> Value {
    let out = Command::new(env!("CARGO"))
        .args(["metadata", "--format-version", "1", "--no-deps", "--offline"])
        .current_dir(root())
        .output()
        .expect("running cargo metadata");
    assert!(out.status.success(), "cargo metadata: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("cargo metadata prints JSON")
}

/// The workspace members, by name.
fn members(meta: &Value) -> BTreeMap<String, Value> {
    meta["packages"]
        .as_array()
        .expect("packages")
        .iter()
        .map(|p| (p["name"].as_str().expect("name").to_owned(), p.clone()))
        .collect()
}

fn deps(package: &Value) -> impl Iterator<Item = &Value> {
    package["dependencies"].as_array().expect("dependencies").iter()
}

fn dep_name(dep: &Value) -> &str {
    dep["rename"].as_str().unwrap_or_else(|| dep["name"].as_str().expect("dependency name"))
}

fn is_dev(dep: &Value) -> bool {
    dep["kind"].as_str() == Some("dev")
}

/// Every file of the workspace with one of `exts`, relative to the root (no target, no hidden
/// directories, no fuzz corpora).
fn files(exts: &[&str]) -> Vec<PathBuf> {
    fn walk(root: &Path, dir: &Path, exts: &[&str], out: &mut Vec<PathBuf>) {
        let mut entries: Vec<_> = std::fs::read_dir(dir)
            .expect("read_dir")
            .map(|e| e.expect("dir entry").path())
            .collect();
        entries.sort();
        for path in entries {
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
            if name.starts_with('.') || name == "target" || name == "corpus" || name == "artifacts"
            {
                continue;
            }
            if path.is_dir() {
                walk(root, &path, exts, out);
            } else if exts.iter().any(|e| name.ends_with(e)) {
                out.push(path.strip_prefix(root).expect("under root").to_owned());
            }
        }
    }
    let mut out = Vec::new();
    walk(&root(), &root(), exts, &mut out);
    out
}

/// The Rust sources the text checks read: all but this file, which spells out what it looks for.
fn sources() -> Vec<PathBuf> {
    files(&[".rs"]).into_iter().filter(|f| !f.ends_with("xtask/tests/tidy.rs")).collect()
}

fn read(rel: &Path) -> String {
    std::fs::read_to_string(root().join(rel)).unwrap_or_else(|e| panic!("{}: {e}", rel.display()))
}

/// Fails with every problem at once, one per line.
fn report(what: &str, problems: Vec<String>) {
    assert!(problems.is_empty(), "{what}:\n  {}", problems.join("\n  "));
}

#[test]
fn dependencies_point_the_way_architecture_says() {
    let meta = metadata();
    let members = members(&meta);
    let allowed: BTreeMap<&str, &[&str]> = ALLOWED_DEPS.iter().copied().collect();
    let mut problems = Vec::new();
    for name in members.keys() {
        if !allowed.contains_key(name.as_str()) {
            problems.push(format!("{name} is a member but not in ALLOWED_DEPS"));
        }
    }
    // What each crate may reach, transitively: dev-dependencies may use that.
    let reach = |start: &str| {
        let mut seen = BTreeSet::new();
        let mut todo = vec![start];
        while let Some(c) = todo.pop() {
            for &d in allowed.get(c).copied().unwrap_or(&[]) {
                if seen.insert(d) {
                    todo.push(d);
                }
            }
        }
        seen
    };
    for (name, package) in &members {
        let own = allowed.get(name.as_str()).copied().unwrap_or(&[]);
        let reachable = reach(name);
        for dep in deps(package).filter(|d| members.contains_key(d["name"].as_str().unwrap_or("")))
        {
            let to = dep["name"].as_str().expect("name");
            let dev_extra = DEV_EXTRA.iter().any(|(c, e)| c == name && e.contains(&to));
            let ok =
                if is_dev(dep) { reachable.contains(to) || dev_extra } else { own.contains(&to) };
            if !ok {
                problems.push(format!(
                    "{name} -> {to}{} is not an allowed arrow",
                    if is_dev(dep) { " (dev)" } else { "" }
                ));
            }
        }
    }
    report("dependency directions (update ALLOWED_DEPS and ARCHITECTURE.md together)", problems);
}

#[test]
fn anyhow_only_in_binaries() {
    let members = members(&metadata());
    let mut problems = Vec::new();
    for lib in LIBRARIES {
        let package = &members[*lib];
        for dep in deps(package).filter(|d| !is_dev(d)) {
            let name = dep_name(dep);
            if name == "anyhow" && dep["optional"] != Value::Bool(true) {
                problems
                    .push(format!("{lib} depends on anyhow (a library returns thiserror enums)"));
            }
        }
        // The library's own sources (binaries under src/bin may use anyhow).
        let src = Path::new(lib).join("src");
        for file in files(&[".rs"]).into_iter().filter(|f| f.starts_with(&src)) {
            if file.starts_with(src.join("bin")) || file.ends_with("main.rs") {
                continue;
            }
            if read(&file).contains("anyhow") {
                problems.push(format!("{} uses anyhow in library code", file.display()));
            }
        }
    }
    report("anyhow in libraries", problems);
}

#[test]
fn memory_store_library_stays_lean() {
    let members = members(&metadata());
    let package = &members["memory-store"];
    let cli: Vec<&str> = package["features"]["cli"]
        .as_array()
        .expect("memory-store has a cli feature")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    let mut problems = Vec::new();
    for dep in deps(package).filter(|d| !is_dev(d) && CLI_ONLY.contains(&dep_name(d))) {
        let name = dep_name(dep);
        if dep["optional"] != Value::Bool(true) {
            problems.push(format!("memory-store's library depends on {name}"));
        }
        if !cli.contains(&format!("dep:{name}").as_str()) {
            problems.push(format!("{name} is not enabled by the cli feature alone"));
        }
    }
    report("memory-store without the cli feature", problems);
}

#[test]
fn confined_dependencies_stay_where_they_belong() {
    let members = members(&metadata());
    let mut problems = Vec::new();
    for (dep_of, home, why) in CONFINED {
        for (name, package) in &members {
            if name != home && deps(package).any(|d| !is_dev(d) && dep_name(d) == *dep_of) {
                problems.push(format!("{name} depends on {dep_of}: {why}"));
            }
        }
    }
    for (name, package) in &members {
        for dep in
            deps(package).filter(|d| !is_dev(d) && matches!(dep_name(d), "tantivy" | "rusqlite"))
        {
            if dep["optional"] != Value::Bool(true) {
                problems.push(format!(
                    "{name}: {} must be optional (the peers feature)",
                    dep_name(dep)
                ));
            }
        }
    }
    // Mappings: only shm-reader calls into memmap2.
    for file in files(&[".rs"]) {
        if file.starts_with("shm-reader") || file.starts_with("xtask/tests") {
            continue;
        }
        if read(&file).contains("memmap2::") {
            problems.push(format!("{} maps a file outside shm-reader", file.display()));
        }
    }
    report("confined dependencies", problems);
}

/// Cargo.toml text split into `[section]` -> lines.
fn sections(text: &str) -> Vec<(String, Vec<String>)> {
    let mut out: Vec<(String, Vec<String>)> = vec![(String::new(), Vec::new())];
    for line in text.lines() {
        let trimmed = line.trim();
        if trimmed.starts_with('[') {
            out.push((trimmed.trim_matches(['[', ']']).to_owned(), Vec::new()));
        } else if !trimmed.is_empty() && !trimmed.starts_with('#') {
            out.last_mut().expect("one section").1.push(trimmed.to_owned());
        }
    }
    out
}

/// Whether a manifest line starts a `key = value` entry (not the continuation of a multi-line
/// array inside an inline table).
fn is_key_line(line: &str) -> bool {
    let key = line.split('=').next().unwrap_or("").trim();
    line.contains('=')
        && !key.is_empty()
        && key.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

fn is_dependency_section(section: &str) -> bool {
    section.ends_with("dependencies")
}

#[test]
fn manifests_follow_the_workspace_conventions() {
    let meta = metadata();
    let members = members(&meta);
    let mut problems = Vec::new();
    let mut used = BTreeSet::new();
    for (name, package) in &members {
        let manifest = PathBuf::from(package["manifest_path"].as_str().expect("manifest_path"));
        let text = std::fs::read_to_string(&manifest).expect("reading a member's Cargo.toml");
        let sections = sections(&text);
        let lints = sections.iter().find(|(s, _)| s == "lints");
        if !lints.is_some_and(|(_, lines)| lines.iter().any(|l| l == "workspace = true")) {
            problems.push(format!("{name}: no `[lints] workspace = true`"));
        }
        for (section, lines) in sections.iter().filter(|(s, _)| is_dependency_section(s)) {
            for line in lines.iter().filter(|l| is_key_line(l)) {
                let dep = line.split(['.', '=', ' ']).next().unwrap_or("").to_owned();
                let inherited = line.starts_with(&format!("{dep}.workspace = true"))
                    || line.contains("workspace = true");
                if !inherited {
                    problems.push(format!(
                        "{name} [{section}] {dep}: versions live in [workspace.dependencies] \
                         (write `{dep}.workspace = true`)"
                    ));
                }
                used.insert(dep);
            }
        }
        for dep in deps(package).filter(|d| members.contains_key(d["name"].as_str().unwrap_or("")))
        {
            if dep["path"].as_str().is_none() || dep["req"].as_str() == Some("*") {
                problems.push(format!(
                    "{name} -> {}: internal dependencies are path + version",
                    dep["name"]
                ));
            }
        }
    }
    let root_text = read(Path::new("Cargo.toml"));
    let root_sections = sections(&root_text);
    let (_, workspace_deps) = root_sections
        .iter()
        .find(|(s, _)| s == "workspace.dependencies")
        .expect("root Cargo.toml has [workspace.dependencies]");
    for line in workspace_deps.iter().filter(|l| is_key_line(l)) {
        let dep = line.split(['=', ' ']).next().unwrap_or("").to_owned();
        if !used.contains(&dep) {
            problems.push(format!("[workspace.dependencies] {dep} is used by no member"));
        }
        let internal = members.contains_key(&dep);
        if internal && !(line.contains("path =") && line.contains("version =")) {
            problems
                .push(format!("[workspace.dependencies] {dep}: internal, needs path + version"));
        }
        if !internal && !line.contains("default-features = false") {
            problems.push(format!(
                "[workspace.dependencies] {dep}: third party, needs default-features = false"
            ));
        }
    }
    report("Cargo.toml conventions", problems);
}

/// `needle` assembled at run time so that this file does not match its own checks.
fn joined(parts: &[&str]) -> String {
    parts.concat()
}

#[test]
fn tests_never_ignore_nor_expect_a_panic() {
    let forbidden = [joined(&["#[", "ignore"]), joined(&["#[", "should_panic"])];
    let mut problems = Vec::new();
    for file in sources() {
        let text = read(&file);
        for (n, line) in text.lines().enumerate() {
            if let Some(f) = forbidden.iter().find(|f| line.contains(f.as_str())) {
                problems.push(format!("{}:{}: {f}", file.display(), n + 1));
            }
        }
    }
    report("ignored or should_panic tests", problems);
}

#[test]
fn tests_do_not_assert_on_wall_clock_time() {
    let mut problems = Vec::new();
    for file in sources() {
        let rel = file.to_string_lossy().replace('\\', "/");
        if TIMED_TESTS_TO_REPLACE.contains(&rel.as_str()) || rel.starts_with("benches/") {
            continue;
        }
        let text = read(&file);
        for (n, line) in text.lines().enumerate() {
            if line.contains("assert") && line.contains(".elapsed()") {
                problems.push(format!("{rel}:{}: a timed assertion (benches measure time)", n + 1));
            }
        }
    }
    report("timed tests", problems);
}

#[test]
fn every_unsafe_block_argues_its_safety() {
    let mut problems = Vec::new();
    for file in sources() {
        let text = read(&file);
        let lines: Vec<&str> = text.lines().collect();
        for (n, line) in lines.iter().enumerate() {
            let code = line.split("//").next().unwrap_or("");
            let Some(at) = code.find("unsafe ") else { continue };
            let rest = code[at + "unsafe ".len()..].trim_start();
            if !rest.starts_with('{') && !rest.starts_with("impl") {
                continue; // `unsafe fn` documents `# Safety` (clippy's missing_safety_doc).
            }
            // The comment sits on the lines above, or above the statement the block is in.
            let above = lines[n.saturating_sub(12)..=n].join("\n");
            if !above.contains(&joined(&["SAFETY", ":"])) {
                problems.push(format!("{}:{}: unsafe without // SAFETY:", file.display(), n + 1));
            }
        }
    }
    report("unsafe blocks", problems);
}

#[test]
fn crates_without_unsafe_forbid_it() {
    let mut problems = Vec::new();
    for lib in LIBRARIES {
        let src = Path::new(lib).join("src");
        let sources: Vec<PathBuf> = files(&[".rs"])
            .into_iter()
            .filter(|f| f.starts_with(&src) && !f.starts_with(src.join("bin")))
            .collect();
        let uses_unsafe = sources.iter().any(|f| {
            read(f).lines().any(|l| {
                let code = l.split("//").next().unwrap_or("");
                code.contains("unsafe {")
                    || code.contains("unsafe fn")
                    || code.contains("unsafe impl")
            })
        });
        let lib_rs = read(&src.join("lib.rs"));
        if !uses_unsafe && !lib_rs.contains("forbid(unsafe_code)") {
            problems.push(format!("{lib} has no unsafe code but does not forbid it"));
        }
    }
    report("#![forbid(unsafe_code)]", problems);
}

#[test]
fn docs_stay_inside_the_repository() {
    let outside = joined(&["..", "/shared"]);
    let design = joined(&["DESIGN", ".md"]);
    let mut problems = Vec::new();
    for file in files(&[".md", ".rs", ".toml"]) {
        let is_md = file.extension().is_some_and(|e| e == "md");
        for (n, line) in read(&file).lines().enumerate() {
            // In code only comments and docs count: a default data path is not a doc.
            let doc = if is_md { line } else { line.split_once("//").map_or("", |(_, c)| c) };
            let doc = if file.extension().is_some_and(|e| e == "toml") {
                line.split_once('#').map_or("", |(_, c)| c)
            } else {
                doc
            };
            if doc.contains(&outside) || doc.contains(&design) {
                problems.push(format!("{}:{}: {}", file.display(), n + 1, line.trim()));
            }
        }
        if is_md {
            let dir = file.parent().unwrap_or(Path::new(""));
            for link in markdown_links(&read(&file)) {
                let target = root().join(dir).join(&link);
                let inside = target
                    .canonicalize()
                    .is_ok_and(|t| t.starts_with(root().canonicalize().expect("root")));
                if !inside {
                    problems
                        .push(format!("{}: link to {link} leaves the repository", file.display()));
                }
            }
        }
    }
    report("docs pointing outside the repository (a clone has no ../shared)", problems);
}

/// Relative link targets of `[text](target)` in markdown (no URLs, no anchors).
fn markdown_links(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(at) = rest.find("](") {
        rest = &rest[at + 2..];
        let Some(end) = rest.find(')') else { break };
        let target = rest[..end].split('#').next().unwrap_or("");
        if !target.is_empty() && !target.contains("://") && !target.starts_with("mailto:") {
            out.push(target.to_owned());
        }
        rest = &rest[end..];
    }
    out
}

#[test]
fn the_tidy_helpers_find_what_they_look_for() {
    // The checks above pass on a clean tree; this shows their detectors are not vacuous.
    assert_eq!(markdown_links("see [a](x/FORMAT.md#v2) and [b](https://e.org)"), ["x/FORMAT.md"]);
    let s = sections("[dependencies]\nfoo = \"1\"\n# note\n[lints]\nworkspace = true\n");
    assert_eq!(s[1], ("dependencies".to_owned(), vec!["foo = \"1\"".to_owned()]));
    assert_eq!(s[2].1, ["workspace = true"]);
    assert!(files(&[".rs"]).contains(&PathBuf::from("xtask/tests/tidy.rs")));
    assert!(files(&[".md"]).contains(&PathBuf::from("ARCHITECTURE.md")));
    assert_eq!(shipped("a\n#[cfg(test)]\nmod tests {}").count(), 1);
    assert!(is_key_line("clap = { workspace = true, features = ["));
    assert!(is_key_line("serde.workspace = true"));
    assert!(!is_key_line("\"std\","));
    assert!(!is_key_line("] }"));
    let layout = read(Path::new(IN_PLACE_WRITES[0].0));
    let beacon = shipped(&layout).filter(|(_, l)| WRITES.iter().any(|w| l.contains(w))).count();
    assert_eq!(beacon, 1, "the write check sees the beacon's in-place write");
}

/// The lines of `text` before its `#[cfg(test)]` module (the code that ships).
fn shipped(text: &str) -> impl Iterator<Item = (usize, &str)> {
    text.lines().enumerate().take_while(|(_, l)| !l.trim_start().starts_with("#[cfg(test)]"))
}

#[test]
fn only_the_protocol_module_defines_wire_types() {
    let mut problems = Vec::new();
    for file in sources() {
        let rel = file.to_string_lossy().replace('\\', "/");
        let in_apprentices =
            rel.starts_with("apprentice-core/src") || rel.starts_with("apprentice-kinds/src");
        if !in_apprentices || rel == "apprentice-core/src/protocol.rs" {
            continue;
        }
        for (n, line) in shipped(&read(&file)) {
            if line.contains("derive(")
                && (line.contains("Serialize") || line.contains("Deserialize"))
            {
                problems.push(format!("{rel}:{}: a wire type outside protocol.rs", n + 1));
            }
        }
    }
    report("wire types", problems);
}

/// What opening or changing a file for writing looks like in the index crates' code.
const WRITES: &[&str] =
    &[".write(true)", ".append(true)", "File::create", "fs::write(", "set_len("];

#[test]
fn the_index_writes_only_through_atomic_write() {
    let mut problems = Vec::new();
    for file in sources() {
        let rel = file.to_string_lossy().replace('\\', "/");
        let index = ["semantic-index/src", "shm-reader/src", "index-publisher/src"];
        if !index.iter().any(|d| rel.starts_with(d)) {
            continue;
        }
        let allowed = IN_PLACE_WRITES.iter().any(|(f, _)| *f == rel);
        let found: Vec<usize> = shipped(&read(&file))
            .filter(|(_, l)| WRITES.iter().any(|w| l.contains(w)))
            .map(|(n, _)| n + 1)
            .collect();
        if !found.is_empty() && (!allowed || found.len() > 1) {
            problems.push(format!("{rel}: writes a file directly at lines {found:?}"));
        }
    }
    report("writes outside atomic-write (IN_PLACE_WRITES lists the exceptions)", problems);
}
