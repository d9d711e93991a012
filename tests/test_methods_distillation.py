"""Teacher-student methods (STFPM, Reverse Distillation, EfficientAD): cancellation mid-training,
learning, EfficientAD's teacher and map normalisation, and (slow) accuracy floors with default
settings on the sample data. (Round trips, seeding and ONNX parity of every method:
``test_method_contract.py``.)"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from workbench.core.jobs import CancelToken, Cancelled
from workbench.core.methods import METHODS, create_method
from workbench.core.methods.package import load_model, save_model

METHOD_NAMES = ["efficientad", "reverse_distillation", "stfpm"]
TINY = {name: METHODS[name].tiny_params for name in METHOD_NAMES}


def test_registered_with_a_complete_schema():
    for name in METHOD_NAMES:
        cls = METHODS[name]
        assert {"epochs", "learning_rate", "early_stopping", "image_size"} <= {p.name for p in cls.schema()}
        assert cls.family == "Knowledge distillation (teacher-student)"


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


def test_efficientad_distils_teacher_and_normalises_maps(fitted_method):
    model, events = fitted_method("efficientad")
    history = model.metadata["training_history"]
    assert [e for e in events if e.stage == "distil teacher"]
    assert history["distill_loss"][-1] < history["distill_loss"][0]
    assert 0.0 < history["teacher_r2"] <= 1.0  # the least-squares teacher explains part of the backbone
    q = model.state_tensors()["quantiles"]
    assert q.shape == (4,) and q[1] > q[0] and q[3] > q[2]
    assert model.state_tensors()["teacher_mean"].shape == (sum(model.extractor.channels),)


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
    from workbench.core.methods.components.training import ImageCache

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


def test_efficientad_saved_before_smoothing_loads_unsmoothed(fitted_method, tmp_path):
    """A package from before ``smoothing_sigma`` existed keeps its old, unsmoothed scores."""
    import json

    from workbench.core.methods.package import META_FILE

    model, _ = fitted_method("efficientad")
    assert model.params["smoothing_sigma"] == 8.0
    directory = save_model(model, tmp_path / "old")
    meta_path = directory / META_FILE
    meta = json.loads(meta_path.read_text())
    del meta["params"]["smoothing_sigma"]
    meta_path.write_text(json.dumps(meta))
    assert load_model(directory).params["smoothing_sigma"] == 0.0
    assert load_model(save_model(model, tmp_path / "new")).params["smoothing_sigma"] == 8.0
