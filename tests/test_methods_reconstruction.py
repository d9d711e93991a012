"""Reconstruction family (SSIM autoencoder, GANomaly, DRAEM): schema, training behaviour,
reconstructions, packages from before the backbone parameters left their schema, and DRAEM's
synthetic anomalies. (Round trips, cancel and ONNX parity of every method: ``test_method_contract.py``.)"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from workbench.core.jobs import CancelToken, Cancelled
from workbench.core.methods import METHODS, create_method
from workbench.core.methods.package import load_model, save_model

RECONSTRUCTION = ("autoencoder", "ganomaly", "draem")
TINY = {name: METHODS[name].tiny_params for name in RECONSTRUCTION}


@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny networks run faster on one thread, and the test machine is shared."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_registered_with_schema_and_cpu_friendly_defaults():
    for name in RECONSTRUCTION:
        cls = METHODS[name]
        assert cls.family == "Reconstruction" and cls.title and cls.description
        schema = {p.name: p for p in cls.schema()}
        assert len(schema) == len(cls.schema())
        assert schema["image_size"].default == 128  # trained from scratch on a CPU
        assert {"epochs", "learning_rate", "early_stopping"} <= set(schema)
        assert all(p.help for p in cls.schema())


@pytest.mark.parametrize("method", RECONSTRUCTION)
def test_reconstruct_survives_save_and_load(method, fitted_method, tiny_images, tmp_path):
    model, _ = fitted_method(method)
    test = tiny_images["good"] + tiny_images["bad"]
    recs = model.reconstruct(test)
    assert recs.shape == (len(test), 64, 64, 3) and recs.dtype == np.uint8
    save_model(model, tmp_path / "m")
    meta = json.loads((tmp_path / "m" / "model.json").read_text())
    assert meta["method"] == method and meta["input"]["mean"] == [0.5, 0.5, 0.5]
    assert "backbone" not in meta["params"] and "weights" not in meta["params"]
    np.testing.assert_array_equal(recs, load_model(tmp_path / "m", device="cpu").reconstruct(test))


@pytest.mark.parametrize("method", RECONSTRUCTION)
def test_backbone_parameters_are_refused_but_old_packages_with_them_load(method, fitted_method, tiny_images,
                                                                         tmp_path):
    """They were accepted and ignored before; now a new model refuses them, and a package saved
    with them (as every package was) loads with them dropped and scores the same."""
    with pytest.raises(ValueError, match="Unknown parameter"):
        create_method(method, device="cpu", backbone="resnet18")
    model, _ = fitted_method(method)
    directory = save_model(model, tmp_path / "old")
    meta_path = directory / "model.json"
    meta = json.loads(meta_path.read_text())
    meta["params"] = {**meta["params"], "backbone": "efficientnet_lite0", "weights": "embedded"}
    meta_path.write_text(json.dumps(meta))
    loaded = load_model(directory, device="cpu")
    assert loaded.params == model.params
    test = tiny_images["bad"][:2]
    for expected, got in zip(model.predict(test), loaded.predict(test)):
        np.testing.assert_array_equal(expected, got)


@pytest.mark.parametrize("method", RECONSTRUCTION)
def test_cancel_during_training(method, tiny_images):
    token = CancelToken()

    def cancel_on_first_step(event):
        if event.stage == "train":
            token.cancel()

    model = create_method(method, device="cpu", **TINY[method])
    with pytest.raises(Cancelled):
        model.fit(tiny_images["train"], progress=cancel_on_first_step, cancel=token)
    assert not model.fitted


@pytest.mark.parametrize("method", RECONSTRUCTION)
def test_learning_happens_and_is_seeded(method, tiny_images):
    params = {**TINY[method], "epochs": 6}
    a = create_method(method, device="cpu", **params).fit(tiny_images["train"][:4])
    losses = a.metadata["loss_history"]
    assert len(losses) == 6 and losses[-1] < losses[0]
    b = create_method(method, device="cpu", **params).fit(tiny_images["train"][:4])
    for key, value in a.state_tensors().items():
        assert torch.equal(value, b.state_tensors()[key]), key


def test_reconstruct_redraws_the_input(tiny_images):
    """A few epochs of the autoencoder already redraw the mean colour of the fabric."""
    model = create_method("autoencoder", device="cpu", image_size=64, epochs=15, width=8,
                          learning_rate=3e-3).fit(tiny_images["train"][:4])
    recs = model.reconstruct(tiny_images["good"][:1]).astype(np.float32)
    from workbench.core.methods.images import resize_square

    target = resize_square(tiny_images["good"][0], 64).astype(np.float32)
    assert recs.shape == (1, 64, 64, 3)
    assert np.abs(recs[0].mean((0, 1)) - target.mean((0, 1))).max() < 25
    with pytest.raises(RuntimeError, match="not trained"):
        create_method("autoencoder", device="cpu").reconstruct(tiny_images["good"][:1])


# --------------------------------------------------------------------------- DRAEM's synthetic anomalies
def test_perlin_noise_is_smooth_and_seeded():
    from workbench.core.methods.draem.synthetic import perlin_noise

    a = perlin_noise((64, 48), (4, 3), np.random.default_rng(0))
    b = perlin_noise((64, 48), (4, 3), np.random.default_rng(0))
    assert a.shape == (64, 48) and a.dtype == np.float32 and np.array_equal(a, b)
    assert -1.5 < a.min() < 0 < a.max() < 1.5
    assert np.abs(np.diff(a, axis=0)).max() < 0.25  # continuous: neighbours differ little


def test_synthetic_masks_are_exactly_the_altered_pixels():
    from workbench.core.methods.draem.synthetic import AnomalySynthesizer, paste

    rng = np.random.default_rng(0)
    sources = rng.integers(0, 256, (5, 64, 64, 3), dtype=np.uint8)
    images = rng.random((12, 64, 64, 3)).astype(np.float32)
    synth = AnomalySynthesizer(sources, np.random.default_rng(1), probability=1.0, max_scale=3)
    altered, masks = synth.batch(images)
    assert altered.shape == images.shape and masks.shape == (12, 64, 64)
    assert set(np.unique(masks)) <= {0.0, 1.0} and masks.any()
    for img, out, mask in zip(images, altered, masks):
        outside = mask == 0
        np.testing.assert_array_equal(out[outside], img[outside])  # untouched, bit for bit
        changed = np.abs(out - img).max(-1) > 0
        assert not changed[outside].any()
        if mask.any():  # and the mask is the pasted region: (nearly) every masked pixel changed
            assert changed[mask > 0].mean() > 0.95
        assert 0 <= out.min() and out.max() <= 1

    # inside the mask the result is the documented blend
    tex = rng.random((64, 64, 3)).astype(np.float32)
    mask = np.zeros((64, 64), np.float32)
    mask[10:20, 30:50] = 1
    out = paste(images[0], tex, mask, beta=0.25)
    np.testing.assert_allclose(out[10:20, 30:50], 0.75 * tex[10:20, 30:50] + 0.25 * images[0][10:20, 30:50],
                               rtol=1e-6)
    np.testing.assert_array_equal(out[mask == 0], images[0][mask == 0])


def test_synthesizer_leaves_clean_images_and_is_seeded():
    from workbench.core.methods.draem.synthetic import AnomalySynthesizer

    rng = np.random.default_rng(0)
    sources = rng.integers(0, 256, (3, 32, 32, 3), dtype=np.uint8)
    images = rng.random((8, 32, 32, 3)).astype(np.float32)
    none = AnomalySynthesizer(sources, np.random.default_rng(0), probability=0.0)
    out, masks = none.batch(images)
    assert np.array_equal(out, images) and not masks.any()
    a = AnomalySynthesizer(sources, np.random.default_rng(3), probability=0.5).batch(images)
    b = AnomalySynthesizer(sources, np.random.default_rng(3), probability=0.5).batch(images)
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
