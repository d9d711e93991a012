"""Typed hyperparameter schema: one declaration drives validation, the CLI and the GUI form."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

ParamKind = Literal["int", "float", "bool", "choice", "str"]


@dataclass(frozen=True)
class Param:
    """One hyperparameter: its type, default, allowed range or choices, and help text.

    The GUI builds a spin box, check box or combo box from ``kind`` and uses ``help`` as the
    tooltip, so the help says what the knob trades off, not just what it is.
    """

    name: str
    kind: ParamKind
    default: Any
    help: str
    minimum: float | None = None
    maximum: float | None = None
    choices: tuple[str, ...] = ()

    def coerce(self, value: Any) -> Any:
        """Convert ``value`` (possibly a string from the CLI) and check it, or raise ValueError."""
        try:
            if self.kind == "int":
                if isinstance(value, float) and not value.is_integer():
                    raise ValueError
                out: Any = int(value)
            elif self.kind == "float":
                out = float(value)
                if not math.isfinite(out):  # NaN passes every range check below (all comparisons are False)
                    raise ValueError
            elif self.kind == "bool":
                out = _to_bool(value)
            else:
                out = str(value)
        except (TypeError, ValueError, OverflowError):
            finite = " (a finite number)" if self.kind in ("int", "float") else ""
            raise ValueError(f"Parameter '{self.name}' must be {self.kind}{finite}, got {value!r}.") from None
        if self.kind == "choice" and out not in self.choices:
            raise ValueError(f"Parameter '{self.name}' must be one of {', '.join(self.choices)}; got {out!r}.")
        if self.minimum is not None and out < self.minimum:
            raise ValueError(f"Parameter '{self.name}' must be >= {self.minimum}; got {out}.")
        if self.maximum is not None and out > self.maximum:
            raise ValueError(f"Parameter '{self.name}' must be <= {self.maximum}; got {out}.")
        return out


def _to_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in {"1", "true", "yes", "on"}:
        return True
    if text in {"0", "false", "no", "off"}:
        return False
    raise ValueError


def resolve_params(schema: tuple[Param, ...], given: dict[str, Any]) -> dict[str, Any]:
    """Defaults overlaid with ``given``; unknown names are an error that lists the known ones."""
    known = {p.name: p for p in schema}
    unknown = sorted(set(given) - set(known))
    if unknown:
        raise ValueError(f"Unknown parameter(s) {', '.join(unknown)}. Known: {', '.join(known)}.")
    return {name: p.coerce(given[name]) if name in given else p.default for name, p in known.items()}
