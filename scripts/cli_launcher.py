"""Run ``xraykit`` commands as forks of one process that has imported torch and xraykit already.

A fresh ``xraykit train`` spends about five seconds importing torch before it reads its first
argument, and ``bad_inputs_table.py`` runs about seventy commands. Forked from a server that
imported everything once, each command still runs in a process of its own, with its own exit
code, stdout and stderr and nothing shared with the caller, so what the table checks (the exit
code, the last line of stderr, whether a traceback was printed) is what a user's shell would
see; it just starts in milliseconds instead of seconds.

    launcher = Launcher(env)                    # starts the server, with env as its environment
    code, out, err = launcher.run(["train", "DATA", "--epochs", "1"])

The environment is fixed when the server starts (Rich reads ``COLUMNS`` and torch reads
``OMP_NUM_THREADS`` at import), so one launcher serves commands that share one environment.
Several threads may call ``run`` at once; the commands then run side by side.

The protocol: the caller writes one JSON line per command to the server's stdin (the arguments
and three file names: stdout, stderr, exit code); the server forks, the child runs the command
with its output in the first two files, and the server writes the child's exit status (as
``subprocess`` reports it: negative for a signal) to the third when it has reaped it.
"""

from __future__ import annotations

import importlib
import json
import os
import select
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from pathlib import Path

# What the commands import on their first line of work; imported once, in the server.
PRELOAD = ["torch", "torchvision", "PIL.Image", "matplotlib.pyplot", "xraykit.cli", "xraykit.training",
           "xraykit.evaluation", "xraykit.explaining", "xraykit.comparing"]  # fmt: skip


def _command(args: list[str], out: str, err: str) -> None:
    """In the forked child: stdin from /dev/null, stdout and stderr to files, ``xraykit ARGS``, exit as
    Python would at the end of a script."""
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)
    for fd, path in ((1, out), (2, err)):
        opened = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.dup2(opened, fd)
        os.close(opened)
    sys.stdout = open(1, "w", encoding="utf-8", closefd=False)  # noqa: SIM115 (the process ends below)
    sys.stderr = open(2, "w", encoding="utf-8", closefd=False)  # noqa: SIM115
    sys.argv = ["xraykit", *args]
    code = 1
    try:
        from xraykit.cli import main

        main()
        code = 0
    except SystemExit as stop:
        if stop.code is None or isinstance(stop.code, int):
            code = stop.code or 0
        else:
            print(stop.code, file=sys.stderr)
    except BaseException:  # an uncaught exception: the traceback a user would see, exit 1
        traceback.print_exc()
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
    os._exit(code)


def serve() -> None:
    """The server: import :data:`PRELOAD`, then fork one child per request line until stdin closes."""
    for name in PRELOAD:
        importlib.import_module(name)
    waiting: dict[int, str] = {}  # child pid -> the file its exit status goes to
    pending, open_ = b"", True
    while open_ or waiting:
        ready = select.select([0], [], [], 0.02)[0] if open_ else []
        if ready:
            chunk = os.read(0, 1 << 16)
            open_ = bool(chunk)
            pending += chunk
            while b"\n" in pending:
                line, pending = pending.split(b"\n", 1)
                args, out, err, status = json.loads(line)
                pid = os.fork()
                if pid == 0:
                    _command(args, out, err)
                waiting[pid] = status
        elif not open_:
            time.sleep(0.02)
        while waiting:
            pid, status = os.waitpid(-1, os.WNOHANG)
            if pid == 0:
                break
            path = Path(waiting.pop(pid))
            path.with_suffix(".tmp").write_text(str(os.waitstatus_to_exitcode(status)))
            path.with_suffix(".tmp").replace(path)  # whole, or not there yet


class Launcher:
    """A server process that has imported :data:`PRELOAD` with ``env`` as its environment."""

    def __init__(self, env: dict[str, str]):
        self.server = subprocess.Popen([sys.executable, __file__, "--serve"], env=env, stdin=subprocess.PIPE)
        self.lock = threading.Lock()

    def run(self, args: list[str]) -> tuple[int, str, str]:
        """``xraykit ARGS`` in a fork of the server: ``(exit code, stdout, stderr)``."""
        assert self.server.stdin is not None
        with tempfile.TemporaryDirectory(prefix="xraykit-cmd-") as name:
            tmp = Path(name)
            out, err, status = tmp / "stdout", tmp / "stderr", tmp / "status"
            with self.lock:
                self.server.stdin.write(json.dumps([list(args), str(out), str(err), str(status)]).encode() + b"\n")
                self.server.stdin.flush()
            while not status.exists():
                if self.server.poll() is not None:
                    raise RuntimeError(f"the launcher's server ended (exit {self.server.returncode})")
                time.sleep(0.02)

            def read(path: Path) -> str:
                return path.read_bytes().decode(errors="backslashreplace") if path.exists() else ""

            return int(status.read_text()), read(out), read(err)

    def close(self) -> None:
        """Stop the server once the commands it runs have ended."""
        if self.server.stdin is not None:
            self.server.stdin.close()
        self.server.wait()


if __name__ == "__main__" and sys.argv[1:] == ["--serve"]:
    serve()
