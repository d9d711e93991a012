"""Help > Open sample workspace shows Threshold (and Review) at once: no training needed."""

from __future__ import annotations

import pytest

from workbench.package_data import sample_data_dir


@pytest.fixture
def real_sample(monkeypatch, app_dirs):
    import workbench.gui.main_window as mw

    monkeypatch.setattr(mw, "sample_data_root", sample_data_dir)
    return sample_data_dir()


def test_sample_workspace_opens_on_threshold_with_a_pretrained_model(qtbot, window, real_sample, wait_worker,
                                                                     shown_errors):
    worker = window.open_sample_workspace()
    wait_worker(worker)
    qtbot.waitUntil(lambda: window.session.active_model is not None, timeout=30_000)
    workspace = window.session.workspace
    models = workspace.models()
    assert sorted(workspace.dataset(m.dataset_id).category for m in models) == ["fabric", "washer"]
    assert all("pre-trained sample" in m.name for m in models)
    assert window.session.active_model.dataset_id == window.session.dataset_entry.id
    assert window.current_step() == "threshold"
    panel = window.threshold_panel
    qtbot.waitUntil(lambda: panel.data is not None, timeout=120_000)  # inference only, seconds
    assert shown_errors == []
    assert all(r.kind != "train" for r in workspace.runs())  # nothing was trained
    assert window.open_sample_workspace() is None  # second click: nothing to import or install
    assert len(window.session.workspace.models()) == 2
