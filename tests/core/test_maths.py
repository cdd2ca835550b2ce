"""Finding LaTeX maths in markdown (app/core/maths.py): delimiters, dollar rules, code, streaming."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.core.maths import BOXED, DISPLAY_BRACKET, DISPLAY_DOLLAR, INLINE_DOLLAR, INLINE_PAREN, find_maths
from app.core.render import StreamRenderer


def found(text: str, **kw) -> list[tuple[str, str]]:
    return [(m.kind, m.source) for m in find_maths(text, **kw)]


# --- delimiters ------------------------------------------------------------------------


def test_every_delimiter_r1_writes():
    text = (
        "So $\\frac{y'}{y} = \\ln x + 1$, or \\(x^2\\); in full\n"
        "$$\\int_0^1 x\\,dx = \\frac12$$ and \\[ \\sum_{k=1}^n k = \\frac{n(n+1)}{2} \\]\n"
        "The answer is \\boxed{\\frac{1}{2}}."
    )
    assert found(text) == [
        (INLINE_DOLLAR, "\\frac{y'}{y} = \\ln x + 1"),
        (INLINE_PAREN, "x^2"),
        (DISPLAY_DOLLAR, "\\int_0^1 x\\,dx = \\frac12"),
        (DISPLAY_BRACKET, "\\sum_{k=1}^n k = \\frac{n(n+1)}{2}"),
        (BOXED, "\\boxed{\\frac{1}{2}}"),
    ]
    maths = find_maths(text)
    assert [m.display for m in maths] == [False, False, True, True, False]
    assert all(text[m.start:m.end].startswith(m.kind) for m in maths)
    assert maths[-1].boxed and text[maths[-1].end] == "."


def test_display_maths_may_span_lines_but_not_a_blank_line():
    assert found("$$\na + b\n= c\n$$") == [(DISPLAY_DOLLAR, "a + b\n= c")]
    assert found("\\[\nx\n\\]") == [(DISPLAY_BRACKET, "x")]
    assert found("$$\na\n\n= c\n$$") == []
    assert found("\\[ a\n\nb \\]") == []


def test_boxed_balances_nested_braces_and_escaped_ones():
    assert found("\\boxed{\\frac{a}{\\sqrt{b}}} then") == [(BOXED, "\\boxed{\\frac{a}{\\sqrt{b}}}")]
    assert found("\\boxed{\\{1, 2\\}}") == [(BOXED, "\\boxed{\\{1, 2\\}}")]
    assert found("\\boxed{unclosed {x}") == []
    assert found("\\boxedx{1}") == []  # another command
    assert found("$\\boxed{2}$") == [(INLINE_DOLLAR, "\\boxed{2}")]  # inside a formula: part of it


@pytest.mark.parametrize(
    "text",
    [
        "It costs $5 and $10.",
        "$5-$10 per month",
        "between $20,000 and $30,000",
        "echo $HOME and $PATH",
        "cp $HOME/$USER/x .",
        "export PATH=$PATH:$HOME/bin",
        "a $ b $ c",  # space after the opening / before the closing dollar
        "$x $",
        "$ x$",
        "\\$x\\$ escaped",
        "\\\\(x\\\\) is an escaped backslash, then a paren",
        "$a\nb$",  # no line break inside $...$
        "$$ $$ and \\( \\) are empty",
        "unclosed $$x and \\(y and \\[z",
    ],
)
def test_what_is_not_maths(text):
    assert found(text) == []


def test_dollar_rules_around_real_maths():
    assert found("$5 and $x$") == [(INLINE_DOLLAR, "x")]
    assert found("$x$5") == []  # a digit after the closing dollar
    assert found("$x$, $y$.") == [(INLINE_DOLLAR, "x"), (INLINE_DOLLAR, "y")]
    assert found("($x$)") == [(INLINE_DOLLAR, "x")]
    assert found("$10$") == [(INLINE_DOLLAR, "10")]
    assert found("$a\\$b$") == [(INLINE_DOLLAR, "a\\$b")]


# --- code ------------------------------------------------------------------------------


def test_never_inside_code():
    assert found("`$x$` and ``a ` $y$`` but $z$") == [(INLINE_DOLLAR, "z")]
    assert found("```\n$x$\n\n\\(y\\)\n```\n$z$") == [(INLINE_DOLLAR, "z")]
    assert found("~~~tex\n$$x$$\n~~~") == []
    assert found("```\nunclosed $x$\n\nstill code $y$") == []
    assert found("Text.\n\n    indented $x$ code\n\n$y$") == [(INLINE_DOLLAR, "y")]
    assert found("Text\n    lazy $x$ line") == [(INLINE_DOLLAR, "x")]  # no code inside a paragraph
    assert found("- item $a$\n  ```\n  $b$\n  ```\n\n  more $c$") == [(INLINE_DOLLAR, "a"), (INLINE_DOLLAR, "c")]


def test_list_paragraphs_are_not_code_but_deeper_indentation_is():
    text = "1. step $a$\n\n    more of step one $b$\n\n         code $c$\n\nAfter.\n\n    code $d$"
    assert found(text) == [(INLINE_DOLLAR, "a"), (INLINE_DOLLAR, "b")]


def test_an_escaped_backtick_opens_no_code_span():
    assert found("\\`$x$` ") == [(INLINE_DOLLAR, "x")]


# --- streaming -------------------------------------------------------------------------


def test_a_formula_is_found_once_its_closing_delimiter_has_arrived():
    assert found("so \\(x", final=False) == []
    assert found("so \\(x\\)", final=False) == [(INLINE_PAREN, "x")]
    assert found("so $x$", final=False) == []  # "$x$5" would be no maths: wait for one more character
    assert found("so $x$ ", final=False) == [(INLINE_DOLLAR, "x")]
    assert found("`a $x$ ", final=False) == []  # the backtick may yet open a code span
    assert found("`a` $x$ ", final=False) == [(INLINE_DOLLAR, "x")]
    assert found("`a` $x$ `b`", final=False) == [(INLINE_DOLLAR, "x")]
    assert found("\\[ a $x$ b ", final=False) == []  # the \[ may yet close around it
    assert found("$x$ ok\n\n\\[ a", final=False) == [(INLINE_DOLLAR, "x")]


# --- properties ------------------------------------------------------------------------

WORDS = ["the", "answer", "is", "so", "x", "we", "get", "1", "2,", "(see", "note)", "**bold**", "_it_", "a-b", "f(x)"]
BODIES = ["x", "x^2", "\\frac{a}{b}", "\\sum_{k=1}^n k", "a_{i} + b", "\\sqrt{2}", "e^{i\\pi} = -1", "\\{1, 2\\}"]
DECOYS = ["$5", "$10.50", "$5 and $10", "$HOME", "$HOME/$USER", "US$3", "\\$x\\$", "PATH=$PATH:$HOME"]
CODE_SPANS = ["`$x$`", "``a ` $y$``", "`\\(z\\)`", "`echo $HOME`", "`\\boxed{1}`"]


@dataclass
class Doc:
    text: str = ""
    maths: list[tuple[int, int, str, str]] = field(default_factory=list)  # (start, end, kind, source)
    code: list[tuple[int, int]] = field(default_factory=list)

    def add(self, piece: str) -> int:
        start = len(self.text)
        self.text += piece
        return start

    def formula(self, kind: str, body: str) -> None:
        written, source = {
            INLINE_DOLLAR: (f"${body}$", body),
            DISPLAY_DOLLAR: (f"$$ {body} $$", body),
            INLINE_PAREN: (f"\\({body}\\)", body),
            DISPLAY_BRACKET: (f"\\[ {body} \\]", body),
            BOXED: (f"\\boxed{{{body}}}", f"\\boxed{{{body}}}"),
        }[kind]
        start = self.add(written)
        self.maths.append((start, len(self.text), kind, source))

    def codes(self, piece: str) -> None:
        start = self.add(piece)
        self.code.append((start, len(self.text)))


KINDS = [INLINE_DOLLAR, DISPLAY_DOLLAR, INLINE_PAREN, DISPLAY_BRACKET, BOXED]
token = st.one_of(
    st.tuples(st.just("word"), st.sampled_from(WORDS)),
    st.tuples(st.sampled_from(KINDS), st.sampled_from(BODIES)),
    st.tuples(st.just("decoy"), st.sampled_from(DECOYS)),
    st.tuples(st.just("span"), st.sampled_from(CODE_SPANS)),
)
paragraph = st.lists(st.lists(token, min_size=1, max_size=8), min_size=1, max_size=3)  # lines of tokens
block = st.one_of(
    st.tuples(st.just("para"), paragraph),
    st.tuples(st.just("list"), paragraph),
    st.tuples(st.just("fence"), st.sampled_from(["```\n$x$ and $$y$$\n\n\\(z\\)\n```", "~~~python\nprint('$a$ \\boxed{1}')\n~~~"])),
    st.tuples(st.just("indented"), st.sampled_from(["    echo $HOME $x$", "    $$a$$\n\n    \\[b\\]"])),
)


@st.composite
def documents(draw) -> Doc:
    doc = Doc()
    in_list = False
    for n, (kind, content) in enumerate(draw(st.lists(block, min_size=1, max_size=6))):
        if n:
            doc.add("\n\n")
        if kind == "indented" and in_list:
            kind, content = "para", [[("word", "after")]]
        if kind in ("fence", "indented"):
            doc.codes(content)
        else:
            if kind == "list":
                doc.add("- ")
            for i, line in enumerate(content):
                if i:
                    doc.add("\n  " if kind == "list" else "\n")
                for j, (what, value) in enumerate(line):
                    if j:
                        doc.add(" ")
                    if what == "word" or what == "decoy":
                        doc.add(value)
                    elif what == "span":
                        doc.codes(value)
                    else:
                        doc.formula(what, value)
        in_list = kind == "list"
    return doc


def well_formed(text: str, maths) -> None:
    end = 0
    for m in maths:
        assert end <= m.start < m.end <= len(text)
        assert m.source.strip() and not m.source.startswith(" ")
        written = text[m.start:m.end]
        assert written.startswith(m.kind)
        closing = {INLINE_DOLLAR: "$", DISPLAY_DOLLAR: "$$", INLINE_PAREN: "\\)", DISPLAY_BRACKET: "\\]", BOXED: "}"}
        assert written.endswith(closing[m.kind])
        end = m.end


@settings(max_examples=300, deadline=None)
@given(st.text())
def test_never_raises_on_any_text(text):
    well_formed(text, find_maths(text))
    well_formed(text, find_maths(text, final=False))


MARKDOWNISH = st.lists(
    st.sampled_from(["a", " ", "  ", "    ", "\n", "\n\n", "$", "$$", "\\", "\\(", "\\)", "\\[", "\\]", "`", "```",
                     "~~~", "{", "}", "\\boxed", "\\boxed{", "x^2", "5", "- ", "1. ", "\t", "_", "\r\n"]),
    max_size=40,
).map("".join)


@settings(max_examples=300, deadline=None)
@given(MARKDOWNISH)
def test_never_raises_on_markdownish_text(text):
    well_formed(text, find_maths(text))


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(documents())
def test_finds_exactly_the_planted_formulas_and_nothing_in_code(doc):
    maths = find_maths(doc.text)
    assert [(m.start, m.end, m.kind, m.source) for m in maths] == doc.maths, doc.text
    for m in maths:
        for start, end in doc.code:
            assert m.end <= start or m.start >= end, (doc.text, m)


class _Blocks(StreamRenderer):
    """StreamRenderer's own block splitting, recording the text of each block instead of rendering."""

    def __init__(self):
        super().__init__()
        self.blocks: list[str] = []

    def _render(self, text: str) -> str:
        self.blocks.append(text)
        return ""


def blocks_of(text: str, chunk: int) -> list[str]:
    splitter = _Blocks()
    for i in range(0, len(text), chunk):
        splitter.feed(text[i:i + chunk])
    splitter.close()
    rendered = "".join(splitter.blocks)
    assert text.startswith(rendered) and not text[len(rendered):].strip()  # (a blank tail is dropped)
    return [*splitter.blocks, text[len(rendered):]]


def by_block(text: str, chunk: int):
    out, offset = [], 0
    for piece in blocks_of(text, chunk):
        out += [(m.start + offset, m.end + offset, m.kind, m.source) for m in find_maths(piece)]
        offset += len(piece)
    return out


def whole(text: str):
    return [(m.start, m.end, m.kind, m.source) for m in find_maths(text)]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(documents(), st.integers(1, 12))
def test_block_by_block_finds_what_the_whole_text_has(doc, chunk):
    assert by_block(doc.text, chunk) == whole(doc.text)


@settings(max_examples=300, deadline=None)
@given(MARKDOWNISH, st.integers(1, 12))
def test_block_by_block_equals_whole_on_markdownish_text(text, chunk):
    text = text.replace("\r\n", "\n")  # (render_markdown normalises line ends before anything else)
    assert by_block(text, chunk) == whole(text)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(documents())
def test_streaming_finds_each_formula_once_closed_and_never_takes_one_back(doc):
    final = set(whole(doc.text))
    for cut in range(len(doc.text) + 1):
        partial = set(whole_partial(doc.text[:cut]))
        assert partial <= final, (doc.text[:cut], partial - final)
    for start, end, kind, source in doc.maths:
        ready = end + 1 if kind == INLINE_DOLLAR else end  # "$x$" waits for the next character
        if ready <= len(doc.text):
            assert (start, end, kind, source) in whole_partial(doc.text[:ready])


def whole_partial(text: str):
    return [(m.start, m.end, m.kind, m.source) for m in find_maths(text, final=False)]


@settings(max_examples=300, deadline=None)
@given(MARKDOWNISH)
def test_streaming_never_takes_a_formula_back_on_markdownish_text(text):
    final = set(whole(text))
    for cut in range(len(text) + 1):
        assert set(whole_partial(text[:cut])) <= final, text[:cut]


# --- typesetting (app/core/formula.py, real ziamath; QtSvg checks are in tests/ui/test_maths_svg.py)

from app.core import formula  # noqa: E402
from app.core.formula import FormulaError, FormulaImage, cached_formula, render_formula  # noqa: E402

TYPESET = [
    ("\\frac{y'}{y} = \\ln x + 1", False),
    ("\\int_0^\\infty e^{-x^2}\\,dx = \\frac{\\sqrt{\\pi}}{2}", True),
    ("\\sum_{k=1}^n k = \\frac{n(n+1)}{2}", True),
    ("\\sqrt[3]{x} + \\sqrt{2}", False),
    ("\\begin{pmatrix} 1 & 2 \\\\ 3 & 4 \\end{pmatrix}", True),
    ("x_i^2 + a_{n+1}^{k}", False),
    ("\\boxed{\\frac{1}{2}}", False),
]


@pytest.mark.parametrize("source, display", TYPESET)
def test_formulas_typeset_to_svg_with_baseline_metrics(source, display):
    image = render_formula(source, display, 16.0, "#336699")
    assert isinstance(image, FormulaImage), image
    assert image.svg.startswith(b"<svg") and b"xlink" in image.svg and b"<path" in image.svg
    assert b"#336699" in image.svg  # the theme's colour, not black
    assert image.width > 0 and image.height > 0 and 0 <= image.depth < image.height and image.ascent > 0
    assert image.source == source and image.display == display


def test_boxed_draws_a_box_and_a_descender_reaches_below_the_baseline():
    assert b"<rect" in render_formula("\\boxed{42}", False, 16.0, "#000000").svg
    x, y = render_formula("x", False, 16.0, "#000"), render_formula("y", False, 16.0, "#000")
    assert y.depth > x.depth + 2  # "y" has a descender; "x" sits on the baseline (up to the margin)
    big = render_formula("x", False, 32.0, "#000")
    assert big.height == pytest.approx(2 * x.height, rel=0.15)  # sized to the font


def test_display_fractions_are_taller_than_inline_ones():
    inline, display = render_formula("\\frac{a}{b}", False, 16.0, "#000"), render_formula("\\frac{a}{b}", True, 16.0, "#000")
    assert display.height > inline.height


@pytest.mark.parametrize(
    "source",
    ["\\frac{a", "x^", "\\begin{matrix} a", "\\left( x", "\\notacommand{x}", "", "   ", "x" * 5000],
)
def test_bad_latex_gives_an_error_value_not_an_exception(source):
    result = render_formula(source, False, 16.0, "#000000")
    assert isinstance(result, FormulaError) and result.source == source and result.message


@pytest.mark.parametrize("size, color", [(16.0, "red"), (16.0, "#12345g"), (16.0, '#000" onload="x'), (0.0, "#000"), (float("nan"), "#000")])
def test_bad_arguments_give_an_error_value(size, color):
    assert isinstance(render_formula("x", False, size, color), FormulaError)


def test_the_cache_returns_the_same_object_and_is_bounded(monkeypatch):
    formula.clear_cache()
    assert cached_formula("a+b", False, 16.0, "#000000") is None
    first = render_formula("a+b", False, 16.0, "#000000")
    assert render_formula("a+b", False, 16, "#000000") is first
    assert cached_formula("a+b", False, 16.0, "#000000") is first
    assert render_formula("a+b", True, 16.0, "#000000") is not first  # display is part of the key
    assert render_formula("a+b", False, 16.0, "#ffffff") is not first  # and the colour
    bad = render_formula("\\frac{", False, 16.0, "#000000")
    assert render_formula("\\frac{", False, 16.0, "#000000") is bad  # errors are cached too
    monkeypatch.setattr(formula, "CACHE_SIZE", 3)
    for n in range(5):
        render_formula(f"x_{n}", False, 16.0, "#000000")
    assert len(formula._cache) == 3 and cached_formula("a+b", False, 16.0, "#000000") is None


@settings(max_examples=60, deadline=None)
@given(st.text(alphabet="\\{}^_&$%#x1 frac sqrt begin end matrix left right", max_size=30))
def test_render_formula_never_raises(source):
    result = render_formula(source, False, 16.0, "#000000")
    assert isinstance(result, (FormulaImage, FormulaError))


@pytest.mark.parametrize(
    "text",
    ["\\(" * 20000, "\\[ a" * 20000, "$$ a" * 20000, "\\boxed{" * 20000, "\\boxed{x" + "{" * 20000,
     "$a " * 20000, "` " * 5000 + "`` " * 5000, " ".join("`" * k for k in range(1, 400)), "- a\n\n    b\n" * 5000],
)
def test_pathological_text_is_found_in_linear_time(text):
    started = time.perf_counter()
    find_maths(text)
    find_maths(text, final=False)
    assert time.perf_counter() - started < 1.0


def test_render_formula_from_several_threads_at_once():
    from concurrent.futures import ThreadPoolExecutor

    formula.clear_cache()
    sources = [source for source, _ in TYPESET] * 4
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda s: render_formula(s, True, 18.0, "#000000"), sources))
    assert all(isinstance(r, FormulaImage) for r in results)
    for source, result in zip(sources, results):
        assert result is render_formula(source, True, 18.0, "#000000")  # one object per key, whoever rendered it
