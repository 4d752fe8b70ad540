"""The tutorial pages as code: their blocks, the notebook each page becomes, and a runner for both.

The page is the source. ``notebook(page)`` turns it into a Jupyter notebook, cell for block:
prose becomes Markdown cells, a ``python`` block a code cell, each line of a ``bash`` block a
``!command`` (``cd DIR`` becomes ``%cd DIR``, which persists as a terminal's ``cd`` does), a
block titled ``title="PATH"`` a ``%%writefile PATH`` cell; a not-run block stays as shown text.
The first cells give an "Open in Colab" badge and install xraykit from the repository; a
tutorial that continues earlier ones first makes what they made, when it is opened on its own.

    python scripts/docs_pages.py            # write docs/notebooks/*.ipynb (outputs of unchanged cells kept)
    python scripts/docs_pages.py --execute  # ... and run them top to bottom, keeping each cell's output

The executed notebooks are also where each page's printed output comes from: the site's build
(``docs_hooks.py``) puts a cell's output under the block it came from. ``tests/test_docs.py``
runs every page through the same :class:`Session`, cell by cell, and checks that the committed
notebooks are exactly what their pages make, so a page, its notebook and its shown output cannot drift.
"""

from __future__ import annotations

import argparse
import ast
import base64
import contextlib
import glob
import io
import json
import os
import re
import shlex
import subprocess
import sys
import textwrap
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
NOTEBOOKS = DOCS / "notebooks"
REPOSITORY = re.search(r"^repo_url: https://github.com/(\S+?)/?$", (ROOT / "mkdocs.yml").read_text(), re.M).group(1)
INSTALL = f'%pip install -q "xraykit @ git+https://github.com/{REPOSITORY}"'

# page -> the folder it runs in; pages sharing a folder run in this order and build on each other
RUN_PAGES = {
    "quickstart.md": "quickstart",
    "tutorials/scratch.md": "series",
    "tutorials/finetune.md": "series",
    "tutorials/evaluate.md": "series",
    "tutorials/explain.md": "series",
    "tutorials/plugin.md": "plugin",
}
VENV_PAGES = {"tutorials/plugin.md"}
TUTORIALS = [page for page in RUN_PAGES if page.startswith("tutorials/")]
NOTEBOOK_PAGES = ["quickstart.md", *TUTORIALS]  # each is also a notebook, its outputs shown on the site
FIGURE_DPI = 80  # a figure shown in a notebook: readable on the page, small in the notebook file
MAX_OUTPUT_LINES = 40  # a longer output is shown cut, with the number of lines left out

_FENCE = re.compile(
    r"^(?P<indent>[ ]*)```(?P<lang>[\w-]*)(?P<info>[^\n]*)\n(?P<body>.*?)^(?P=indent)```[ \t]*$", re.M | re.S
)
_NOT_RUN = re.compile(r"<!--\s*not-run:\s*(?P<reason>[^>]*?)\s*-->\s*$")
# <!-- values: name="regex" ... --> after a block: each regex's first group, read from that block's output,
# is {{ name }} in the prose; <!-- check: expression --> is a claim about those values that must hold.
_VALUES = re.compile(r"<!--\s*values:(?P<pairs>.*?)-->", re.S)
_PAIR = re.compile(r'(?P<name>\w+)\s*=\s*"(?P<regex>(?:[^"\\]|\\.)*)"')
_CHECK = re.compile(r"<!--\s*(?P<kind>check|claim):\s*(?P<expression>.*?)\s*-->", re.S)
_PLACEHOLDER = re.compile(r"\{\{\s*(\w+)\s*\}\}")
MAX_WIDTH = 84  # columns: a code line wider than this scrolls sideways on the site at 1280 px (outputs wrap)
SHELL = re.compile(r"[|&;<>$`(){}]")


@dataclass
class Block:
    lang: str
    title: str | None
    body: str
    not_run: str | None  # the reason, when marked not-run
    line: int
    start: int = 0  # character offsets of the whole fence in the page
    end: int = 0

    @property
    def runs(self) -> bool:
        return self.not_run is None and (self.title is not None or self.lang in ("bash", "python"))


def blocks(page: Path, text: str | None = None) -> list[Block]:
    """Every fenced block of ``page`` (or of ``text``, the page's Markdown), in order."""
    text = page.read_text(encoding="utf-8") if text is None else text
    found = []
    for m in _FENCE.finditer(text):
        title = re.search(r'title="([^"]+)"', m.group("info"))
        before = text[: m.start()].rstrip("\n").rsplit("\n", 1)[-1]
        reason = _NOT_RUN.search(before)
        body = textwrap.dedent(m.group("body")) if m.group("indent") else m.group("body")
        found.append(
            Block(
                m.group("lang"),
                title.group(1) if title else None,
                body,
                reason.group("reason") if reason else None,
                text[: m.start()].count("\n") + 1,
                m.start(),
                m.end(),
            )
        )
    return found


def commands(script: str) -> list[str]:
    """The logical command lines of a bash block: continuations joined, comments and blanks dropped."""
    joined = re.sub(r"[ \t]*\\\n[ \t]*", " ", script)
    return [
        line.split(" #")[0].strip() for line in joined.splitlines() if line.strip() and not line.strip().startswith("#")
    ]


# ----------------------------------------------------------------------------- numbers read from outputs


def value_specs(page: str) -> list[tuple[int, str, str]]:
    """``(block, name, regex)`` for each ``<!-- values: name="regex" -->`` of ``page``: the value is the
    regex's first group in the output of the block just above the marker."""
    text = (DOCS / page).read_text(encoding="utf-8")
    found = blocks(DOCS / page, text)
    specs = []
    for m in _VALUES.finditer(text):
        above = [i for i, b in enumerate(found) if b.end <= m.start()]
        if not above:
            raise ValueError(f"{page}: a values marker above the first block")
        specs += [(above[-1], pair["name"], pair["regex"].replace('\\"', '"')) for pair in _PAIR.finditer(m["pairs"])]
    return specs


def page_checks(page: str, kinds: tuple[str, ...] = ("check", "claim")) -> list[str]:
    """The ``<!-- check: expression -->`` and ``<!-- claim: expression -->`` of ``page``, in terms of its
    values (as numbers).

    A check must hold wherever the page runs (a model that beats its baseline); a claim is what the
    prose says of the outputs shown on the site, held against those outputs (a ranking that one
    CPU's rounding could turn on another machine).
    """
    text = (DOCS / page).read_text(encoding="utf-8")
    return [m["expression"] for m in _CHECK.finditer(text) if m["kind"] in kinds]


def values_of(page: str, nb: dict, strict: bool = True) -> dict[str, str]:
    """Each value of ``page`` as its executed notebook ``nb`` printed it; a regex that finds nothing is an
    error (``strict``) or left out."""
    cells = {c["metadata"]["xraykit"]["block"]: c for c in nb["cells"] if "xraykit" in c.get("metadata", {})}
    found = {}
    for block, name, regex in value_specs(page):
        m = re.search(regex, output_text(cells.get(block, {})), re.M)
        if m is not None:
            found[name] = m.group(1)
        elif strict:
            raise ValueError(f"{page}: value {name} ({regex!r}) is not in the output of block {block}")
    return found


def number(text: str) -> float | str:
    """``"84.7%"`` as 84.7, ``"1,026"`` as 1026.0: a value as a check compares it (a word stays a word)."""
    try:
        return float(text.strip().rstrip("%").replace(",", ""))
    except ValueError:
        return text


def failed_checks(page: str, nb: dict, kinds: tuple[str, ...] = ("check", "claim")) -> list[str]:
    """The checks (and claims) of ``page`` that its outputs in ``nb`` do not satisfy: a page that trains
    says its model beats its baseline, and this holds it to that."""
    numbers = {name: number(value) for name, value in values_of(page, nb).items()}
    allowed = {"__builtins__": {}, "abs": abs, "min": min, "max": max}
    return [check for check in page_checks(page, kinds) if not eval(check, allowed, dict(numbers))]


def fill_values(page: str, nb: dict) -> None:
    """The ``{{ name }}`` of ``nb``'s prose replaced by the values its outputs hold (left as they are when
    the notebook has not run)."""
    found = values_of(page, nb, strict=False)
    for cell in nb["cells"]:
        if cell["cell_type"] == "markdown":
            text = _PLACEHOLDER.sub(lambda m: found.get(m.group(1), m.group(0)), "".join(cell["source"]))
            cell["source"] = text.splitlines(keepends=True)


# ----------------------------------------------------------------------------- page -> notebook


def cell_source(block: Block) -> str:
    """What a run block becomes in the notebook."""
    if block.title:
        return f"%%writefile {block.title}\n{block.body}".rstrip("\n")
    if block.lang == "bash":
        return "\n".join(f"%cd {c[3:]}" if c.startswith("cd ") else f"!{c}" for c in commands(block.body))
    return block.body.rstrip("\n")


def _admonition(m: re.Match) -> str:
    """A Material admonition (``!!! note "Title"`` and its indented body) as a Markdown quote, which
    Jupyter renders; the site's syntax would show in a notebook as literal text."""
    title = m.group("title") or m.group("kind").capitalize()
    body = textwrap.dedent(m.group("body")).strip("\n")
    return "\n".join(["> **" + title + "**", ">"] + [("> " + line).rstrip() for line in body.splitlines()]) + "\n\n"


def _markdown(text: str) -> str:
    text = re.sub(r"<!--.*?-->", "", text, flags=re.S)  # markers for the docs tests, not for readers
    text = re.sub(
        r'^!!! (?P<kind>\w+)(?: "(?P<title>[^"]*)")?\n(?P<body>(?:(?: {4}.*)?\n)+)', _admonition, text, flags=re.M
    )
    text = re.sub(r"(!\[[^\]]*\]\([^)]*\))\{[^}]*\}", r"\1", text)  # the site's { width=... }: not Markdown
    text = re.sub(r"\]\((\.\./)*img/", f"](https://raw.githubusercontent.com/{REPOSITORY}/main/docs/img/", text)
    return re.sub(r"\n{3,}", "\n\n", text).strip()


def _cell(kind: str, source: str, **metadata: object) -> dict:
    cell: dict = {"cell_type": kind, "metadata": metadata, "source": source.splitlines(keepends=True)}
    if kind == "code":
        cell.update(execution_count=None, outputs=[])
    return cell


def colab_url(page: str) -> str:
    return f"https://colab.research.google.com/github/{REPOSITORY}/blob/main/docs/notebooks/{Path(page).stem}.ipynb"


def badge(page: str) -> str:
    return f"[![Open in Colab](https://colab.research.google.com/assets/colab-badge.svg)]({colab_url(page)})"


def _made_before(page: str) -> list[str]:
    """The commands of the earlier pages of ``page``'s series that make data and runs (synth, train)."""
    earlier = [p for p in RUN_PAGES if RUN_PAGES[p] == RUN_PAGES[page]]
    made = []
    for p in earlier[: earlier.index(page)]:
        for block in blocks(DOCS / p):
            if block.runs and block.lang == "bash" and not block.title:
                made += [c for c in commands(block.body) if re.match(r"xraykit (synth|train) ", c)]
    return made


def notebook(page: str) -> dict:
    """The notebook for ``page`` (relative to docs/): its prose and blocks, cell for block."""
    text = (DOCS / page).read_text(encoding="utf-8")
    page_url = f"https://{REPOSITORY.split('/')[0]}.github.io/{REPOSITORY.split('/')[1]}/{page[:-3]}/"
    cells = [
        _cell(
            "markdown",
            f"{badge(page)}\n\nThis notebook is made from the page [{page}]({page_url}) of xraykit's "
            "documentation; the two hold the same code.",
        ),
        _cell(
            "code",
            f"# In Colab or a fresh environment: install xraykit (skip if it is installed).\n{INSTALL}",
            tags=["install"],
        ),
    ]
    made = _made_before(page)
    if made:
        cells.append(
            _cell(
                "code",
                (
                    "# This tutorial continues the ones before it, in the same folder. Opened on its own (in\n"
                    "# Colab, say), this cell first makes what they made; next to their files it does nothing.\n"
                    "import subprocess\nfrom pathlib import Path\n\n"
                    f"for command in {json.dumps(made, indent=4)}:\n"
                    "    made = command.split('--out ')[-1].split()[0] if '--out ' in command else command.split()[2]\n"
                    "    if not Path(made).exists():\n"
                    "        subprocess.run(command, shell=True, check=True)"
                ),
                tags=["prerequisites"],
            )
        )
    position = 0
    for index, block in enumerate(blocks(DOCS / page, text)):
        shown_only = not block.runs
        if shown_only:
            continue  # stays inside the Markdown around it
        prose = _markdown(text[position : block.start])
        if prose:
            cells.append(_cell("markdown", prose))
        cells.append(_cell("code", cell_source(block), xraykit={"page": page, "block": index, "line": block.line}))
        position = block.end
    rest = _markdown(text[position:])
    if rest:
        cells.append(_cell("markdown", rest))
    return {
        "cells": cells,
        "metadata": {
            "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
            "language_info": {"name": "python"},
        },
        "nbformat": 4,
        "nbformat_minor": 5,
    }


def notebook_path(page: str) -> Path:
    return NOTEBOOKS / f"{Path(page).stem}.ipynb"


def sources(nb: dict) -> list[tuple[str, str]]:
    """Each cell's kind and source: what must match between a page and its committed notebook."""
    return [(c["cell_type"], "".join(c["source"])) for c in nb["cells"]]


def write(nb: dict, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    tmp.replace(path)


# ----------------------------------------------------------------------------- running cells


def stream(text: str) -> dict:
    return {"output_type": "stream", "name": "stdout", "text": text.splitlines(keepends=True)}


def rich(obj: object, kind: str) -> dict:
    """``obj`` as Jupyter shows it: a matplotlib figure or anything with ``_repr_png_`` as a PNG, anything with
    ``_repr_html_`` as HTML, and always as text."""
    from matplotlib.figure import Figure

    data: dict = {"text/plain": repr(obj).splitlines(keepends=True)}
    png = None
    if isinstance(obj, Figure):
        buffer = io.BytesIO()
        obj.savefig(buffer, format="png", dpi=FIGURE_DPI, bbox_inches="tight")
        png = buffer.getvalue()
    elif hasattr(obj, "_repr_png_"):
        png = obj._repr_png_()
    elif hasattr(obj, "_repr_html_"):
        data["text/html"] = obj._repr_html_().splitlines(keepends=True)
    if png is not None:
        data["image/png"] = base64.b64encode(png).decode("ascii")
    output = {"output_type": kind, "data": data, "metadata": {}}
    if kind == "execute_result":
        output["execution_count"] = None
    return output


class Session:
    """One reader's notebook: a current folder and a namespace that persist from cell to cell.

    ``!xraykit ...`` runs in this process through Typer's test runner when ``in_process`` (the same
    code, minus a few seconds of imports per command); any other ``!command`` runs in ``bash``.
    """

    def __init__(self, cwd: Path, env: dict[str, str], in_process: bool):
        self.cwd, self.env, self.in_process = cwd, env, in_process
        self.root = cwd.resolve()  # printed paths are shown relative to it, as a reader's would be
        self.namespace: dict = {"__name__": "__main__"}

    def run(self, source: str, where: str) -> list[dict]:
        """Run one code cell; its outputs as a notebook stores them (printed text, pictures, a last value)."""
        if source.startswith("%%writefile "):
            first, _, body = source.partition("\n")
            path = self.cwd / first.split(maxsplit=1)[1]
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(body + "\n", encoding="utf-8")
            return [stream(f"Writing {first.split(maxsplit=1)[1]}\n")]
        lines = source.splitlines()
        if lines and all(line.startswith(("!", "%cd ")) for line in lines):
            text = "".join(self._line(line, where) for line in lines)
            return [stream(text)] if text else []
        return self._python(source, where)

    def _line(self, line: str, where: str) -> str:
        if line.startswith("%cd "):
            self.cwd = (self.cwd / line[4:].strip()).resolve()
            return ""
        command = line[1:]
        if self.in_process and command.startswith("xraykit ") and not SHELL.search(command):
            return self._xraykit(command, where)
        return self._bash(command, where)

    def _python(self, source: str, where: str) -> list[dict]:
        """As Jupyter runs a cell: printed text, ``display(x)`` where it is called, and the value of a last
        line that is an expression (a figure shows as its picture, a run or metrics as their table)."""
        os.chdir(self.cwd)
        sys.path.insert(0, str(self.cwd))
        outputs: list[dict] = []
        printed = io.StringIO()

        def flush() -> None:
            if printed.getvalue():
                outputs.append(stream(printed.getvalue()))
                printed.seek(0)
                printed.truncate()

        def display(*objects: object) -> None:
            for obj in objects:
                flush()
                outputs.append(rich(obj, "display_data"))

        self.namespace["display"] = display  # a Jupyter built-in
        tree = ast.parse(source)
        last = tree.body.pop() if tree.body and isinstance(tree.body[-1], ast.Expr) else None
        value = None
        try:
            with contextlib.redirect_stdout(printed):
                exec(compile(tree, where, "exec"), self.namespace)
                if last is not None:
                    expression = ast.fix_missing_locations(ast.Expression(last.value))
                    value = eval(compile(expression, where, "eval"), self.namespace)
        finally:
            sys.path.remove(str(self.cwd))
        flush()
        if value is not None:
            outputs.append(rich(value, "execute_result"))
        return outputs

    def _xraykit(self, command: str, where: str) -> str:
        from typer.testing import CliRunner

        from xraykit.cli import app

        os.chdir(self.cwd)
        args = []
        for word in shlex.split(command)[1:]:
            matches = sorted(glob.glob(word)) if glob.has_magic(word) else []
            args += matches or [word]  # like bash: a pattern that matches nothing stays as it is
        result = CliRunner().invoke(app, args, catch_exceptions=False, terminal_width=80)
        assert result.exit_code == 0, f"{where}: `{command}` exited {result.exit_code}:\n{result.output}"
        return result.output

    def _bash(self, command: str, where: str) -> str:
        done = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", command],
            cwd=self.cwd,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert done.returncode == 0, (
            f"{where}: bash exited {done.returncode}:\n{command}\n"
            f"--- stdout\n{done.stdout[-4000:]}\n--- stderr\n{done.stderr[-4000:]}"
        )
        return done.stdout


def _site_dirs() -> list[str]:
    """Every site-packages folder this interpreter imports from, in its order (a venv's, the base's if it
    includes them, the user's)."""
    import site

    found = [p for p in sys.path if os.path.basename(p.rstrip(os.sep)) in ("site-packages", "dist-packages")]
    found += site.getsitepackages()
    if site.ENABLE_USER_SITE:
        found.append(site.getusersitepackages())
    return [p for p in dict.fromkeys(os.path.realpath(p) for p in found) if os.path.isdir(p)]


def throwaway_venv(where: Path) -> Path:
    """A virtual environment that sees this one's packages but installs into its own folder; its bin/.

    ``--system-site-packages`` would not do: run from inside a virtual environment it shows the base
    interpreter's packages, not this environment's. A ``.pth`` file in the new environment adds this
    interpreter's site folders after its own, through ``site.addsitedir`` so that their ``.pth`` files
    (an editable xraykit) work too; ``pip`` comes from there, and installs into the new environment.
    """
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(where)], check=True)
    inner = subprocess.run(
        [str(where / "bin" / "python3"), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    lines = [f"import site; site.addsitedir({d!r})" for d in _site_dirs() if d != os.path.realpath(inner)]
    (Path(inner) / "_outer_environment.pth").write_text("\n".join(lines) + "\n")
    xraykit = where / "bin" / "xraykit"
    xraykit.write_text(f"#!{where / 'bin' / 'python3'}\nfrom xraykit.cli import main\nmain()\n")
    xraykit.chmod(0o755)
    return where / "bin"


def session_for(page: str, cwd: Path, scratch: Path) -> Session:
    """The session a page runs in; the plugin tutorial installs a package, so it gets a throw-away venv."""
    env = environment()
    if page in VENV_PAGES:
        bin_dir = throwaway_venv(scratch)
        env.update(PATH=f"{bin_dir}{os.pathsep}{env['PATH']}", VIRTUAL_ENV=str(bin_dir.parent))
    return Session(cwd, env, in_process=page not in VENV_PAGES)


def run_notebook(nb: dict, session: Session) -> None:
    """Every code cell in order (the install cell aside: xraykit is installed); outputs kept in ``nb``,
    with the session's folder shown as ``.`` (as a reader's own folder would be)."""
    for count, cell in enumerate((c for c in nb["cells"] if c["cell_type"] == "code"), start=1):
        if "install" in cell["metadata"].get("tags", []):
            continue
        where = cell["metadata"].get("xraykit", {})
        started = time.perf_counter()
        outputs = session.run("".join(cell["source"]), f"docs/{where.get('page', '?')}:{where.get('line', '?')}")
        if "xraykit" in cell["metadata"]:
            cell["metadata"]["xraykit"]["seconds"] = round(time.perf_counter() - started, 1)
        for output in outputs:
            for key, lines in [("text", output.get("text")), *output.get("data", {}).items()]:
                if isinstance(lines, list):
                    root, home = str(session.root), str(Path.home())
                    relative = [line.replace(root + os.sep, "").replace(root, ".").replace(home, "~") for line in lines]
                    (output if key == "text" else output["data"])[key] = relative
            if output["output_type"] == "execute_result":
                output["execution_count"] = count
        cell["execution_count"] = count
        cell["outputs"] = outputs
    nb["metadata"].setdefault("xraykit", {})["version"] = installed_version()


def installed_version() -> str:
    from xraykit import __version__

    return __version__


def output_text(cell: dict) -> str:
    """What a cell printed, and the text of a last value that is neither a picture nor a table."""
    parts = []
    for o in cell.get("outputs", []):
        if o.get("output_type") == "stream":
            parts.append("".join(o["text"]))
        elif o.get("output_type") == "execute_result" and not {"image/png", "text/html"} & set(o["data"]):
            parts.append("".join(o["data"]["text/plain"]) + "\n")
    return "".join(parts)


def pictures(cell: dict) -> list[str]:
    """The cell's pictures, base64 PNGs, in order."""
    return [o["data"]["image/png"] for o in cell.get("outputs", []) if "image/png" in o.get("data", {})]


def tables(cell: dict) -> list[str]:
    """The cell's HTML outputs (a run, metrics), in order."""
    return ["".join(o["data"]["text/html"]) for o in cell.get("outputs", []) if "text/html" in o.get("data", {})]


def shown_output(cell: dict) -> str:
    """A cell's printed output as the page shows it: at most MAX_OUTPUT_LINES lines, trailing space trimmed."""
    text = output_text(cell)
    lines = []
    for line in text.rstrip().splitlines():  # a long line wraps, as a notebook shows it, instead of scrolling
        lines += textwrap.wrap(line.rstrip(), MAX_WIDTH, subsequent_indent="  ", drop_whitespace=False) or [""]
    if len(lines) > MAX_OUTPUT_LINES:
        lines = lines[:MAX_OUTPUT_LINES] + [f"... ({len(lines) - MAX_OUTPUT_LINES} more lines)"]
    return "\n".join(lines)


def environment() -> dict[str, str]:
    """What the pages run under: no network for pip, one thread, a terminal 80 columns wide."""
    return {
        **os.environ,
        "PIP_NO_INDEX": "1",
        "PIP_NO_BUILD_ISOLATION": "0",  # pip reads this backwards: builds use this environment's setuptools
        "PIP_DISABLE_PIP_VERSION_CHECK": "1",
        "PIP_ROOT_USER_ACTION": "ignore",
        "COLUMNS": "80",
        "OMP_NUM_THREADS": "1",
        "NO_COLOR": "1",
    }


def keep_outputs(nb: dict, path: Path) -> None:
    """Outputs of the notebook at ``path`` copied into ``nb`` for each code cell whose code is unchanged,
    so that editing a page's prose does not cost a run; a changed cell is left without output."""
    if not path.is_file():
        return
    old = json.loads(path.read_text(encoding="utf-8"))
    ran = {"".join(c["source"]): c for c in old["cells"] if c["cell_type"] == "code"}
    for cell in nb["cells"]:
        before = ran.get("".join(cell["source"]))
        if cell["cell_type"] == "code" and before is not None:
            cell["outputs"], cell["execution_count"] = before["outputs"], before["execution_count"]
    if "xraykit" in old["metadata"]:
        nb["metadata"]["xraykit"] = old["metadata"]["xraykit"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--execute", action="store_true", help="run each notebook and keep its outputs")
    ap.add_argument("--only", nargs="+", metavar="PAGE", help="with --execute: run only these pages")
    ap.add_argument(
        "--workdir",
        type=Path,
        help="with --execute: run in this folder and keep it (a later --only continues a series there)",
    )
    args = ap.parse_args()
    books = {page: notebook(page) for page in NOTEBOOK_PAGES}
    ran: list[str] = []
    failures: dict[str, list[str]] = {}
    if args.execute:
        import tempfile

        import torch

        torch.set_num_threads(1)
        os.environ.update(environment())
        with contextlib.ExitStack() as stack:
            if args.workdir is None:
                root = Path(stack.enter_context(tempfile.TemporaryDirectory()))
            else:
                root = args.workdir.resolve()
                root.mkdir(parents=True, exist_ok=True)
            for page in args.only or NOTEBOOK_PAGES:
                nb = books[page]
                folder = root / RUN_PAGES[page]
                folder.mkdir(exist_ok=True)
                started = time.perf_counter()
                run_notebook(nb, session_for(page, folder, root / f"venv-{Path(page).stem}"))
                nb["metadata"]["xraykit"]["seconds"] = round(time.perf_counter() - started)
                ran.append(page)
                print(f"ran {page} in {nb['metadata']['xraykit']['seconds']} s", flush=True)
                failed = failed_checks(page, nb) if not value_problems(page, nb) else value_problems(page, nb)
                if failed:
                    failures[page] = failed
    for page, nb in books.items():
        if page not in ran:
            keep_outputs(nb, notebook_path(page))
        fill_values(page, nb)
        write(nb, notebook_path(page))
        print(f"wrote {notebook_path(page).relative_to(ROOT)}")
    for page, failed in failures.items():
        print(f"{page}: its outputs fail: {failed}", file=sys.stderr)
    if failures:
        raise SystemExit(1)


def value_problems(page: str, nb: dict) -> list[str]:
    """The values of ``page`` its outputs do not give, as lines to print."""
    try:
        values_of(page, nb)
    except ValueError as exc:
        return [str(exc)]
    return []


if __name__ == "__main__":
    main()
