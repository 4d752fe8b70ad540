"""Offline, tiny fixtures for the tinycnn plugin's tests (the same rules as xraykit's own)."""

import pytest
import torch

from xraykit import weights as weights_module
from xraykit.data.synthetic import synthetic_splits

torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def offline(monkeypatch, tmp_path_factory):
    """No download, and an empty torch cache."""

    def refuse(url, dst):
        raise OSError(f"network disabled in tests (asked for {url})")

    monkeypatch.setattr(weights_module, "download", refuse)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path_factory.mktemp("torch_home")))


@pytest.fixture(scope="session")
def tiny_splits():
    return synthetic_splits(n=128, size=32, seed=0)
