"""Check that a built book renders right: run on book/_build/html after `make book`.

    python book/check_render.py [book/_build/html]

Parses every built page and reports, naming the page and the offending text:

- **markdown-table**: raw Markdown table syntax (a `|---|---|` separator row) in a cell's
  output or in the prose, i.e. a table that reached the reader as pipes (myst-nb shows a
  Markdown *output* as CommonMark, without tables: use `cooc_minimal.show.show_table`);
- **raw-math**: a `$`, `\\(`, `\\[` or `\\begin{` outside a math element (prose or a rendered
  output), or LaTeX between dollars in printed text: math the reader sees as source;
- **external**: a script, stylesheet, font, image or frame loaded from outside the book
  folder (`http(s)://` or `//`), in a page or in a stylesheet it loads; and a local script
  or stylesheet that the build does not contain (MathJax missing, say);
- **bad-tex**: math MathJax would show as an error: braces that do not balance, or, in inline
  math, a doubled backslash before a command (``p\\top``: a line break, then "top"), what
  an escaped backslash in a Markdown string written from Python leaves;
- **error**: an error, traceback or warning in an output;
- **object-repr**: a default Python repr such as `<torch._C.Generator at 0x7f...>`, or
  `<Figure size 640x480 with 1 Axes>`, a figure that was printed instead of drawn.

Code (cell inputs, code blocks, inline code) is not checked for `$` or tables: it is shown
as code. sphinx-thebe writes its loader's address into an inline script constant; it is
fetched only when a reader presses a "Live Code" button, which this book does not have, so
inline script text is not a load and is not checked.

Prints one line per problem, then ``render: P passed, F failed`` (pages). Exit status 0
when every page is clean, 1 otherwise, 2 when there is no built book.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from bs4 import BeautifulSoup, Tag
from bs4.element import NavigableString

#: a cell of a Markdown table's separator row: |---|, | :---: |, or |—| once Sphinx's
#: smartquotes has turned the three hyphens into an em dash
TABLE_SEPARATOR = re.compile(r"\|[ \t]*:?(?:-{3,}|[\u2014\u2013][-\u2014\u2013]*):?[ \t]*\|")
#: math delimiters that should have been typeset
RAW_MATH = re.compile(r"\$|\\\(|\\\[|\\begin\{")
#: in inline math, a line break (two backslashes) glued to a command or a comma
DOUBLED_BACKSLASH = re.compile(r"\\\\[A-Za-z,]")
#: LaTeX between dollars in printed (preformatted) output: $...\cmd...$, $x^2$, $$
PRINTED_LATEX = re.compile(r"\$\$|\$[^$\n]*[\\^_{}][^$\n]*\$")
ERROR_TEXT = re.compile(
    r"Traceback \(most recent call last\)"
    r"|^\s*[A-Za-z_][\w.]*(Error|Exception): "
    r"|^\S+:\d+: \w*Warning: ", re.M)
OBJECT_REPR = re.compile(r"<[A-Za-z_][\w.]*( object)? at 0x[0-9a-fA-F]+>"
                         r"|<Figure size \d+x\d+ with \d+ Axes>")
EXTERNAL = re.compile(r"^([a-zA-Z][a-zA-Z0-9+.-]*:)?//")
CSS_URL = re.compile(r"""@import\s+(?:url\()?\s*['"]?([^'")\s;]+)|url\(\s*['"]?([^'")]+)""")
#: elements whose text is code or math, never prose
CODE_OR_MATH = ("pre", "code", "script", "style", "kbd", "samp")
LOADING_RELS = {"stylesheet", "preload", "modulepreload", "icon", "prefetch", "manifest"}


@dataclass(frozen=True)
class Problem:
    page: str
    kind: str
    text: str

    def __str__(self) -> str:
        return f"{self.page}: {self.kind}: {self.text}"


def _snippet(text: str, start: int = 0, width: int = 90) -> str:
    begin = max(0, start - width // 3)
    piece = " ".join(text[begin:begin + width].split())
    return repr(piece)


def _found(rel: str, kind: str, what: str, text: str, match: re.Match) -> Problem:
    """A problem of `kind` on page `rel`: `what`, then the text around the match."""
    return Problem(rel, kind, f"{what}: {_snippet(text, match.start())}")


def _search(rel: str, kind: str, what: str, pattern: re.Pattern, text: str) -> list[Problem]:
    """The first match of `pattern` in `text` as a problem, or none."""
    match = pattern.search(text)
    return [_found(rel, kind, what, text, match)] if match else []


def _is_math(tag: Tag) -> bool:
    return "math" in (tag.get("class") or [])


def _inside(node, predicate) -> bool:
    parent = node.parent
    while parent is not None and isinstance(parent, Tag):
        if predicate(parent):
            return True
        parent = parent.parent
    return False


def _is_code_or_math(tag: Tag) -> bool:
    classes = tag.get("class") or []
    return (tag.name in CODE_OR_MATH or _is_math(tag) or "cell_input" in classes
            or "highlight" in classes or tag.name in ("head", "title"))


def _prose_strings(body: Tag) -> Iterator[NavigableString]:
    """Text nodes a reader sees as prose: not code, not math, not a cell's input."""
    for node in body.find_all(string=True):
        if (isinstance(node, NavigableString) and node.strip()
                and not _inside(node, _is_code_or_math)):
            yield node


def _output_blocks(body: Tag) -> Iterator[Tag]:
    yield from body.select("div.cell_output")


def _local_target(page: Path, root: Path, url: str) -> Path | None:
    path = urlsplit(url).path
    if not path:
        return None
    return (page.parent / path).resolve() if not path.startswith("/") else root / path.lstrip("/")


def _check_css(css: Path, root: Path, rel: str, seen: set[Path]) -> Iterator[Problem]:
    if css in seen or not css.exists():
        return
    seen.add(css)
    for match in CSS_URL.finditer(css.read_text(errors="replace")):
        url = (match.group(1) or match.group(2)).strip()
        if url.startswith("data:"):
            continue
        if EXTERNAL.match(url):
            yield Problem(rel, "external", f"stylesheet {css.relative_to(root)} loads {url}")
        elif match.group(1):  # a local @import: follow it
            target = _local_target(css, root, url)
            if target is not None:
                yield from _check_css(target, root, rel, seen)


def check_page(page: Path, root: Path, seen_css: set[Path] | None = None) -> list[Problem]:
    """Every problem on one built page (see the module docstring)."""
    rel = str(page.relative_to(root))
    soup = BeautifulSoup(page.read_text(errors="replace"), "html.parser")
    problems: list[Problem] = []
    seen_css = set() if seen_css is None else seen_css

    # -- external or missing resources
    loads = [(tag, "src") for tag in soup.find_all(["script", "img", "iframe", "embed", "source",
                                                    "audio", "video", "track"], src=True)]
    loads += [(tag, "data") for tag in soup.find_all("object", data=True)]
    loads += [(tag, "href") for tag in soup.find_all("link", href=True)
              if LOADING_RELS & set(tag.get("rel") or [])]
    for tag, attribute in loads:
        url = tag[attribute].strip()
        if url.startswith("data:"):
            continue
        if EXTERNAL.match(url):
            problems.append(Problem(rel, "external", f"<{tag.name} {attribute}={url!r}>"))
            continue
        target = _local_target(page, root, url)
        if tag.name in ("script", "link") and target is not None and not target.exists():
            problems.append(Problem(rel, "external", f"<{tag.name}> loads {url!r}, which the "
                                                     f"built book does not contain"))
        elif tag.name == "link" and target is not None and target.suffix == ".css":
            problems += _check_css(target, root, rel, seen_css)
    styles = [t.get_text() for t in soup.find_all("style")]
    styles += [t["style"] for t in soup.find_all(style=True)]
    for css in styles:
        for match in CSS_URL.finditer(css):
            url = (match.group(1) or match.group(2)).strip()
            if EXTERNAL.match(url):
                problems.append(Problem(rel, "external", f"inline style loads {url}"))

    body = soup.body or soup
    # -- prose: tables and math that were not rendered
    for node in _prose_strings(body):
        text = str(node)
        in_output = _inside(node, lambda t: "cell_output" in (t.get("class") or []))
        where = "an output" if in_output else "the text"
        found = RAW_MATH.search(text)
        if found:
            problems.append(_found(rel, "raw-math", f"{found.group()!r} in {where}", text, found))
        problems += _search(rel, "markdown-table", f"raw Markdown table in {where}",
                            TABLE_SEPARATOR, text)
    problems += _math_problems(rel, body)
    # -- outputs: printed tables, LaTeX, errors, object reprs
    for block in _output_blocks(body):
        classes = {c for tag in [block, *block.find_all(True)] for c in (tag.get("class") or [])}
        text = block.get_text()
        printed = "\n".join(p.get_text() for p in block.find_all("pre"))
        if classes & {"traceback", "error"}:
            problems.append(Problem(rel, "error", f"an error output: {_snippet(text)}"))
        else:
            problems += _search(rel, "error", "in an output", ERROR_TEXT, text)
        problems += _search(rel, "markdown-table", "raw Markdown table in an output",
                            TABLE_SEPARATOR, printed)
        problems += _search(rel, "raw-math", "LaTeX printed as text in an output",
                            PRINTED_LATEX, printed)
        found = OBJECT_REPR.search(text)
        if found:
            problems.append(Problem(rel, "object-repr", f"{found.group()!r} in an output: end "
                                                        f"the cell with ';', assign the value, "
                                                        f"or draw a figure with show_figure"))
    # one report per (kind, text)
    return list(dict.fromkeys(problems))


def _tex_fault(source: str, inline: bool) -> str | None:
    """Why MathJax would fail on ``source`` (the TeX of one math element), or None."""
    depth = 0
    for match in re.finditer(r"\\.|[{}]", source):
        token = match.group()
        if token in "{}":
            depth += 1 if token == "{" else -1
            if depth < 0:
                return "a '}' closes a brace that was never opened"
    if depth:
        return f"{depth} brace(s) opened and never closed"
    if inline and DOUBLED_BACKSLASH.search(source):
        return "a doubled backslash before a command (a line break in inline math)"
    return None


def _math_problems(rel: str, body: Tag) -> list[Problem]:
    problems = []
    for tag in body.find_all(_is_math):
        source = tag.get_text()
        why = _tex_fault(source, inline=tag.name == "span")
        if why:
            problems.append(Problem(rel, "bad-tex", f"{why} in math: {_snippet(source)}"))
    return problems


def pages(root: Path) -> list[Path]:
    skip = {"_static", "_sources", "_images", "reports"}
    return sorted(p for p in root.rglob("*.html")
                  if not skip & set(p.relative_to(root).parts[:-1])
                  and p.name not in ("genindex.html", "search.html"))


def check_book(root: Path) -> list[Problem]:
    """Every problem on every page of the built book at `root` (book/_build/html)."""
    root = Path(root).resolve()
    if not (root / "index.html").exists():
        raise FileNotFoundError(f"{root} has no index.html: build the book first (make book).")
    seen_css: set[Path] = set()
    return [p for page in pages(root) for p in check_page(page, root, seen_css)]


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    root = Path(args[0] if args else Path(__file__).resolve().parent / "_build" / "html")
    try:
        problems = check_book(root)
    except FileNotFoundError as error:
        print(error, file=sys.stderr)
        return 2
    for problem in problems:
        print(problem)
    n_pages = len(pages(root.resolve()))
    bad_pages = len({problem.page for problem in problems})
    print(f"render check: {n_pages} pages, {len(problems)} problem(s)")
    # the closing line CI reads, one result per page
    print(f"render: {n_pages - bad_pages} passed, {bad_pages} failed")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
