"""MkDocs hooks: the reference pages are generated from the code, so they cannot drift from it.

A page holds a marker comment and the build replaces it:

- ``<!-- xraykit:cli-reference -->``: ``xraykit --help`` and ``xraykit COMMAND --help`` for
  every command of the Typer app, exactly as a terminal prints them;
- ``<!-- xraykit:hooks-reference -->``: every hook in ``xraykit/hookspecs.py``, with its
  exact signature and docstring;
- ``<!-- xraykit:train-options -->``: every training option, a table made from the fields of
  ``TrainConfig`` (its one declaration: default, choices, meaning);
- ``<!-- xraykit:teaching-results -->``: the teaching guide's expected results and minutes, read from
  ``benchmarks/results/teaching.json`` (written by ``scripts/measure_teaching_ranges.py``);
- ``<!-- xraykit:lecture-table -->``: minutes and ranking of Task 1.1 per size, recipe and setting,
  gathered by ``benchmarks/lecture_table.py`` from the benchmarks' stored results.

``mkdocs.yml`` loads this file under ``hooks:``; ``tests/test_docs.py`` calls the same
functions, so a command or a hook missing from the docs fails the test suite.
"""

from __future__ import annotations

import functools
import inspect
import json
import os
import re
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import docs_pages  # noqa: E402  (the tutorial pages' blocks and notebooks)

CLI_MARKER = "<!-- xraykit:cli-reference -->"
HOOKS_MARKER = "<!-- xraykit:hooks-reference -->"
OPTIONS_MARKER = "<!-- xraykit:train-options -->"
TEACHING_MARKER = "<!-- xraykit:teaching-results -->"
TEACHING_RESULTS = docs_pages.ROOT / "benchmarks" / "results" / "teaching.json"
LECTURE_MARKER = "<!-- xraykit:lecture-table -->"
# exercise in measure_teaching_ranges.py -> its number in the teaching guide
EXERCISES = {
    "demo": "1. demo",
    "overfit": "2. over-fitting",
    "underfit": "3. under-fitting",
    "counting": "4. counting",
    "transfer": "5. transfer",
    "contrast": "6. contrast",
    "explanations": "7. explanations",
    "backbones": "8. small against large",
    "mycnn": "9. your backbone",
}

# Typer reads TYPER_USE_RICH when it is imported, so the help is rendered in a fresh process:
# plain text at a fixed width, what `xraykit COMMAND --help` prints in an 80-column terminal.
_HELP_SCRIPT = """
import json, typer
from typer.testing import CliRunner
from xraykit.cli import app
names = list(typer.main.get_command(app).commands)
run = lambda args: CliRunner().invoke(app, args, prog_name="xraykit", terminal_width=80).output
print(json.dumps({"": run(["--help"]), **{name: run([name, "--help"]) for name in names}}))
"""


@functools.lru_cache(maxsize=1)
def cli_help() -> dict[str, str]:
    """``{command: help text}`` for every command, and ``""`` for ``xraykit --help`` itself."""
    env = {**os.environ, "TYPER_USE_RICH": "0", "COLUMNS": "80", "NO_COLOR": "1"}
    done = subprocess.run(
        [sys.executable, "-c", _HELP_SCRIPT],
        env=env,
        capture_output=True,
        text=True,
        check=False,
        stdin=subprocess.DEVNULL,
        timeout=600,
    )
    if done.returncode != 0:
        raise RuntimeError(f"could not render the CLI help:\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def _summary(help_text: str) -> str:
    """The paragraph after the usage line: the command's docstring."""
    paragraphs = [p.strip() for p in help_text.split("\n\n")]
    return " ".join(paragraphs[1].split()) if len(paragraphs) > 1 else ""


def cli_reference() -> str:
    """Markdown: one section per command, its summary and its ``--help`` output."""
    helps = cli_help()
    lines = ["```text", "$ xraykit --help", helps[""].rstrip(), "```", ""]
    for name, text in helps.items():
        if not name:
            continue
        lines += [
            f"## `xraykit {name}`",
            "",
            _summary(text),
            "",
            "```text",
            f"$ xraykit {name} --help",
            text.rstrip(),
            "```",
            "",
        ]
    return "\n".join(lines)


def hookspecs() -> dict[str, object]:
    """The hook specifications, by name, in the order ``hookspecs.py`` defines them."""
    from xraykit import hookspecs as module

    return {name: fn for name, fn in vars(module).items() if callable(fn) and hasattr(fn, "xraykit_spec")}


def hook_signature(fn) -> str:
    """``def name(params)`` exactly as ``hookspecs.py`` declares it."""
    return f"def {fn.__name__}{inspect.signature(fn)}"


def hooks_reference() -> str:
    """Markdown: one section per hook, its exact signature and its docstring."""
    lines = []
    for name, fn in hookspecs().items():
        doc = inspect.getdoc(fn) or ""
        lines += [
            f"### `{name}`",
            "",
            "```python",
            "@xraykit.hookimpl",
            f"{hook_signature(fn)}:",
            "    ...",
            "```",
            "",
            doc,
            "",
        ]
    return "\n".join(lines)


def train_options_reference() -> str:
    """Markdown: one row per training option, from its declaration in ``TrainConfig``."""
    import dataclasses

    from xraykit.config import RECIPES, TrainConfig, option_names

    fields = {f.name: f for f in dataclasses.fields(TrainConfig)}
    lines = ["| option | default | meaning |", "| --- | --- | --- |"]
    for name in option_names():
        meta = fields[name].metadata
        if meta["recipe"]:
            default = ", ".join(f"{recipe}: `{_value(values[name])}`" for recipe, values in RECIPES.items())
        else:
            default = (
                "the task's"
                if fields[name].default is None and meta["per_task"]
                else f"`{_value(fields[name].default)}`"
            )
        choices = f" One of: {', '.join(f'`{c}`' for c in meta['choices'])}." if meta["choices"] else ""
        shared = "" if meta["per_task"] else " (`compare` too)"
        help_text = meta["help"].replace("|", "\\|")
        lines.append(f"| `{name}`{shared} | {default} | {help_text}{choices} |")
    return "\n".join(lines)


def _value(value) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


def teaching_results() -> str:
    """Markdown: one row per measured number of each exercise, smallest to largest over the seeds."""
    raw = json.loads(TEACHING_RESULTS.read_text(encoding="utf-8"))
    lines = [
        f"Measured on {raw['machine']}.",
        "",
        "| exercise | measured | smallest to largest | minutes per seed |",
        "| --- | --- | --- | --- |",
    ]
    for name, label in EXERCISES.items():
        numbers = raw[name]
        minutes = numbers["minutes per seed"]
        first = True
        for key, values in numbers.items():
            if key == "minutes per seed":
                continue
            span = f"{_measured(key, min(values))} to {_measured(key, max(values))}"
            if min(values) == max(values):
                span = f"{_measured(key, values[0])} (every seed)"
            time = _minutes(minutes) if first else ""
            lines.append(f"| {label if first else ''} | {key} | {span} | {time} |")
            first = False
    return "\n".join(lines)


def _measured(key: str, value: float) -> str:
    if "epoch of" in key or key in ("trainable", "total"):
        return f"{value:,.0f}"
    if "loss" in key:
        return f"{value:.2f}"
    if any(word in key for word in ("accuracy", "called", "baseline")):
        return f"{100 * value:.1f}%"
    if "s/epoch" in key:
        return f"{value:.2f} s"
    return f"{value:.3f}"


def _minutes(values: list[float]) -> str:
    """Minutes per seed as a person reads them: seconds under a minute, one decimal above."""
    low, high = min(values), max(values)
    if high < 1:
        return f"{60 * low:.0f} to {60 * high:.0f} s" if round(60 * low) != round(60 * high) else f"{60 * low:.0f} s"
    return f"{low:.1f} to {high:.1f} min" if round(low, 1) != round(high, 1) else f"{low:.1f} min"


def render(markdown: str) -> str:
    """Replace the markers in one page's Markdown by the generated reference."""
    if CLI_MARKER in markdown:
        markdown = markdown.replace(CLI_MARKER, cli_reference())
    if HOOKS_MARKER in markdown:
        markdown = markdown.replace(HOOKS_MARKER, hooks_reference())
    if OPTIONS_MARKER in markdown:
        markdown = markdown.replace(OPTIONS_MARKER, train_options_reference())
    if TEACHING_MARKER in markdown:
        markdown = markdown.replace(TEACHING_MARKER, teaching_results())
    if LECTURE_MARKER in markdown:
        markdown = markdown.replace(LECTURE_MARKER, lecture_table())
    return markdown


def lecture_table() -> str:
    """Markdown: ``benchmarks/lecture_table.py``'s table of the stored benchmark results."""
    sys.path.insert(0, str(docs_pages.ROOT / "benchmarks"))
    import lecture_table as table

    return table.markdown()


def with_outputs(markdown: str, page: str) -> str:
    """``markdown`` with, under each block, what it printed and drew in the page's executed notebook, and
    each ``{{ name }}`` of the prose replaced by the value read from those outputs.

    A block whose code differs from its notebook cell (the page edited since the notebook was run)
    shows no output: ``tests/test_docs.py`` fails until ``scripts/docs_pages.py --execute`` runs again.
    """
    path = docs_pages.notebook_path(page)
    if page not in docs_pages.NOTEBOOK_PAGES or not path.is_file():
        return markdown
    book = json.loads(path.read_text(encoding="utf-8"))
    cells = {
        c["metadata"]["xraykit"]["block"]: c
        for c in book["cells"]
        if c["cell_type"] == "code" and "xraykit" in c["metadata"]
    }
    found = docs_pages.blocks(docs_pages.DOCS / page, markdown)
    for index in reversed(range(len(found))):
        block, cell = found[index], cells.get(index)
        if cell is None or "".join(cell["source"]) != docs_pages.cell_source(block):
            continue
        output = ""
        shown = docs_pages.shown_output(cell)
        if shown:
            fence = "````" if "```" in shown else "```"
            output += f'\n\n{fence}{{ .text .xraykit-output title="Output" }}\n{shown}\n{fence}'
        for table in docs_pages.tables(cell):
            output += f'\n\n<div class="xraykit-output" markdown="0">{" ".join(table.split())}</div>'
        for picture in docs_pages.pictures(cell):
            output += f"\n\n![A figure drawn by the code above](data:image/png;base64,{picture})"
        markdown = markdown[: block.end] + output + markdown[block.end :]
    values = docs_pages.values_of(page, book, strict=False)
    return docs_pages._PLACEHOLDER.sub(lambda m: values.get(m.group(1), m.group(0)), markdown)


def colab_badge(markdown: str, page: str) -> str:
    """The page's "Open in Colab" badge and notebook link, under its title."""
    if page not in docs_pages.NOTEBOOK_PAGES:
        return markdown
    title, _, rest = markdown.partition("\n")
    notebook = os.path.relpath(docs_pages.notebook_path(page), (docs_pages.DOCS / page).parent).replace(os.sep, "/")
    link = f"[download the notebook]({notebook})"
    return f"{title}\n\n{docs_pages.badge(page)} or {link}: this page as a Jupyter notebook.\n{rest}"


def on_page_markdown(markdown: str, page=None, **kwargs) -> str:
    src = page.file.src_path.replace(os.sep, "/") if page is not None else ""
    return colab_badge(with_outputs(render(markdown), src), src)


# Docstrings in the code use Sphinx roles (":class:`xraykit.Backbone`"); on this site the name
# alone, set as code, reads better than the role left as text.
_ROLE = re.compile(r":(?:class|func|meth|mod|attr|data|exc|obj):(<code>)")


def on_page_content(html: str, **kwargs) -> str:
    return _ROLE.sub(r"\1", html)
