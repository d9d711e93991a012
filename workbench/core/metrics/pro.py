"""Per-Region Overlap (PRO) curve and AUPRO, exactly as defined for MVTec AD.

PRO weighs every connected defect region equally, so a large defect cannot hide missed
small ones the way it does in pixel AUROC. Definition used here:

1. Ground-truth masks are split into 8-connected regions, image by image.
2. Scores of all pixels of all images (good images included: all their pixels are OK
   pixels) are visited from high to low. An OK pixel adds 1 to the false-positive count;
   a pixel of region k adds 1/|k| to the overlap sum.
3. FPR = false positives / number of OK pixels; PRO = overlap / number of regions. Only
   the last point of each run of tied scores is kept; (0, 0) is prepended and (1, 1)
   appended.
4. AUPRO = trapezoidal area under PRO(FPR) from 0 to ``fpr_limit`` (the curve linearly
   interpolated at the limit), divided by ``fpr_limit``.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, fields, replace
from typing import TypeVar

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy import ndimage

from ._pixels import checked_pairs
from ._ranking import descending_runs, sorted_keys, trapezoid
from .image import Curve

_EIGHT_CONNECTED = np.ones((3, 3), dtype=bool)


@dataclass(frozen=True)
class ProCurve:
    """PRO as a function of FPR; point ``i`` is reached by flagging scores ``>= thresholds[i]``.

    Thresholds descend; the prepended (0, 0) point has threshold ``+inf`` (nothing flagged)
    and the appended (1, 1) point ``-inf`` (everything flagged).
    """

    fpr: NDArray[np.float64]
    pro: NDArray[np.float64]
    thresholds: NDArray[np.float64]

    @property
    def x(self) -> NDArray[np.float64]:
        """Plot abscissa (FPR), so plotting code treats this like any ``Curve``."""
        return self.fpr

    @property
    def y(self) -> NDArray[np.float64]:
        """Plot ordinate (PRO)."""
        return self.pro


def _pro_curve(
    masks: Sequence[ArrayLike], maps: Sequence[ArrayLike], fpr_stop: float | None,
    valid: Sequence[ArrayLike | None] | None = None,
) -> ProCurve:
    """PRO curve; with ``fpr_stop`` the points after the first one beyond it are skipped.

    The (1, 1) end point is appended either way, so a cut curve still integrates correctly
    up to ``fpr_stop``. ``valid`` (optional, per image: bool array or None for all) leaves
    pixels out entirely (ignore regions): regions are labelled on the defect pixels that are
    valid, and invalid pixels count neither as OK pixels nor as overlap.
    """
    pairs = checked_pairs(masks, maps)
    if valid is not None:
        if len(valid) != len(pairs):
            raise ValueError(f"got {len(valid)} valid masks for {len(pairs)} images")
        pairs = [(binary, scores) if keep is None else (binary & np.asarray(keep, bool), scores)
                 for (binary, scores), keep in zip(pairs, valid)]
    keeps = [None if valid is None or keep is None else np.asarray(keep, bool) for keep in (valid or [None] * len(pairs))]
    if not any(binary.any() for binary, _ in pairs):
        raise ValueError("no defect region in any mask; PRO needs at least one defective image")
    counts: list[NDArray[np.intp]] = []  # per image: [OK pixels, size of region 1, ...]

    def labelled() -> Iterator[tuple[NDArray[np.generic], NDArray[np.int32]]]:
        offset = 0
        for (binary, scores), keep in zip(pairs, keeps):
            regions, n = ndimage.label(binary, structure=_EIGHT_CONNECTED)
            regions[binary] += offset  # region ids unique over all images; 0 = OK pixel
            if keep is not None:
                regions, scores = regions[keep], np.asarray(scores)[keep]
            counts.append(np.bincount(regions.ravel() - np.where(regions.ravel() > 0, offset, 0),
                                      minlength=n + 1))
            offset += n
            yield scores, regions

    total = sum(binary.size if keep is None else int(keep.sum()) for (binary, _), keep in zip(pairs, keeps))
    keys = sorted_keys(labelled(), total=total)
    n_ok = sum(int(c[0]) for c in counts)
    if n_ok == 0:
        raise ValueError("every pixel is a defect pixel; PRO needs OK pixels for its FPR")
    sizes = np.concatenate([c[1:] for c in counts])
    # Column 0 counts OK pixels (false positives); region k adds 1/|k| to the overlap.
    weights = np.zeros((2, sizes.size + 1), dtype=np.float64)
    weights[0, 0] = 1.0
    weights[1, 1:] = 1.0 / sizes
    stop = None if fpr_stop is None else fpr_stop * n_ok
    thresholds, sums = descending_runs(keys, weights, stop=stop)
    return ProCurve(
        fpr=np.concatenate([[0.0], sums[0] / n_ok, [1.0]]),
        pro=np.concatenate([[0.0], sums[1] / sizes.size, [1.0]]),
        thresholds=np.concatenate([[np.inf], thresholds, [-np.inf]]).astype(np.float64),
    )


def pro_curve(masks: Sequence[ArrayLike], maps: Sequence[ArrayLike],
              valid: Sequence[ArrayLike | None] | None = None) -> ProCurve:
    """Full PRO curve over all images; masks and maps must be at ground-truth resolution.

    ``masks`` are bool/0-1/0-255 arrays (float masks are cut at 0.5), ``maps`` the anomaly
    maps of the same shapes; images may differ in size. Raises ValueError without defects.
    ``valid`` optionally leaves ignored pixels out (see ``_pro_curve``).
    """
    return _pro_curve(masks, maps, fpr_stop=None, valid=valid)


def aupro(
    masks: Sequence[ArrayLike], maps: Sequence[ArrayLike], fpr_limit: float = 0.3,
    valid: Sequence[ArrayLike | None] | None = None,
) -> float:
    """Normalised area under the PRO curve up to ``fpr_limit``, in [0, 1] (1 = perfect)."""
    if not 0.0 < fpr_limit <= 1.0:
        raise ValueError(f"fpr_limit must be in (0, 1], got {fpr_limit}")
    curve = _pro_curve(masks, maps, fpr_stop=fpr_limit, valid=valid)
    fpr, pro = curve.fpr, curve.pro
    inside = int(np.searchsorted(fpr, fpr_limit, side="right"))
    x, y = fpr[:inside], pro[:inside]
    if x[-1] < fpr_limit:
        # fpr[inside] > fpr_limit > fpr[inside - 1]: close the area at the limit.
        step = (fpr_limit - x[-1]) / (fpr[inside] - x[-1])
        x = np.append(x, fpr_limit)
        y = np.append(y, y[-1] + step * (pro[inside] - y[-1]))
    return min(max(trapezoid(x, y) / fpr_limit, 0.0), 1.0)


CurveT = TypeVar("CurveT", Curve, ProCurve)


def downsample_curve(curve: CurveT, max_points: int) -> CurveT:
    """Thin a curve for plotting to at most ``max_points``, keeping first and last points.

    Points are picked evenly along the curve's length in the unit square, so steep and
    flat stretches keep their shape; a curve of a million thresholds plots instantly.
    """
    if max_points < 2:
        raise ValueError(f"max_points must be at least 2, got {max_points}")
    n = curve.x.size
    if n <= max_points:
        return curve
    length = np.concatenate([[0.0], np.cumsum(np.hypot(np.diff(curve.x), np.diff(curve.y)))])
    targets = np.linspace(0.0, length[-1], max_points)[1:-1]
    keep = np.unique(np.concatenate([[0], np.searchsorted(length, targets), [n - 1]]))
    return replace(curve, **{f.name: getattr(curve, f.name)[keep] for f in fields(curve)})
