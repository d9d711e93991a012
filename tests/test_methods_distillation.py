"""Teacher-student methods (STFPM, Reverse Distillation, EfficientAD): round trips on a tiny
budget, progress with loss, cancellation, learning, ONNX-ready export modules, and (slow)
accuracy floors with default settings on the sample data."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from workbench.core.jobs import CancelToken, Cancelled
from workbench.core.methods import METHODS, create_method
from workbench.core.methods.package import load_model, save_model

TINY = {
    "stfpm": {"image_size": 64, "epochs": 3, "batch_size": 4, "learning_rate": 3e-3},
    "reverse_distillation": {"image_size": 64, "epochs": 3, "batch_size": 4, "embed_dim": 64,
                             "decoder_width": 64},
    "efficientad": {"image_size": 64, "width": 8, "distill_epochs": 3, "epochs": 2, "batch_size": 4},
}
METHOD_NAMES = sorted(TINY)


@pytest.fixture(scope="module")
def fitted(tiny_images, fit_each):
    return fit_each(TINY, tiny_images["train"])


def test_registered_with_a_complete_schema():
    for name in METHOD_NAMES:
        cls = METHODS[name]
        names = [p.name for p in cls.schema()]
        assert len(names) == len(set(names))
        assert {"epochs", "learning_rate", "early_stopping", "image_size"} <= set(names)
        assert all(p.help for p in cls.schema())
        assert cls.family == "Knowledge distillation (teacher-student)"


@pytest.mark.parametrize("name", METHOD_NAMES)
def test_fit_predict_save_load_round_trip(name, fitted, tiny_images, tmp_path):
    model, events = fitted[name]
    assert model.fitted
    train_events = [e for e in events if e.stage == "train"]
    assert train_events and train_events[-1].current == train_events[-1].total
    assert all("loss" in e.metrics and np.isfinite(e.metrics["loss"]) for e in train_events)
    test = tiny_images["good"] + tiny_images["bad"]
    scores, maps = model.predict(test)
    assert scores.shape == (len(test),) and scores.dtype == np.float32
    assert maps.shape == (len(test), 64, 64) and maps.dtype == np.float32
    assert np.isfinite(scores).all() and np.isfinite(maps).all()

    save_model(model, tmp_path / "m")
    loaded = load_model(tmp_path / "m", device="cpu")
    assert type(loaded) is type(model)
    scores2, maps2 = loaded.predict(test)
    np.testing.assert_array_equal(scores, scores2)
    np.testing.assert_array_equal(maps, maps2)


@pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::UserWarning")
@pytest.mark.parametrize("name", METHOD_NAMES)
def test_export_module_matches_predict_and_traces_to_onnx(name, fitted, tiny_images, tmp_path):
    model, _ = fitted[name]
    assert model.exportable
    x = model.preprocess(tiny_images["bad"][:2])
    module = model.export_module()
    with torch.no_grad():
        s1, m1 = module(x)
        s2, m2 = model._predict_tensor(x)
    torch.testing.assert_close(s1, s2, rtol=0, atol=0)
    torch.testing.assert_close(m1, m2, rtol=0, atol=0)
    with torch.no_grad():
        torch.onnx.export(module, (x,), str(tmp_path / "m.onnx"), dynamo=False, opset_version=17,
                          input_names=["image"], output_names=["scores", "maps"])
    ort = pytest.importorskip("onnxruntime")
    session = ort.InferenceSession(str(tmp_path / "m.onnx"), providers=["CPUExecutionProvider"])
    s3, m3 = session.run(None, {"image": x.numpy()})
    scale = float(m1.abs().max()) + 1e-12
    np.testing.assert_allclose(s3, s1.numpy(), rtol=1e-3, atol=1e-4 * scale)
    np.testing.assert_allclose(m3, m1.numpy(), rtol=1e-3, atol=1e-4 * scale)


@pytest.mark.parametrize("name", METHOD_NAMES)
def test_cancel_mid_training_discards_the_model(name, tiny_images):
    token = CancelToken()
    seen = []

    def cancel_on_second_step(event):
        if event.stage in ("train", "distil teacher"):
            seen.append(event.current)
            if len(seen) == 2:
                token.cancel()

    model = create_method(name, device="cpu", **TINY[name])
    with pytest.raises(Cancelled):
        model.fit(tiny_images["train"], progress=cancel_on_second_step, cancel=token)
    assert not model.fitted and len(seen) == 2


@pytest.mark.parametrize("name", ["stfpm", "reverse_distillation"])
def test_training_reduces_the_loss(name, tiny_images):
    params = {**TINY[name], "epochs": 6}
    model = create_method(name, device="cpu", **params).fit(tiny_images["train"])
    losses = model.metadata["training_history"]["train_loss"]
    assert losses[-1] < 0.9 * losses[0], losses


def test_efficientad_distils_teacher_and_normalises_maps(fitted):
    model, events = fitted["efficientad"]
    history = model.metadata["training_history"]
    assert [e for e in events if e.stage == "distil teacher"]
    assert history["distill_loss"][-1] < history["distill_loss"][0]
    assert 0.0 < history["teacher_r2"] <= 1.0  # the least-squares teacher explains part of the backbone
    q = model.state_tensors()["quantiles"]
    assert q.shape == (4,) and q[1] > q[0] and q[3] > q[2]
    assert model.state_tensors()["teacher_mean"].shape == (sum(model.extractor.channels),)


def test_same_seed_gives_identical_students(tiny_images):
    a = create_method("stfpm", device="cpu", **{**TINY["stfpm"], "epochs": 1}).fit(tiny_images["train"])
    b = create_method("stfpm", device="cpu", **{**TINY["stfpm"], "epochs": 1}).fit(tiny_images["train"])
    ta, tb = a.state_tensors(), b.state_tensors()
    assert all(torch.equal(ta[k], tb[k]) for k in ta)


def test_fit_readout_recovers_a_linear_last_layer():
    """Targets made by the same trunk with another last layer are fitted exactly (R^2 ~ 1),
    and a channel subset leaves the other output channels alone."""
    from workbench.core.methods.efficientad.torch_model import PatchDescriptionNetwork, fit_readout
    torch.manual_seed(0)
    source, net = PatchDescriptionNetwork(6, 8), PatchDescriptionNetwork(6, 8)
    net.net[:-1].load_state_dict(source.net[:-1].state_dict())
    x = torch.randn(6, 3, 48, 48)
    with torch.no_grad():
        y = source(x)
    r2 = fit_readout(net, [(x[:3], y[:3]), (x[3:], y[3:])], ridge=1e-9)
    assert r2 > 0.999
    with torch.no_grad():
        assert torch.allclose(net(x), y, atol=1e-3 * float(y.abs().max()))
    untouched = net.net[-1].weight[3:].clone()
    r2_half = fit_readout(net, [(x, torch.zeros_like(y[:, :3]))], channels=slice(0, 3))
    assert torch.equal(net.net[-1].weight[3:], untouched)
    with torch.no_grad():
        assert float(net(x)[:, :3].abs().max()) < 1e-3
    assert r2_half <= 1.0


def test_teacher_target_set_pairs_each_image_with_the_teachers_output(tiny_images):
    """Copy 0 is the image itself; the jittered copy differs; both targets are the teacher's."""
    from workbench.core.methods.efficientad.augment import Augmenter
    from workbench.core.methods.efficientad.model import TeacherTargetSet
    from workbench.core.methods.trainer import ImageCache

    mean, std = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]
    cache = ImageCache(tiny_images["train"][:5], 32, CancelToken())
    torch.manual_seed(0)
    teacher = torch.nn.Conv2d(3, 4, 5)
    targets = TeacherTargetSet(cache, Augmenter(mean, std, 0, torch.device("cpu")), teacher, 2, 0,
                               CancelToken(), None, copies=3)
    assert len(targets) == 5 and targets.copies == 4
    index = np.array([4, 1, 2])
    x, t, x_ae, t_ae = targets.batch(index, mean, std, torch.device("cpu"))
    assert torch.allclose(x, cache.batch(index, mean, std, torch.device("cpu")), atol=1e-5)
    assert not torch.allclose(x_ae, x, atol=1e-3)
    with torch.no_grad():
        for image, target in ((x, t), (x_ae, t_ae)):
            assert torch.allclose(target.float(), teacher(image), atol=2e-2)


def test_efficientad_saved_before_smoothing_loads_unsmoothed(fitted, tmp_path):
    """A package from before ``smoothing_sigma`` existed keeps its old, unsmoothed scores."""
    import json

    from workbench.core.methods.package import META_FILE

    model, _ = fitted["efficientad"]
    assert model.params["smoothing_sigma"] == 8.0
    directory = save_model(model, tmp_path / "old")
    meta_path = directory / META_FILE
    meta = json.loads(meta_path.read_text())
    del meta["params"]["smoothing_sigma"]
    meta_path.write_text(json.dumps(meta))
    assert load_model(directory).params["smoothing_sigma"] == 0.0
    assert load_model(save_model(model, tmp_path / "new")).params["smoothing_sigma"] == 8.0
