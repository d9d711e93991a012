"""The screen shown when no workspace is open: three big, self-explaining choices."""

from __future__ import annotations

from PySide6.QtCore import QSize, Qt, Signal
from PySide6.QtWidgets import QLabel, QPushButton, QStyle, QVBoxLayout, QWidget


class FirstRunPage(QWidget):
    """Big buttons rather than menus: a first-time user should not have to hunt for a start."""

    openSample = Signal()
    newWorkspace = Signal()
    openWorkspace = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("firstRun")
        title = QLabel("Anomaly Inspection Workbench")
        title.setObjectName("firstRunTitle")
        title.setAlignment(Qt.AlignmentFlag.AlignCenter)
        intro = QLabel("Train a defect detector on images of good parts only, check it on labelled "
                       "examples, and export it for the line.<br>A <b>workspace</b> is the folder "
                       "where your datasets, models and labels are kept.")
        intro.setObjectName("firstRunIntro")
        intro.setWordWrap(True)
        intro.setAlignment(Qt.AlignmentFlag.AlignCenter)
        intro.setFixedWidth(620)

        icon = self.style().standardIcon
        self.sample_button = self._button(icon(QStyle.StandardPixmap.SP_MediaPlay), "Open sample workspace",
                                          "Try it now with the shipped fabric and washer images")
        self.new_button = self._button(icon(QStyle.StandardPixmap.SP_FileDialogNewFolder), "New workspace…",
                                       "Start your own project in a new, empty folder")
        self.open_button = self._button(icon(QStyle.StandardPixmap.SP_DialogOpenButton), "Open workspace…",
                                        "Continue with an existing workspace folder")
        self.sample_button.clicked.connect(self.openSample)
        self.new_button.clicked.connect(self.newWorkspace)
        self.open_button.clicked.connect(self.openWorkspace)

        layout = QVBoxLayout(self)
        layout.addStretch(2)
        layout.addWidget(title)
        layout.addWidget(intro, 0, Qt.AlignmentFlag.AlignHCenter)
        layout.addSpacing(28)
        for button in (self.sample_button, self.new_button, self.open_button):
            layout.addWidget(button, 0, Qt.AlignmentFlag.AlignHCenter)
            layout.addSpacing(6)
        layout.addStretch(3)

    def _button(self, icon, text: str, detail: str) -> QPushButton:
        button = QPushButton(icon, f"  {text}\n  {detail}")
        button.setObjectName("bigChoice")
        button.setIconSize(QSize(32, 32))
        button.setFixedSize(QSize(600, 76))
        button.setToolTip(detail)
        return button
