"""Edit > Settings: compute device, CPU threads and theme.

The values are read and written only through :mod:`workbench.gui.settings` (the job runner
reads the same store when it starts a compute job, the app applies the theme at start-up).
The theme changes at once; device and threads apply to jobs started from then on.
"""

from __future__ import annotations

import os

from PySide6.QtCore import QSettings, Qt
from PySide6.QtGui import QStandardItemModel
from PySide6.QtWidgets import QComboBox, QDialog, QDialogButtonBox, QFormLayout, QLabel, QSpinBox, QVBoxLayout, QWidget

from workbench.gui.settings import DEVICES, THEMES, AppSettings, load_settings, save_settings
from workbench.gui.theme import apply_theme

DEVICE_LABELS = {"auto": "Automatic (GPU when available)", "cpu": "CPU", "cuda": "GPU (CUDA)"}
THEME_LABELS = {"light": "Light", "dark": "Dark"}


def cuda_available() -> bool:
    """Whether torch sees a CUDA GPU (torch imported here, not when the app starts)."""
    import torch

    return bool(torch.cuda.is_available())


class SettingsDialog(QDialog):
    """A small form over :class:`AppSettings`; OK saves and applies, Cancel leaves all as it was."""

    def __init__(self, store: QSettings | None = None, parent: QWidget | None = None,
                 has_cuda: bool | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Settings")
        self.store = store
        self.has_cuda = cuda_available() if has_cuda is None else has_cuda
        current = load_settings(store)

        self.device = QComboBox()
        self.device.setObjectName("settingDevice")
        for key in DEVICES:
            self.device.addItem(DEVICE_LABELS[key], key)
        if not self.has_cuda:  # shown but not selectable: the user sees why it is not offered
            row = DEVICES.index("cuda")
            item = self.device.model()
            assert isinstance(item, QStandardItemModel)
            item.item(row).setEnabled(False)
            item.item(row).setToolTip("No CUDA GPU is available to PyTorch on this computer")
        device = current.device if (current.device != "cuda" or self.has_cuda) else "auto"
        self.device.setCurrentIndex(DEVICES.index(device))
        self.device.setToolTip("Where training, evaluation and inference run (jobs started from now on)")

        cores = os.cpu_count() or 1
        self.threads = QSpinBox()
        self.threads.setObjectName("settingThreads")
        self.threads.setRange(0, max(cores, current.cpu_threads))
        self.threads.setSpecialValueText(f"All cores ({cores})")
        self.threads.setValue(current.cpu_threads)
        self.threads.setToolTip("CPU threads a compute job may use; 0 = all cores. Fewer leaves the "
                                "computer responsive for other work while a model trains.")

        self.theme = QComboBox()
        self.theme.setObjectName("settingTheme")
        for key in THEMES:
            self.theme.addItem(THEME_LABELS.get(key, key.capitalize()), key)
        self.theme.setCurrentIndex(THEMES.index(current.theme))

        form = QFormLayout()
        form.addRow("Compute device", self.device)
        form.addRow("CPU threads", self.threads)
        form.addRow("Theme", self.theme)
        note = QLabel("Device and threads apply to jobs started from now on; the theme changes at once.")
        note.setObjectName("hint")
        note.setWordWrap(True)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(note)
        layout.addWidget(buttons)
        self.setMinimumWidth(self.sizeHint().width() + 40)

    def values(self) -> AppSettings:
        return AppSettings(device=self.device.currentData(Qt.ItemDataRole.UserRole),
                           cpu_threads=self.threads.value(),
                           theme=self.theme.currentData(Qt.ItemDataRole.UserRole))

    def accept(self) -> None:
        """Save through the settings module and apply the theme."""
        values = self.values()
        save_settings(values, self.store)
        apply_theme(values.theme)
        super().accept()
