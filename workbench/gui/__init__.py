"""The desktop application (PySide6 + pyqtgraph).

Only presentation lives here: every computation is a call into :mod:`workbench.core`, run in
a background worker (:mod:`.workers`) so the window never freezes.
"""
