"""Confusion matrix and rates at the current policy, with exact 95% intervals.

Shows numbers the panel hands over: the core's
:func:`~workbench.core.calibration.policy_report` (truth x OK / REVIEW / NG matrix and rates
with Clopper-Pearson intervals, the same dict ``workbench evaluate --json`` prints as
``at_policy``) and, for F1, the core :class:`~workbench.core.metrics.Confusion`; computes nothing.
The REVIEW column shows only while the policy has a band.
"""

from __future__ import annotations

from PySide6.QtCore import QRectF, QSize, Qt
from PySide6.QtGui import QColor, QFont, QFontMetrics, QPainter, QPen
from PySide6.QtWidgets import QFrame, QGridLayout, QLabel, QSizePolicy, QVBoxLayout, QWidget

from workbench.core.calibration import Interval
from workbench.core.metrics import Confusion

# (key, title, tooltip) of each rate row; key is a Confusion property
RATES = (
    ("recall", "Recall", "Catch rate: share of defective images not passed as OK (NG, or REVIEW with a band)"),
    ("escape_rate", "Escape rate", "Share of defective images that pass as OK: FN / defective"),
    ("false_alarm_rate", "False-alarm rate", "Share of good images wrongly flagged NG: FP / good"),
    ("review_rate", "Review rate", "Share of all images sent to REVIEW (a person looks); 0 without a band"),
    ("precision", "Precision", "Share of NG verdicts that really are defective: TP / (TP + FP)"),
    ("f1", "F1", "Harmonic mean of precision and recall (OK / NG only: '–' while a REVIEW band is set)"),
)
# the keys of policy_report's matrix per cell: (truth, verdict)
CELL_WHERE = {"tp": ("defect", "NG"), "rd": ("defect", "REVIEW"), "fn": ("defect", "OK"),
              "fp": ("good", "NG"), "rg": ("good", "REVIEW"), "tn": ("good", "OK")}
CELL_COLORS = {"tp": ("#dcfce7", "#86efac"), "tn": ("#dcfce7", "#86efac"),
               "fp": ("#fee2e2", "#fca5a5"), "fn": ("#fee2e2", "#fca5a5"),
               "rd": ("#fef3c7", "#fcd34d"), "rg": ("#fef3c7", "#fcd34d")}
CELL_TIPS = {"tp": "True positives: defective images flagged NG (share of defective images)",
             "fn": "False negatives: defective images passed as OK, the escapes (share of defective images)",
             "fp": "False positives: good images flagged NG, the false alarms (share of good images)",
             "tn": "True negatives: good images passed as OK (share of good images)",
             "rd": "Defective images sent to REVIEW: a person catches them (share of defective images)",
             "rg": "Good images sent to REVIEW: a person looks, then passes them (share of good images)"}
CELL_TEXT = {"tp": "caught", "fn": "escaped", "fp": "false alarms", "tn": "passed",
             "rd": "to review", "rg": "to review"}
CELL_TITLE = {"tp": "TP", "fn": "FN", "fp": "FP", "tn": "TN", "rd": "", "rg": ""}  # REVIEW: the column says it
HEADERS = {False: ("Verdict NG", "REVIEW", "Verdict OK"), True: ("NG", "REVIEW", "OK")}


def interval_text(interval: Interval | None) -> str:
    """'79.2–100.0%': the 95% interval of a rate, compact enough for a narrow column."""
    return "–" if interval is None else f"{100 * interval.low:.1f}–{100 * interval.high:.1f}%"


class MatrixCell(QWidget):
    """One cell of the confusion matrix, painted directly: new numbers only repaint the
    cell (a QLabel would ask the whole panel to re-lay out on every threshold move)."""

    def __init__(self, key: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.key = key
        self.setObjectName(f"cell_{key}")
        self.colors = tuple(QColor(c) for c in CELL_COLORS[key])
        self.big, self.small = "–", ""
        self.empty = True  # no image in this cell: drawn neutral (an error cell with 0 is no error)
        self.setToolTip(CELL_TIPS[key])
        self.setMinimumSize(64, 54)  # three columns (with a REVIEW band) must fit a laptop's side column
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)

    def sizeHint(self) -> QSize:  # noqa: N802 (Qt API)
        return QSize(124, 54)

    def set_text(self, big: str, small: str, empty: bool = False) -> None:
        if (big, small, empty) != (self.big, self.small, self.empty):
            self.big, self.small, self.empty = big, small, empty
            self.update()

    def text(self) -> str:
        """'TP 22\n91.7% caught' (what the cell shows)."""
        return f"{self.big}\n{self.small}"

    def paintEvent(self, _event) -> None:  # noqa: N802 (Qt API)
        painter = QPainter(self)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        rect = QRectF(self.rect()).adjusted(0.5, 0.5, -0.5, -0.5)
        background, border = (QColor("#f3f4f6"), QColor("#d1d5db")) if self.empty else self.colors
        painter.setPen(QPen(border, 1))
        painter.setBrush(background)
        painter.drawRoundedRect(rect, 4, 4)
        top, bottom = QRectF(rect), QRectF(rect)
        top.setBottom(rect.top() + rect.height() * 0.58)
        bottom.setTop(top.bottom())
        big = QFont(self.font())
        big.setPointSizeF(self.font().pointSizeF() * 1.3)
        big.setBold(True)
        painter.setFont(big)
        painter.setPen(QColor("#111827"))
        painter.drawText(top, Qt.AlignmentFlag.AlignHCenter | Qt.AlignmentFlag.AlignBottom, self.big)
        small = QFont(self.font())
        small.setPointSizeF(self.font().pointSizeF() * 0.9)
        room = int(rect.width()) - 6
        width = QFontMetrics(small).horizontalAdvance(self.small)
        if width > room:  # a narrow (laptop) column: a slightly smaller font before cutting the text
            small.setPointSizeF(max(small.pointSizeF() * 0.95 * room / width, self.font().pointSizeF() * 0.7))
        painter.setFont(small)
        painter.setPen(QColor("#374151"))
        metrics = painter.fontMetrics()
        text = metrics.elidedText(self.small, Qt.TextElideMode.ElideRight, int(rect.width()) - 6)
        painter.drawText(bottom, Qt.AlignmentFlag.AlignHCenter | Qt.AlignmentFlag.AlignTop, text)
        painter.end()


class ConfusionView(QWidget):
    """Matrix (rows: truth, columns: verdict NG / REVIEW / OK) and a table of rates with intervals.

    ``cells[key]`` (tp/rd/fn for defective, fp/rg/tn for good images, :class:`MatrixCell`),
    ``values[rate]`` and ``intervals[rate]`` (labels of fixed size) hold what is shown; tests
    and other code read their ``text()``. The REVIEW column (rd, rg) is hidden without a band.
    """

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.confusion: Confusion | None = None
        self.report: dict | None = None  # the core's policy_report shown
        grid = QGridLayout()
        grid.setHorizontalSpacing(4)
        grid.setVerticalSpacing(4)
        self.headers: list[QLabel] = []
        for col in range(1, 4):
            head = QLabel("")
            head.setAlignment(Qt.AlignmentFlag.AlignCenter)
            grid.addWidget(head, 0, col)
            self.headers.append(head)
        self.review_header = self.headers[1]
        self.cells: dict[str, MatrixCell] = {}
        for row, (truth, keys) in enumerate((("Defective", ("tp", "rd", "fn")), ("Good", ("fp", "rg", "tn"))),
                                            start=1):
            head = QLabel(f"<b>{truth}</b>")
            head.setAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
            grid.addWidget(head, row, 0)
            for col, key in enumerate(keys, start=1):
                cell = MatrixCell(key)
                self.cells[key] = cell
                grid.addWidget(cell, row, col)
        for col in (1, 2, 3):
            grid.setColumnStretch(col, 1)
        self._show_review_column(False)

        rates = QGridLayout()
        rates.setHorizontalSpacing(12)
        rates.setVerticalSpacing(3)
        for col, text in enumerate(("", "value", "95% interval")):
            head = QLabel(f"<span style='color:#4b5563'>{text}</span>")
            head.setAlignment(Qt.AlignmentFlag.AlignRight if col else Qt.AlignmentFlag.AlignLeft)
            rates.addWidget(head, 0, col)
        self.values: dict[str, QLabel] = {}
        self.intervals: dict[str, QLabel] = {}
        for row, (key, title, tip) in enumerate(RATES, start=1):
            name = QLabel(title)
            name.setToolTip(tip)
            value = QLabel("–")
            value.setObjectName(f"value_{key}")
            value.setAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
            value.setStyleSheet("font-weight: 600;")
            interval = QLabel("–")
            interval.setObjectName(f"interval_{key}")
            interval.setAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
            interval.setToolTip("Exact (Clopper-Pearson) 95% binomial interval; '–' where the core gives none")
            # fixed sizes: a changing number must not trigger a relayout of the whole panel
            value.setFixedSize(value.fontMetrics().horizontalAdvance("100.0%") + 12, value.sizeHint().height())
            interval.setFixedSize(interval.fontMetrics().horizontalAdvance("100.0–100.0%") + 10,
                                  interval.sizeHint().height())
            rates.addWidget(name, row, 0)
            rates.addWidget(value, row, 1)
            rates.addWidget(interval, row, 2)
            self.values[key], self.intervals[key] = value, interval
        rates.setColumnStretch(0, 1)

        line = QFrame()
        line.setFrameShape(QFrame.Shape.HLine)
        line.setStyleSheet("color: #e5e7eb;")
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(grid)
        layout.addWidget(line)
        layout.addLayout(rates)

    @property
    def review_shown(self) -> bool:
        return not self.cells["rd"].isHidden()

    def _show_review_column(self, on: bool) -> None:
        for head, text in zip(self.headers, HEADERS[on]):
            head.setText(f"<b>{text}</b>")
        for widget in (self.review_header, self.cells["rd"], self.cells["rg"]):
            widget.setVisible(on)

    def set_report(self, report: dict, confusion: Confusion, band: bool) -> None:
        """Show the core's ``policy_report`` (matrix and rates with intervals); ``confusion``
        (OK / NG at the NG threshold) gives F1, shown only without a ``band``."""
        self.confusion, self.report = confusion, report
        self._show_review_column(band)
        matrix = report["confusion"]
        totals = {truth: sum(row.values()) for truth, row in matrix.items()}
        for key, (truth, verdict) in CELL_WHERE.items():
            count, total = matrix[truth][verdict], totals[truth]
            share = f"{count / total:.1%}" if total else "–"
            self.cells[key].set_text(f"{CELL_TITLE[key]} {count}".strip(), f"{share} {CELL_TEXT[key]}",
                                     empty=count == 0)
        rates = report["rates"]
        for key, _title, _tip in RATES:
            if key == "f1":
                self.values[key].setText("–" if band else f"{confusion.f1:.1%}")
                self.intervals[key].setText("–")
                continue
            rate = rates.get(key)
            self.values[key].setText("–" if rate is None else f"{rate['estimate']:.1%}")
            self.intervals[key].setText("–" if rate is None else interval_text(Interval(**rate)))

    def clear(self) -> None:
        self.confusion = self.report = None
        for cell in self.cells.values():
            cell.set_text("–", "", empty=True)
        for label in (*self.values.values(), *self.intervals.values()):
            label.setText("–")
