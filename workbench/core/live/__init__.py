"""Live inspection: score images as they arrive (watched folder, camera, replay) and log each decision.

Used by ``workbench inspect`` (headless, for a line PC) and the GUI's Live step / station
window. Torch-free when the model is an exported ONNX package (tests/test_torch_free.py).
"""

from workbench.core.live.log import LIVE_FIELDS, LiveLog, LiveLogError, read_log, summary_path
from workbench.core.live.queues import DropQueue, QueueClosed
from workbench.core.live.session import LiveInspection, LiveResult, LiveStats, load_live_scorer
from workbench.core.live.sources import (CameraSource, Frame, FrameSource, ReplayFolder, SourceError, WatchedFolder,
                                         parse_camera)

__all__ = ["CameraSource", "DropQueue", "Frame", "FrameSource", "LIVE_FIELDS", "LiveInspection", "LiveLog",
           "LiveLogError", "LiveResult", "LiveStats", "QueueClosed", "ReplayFolder", "SourceError", "WatchedFolder",
           "load_live_scorer", "parse_camera", "read_log", "summary_path"]
