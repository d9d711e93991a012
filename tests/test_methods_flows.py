"""Normalizing-flow methods (FastFlow, CFlow-AD): coupling blocks are exact bijections with the
right log-determinant; each method trains, predicts, saves, loads, cancels and exports."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from workbench.core.jobs import CancelToken, Cancelled
from workbench.core.methods import create_method
from workbench.core.methods.cflow.model import positional_encoding_2d
from workbench.core.methods.fastflow.coupling import AffineCoupling, Flow, conv_subnet, fc_subnet
from workbench.core.methods.package import load_model, save_model

TINY = {  # 8 images at 64 px, one step per epoch
    "fastflow": {"image_size": 64, "epochs": 3, "flow_steps": 2, "learning_rate": 3e-3},
    "cflow": {"image_size": 64, "epochs": 3, "coupling_blocks": 2, "fibers_per_stage": 256, "learning_rate": 3e-3},
}


def _randomise(module: torch.nn.Module, seed: int) -> None:
    """Move every parameter away from its initialisation so the test sees non-trivial scales."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.add_(torch.randn(p.shape, generator=g, dtype=p.dtype) * 0.5)


def _check_bijection(flow: torch.nn.Module, x: torch.Tensor, cond: torch.Tensor | None) -> None:
    z, log_det = flow(x, cond)
    assert z.shape == x.shape and log_det.shape == (x.shape[0],)
    torch.testing.assert_close(flow.inverse(z, cond), x, atol=1e-10, rtol=1e-8)
    for i in range(x.shape[0]):  # log|det| against the numerical Jacobian of each sample
        jac = torch.autograd.functional.jacobian(
            lambda v: flow(v.reshape(1, *x.shape[1:]), None if cond is None else cond[i:i + 1])[0].flatten(),
            x[i].flatten())
        sign, expected = torch.linalg.slogdet(jac)
        assert sign != 0
        torch.testing.assert_close(log_det[i], expected, atol=1e-8, rtol=1e-8)


@pytest.mark.parametrize("kernel", [3, 1])
def test_conv_coupling_is_invertible_with_exact_log_det(kernel):
    g = torch.Generator().manual_seed(0)
    block = AffineCoupling(5, conv_subnet(kernel, 1.0), clamp=2.0, generator=g).double()
    _randomise(block, 1)
    x = torch.randn(2, 5, 3, 2, generator=g, dtype=torch.float64)
    _check_bijection(block, x, None)
    assert block.perm.tolist() != list(range(5)) or block.perm.numel() < 3


def test_conditional_fc_flow_is_invertible_with_exact_log_det():
    g = torch.Generator().manual_seed(0)
    flow = Flow([AffineCoupling(6, fc_subnet(2.0), clamp=1.9, cond_channels=4, generator=g)
                 for _ in range(3)]).double()
    _randomise(flow, 2)
    x = torch.randn(3, 6, generator=g, dtype=torch.float64)
    cond = torch.randn(3, 4, generator=g, dtype=torch.float64)
    _check_bijection(flow, x, cond)
    # the condition changes the transform (not just passes through)
    assert not torch.allclose(flow(x, cond)[0], flow(x, cond.flip(0))[0])


def test_soft_clamp_bounds_the_log_scale():
    block = AffineCoupling(4, fc_subnet(1.0), clamp=0.5).double()
    with torch.no_grad():
        for p in block.subnet.parameters():
            p.mul_(1000.0)
    _, log_det = block(torch.randn(8, 4, dtype=torch.float64) * 100)
    # two active channels, each |s| < clamp; the global scale starts at 1 (log 0, to float32 precision
    # because the parameter was initialised in float32 before .double())
    assert (log_det.abs() <= 2 * 0.5 + 1e-6).all()


def test_positional_encoding_matches_the_paper_layout():
    pe = positional_encoding_2d(8, 3, 5)
    assert pe.shape == (8, 3, 5)
    torch.testing.assert_close(pe[0], torch.sin(torch.arange(5.0)).expand(3, 5))  # x, first frequency
    torch.testing.assert_close(pe[4], torch.sin(torch.arange(3.0)).unsqueeze(1).expand(3, 5))  # y
    with pytest.raises(ValueError, match="multiple of 4"):
        positional_encoding_2d(6, 2, 2)


@pytest.fixture(scope="module")
def fitted(tiny_images):
    """One tiny fitted model per method, shared by the tests below (training is the slow part)."""
    out = {}
    for method, params in TINY.items():
        events = []
        model = create_method(method, device="cpu", **params).fit(tiny_images["train"], progress=events.append)
        out[method] = (model, events)
    return out


@pytest.mark.parametrize("method", sorted(TINY))
def test_fit_predict_save_load_export_round_trip(method, fitted, tiny_images, tmp_path):
    from workbench.core.export import OnnxInferencer, export_onnx

    model, events = fitted[method]
    train_events = [e for e in events if e.stage == "train"]
    assert len(train_events) == TINY[method]["epochs"] and train_events[-1].current == train_events[-1].total
    losses = [e.metrics["loss"] for e in train_events]
    assert np.isfinite(losses).all() and losses[-1] < losses[0]  # learning happened
    assert model.metadata["loss_history"]["train"] == pytest.approx(losses)

    test = tiny_images["good"][:2] + tiny_images["bad"][:2]
    scores, maps = model.predict(test)
    assert scores.shape == (len(test),) and scores.dtype == np.float32
    assert maps.shape == (len(test), 64, 64) and maps.dtype == np.float32
    assert np.isfinite(scores).all() and np.isfinite(maps).all()
    np.testing.assert_allclose(scores, maps.reshape(len(test), -1).max(1), rtol=1e-6)

    save_model(model, tmp_path / "m")
    assert json.loads((tmp_path / "m" / "model.json").read_text())["method"] == method
    loaded = load_model(tmp_path / "m", device="cpu")
    scores2, maps2 = loaded.predict(test)
    np.testing.assert_array_equal(scores, scores2)
    np.testing.assert_array_equal(maps, maps2)

    # the ONNX graph (built from export_module, the very module predict runs) agrees
    export_onnx(model, tmp_path / "onnx")
    onnx_scores, onnx_maps = OnnxInferencer(tmp_path / "onnx").predict(test)
    scale = float(np.abs(maps).max())
    assert np.abs(onnx_maps - maps).max() <= 1e-4 * scale
    assert np.abs(onnx_scores - scores).max() <= 1e-4 * scale


@pytest.mark.parametrize("method", sorted(TINY))
def test_same_seed_gives_identical_models(method, fitted, tiny_images):
    again = create_method(method, device="cpu", **TINY[method]).fit(tiny_images["train"])
    reference = fitted[method][0].state_tensors()
    for key, value in again.state_tensors().items():
        torch.testing.assert_close(value, reference[key], rtol=0, atol=0)


@pytest.mark.parametrize("method", sorted(TINY))
def test_cancel_mid_training_discards_the_model(method, tiny_images):
    token = CancelToken()
    train_steps = []

    def cancel_in_training(event):
        if event.stage == "train":
            train_steps.append(event.current)
            token.cancel()

    model = create_method(method, device="cpu", **TINY[method])
    with pytest.raises(Cancelled):
        model.fit(tiny_images["train"], progress=cancel_in_training, cancel=token)
    assert not model.fitted and train_steps == [1]
