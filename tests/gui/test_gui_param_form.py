"""ParamForm: one editor per schema entry, typed values back, defaults, tooltips."""

from __future__ import annotations

from PySide6.QtWidgets import QCheckBox, QComboBox, QDoubleSpinBox, QLineEdit, QSpinBox

from workbench.core.methods import METHODS, Param
from workbench.gui.widgets.param_form import ParamForm

SCHEMA = (
    Param("image_size", "int", 256, "Input size.", 64, 1024),
    Param("coreset_ratio", "float", 0.1, "Fraction kept.", 0.001, 1.0),
    Param("regularization", "float", 0.01, "Diagonal term.", 1e-6, 10.0),
    Param("flip", "bool", False, "Augment with flips."),
    Param("layers", "choice", "2,3", "Backbone stages.", choices=("1,2", "2,3", "1,2,3")),
    Param("backbone", "str", "efficientnet_lite0", "timm model name."),
    Param("weights", "str", "embedded", "Weights source."),
)


def test_form_builds_editors_with_ranges_and_tooltips(qtbot):
    form = ParamForm(SCHEMA)
    qtbot.addWidget(form)
    size = form.editors["image_size"]
    assert isinstance(size, QSpinBox) and (size.minimum(), size.maximum(), size.value()) == (64, 1024, 256)
    ratio = form.editors["coreset_ratio"]
    assert isinstance(ratio, QDoubleSpinBox) and ratio.minimum() == 0.001 and ratio.maximum() == 1.0
    assert form.editors["regularization"].decimals() >= 6  # 1e-6 must be representable
    assert isinstance(form.editors["flip"], QCheckBox)
    layers = form.editors["layers"]
    assert isinstance(layers, QComboBox) and [layers.itemText(i) for i in range(layers.count())] == ["1,2", "2,3", "1,2,3"]
    assert isinstance(form.editors["backbone"], QLineEdit)
    assert form.editors["coreset_ratio"].toolTip() == "Fraction kept."
    assert form.findChild(object, "browse_weights") is not None  # weights get a browse button
    assert form.values() == {p.name: p.default for p in SCHEMA}


def test_edited_widgets_read_back_as_typed_values(qtbot):
    form = ParamForm(SCHEMA)
    qtbot.addWidget(form)
    form.editors["image_size"].setValue(128)
    form.editors["coreset_ratio"].setValue(0.05)
    form.editors["flip"].click()
    form.editors["layers"].setCurrentText("1,2,3")
    line = form.editors["backbone"]
    line.clear()
    qtbot.keyClicks(line, "resnet18")
    form.editors["weights"].setCurrentText("/models/wide_resnet50.safetensors")
    values = form.values()
    assert values == {"image_size": 128, "coreset_ratio": 0.05, "regularization": 0.01, "flip": True,
                      "layers": "1,2,3", "backbone": "resnet18", "weights": "/models/wide_resnet50.safetensors"}
    assert isinstance(values["image_size"], int) and isinstance(values["coreset_ratio"], float)
    assert form.changed_values() == {k: v for k, v in values.items() if k != "regularization"}
    form.reset()
    assert form.values() == {p.name: p.default for p in SCHEMA}


def test_set_values_coerces_and_ignores_unknown_names(qtbot):
    form = ParamForm(SCHEMA)
    qtbot.addWidget(form)
    changed: list[bool] = []
    form.valuesChanged.connect(lambda: changed.append(True))
    form.set_values({"image_size": "96", "flip": "yes", "layers": "1,2", "gone_in_v2": 3})
    assert form.values()["image_size"] == 96 and form.values()["flip"] is True
    assert form.values()["layers"] == "1,2"
    assert changed


def test_every_registered_method_gets_a_valid_form(qtbot):
    for cls in METHODS.values():
        form = ParamForm(cls.schema())
        qtbot.addWidget(form)
        values = form.values()
        assert set(values) == {p.name for p in cls.schema()}
        cls(device="cpu", **values)  # the defaults read back are accepted by the method itself
