"""The documentation is executable: its tutorials run, its references come from the code.

How a page's code blocks are treated:

- ```` ```bash ```` and ```` ```python ```` blocks run in order, in a fresh folder, like one
  terminal session (a ``cd`` carries over to the next block). A bash block made only of
  ``xraykit ...`` commands runs in-process through Typer's test runner (the same code, minus
  a few seconds of imports per command); any other bash block runs in ``bash``.
- a block with ``title="PATH"`` is a file the reader creates: it is written to PATH, not run.
- a block right after ``<!-- not-run: REASON -->`` is shown but not run (real data, long runs).
- blocks in other languages (``text``, ``toml`` without a title) are only shown.

Only the quickstart and the tutorials are run; on every page, each ``xraykit`` command in a
bash block must name a real command and real options, so even the not-run ones cannot rot.
Tutorials 1 to 4 form a series sharing one folder; Tutorial 5 installs a package, so it runs
in a throw-away virtual environment layered over this one (nothing is installed here).
"""

from __future__ import annotations

import json
import re
import shlex
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
sys.path.insert(0, str(ROOT / "scripts"))

import docs_hooks  # noqa: E402
import make_docs_figures  # noqa: E402
from docs_pages import (  # noqa: E402  (the pages' blocks, their notebooks and the runner live there)
    MAX_WIDTH,
    NOTEBOOK_PAGES,
    RUN_PAGES,
    TUTORIALS,
    blocks,
    commands,
    failed_checks,
    fill_values,
    installed_version,
    keep_outputs,
    notebook,
    notebook_path,
    pictures,
    run_notebook,
    session_for,
    shown_output,
    sources,
    value_specs,
)


def xraykit_calls(script: str) -> list[list[str]]:
    """The argument lists of every ``xraykit`` command in a bash block (after any VAR=value prefix)."""
    calls = []
    for command in commands(script):
        for part in re.split(r"\|\||&&|\||;", command):
            words = shlex.split(part)
            while words and re.match(r"^\w+=", words[0]):
                words = words[1:]
            if words and words[0] == "xraykit":
                calls.append(words[1:])
    return calls


# ----------------------------------------------------------------------------- running a page


@pytest.fixture(scope="module")
def folders(module_tmp):
    """One working folder per group of pages (a tutorial series runs in one, in order), inside ``module_tmp``."""
    return {}


SERIES = [page for page in RUN_PAGES if RUN_PAGES[page] == "series"]


@pytest.mark.slow
@pytest.mark.parametrize("page", SERIES)
def test_each_tutorial_of_the_series_runs_top_to_bottom_and_its_model_beats_its_baseline(
    page, folders, module_tmp, tmp_path, monkeypatch
):
    """Every code block runs in order and exits 0, offline (nothing is downloaded), and the page's checks
    hold for what it printed here: each model the page trains beats its majority baseline."""
    run_page(page, folders, module_tmp, tmp_path, monkeypatch)


def run_page(page, folders, module_tmp, tmp_path, monkeypatch) -> None:
    group = RUN_PAGES[page]
    if group not in folders:
        folders[group] = module_tmp / group.replace("/", "-")
        folders[group].mkdir()
    cwd = folders[group]
    monkeypatch.chdir(cwd)
    monkeypatch.setenv("COLUMNS", "80")
    # One thread: these runs are small, and on a busy 2-core machine a second thread only waits
    # for the first (tiny tensor ops slow down a hundredfold); the results do not depend on it.
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    modules = set(sys.modules)
    session = session_for(page, cwd, tmp_path / "venv")
    nb = notebook(page)
    try:
        run_notebook(nb, session)  # the page's blocks, as its notebook's cells
    finally:
        torch.set_num_threads(threads)
        for name in set(sys.modules) - modules:  # modules the page wrote and imported (xraykit_mycnn) go again
            if str(getattr(sys.modules[name], "__file__", None) or "").startswith(str(cwd)):
                del sys.modules[name]
    assert failed_checks(page, nb, kinds=("check",)) == []


def committed(page: str) -> dict:
    return json.loads(notebook_path(page).read_text(encoding="utf-8"))


@pytest.mark.parametrize("page", TUTORIALS)
def test_a_notebooks_markdown_holds_none_of_the_sites_own_syntax(page):
    """Jupyter shows Material's admonitions (``!!! note``) and attribute lists (``{ width=... }``) as
    literal text, so the notebook gets a quote and a plain image instead; the words stay."""
    text = "\n".join("".join(c["source"]) for c in notebook(page)["cells"] if c["cell_type"] == "markdown")
    assert not re.search(r"^\s*!!! ", text, re.M)
    assert not re.search(r"\)\{[^}]*\}", text)
    for m in re.finditer(r'^!!! \w+ "([^"]+)"', (DOCS / page).read_text(), re.M):
        assert f"> **{m.group(1)}**" in text


@pytest.mark.parametrize("page", NOTEBOOK_PAGES)
def test_each_page_has_its_notebook_made_from_the_page_as_it_is_now(page):
    expected = notebook(page)
    keep_outputs(expected, notebook_path(page))
    fill_values(page, expected)
    assert sources(committed(page)) == sources(expected), (
        f"{notebook_path(page).name} differs from {page}: run python scripts/docs_pages.py --execute"
    )


@pytest.mark.parametrize("page", NOTEBOOK_PAGES)
def test_each_notebooks_outputs_were_made_by_this_version_of_xraykit(page):
    assert committed(page)["metadata"]["xraykit"]["version"] == installed_version(), (
        f"{notebook_path(page).name} was executed by another xraykit: run python scripts/docs_pages.py --execute"
    )


@pytest.mark.parametrize("page", NOTEBOOK_PAGES)
def test_each_notebook_shows_at_least_two_figures_its_own_code_drew(page):
    drawn = sum(len(pictures(cell)) for cell in committed(page)["cells"] if cell["cell_type"] == "code")
    assert drawn >= 2, f"{page}: {drawn} figures"
    assert not re.search(r"\]\((\.\./)*img/", (DOCS / page).read_text()), "a figure linked instead of drawn"


@pytest.mark.parametrize("page", NOTEBOOK_PAGES)
def test_every_number_in_the_prose_is_read_from_the_outputs_and_every_claim_holds(page):
    """``{{ name }}`` in the prose is a value read from an output (no number typed by hand can go stale),
    and the page's checks and claims hold for the outputs the site shows."""
    text = (DOCS / page).read_text()
    named = {name for _, name, _ in value_specs(page)}
    assert set(re.findall(r"\{\{\s*(\w+)\s*\}\}", text)) <= named
    nb = committed(page)
    assert failed_checks(page, nb) == []
    markdown = "".join("".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "markdown")
    assert "{{" not in markdown, "a value the outputs do not give"


@pytest.mark.parametrize("page", [p.relative_to(DOCS).as_posix() for p in sorted(DOCS.rglob("*.md"))])
def test_no_code_line_is_wider_than_the_page_and_shown_outputs_wrap(page):
    """A code line of at most MAX_WIDTH characters fits the site's column at 1280 px, so no block scrolls
    sideways on a laptop; what a block printed is wrapped to that width on the site."""
    for block in blocks(DOCS / page):
        wide = [line for line in block.body.splitlines() if len(line) > MAX_WIDTH]
        assert wide == [], f"{page}:{block.line}: {wide[0]!r}"
    if page in NOTEBOOK_PAGES:
        for cell in committed(page)["cells"]:
            if cell["cell_type"] == "code":
                assert all(len(line) <= MAX_WIDTH for line in shown_output(cell).splitlines())


def test_each_tutorial_runs_in_three_minutes_and_all_five_in_ten():
    seconds = {page: committed(page)["metadata"]["xraykit"]["seconds"] for page in TUTORIALS}
    assert all(s <= 180 for s in seconds.values()), seconds
    assert sum(seconds.values()) <= 600, seconds


@pytest.mark.parametrize("page", NOTEBOOK_PAGES)
def test_each_notebook_opens_in_colab_and_installs_xraykit_first(page):
    first, install = notebook(page)["cells"][:2]
    assert "colab.research.google.com/github/" in "".join(first["source"])
    assert "".join(install["source"]).splitlines()[-1].startswith("%pip install")


# ----------------------------------------------------------------------------- rules every page keeps


def _pages() -> list[Path]:
    return sorted(DOCS.rglob("*.md"))


def test_not_run_blocks_are_rare_and_say_why():
    marked = [(p, b) for p in _pages() for b in blocks(p) if b.not_run is not None]
    assert all(b.not_run for _, b in marked), "a not-run marker needs a reason"
    run_blocks = sum(1 for p in RUN_PAGES for b in blocks(DOCS / p) if b.lang in ("bash", "python"))
    assert len(marked) <= run_blocks // 5, f"{len(marked)} not-run blocks: run them at a small size instead"


def test_every_run_page_has_code_that_runs():
    for page in RUN_PAGES:
        assert any(b.lang in ("bash", "python") and b.not_run is None and not b.title for b in blocks(DOCS / page)), (
            page
        )


@pytest.mark.parametrize(
    "page", [p.relative_to(DOCS).as_posix() for p in sorted(DOCS.rglob("*.md"))] + ["../README.md"]
)
def test_every_xraykit_command_in_the_docs_names_real_options(page):
    """Checked for every bash block, run or not: a renamed option or command fails here."""
    helps = docs_hooks.cli_help()
    for block in blocks(DOCS / page):
        if block.lang != "bash":
            continue
        for args in xraykit_calls(block.body):
            if not args or args[0].startswith("-"):
                continue
            command = args[0]
            assert command in helps, f"{page}:{block.line}: no command `xraykit {command}`"
            for word in args[1:]:
                if word.startswith("-") and word != "-":
                    option = word.split("=")[0]
                    assert re.search(rf"(^|[\s,/]){re.escape(option)}([\s,]|$)", helps[command], re.M), (
                        f"{page}:{block.line}: `xraykit {command}` has no option {option}"
                    )


def test_every_image_the_docs_show_is_made_by_the_figure_script():
    shown = {name for p in _pages() for name in re.findall(r"\]\((?:\.\./)*img/([^)\s]+)\)", p.read_text())}
    assert shown, "the docs show no figures"
    assert shown <= set(make_docs_figures.FIGURES), (
        f"not made by scripts/make_docs_figures.py: {shown - set(make_docs_figures.FIGURES)}"
    )
    for name in shown:
        assert (DOCS / "img" / name).is_file(), f"docs/img/{name} missing: run python scripts/make_docs_figures.py"


def test_every_page_is_in_the_navigation():
    nav = (ROOT / "mkdocs.yml").read_text()
    for page in _pages():
        assert page.relative_to(DOCS).as_posix() in nav, f"{page} is not in mkdocs.yml's nav"


# ----------------------------------------------------------------------------- generated references


def test_the_cli_reference_shows_the_help_of_every_command():
    from typer.main import get_command

    from xraykit.cli import app

    page = (DOCS / "reference" / "cli.md").read_text()
    assert docs_hooks.CLI_MARKER in page, "the CLI reference must be generated, not pasted"
    rendered = docs_hooks.render(page)
    names = list(get_command(app).commands)
    assert names
    for name in names:
        assert f"## `xraykit {name}`" in rendered, name
        assert f"Usage: xraykit {name} [OPTIONS]" in rendered, name


def test_every_hook_appears_in_the_hooks_reference_with_its_exact_signature():
    import inspect

    from xraykit import hookspecs, plugins

    page = (DOCS / "reference" / "hooks.md").read_text()
    assert docs_hooks.HOOKS_MARKER in page, "the hooks reference must be generated, not pasted"
    rendered = docs_hooks.render(page)
    declared = [name for name in dir(plugins.get_plugin_manager().hook) if not name.startswith("_")]
    assert set(declared) == set(plugins.KINDS.values())
    for name in declared:
        signature = f"def {name}{inspect.signature(getattr(hookspecs, name))}"
        assert signature in rendered, f"{signature} missing from docs/reference/hooks.md"


def test_the_published_reference_numbers_are_quoted_exactly():
    page = (DOCS / "results.md").read_text()
    for number in ("92.8%", "93.2%", "90.1%", "624", "0.854", "0.944", "0.864", "0.956"):
        assert number in page, number


def test_blocks_parser_reads_titles_and_not_run_markers(tmp_path):
    page = tmp_path / "p.md"
    page.write_text(
        textwrap.dedent("""\
        <!-- not-run: needs real data -->
        ```bash
        xraykit train chest_xray
        ```

        ```toml title="pkg/pyproject.toml"
        [project]
        ```
        """)
    )
    first, second = blocks(page)
    assert (first.lang, first.not_run, first.title) == ("bash", "needs real data", None)
    assert (second.lang, second.title, second.body) == ("toml", "pkg/pyproject.toml", "[project]\n")
    assert xraykit_calls("A=1 xraykit plugins | grep x\nxraykit train d \\\n  --epochs 2") == [
        ["plugins"],
        ["train", "d", "--epochs", "2"],
    ]


def test_the_teaching_guide_quotes_every_exercise_as_measured_with_this_version():
    """The guide's expected results are a table rendered from the measurement's own output, made by this
    version of xraykit, with a row for every exercise the measurement script runs."""
    import measure_teaching_ranges

    raw = json.loads(docs_hooks.TEACHING_RESULTS.read_text(encoding="utf-8"))
    assert f"xraykit {installed_version()}" in raw["machine"]
    assert set(measure_teaching_ranges.EXERCISES) == set(docs_hooks.EXERCISES) <= set(raw)
    assert docs_hooks.TEACHING_MARKER in (DOCS / "teaching.md").read_text()
    rendered = docs_hooks.render((DOCS / "teaching.md").read_text())
    assert all(f"| {label} |" in rendered for label in docs_hooks.EXERCISES.values())


def test_the_lecturers_table_is_rendered_from_the_stored_benchmark_results_on_both_pages():
    """Every setting measured has its row, with a verdict against float32 of its size and recipe."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import lecture_table

    found = lecture_table.rows()
    assert (224, "report", "32") in found and (128, "strong", "32") in found
    for page in ("performance.md", "teaching.md"):
        rendered = docs_hooks.render((DOCS / page).read_text())
        assert docs_hooks.LECTURE_MARKER not in rendered
        for size, recipe, setting in found:
            assert f"| {size} | {recipe} | `{setting}` |" in rendered, (page, size, recipe, setting)
