"""cooc_minimal.show: HTML tables and highlighted source, checked on their HTML."""

import importlib
import re
import sys

import pytest
from bs4 import BeautifulSoup

from cooc_minimal import losses
from cooc_minimal.show import show_source, show_table, source_html, table_html


def _text(html: str) -> str:
    return BeautifulSoup(html, "html.parser").get_text()


def test_table_from_dicts_has_one_row_per_item_plus_header_and_escapes():
    rows = [{"N": 8, "d": 2, "err": 1.23456e-7}, {"N": 16, "d": "<4>", "err": 0.5}]
    soup = BeautifulSoup(table_html(rows, caption="a & b"), "html.parser")
    trs = soup.find_all("tr")
    assert len(trs) == 3
    assert [th.get_text() for th in trs[0].find_all("th")] == ["N", "d", "err"]
    assert [td.get_text() for td in trs[1].find_all("td")] == ["8", "2", "1.23e-07"]
    assert trs[2].find_all("td")[1].get_text() == "<4>"
    assert soup.select_one("p.cooc-caption").get_text() == "a & b"
    raw = table_html(rows)
    assert "<4>" not in raw and "&lt;4&gt;" in raw


def test_table_from_lists_columns_order_and_floatfmt():
    html = table_html([[1, 0.123456], [2, 3.0]], columns=["k", "v"], floatfmt="{:.2f}")
    soup = BeautifulSoup(html, "html.parser")
    assert [td.get_text() for td in soup.find_all("td")] == ["1", "0.12", "2", "3.00"]
    picked = table_html([{"a": 1, "b": 2}], columns=["b", "a"])
    heads = BeautifulSoup(picked, "html.parser").find_all("th")
    assert [th.get_text() for th in heads] == ["b", "a"]
    # no header when list rows come without columns; no Markdown pipes anywhere
    assert "<th" not in table_html([[1, 2]]) and "|" not in html


def test_table_bad_rows_give_one_sentence():
    with pytest.raises(ValueError, match="one per column"):
        table_html([[1, 2, 3]], columns=["a", "b"])
    with pytest.raises(ValueError, match="list of dicts or a list of lists"):
        table_html(["ab", "cd"])


def test_show_functions_display_html(monkeypatch):
    shown = []
    import IPython.display

    monkeypatch.setattr(IPython.display, "display", lambda obj: shown.append(obj))
    assert show_table([{"x": 1}]) is None
    assert show_source(losses.spectral_loss) is None
    assert len(shown) == 2 and all(hasattr(o, "_repr_html_") for o in shown)
    assert "<table" in shown[0]._repr_html_()


def test_source_of_function_contains_def_line_and_module_caption():
    html = source_html(losses.spectral_loss)
    text = _text(html)
    assert "def spectral_loss(" in text
    assert "source: cooc_minimal.losses.spectral_loss" in text
    assert "style=" in html and "class=\"k\"" not in html  # inline styles, no CSS classes


def test_source_of_class_and_method(tmp_path, monkeypatch):
    mod = tmp_path / "showdemo_cls.py"
    mod.write_text("class A:\n    def f(self, x):\n        return x < 1\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    demo = importlib.import_module("showdemo_cls")
    assert "class A:" in _text(source_html(demo.A))
    method_html = source_html(demo.A().f)
    method_text = _text(method_html)
    code = BeautifulSoup(method_html, "html.parser").find("pre").get_text()
    assert code.startswith("def f(self, x):")  # dedented
    assert "showdemo_cls.A.f" in method_text
    assert "x < 1" in method_text and "&lt;" in method_html and "x < 1" not in method_html


def test_source_follows_edits(tmp_path, monkeypatch):
    mod = tmp_path / "showdemo_edit.py"
    mod.write_text("def g():\n    return 1\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    demo = importlib.import_module("showdemo_edit")
    assert "return 1" in _text(source_html(demo.g))
    mod.write_text("def g():\n    return 22  # edited\n")
    importlib.reload(demo)
    text = _text(source_html(demo.g))
    assert "return 22" in text and "return 1\n" not in text
    sys.modules.pop("showdemo_edit", None)


def test_source_of_builtin_is_one_sentence():
    with pytest.raises(ValueError, match=r"has no source to show\.$") as err:
        source_html(len)
    assert re.fullmatch(r"[^\n]+\.", str(err.value))


def test_text_turns_dollar_math_into_math_elements_and_escapes_the_rest():
    from cooc_minimal.show import text_html

    html = text_html("(B.7) *trace*: assuming $\\operatorname{tr}(Z^\\top Z) = N$ and a<b, `x`")
    soup = BeautifulSoup(html, "html.parser")
    (math,) = soup.select("span.math")
    assert math.get_text() == "\\(\\operatorname{tr}(Z^\\top Z) = N\\)"
    assert soup.em.get_text() == "trace" and soup.code.get_text() == "x"
    outside = "".join(s for s in soup.find_all(string=True) if s.parent is not math)
    assert "$" not in outside and "a<b" in outside and "a<b" not in html
    with pytest.raises(ValueError, match="unpaired '\\$'"):
        text_html("costs $5")


def test_show_figure_displays_a_png_of_a_figure_made_without_pyplot(monkeypatch):
    from matplotlib.figure import Figure

    from cooc_minimal.show import figure_png, show_figure

    fig = Figure(figsize=(2, 1))
    fig.add_subplot().plot([0, 1], [1, 0])
    png = figure_png(fig)
    assert png.startswith(b"\x89PNG")
    shown = []
    import IPython.display

    monkeypatch.setattr(IPython.display, "display", lambda obj: shown.append(obj))
    show_figure(fig)
    assert shown[0].data == png and shown[0].format == "png"
    with pytest.raises(ValueError, match="takes a matplotlib Figure, got a str"):
        show_figure("figure.png")


def test_numbers_align_right_and_words_left():
    from cooc_minimal.show import table_html

    page = table_html([{"name": "vicreg", "accuracy": 0.911}])
    assert 'text-align:left">vicreg<' in page
    assert 'text-align:right;white-space:nowrap">0.911<' in page


@pytest.mark.parametrize("figure", ["84.6 ± 0.3", "0.913 ± 0.002", "91.8%", "-1.5e-3", "1,024"])
def test_figures_written_as_text_align_right_and_stay_on_one_line(figure):
    """A mean ± std is a figure too: right-aligned, and on one line (split after its "±" it
    reads as two numbers), even where the book's CSS would break a long word."""
    from cooc_minimal.show import table_html

    page = table_html([{"variant": "epochs=12", "kNN": figure, "note": "about 0.9 at most"}])
    assert f'text-align:right;white-space:nowrap">{figure}<' in page
    assert 'text-align:left">epochs=12<' in page
    assert 'text-align:left">about 0.9 at most<' in page


def test_only_long_names_paths_and_hashes_may_break_anywhere():
    """Words stay whole; a token over 12 characters (a config name, a path, a commit) may
    break anywhere, or it would push its table past the page."""
    from cooc_minimal.show import table_html

    page = table_html([{"config": "imagenet100_vicreg", "arch": "resnet34",
                        "file": "cooc_minimal/results/ch05_seeds.json"}])
    assert 'text-align:left;overflow-wrap:anywhere">imagenet100_vicreg<' in page
    assert 'text-align:left">resnet34<' in page
    assert 'text-align:left;overflow-wrap:anywhere">cooc_minimal/results/ch05_seeds.json<' in page
