"""The contract every registered method keeps, checked for each one (in the spirit of
scikit-learn's ``parametrize_with_checks``): schema and typed parameters, fit / predict shapes,
save / load round trip, progress, cancellation, seeding, learning, and export parity (the
export module is what predict runs, and the ONNX graph agrees with it).

A new method needs nothing here: its folder, its registry line and its ``tiny_params``.
Family-specific behaviour (coupling blocks, synthetic anomalies, ...) is tested in the
``test_methods_*`` files.
"""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch

from workbench.core.jobs import CancelToken, Cancelled
from workbench.core.methods import METHODS, create_method
from workbench.core.methods.base import AnomalyModel
from workbench.core.methods.components.inference import InferenceModule
from workbench.core.methods.package import load_model, save_model

NAMES = sorted(METHODS)
EXPORTABLE = sorted(name for name, cls in METHODS.items() if cls.exportable)
TRAINING_STAGES = ("train", "distil teacher")
# k-nearest-neighbour methods score with a fast index in predict and by matrix product in the
# exported graph: equal up to float rounding, not bit for bit
SEARCH_METHODS = {"patchcore", "spade"}


@pytest.mark.parametrize("name", NAMES)
def test_declares_a_complete_schema_and_tiny_budget(name):
    cls = METHODS[name]
    assert issubclass(cls, AnomalyModel) and cls.name == name
    assert cls.title and cls.family and cls.description
    names = [p.name for p in cls.schema()]
    assert len(names) == len(set(names)), f"{name} declares a parameter twice"
    assert all(p.help for p in cls.schema())
    assert isinstance(cls.__dict__.get("exportable", AnomalyModel.exportable), bool)
    assert cls.tiny_params and set(cls.tiny_params) <= set(names)
    if "epochs" in names:  # every trained method shares the training loop's knobs
        assert {"learning_rate", "early_stopping"} <= set(names)
    # methods that learn from raw pixels do not offer backbone settings they would ignore
    assert ({"backbone", "weights"} <= set(names)) == cls.uses_backbone


@pytest.mark.parametrize("name", NAMES)
def test_params_are_a_typed_read_only_view_of_the_schema(name):
    cls = METHODS[name]
    model = cls(device="cpu", **cls.tiny_params)
    for param in cls.schema():
        value = getattr(model.p, param.name)
        assert value == model.params[param.name]
        expected = {"int": int, "float": float, "bool": bool}.get(param.kind, str)
        assert type(value) is expected, (param.name, type(value))
    with pytest.raises(dataclasses.FrozenInstanceError):
        model.p.seed = 1  # type: ignore[misc]


@pytest.mark.parametrize("name", NAMES)
def test_every_parameter_in_the_schema_is_read_by_the_method(name, fitted_method, tiny_images):
    """The schema is what the CLI and the GUI form offer (the form is built from it, see
    tests/gui/test_gui_param_form.py), so a parameter the method never reads is a knob that does
    nothing (as Backbone/Weights were on the autoencoder's form). Every parameter must be read
    from ``model.p`` while the method is built, fitted and predicts; ``backbone`` and ``weights``
    count as read when the backbone was built from them."""
    model, _events = fitted_method(name)
    model.predict(tiny_images["good"][:1] + tiny_images["bad"][:1])
    reads = set(model.p.reads)
    if model._extractor is not None:
        reads |= {"backbone", "weights"}
    unread = [p.name for p in model.schema() if p.name not in reads]
    assert not unread, f"{name} offers parameters it never reads: {unread}"


@pytest.mark.parametrize("name", NAMES)
def test_predict_before_fit_is_a_clear_error(name, tiny_images):
    with pytest.raises(RuntimeError, match="not trained yet"):
        create_method(name, device="cpu", **METHODS[name].tiny_params).predict(tiny_images["good"][:1])


@pytest.mark.parametrize("name", NAMES)
def test_fit_predict_save_load_round_trip(name, fitted_method, tiny_images, tmp_path):
    model, events = fitted_method(name)
    assert model.fitted and isinstance(model.module, InferenceModule)
    assert events and events[-1].current == events[-1].total
    train_events = [e for e in events if e.stage == "train"]
    if "epochs" in model.params:
        assert train_events and train_events[-1].current == train_events[-1].total
    assert all("loss" in e.metrics and np.isfinite(e.metrics["loss"]) for e in train_events)
    if not model.uses_backbone:
        assert model._extractor is None  # raw pixels: the backbone is never built
    test = tiny_images["good"] + tiny_images["bad"]
    scores, maps = model.predict(test)
    size = model.image_size
    assert scores.shape == (len(test),) and scores.dtype == np.float32
    assert maps.shape == (len(test), size, size) and maps.dtype == np.float32
    assert np.isfinite(scores).all() and np.isfinite(maps).all()

    save_model(model, tmp_path / "m")
    meta = json.loads((tmp_path / "m" / "model.json").read_text())
    assert meta["method"] == name and meta["format_version"] == 1 and meta["params"]["image_size"] == size
    assert meta["params"] == model.params
    loaded = load_model(tmp_path / "m", device="cpu")
    assert type(loaded) is type(model)
    scores2, maps2 = loaded.predict(test)
    np.testing.assert_array_equal(scores, scores2)
    np.testing.assert_array_equal(maps, maps2)
    # the module is built once, not per batch
    assert loaded.module is loaded.module and loaded._predict_tensor.__func__ is AnomalyModel._predict_tensor


@pytest.mark.parametrize("name", NAMES)
def test_state_is_the_modules_state_dict(name, fitted_method):
    model, _ = fitted_method(name)
    state = model.state_tensors()
    module_state = model.module.state_dict()
    assert state and set(state) <= set(module_state)
    for key, value in state.items():
        assert value.device.type == "cpu" and value.is_contiguous()
        assert torch.equal(value, module_state[key].cpu()), key
    frozen = [k for k in module_state if model.module._is_frozen(k)]
    assert not set(frozen) & set(state), "the frozen pretrained backbone is rebuilt, not saved"
    if model._extractor is not None and name != "efficientad":  # (EfficientAD infers without it)
        assert frozen


@pytest.mark.parametrize("name", NAMES)
def test_cancel_discards_the_model(name, tiny_images):
    token = CancelToken()
    after: list = []

    def cancel_on_first_event(event):
        if token.cancelled:
            after.append(event)
        token.cancel()

    model = create_method(name, device="cpu", **METHODS[name].tiny_params)
    with pytest.raises(Cancelled):
        model.fit(tiny_images["train"], progress=cancel_on_first_event, cancel=token)
    assert not model.fitted and after == [], "work went on after the cancel"
    with pytest.raises(RuntimeError, match="not trained yet"):
        model.predict(tiny_images["good"][:1])


@pytest.mark.parametrize("name", NAMES)
def test_same_seed_gives_identical_models(name, fitted_method, tiny_images):
    reference, _ = fitted_method(name)
    again = create_method(name, device="cpu", **METHODS[name].tiny_params).fit(tiny_images["train"])
    ref_state, state = reference.state_tensors(), again.state_tensors()
    assert set(ref_state) == set(state)
    for key, value in state.items():
        assert torch.equal(value, ref_state[key]), key


@pytest.mark.parametrize("name", NAMES)
def test_learning(name, fitted_method, tiny_images):
    """Trained methods move every network away from its initialisation and record their losses;
    methods fitted in closed form (memory banks, Gaussians, PCA) already score the defect images
    above the good ones."""
    model, events = fitted_method(name)
    if "epochs" not in model.params:
        scores, _ = model.predict(tiny_images["good"] + tiny_images["bad"])
        n_good = len(tiny_images["good"])
        assert scores[n_good:].mean() > scores[:n_good].mean()
        return
    fresh = model._new_module(model.state_tensors()).saved_state()
    fitted = model.state_tensors()
    assert any(not torch.equal(fresh[k], fitted[k]) for k in fitted if fresh[k].is_floating_point())
    losses = [e.metrics["loss"] for e in events if e.stage == "train"]
    assert losses and np.isfinite(losses).all()


@pytest.mark.parametrize("name", NAMES)
def test_export_module_is_what_predict_runs(name, fitted_method, tiny_images):
    model, _ = fitted_method(name)
    assert model.exportable
    x = model.preprocess(tiny_images["bad"][:2])
    with torch.inference_mode():
        s1, m1 = model.export_module()(x)
        s2, m2 = model._predict_tensor(x)
    if name in SEARCH_METHODS:
        scale = float(m2.abs().max())
        torch.testing.assert_close(m1, m2, rtol=1e-4, atol=1e-4 * scale)
        torch.testing.assert_close(s1, s2, rtol=1e-4, atol=1e-4 * float(s2.abs().max()))
    else:
        torch.testing.assert_close(s1, s2, rtol=0, atol=0)
        torch.testing.assert_close(m1, m2, rtol=0, atol=0)


@pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::UserWarning")
@pytest.mark.parametrize("name", EXPORTABLE)
def test_onnx_matches_torch(name, fitted_method, tiny_images, tmp_path):
    pytest.importorskip("onnxruntime")
    from workbench.core.export import OnnxInferencer, export_onnx

    model, _ = fitted_method(name)
    test = tiny_images["good"] + tiny_images["bad"]
    scores, maps = model.predict(test)
    export_onnx(model, tmp_path / "onnx")
    runtime = OnnxInferencer(tmp_path / "onnx")
    onnx_scores, onnx_maps = runtime.predict(test)
    assert onnx_maps.shape == maps.shape and onnx_scores.shape == scores.shape
    scale = float(np.abs(maps).max())
    assert np.abs(onnx_maps - maps).max() <= 1e-4 * scale
    assert np.abs(onnx_scores - scores).max() <= 1e-4 * scale
    assert runtime.metadata["method"] == name and runtime.metadata["input"]["size"] == [model.image_size] * 2
