"""Options written as text: ``KEY=VALUE`` (``-o patch=16``), ``METHOD.KEY=VALUE`` and explainer variants
(``cam:layer=layer3,align=receptive-field``).

Plain string handling with no torch in it: the command line parses its options here before any
command imports torch, and the Python API reads the same spellings, so a variant written on the
command line, in ``explain_gallery.json`` or in a notebook means one thing.
"""

from __future__ import annotations

from typing import Any, Mapping

from .errors import XrayError


def parse_option(text: str) -> tuple[str, Any]:
    """``KEY=VALUE`` with VALUE read as an int, a float, true/false, or else kept as text."""
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise XrayError(f"--option '{text}': expected KEY=VALUE, e.g. patch=16")
    value = value.strip()
    if value.lower() in ("true", "false"):
        return key.strip(), value.lower() == "true"
    for kind in (int, float):
        try:
            return key.strip(), kind(value)
        except ValueError:
            pass
    return key.strip(), value


def method_options(texts: list[str]) -> dict[str, dict[str, Any]]:
    """``METHOD.KEY=VALUE`` options, by method: ``{"occlusion": {"patch": 16}}``."""
    options: dict[str, dict[str, Any]] = {}
    for text in texts:
        method, dot, rest = text.partition(".")
        if not dot or "=" in method:
            raise XrayError(f"--option '{text}': expected METHOD.KEY=VALUE, e.g. occlusion.patch=16")
        key, value = parse_option(rest)
        options.setdefault(method, {})[key] = value
    return options


def parse_variant(text: str) -> tuple[str, dict[str, Any]]:
    """``METHOD`` or ``METHOD:KEY=VALUE,KEY=VALUE``: one explainer with its options.

    ``cam:align=receptive-field`` is ``("cam", {"align": "receptive-field"})``; values are read as
    :func:`parse_option` reads them. :func:`variant_label` writes the same text back.
    """
    method, _, rest = text.strip().partition(":")
    if not method or "=" in method or "," in method:
        raise XrayError(f"variant '{text}': expected METHOD or METHOD:KEY=VALUE,KEY=VALUE, e.g. cam:layer=layer3")
    options: dict[str, Any] = {}
    for part in filter(None, (p.strip() for p in rest.split(","))):
        if "=" not in part:
            raise XrayError(f"variant '{text}': '{part}' is not KEY=VALUE (e.g. cam:align=receptive-field)")
        key, value = parse_option(part)
        options[key] = value
    return method, options


def variant_label(method: str, options: Mapping[str, Any]) -> str:
    """The text :func:`parse_variant` reads back as ``(method, options)``: ``cam:layer=layer3``."""
    if not options:
        return method

    def text(value: Any) -> str:
        return str(value).lower() if isinstance(value, bool) else str(value)

    return f"{method}:" + ",".join(f"{key}={text(value)}" for key, value in options.items())
