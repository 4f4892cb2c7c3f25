//! Keeps the README and docs/ true to the repository: the README stays short,
//! every relative link resolves, no path points outside the repository, the
//! set-up commands are the ones CI runs, and the example is what the binary
//! prints for the committed run it cites.

mod common;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

const README_MAX_BYTES: u64 = 20 * 1024;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("harness/ has a parent")
        .to_path_buf()
}

fn read(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// Files under `dir` whose name ends with one of `exts`, skipping build
/// output and git's own folder.
fn files(dir: &Path, exts: &[&str], out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let p = e.unwrap().path();
        let name = p.file_name().unwrap().to_string_lossy().into_owned();
        if p.is_dir() {
            if name != "target" && name != ".git" {
                files(&p, exts, out);
            }
        } else if exts.iter().any(|x| name.ends_with(x)) {
            out.push(p);
        }
    }
}

/// The Markdown pages whose links must resolve: the README, every page
/// under docs/ and the results READMEs.
fn pages() -> Vec<PathBuf> {
    let r = root();
    let mut v = vec![r.join("README.md")];
    files(&r.join("docs"), &[".md"], &mut v);
    files(&r.join("results"), &["README.md"], &mut v);
    v
}

/// Lines outside fenced code blocks: links in code are examples, not links.
fn prose(text: &str) -> Vec<&str> {
    let mut fenced = false;
    text.lines()
        .filter(|l| {
            if l.trim_start().starts_with("```") {
                fenced = !fenced;
                return false;
            }
            !fenced
        })
        .collect()
}

/// Link targets of `[text](target)` and `![alt](target)`.
fn links(text: &str) -> Vec<String> {
    let mut v = vec![];
    for line in prose(text) {
        let mut rest = line;
        while let Some(i) = rest.find("](") {
            let after = &rest[i + 2..];
            let Some(j) = after.find(')') else { break };
            v.push(after[..j].trim().to_string());
            rest = &after[j..];
        }
    }
    v
}

/// GitHub's anchor for a heading: lower case, punctuation other than `-` and
/// `_` dropped, spaces to hyphens; repeats get `-1`, `-2`, ….
fn anchors(text: &str) -> Vec<String> {
    let mut seen: HashMap<String, usize> = HashMap::new();
    let mut v = vec![];
    for line in prose(text) {
        let t = line.trim_start();
        if !t.starts_with('#') {
            continue;
        }
        let title = t.trim_start_matches('#');
        if !title.starts_with(' ') {
            continue;
        }
        let slug: String = title
            .trim()
            .to_lowercase()
            .chars()
            .filter(|c| c.is_alphanumeric() || *c == ' ' || *c == '-' || *c == '_')
            .map(|c| if c == ' ' { '-' } else { c })
            .collect();
        let n = seen.entry(slug.clone()).or_insert(0);
        v.push(if *n == 0 {
            slug.clone()
        } else {
            format!("{slug}-{n}")
        });
        *n += 1;
    }
    v
}

#[test]
fn readme_is_short() {
    let p = root().join("README.md");
    let n = std::fs::metadata(&p).unwrap().len();
    assert!(
        n <= README_MAX_BYTES,
        "README.md is {n} bytes, over {README_MAX_BYTES}: move detail to a docs/ page and link it"
    );
}

#[test]
fn every_relative_link_resolves() {
    let mut broken = vec![];
    for page in pages() {
        let text = read(&page);
        let dir = page.parent().unwrap();
        for link in links(&text) {
            if link.contains("://") || link.starts_with("mailto:") {
                continue;
            }
            let (path, anchor) = match link.split_once('#') {
                Some((p, a)) => (p, Some(a)),
                None => (link.as_str(), None),
            };
            let target = if path.is_empty() {
                page.clone()
            } else {
                dir.join(path)
            };
            let rel = page.strip_prefix(root()).unwrap().display().to_string();
            if !target.exists() {
                broken.push(format!("{rel}: ({link}) — no such file"));
                continue;
            }
            if let Some(a) = anchor
                && target.extension().is_some_and(|e| e == "md")
                && !anchors(&read(&target)).iter().any(|h| h == a)
            {
                broken.push(format!("{rel}: ({link}) — no heading with that anchor"));
            }
        }
    }
    assert!(broken.is_empty(), "broken links:\n{}", broken.join("\n"));
}

#[test]
fn every_docs_page_is_reachable_from_the_readme() {
    let r = root();
    let readme = read(&r.join("README.md"));
    let linked: Vec<String> = links(&readme)
        .into_iter()
        .map(|l| l.split('#').next().unwrap().to_string())
        .collect();
    // A top-level page must be linked from the README; notes/ and reference/
    // pages from some docs page.
    let mut all = vec![];
    files(&r.join("docs"), &[".md"], &mut all);
    let docs_text: String = all.iter().map(|p| read(p)).collect();
    let docs_links = links(&docs_text);
    let mut orphans = vec![];
    for p in &all {
        let rel = p.strip_prefix(&r).unwrap().display().to_string();
        let name = p.file_name().unwrap().to_string_lossy().into_owned();
        let top = p.parent().unwrap() == r.join("docs");
        let ok = if top {
            linked.contains(&rel)
        } else {
            docs_links.iter().any(|l| l.ends_with(&name))
        };
        if !ok {
            orphans.push(rel);
        }
    }
    assert!(orphans.is_empty(), "pages nothing links to: {orphans:?}");
}

#[test]
fn no_path_outside_the_repository() {
    // Built at run time so this file does not match itself.
    let needles = [format!("../{}/", "shared"), format!("/work/{}", "shared")];
    let mut all = vec![];
    files(&root(), &[".md", ".rs", ".toml", ".sh"], &mut all);
    let mut hits = vec![];
    for p in all {
        let text = read(&p);
        for (i, line) in text.lines().enumerate() {
            if needles.iter().any(|n| line.contains(n.as_str())) {
                let rel = p.strip_prefix(root()).unwrap().display().to_string();
                hits.push(format!("{rel}:{}: {line}", i + 1));
            }
        }
    }
    assert!(
        hits.is_empty(),
        "paths outside the repository (point to docs/ instead):\n{}",
        hits.join("\n")
    );
}

#[test]
fn setup_commands_are_the_ones_ci_runs() {
    let readme = read(&root().join("README.md"));
    for cmd in ["cargo run --release -- run", "cargo test --workspace"] {
        assert!(
            readme.contains(cmd),
            "README.md lost its set-up command `{cmd}`"
        );
    }
    let ci = read(&root().join(".ci/run"));
    assert!(
        ci.lines().any(|l| l.trim() == "cargo test --workspace"),
        ".ci/run no longer runs the README's test command"
    );
}

/// The README's example table is `capbench show` of the committed run it
/// cites, so its numbers cannot drift from the files.
#[test]
fn readme_example_is_what_show_prints() {
    let readme = read(&root().join("README.md"));
    let section = readme
        .split("\n## Example\n")
        .nth(1)
        .expect("README.md has an `## Example` section")
        .split("\n## ")
        .next()
        .unwrap();
    let start = section
        .find("results/published/")
        .expect("the example cites a folder under results/published/");
    let folder: String = section[start..]
        .chars()
        .take_while(|c| !matches!(c, '`' | ')' | ' ' | '\n'))
        .collect();
    let block = section
        .split("\n```\n")
        .nth(1)
        .expect("the example has a fenced block with the table");
    let out = common::run_ok(&["show", &root().join(&folder).display().to_string()]);
    let shown = String::from_utf8(out.stdout).unwrap();
    assert_eq!(
        block.trim_end(),
        shown.trim_end(),
        "README.md's example differs from `capbench show {folder}`: paste the new output"
    );
}
