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

import glob
import os
import re
import shlex
import site
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
sys.path.insert(0, str(ROOT / "scripts"))

import docs_hooks  # noqa: E402
import make_docs_figures  # noqa: E402

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

_FENCE = re.compile(
    r"^(?P<indent>[ ]*)```(?P<lang>[\w-]*)(?P<info>[^\n]*)\n(?P<body>.*?)^(?P=indent)```[ \t]*$", re.M | re.S
)
_NOT_RUN = re.compile(r"<!--\s*not-run:\s*(?P<reason>[^>]*?)\s*-->\s*$")
_SHELL = re.compile(r"[|&;<>$`(){}]")


@dataclass
class Block:
    lang: str
    title: str | None
    body: str
    not_run: str | None  # the reason, when marked not-run
    line: int


def blocks(page: Path) -> list[Block]:
    text = page.read_text(encoding="utf-8")
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
            )
        )
    return found


def commands(script: str) -> list[str]:
    """The logical command lines of a bash block: continuations joined, comments and blanks dropped."""
    joined = script.replace("\\\n", " ")
    return [
        line.split(" #")[0].strip() for line in joined.splitlines() if line.strip() and not line.strip().startswith("#")
    ]


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


class Session:
    """One reader's terminal and Python prompt: a current folder and a namespace that persist."""

    def __init__(self, cwd: Path, env: dict[str, str], in_process: bool):
        self.cwd, self.env, self.in_process = cwd, env, in_process
        self.namespace: dict = {"__name__": "__main__"}

    def run(self, block: Block, where: str) -> None:
        if block.title:
            path = self.cwd / block.title
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(block.body, encoding="utf-8")
        elif block.lang == "python":
            self._python(block.body, where)
        elif block.lang == "bash":
            cmds = commands(block.body)
            if self.in_process and all(c.startswith("xraykit ") and not _SHELL.search(c) for c in cmds):
                for c in cmds:
                    self._xraykit(c, where)
            else:
                self._bash(block.body, where)

    def _python(self, source: str, where: str) -> None:
        os.chdir(self.cwd)
        sys.path.insert(0, str(self.cwd))
        try:
            exec(compile(source, where, "exec"), self.namespace)
        finally:
            sys.path.remove(str(self.cwd))

    def _xraykit(self, command: str, where: str) -> None:
        from typer.testing import CliRunner

        from xraykit.cli import app

        os.chdir(self.cwd)
        args = []
        for word in shlex.split(command)[1:]:
            matches = sorted(glob.glob(word)) if glob.has_magic(word) else []
            args += matches or [word]  # like bash: a pattern that matches nothing stays as it is
        result = CliRunner().invoke(app, args, catch_exceptions=False)
        assert result.exit_code == 0, f"{where}: `{command}` exited {result.exit_code}:\n{result.output}"

    def _bash(self, script: str, where: str) -> None:
        state = self.cwd / ".docs-test-pwd"
        wrapped = f'cd "{self.cwd}"\n{script}\necho "$PWD" > "{state}"\n'
        done = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", wrapped], env=self.env, capture_output=True, text=True, timeout=300
        )
        assert done.returncode == 0, (
            f"{where}: bash exited {done.returncode}:\n{script}\n"
            f"--- stdout\n{done.stdout[-4000:]}\n--- stderr\n{done.stderr[-4000:]}"
        )
        self.cwd = Path(state.read_text().strip())
        state.unlink()


def _site_dirs() -> list[str]:
    """Every site-packages folder this interpreter imports from, in its order (a venv's, the base's if it
    includes them, the user's)."""
    found = [p for p in sys.path if os.path.basename(p.rstrip(os.sep)) in ("site-packages", "dist-packages")]
    found += site.getsitepackages()
    if site.ENABLE_USER_SITE:
        found.append(site.getusersitepackages())
    return [p for p in dict.fromkeys(os.path.realpath(p) for p in found) if os.path.isdir(p)]


def _venv(where: Path) -> Path:
    """A virtual environment that sees this one's packages but installs into its own folder.

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


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    return {}


@pytest.mark.slow
@pytest.mark.parametrize("page", list(RUN_PAGES))
def test_page_runs_top_to_bottom(page, folders, tmp_path_factory, imagenet_in_cache, monkeypatch):
    """Every code block runs in order and exits 0; ImageNet is a fake file in torch's cache, nothing is downloaded."""
    group = RUN_PAGES[page]
    if group not in folders:
        folders[group] = tmp_path_factory.mktemp(group.replace("/", "-"))
    cwd = folders[group]
    env = {
        **os.environ,
        "PIP_NO_INDEX": "1",
        "PIP_NO_BUILD_ISOLATION": "0",
        "PIP_DISABLE_PIP_VERSION_CHECK": "1",
        "PIP_ROOT_USER_ACTION": "ignore",
        "COLUMNS": "200",
    }
    if page in VENV_PAGES:
        bin_dir = _venv(tmp_path_factory.mktemp("venv"))
        env.update(PATH=f"{bin_dir}{os.pathsep}{env['PATH']}", VIRTUAL_ENV=str(bin_dir.parent))
    monkeypatch.chdir(cwd)
    monkeypatch.setenv("COLUMNS", "200")
    # One thread: these runs are small, and on a busy 2-core machine a second thread only waits
    # for the first (tiny tensor ops slow down a hundredfold); the results do not depend on it.
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    env["OMP_NUM_THREADS"] = "1"
    modules = set(sys.modules)
    session = Session(cwd, env, in_process=page not in VENV_PAGES)
    try:
        for block in blocks(DOCS / page):
            if block.not_run is None:
                session.run(block, f"docs/{page}:{block.line}")
    finally:
        torch.set_num_threads(threads)
        for name in set(sys.modules) - modules:  # modules the page wrote and imported (xraykit_mycnn) go again
            if str(getattr(sys.modules[name], "__file__", None) or "").startswith(str(cwd)):
                del sys.modules[name]


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
