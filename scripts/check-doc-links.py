#!/usr/bin/env python3
"""Fails when a relative Markdown link in README.md or docs/ points to a file that is not in
the repository. Inline links `[text](target)` (the text may span lines) and reference
definitions `[label]: target` count; external links (a scheme such as https: or mailto:) and
pure `#anchors` are skipped; fenced code blocks and inline code spans are not links.

File paths written as code (`crates/shop/src/run.rs`, `../x/y.md`: a code span holding a path
with a directory and a file extension) must exist too: relative to the document, the
repository root, or a crate (`crates/*/` or `crates/*/src/`), so module paths such as
`layer/mod.rs` resolve. Globs and `{a,b}` lists are skipped.
Usage: scripts/check-doc-links.py [FILE...]  (default: README.md and docs/**/*.md)."""

import pathlib
import re
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
INLINE = re.compile(r"\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
REFERENCE = re.compile(r"^\s{0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s.*)?$", re.MULTILINE)
SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")


def prose(text: str) -> str:
    """The text without fenced code blocks and inline code spans (kept line for line)."""
    out, fenced = [], False
    for line in text.split("\n"):
        if line.lstrip().startswith(("```", "~~~")):
            fenced = not fenced
            out.append("")
            continue
        out.append("" if fenced else re.sub(r"`+[^`]*`+", "", line))
    return "\n".join(out)


def broken_links(path: pathlib.Path):
    text = prose(path.read_text(encoding="utf-8"))
    for pattern in (INLINE, REFERENCE):
        for match in pattern.finditer(text):
            target = match.group(1)
            if SCHEME.match(target) or target.startswith("#"):
                continue
            file_part = target.split("#", 1)[0].split("?", 1)[0]
            if not file_part:
                continue
            resolved = (ROOT / file_part.lstrip("/")) if file_part.startswith("/") else (path.parent / file_part)
            if not resolved.exists():
                line = text.count("\n", 0, match.start()) + 1
                yield line, target


CODE_PATH = re.compile(r"`([A-Za-z0-9_./-]*/[A-Za-z0-9_.-]+\.(?:md|rs|toml|sh|ya?ml|sql|py|json))`")


def broken_code_paths(path: pathlib.Path):
    text = path.read_text(encoding="utf-8")
    bases = [path.parent, ROOT]
    for crate in sorted((ROOT / "crates").glob("*")):
        bases += [crate, crate / "src"]
    for match in CODE_PATH.finditer(text):
        target = match.group(1)
        if "*" in target or target.startswith("/"):  # a glob, or a URL path such as /openapi.json
            continue
        if not any((base / target).exists() for base in bases):
            yield text.count("\n", 0, match.start()) + 1, target


def main(argv):
    files = [pathlib.Path(a).resolve() for a in argv] or [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
    failures = 0
    for path in files:
        for line, target in broken_links(path):
            print(f"{path.relative_to(ROOT)}:{line}: link to a missing file: {target}")
            failures += 1
        for line, target in broken_code_paths(path):
            print(f"{path.relative_to(ROOT)}:{line}: names a file not in the repository: {target}")
            failures += 1
    if failures:
        print(f"{failures} broken relative link(s) in the docs", file=sys.stderr)
        return 1
    print(f"doc links: {len(files)} files checked, every relative link and file path resolves")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
