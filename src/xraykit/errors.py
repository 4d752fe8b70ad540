"""The one error type users see: a problem with their input, said in one line; and how such a line names a file.

The CLI prints ``XrayError`` messages without a traceback and exits with code 2; any
other exception is a bug in xraykit and keeps its traceback.
"""

from __future__ import annotations

import os
import re

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def display_path(path: str | os.PathLike) -> str:
    r"""``path`` as text any terminal can print: bytes of a non-UTF-8 name appear as ``\xff``.

    Linux file names are bytes; Python keeps undecodable ones as lone surrogates, which
    crash ``print`` on a UTF-8 terminal. Control characters (a newline, a tab, an escape)
    appear as ``\n``, ``\t``, ``\x1b``: a name holding one must not break a one-line message
    in two, or drive the terminal. Every message about a file shows it this way.
    """
    text = os.fsencode(path).decode("utf-8", "backslashreplace")
    return _CONTROL.sub(lambda m: repr(m.group())[1:-1], text) if _CONTROL.search(text) else text


class XrayError(Exception):
    """Bad input (a file, a folder, a name, an option): the message says what and where."""


class ImageError(XrayError):
    """An image file that cannot be read as an X-ray; the message names the file."""


class CheckpointError(XrayError):
    """A weights or checkpoint file that cannot be loaded safely or does not fit the model."""


class WeightsUnavailableError(XrayError):
    """Pretrained weights that are neither cached nor downloadable (offline)."""
