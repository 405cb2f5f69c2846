"""book/check_render.py fails, naming page and text, on each rendering fault; passes clean pages.

Two levels: hand-written pages shaped like myst-nb's HTML (one per fault, fast), and one
throw-away book built with the course's real _config.yml and executed, where each fault is
produced the way a chapter would produce it.
"""

import importlib.util
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
import yaml
from bs4 import BeautifulSoup

REPO = Path(__file__).resolve().parent.parent
JUPYTER_BOOK = str(Path(sys.executable).parent / "jupyter-book")

_spec = importlib.util.spec_from_file_location("check_render", REPO / "book" / "check_render.py")
check_render = importlib.util.module_from_spec(_spec)
sys.modules["check_render"] = check_render  # dataclasses look their module up by name
_spec.loader.exec_module(check_render)


# ------------------------------------------------------------------ hand-written pages

HEAD = '<head><title>t</title><script src="../_static/local.js"></script></head>'


def output(inner: str) -> str:
    return f'<div class="cell_output docutils container">{inner}</div>'


def code_input(text: str) -> str:
    return (f'<div class="cell_input docutils container"><div class="highlight"><pre>{text}'
            f'</pre></div></div>')


CLEAN = "".join([
    '<p>Inline <span class="math notranslate nohighlight">\\(x^2\\)</span> and</p>',
    '<div class="math notranslate nohighlight">\\[\\sum_i a_i\\]</div>',
    '<div class="math notranslate nohighlight">\\[\\begin{aligned} a &amp;= b \\\\ c '
    '&amp;= \\{d\\}\\end{aligned}\\]</div>',  # a line break in display math is fine
    code_input('print("costs $5", "|---|---|", r"\\(x\\)")'),
    "<p>Use <code>$HOME</code> and run:</p><div class=\"highlight\"><pre>echo $PATH</pre></div>",
    output('<div class="output stream"><pre>price in $ today: 3</pre></div>'),
    output('<table><tr><th>N</th></tr><tr><td>8</td></tr></table>'),
    output('<div class="output text_latex math notranslate nohighlight">\\[a = b\\]</div>'),
])

FAULTS = {
    "markdown-table": output("<p>| N | d |\n|—|—|\n| 8 | 2 |</p>"),
    "markdown-table-printed": output('<div class="output stream"><pre>| a | b |\n|---|---|\n'
                                     '| 1 | 2 |</pre></div>'),
    "raw-math-text": "<p>What holds is $eq. (3) = 2w$ here.</p>",
    "raw-math-paren": "<li><p>the value \\(x\\) is</p></li>",
    "raw-math-output": output("<p>step B.7 (assuming $\\operatorname{tr}(Z) = N$)</p>"),
    "raw-math-printed": output('<div class="output stream"><pre>loss = $\\lambda x$</pre></div>'),
    "external-script": '<script src="https://cdn.jsdelivr.net/npm/mathjax@3/es5/tex-chtml.js">'
                       "</script>",
    "external-style": '<link rel="stylesheet" href="//fonts.googleapis.com/css?family=Lato">',
    "external-font-inline": '<style>@font-face{src:url("https://example.org/f.woff2")}</style>',
    "external-css-import": '<link rel="stylesheet" href="../_static/imports.css">',
    "missing-local-script": '<script src="../_static/mathjax/tex-chtml.js"></script>',
    "error": output('<div class="output traceback"><pre>ValueError: bad</pre></div>'),
    "error-text": output('<div class="output stderr"><pre>Traceback (most recent call last):\n'
                         '  File "x", line 1</pre></div>'),
    "warning": output('<div class="output stderr"><pre>/x/y.py:3: UserWarning: careful</pre>'
                      "</div>"),
    "object-repr": output('<div class="output text_plain"><pre>&lt;torch._C.Generator at '
                          "0x7f84efa5eab0&gt;</pre></div>"),
    "object-repr-figure": output('<div class="output text_plain"><pre>&lt;Figure size 1100x460 '
                                 "with 1 Axes&gt;</pre></div>"),
    "bad-tex-doubled": '<p>so <span class="math notranslate nohighlight">\\(P = p\\\\,'
                       'p^\\\\top\\)</span>: none</p>',
    "bad-tex-brace": '<div class="math notranslate nohighlight">\\[\\frac{a}{b\\]</div>',
}
EXPECTED_KIND = {
    "markdown-table": "markdown-table", "markdown-table-printed": "markdown-table",
    "raw-math-text": "raw-math", "raw-math-paren": "raw-math", "raw-math-output": "raw-math",
    "raw-math-printed": "raw-math", "external-script": "external", "external-style": "external",
    "external-font-inline": "external", "external-css-import": "external",
    "missing-local-script": "external", "error": "error", "error-text": "error",
    "warning": "error", "object-repr": "object-repr", "object-repr-figure": "object-repr",
    "bad-tex-doubled": "bad-tex", "bad-tex-brace": "bad-tex",
}


def write_book(root: Path, bodies: dict[str, str]) -> Path:
    (root / "_static").mkdir(parents=True)
    (root / "_static" / "local.js").write_text("")
    (root / "_static" / "imports.css").write_text(
        '@import url("https://fonts.example.org/x.css");\nbody{background:url(data:image/png;'
        'base64,AAAA)}\n')
    (root / "index.html").write_text(
        f"<html>{HEAD.replace('../', '')}<body><p>home</p></body></html>")
    (root / "chapters").mkdir()
    for name, body in bodies.items():
        (root / "chapters" / f"{name}.html").write_text(f"<html>{HEAD}<body>{body}</body></html>")
    return root


def test_a_clean_page_passes(tmp_path):
    root = write_book(tmp_path / "html", {"clean": CLEAN})
    assert check_render.check_book(root) == []
    assert check_render.main([str(root)]) == 0


@pytest.mark.parametrize("fault", FAULTS)
def test_each_fault_fails_naming_page_and_text(tmp_path, fault, capsys):
    root = write_book(tmp_path / "html", {"clean": CLEAN, f"bad_{fault}": CLEAN + FAULTS[fault]})
    problems = check_render.check_book(root)
    assert problems, fault
    assert {p.page for p in problems} == {f"chapters/bad_{fault}.html"}
    assert {p.kind for p in problems} == {EXPECTED_KIND[fault]}
    assert check_render.main([str(root)]) == 1
    printed = capsys.readouterr().out
    assert f"chapters/bad_{fault}.html: {EXPECTED_KIND[fault]}: " in printed
    assert "1 problem(s)" in printed or "2 problem(s)" in printed
    assert printed.rstrip().endswith("render: 2 passed, 1 failed")


def test_the_report_quotes_the_offending_text(tmp_path):
    root = write_book(tmp_path / "html", {"p": FAULTS["raw-math-text"]})
    (problem,) = check_render.check_book(root)
    assert "What holds is $eq. (3) = 2w$" in problem.text


def test_an_unbuilt_book_is_one_sentence(tmp_path, capsys):
    assert check_render.main([str(tmp_path)]) == 2
    assert "build the book first" in capsys.readouterr().err


# ---------------------------------------------- a real book, built with the real config

def notebook(*cells) -> nbformat.NotebookNode:
    nb = nbformat.v4.new_notebook(cells=list(cells))
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                 "language": "python"}
    return nb


md, code = nbformat.v4.new_markdown_cell, nbformat.v4.new_code_cell

REAL_CLEAN = notebook(
    md("# Clean\n\nInline $x^2$ and display\n\n$$\\sum_i a_i$$\n\n- a list item\n\n"
       "  with a continuation line\n\n| a | b |\n|---|---|\n| 1 | 2 |\n"),
    code("from cooc_minimal.show import show_source, show_table\n"
         "show_table([{'N': 8, 'err': 1e-7}], caption='sizes')"),
    code("show_source(show_table)"),
    code("from IPython.display import Math, display\ndisplay(Math(r'\\lambda = w / 2'))\n"
         "print('costs $5 today')"),
    code("import random\nrandom.Random(0);"),
)
REAL_FAULTS = notebook(
    md("# Faults"),
    code("from IPython.display import HTML, Markdown, display\n"
         "display(Markdown('| N | d |\\n|---|---|\\n| 8 | 2 |'))"),
    code("display(Markdown('step B.7 (assuming $\\\\operatorname{tr}(Z) = N$)'))"),
    code("display(HTML('<script src=\"https://cdn.example.org/x.js\"></script>'))"),
    code("object()"),
    {**code("raise ValueError('shown on purpose')"), "metadata": {"tags": ["raises-exception"]}},
)
REAL_PROSE = ("# Prose\n\n- **Eqs. (4) and (6).** What holds is\n  $$\\text{eq. (3)} = 2w\\,"
              "\\text{eq. (6)} + C .$$\n  Minimisers are the same.\n")


def test_a_real_build_with_the_course_config(tmp_path):
    source = tmp_path / "src"
    (source / "book").mkdir(parents=True)
    (source / "book" / "references.bib").write_text((REPO / "book" / "references.bib").read_text())
    (source / "book" / "intro.md").write_text("# A tiny book\n")
    (source / "book" / "_static").mkdir()
    for css in (REPO / "book" / "_static").glob("*.css"):
        (source / "book" / "_static" / css.name).write_text(css.read_text())
    (source / "book" / "_toc.yml").write_text(
        "format: jb-book\nroot: book/intro\nchapters:\n  - file: clean\n  - file: faults\n"
        "  - file: prose\n")
    nbformat.write(REAL_CLEAN, source / "clean.ipynb")
    nbformat.write(nbformat.from_dict(REAL_FAULTS), source / "faults.ipynb")
    (source / "prose.md").write_text(REAL_PROSE)
    config = yaml.safe_load((REPO / "book" / "_config.yml").read_text())
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "_config.yml").write_text(yaml.safe_dump(config))
    result = subprocess.run(
        [JUPYTER_BOOK, "build", str(source), "--config", str(tmp_path / "out" / "_config.yml"),
         "--toc", str(source / "book" / "_toc.yml"), "--path-output", str(tmp_path / "out"),
         "--keep-going"], capture_output=True, text=True, cwd=source)
    html = tmp_path / "out" / "_build" / "html"
    assert (html / "clean.html").exists(), result.stdout[-3000:] + result.stderr[-3000:]

    problems = check_render.check_book(html)
    by_page: dict[str, set[str]] = {}
    for problem in problems:
        by_page.setdefault(problem.page, set()).add(problem.kind)
    assert "clean.html" not in by_page, [str(p) for p in problems if p.page == "clean.html"]
    assert by_page["faults.html"] == {"markdown-table", "raw-math", "external", "error",
                                      "object-repr"}
    assert by_page["prose.html"] == {"raw-math"}
    assert set(by_page) == {"faults.html", "prose.html"}
    # MathJax comes from inside the built book, and the clean page's formulas are math elements
    clean = (html / "clean.html").read_text()
    assert 'src="_static/mathjax/tex-chtml.js"' in clean
    assert (html / "_static" / "mathjax" / "tex-chtml.js").exists()
    assert (html / "_static" / "mathjax" / "output" / "chtml" / "fonts" / "woff-v2").is_dir()
    soup = BeautifulSoup(clean, "html.parser")
    assert len(soup.select("article .math")) == 3  # inline, display, and the Math() output
    text = soup.get_text()
    assert "<table" in clean and "def show_table(" in text and "source: cooc_minimal.show" in text
