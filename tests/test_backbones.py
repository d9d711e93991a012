"""The offline default backbone really is pretrained, loads without network, and fails loudly."""

from __future__ import annotations

import socket

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from workbench.core.backbones import BackboneError, BackboneSpec, create_extractor
from workbench.core.backbones.weights import (
    embedded_weights_path,
    input_normalization,
    map_by_order,
    read_state_dict,
)


@pytest.fixture()
def no_network(monkeypatch):
    """Any attempt to open a network connection fails the test."""

    def refuse(*args, **kwargs):
        raise AssertionError(f"network access attempted: {args}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


def _structured_image(size: int = 128) -> np.ndarray:
    """A smooth, structured scene (shapes and gradients) normalised like the backbone expects."""
    yy, xx = np.mgrid[0:size, 0:size] / size
    img = np.stack([np.sin(6 * xx) * 0.5 + 0.5, yy, ((xx - 0.5) ** 2 + (yy - 0.5) ** 2 < 0.1) * 1.0])
    return img.astype(np.float32)


def test_embedded_default_loads_offline(no_network):
    extractor = create_extractor(BackboneSpec(), layers=(2, 3))
    with torch.inference_mode():
        feats = extractor(torch.zeros(1, 3, 64, 64))
    assert [f.shape[1] for f in feats] == [40, 112]
    assert [f.shape[-1] for f in feats] == [8, 4]
    assert not any(p.requires_grad for p in extractor.parameters())
    extractor.train()
    assert not extractor.model.training, "the backbone must stay in eval mode"


@pytest.fixture(scope="module")
def random_weights_file(tmp_path_factory):
    """EfficientNet-Lite0 with timm's random initialisation, saved as a local weights file."""
    import timm

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("weights") / "random_lite0.safetensors"
    save_file({k: v.contiguous() for k, v in timm.create_model("efficientnet_lite0").state_dict().items()}, str(path))
    return path


def test_embedded_weights_are_pretrained(no_network, random_weights_file):
    extractor = create_extractor(BackboneSpec(), layers=(1,))
    bn = extractor.model.bn1
    # Freshly initialised BatchNorm has running mean 0 and variance 1 everywhere.
    assert bn.running_mean.abs().max() > 0.1
    assert (bn.running_var - 1).abs().max() > 0.1
    # Pretrained features respond to image structure: shuffling the pixels changes them far
    # more, relative to their own variation, than it does for a randomly initialised network.
    random_init = create_extractor(BackboneSpec(weights=str(random_weights_file)), layers=(1,))
    mean, std = input_normalization(BackboneSpec())
    img = (_structured_image() - np.array(mean)[:, None, None]) / np.array(std)[:, None, None]
    x = torch.from_numpy(img.astype(np.float32))[None]
    perm = torch.randperm(x.shape[-1] * x.shape[-2])
    shuffled = x.flatten(2)[:, :, perm].reshape_as(x)

    def change(model) -> float:
        with torch.inference_mode():
            a, b = model(x)[0], model(shuffled)[0]
        return float((a - b).norm() / (a.norm() + b.norm()))

    pretrained_change, random_change = change(extractor), change(random_init)
    assert pretrained_change > 1.3 * random_change, (pretrained_change, random_change)


def test_embedded_file_maps_every_tensor_by_shape():
    import timm

    source = read_state_dict(embedded_weights_path())
    model = timm.create_model("efficientnet_lite0")
    mapped = map_by_order(source, model, "embedded")
    assert len(mapped) == len(source) == 296
    broken = dict(source)
    first = next(iter(broken))
    broken[first] = torch.zeros(1, 2, 3)
    with pytest.raises(BackboneError, match="shape"):
        map_by_order(broken, model, "embedded")


def test_local_safetensors_weights_give_same_features(tmp_path, no_network):
    import timm

    from workbench.core.backbones.weights import BackboneSpec as Spec, load_weights_into

    full = timm.create_model("efficientnet_lite0")
    load_weights_into(full, Spec())
    path = tmp_path / "lite0.safetensors"
    save_file({k: v.contiguous() for k, v in full.state_dict().items()}, str(path))
    local = create_extractor(Spec(weights=str(path)), layers=(2,))
    embedded = create_extractor(Spec(), layers=(2,))
    x = torch.randn(1, 3, 64, 64)
    with torch.inference_mode():
        assert torch.allclose(local(x)[0], embedded(x)[0])
    assert local.spec.weights_sha256 and len(local.spec.weights_sha256) == 64


def test_pth_with_pickled_object_is_refused(tmp_path):
    path = tmp_path / "evil.pth"
    torch.save({"model": _Pickled()}, path)
    with pytest.raises(BackboneError, match="Only plain tensor state dicts"):
        read_state_dict(path)


class _Pickled:
    """Stands in for an arbitrary pickled object inside a .pth file."""


def test_download_failure_names_offline_options(monkeypatch):
    import timm

    def offline(*args, **kwargs):
        raise OSError("network is unreachable")

    monkeypatch.setattr(timm, "create_model", offline)
    with pytest.raises(BackboneError) as info:
        create_extractor(BackboneSpec(name="resnet18", weights="imagenet"))
    assert "embedded" in str(info.value) and "local weights file" in str(info.value)


def test_embedded_weights_only_for_default_architecture():
    with pytest.raises(BackboneError, match="only for 'efficientnet_lite0'"):
        create_extractor(BackboneSpec(name="resnet18"))
