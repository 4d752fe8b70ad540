"""Ensembles: several runs answering as one, by the mean of their probabilities.

Networks trained from other seeds make other mistakes; averaging their probabilities keeps what
they agree on. Deep ensembles are the best-known defence of ranking and calibration under shift
(Lakshminarayanan et al. 2017; Ovadia et al. 2019). An ensemble folder holds:

```
ENS/config.json     the first member's choices (classes, image size, backbone, data): what the ensemble answers
ENS/ensemble.json   each member's folder and the SHA-256 of the checkpoint it answers with
ENS/.xraykit-run    the claim, as a run folder has
```

``evaluate`` and ``predict`` take it like a run; a member whose checkpoint has changed since is
refused, so an ensemble never silently answers with other weights than it was made of.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence, Union

import torch
from torch import nn

from .errors import XrayError, display_path
from .inference import mean_of_probabilities
from .io import write_json
from .runs import Run, RunLike, check_out, claim_run_folder

ENSEMBLE_FILE = "ensemble.json"


class Ensemble(nn.Module):
    """The members' mean probability, as logits (:func:`xraykit.inference.mean_of_probabilities`)."""

    def __init__(self, members: Sequence[nn.Module]) -> None:
        super().__init__()
        self.members = nn.ModuleList(members)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return mean_of_probabilities([m(x) for m in self.members])


def ensemble(runs: Sequence[RunLike], *, out: Union[str, Path], which: str | None = None) -> Run:
    """Make an ensemble folder of ``runs``: a run whose answer is the mean of theirs.

    Args:
        runs: two or more run folders (or :class:`~xraykit.Run`) with the same classes, image size and
            backbone, e.g. one recipe trained with three seeds.
        out: the new folder; one that already holds a run is refused.
        which: each member's checkpoint, ``"best"`` or ``"last"``; ``None``: the one its recipe selects.

    Returns:
        The ensemble, as a :class:`~xraykit.Run`: :func:`xraykit.evaluate` and :func:`xraykit.predict`
            take it (or its folder) like any run.

    Raises:
        XrayError: fewer than two runs, members that differ in what they answer, a member without a
            checkpoint, or an ``out`` that already holds a run.
    """
    members = [Run.open(r) for r in runs]
    if len(members) < 2:
        raise XrayError("an ensemble needs at least two runs")
    first = members[0]
    for member in members[1:]:
        for what, get in (
            ("classes", lambda r: tuple(r.classes)),
            ("image size", lambda r: r.config.image_size),
            ("backbone", lambda r: r.config.backbone),
        ):
            if get(member) != get(first):
                raise XrayError(
                    f"{display_path(member.path)}: its {what} ({get(member)}) differs from "
                    f"{display_path(first.path)}'s ({get(first)}); an ensemble's members answer the same question"
                )
    entries = [
        {
            "path": str(m.path.resolve()),
            "checkpoint": m.checkpoint_path(which).name,
            "checkpoint_sha256": m.checkpoint_digest(which),
            "val_fingerprint": m.record.val_fingerprint,
        }
        for m in members
    ]
    out = Path(out)
    check_out(out)
    claim_run_folder(out)
    write_json(out / "config.json", first.config.to_dict())
    write_json(out / ENSEMBLE_FILE, {"members": entries})
    return Run(out)
