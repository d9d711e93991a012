"""The settings store round-trips and falls back to defaults on bad values."""

from __future__ import annotations

from PySide6.QtCore import QSettings

from workbench.gui.settings import AppSettings, load_settings, save_settings


def test_settings_round_trip_and_defaults(tmp_path) -> None:
    store = QSettings(str(tmp_path / "s.ini"), QSettings.Format.IniFormat)
    assert load_settings(store) == AppSettings()
    save_settings(AppSettings(device="cpu", cpu_threads=2, theme="dark"), store)
    assert load_settings(store) == AppSettings(device="cpu", cpu_threads=2, theme="dark")
    store.setValue("compute/cpu_threads", "many")
    store.setValue("compute/device", "tpu")
    assert load_settings(store) == AppSettings(device="auto", cpu_threads=0, theme="dark")
