"""Load-cell channel health: stuck, saturated, noisy, reversed, disconnected.

Two kinds of check:

* ``check_block`` looks at a block of raw counts from the cells of one plate:
  *disconnected* (constant 0, or pinned at full scale), *stuck* (a single value),
  *saturated* (some samples at full scale), *noisy* (sample-to-sample noise above
  a limit; estimated from first differences so slow drift and steady loads do not
  count as noise).
* ``check_response`` compares the change of each cell under a known load with the
  change a rigid plate predicts: *reversed* polarity (responds negatively) or
  *no response* (does not move).

Each finding is a ``CellHealth`` with a one-line message naming the cell.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from steplab.constants import ADC_FULL_SCALE_COUNTS

OK = "ok"
DISCONNECTED = "disconnected"
STUCK = "stuck"
SATURATED = "saturated"
NOISY = "noisy"
REVERSED = "reversed"
NO_RESPONSE = "no_response"


class ChannelFault(ValueError):
    """One or more channels are unusable; the message lists them."""


@dataclass(frozen=True)
class CellHealth:
    """Health of one cell: ``status`` is one of the module constants; ``message`` says why."""

    cell: str
    channel: int
    status: str
    message: str

    @property
    def ok(self) -> bool:
        return self.status == OK


@dataclass(frozen=True)
class HealthReport:
    """Health of every cell of a plate."""

    cells: tuple[CellHealth, ...]

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.cells)

    @property
    def faults(self) -> tuple[CellHealth, ...]:
        return tuple(c for c in self.cells if not c.ok)

    @property
    def message(self) -> str:
        """One line: every fault, or ``"all channels ok"``."""
        f = self.faults
        return "; ".join(c.message for c in f) if f else "all channels ok"

    def raise_if_faulty(self) -> None:
        if not self.ok:
            raise ChannelFault(self.message)


def _names(cell_names, channels, k):
    names = tuple(cell_names) if cell_names is not None else tuple(f"cell {i}" for i in range(k))
    chans = tuple(int(c) for c in channels) if channels is not None else tuple(range(k))
    if len(names) != k or len(chans) != k:
        raise ValueError(f"need {k} cell names and channels, got {len(names)} and {len(chans)}")
    return names, chans


def noise_sd_counts(counts) -> np.ndarray:
    """Per-channel white-noise SD estimate [counts]: SD of first differences / √2."""
    c = np.asarray(counts, dtype=np.float64)
    if c.ndim != 2 or c.shape[0] < 3:
        raise ValueError(f"counts must be (n ≥ 3, K), got shape {c.shape}")
    return np.std(np.diff(c, axis=0), axis=0) / np.sqrt(2.0)


def check_block(
    counts,
    *,
    cell_names=None,
    channels=None,
    noise_limit_counts=None,
    full_scale_counts: int = ADC_FULL_SCALE_COUNTS,
) -> HealthReport:
    """Static health of each channel from a block of raw counts.

    Parameters
    ----------
    counts : array_like
        (n, K) raw counts of one plate's cells, n ≥ 3 samples.
    cell_names, channels : sequence or None
        Names and wire channels of the K cells (for messages).
    noise_limit_counts : float, array_like or None
        Largest acceptable noise SD [counts] (scalar or per cell); None skips the check.
    full_scale_counts : int
        Positive full scale of the converter [counts]; the negative rail is
        ``−full_scale_counts − 1``.

    Returns
    -------
    HealthReport
    """
    c = np.asarray(counts)
    if c.ndim != 2 or c.shape[0] < 3:
        raise ValueError(f"counts must be (n ≥ 3, K), got shape {c.shape}")
    k = c.shape[1]
    names, chans = _names(cell_names, channels, k)
    c64 = c.astype(np.int64)
    hi, lo = int(full_scale_counts), -int(full_scale_counts) - 1
    at_rail = (c64 >= hi) | (c64 <= lo)
    noise = noise_sd_counts(c64)
    limit = None if noise_limit_counts is None else np.broadcast_to(np.asarray(noise_limit_counts, dtype=np.float64), (k,))
    out = []
    for i in range(k):
        col = c64[:, i]
        first = int(col[0])
        constant = bool(np.all(col == first))
        label = f"cell {names[i]} (channel {chans[i]})"
        if constant and first == 0:
            out.append(CellHealth(names[i], chans[i], DISCONNECTED, f"{label} reads constant 0: disconnected?"))
        elif constant and (first >= hi or first <= lo):
            out.append(CellHealth(names[i], chans[i], DISCONNECTED,
                                  f"{label} is pinned at full scale ({first} counts): broken wire or disconnected?"))
        elif constant:
            out.append(CellHealth(names[i], chans[i], STUCK, f"{label} is stuck at {first} counts (no noise, no change)"))
        elif np.any(at_rail[:, i]):
            n_sat = int(np.sum(at_rail[:, i]))
            out.append(CellHealth(names[i], chans[i], SATURATED, f"{label} is saturated ({n_sat} of {len(col)} samples at full scale)"))
        elif limit is not None and noise[i] > limit[i]:
            out.append(CellHealth(names[i], chans[i], NOISY, f"{label} is noisy (noise SD {noise[i]:.0f} counts > {limit[i]:.0f})"))
        else:
            out.append(CellHealth(names[i], chans[i], OK, f"{label} ok"))
    return HealthReport(tuple(out))


def check_response(
    delta_counts,
    expected_delta_counts,
    *,
    cell_names=None,
    channels=None,
    min_fraction: float = 0.25,
    min_expected_counts: float = 0.0,
) -> HealthReport:
    """Does each cell respond to a known load with the right sign and roughly the right size?

    Parameters
    ----------
    delta_counts : array_like
        (K,) measured change of each cell (loaded minus unloaded mean) [counts].
    expected_delta_counts : array_like
        (K,) change predicted from the nominal sensitivity and rigid-plate statics.
    min_fraction : float
        A cell whose change is below ``min_fraction`` of the expected is flagged:
        *reversed* when the change is negative, *no response* otherwise.
    min_expected_counts : float
        Cells expected to change less than this are not judged.

    Returns
    -------
    HealthReport
    """
    d = np.asarray(delta_counts, dtype=np.float64)
    e = np.asarray(expected_delta_counts, dtype=np.float64)
    if d.ndim != 1 or d.shape != e.shape:
        raise ValueError(f"delta and expected must be equal-length 1-D arrays, got {d.shape} and {e.shape}")
    if not (0.0 < min_fraction < 1.0):
        raise ValueError(f"min_fraction must be in (0, 1), got {min_fraction}")
    names, chans = _names(cell_names, channels, d.shape[0])
    out = []
    for i in range(d.shape[0]):
        label = f"cell {names[i]} (channel {chans[i]})"
        if e[i] <= max(min_expected_counts, 0.0):
            out.append(CellHealth(names[i], chans[i], OK, f"{label} not judged"))
        elif d[i] < -min_fraction * e[i]:
            out.append(CellHealth(names[i], chans[i], REVERSED, f"{label} responds negatively to load ({d[i]:.0f} counts, "
                                                                f"expected about +{e[i]:.0f}): reversed polarity?"))
        elif d[i] < min_fraction * e[i]:
            out.append(CellHealth(names[i], chans[i], NO_RESPONSE, f"{label} does not respond to load ({d[i]:.0f} counts, "
                                                                   f"expected about {e[i]:.0f}): disconnected?"))
        else:
            out.append(CellHealth(names[i], chans[i], OK, f"{label} ok"))
    return HealthReport(tuple(out))
