"""The plugin manager and the four registries it fills.

Plugins come from three places, loaded in this order: the built-ins in
``DEFAULT_PLUGINS``, installed packages with an entry point in group ``xraykit``, and the
modules or ``.py`` files named in the ``XRAYKIT_PLUGINS`` environment variable
(comma-separated: a one-file plugin for class, no packaging needed).

A plugin that fails to import or registers a name twice never breaks xraykit: it is
recorded in :func:`failures` (shown by ``xraykit plugins``) and everything else works.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import pluggy
from torch import nn

from . import hookspecs
from .errors import XrayError
from .interfaces import Backbone, DatasetSource, Explainer, Strategy
from .weights import load_weights

DEFAULT_PLUGINS = (
    "xraykit.builtin.resnet",
    "xraykit.builtin.strategies",
    "xraykit.builtin.explainers",
    "xraykit.builtin.datasets",
)

# kind -> the hook whose plugins fill its registry
KINDS = {
    "backbone": "register_backbones",
    "strategy": "register_strategies",
    "explainer": "register_explainers",
    "dataset": "register_datasets",
}


@dataclass(frozen=True)
class Entry:
    """One registered thing and the plugin that provided it."""

    kind: str
    name: str
    obj: Any
    plugin: str


@dataclass(frozen=True)
class Failure:
    """A plugin that could not be loaded or whose registration was refused."""

    plugin: str
    reason: str


_pm: pluggy.PluginManager | None = None
_load_failures: list[Failure] = []


def get_plugin_manager() -> pluggy.PluginManager:
    """The process-wide plugin manager, created (and plugins loaded) on first use."""
    global _pm
    if _pm is None:
        pm = pluggy.PluginManager("xraykit")
        pm.add_hookspecs(hookspecs)
        for module in DEFAULT_PLUGINS:
            pm.register(importlib.import_module(module), name=module)
        _pm = pm
        _load_entry_points(pm)
        _load_env_plugins(pm)
    return _pm


def _load_entry_points(pm: pluggy.PluginManager) -> None:
    for ep in importlib.metadata.entry_points(group="xraykit"):
        if pm.has_plugin(ep.name):
            where = getattr(ep.dist, "name", None) or ep.value
            _load_failures.append(
                Failure(
                    ep.name,
                    f"not loaded: entry point '{ep.name}' ({where}) has the name of a plugin already registered",
                )
            )
            continue
        try:
            pm.register(ep.load(), name=ep.name)
        except (Exception, SystemExit) as exc:  # a broken plugin must not break the CLI, not even by sys.exit()
            _load_failures.append(Failure(ep.name, _failed_to_load(exc)))


def _load_env_plugins(pm: pluggy.PluginManager) -> None:
    for spec in filter(None, (s.strip() for s in os.environ.get("XRAYKIT_PLUGINS", "").split(","))):
        try:
            if spec.endswith(".py"):
                path = Path(spec)
                module_spec = importlib.util.spec_from_file_location(f"xraykit_plugin_{path.stem}", path)
                if module_spec is None or module_spec.loader is None or not path.is_file():
                    raise FileNotFoundError(f"no such file: {path}")
                module = importlib.util.module_from_spec(module_spec)
                module_spec.loader.exec_module(module)
            else:
                module = importlib.import_module(spec)
            pm.register(module, name=spec)
        except (Exception, SystemExit) as exc:
            _load_failures.append(Failure(spec, _failed_to_load(exc)))


def _failed_to_load(exc: BaseException) -> str:
    """One line, whatever the plugin raised (a multi-line message keeps its first line)."""
    lines = str(exc).strip().splitlines()
    return f"failed to load: {type(exc).__name__}" + (f": {lines[0]}" if lines else "")


def reset() -> None:
    """Forget the plugin manager and its failures; the next use loads every plugin again.

    The manager is created once per process, reading ``XRAYKIT_PLUGINS`` and the installed
    entry points at that moment. Tests and notebooks that change either (or register
    plugins by hand) call ``reset()`` to start again from the built-ins.
    """
    global _pm
    _pm = None
    _load_failures.clear()


def register(plugin: object, name: str | None = None) -> str:
    """Register a plugin object or module in this process (tests, notebooks)."""
    registered = get_plugin_manager().register(plugin, name=name)
    if registered is None:  # pluggy returns None for a plugin it was told to block
        raise XrayError(f"plugin {name or plugin!r} is blocked and cannot be registered")
    return registered


def unregister(name: str) -> None:
    get_plugin_manager().unregister(name=name)


def _collect(kind: str) -> tuple[dict[str, Entry], list[Failure]]:
    """Call every plugin's hook for ``kind``; the first plugin to use a name keeps it."""
    entries: dict[str, Entry] = {}
    failures: list[Failure] = []
    hook = getattr(get_plugin_manager().hook, KINDS[kind])
    # pluggy would call the last-registered first; get_hookimpls() lists them in registration
    # order (built-ins, then entry points, then XRAYKIT_PLUGINS), the fairer rule here: a later
    # plugin cannot take over a built-in's name.
    for impl in hook.get_hookimpls():
        plugin = impl.plugin_name

        def add(obj: Any, _plugin: str = plugin) -> None:
            name = getattr(obj, "name", None)
            if not isinstance(name, str) or not name:
                raise TypeError(f"a {kind} needs a non-empty string name, got {name!r}")
            if name in entries:
                failures.append(
                    Failure(
                        _plugin,
                        f"{kind} '{name}' is already registered by plugin '{entries[name].plugin}'; "
                        f"the one from '{_plugin}' was ignored",
                    )
                )
                return
            entries[name] = Entry(kind, name, obj, _plugin)

        try:
            impl.function(register=add)
        except (Exception, SystemExit) as exc:  # sys.exit() in a hook must not end every command
            failures.append(Failure(plugin, f"{KINDS[kind]} raised {type(exc).__name__}: {exc}"))
    return entries, failures


def _files(plugin: object) -> list[str]:
    """The source files (or package folders) of a registered plugin: a module, or an object of a class."""
    import inspect

    module = plugin if inspect.ismodule(plugin) else inspect.getmodule(type(plugin))
    file = getattr(module, "__file__", None)
    if not file:
        return []
    path = Path(file).resolve()
    return [str(path.parent) + os.sep] if path.name == "__init__.py" else [str(path)]


def blame(exc: BaseException) -> str | None:
    """The outside plugin whose code raised ``exc`` (its innermost frame in the traceback), or ``None``.

    A backbone's ``build()``, a dataset's ``can_load()`` or an explainer can raise anything; the
    command line turns such an error into one line naming the plugin, as it does a failed import.
    Built-in plugins are xraykit's own code: their errors are never blamed on a plugin.
    """
    if _pm is None:
        return None
    owners = {}
    for name, plugin in _pm.list_name_plugin():
        if name not in DEFAULT_PLUGINS and plugin is not None:
            owners.update({f: name for f in _files(plugin)})
    tb = exc.__traceback__
    found = None
    while tb is not None:
        file = str(Path(tb.tb_frame.f_code.co_filename).resolve())
        for prefix, name in owners.items():
            if file == prefix or (prefix.endswith(os.sep) and file.startswith(prefix)):
                found = name
        tb = tb.tb_next
    return found


def entries(kind: str) -> dict[str, Entry]:
    """Every registered thing of ``kind`` (``backbone``, ``strategy``, ...), by name."""
    return _collect(kind)[0]


def failures() -> list[Failure]:
    """Plugins that failed to load, raised in a hook, or registered a duplicate name."""
    get_plugin_manager()
    found = list(_load_failures)
    for kind in KINDS:
        found.extend(_collect(kind)[1])
    return found


def get(kind: str, name: str) -> Any:
    """The registered ``kind`` called ``name``, or an error listing the known names.

    The typed accessors below (:func:`backbone`, :func:`strategy`, :func:`explainer`) say what comes back.
    """
    known = entries(kind)
    if name not in known:
        names = ", ".join(sorted(known)) or "none"
        failed = failures()
        hint = (
            (
                f" ({len(failed)} plugin{'s' if len(failed) != 1 else ''} failed to load or register: "
                f"see `xraykit plugins`)"
            )
            if failed
            else ""
        )
        raise XrayError(f"Unknown {kind} '{name}'. Known: {names}{hint}")
    return known[name].obj


def _typed(kind: str, name: str, cls: type) -> Any:
    obj = get(kind, name)
    if not isinstance(obj, cls):
        raise XrayError(f"{kind} '{name}' is a {type(obj).__name__}, not an xraykit.{cls.__name__}")
    return obj


def backbone(name: str) -> Backbone:
    """The registered backbone called ``name``."""
    found: Backbone = _typed("backbone", name, Backbone)
    return found


def strategy(name: str) -> Strategy:
    """The registered strategy called ``name`` (the plugin that implements the task of that name)."""
    found: Strategy = _typed("strategy", name, Strategy)
    return found


def explainer(name: str) -> Explainer:
    """The registered explainer called ``name``."""
    found: Explainer = _typed("explainer", name, Explainer)
    return found


def dataset_source(location: str) -> DatasetSource:
    """The one registered dataset source that can load ``location``.

    A name two sources claim is refused rather than guessed: with a folder called ``sample`` in the
    working directory, ``sample`` could be either that folder or the built-in images.
    """
    claiming = [entry for entry in entries("dataset").values() if entry.obj.can_load(location)]
    if len(claiming) > 1:
        names = " and ".join(f"'{e.name}'" for e in claiming)
        hint = f"; write ./{location} for the folder" if "folder" in [e.name for e in claiming] else ""
        raise XrayError(f"{location}: ambiguous, the dataset sources {names} both read it{hint}")
    if claiming:
        found: DatasetSource = claiming[0].obj
        return found
    known = ", ".join(sorted(entries("dataset")))
    raise XrayError(f"{location}: no such folder, and no dataset plugin reads it (dataset sources: {known})")


def list_plugins(kind: str) -> list[str]:
    """The registered names of one ``kind``: ``"backbone"``, ``"strategy"``, ``"explainer"`` or ``"dataset"``.

    The built-in plugins and those installed packages register, so the answer is what this installation
    can do, not what the documentation lists.

    Args:
        kind: ``"backbone"``, ``"strategy"``, ``"explainer"`` or ``"dataset"``.

    Returns:
        The names, sorted.

    Raises:
        XrayError: an unknown ``kind``.

    >>> "resnet18" in list_plugins("backbone")
    True
    """
    if kind not in KINDS:
        raise XrayError(f"Unknown plugin kind '{kind}'. Known: {', '.join(KINDS)}")
    return sorted(entries(kind))


def create_backbone(name: str = "resnet18", num_classes: int = 2, weights: Optional[str] = None) -> nn.Module:
    """A fresh model of a registered backbone, optionally starting from ``weights``.

    The head is always new, sized for ``num_classes``: starting weights bring what a network has
    learnt to see, not the classes it learnt them for.

    Args:
        name: a registered backbone (:func:`list_plugins` ``("backbone")``), such as ``"resnet18"``.
        num_classes: outputs of the head, one per class.
        weights: ``None`` (or ``"none"``, ``"random"``): random initialisation; a name the backbone offers,
            such as ``"imagenet"``; or a checkpoint or weights file.

    Returns:
        The model, a :class:`torch.nn.Module` that takes ``(N, 1, H, W)`` float input and gives
            ``(N, num_classes)`` logits.

    Raises:
        XrayError: an unknown backbone, a weights file that is not there or does not fit, or named weights
            that cannot be had (:class:`~xraykit.WeightsUnavailableError`, offline).

    >>> import torch
    >>> model = create_backbone("resnet18", num_classes=2)
    >>> model(torch.zeros(1, 1, 64, 64)).shape
    torch.Size([1, 2])
    """
    chosen = backbone(name)
    model = chosen.build(num_classes)
    load_weights(model, chosen, weights)
    return model


def count_parameters(model: nn.Module) -> tuple[int, int]:
    """``(trainable, total)`` parameter counts.

    The difference between the tasks in two numbers: Task 1.1 trains every parameter, Task 1.2 only
    the head's (about a thousand of ResNet-18's 11 million). A run records both, as its strategy froze
    the model (``run.record.trainable_parameters``, ``run.record.total_parameters``).

    Args:
        model: any network (:class:`torch.nn.Module`), counted as its ``requires_grad`` flags stand now.

    Returns:
        The number of parameters that training changes (``requires_grad``), and the number of all.
    """
    return (sum(p.numel() for p in model.parameters() if p.requires_grad), sum(p.numel() for p in model.parameters()))
