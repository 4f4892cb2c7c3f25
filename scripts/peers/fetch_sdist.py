#!/usr/bin/env python3
"""Download one sdist from PyPI's JSON API and check its sha256.

The peer comparison builds llama.cpp from the source that the PyPI package
`llama-cpp-python` vendors, so the only network it needs is the registry.
`pip download --no-binary` would also run the package's build backend just
to read metadata (minutes, and a second copy of cmake); the JSON API hands
out the file and its digest directly.
"""
import hashlib
import json
import sys
import urllib.parse
import urllib.request


def main() -> int:
    if len(sys.argv) != 4:
        print("usage: fetch_sdist.py PACKAGE VERSION OUT_FILE", file=sys.stderr)
        return 2
    package, version, out = sys.argv[1:]
    # The per-package document (not /<version>/json): every index mirror
    # serves it.
    api = f"https://pypi.org/pypi/{package}/json"
    with urllib.request.urlopen(api, timeout=60) as r:
        meta = json.load(r)
    files = meta["releases"].get(version, [])
    sdists = [f for f in files if f["packagetype"] == "sdist"]
    if not sdists:
        print(f"{package} {version}: no sdist on PyPI", file=sys.stderr)
        return 1
    f = sdists[0]
    # The index may answer with a URL relative to the API address.
    url = urllib.parse.urljoin(api, f["url"])
    digest = hashlib.sha256()
    with urllib.request.urlopen(url, timeout=600) as r, open(out, "wb") as w:
        while chunk := r.read(1 << 20):
            digest.update(chunk)
            w.write(chunk)
    if digest.hexdigest() != f["digests"]["sha256"]:
        print(f"{url}: sha256 mismatch", file=sys.stderr)
        return 1
    print(f"{f['filename']} sha256 {digest.hexdigest()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
