"""Run records: what a training, evaluation, calibration, export or update did, exactly.

"Can I reproduce last month's model" needs more than a seed: the configuration, the very
image files (a hash of each, and of the whole list), the versions of torch, timm, faiss and
onnxruntime, the device, and what came out (timings, metrics). Each job writes one JSON record
(:class:`~workbench.core.formats.RunRecordJson`) into the model package's ``run_records/``
folder (``0001-train.json``, ``0002-calibrate.json`` ...) and, when run from the desktop
application, into the workspace database too. ``workbench train --record R.json`` re-runs a
training record; on the CPU the re-run gives bit-identical scores (tested).

For the report: :func:`load_records` (all records of a package, oldest first),
:func:`latest_record`, :func:`load_record` (one file), :func:`save_record`.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import math
import os
import platform
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from importlib import metadata as _metadata
from pathlib import Path
from typing import Any

import workbench
from workbench.core.files import atomic_write_json, file_sha256
from workbench.core.formats import RunRecordError, RunRecordJson, read_json_file, validate

RECORDS_DIR = "run_records"
# Packages whose versions decide the numbers (distribution names as pip knows them).
TRACKED_PACKAGES = ("torch", "torchvision", "timm", "faiss-cpu", "onnxruntime", "numpy", "opencv-python-headless",
                    "scikit-learn", "safetensors")
_NAME = re.compile(r"^(\d{4})-([a-z]+)\.json$")


def package_versions(names: Sequence[str] = TRACKED_PACKAGES) -> dict[str, str | None]:
    """Installed versions (None when a package is absent: e.g. no torch in the Inspector)."""
    versions: dict[str, str | None] = {"workbench": workbench.__version__}
    for name in names:
        try:
            versions[name] = _metadata.version(name)
        except _metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def platform_info() -> dict[str, Any]:
    return {"python": platform.python_version(), "system": platform.system(), "machine": platform.machine(),
            "cpu_count": os.cpu_count()}


def file_entries(paths: Iterable[str | Path], root: str | Path | None = None) -> list[dict[str, Any]]:
    """Each file with its SHA-256 and size; paths relative to ``root`` when inside it."""
    entries = []
    base = Path(root).resolve() if root is not None else None
    for p in paths:
        path = Path(p)
        shown = str(path)
        if base is not None:
            try:
                shown = path.resolve().relative_to(base).as_posix()
            except ValueError:
                pass
        entries.append({"path": shown, "sha256": file_sha256(path), "bytes": path.stat().st_size})
    return entries


def files_hash(entries: Sequence[dict[str, Any]]) -> str:
    """One hash of a file list: SHA-256 over the sorted ``path\\tsha256`` lines."""
    lines = sorted(f"{e['path']}\t{e['sha256']}" for e in entries)
    return hashlib.sha256("\n".join(lines).encode("utf-8")).hexdigest()


def dataset_entry(dataset: Any, entries: Sequence[dict[str, Any]], split: str = "train",
                  category: str | None = None) -> dict[str, Any]:
    """The ``dataset`` section of a record for the :func:`file_entries` ``entries`` of
    ``dataset`` (paths made relative to its root, so a moved dataset keeps its hash)."""
    root = Path(dataset.root).resolve()
    files = []
    for e in entries:
        try:
            shown = Path(e["path"]).resolve().relative_to(root).as_posix()
        except ValueError:
            shown = str(e["path"])
        files.append({**e, "path": shown})
    return {"name": dataset.name, "root": str(dataset.root), "layout": dataset.layout, "category": category,
            "split": split, "n_files": len(files), "sha256": files_hash(files), "files": files}


def _clean(value: Any) -> Any:
    """JSON-safe: non-finite floats become None, numpy scalars plain numbers, tuples lists."""
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        try:
            value = value.item()
        except (TypeError, ValueError):
            return str(value)
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)


def new_record(kind: str, *, method: str | None = None, params: dict[str, Any] | None = None,
               dataset: dict[str, Any] | None = None, device: Any = "cpu", timings: dict[str, float] | None = None,
               metrics: dict[str, Any] | None = None, model: dict[str, Any] | None = None) -> dict[str, Any]:
    """A validated record dict for one job (``kind``: train, evaluate, calibrate, export, update)."""
    params = _clean(dict(params or {}))
    record = {
        "record_version": 1, "kind": kind,
        "created_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "workbench_version": workbench.__version__, "method": method, "params": params,
        "seed": params.get("seed") if isinstance(params.get("seed"), int) else None,
        "dataset": dataset, "packages": package_versions(), "device": str(device), "platform": platform_info(),
        "timings": {k: float(v) for k, v in (timings or {}).items() if v is not None and math.isfinite(float(v))},
        "metrics": _clean(metrics or {}), "model": _clean(model or {}),
    }
    validate(RunRecordJson, record, f"{kind} run record", RunRecordError, "This is a bug in the workbench.")
    return record


def save_record(model_dir: str | Path, record: dict[str, Any]) -> Path:
    """Write ``record`` as the next ``run_records/NNNN-<kind>.json`` of the package (atomic)."""
    validate(RunRecordJson, record, f"{record.get('kind')} run record", RunRecordError,
             "This is a bug in the workbench.")
    folder = Path(model_dir) / RECORDS_DIR
    folder.mkdir(exist_ok=True)
    numbers = [int(m.group(1)) for p in folder.iterdir() if (m := _NAME.match(p.name))]
    path = folder / f"{max(numbers, default=0) + 1:04d}-{record['kind']}.json"
    atomic_write_json(path, record)
    return path


def load_record(path: str | Path) -> dict[str, Any]:
    """One record file, validated; RunRecordError naming the file and field otherwise."""
    data = read_json_file(path, RunRecordError, "Give a run record written by the workbench (run_records/*.json).")
    validate(RunRecordJson, data, path, RunRecordError,
             "Give a run record written by the workbench (run_records/*.json).")
    return data


def record_files(model_dir: str | Path) -> list[Path]:
    folder = Path(model_dir) / RECORDS_DIR
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if _NAME.match(p.name))


def load_records(model_dir: str | Path) -> list[dict[str, Any]]:
    """Every record of a package, oldest first ([] for packages older than run records)."""
    return [load_record(p) for p in record_files(model_dir)]


def latest_record(model_dir: str | Path, kind: str | None = None) -> dict[str, Any] | None:
    """The newest record (of ``kind``, when given), or None."""
    for path in reversed(record_files(model_dir)):
        if kind is None or _NAME.match(path.name).group(2) == kind:  # type: ignore[union-attr]
            return load_record(path)
    return None


@dataclass
class RerunSettings:
    """What ``workbench train --record R.json`` trains with, read from a training record."""

    record: dict[str, Any]
    data: str
    layout: str
    method: str
    params: dict[str, Any]
    device: str
    messages: list[str] = field(default_factory=list)

    def check_files(self, new_record: dict[str, Any] | None) -> list[str]:
        """Compare the re-run's training files with the record's; returns (and the CLI prints)
        what differs. Identical files are what makes the scores identical."""
        old, new = self.record.get("dataset") or {}, (new_record or {}).get("dataset") or {}
        if old.get("sha256") == new.get("sha256"):
            return []
        before = {f["path"]: f["sha256"] for f in old.get("files", [])}
        after = {f["path"]: f["sha256"] for f in new.get("files", [])}
        changed = sorted(p for p in before.keys() & after.keys() if before[p] != after[p])
        problems = [f"warning: the training files differ from the record ({len(before.keys() - after.keys())} "
                    f"missing, {len(after.keys() - before.keys())} new, {len(changed)} changed"
                    + (f", e.g. {changed[0]}" if changed else "") + "): the scores will not be the same."]
        for line in problems:
            print(line)
        return problems


def rerun_settings(path: str | Path, args: Any = None) -> RerunSettings:
    """The dataset, method, parameters and device of a training record; RunRecordError when the
    file is not a training record or its dataset folder is gone."""
    record = load_record(path)
    if record["kind"] != "train":
        raise RunRecordError(f"{path} records a '{record['kind']}' run; 'train --record' re-runs a training "
                             "record (run_records/NNNN-train.json of a model).")
    dataset = record.get("dataset")
    if not dataset or not record.get("method"):
        raise RunRecordError(f"{path} does not say which dataset and method were used; it cannot be re-run.")
    if not Path(dataset["root"]).is_dir():
        raise RunRecordError(f"{path}: the recorded dataset folder {dataset['root']} does not exist here. Copy the "
                             "dataset there (the record lists every file with its SHA-256).")
    messages = [f"Re-running the {record['method']} training of {record['created_at']} on {dataset['root']} "
                f"(seed {record.get('seed')}, {dataset['n_files']} training files)"]
    ours = package_versions()
    differ = [f"{k} {v} (recorded {record['packages'].get(k)})" for k, v in ours.items()
              if k in record.get("packages", {}) and record["packages"][k] != v]
    if differ:
        messages.append("note: package versions differ from the record: " + ", ".join(differ)
                        + "; scores may differ in the last digits.")
    return RerunSettings(record, dataset["root"], dataset.get("layout") or "auto", record["method"],
                         dict(record.get("params") or {}), str(record.get("device") or "cpu"), messages)


def sync_to_workspace(workspace: Any, model_id: int, model_dir: str | Path) -> int:
    """Copy the package's records the workspace does not hold yet into its database (they are
    matched by kind and time); returns how many were added."""
    have = {(r["kind"], r["created_at"]) for r in workspace.run_records(model_id)}
    added = 0
    for record in load_records(model_dir):
        if (record["kind"], record["created_at"]) not in have:
            workspace.add_run_record(model_id, record)
            added += 1
    return added


def summary(record: dict[str, Any]) -> str:
    """A few lines for a tooltip or a dialog header."""
    ds = record.get("dataset") or {}
    pk = record.get("packages") or {}
    lines = [f"{record['kind']} on {record['created_at']} ({record.get('device')})",
             f"method {record.get('method')} seed {record.get('seed')}"]
    if ds:
        lines.append(f"data {ds.get('name')}: {ds.get('n_files')} files, sha256 {str(ds.get('sha256'))[:12]}")
    lines.append(", ".join(f"{k} {v}" for k, v in pk.items() if k in ("torch", "timm", "faiss-cpu", "onnxruntime")))
    if record.get("timings"):
        lines.append(", ".join(f"{k} {v:.2f} s" for k, v in record["timings"].items()))
    return "\n".join(lines)


__all__ = ["RECORDS_DIR", "dataset_entry", "file_entries", "files_hash", "latest_record", "load_record",
           "load_records", "new_record", "package_versions", "record_files", "rerun_settings", "save_record",
           "summary", "sync_to_workspace"]
