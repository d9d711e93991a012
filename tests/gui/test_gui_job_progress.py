"""JobProgress: loss curve when the method reports one, per-stage progress otherwise."""

from __future__ import annotations

from workbench.core.jobs import ProgressEvent
from workbench.gui.widgets.job_progress import JobProgress, format_duration
from workbench.gui.workers import JobRunner, Worker


def lossy_job(*, progress, cancel):
    for i in range(5):
        progress(ProgressEvent("fit", i + 1, 5, metrics={"loss": 1.0 / (i + 1)}))
    return "ok"


def staged_job(*, progress, cancel):
    for stage in ("extract features", "coreset selection"):
        for i in range(4):
            progress(ProgressEvent(stage, i + 1, 4))
    return "ok"


def test_loss_is_plotted_when_reported(qtbot):
    widget = JobProgress()
    qtbot.addWidget(widget)
    worker = Worker(lossy_job)
    widget.attach(worker, "Training")
    with qtbot.waitSignal(worker.finished, timeout=10_000):
        JobRunner().start(worker)
    assert widget._loss == [1.0, 0.5, 1 / 3, 0.25, 0.2]
    assert list(widget._curves) == ["loss"]
    assert widget.stage.text() == "Done" and widget.bar.value() == widget.bar.maximum()
    assert "Training started" in widget.log.toPlainText()


def test_stage_progress_is_plotted_without_loss(qtbot):
    widget = JobProgress()
    qtbot.addWidget(widget)
    worker = Worker(staged_job)
    widget.attach(worker, "Training")
    with qtbot.waitSignal(worker.finished, timeout=10_000):
        JobRunner().start(worker)
    assert list(widget._curves) == ["extract features", "coreset selection"]
    assert widget._loss == []
    log = widget.log.toPlainText()
    assert "extract features (4 steps)" in log and "coreset selection (4 steps)" in log
    assert format_duration(75) == "1:15" and format_duration(3725) == "1:02:05"


def axis_label(widget, side: str) -> str:
    return widget.plot.getPlotItem().getAxis(side).labelText


def test_empty_plot_says_no_data_and_axes_are_labelled_once_there_is_data(qtbot):
    widget = JobProgress()
    qtbot.addWidget(widget)
    widget.show()
    item = widget.plot.getPlotItem()
    assert widget.empty_note.shown and widget.empty_note.item.isVisible()
    assert "No data yet" in widget.empty_note.item.toPlainText()
    assert not item.getAxis("left").isVisible() and not item.getAxis("bottom").isVisible()
    worker = Worker(staged_job)
    widget.attach(worker, "Inference")
    assert not widget.empty_note.item.isVisible() and item.getAxis("left").isVisible()
    assert (axis_label(widget, "left"), axis_label(widget, "bottom")) == ("done (%)", "seconds")
    with qtbot.waitSignal(worker.finished, timeout=10_000):
        JobRunner().start(worker)
    lossy = Worker(lossy_job)
    widget.attach(lossy, "Training")
    with qtbot.waitSignal(lossy.finished, timeout=10_000):
        JobRunner().start(lossy)
    assert (axis_label(widget, "left"), axis_label(widget, "bottom")) == ("loss", "step")


def test_legend_sits_outside_the_curves(qtbot):
    widget = JobProgress()
    qtbot.addWidget(widget)
    widget.resize(500, 400)
    widget.show()
    worker = Worker(staged_job)
    widget.attach(worker, "Training")
    with qtbot.waitSignal(worker.finished, timeout=10_000):
        JobRunner().start(worker)
    qtbot.wait(20)
    legend, view = widget._legend, widget.plot.getPlotItem().getViewBox()
    assert len(legend.items) == 2
    assert not legend.sceneBoundingRect().intersects(view.sceneBoundingRect())


def test_an_empty_score_histogram_has_no_axes_but_a_note(qtbot):
    import numpy as np

    from workbench.gui.widgets.threshold_plots import ScoreHistogram

    plot = ScoreHistogram()
    qtbot.addWidget(plot)
    plot.show()
    item = plot.getPlotItem()
    assert not item.getAxis("left").isVisible() and plot.note.isVisible()
    assert "No scores" in plot.note.toPlainText()
    plot.set_scores(np.array([0.1, 0.2]), np.array([0.8]), threshold=0.5)
    assert item.getAxis("left").isVisible() and item.getAxis("bottom").isVisible() and not plot.note.isVisible()
    plot.set_scores(np.empty(0), np.empty(0))
    assert not item.getAxis("bottom").isVisible() and plot.note.isVisible()


def test_empty_roc_pr_and_pro_plots_show_a_note_not_axes(qtbot):
    """Before data (and when a curve cannot be drawn) the curve plots show a short text instead of
    0..1 axes with a chance diagonal or an FPR band that look like a result; with a curve they
    show axes, curve and legend, and the note is gone."""
    import numpy as np

    from workbench.core.metrics import pro_curve, roc_curve
    from workbench.gui.widgets.threshold_plots import CurvePlot, ProPlot

    roc = CurvePlot("ROC", "false-alarm rate", "recall", diagonal=True, legend=True)
    pro = ProPlot()
    for plot in (roc, pro):
        qtbot.addWidget(plot)
        plot.show()
        item = plot.getPlotItem()
        assert plot.note.isVisible() and plot.note.toPlainText() == "No data yet"
        assert not item.getAxis("left").isVisible() and not item.getAxis("bottom").isVisible()
        assert not item.getViewBox().childGroup.isVisible() and not item.legend.isVisible()
    labels, scores = np.array([0, 0, 1, 1]), np.array([0.1, 0.4, 0.35, 0.8])
    roc.set_curve(roc_curve(labels, scores), "ROC (AUROC 0.75)")
    mask = np.zeros((8, 8), np.uint8)
    mask[2:4, 2:4] = 1
    pro.set_curve(pro_curve([mask], [np.random.default_rng(0).random((8, 8)) + mask]), 0.5)
    for plot in (roc, pro):
        item = plot.getPlotItem()
        assert not plot.note.isVisible() and item.getAxis("left").isVisible() and item.legend.isVisible()
        assert item.getViewBox().childGroup.isVisible() and plot.curve.isVisible()
    roc.set_curve(None, note="Needs defective test images")
    assert roc.note.isVisible() and roc.note.toPlainText() == "Needs defective test images"
    assert not roc.getPlotItem().getAxis("bottom").isVisible()
