"""How the command line reads its options: each training option of ``xraykit train`` and
``xraykit compare`` is made from its one declaration, a field of :class:`~xraykit.TrainConfig`.

A field carries its default, its help and its choices (:func:`xraykit.config.option`); the
commands list them in ``--help``, Typer parses them, and :class:`~xraykit.TrainConfig` checks
them, the same check the Python API and ``--resume`` go through. Adding a training option is
adding a field; no command lists it by hand. No torch here: ``--help`` answers at once.
"""

from __future__ import annotations

import functools
import inspect
import typing
from pathlib import Path
from typing import Any, Callable, Optional, TypeVar

import typer

from .config import RECIPES, TrainConfig, option_names
from .errors import XrayError

F = TypeVar("F", bound=Callable[..., Any])


def field_option(name: str, **changes: Any) -> Any:
    """The ``typer.Option`` of TrainConfig's field ``name`` (``changes``: another ``default``, ``more_help``).

    A recipe's option defaults to ``None``, "whatever ``--recipe`` says", and its help names what
    each recipe sets; a true/false option is a ``--name/--no-name`` pair; choices show in ``--help``.
    """
    f = TrainConfig.__dataclass_fields__[name]
    meta = f.metadata
    flag = "--" + name.replace("_", "-")
    default = None if meta.get("recipe") else f.default
    help_text = meta["help"]
    if meta.get("recipe"):
        by_recipe = ", ".join(f"{recipe}: {_text(values[name])}" for recipe, values in RECIPES.items())
        help_text += f" Default: from --recipe ({by_recipe})."
    default, help_text = changes.get("default", default), " ".join([help_text, changes.get("more_help", "")]).strip()
    declared = [f"{flag}/--no-{flag[2:]}"] if _hint(name) in (bool, Optional[bool]) else [flag]
    metavar = "[" + "|".join(meta["choices"]) + "]" if meta.get("choices") else None
    return typer.Option(default, *declared, help=help_text, metavar=metavar, show_default=default is not None)


def with_training_options(per_task: bool = True, **changes: dict[str, Any]) -> Callable[[F], F]:
    """A decorator: the command's ``**options`` become one Typer option per training option.

    ``per_task=False`` leaves out the options each task sets for itself (``compare``). ``changes``
    maps an option's name to another default, or more help, for this command (``epochs`` of ``train``,
    whose default with ``--resume`` is the run's own).
    """

    def decorate(command: F) -> F:
        signature = inspect.signature(command)
        own = [p for p in signature.parameters.values() if p.kind is not inspect.Parameter.VAR_KEYWORD]
        added = []
        for name in option_names(per_task):
            hint = _hint(name)
            if TrainConfig.__dataclass_fields__[name].metadata.get("recipe") or "default" in changes.get(name, {}):
                hint = Optional[hint]  # None: not given, the recipe's or the command's default
            option = field_option(name, **changes.get(name, {}))
            added.append(inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=option, annotation=hint))
        # The training options first, after the arguments; the command's own options (--out, --quiet) last.
        arguments = [p for p in own if not isinstance(p.default, typer.models.OptionInfo)]
        rest = [
            p.replace(kind=inspect.Parameter.KEYWORD_ONLY)
            for p in own
            if isinstance(p.default, typer.models.OptionInfo)
        ]
        command.__signature__ = signature.replace(parameters=[*arguments, *added, *rest])  # type: ignore[attr-defined]
        command.__annotations__ = {**typing.get_type_hints(command), **{p.name: p.annotation for p in added}}
        return command

    return decorate


def given_options(options: dict[str, Any]) -> dict[str, Any]:
    """The training options the user gave: ``None`` means left out, so the config's default (or the recipe's)."""
    return {name: value for name, value in options.items() if value is not None}


def refuse_options_with_resume(ctx: typer.Context, resume: Path) -> None:
    """A resumed run keeps its own settings, or it would no longer be one run: any option given but
    ``--epochs`` is refused by name."""
    given = [
        "--" + name.replace("_", "-")
        for name in ctx.params
        if name not in ("resume", "epochs", "quiet", "data")
        and getattr(ctx.get_parameter_source(name), "name", "DEFAULT") not in ("DEFAULT", "DEFAULT_MAP")
    ]
    if given:
        raise XrayError(
            f"--resume {resume} continues the run with its own settings; {', '.join(given)} cannot change them "
            "(only --epochs can); start a new run to train with other settings"
        )


def _hint(name: str) -> Any:
    return _hints()[name]


@functools.cache
def _hints() -> dict[str, Any]:
    return typing.get_type_hints(TrainConfig)


def _text(value: Any) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)
