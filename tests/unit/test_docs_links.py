"""Every relative link and ``#anchor`` in README.md and docs/*.md leads somewhere.

Anchors follow GitHub's rules for headings: the heading's text as rendered (code spans
and links reduced to their text), lower-cased, punctuation dropped, spaces turned into
hyphens, and a repeated slug suffixed ``-1``, ``-2``... in order.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
PAGES = [ROOT / "README.md", *sorted(DOCS.glob("*.md"))]

_FENCE = re.compile(r"^\s{0,3}(`{3,}|~{3,})")
_HEADING = re.compile(r"^\s{0,3}(#{1,6})\s+(.*?)\s*#*\s*$")
_LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
_REFERENCE = re.compile(r"^\s{0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s+\"[^\"]*\")?\s*$")
_HTML_ID = re.compile(r"<a\s[^>]*(?:name|id)=\"([^\"]+)\"")
_CODE_SPAN = re.compile(r"(`+)(.+?)\1")


def prose(text: str) -> Iterator[str]:
    """The lines of a Markdown text outside fenced code blocks."""
    fence: str | None = None
    for line in text.splitlines():
        m = _FENCE.match(line)
        if m and fence is None:
            fence = m.group(1)
            continue
        if m and fence is not None and m.group(1)[0] == fence[0] and len(m.group(1)) >= len(fence):
            fence = None
            continue
        if fence is None:
            yield line


def slug(heading: str) -> str:
    """GitHub's anchor for a heading's text (without the de-duplicating suffix)."""
    text = _CODE_SPAN.sub(lambda m: m.group(2), heading)
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", text)  # a link: its text
    text = re.sub(r"<[^>]+>", "", text)  # inline HTML
    text = re.sub(r"(\*\*|__|\*)(.+?)\1", r"\2", text)  # emphasis
    return re.sub(r"[^\w\- ]", "", text.strip().lower()).replace(" ", "-")


def anchors(text: str) -> set[str]:
    """Every anchor a page has: its headings' slugs, de-duplicated, and HTML ids."""
    seen: dict[str, int] = {}
    found: set[str] = set()
    for line in prose(text):
        found.update(_HTML_ID.findall(line))
        m = _HEADING.match(line)
        if not m:
            continue
        base = slug(m.group(2))
        n = seen.get(base, 0)
        seen[base] = n + 1
        found.add(base if n == 0 else f"{base}-{n}")
    return found


def links(text: str) -> Iterator[str]:
    """Every link target of a page, outside code blocks and code spans."""
    for line in prose(text):
        m = _REFERENCE.match(line)
        if m:
            yield m.group(1)
            continue
        yield from _LINK.findall(_CODE_SPAN.sub("", line))


def broken(page: Path) -> list[str]:
    """The links of ``page`` that lead to no file, or to no heading of their file."""
    bad = []
    for target in links(page.read_text(encoding="utf-8")):
        if re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*:", target):  # http:, https:, mailto:
            continue
        path, _, anchor = target.partition("#")
        dest = (page.parent / path).resolve() if path else page
        if not dest.exists():
            bad.append(f"{target}: no such file")
        elif anchor and dest.suffix == ".md" and anchor not in anchors(
                dest.read_text(encoding="utf-8")):
            bad.append(f"{target}: no such heading")
    return bad


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_link_resolves(page: Path) -> None:
    assert broken(page) == []


def test_every_docs_page_is_one_hop_from_the_readme_and_the_index() -> None:
    readme = set(links((ROOT / "README.md").read_text(encoding="utf-8")))
    index = set(links((DOCS / "README.md").read_text(encoding="utf-8")))
    for page in DOCS.glob("*.md"):
        if page.name != "README.md":
            assert f"docs/{page.name}" in readme, page.name
            assert page.name in index, page.name


def test_the_front_page_stays_short() -> None:
    lines = (ROOT / "README.md").read_text(encoding="utf-8").count("\n")
    assert lines < 400, "the README is a front page: move chapters into docs/"


@pytest.mark.parametrize(("heading", "anchor"), [
    ("Interactive: the WebSocket `/api/v2/connect`", "interactive-the-websocket-apiv2connect"),
    ("Chaos: faults under load, and what clients saw",
     "chaos-faults-under-load-and-what-clients-saw"),
    ("How fast is it", "how-fast-is-it"),
    ("Judge0-compatible API", "judge0-compatible-api"),
    ("The **bold** and [a link](x.md) in_name", "the-bold-and-a-link-in_name"),
])
def test_anchors_follow_githubs_rules(heading: str, anchor: str) -> None:
    assert slug(heading) == anchor


def test_a_repeated_heading_gets_a_numbered_anchor() -> None:
    text = "# Notes\n\n```sh\n# Notes\n```\n\n## Notes\n\n### Notes\n"
    assert anchors(text) == {"notes", "notes-1", "notes-2"}


def test_a_broken_link_is_found(tmp_path: Path) -> None:
    (tmp_path / "b.md").write_text("# Here\n", encoding="utf-8")
    page = tmp_path / "a.md"
    page.write_text("# Top\n[ok](b.md#here) [ok](#top) [web](https://x.org/#y)\n"
                    "[gone](c.md) [wrong](b.md#there) `[code](nowhere.md)`\n"
                    "```\n[fenced](nowhere.md)\n```\n", encoding="utf-8")
    assert broken(page) == ["c.md: no such file", "b.md#there: no such heading"]
