#!/usr/bin/env python3
"""Checks that a crate's imports point down (DESIGN.md "Layers").

usage: check-layers.py CRATE_SRC_DIR

Reads CRATE_SRC_DIR/layers.txt: one layer a line, bottom first, the crate's
top-level module names on it separated by spaces ('#' starts a comment).
Every `crate::…` and `super::…` path in a source file (its `#[cfg(test)]`
module and *_tests.rs / tests/ files excepted: tests may reach anywhere) is
resolved to the file that defines it. It fails (exit 1) when
- a file imports a top-level module on a higher layer than its own,
- two or more files import each other, directly or round a circle,
- a top-level module is missing from layers.txt.
It prints each finding, then one summary line; exit 0 when clean.
Plain Python, no dependencies, so CI runs it in well under a second.
"""
import os
import re
import sys


def module_files(src):
    """Maps a module path ('a::b') to its file, for every .rs under src."""
    files = {}
    for root, _, names in os.walk(src):
        for n in names:
            if not n.endswith(".rs"):
                continue
            rel = os.path.relpath(os.path.join(root, n), src)
            parts = rel[:-3].split(os.sep)
            if parts[-1] == "mod":
                parts = parts[:-1]
            if parts in (["lib"], ["main"]):
                parts = []
            files["::".join(parts)] = os.path.join(src, rel)
    return files


def is_test_file(path):
    parts = path.split(os.sep)
    return path.endswith("_tests.rs") or "tests" in parts[:-1] or parts[-1] == "tests.rs"


def strip_tests(text):
    # A trailing `#[cfg(test)] mod tests { … }` block (the convention here).
    return re.sub(r"#\[cfg\(test\)\]\s*(pub(\(\w+\))?\s+)?mod \w+\s*\{.*", "", text, flags=re.S)


def strip_comments(text):
    text = re.sub(r"//[^\n]*", "", text)
    return re.sub(r"/\*.*?\*/", "", text, flags=re.S)


PATH = re.compile(r"\b(crate|super)((?:::[A-Za-z_][A-Za-z0-9_]*)+)")
GROUP = re.compile(r"\b(crate|super)((?:::[A-Za-z_][A-Za-z0-9_]*)*)::\{([^{}]*)\}")


def referenced_paths(text):
    """Every crate-relative path named in text, grouped `use a::{b, c::d}`
    expanded one level (nested groups are rare here and their first
    segment is enough to find the file)."""
    out = []
    for root, prefix, body in GROUP.findall(text):
        for item in body.split(","):
            item = item.strip().split(" as ")[0].strip()
            if not item or item == "self":
                out.append((root, prefix))
            else:
                name = re.match(r"[A-Za-z_][A-Za-z0-9_:]*", item)
                if name:
                    out.append((root, prefix + "::" + name.group(0).rstrip(":")))
    text = GROUP.sub("", text)
    out.extend(PATH.findall(text))
    return out


USE = re.compile(r"\buse\s+([a-z_][a-z0-9_]*)::")


def child_uses(mod, text, files):
    """`use child::…` and `use self::child::…` of a module's own children,
    returned as crate paths."""
    out = []
    for name in USE.findall(text.replace("self::", "")):
        key = f"{mod}::{name}" if mod else name
        if key in files and name not in ("crate", "super", "std", "core", "alloc"):
            out.append(("crate", "::" + key))
    return out


def resolve(mod, root, path, files):
    """The module (a key of files) that `root path` names from module mod."""
    segs = [s for s in path.split("::") if s]
    if root == "super":
        base = mod.split("::")[:-1] if mod else []
        # Chained super::super:: …
        while segs and segs[0] == "super":
            base = base[:-1]
            segs = segs[1:]
    else:
        base = []
    full = base + segs
    for i in range(len(full), -1, -1):
        key = "::".join(full[:i])
        if key in files:
            return key
    return None


def main():
    if len(sys.argv) != 2:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    src = sys.argv[1].rstrip("/")
    layers_path = os.path.join(src, "layers.txt")
    try:
        layer_lines = open(layers_path, encoding="utf-8").read().splitlines()
    except OSError as e:
        print(f"{layers_path}: cannot read the layer list ({e.strerror}); write one layer a line, bottom first", file=sys.stderr)
        return 2
    rank = {}
    for i, line in enumerate(l.split("#")[0].split() for l in layer_lines):
        for name in line:
            rank[name] = i
    # Each non-empty line is one layer; renumber so blank lines don't count.
    order = sorted(set(rank.values()))
    rank = {k: order.index(v) for k, v in rank.items()}

    files = module_files(src)
    findings = []
    tops = sorted({m.split("::")[0] for m in files if m})
    for t in tops:
        if t not in rank:
            findings.append(f"{t}: top-level module missing from {layers_path}")

    edges = {m: set() for m in files}
    for mod, path in sorted(files.items()):
        if is_test_file(os.path.relpath(path, src)):
            continue
        text = strip_tests(strip_comments(open(path, encoding="utf-8", errors="replace").read()))
        # `a/b.rs` and `a/b/mod.rs` both define `a::b`: `super::` is `a`,
        # `self::` and a bare child name in a `use` are `a::b::…`.
        for root, p in referenced_paths(text) + child_uses(mod, text, files):
            target = resolve(mod, root, p, files)
            if target is None or target == mod:
                continue
            # A parent module declaring and re-exporting its children is not
            # an import between layers.
            if mod and target.startswith(mod + "::"):
                continue
            if not mod:
                continue
            edges[mod].add(target)
            a, b = mod.split("::")[0], target.split("::")[0]
            if a != b and a in rank and b in rank and rank[b] > rank[a]:
                findings.append(f"{path}: imports `{target}` (layer {rank[b]}) from `{a}` (layer {rank[a]}): an import pointing up")

    # Circles between files: strongly connected components of the file
    # graph (Tarjan), children reaching their own parent module excluded.
    index, low, stack, on, comps, counter = {}, {}, [], set(), [], [0]
    sys.setrecursionlimit(100000)

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in edges.get(v, ()):
            if v.startswith(w + "::"):
                continue  # a child using its parent's items: one concern
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                comps.append(sorted(comp))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    for c in comps:
        findings.append("import circle: " + " → ".join(c))

    findings = list(dict.fromkeys(findings))
    for f in findings:
        print(f)
    up = sum("pointing up" in f for f in findings)
    print(f"{src}: {len(files)} files, {len(comps)} import circles, {up} imports pointing up, {len(findings)} findings")
    return 1 if findings else 0


if __name__ == "__main__":
    sys.exit(main())
