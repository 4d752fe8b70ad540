"""The verbs that start and continue a run: :func:`train` and :func:`resume`.

Each sets the run up, step by step: check the options (one :class:`~xraykit.TrainConfig`,
before any image is loaded), load the data, choose the validation split, build the model
as its strategy trains it, claim the run folder, then hand over to :func:`xraykit.loop.fit`.
"""

from __future__ import annotations

import platform
from datetime import datetime
from pathlib import Path
from typing import Any, Optional, Union

import torch
from torch import nn

from . import distributed, figures, plugins, progress
from .config import RunRecord, TrainConfig
from .data import loading
from .data.copies import fingerprint, in_two_classes
from .data.loading import DataLike, choose_validation, data_folder, describe, left_out_of, load_data
from .devices import emulated_bf16_note, resolve_device, resolve_precision
from .errors import XrayError
from .inference import apply_normalization
from .interfaces import Backbone, Strategy, XrayData
from .io import refuse_inside, write_json, write_text
from .loop import Callbacks, fit
from .preflight import check_checkpoint, check_device, check_fits, check_train_split, check_trains
from .runs import Run, RunLike, check_out, claim_run_folder, hold_run_folder, release_run_folder, unlock
from .weights import load_weights


def train(
    data: DataLike = "synthetic",
    task: str = "scratch",
    *,
    out: Optional[Union[str, Path]] = None,
    skip_bad: bool = False,
    quiet: bool = False,
    callbacks: Optional[Callbacks] = None,
    data_name: Optional[str] = None,
    **options: Any,
) -> Run:
    """Train ``task`` (``scratch`` or ``finetune``, each implemented by the strategy of that name) on ``data``.

    Every option is declared once, in :class:`~xraykit.TrainConfig`, with its default and its meaning:
    the same options as ``xraykit train --help``. Defaults are the report's recipe: ResNet-18, ``fc`` -> 2
    classes, Adam, batch 32, 10 epochs, lr and starting weights from the strategy. A recipe
    (:data:`xraykit.config.RECIPES`) sets the options marked as its own; any given explicitly wins.
    The options and ``out`` are checked before any image is loaded, so a typo costs seconds, not an epoch.

    Args:
        data: what to train on: a folder in the Kaggle layout (``DATA/{train,val,test}/{NORMAL,PNEUMONIA}``),
            a MedMNIST ``.npz`` file, ``"sample"`` (real X-rays shipped with xraykit),
            ``"synthetic[:n=640,seed=0]"``, or splits already loaded (a dict of split name to XrayData).
        task: ``"scratch"`` (Task 1.1: every layer learns from random weights), ``"finetune"`` (Task 1.2:
            ImageNet weights, every layer frozen but the head) or another registered strategy
            (``"finetune-all"``, a plugin's).
        out: the run folder; ``None`` makes ``runs/TASK-TIMESTAMP``. A folder that already holds a run is
            refused, so a run is never overwritten.
        skip_bad: warn about unreadable images and train on the rest, instead of stopping at the first.
        quiet: messages only, no progress bars (for logs and notebooks).
        callbacks: your own progress hooks (:class:`xraykit.loop.Callbacks`), in place of the bars.
        data_name: when ``data`` is already loaded, where it came from (``synthetic:n=640,seed=0``, a folder),
            so that ``config.json`` records it and ``--resume`` can load it again.
        **options: training options, the fields of TrainConfig (see the table 'Training options' below);
            e.g. epochs=3, image_size=64, recipe='strong'.

    Returns:
        The trained run; what ``precision`` resolved to is ``run.record.precision``.

    Raises:
        XrayError: an unknown task or option, a value out of range, data that cannot be loaded or an ``out``
            that cannot be the run's folder, said in one line.

    >>> run = xraykit.train("sample", "scratch", epochs=3, image_size=64, out="runs/doc")  # doctest: +SKIP
    """
    recipe = options.pop("recipe", "report")
    config = TrainConfig.for_recipe(recipe, data=_recorded_name(data, data_name), task=task, **options)
    strategy, bb = plugins.strategy(config.task), plugins.backbone(config.backbone)
    config = config.with_task_defaults(strategy.weights, strategy.lr)  # the numbers config.json records
    check_device(config.device)
    device = resolve_device(config.device)
    precision_used = resolve_precision(config.precision, device)  # refused before loading
    if out is not None:
        check_out(Path(out))  # before minutes of loading: a folder in use, or a file in the way
        refuse_inside(out, [data_folder(data)])
    cb = progress.callbacks_for(task, quiet, callbacks)
    log: list[str] = []  # what the terminal was told while setting up; kept as RUN/log.txt

    def note(text: str) -> None:
        log.append(text)
        cb.message(text)

    slower = emulated_bf16_note(precision_used, device)
    if slower:
        note(slower)
    skipped: list[str] = []

    def on_skip(message: str) -> None:
        skipped.append(message)
        note(f"skipped {message}")

    splits = load_data(data, config.image_size, skip_bad, on_skip)
    check_train_split(splits, describe(data))
    if skipped:
        note(f"{len(skipped)} unreadable file{'s' if len(skipped) != 1 else ''} skipped (--skip-bad)")
    train_data, val_data, how = choose_validation(splits, config.val_from_train, config.seed)
    note(how)
    warnings = [w for w in (in_two_classes(splits["train"]),) if w] + left_out_of(data)
    for warning in warnings:
        note(warning)

    device_used = distributed.setup(device)  # under torchrun: join the others (rank 0 names the folder)
    default = Path("runs") / distributed.rank0_value(f"{task}-{datetime.now():%Y%m%d-%H%M%S}")
    run_dir = Path(out) if out is not None else default
    check_out(run_dir)
    refuse_inside(run_dir, [data_folder(data)])
    distributed.barrier()  # every process has looked before rank 0 writes there

    config = config.replace(num_classes=len(train_data.classes), classes=list(train_data.classes))
    torch.manual_seed(config.seed)
    model, loaded = build_model(bb, strategy, config)
    if loaded:
        note(f"starting from {loaded}")
    check_trains(model, bb, config)
    trainable, total = plugins.count_parameters(model)
    record = RunRecord(
        validation=how,
        weights_loaded=loaded or "random initialisation",
        train_images=len(train_data),
        val_images=len(val_data),
        train_class_counts=train_data.class_counts(),
        val_class_counts=val_data.class_counts(),
        trainable_parameters=trainable,
        total_parameters=total,
        skipped_files=skipped,
        skip_bad=skip_bad,
        data_warnings=warnings,
        val_fingerprint=fingerprint(val_data),
        versions=_versions(),
        precision=precision_used,
    )
    config = config.replace(record=record)
    if distributed.is_main():
        # Set-up has passed: only now is the folder claimed (one of two runs racing for it wins).
        claim_run_folder(run_dir)
        write_json(run_dir / "config.json", config.to_dict())
        write_text(run_dir / "log.txt", "".join(f"{line}\n" for line in log))
    return _fit_and_plot(model, bb, strategy, train_data, val_data, config, run_dir, cb, device_used, resume=None)


def resume(
    run: RunLike,
    *,
    epochs: Optional[int] = None,
    quiet: bool = False,
    callbacks: Optional[Callbacks] = None,
    data: Optional[DataLike] = None,
) -> Run:
    """Continue a run from its last checkpoint (same data, split and seed); ``epochs`` may extend it.

    A run stopped before its first epoch ended has no checkpoint: it starts again, exactly as
    :func:`train` began it. A run that has already finished its epochs is returned as it is.

    Args:
        run: the run folder (a path) or a :class:`~xraykit.Run`.
        epochs: the total number of epochs to reach, not the number to add; ``None`` keeps the run's own.
        quiet: messages only, no progress bars.
        callbacks: your own progress hooks (:class:`xraykit.loop.Callbacks`), in place of the bars.
        data: the data the run was trained on, needed only when it was trained on data loaded in Python
            (``config.json`` then records ``in-memory``); ``None`` reloads the data the run recorded.

    Returns:
        The same run, trained to ``epochs``.

    Raises:
        XrayError: ``data`` names other data than the run recorded, the run's in-memory data is not given,
            or its checkpoint does not fit the run's model.
    """
    run = Run.open(run)
    run.refuse_ensemble("resume training")  # an ensemble has no weights of its own to continue
    config = run.config if epochs is None else run.config.replace(epochs=epochs)
    check_device(config.device)
    resolve_precision(config.record.precision, resolve_device(config.device))  # what it trained in still runs here
    if data is not None and not isinstance(data, dict) and config.data != "in-memory":
        if loading.data_name(data) != config.data:
            raise XrayError(
                f"{run.path}: --resume trains on the data the run recorded ({config.data}), not {data}; "
                f"leave DATA out to continue it, or start a new run on {data}"
            )
        data = None
    if data is None:
        if config.data == "in-memory":
            raise XrayError(
                f"{run.path}: trained on data loaded in Python, so the run cannot find it again; "
                f"give it: xraykit train DATA --resume {run.path} (or resume(run, data=...))"
            )
        data = config.data
    # A run stopped before its first epoch ended has no checkpoint: it starts again, exactly as train() did.
    state = run.load_checkpoint("last") if (run.path / "checkpoints" / "last.pt").is_file() else None
    if state is not None:
        check_checkpoint(state, run.path / "checkpoints" / "last.pt")
    cb = progress.callbacks_for(config.task, quiet, callbacks)
    record = config.record
    splits = load_data(data, config.image_size, skip_bad=record.skip_bad or bool(record.skipped_files))
    train_data, val_data, _ = choose_validation(splits, config.val_from_train, config.seed)
    done = state["epoch"] if state is not None else 0
    if done >= config.epochs:
        cb.message(f"{run.path} already finished {done} of {config.epochs} epochs")
        return run
    if (len(train_data), len(val_data)) != (record.train_images, record.val_images):
        cb.message(
            f"warning: {data} now gives {len(train_data)} training and {len(val_data)} validation "
            f"images, the run began with {record.train_images} and {record.val_images}"
        )
    bb, strategy = plugins.backbone(config.backbone), plugins.strategy(config.task)
    if state is None:
        torch.manual_seed(config.seed)
        text = f"{run.path} has no checkpoint yet: training it again from epoch 1 of {config.epochs}"
    else:
        text = f"resuming {run.path} after epoch {done} of {config.epochs}"
    model, _ = build_model(bb, strategy, config, load=state is None)  # a checkpoint brings its own weights
    if state is not None:  # another backbone's checkpoint, NaN weights, an optimizer of another model: one line
        check_fits(model, bb, state, run.path / "checkpoints" / "last.pt")
    cb.message(text)
    # A kill in the middle of a save leaves its temporary file (.last.pt.XXXX.tmp); only training writes these.
    for stale in [*run.path.glob(".*.json.*.tmp"), *run.path.glob("checkpoints/.*.pt.*.tmp")]:
        stale.unlink(missing_ok=True)
    log_file = run.path / "log.txt"
    device_used = distributed.setup(resolve_device(config.device))
    if distributed.is_main():
        hold_run_folder(run.path)
        write_text(log_file, (log_file.read_text(encoding="utf-8") if log_file.is_file() else "") + text + "\n")
        write_json(run.path / "config.json", config.to_dict())
    return _fit_and_plot(model, bb, strategy, train_data, val_data, config, run.path, cb, device_used, resume=state)


def build_model(
    backbone: Backbone, strategy: Strategy, config: TrainConfig, load: bool = True
) -> tuple[nn.Module, Optional[str]]:
    """A fresh model of ``backbone``, from ``config.weights`` when ``load``, frozen as ``strategy`` trains it;
    and what was loaded (``None``: random initialisation)."""
    model = apply_normalization(backbone.build(config.num_classes), config.normalize)
    loaded = load_weights(model, backbone, config.weights) if load else None
    strategy.freeze(model, backbone)
    return model, loaded


def _recorded_name(data: DataLike, given: Optional[str]) -> str:
    """The data as ``config.json`` records it: ``given`` when the caller loaded it, else its absolute path."""
    return loading.data_name(given if given is not None else data)


def _fit_and_plot(
    model: nn.Module,
    bb: Backbone,
    strategy: Strategy,
    train_data: XrayData,
    val_data: XrayData,
    config: TrainConfig,
    run_dir: Path,
    cb: Callbacks,
    device: torch.device,
    resume: Optional[dict],
) -> Run:
    try:
        history = fit(model, bb, strategy, train_data, val_data, config, run_dir, cb, device=device, resume=resume)
    except Exception:
        if resume is None and distributed.is_main():  # failed before its first checkpoint: leave no run behind
            release_run_folder(run_dir)
        raise
    except KeyboardInterrupt:
        done = Run(run_dir).history
        progress.console.print(
            f"\nStopped. {len(done)} epoch(s) saved in {run_dir}; continue with `xraykit train --resume {run_dir}`."
        )
        raise
    finally:
        unlock(run_dir)  # training is over: a --resume (in this process too) may take the folder
    if distributed.is_main():
        figures.loss_curves({f"{config.task} ({config.backbone})": history}, run_dir / "loss_curves.png")
    return Run(run_dir)


def _versions() -> dict[str, str]:
    import captum
    import numpy
    import PIL
    import torchvision

    from . import __version__

    # str(): torch.__version__ is a str subclass that a weights-only checkpoint load would refuse.
    return {
        "xraykit": __version__,
        "torch": str(torch.__version__),
        "torchvision": str(torchvision.__version__),
        "captum": str(captum.__version__),
        "numpy": numpy.__version__,
        "pillow": PIL.__version__,
        "python": platform.python_version(),
    }
