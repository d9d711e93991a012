"""Normalizing-flow methods (FastFlow, CFlow-AD): coupling blocks are exact bijections with the
right log-determinant; each method trains one step per epoch, records its losses, cancels
within a step and loads packages saved before the inference module existed. (Round trips,
seeding and ONNX parity of every method: ``test_method_contract.py``.)"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from workbench.core.jobs import CancelToken, Cancelled
from workbench.core.methods import METHODS, create_method
from workbench.core.methods.cflow.torch_model import positional_encoding_2d
from workbench.core.methods.components.flows import AffineCoupling, Flow, conv_subnet, fc_subnet
from workbench.core.methods.package import load_model, save_model

TINY = {name: METHODS[name].tiny_params for name in ("cflow", "fastflow")}  # 8 images at 64 px, 1 step/epoch


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


@pytest.mark.parametrize("method", sorted(TINY))
def test_trains_one_step_per_epoch_and_records_the_losses(method, fitted_method, tiny_images):
    model, events = fitted_method(method)
    train_events = [e for e in events if e.stage == "train"]
    assert len(train_events) == TINY[method]["epochs"] and train_events[-1].current == train_events[-1].total
    losses = [e.metrics["loss"] for e in train_events]
    assert np.isfinite(losses).all() and losses[-1] < losses[0]  # learning happened
    assert model.metadata["loss_history"]["train"] == pytest.approx(losses)
    test = tiny_images["good"][:2] + tiny_images["bad"][:2]
    scores, maps = model.predict(test)
    np.testing.assert_allclose(scores, maps.reshape(len(test), -1).max(1), rtol=1e-6)


@pytest.mark.parametrize("method", sorted(TINY))
def test_packages_saved_before_the_inference_module_load(method, fitted_method, tiny_images, tmp_path):
    """Older packages hold the flow network's keys without the module's ``net.`` prefix."""
    from safetensors.torch import load_file, save_file

    from workbench.core.files import file_sha256
    from workbench.core.methods.package import META_FILE, WEIGHTS_FILE

    model, _ = fitted_method(method)
    directory = save_model(model, tmp_path / "old")
    weights = directory / WEIGHTS_FILE
    tensors = load_file(str(weights))
    assert tensors and all(k.startswith("net.") for k in tensors)
    save_file({k[len("net."):]: v for k, v in tensors.items()}, str(weights))
    meta = json.loads((directory / META_FILE).read_text())
    meta["weights_sha256"] = file_sha256(weights)
    (directory / META_FILE).write_text(json.dumps(meta))
    test = tiny_images["bad"][:2]
    for expected, got in zip(model.predict(test), load_model(directory, device="cpu").predict(test)):
        np.testing.assert_array_equal(expected, got)


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
