"""Label-free adaptation: looking at the new images, never at their labels.

Two honest corrections when a model meets X-rays from another hospital, both reported by
``xraykit evaluate --adapt`` *beside* the plain numbers, never instead of them:

- **AdaBN** (Li et al. 2016): BatchNorm layers normalise with the mean and variance they
  saw in training. New images with another exposure have other statistics; re-estimating
  them on the new images (a forward pass, no gradient, no label) puts the features back
  where the rest of the network expects them.
- **Prior shift by EM** (Saerens, Latinne and Decaestecker 2002): the new collection may
  hold another share of pneumonia than the training data. The expectation-maximisation
  loop estimates that share from the model's own probabilities and re-weights them with
  Bayes' rule, which moves the decision threshold accordingly.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from .runs import Run


@torch.no_grad()
def adapt_batchnorm(model: nn.Module, inputs: torch.Tensor, batch_size: int = 64) -> nn.Module:
    """A copy of ``model`` whose BatchNorm statistics are those of ``inputs`` (normalised images).

    The statistics are a plain average over all batches (``momentum=None``), so the order of
    the images does not matter; the weights are untouched and the original model unchanged.
    """
    adapted = copy.deepcopy(model)
    norms = [m for m in adapted.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None
    adapted.eval()
    for m in norms:
        m.train()
    for start in range(0, len(inputs), batch_size):
        adapted(inputs[start : start + batch_size])
    return adapted.eval()


def estimate_prior(probs: torch.Tensor, model_prior: torch.Tensor, steps: int = 100, tol: float = 1e-6) -> torch.Tensor:
    """The class shares of the images behind ``probs``, by Saerens et al.'s EM.

    ``model_prior`` is the class balance the model's probabilities assume: the training
    shares, or uniform when the loss was class-weighted. Each step re-weights the
    probabilities to the current estimate and takes their mean as the next one.
    """
    probs, model_prior = probs.double(), model_prior.double()
    prior = model_prior.clone()
    for _ in range(steps):
        adjusted = adjust_to_prior(probs, model_prior, prior)
        new = adjusted.mean(0)
        if float((new - prior).abs().max()) < tol:
            return new.float()
        prior = new
    return prior.float()


def adjust_to_prior(probs: torch.Tensor, model_prior: torch.Tensor, new_prior: torch.Tensor) -> torch.Tensor:
    """Bayes' rule: probabilities under ``model_prior`` restated for ``new_prior``."""
    weighted = probs * (new_prior / model_prior).to(probs.dtype)
    return weighted / weighted.sum(1, keepdim=True)


def model_prior_of(run: Run) -> tuple[torch.Tensor, str]:
    """The class shares a run's probabilities assume, and why: uniform for a class-weighted loss, else the
    training shares."""
    k = len(run.classes)
    counts = run.record.train_class_counts
    if run.config.class_weights == "auto" or not counts:
        why = "class-weighted loss" if run.config.class_weights == "auto" else "training counts not recorded"
        return torch.full((k,), 1.0 / k), f"uniform ({why})"
    c = torch.tensor([float(counts.get(name, 0)) for name in run.classes]).clamp(min=1.0)
    return c / c.sum(), "the training class shares"
