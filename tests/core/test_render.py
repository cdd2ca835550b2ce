"""Markdown rendering of chat messages: safety, code blocks, maths, and incremental streaming."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.core.maths import Maths, parse_resource_name, written
from app.core.render import (
    Patch,
    StreamRenderer,
    code_css,
    patches,
    render_markdown,
    split_stable_blocks,
    top_level_elements,
)


# --- untrusted model output ------------------------------------------------------------


def test_raw_html_in_model_output_is_escaped_not_interpreted():
    html = render_markdown('Hi <script>alert(1)</script> <img src=http://evil.example/x.png> <b>bold?</b>').html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "&lt;img src=http://evil.example/x.png&gt;" in html
    assert "&lt;b&gt;bold?&lt;/b&gt;" in html
    assert "<script" not in html and "<img" not in html and "<b>" not in html


def test_html_blocks_are_escaped_too():
    html = render_markdown("<div onclick='x()'>\n<iframe src='http://a'></iframe>\n</div>").html
    assert "<div" not in html and "<iframe" not in html
    assert "&lt;iframe" in html


def test_image_syntax_becomes_a_link_and_never_an_img():
    html = render_markdown("Look: ![a cat](http://example.com/cat.png) and ![](https://x.org/y.gif)").html
    assert "<img" not in html
    assert '<a href="http://example.com/cat.png">[image: a cat]</a>' in html
    assert '<a href="https://x.org/y.gif">[image]</a>' in html


def test_links_keep_their_href():
    html = render_markdown("See [the docs](https://docs.python.org/3/) or <https://example.org>.").html
    assert '<a href="https://docs.python.org/3/">the docs</a>' in html
    assert 'href="https://example.org"' in html


# --- maths -----------------------------------------------------------------------------


def formulas(html: str) -> list[Maths]:
    """The formulas a rendered HTML shows as images, in order."""
    return [parse_resource_name(name) for name in re.findall(r'<img src="(formula:[^"]+)"', html)]


def test_each_delimiter_becomes_an_image_named_after_its_source():
    html = render_markdown("Half is \\frac{1}{2}, $\\sqrt{2}$ and \\(x_2\\); so $$a^2$$ and \\[ b \\].").html
    assert [(f.source, f.kind, f.display) for f in formulas(html)] == [
        ("\\sqrt{2}", "$", False), ("x_2", "\\(", False), ("a^2", "$$", True), ("b", "\\[", True)]
    assert "Half is \\frac{1}{2}" in html  # LaTeX outside any delimiter is text


def test_math_is_not_mangled_by_emphasis_or_escapes():
    html = render_markdown("Let $a_1 * b_1 * c$ and \\[ \\frac{x_1}{y_1} \\] and \\(x_2\\).").html
    assert [f.source for f in formulas(html)] == ["a_1 * b_1 * c", "\\frac{x_1}{y_1}", "x_2"]
    assert "<em>" not in html


def test_dollar_amounts_and_shell_variables_are_not_math():
    html = render_markdown("It costs $5 and $10 in total; see $HOME/$USER and PATH=$PATH:$HOME.").html
    assert "<img" not in html
    assert "$5 and $10" in html and "$HOME/$USER" in html


def test_code_spans_and_blocks_win_over_math():
    html = render_markdown("Use `$x$ here` and\n\n```sh\necho $a$b$\n```\n\n    $y$ indented").html
    assert "<img" not in html
    assert "<code>$x$ here</code>" in html


def test_display_maths_gets_a_centred_paragraph_of_its_own():
    html = render_markdown("The sum is\n\\[\n\\sum_{k=1}^n k\n\\]\nso done, and \\[x\\] too.").html
    paragraphs = re.findall(r"<p[^>]*>.*?</p>", html, re.S)
    assert paragraphs[0] == "<p>The sum is</p>"
    assert paragraphs[1].startswith('<p align="center"') and "formula:b/" in paragraphs[1]
    assert paragraphs[2] == "<p>so done, and</p>"
    assert paragraphs[3].startswith('<p align="center"') and paragraphs[4] == "<p>too.</p>"
    in_list = render_markdown("- Sum:\n  \\[ x^2 \\]\n- next").html
    assert in_list.count("<li>") == 2 and re.search(r'<li>\s*<p>Sum:</p>\s*<p align="center"', in_list)
    in_table = render_markdown("| a | b |\n|---|---|\n| 1 | $$y$$ |").html
    assert '<td><img src="formula:d/' in in_table  # a table cell keeps it inline


def test_copying_names_back_gives_the_latex_as_written():
    for text in ("$x$", "$$x$$", "\\(x\\)", "\\[x\\]", "\\boxed{x}"):
        (formula,) = formulas(render_markdown(f"a {text} b").html)
        assert written(formula) == text
    assert parse_resource_name("formula:q/eA") is None and parse_resource_name("https://x/y.png") is None
    assert parse_resource_name("formula:i/!!!") is None


# --- code blocks -----------------------------------------------------------------------


def test_fenced_code_is_highlighted_with_a_copy_anchor_and_raw_code_kept():
    text = "Code:\n\n```python\ndef f(x):\n    return x < 1 and '<b>'\n```\n\nDone."
    rendered = render_markdown(text)
    assert rendered.code_blocks == ("def f(x):\n    return x < 1 and '<b>'",)
    assert 'href="copy:0"' in rendered.html
    assert '<span class="hl-k">def</span>' in rendered.html
    assert "&lt;b&gt;" in rendered.html and "<b>" not in rendered.html
    assert ">python<" in rendered.html  # language label in the header row
    assert "<p>Done.</p>" in rendered.html


def test_code_blocks_are_numbered_from_first_code_index():
    text = "```\na\n```\n\ntext\n\n~~~js\nb()\n~~~"
    rendered = render_markdown(text, first_code_index=3)
    assert rendered.code_blocks == ("a", "b()")
    assert 'href="copy:3"' in rendered.html and 'href="copy:4"' in rendered.html


def test_unknown_language_is_shown_escaped_without_highlighting():
    rendered = render_markdown("```nosuchlang\nx <y> & z\n```")
    assert "x &lt;y&gt; &amp; z" in rendered.html
    assert "hl-" not in rendered.html
    assert rendered.code_blocks == ("x <y> & z",)


def test_unclosed_fence_runs_to_the_end_as_code():
    rendered = render_markdown("Start\n```python\nprint(1)\n\nprint(2)\n")
    assert rendered.code_blocks == ("print(1)\n\nprint(2)",)
    assert "<br" not in rendered.html.split("</table>")[-1]


def test_indented_fence_inside_a_list_item_stays_in_the_list():
    text = "1. Step one:\n   ```bash\n   ls -l\n   ```\n2. Step two"
    rendered = render_markdown(text)
    assert rendered.code_blocks == ("ls -l",)
    assert rendered.html.count("<ol") == 1
    assert re.search(r"<li>.*copy:0.*</li>", rendered.html, re.S)


def test_code_css_styles_the_highlight_classes():
    css = code_css("default")
    assert re.search(r"^\.hl-k \{ color: #[0-9A-Fa-f]{3,6}; font-weight: bold \}$", css, re.M)
    assert "background" not in css


# --- other markdown --------------------------------------------------------------------


def test_tables_render_with_alignment():
    html = render_markdown("| a | b |\n|---|--:|\n| 1 | 2 |").html
    assert re.search(r'<table [^>]*class="md"', html)
    assert "<th>a</th>" in html
    assert '<td style="text-align: right;">2</td>' in html


def test_single_newlines_are_line_breaks_in_chat():
    assert "<br />" in render_markdown("line one\nline two").html


def test_ordered_lists_keep_their_start_number():
    assert '<ol start="3">' in render_markdown("3. three\n4. four").html



# --- lists nested with 2 or 3 spaces, as models write them -------------------------------


def test_two_space_nested_bullets_nest_like_four_space_ones():
    html = render_markdown("- a\n  - b\n    - c\n  - d\n- e").html
    assert html == render_markdown("- a\n    - b\n        - c\n    - d\n- e").html
    assert html == "<ul>\n<li>a<ul>\n<li>b<ul>\n<li>c</li>\n</ul>\n</li>\n<li>d</li>\n</ul>\n</li>\n<li>e</li>\n</ul>"


def test_three_space_nested_bullets_nest():
    html = render_markdown("* a\n   * b\n      * c\n* d").html
    assert html == "<ul>\n<li>a<ul>\n<li>b<ul>\n<li>c</li>\n</ul>\n</li>\n</ul>\n</li>\n<li>d</li>\n</ul>"


def test_bullets_under_a_numbered_item_nest_at_its_text_column():
    text = "1. First step\n   - detail a\n   - detail b\n2. Second\n  * two-space nested\n    * deeper"
    html = render_markdown(text).html
    assert html == (
        "<ol>\n<li>First step<ul>\n<li>detail a</li>\n<li>detail b</li>\n</ul>\n</li>\n"
        "<li>Second<ul>\n<li>two-space nested<ul>\n<li>deeper</li>\n</ul>\n</li>\n</ul>\n</li>\n</ol>"
    )


def test_three_levels_mixing_units_nest_by_where_each_item_sits():
    # 3 spaces under "1. ", then 2 under "- ": each item nests under the one it is indented past.
    text = "1. Plan\n   - read\n     - tokens\n     - lines\n   - print\n2. Done"
    assert render_markdown(text).html == render_markdown(
        "1. Plan\n    - read\n        - tokens\n        - lines\n    - print\n2. Done").html
    assert render_markdown(text).html.count("<ul>") == 2


def test_a_further_paragraph_of_an_item_stays_in_it_and_the_next_item_follows():
    html = render_markdown("- a\n  - b\n\n    more about b\n\n  more about a\n- c\n\nAfter.").html
    assert html == (
        "<ul>\n<li>\n<p>a</p>\n<ul>\n<li>\n<p>b</p>\n<p>more about b</p>\n</li>\n</ul>\n"
        "<p>more about a</p>\n</li>\n<li>\n<p>c</p>\n</li>\n</ul>\n<p>After.</p>"
    )


def test_fenced_code_in_a_two_space_list_stays_in_its_item_and_is_not_reindented():
    text = (
        "1. Write the list:\n"
        "   ```markdown\n"
        "   - x\n"
        "     - y\n"
        "   ```\n"
        "   Then check it.\n"
        "   - nested after the code\n"
        "2. Done"
    )
    rendered = render_markdown(text)
    assert rendered.code_blocks == ("- x\n  - y",)
    assert "\n  - y</pre>" in rendered.html  # the code's own indentation, untouched
    items = re.findall(r"<li>.*?</li>", rendered.html, re.S)
    assert "copy:0" in items[0] and "Then check it." in items[0]
    assert re.search(r"Then check it\.</p>\n<ul>\n<li>nested after the code</li>\n</ul>", rendered.html)
    assert rendered.html.count("<ol>") == 1 and "<p>Done</p>" in rendered.html


def test_fenced_code_belongs_to_the_item_it_is_indented_under():
    under_b = render_markdown("- a\n  - b\n    ```py\n    x = 1\n    ```\n  - c").html
    assert re.search(r"<ul>\n<li>\n<p>b</p>\n<table class=\"code\".*?</table>\n</li>\n<li>\n<p>c</p>", under_b, re.S)
    under_a = render_markdown("- a\n  - b\n  ```py\n  x = 1\n  ```\n- c").html
    assert re.search(r"<li>b</li>\n</ul>\n<table class=\"code\".*?</table>\n</li>\n<li>\n<p>c</p>", under_a, re.S)


def test_four_space_lists_render_exactly_as_before():
    text = "1. Plan\n    - read\n    - parse\n        - tokens\n2. Print\n\n    More about printing."
    assert render_markdown(text).html == (  # (the render before lists were re-indented)
        "<ol>\n<li>Plan<ul>\n<li>read</li>\n<li>parse<ul>\n<li>tokens</li>\n</ul>\n</li>\n</ul>\n</li>\n"
        "<li>\n<p>Print</p>\n<p>More about printing.</p>\n</li>\n</ol>"
    )


def test_indented_text_outside_lists_is_left_alone():
    text = (
        "Intro.\n\n  An indented paragraph\n  over two lines.\n\n"
        "    indented code\n      - not a list\n\n"
        "| a | b |\n|---|---|\n| - x | 2 |"
    )
    html = render_markdown(text).html
    assert html.startswith(
        "<p>Intro.</p>\n<p>An indented paragraph<br />\n  over two lines.</p>\n"
        "<pre><code>indented code\n  - not a list\n</code></pre>\n<table"
    )
    assert "<td>- x</td>" in html


def test_a_rule_or_heading_ends_a_list_before_an_indented_item():
    # Markdown splits headings and rules off as blocks; an item after one starts a new list.
    for splitter in ("# Heading", "* * *", "___", "---"):  # ("- a\n---" is a setext heading)
        html = render_markdown(f"- a\n{splitter}\n  - b").html
        assert "<pre>" not in html and "<li>b</li>" in html, html


# --- a list right under a paragraph line, as CommonMark has it ----------------------------


@pytest.mark.parametrize("marker", ["-", "*", "+"])
def test_a_bullet_list_right_under_a_paragraph_line_is_a_list(marker):
    html = render_markdown(f"Key points:\n{marker} fast\n{marker} small").html
    assert html == "<p>Key points:</p>\n<ul>\n<li>fast</li>\n<li>small</li>\n</ul>"


def test_an_ordered_list_starting_at_1_under_a_paragraph_line_is_a_list():
    html = render_markdown("Here are the steps:\n1. Install it\n2. Run it").html
    assert html == "<p>Here are the steps:</p>\n<ol>\n<li>Install it</li>\n<li>Run it</li>\n</ol>"


@pytest.mark.parametrize("line", [
    "1999. was a year",  # an ordered item must start at 1 to interrupt a paragraph
    "2. two",
    "1) one",  # (not a list marker in markdown's sane_lists at all)
    "    - four spaces in: a continuation line",
    "-not a bullet",
])
def test_a_line_that_cannot_start_a_list_under_a_paragraph_line_stays_its_text(line):
    assert render_markdown(f"The text\n{line}").html == f"<p>The text<br />\n{line}</p>"


def test_a_list_under_a_quote_line_ends_the_quote():
    html = render_markdown("> quoted\n- item").html
    assert html == "<blockquote>\n<p>quoted</p>\n</blockquote>\n<ul>\n<li>item</li>\n</ul>"


def test_a_heading_right_above_a_list_renders_as_before():
    assert render_markdown("## Steps\n- a\n- b").html == "<h2>Steps</h2>\n<ul>\n<li>a</li>\n<li>b</li>\n</ul>"


def test_a_table_right_above_a_bullet_keeps_its_rows_as_markdown_reads_them():
    html = render_markdown("| a | b |\n|---|---|\n| 1 | 2 |\n- x").html
    assert "<td>- x</td>" in html and "<ul>" not in html
    # "- | -" under a header row is the table's separator row, not a bullet.
    html = render_markdown("a | b\n- | -\n1 | 2").html
    assert "<th>a</th>" in html and "<td>1</td>" in html and "<ul>" not in html


def test_list_lines_inside_fenced_code_are_left_as_code():
    rendered = render_markdown("Use:\n```\ntext\n- a\n1. b\n```\nAfter\n~~~\nmore\n* c\n~~~")
    assert rendered.code_blocks == ("text\n- a\n1. b", "more\n* c")
    assert "<ul>" not in rendered.html and "<ol>" not in rendered.html


def test_a_bullet_line_in_a_list_items_lazy_continuation_stays_in_the_item():
    assert render_markdown("- a\nlazy\n- b").html == "<ul>\n<li>a<br />\nlazy</li>\n<li>b</li>\n</ul>"
    assert render_markdown("1. Install it\n2. Run it\nKey points:\n- fast").html == (
        "<ol>\n<li>Install it</li>\n<li>Run it<br />\nKey points:<br />\n- fast</li>\n</ol>"
    )


def test_a_list_under_text_after_a_list_starts_a_new_list():
    html = render_markdown("- a\n\nThen:\n- b").html
    assert html == "<ul>\n<li>a</li>\n</ul>\n<p>Then:</p>\n<ul>\n<li>b</li>\n</ul>"


def test_lists_with_a_blank_line_above_them_render_exactly_as_before():
    text = "Here are the steps:\n\n1. Install it\n2. Run it\n\nKey points:\n\n- fast\n* small\n\n+ loose"
    assert render_markdown(text).html == (  # (the render before lists could interrupt paragraphs)
        "<p>Here are the steps:</p>\n<ol>\n<li>Install it</li>\n<li>Run it</li>\n</ol>\n<p>Key points:</p>\n"
        "<ul>\n<li>fast</li>\n<li>\n<p>small</p>\n</li>\n<li>\n<p>loose</p>\n</li>\n</ul>"
    )


# --- incremental rendering -------------------------------------------------------------


def test_split_finds_the_last_complete_block():
    assert split_stable_blocks("First para.\n\nSecond par") == ("First para.\n\n", "Second par")
    assert split_stable_blocks("Only one para") == ("", "Only one para")
    assert split_stable_blocks("One.\n\n") == ("", "One.\n\n")  # the next block has not started


def test_split_keeps_an_open_code_fence_in_the_tail():
    text = "Intro.\n\n```python\nx = 1\n\ny = 2\n"
    assert split_stable_blocks(text) == ("Intro.\n\n", "```python\nx = 1\n\ny = 2\n")


def test_split_after_a_closed_fence():
    text = "```\na\n\nb\n```\n\nAfter"
    assert split_stable_blocks(text) == ("```\na\n\nb\n```\n\n", "After")


def test_split_right_after_a_top_level_closing_fence():
    assert split_stable_blocks("Intro\n\n```\ncode\n```\nMore") == ("Intro\n\n```\ncode\n```\n", "More")
    # An indented fence may sit in a list item that goes on after it.
    text = "1. Step\n   ```\n   code\n   ```\n   more of step one"
    assert split_stable_blocks(text) == ("", text)


def test_split_waits_while_an_indented_line_may_continue_a_list_item():
    text = "1. item\n\n    more of the item"
    assert split_stable_blocks(text) == ("", text)


def test_stream_renderer_renders_each_finished_block_once():
    renderer = StreamRenderer()
    step = renderer.feed("**Bold** start")
    assert step.html == "" and step.tail == "**Bold** start"
    step = renderer.feed(".\n\n")
    assert step.html == "" and step.tail == "**Bold** start.\n\n"
    step = renderer.feed("Next")
    assert step.html == "<p><strong>Bold</strong> start.</p>"
    assert step.tail == "Next"
    step = renderer.feed(" paragraph\n\n```py\nx = 1\n```\n\nEnd")
    assert "<p>Next paragraph</p>" in step.html and 'href="copy:0"' in step.html
    assert renderer.code_blocks == ["x = 1"]
    assert step.tail == "End"


def test_stream_renderer_numbers_code_blocks_across_feeds():
    renderer = StreamRenderer()
    renderer.feed("```\none\n```\n\nmid\n\n")
    step = renderer.feed("```\ntwo\n```\n\nx")
    assert 'href="copy:1"' in step.html
    assert renderer.code_blocks == ["one", "two"]


MARKDOWN_PIECES = st.sampled_from(
    ["Hello", " world", "\n", "\n\n", "```", "```python", "~~~", "    ", "- item", "1. x", "`", "*", "| a |", "x"]
)


@settings(max_examples=200, deadline=None)
@given(st.lists(MARKDOWN_PIECES, max_size=40), st.data())
def test_streaming_in_any_chunks_matches_splitting_the_whole_text(pieces, data):
    text = "".join(pieces)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(text)), max_size=8)))
    renderer = StreamRenderer()
    html_parts, start = [], 0
    for cut in [*cuts, len(text)]:
        html_parts.append(renderer.feed(text[start:cut]).html)
        start = cut
    stable, tail = split_stable_blocks(text)
    assert renderer.tail == tail
    # Nothing is lost: every code block of the stable part was collected exactly once.
    assert len(renderer.code_blocks) == "".join(html_parts).count('href="copy:')
    assert text == stable + tail
    assert renderer.source == text


LINE_PIECES = st.sampled_from(["word ", "more words ", "\n", "\n\n", "```", "- ", "  ", "x", "1. "])


@settings(max_examples=300, deadline=None)
@given(st.lists(LINE_PIECES, max_size=60), st.lists(st.integers(1, 40), min_size=1, max_size=30))
def test_after_every_feed_the_tail_is_what_a_split_of_the_text_so_far_leaves(pieces, sizes):
    # The scanner keeps its place between feeds (long lines included) and looks only at new text;
    # that must never change where blocks end.
    text = "".join(pieces)
    renderer = StreamRenderer()
    i = n = 0
    while i < len(text):
        size = sizes[n % len(sizes)]
        step = renderer.feed(text[i:i + size])
        i, n = i + size, n + 1
        assert step.tail == renderer.tail == split_stable_blocks(text[:i])[1]
        assert renderer.source == text[:i]


def test_copied_code_keeps_tabs_and_windows_line_ends_are_normalised():
    rendered = render_markdown("```make\r\nall:\r\n\tcc main.c\r\n```\r\n")
    assert rendered.code_blocks == ("all:\n\tcc main.c",)


def test_stream_scanner_understands_crlf_fences():
    assert split_stable_blocks("```\r\ncode\r\n```\r\n\r\nNext") == ("```\r\ncode\r\n```\r\n\r\n", "Next")


# --- fixing streamed pieces up to the render of the whole text ---------------------------


def stream_line_by_line(text: str) -> list[str]:
    renderer = StreamRenderer()
    for line in text.splitlines(keepends=True):
        renderer.feed(line)
    renderer.close()
    return renderer.html_parts


def apply(pieces: list[str], found: list[Patch]) -> str:
    """What a view shows after replacing the patched pieces (patches in order, not overlapping)."""
    out, i = [], 0
    for patch in found:
        assert i <= patch.start <= patch.end <= len(pieces)
        out.extend(pieces[i:patch.start])
        out.append(patch.html)
        i = patch.end
    out.extend(pieces[i:])
    return "\n".join(h for h in out if h)


def test_top_level_elements_split_rendered_html_at_its_outermost_tags():
    html = render_markdown("# T\n\n- a\n- b\n\n---\n\n```py\nx = '<p>'\n```\n\nEnd<br>").html
    elements = top_level_elements(html)
    assert [e.split(">")[0].split()[0] for e in elements] == ["<h1", "<ul", "<hr", "<table", "<p"]
    assert "\n".join(elements) == html


def test_pieces_that_render_like_the_whole_need_no_patch():
    text = "# Title\n\nIntro.\n\n- a\n- b\n\n```python\nx = 1\n```\n\n| a |\n|---|\n| 1 |\n\nEnd."
    pieces = stream_line_by_line(text)
    assert len(pieces) > 3 and patches(pieces, render_markdown(text).html) == []


def test_a_loose_list_is_patched_alone():
    text = "Intro.\n\n1. one\n\n2. two\n\n3. three\n\nMiddle.\n\n- x\n\n- y\n\nEnd."
    pieces = stream_line_by_line(text)
    full = render_markdown(text).html
    found = patches(pieces, full)
    assert [pieces[p.start:p.end] for p in found] == [pieces[1:4], pieces[5:7]]  # the two lists, nothing else
    assert [p.html.count("<li>") for p in found] == [3, 2] and all("<p>" in p.html for p in found)
    assert apply(pieces, found) == full


def test_a_reference_defined_at_the_end_patches_the_pieces_that_use_it():
    text = "See [docs][1].\n\nPlain.\n\nAgain [docs][1].\n\n[1]: https://example.org"
    pieces = stream_line_by_line(text)
    full = render_markdown(text).html
    found = patches(pieces, full)
    assert [(p.start, p.end) for p in found] == [(0, 1), (2, 3)]
    assert apply(pieces, found) == full


ELEMENTS = st.sampled_from(["<p>a</p>", "<p>b</p>", "<ul>\n<li>x</li>\n</ul>", "<hr />", "<h2>h</h2>",
                            '<table class="code"><tr><td>c</td></tr></table>'])


@settings(max_examples=300, deadline=None)
@given(st.lists(st.lists(ELEMENTS, min_size=1, max_size=3), max_size=10), st.lists(ELEMENTS, max_size=25))
def test_applying_the_patches_always_gives_the_full_render(piece_elements, full_elements):
    pieces = ["\n".join(elements) for elements in piece_elements]
    full = "\n".join(full_elements)
    found = patches(pieces, full)
    assert apply(pieces, found) == full
    assert all(p.html for p in found) or full == ""  # a view never has to remove pieces without a replacement


BLOCKS = st.sampled_from([
    "Para text.", "Two\nlines", "# Head", "## Sub", "- a\n- b", "- c", "* d", "1. one\n2. two", "3. three",
    "1. item\n\n    indented para", "- item\n    - nested", "> quote", "> more\n> lines", "---",
    "```python\nx = 1\n```", "~~~\ncode\n~~~", "    indented code", "| a | b |\n|---|---|\n| 1 | 2 |",
    "Text with `code` and *em*", "$x$ and \\(y\\)", "So\n\\[ a \\]\nthen", "- it\n  $$b$$ c", "1. step:\n\n    ```bash\n    run\n    ```",
    "Title\n=====", "> - quoted item", "> > nested quote", "  - two-space item", "\tTabbed", "+ plus item",
    # nested with 2 or 3 spaces, as models write them
    "- a\n  - b\n    - c", "1. step\n   - detail\n   - more", "* a\n   * b\n      * c", "  - b\n    - c",
    "- a\n\n  more of a", "1. x\n   ```py\n   y\n   ```\n   after", "1. First\n   - a\n     - b\n2. Second",
    # lists right under a paragraph line
    "Steps:\n1. one\n2. two", "Key points:\n- fast\n- small", "Note\n* x", "The year\n1999. was", "> q\n- a",
    "| a | b |\n|---|---|\n| 1 | 2 |\n- x", "a | b\n- | -\n1 | 2", "## Plan\n+ a", "Run:\n```sh\n- x\n```",
])


@settings(max_examples=400, deadline=None)
@given(st.lists(st.tuples(BLOCKS, st.sampled_from(["\n", "\n\n", "\n\n\n"])), min_size=1, max_size=12),
       st.randoms(use_true_random=False))
def test_pieces_with_their_continued_runs_rendered_together_match_the_whole_render(blocks, rnd):
    text = "".join(block + gap for block, gap in blocks)
    renderer = StreamRenderer()
    i = 0
    while i < len(text):
        n = rnd.randint(1, 30)
        renderer.feed(text[i:i + n])
        i += n
    renderer.close()
    runs = renderer.continued_runs()
    assert runs is not None  # (no reference definitions here)
    parts = renderer.html_parts
    found = [Patch(start, end, renderer.render_run(start, end)) for start, end in runs]
    assert apply(parts, found) == render_markdown(text).html


@pytest.mark.parametrize("text", [
    "Steps:\n\n1. First\n   - detail a\n     - deeper\n   - detail b\n\n2. Second\n\n   More on two.\n\nDone.",
    "- a\n  - b\n\n- c\n  - d\n    ```sh\n    run\n    ```\n    after\n- e\n\nEnd",
    "1. Install:\n   ```bash\n   pip install x\n   ```\n2. Use:\n   * import it\n   * call it\n\n3. Check\n\nText",
    # lists right under a paragraph line
    "Here are the steps:\n1. Install it\n2. Run it\n\nKey points:\n- fast\n- small\n\nThen:\n- more\n\nEnd",
    "Intro\n\n1. a\n2. b\n\nNot a list:\n1999. was a year\n- but this is\n\n> quote\n- after",
])
def test_lists_stream_to_the_same_html_as_a_whole_render(text):
    for size in (1, 3, 7):
        renderer = StreamRenderer()
        for i in range(0, len(text), size):
            renderer.feed(text[i:i + size])
        renderer.close()
        runs = renderer.continued_runs()
        found = [Patch(start, end, renderer.render_run(start, end)) for start, end in runs]
        assert apply(renderer.html_parts, found) == render_markdown(text).html


def test_boxed_final_answer_is_a_boxed_formula():
    (inside,) = formulas(render_markdown("So the answer is $\\boxed{391}$.").html)
    assert (inside.source, inside.kind) == ("\\boxed{391}", "$")
    (bare,) = formulas(render_markdown("**Final answer:** \\boxed{\\frac{1}{2}}").html)
    assert (bare.source, bare.kind, bare.boxed) == ("\\boxed{\\frac{1}{2}}", "\\boxed", True)
