"""Typed hyperparameter schema: one declaration drives validation, the CLI and the GUI form."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, make_dataclass, replace
from functools import lru_cache
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


def with_defaults(schema: Sequence[Param], **defaults: Any) -> tuple[Param, ...]:
    """``schema`` with the defaults of the named parameters replaced (e.g. a CPU-friendly
    ``image_size`` or ``epochs`` for one method); naming a parameter the schema lacks is an error."""
    unknown = set(defaults) - {p.name for p in schema}
    if unknown:
        raise ValueError(f"with_defaults: no parameter(s) {', '.join(sorted(unknown))} in the schema.")
    return tuple(replace(p, default=defaults[p.name]) if p.name in defaults else p for p in schema)


_PYTHON_TYPES = {"int": int, "float": float, "bool": bool, "choice": str, "str": str}


@lru_cache(maxsize=None)
def _view_class(owner: str, fields: tuple[tuple[str, str], ...]) -> type:
    return make_dataclass(f"{owner}Params", [(name, _PYTHON_TYPES[kind]) for name, kind in fields],
                          frozen=True, slots=True)


def params_view(owner: str, schema: Sequence[Param], values: dict[str, Any]) -> Any:
    """A frozen dataclass of ``values`` (already coerced by :func:`resolve_params`) with one typed
    field per schema entry, so methods read ``p.coreset_ratio`` instead of casting dict entries.
    Choices stay strings (they are labels such as ``"1,2,3"`` or ``"8"``)."""
    cls = _view_class(owner, tuple((p.name, p.kind) for p in schema))
    return cls(**{p.name: values[p.name] for p in schema})
