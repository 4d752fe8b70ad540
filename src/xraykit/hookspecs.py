"""The plugin contract: four hooks, each handed a ``register`` callback.

A plugin module (or object) implements any of them with ``@xraykit.hookimpl``. The
built-in backbones, strategies, explainers and datasets use exactly these hooks.
"""

import pluggy

hookspec = pluggy.HookspecMarker("xraykit")
hookimpl = pluggy.HookimplMarker("xraykit")


@hookspec
def register_backbones(register):
    """Call ``register(backbone)`` for each :class:`xraykit.Backbone` the plugin provides."""


@hookspec
def register_strategies(register):
    """Call ``register(strategy)`` for each training :class:`xraykit.Strategy`."""


@hookspec
def register_explainers(register):
    """Call ``register(explainer)`` for each attribution :class:`xraykit.Explainer`."""


@hookspec
def register_datasets(register):
    """Call ``register(source)`` for each :class:`xraykit.DatasetSource` of X-rays."""
