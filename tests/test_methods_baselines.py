"""Classic and self-supervised baselines (DFM, SPADE, CutPaste): DFM's PCA, SPADE's gallery,
the CutPaste augmentation and fine-tuning, and (slow) accuracy floors with default settings on
the sample data. (Round trips, cancel, export parity of every method: ``test_method_contract.py``.)"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from workbench.core.jobs import CancelToken, Cancelled
from workbench.core.methods import METHODS, create_method

METHOD_NAMES = ["cutpaste", "dfm", "spade"]


def test_cutpaste_trains_and_reports_its_loss(fitted_method):
    assert {"epochs", "learning_rate", "early_stopping"} <= {p.name for p in METHODS["cutpaste"].schema()}
    _, events = fitted_method("cutpaste")
    train_events = [e for e in events if e.stage == "train"]
    assert train_events and all("loss" in e.metrics and np.isfinite(e.metrics["loss"]) for e in train_events)


@pytest.mark.parametrize("name", METHOD_NAMES)
def test_cancel_stops_fit(name, tiny_images):
    token = CancelToken()
    stage = "train" if name == "cutpaste" else "extract features"

    def cancel_in_stage(event):
        if event.stage == stage:
            token.cancel()

    model = create_method(name, device="cpu", **METHODS[name].tiny_params)
    with pytest.raises(Cancelled):
        model.fit(tiny_images["train"], progress=cancel_in_stage, cancel=token)
    assert not model.fitted


# ---------------------------------------------------------------------------- DFM


def test_dfm_pca_keeps_the_requested_variance():
    from workbench.core.methods.dfm.torch_model import pca_from_moments, reconstruction_error

    gen = torch.Generator().manual_seed(0)
    scales = torch.tensor([10.0, 5.0, 2.0, 0.1, 0.1, 0.1])  # variances 100, 25, 4, 0.01 x 3
    x = (torch.randn(4000, 6, generator=gen) * scales).double()
    _, comps, variances = pca_from_moments(len(x), x.sum(0), x.T @ x, variance=0.95)
    assert comps.shape == (2, 6)  # (100 + 25) / 129 = 96.9% of the variance
    _, comps, variances = pca_from_moments(len(x), x.sum(0), x.T @ x, variance=0.999)
    assert comps.shape == (3, 6) and variances[0] == pytest.approx(100, rel=0.1)
    mean = torch.zeros(6)
    inside, outside = torch.tensor([[3.0, -2.0, 1.0, 0, 0, 0]]), torch.tensor([[0, 0, 0, 0, 2.0, 0]])
    assert float(reconstruction_error(inside, mean, comps.abs().round())) < 1e-6
    assert float(reconstruction_error(outside, mean, comps.abs().round())) == pytest.approx(4.0)


# ---------------------------------------------------------------------------- SPADE


def test_spade_gallery_is_restricted_to_the_nearest_images():
    from workbench.core.methods.spade.torch_model import gallery_maps

    bank = torch.stack([torch.full((4, 2), float(i)) for i in range(3)])  # image i: all features = i
    patches = torch.full((1, 4, 2), 2.0)
    near = gallery_maps(patches, bank, torch.tensor([[2]]), pixel_k=1)
    far = gallery_maps(patches, bank, torch.tensor([[0]]), pixel_k=1)
    assert torch.allclose(near, torch.zeros(1, 4)) and torch.allclose(far, torch.full((1, 4), 2 * 2**0.5))


# ---------------------------------------------------------------------------- CutPaste


def test_cutpaste_pastes_exactly_what_it_reports():
    from workbench.core.methods.cutpaste.augment import cutpaste

    gen = torch.Generator().manual_seed(3)
    for _ in range(20):
        image = torch.rand(3, 64, 48, generator=gen)
        out, paste = cutpaste(image, gen, jitter=0.0)
        sy, sx, h, w = paste.source
        ty, tx = paste.target
        assert paste.kind == "cutpaste" and paste.angle == 0.0
        assert int(paste.mask.sum()) == h * w and paste.mask[ty:ty + h, tx:tx + w].all()
        assert 0.02 * 64 * 48 * 0.8 <= h * w <= 0.15 * 64 * 48 * 1.2
        assert torch.equal(out[:, ty:ty + h, tx:tx + w], image[:, sy:sy + h, sx:sx + w])
        assert torch.equal(out[:, ~paste.mask], image[:, ~paste.mask])


def test_cutpaste_jitter_and_scar_change_only_the_reported_pixels():
    from workbench.core.methods.cutpaste.augment import cutpaste, cutpaste_scar

    gen = torch.Generator().manual_seed(5)
    for _ in range(20):
        image = torch.rand(3, 128, 128, generator=gen)
        out, paste = cutpaste(image, gen, jitter=0.3)
        assert torch.equal(out[:, ~paste.mask], image[:, ~paste.mask])
        assert 0.0 <= float(out.min()) and float(out.max()) <= 1.0

        out, scar = cutpaste_scar(image, gen, jitter=0.0)
        sy, sx, h, w = scar.source
        assert scar.kind == "scar" and -45.0 <= scar.angle <= 45.0
        assert torch.equal(out[:, ~scar.mask], image[:, ~scar.mask])
        # rotated with nearest-neighbour sampling: about h*w pixels, each a copy of a source pixel
        assert 0.6 * h * w <= int(scar.mask.sum()) <= 1.4 * h * w + 4
        source = image[:, sy:sy + h, sx:sx + w].reshape(3, -1).T
        pasted = out[:, scar.mask].T
        assert (pasted[:, None, :] == source[None, :, :]).all(-1).any(1).all()
        ys, xs = torch.nonzero(scar.mask, as_tuple=True)
        assert int(ys.min()) >= scar.target[0] and int(xs.min()) >= scar.target[1]


def test_cutpaste_augmentation_is_seeded_and_labels_three_classes():
    from workbench.core.methods.cutpaste.augment import three_way_batch

    images = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    a, labels = three_way_batch(images, torch.Generator().manual_seed(1))
    b, _ = three_way_batch(images, torch.Generator().manual_seed(1))
    assert torch.equal(a, b) and a.shape == (6, 3, 32, 32)
    assert labels.tolist() == [0, 0, 1, 1, 2, 2]
    assert torch.equal(a[:2], images) and not torch.equal(a[2:4], images) and not torch.equal(a[4:], images)


def test_cutpaste_classifier_learns_and_only_the_last_stage_trains(fitted_method, tiny_images):
    import torch.nn.functional as F

    from workbench.core.methods.cutpaste.augment import three_way_batch

    model, _ = fitted_method("cutpaste")
    torch.manual_seed(0)  # the head's initialisation; independent of the tests run before
    net = model._new_net()
    trainable = {".".join(n.split(".")[:2]) for n, p in net.features.named_parameters()
                 if p.requires_grad and n.startswith("blocks.")}
    assert trainable == {"blocks.5", "blocks.6"}  # EfficientNet-Lite0's stride-32 stage
    assert not any(p.requires_grad for n, p in net.features.named_parameters() if not n.startswith("blocks.5")
                   and not n.startswith("blocks.6"))
    mean, std = model.normalization
    m, s = torch.tensor(mean).view(1, 3, 1, 1), torch.tensor(std).view(1, 3, 1, 1)
    x01 = model.preprocess(tiny_images["train"][:2]) * s + m
    batch, labels = three_way_batch(x01, torch.Generator().manual_seed(0))
    batch = (batch - m) / s
    optimizer = torch.optim.Adam([p for p in net.parameters() if p.requires_grad], lr=1e-3)
    net.train()
    losses = []
    for _ in range(10):
        loss = F.cross_entropy(net.logits(batch), labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))
    assert losses[-1] < 0.7 * losses[0]
    # the learned state holds the fine-tuned stage (with its BatchNorm buffers) and the head only
    state = net.learned_state()
    assert any(k.startswith("features.blocks.6.") and k.endswith("running_mean") for k in state)
    assert not any(k.startswith("features.blocks.4.") or k.startswith("features.conv_stem") for k in state)
    assert any(k.startswith("head.") for k in state) and any(k.startswith("classifier.") for k in state)
