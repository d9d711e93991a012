"""Review from the keyboard in the real main window: keys work as soon as the step shows,
digits never switch steps while reviewing, and checked buttons look checked."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QApplication

REVIEW = 3


def open_review_by_ctrl_4(qtbot, win):
    """From the Dataset step, with the step list focused (as after clicking it): Ctrl+4."""
    win.go_to_step(0)
    win.activateWindow()
    win.navigator.setFocus()
    qtbot.waitUntil(lambda: QApplication.focusWidget() is win.navigator, timeout=5_000)
    qtbot.keyClick(win.navigator, Qt.Key.Key_4, Qt.KeyboardModifier.ControlModifier)
    assert win.current_step() == "review"
    panel = win.review_panel
    qtbot.waitUntil(lambda: panel.predictions is not None and panel.frame is not None, timeout=120_000)
    return panel


def press(qtbot, key) -> None:
    """A key where the user's keystroke goes: the widget with the focus."""
    qtbot.keyClick(QApplication.focusWidget(), key)


def test_review_keys_work_right_after_ctrl_4(qtbot, sample_window):
    win = sample_window
    panel = open_review_by_ctrl_4(qtbot, win)
    assert QApplication.focusWidget() is panel.table
    first = panel.current_key
    press(qtbot, Qt.Key.Key_N)
    second = panel.current_key
    assert second != first
    press(qtbot, Qt.Key.Key_2)  # NG, not "go to step 2"
    assert win.current_step() == "review"
    assert panel.model.label(second)["verdict"] == "NG"
    press(qtbot, Qt.Key.Key_P)
    assert panel.current_key == first
    press(qtbot, Qt.Key.Key_1)
    assert panel.model.label(first)["verdict"] == "OK"
    labels = win.session.workspace.labels(win.session.dataset_entry.id)
    assert labels[first]["verdict"] == "OK" and labels[second]["verdict"] == "NG"


def test_digits_typed_on_the_step_list_do_not_switch_steps(qtbot, sample_window):
    win = sample_window
    open_review_by_ctrl_4(qtbot, win)
    win.navigator.setFocus()
    for key in (Qt.Key.Key_2, Qt.Key.Key_1, Qt.Key.Key_3):
        qtbot.keyClick(win.navigator, key)
        assert win.current_step() == "review"
    qtbot.keyClick(win.navigator, Qt.Key.Key_2, Qt.KeyboardModifier.ControlModifier)  # steps stay on Ctrl+N
    assert win.current_step() == "training"


def centre_colour(button):
    image = button.grab().toImage()
    return image.pixelColor(image.width() // 2, 3).name()  # above the text, inside the border


def test_checked_verdict_and_class_buttons_look_checked(qtbot, sample_window, styled):
    win = sample_window
    panel = open_review_by_ctrl_4(qtbot, win)
    assert panel.class_buttons, "the tiny dataset has a defect class"
    for button in (panel.ok_button, panel.ng_button, panel.class_buttons[0], panel.hard_button):
        button.setChecked(False)
        off = centre_colour(button)
        button.setChecked(True)
        on = centre_colour(button)
        assert on != off, f"{button.text()!r} looks the same checked and unchecked ({on})"
