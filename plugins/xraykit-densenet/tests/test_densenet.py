"""The densenet plugin: DenseNet-121 as in CheXNet, registered through its entry point."""

import shutil

import pytest
import torch
import torchvision
from torch import nn

import xraykit
from xraykit import plugins
from xraykit.errors import WeightsUnavailableError
from xraykit_densenet import DENSENET121, modernize_state_dict

FILENAME = torchvision.models.DenseNet121_Weights.IMAGENET1K_V1.url.rsplit("/", 1)[-1]


def _old_format(state: dict) -> dict:
    """What torchvision's file really holds: 'norm.1' style keys, no BatchNorm step counters."""
    old = {}
    for key, value in state.items():
        if key.endswith("num_batches_tracked"):
            continue
        for part in ("norm", "relu", "conv"):
            for i in ("1", "2"):
                key = key.replace(f".{part}{i}.", f".{part}.{i}.")
        old[key] = value
    return old


@pytest.fixture
def imagenet_file_in_cache(monkeypatch, tmp_path):
    """A random torchvision-format DenseNet-121 file where torch's cache keeps the real one."""
    torch.manual_seed(0)
    state = _old_format(torchvision.models.densenet121(weights=None).state_dict())
    home = tmp_path / "torch_home"
    (home / "hub" / "checkpoints").mkdir(parents=True)
    path = home / "hub" / "checkpoints" / FILENAME
    torch.save(state, path)
    monkeypatch.setenv("TORCH_HOME", str(home))
    return path


def test_the_installed_package_registers_densenet121_through_its_entry_point():
    entry = plugins.entries("backbone")["densenet121"]
    assert entry.plugin == "densenet"
    assert entry.obj is DENSENET121


def test_declared_parts_exist_where_the_backbone_says():
    model = DENSENET121.build(2)
    stem = model.get_submodule(DENSENET121.stem)
    assert isinstance(stem, nn.Conv2d) and stem.in_channels == 1 and stem.out_channels == 64
    head = model.get_submodule(DENSENET121.head)
    assert isinstance(head, nn.Linear) and (head.in_features, head.out_features) == (1024, 2)
    assert isinstance(model.get_submodule(DENSENET121.cam_layer), nn.Sequential)


def test_a_one_channel_32_pixel_batch_gives_logits():
    assert DENSENET121.build(3).eval()(torch.zeros(2, 1, 32, 32)).shape == (2, 3)


def test_old_densenet_keys_are_renamed_to_todays_modules():
    new = DENSENET121.build(2).state_dict()
    modern = modernize_state_dict(_old_format(new))
    assert set(modern) == set(new)
    assert modernize_state_dict(new).keys() == new.keys(), "modern keys stay as they are"


def test_imagenet_weights_load_from_torchs_cache_with_the_stem_folded_to_one_channel(imagenet_file_in_cache):
    rgb = torch.load(imagenet_file_in_cache, weights_only=True)
    model = xraykit.create_backbone("densenet121", num_classes=2, weights="imagenet")
    assert torch.allclose(model.features.conv0.weight, rgb["features.conv0.weight"].sum(1, keepdim=True))
    layer = "features.denseblock4.denselayer16.conv2.weight"
    assert torch.equal(model.state_dict()[layer], rgb[layer.replace("conv2", "conv.2")])
    assert model.classifier.out_features == 2


def test_offline_without_the_file_the_error_names_it_and_the_weights_option():
    with pytest.raises(WeightsUnavailableError) as err:
        xraykit.create_backbone("densenet121", weights="imagenet")
    assert FILENAME in str(err.value) and "--weights PATH" in str(err.value)


def test_finetune_trains_only_the_classifier_and_keeps_batchnorm_frozen(imagenet_file_in_cache, tiny_splits, tmp_path):
    run = xraykit.train(tiny_splits, "finetune", backbone="densenet121", epochs=1, batch_size=16, image_size=32,
                        out=tmp_path / "run", quiet=True)
    assert run.record.trainable_parameters == 1024 * 2 + 2
    before = xraykit.create_backbone("densenet121", weights="imagenet").state_dict()
    after = run.load_model().state_dict()
    assert torch.equal(after["features.norm5.running_mean"], before["features.norm5.running_mean"])


def test_a_copy_of_the_imagenet_file_passed_as_weights_path_works_offline(imagenet_file_in_cache, tmp_path, monkeypatch):
    copy = tmp_path / "my-densenet.pth"
    shutil.copy(imagenet_file_in_cache, copy)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "empty"))
    model = xraykit.create_backbone("densenet121", weights=str(copy))
    rgb = torch.load(copy, weights_only=True)
    assert torch.allclose(model.features.conv0.weight, rgb["features.conv0.weight"].sum(1, keepdim=True))


def test_modernizing_a_current_format_state_dict_changes_nothing():
    # adapt_state_dict runs on every --weights PATH file, xraykit's own checkpoints included.
    state = DENSENET121.build(2).state_dict()
    same = modernize_state_dict(state)
    assert list(same) == list(state) and all(same[k] is state[k] for k in state)
