"""Review panel, reconstruction view: input | reconstruction | residual for reconstruction
methods (a tiny trained autoencoder), computed in a worker, cached per image, stale results
not shown; unavailable (disabled, with the reason) for feature-based methods."""

from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtCore import Qt
from PySide6.QtGui import QImage

from workbench.core.data import read_image
from workbench.gui.widgets.review_viewer import BACKGROUND, OVERLAY_MODE, RECONSTRUCTION_MODE

from test_gui_review_panel import Env, tiny_predictions

TINY_AE = {"image_size": 64, "epochs": 1, "width": 8, "batch_size": 4}


def qimage_rgb(image: QImage) -> np.ndarray:
    """RGB uint8 (H, W, 3) copy of a QImage."""
    image = image.convertToFormat(QImage.Format.Format_RGB888)
    h, w = image.height(), image.width()
    data = np.frombuffer(image.constBits(), np.uint8, count=image.bytesPerLine() * h)
    return data.reshape(h, image.bytesPerLine())[:, :w * 3].reshape(h, w, 3).copy()


@pytest.fixture(scope="module")
def autoencoder_dir(tmp_path_factory, tiny_root):
    """A tiny autoencoder trained once for the module (1 epoch, width 8, 64 px)."""
    from workbench.core.data import load_dataset
    from workbench.core.jobs import CancelToken
    from workbench.gui.pipelines import train_evaluate_save

    dataset = load_dataset(tiny_root / "widget" / "..", category="widget")
    out = tmp_path_factory.mktemp("models") / "autoencoder"
    outcome = train_evaluate_save(dataset, "autoencoder", dict(TINY_AE), out, device="cpu", cancel=CancelToken())
    return out, outcome


@pytest.fixture
def ae_env(qtbot, tmp_path, tiny_root, autoencoder_dir, wait_worker):
    out, outcome = autoencoder_dir
    env = Env(qtbot, tmp_path / "ws", tiny_root / "widget" / "..")
    entry = env.workspace.add_model(env.entry.id, "autoencoder", out, outcome.params, outcome.metrics)
    env.session.set_active_model(entry)
    wait_worker(env.panel.pred_worker)
    env.wait_frame()
    yield env
    env.close()


def wait_reconstruction(env, key=None):
    panel = env.panel

    def shown() -> bool:
        k = key or panel.current_key
        rec = panel.recon_cache.get((k, panel._generation))
        return (rec is not None and panel.frame is not None and panel.frame.key == k
                and panel.viewer.reconstruction is rec.image)

    env.qtbot.waitUntil(shown, timeout=60_000)
    return panel.recon_cache.get((key or panel.current_key, panel._generation))


def test_reconstruction_view_shows_input_reconstruction_and_residual(ae_env):
    env, panel = ae_env, ae_env.panel
    viewer = panel.viewer
    assert panel.recon_mode_button.isEnabled() and "reconstruction" in panel.recon_mode_button.toolTip()
    assert viewer.mode == OVERLAY_MODE and not viewer.recon.isVisible()
    env.qtbot.mouseClick(panel.recon_mode_button, Qt.MouseButton.LeftButton)
    assert viewer.mode == RECONSTRUCTION_MODE and panel.recon_mode_button.isChecked()
    rec = wait_reconstruction(env)
    # three panes, titled, with the mask view and the "side by side" switch out of the way
    assert [c.isVisible() for c in viewer.canvases] == [True, True, True, False]
    assert [t.text() for t in viewer.titles[:3]] == ["Input", "Reconstruction", "Residual (anomaly map)"]
    assert all(t.isVisible() for t in viewer.titles[:3]) and not panel.side_check.isEnabled()
    assert not viewer.message.isVisible()
    # the reconstruction: at the image's size, not empty, not the input
    panel.region_check.setChecked(False)
    panel.truth_check.setChecked(False)
    item = panel._current_item()
    image = read_image(item.record.path)
    assert rec.key == panel.current_key and rec.rgb.shape == image.shape and rec.rgb.dtype == np.uint8
    shown_rec = qimage_rgb(viewer.recon.render_scene())
    shown_in = qimage_rgb(viewer.main.render_scene())
    assert shown_rec.shape == image.shape
    assert np.array_equal(shown_in, image)  # the input pane: the plain image
    assert np.array_equal(shown_rec, rec.rgb)  # the reconstruction pane shows the reconstruction
    assert shown_rec.std() > 0 or shown_rec.mean() > 5  # not blank
    assert not np.array_equal(shown_rec, image) and np.abs(shown_rec.astype(int) - image).mean() > 1
    background = np.array([BACKGROUND.red(), BACKGROUND.green(), BACKGROUND.blue()])
    assert (np.abs(shown_rec.astype(int) - background).sum(-1) > 3).mean() > 0.5
    # the residual pane: the model's map coloured with the overlay's dataset-wide scale, opaque
    assert np.array_equal(qimage_rgb(viewer.heat.render_scene()), qimage_rgb(panel.frame.heat))
    # zoom and pan are shared by the three panes
    viewer.main.set_zoom(3.0)
    assert viewer.recon.zoom == pytest.approx(3.0) and viewer.heat.zoom == pytest.approx(3.0)
    # back to the overlay: one composite view again; R toggles the view from the keyboard
    env.qtbot.mouseClick(panel.overlay_mode_button, Qt.MouseButton.LeftButton)
    assert viewer.mode == OVERLAY_MODE and not viewer.recon.isVisible() and panel.side_check.isEnabled()
    env.key(Qt.Key.Key_R)
    assert viewer.mode == RECONSTRUCTION_MODE and viewer.reconstruction is rec.image  # cached: no new job


def test_reconstructions_are_cached_per_image_and_stale_ones_not_shown(ae_env):
    env, panel = ae_env, ae_env.panel
    panel.set_view_mode(RECONSTRUCTION_MODE)
    first = panel.current_key
    wait_reconstruction(env, first)
    # step on twice before anything is ready: only the image on screen gets shown
    env.key(Qt.Key.Key_N)
    second = panel.current_key
    env.key(Qt.Key.Key_N)
    third = panel.current_key
    assert len({first, second, third}) == 3
    rec3 = wait_reconstruction(env, third)
    assert panel.viewer.reconstruction is rec3.image and rec3.key == third
    env.qtbot.waitUntil(lambda: panel.recon_worker.state != "running", timeout=60_000)
    # a late result for an image the user has left is cached but not shown
    late = panel.recon_cache.get((second, panel._generation))
    if late is not None:
        panel._on_reconstruction(late, panel._generation)
    assert panel.viewer.reconstruction is rec3.image
    # going back shows the cached reconstruction at once, without a new job
    runs = panel.recon_worker
    panel.select_key(first)
    env.wait_frame(first)
    assert panel.viewer.reconstruction is panel.recon_cache.get((first, panel._generation)).image
    assert panel.recon_worker is runs and not panel.viewer.message.isVisible()


def test_images_without_predictions_get_their_residual_from_the_worker(ae_env):
    env, panel = ae_env, ae_env.panel
    panel.set_filters(split="train")  # the cached predictions cover the test split only
    env.wait_frame()
    assert panel.frame.heat is None
    panel.set_view_mode(RECONSTRUCTION_MODE)
    rec = wait_reconstruction(env)
    assert rec.heat is not None and rec.heat.size() == rec.image.size()
    residual = qimage_rgb(panel.viewer.heat.render_scene())
    background = np.array([BACKGROUND.red(), BACKGROUND.green(), BACKGROUND.blue()])
    assert (np.abs(residual.astype(int) - background).sum(-1) > 3).mean() > 0.5  # the pane is filled


def test_feature_methods_offer_no_reconstruction_view(qtbot, tmp_path, tiny_root):
    env = Env(qtbot, tmp_path / "ws", tiny_root / "widget" / "..")
    try:
        panel = env.panel
        assert not panel.recon_mode_button.isEnabled()  # no model yet
        preds = tiny_predictions(env.dataset, tmp_path / "patchcore-model")
        preds.metadata["method"] = "patchcore"
        panel.set_predictions(preds)
        env.wait_frame()
        assert not panel.recon_mode_button.isEnabled()
        tip = panel.recon_mode_button.toolTip()
        assert "PatchCore" in tip and "autoencoder" in tip  # says why, and which methods have it
        assert panel.set_view_mode(RECONSTRUCTION_MODE) is False
        env.key(Qt.Key.Key_R)
        assert panel.viewer.mode == OVERLAY_MODE and not panel.viewer.recon.isVisible()
        assert panel.overlay_mode_button.isChecked() and panel.recon_worker is None
    finally:
        env.close()


def test_switching_to_a_feature_model_leaves_the_reconstruction_view(ae_env, tmp_path):
    env, panel = ae_env, ae_env.panel
    panel.set_view_mode(RECONSTRUCTION_MODE)
    wait_reconstruction(env)
    preds = tiny_predictions(env.dataset, tmp_path / "padim-model")
    preds.metadata["method"] = "padim"
    panel.set_predictions(preds)
    env.wait_frame()
    assert panel.viewer.mode == OVERLAY_MODE and not panel.recon_mode_button.isEnabled()
    assert len(panel.recon_cache) == 0 and panel._recon_model is None
    assert panel.viewer.main.role == "composite" and panel.viewer.main.heat_item.isVisible()
