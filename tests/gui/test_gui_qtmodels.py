"""Item models: lazy thumbnails over 5,000 rows, filtering, model comparison, report counts."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from PySide6.QtCore import QSize, Qt
from PySide6.QtWidgets import QListView

from workbench.core.data import ImageRecord, ImportReport
from workbench.core.workspace import ModelEntry
from workbench.gui.qtmodels import ImageFilterProxy, ImageListModel, ModelTableModel, ReportCountsModel
from workbench.gui.qtmodels.image_list import ANOMALOUS
from workbench.gui.qtmodels.roles import ObjectRole, SortRole




def test_thumbnails_load_lazily_for_visible_rows_only(qtbot, tiny_root):
    records = [ImageRecord(Path(f"/missing/{i:05d}.png"), "train", "good") for i in range(5000)]
    real = sorted((tiny_root / "widget" / "train" / "good").glob("*.png"))
    records[:len(real)] = [ImageRecord(p, "train", "good") for p in real]
    model = ImageListModel(thumb_size=64)
    view = QListView()
    qtbot.addWidget(view)
    view.setViewMode(QListView.ViewMode.IconMode)
    view.setUniformItemSizes(True)
    view.setIconSize(QSize(64, 64))
    view.setGridSize(QSize(80, 90))
    view.resize(420, 300)
    view.setModel(model)
    model.set_records(records)
    view.show()
    qtbot.waitExposed(view)
    qtbot.waitUntil(lambda: model.loader.requested > 0)
    assert model.rowCount() == 5000
    assert model.loader.requested < 200  # only what is on screen, not 5,000
    first = model.index(0)
    qtbot.waitUntil(lambda: str(real[0]) in model._cache, timeout=10_000)
    icon = first.data(Qt.ItemDataRole.DecorationRole)
    assert not icon.isNull() and first.data(ObjectRole).path == real[0]
    view.scrollToBottom()  # far rows get requested when they become visible
    qtbot.waitUntil(lambda: any(model.loader.is_pending(str(r.path)) or str(r.path) in model._broken
                                for r in records[-20:]), timeout=10_000)
    qtbot.waitUntil(lambda: str(records[-1].path) in model._broken, timeout=10_000)  # unreadable -> icon, no crash
    model.loader.wait()


def test_filter_proxy_by_split_and_class():
    records = [ImageRecord(Path("a.png"), "train", "good"), ImageRecord(Path("b.png"), "test", "good"),
               ImageRecord(Path("c.png"), "test", "scratch"), ImageRecord(Path("d.png"), "test", "hole")]
    model = ImageListModel()
    model.set_records(records)
    proxy = ImageFilterProxy()
    proxy.setSourceModel(model)
    names = lambda: [proxy.index(r, 0).data(ObjectRole).path.name for r in range(proxy.rowCount())]  # noqa: E731
    assert names() == ["a.png", "b.png", "c.png", "d.png"]
    proxy.set_filter(split="test")
    assert names() == ["b.png", "c.png", "d.png"]
    proxy.set_filter(split="test", label=ANOMALOUS)
    assert names() == ["c.png", "d.png"]
    proxy.set_filter(label="hole")
    assert names() == ["d.png"]
    proxy.set_filter(label="good")
    assert names() == ["a.png", "b.png"]


def _entry(i: int, method: str, auroc, ms, fit) -> ModelEntry:
    return ModelEntry(id=i, dataset_id=1, method=method, path=Path(f"/nowhere/m{i}"), params={"image_size": 64},
                      metrics={"image_auroc": auroc, "pixel_auroc": 0.9, "aupro": None, "ms_per_image": ms},
                      fit_seconds=fit, created_at="2026-01-02T03:04:05+00:00", name=f"model {i}")


def test_model_table_formats_compares_and_sorts():
    model = ModelTableModel()
    model.set_entries([_entry(1, "patchcore", 0.95, 12.0, 3.0), _entry(2, "padim", 0.99, 20.0, 1.5)])
    headers = [model.headerData(c, Qt.Orientation.Horizontal) for c in range(model.columnCount())]
    assert headers == ["Method", "Name", "Image AUROC", "Pixel AUROC", "AUPRO", "Fit s", "ms/img", "Created"]
    row = [model.index(0, c).data() for c in range(model.columnCount())]
    assert row[0] == "PatchCore" or row[0].lower().startswith("patchcore")
    assert row[1:7] == ["model 1", "0.950", "0.900", "–", "3.0", "12.0"]
    bold = lambda r, c: (model.index(r, c).data(Qt.ItemDataRole.FontRole) or None) is not None  # noqa: E731
    assert bold(1, 2) and not bold(0, 2)  # best image AUROC
    assert bold(0, 6) and not bold(1, 6)  # fastest inference
    assert bold(1, 5)  # fastest fit
    assert model.index(0, 4).data(SortRole) == float("-inf")  # missing metrics sort last
    model.set_active(2)
    assert bold(1, 1) and not bold(0, 1)
    assert model.index(0, 0).data(ObjectRole).id == 1


def test_report_counts_table():
    report = ImportReport("mvtec", Path("/data"), Counter({("train", "good"): 40, ("test", "good"): 15,
                                                            ("test", "scratch"): 8}))
    model = ReportCountsModel()
    model.set_report(report)
    assert model.rowCount() == 3 and model.columnCount() == 3  # good, scratch, Total x train, test, Total
    assert [model.headerData(c, Qt.Orientation.Horizontal) for c in range(3)] == ["train", "test", "Total"]
    assert [model.headerData(r, Qt.Orientation.Vertical) for r in range(3)] == ["good", "scratch", "Total"]
    assert model.index(0, 0).data() == "40" and model.index(1, 0).data() == "–"
    assert model.index(2, 2).data() == "63"
