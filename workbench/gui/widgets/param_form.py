"""A hyperparameter form generated from a method's :class:`~workbench.core.methods.Param` schema.

The schema is the single source of truth for names, types, ranges, defaults and help text,
so adding a parameter to a method makes it appear here (and in the CLI) with no GUI change.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (
    QAbstractSpinBox, QCheckBox, QComboBox, QDoubleSpinBox, QFileDialog, QFormLayout, QHBoxLayout,
    QLabel, QLineEdit, QSpinBox, QStyle, QToolButton, QWidget,
)

from workbench.core.methods.schema import Param

INT_LIMIT = 2**31 - 1  # QSpinBox holds a C int
FLOAT_LIMIT = 1e12
WEIGHT_PRESETS = ("embedded", "imagenet")
WEIGHT_FILTER = "Backbone weights (*.safetensors *.pth *.pt);;All files (*)"


def label_for(name: str) -> str:
    """``coreset_ratio`` -> ``Coreset ratio``: readable without a glossary."""
    return name.replace("_", " ").capitalize()


def _decimals(param: Param) -> int:
    """Enough decimals to show the minimum, default and maximum exactly (1e-6 -> 6, 0.999 -> 3,
    0.99999 -> 5), at least 2 and at most 8."""
    needed = 2
    for value in (param.minimum, param.default, param.maximum):
        if value:
            fraction = f"{abs(float(value)):.8f}".rstrip("0").partition(".")[2]
            needed = max(needed, len(fraction))
    return needed


class ParamForm(QWidget):
    """One editor per parameter; :meth:`values` returns them coerced and validated by the schema."""

    valuesChanged = Signal()

    def __init__(self, schema: Sequence[Param], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.schema = tuple(schema)
        self.params = {p.name: p for p in self.schema}
        self.editors: dict[str, QWidget] = {}
        layout = QFormLayout(self)
        layout.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        for param in self.schema:
            editor = self._make_editor(param)
            self.editors[param.name] = editor
            label = QLabel(label_for(param.name))
            label.setToolTip(param.help)
            field = self._with_browse(param, editor) if param.name == "weights" else editor
            field.setToolTip(param.help)
            editor.setToolTip(param.help)
            editor.setObjectName(f"param_{param.name}")
            layout.addRow(label, field)
        self.reset()

    # ------------------------------------------------------------------ building
    def _make_editor(self, param: Param) -> QWidget:
        if param.kind == "int":
            box = QSpinBox()
            box.setRange(int(param.minimum) if param.minimum is not None else -INT_LIMIT,
                         int(min(param.maximum, INT_LIMIT)) if param.maximum is not None else INT_LIMIT)
            box.setStepType(QAbstractSpinBox.StepType.AdaptiveDecimalStepType)
            box.valueChanged.connect(self.valuesChanged)
            return box
        if param.kind == "float":
            dbox = QDoubleSpinBox()
            dbox.setDecimals(_decimals(param))
            dbox.setRange(float(param.minimum) if param.minimum is not None else -FLOAT_LIMIT,
                          float(param.maximum) if param.maximum is not None else FLOAT_LIMIT)
            dbox.setStepType(QAbstractSpinBox.StepType.AdaptiveDecimalStepType)
            dbox.valueChanged.connect(self.valuesChanged)
            return dbox
        if param.kind == "bool":
            check = QCheckBox()
            check.toggled.connect(self.valuesChanged)
            return check
        if param.kind == "choice":
            combo = QComboBox()
            combo.addItems(list(param.choices))
            combo.currentTextChanged.connect(self.valuesChanged)
            return combo
        if param.name == "weights":  # presets plus any local file the user browses to
            wcombo = QComboBox()
            wcombo.setEditable(True)
            wcombo.addItems(list(WEIGHT_PRESETS))
            wcombo.currentTextChanged.connect(self.valuesChanged)
            return wcombo
        line = QLineEdit()
        line.textChanged.connect(self.valuesChanged)
        return line

    def _with_browse(self, param: Param, editor: QWidget) -> QWidget:
        row = QWidget()
        box = QHBoxLayout(row)
        box.setContentsMargins(0, 0, 0, 0)
        box.addWidget(editor, 1)
        button = QToolButton()
        button.setIcon(self.style().standardIcon(QStyle.StandardPixmap.SP_DirOpenIcon))
        button.setToolTip("Use a local .safetensors or .pth weights file (no network needed)")
        button.setObjectName(f"browse_{param.name}")
        button.clicked.connect(lambda: self._browse_weights(param.name))
        box.addWidget(button)
        return row

    def _browse_weights(self, name: str) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Choose backbone weights", "", WEIGHT_FILTER)
        if path:
            self._set(name, path)

    # ------------------------------------------------------------------ values
    def raw_value(self, name: str) -> Any:
        editor = self.editors[name]
        if isinstance(editor, (QSpinBox, QDoubleSpinBox)):
            return editor.value()
        if isinstance(editor, QCheckBox):
            return editor.isChecked()
        if isinstance(editor, QComboBox):
            return editor.currentText()
        assert isinstance(editor, QLineEdit)
        return editor.text()

    def values(self) -> dict[str, Any]:
        """All values, coerced by the schema (raises ValueError naming a bad field)."""
        return {name: self.params[name].coerce(self.raw_value(name)) for name in self.editors}

    def changed_values(self) -> dict[str, Any]:
        """Only the values that differ from the defaults (what a run log should mention)."""
        return {k: v for k, v in self.values().items() if v != self.params[k].default}

    def set_values(self, values: dict[str, Any]) -> None:
        """Set editors from ``values``. Unknown names are ignored, so settings remembered by
        an older version (or for a parameter since removed) never break the form."""
        for name, value in values.items():
            if name in self.editors:
                self._set(name, self.params[name].coerce(value))

    def reset(self) -> None:
        """Back to the schema's defaults."""
        for param in self.schema:
            self._set(param.name, param.default)

    def _set(self, name: str, value: Any) -> None:
        editor = self.editors[name]
        if isinstance(editor, QSpinBox):
            editor.setValue(int(value))
        elif isinstance(editor, QDoubleSpinBox):
            editor.setValue(float(value))
        elif isinstance(editor, QCheckBox):
            editor.setChecked(bool(value))
        elif isinstance(editor, QComboBox):
            if editor.isEditable():
                editor.setCurrentText(str(value))
            else:
                editor.setCurrentIndex(max(0, editor.findText(str(value))))
        elif isinstance(editor, QLineEdit):
            editor.setText(str(value))
