"""Least-squares calibration of a plate: cell counts (minus offsets) → (Fz, Mx, My).

Model, per plate with K cells and ``d = counts − offsets`` [counts]::

    w = L · d + Q · d²        w = (Fz [N], Mx [N·m], My [N·m])

``L`` (3, K) [N/count, N·m/count] is the full matrix (a per-cell gain with the cell
positions is the special case ``nominal_matrix``); ``Q`` (3, K) is the optional
quadratic term (element-wise square). Each output row is an independent linear
least-squares problem on the same design matrix ``X = [d, d²]``; the fit refuses
designs that cannot determine the matrix: too few distinct positions or loads,
applied loads that do not separate Fz, Mx and My (condition number above a
limit), or cells that respond in fewer than three independent patterns. The
counts design is solved by truncated SVD, so a plate whose cells carry only
three independent load patterns (rigid top, equal cells) is fitted without
amplifying noise. Also here: applying a general calibration matrix to signals
(the C3D TYPE-4 ``CAL_MATRIX`` is one).  A plate matrix is applied by
``calibration.apply.apply_plate_matrix``, the one counts → newtons implementation.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .apply import apply_plate_matrix


class FitError(ValueError):
    """A calibration design that cannot be fitted; the message gives the reason."""


@dataclass(frozen=True)
class PlateFit:
    """Result of ``fit_plate_matrix``.

    Attributes
    ----------
    linear : numpy.ndarray
        (3, K) rows Fz [N], Mx [N·m], My [N·m] per count.
    quadratic : numpy.ndarray
        (3, K) per count²; zeros when the fit was linear.
    residuals : numpy.ndarray
        (N, 3) fitted minus applied wrench at each calibration point.
    residual_sd : numpy.ndarray
        (3,) residual standard deviation per output (dof-corrected) [N, N·m, N·m].
    condition_number : float
        Of the retained part of the column-normalised counts design.
    rank : int
        Patterns retained from the counts design (≤ K, or 2K with the quadratic term).
    n_points, n_positions, n_loads : int
        Points used, distinct loaded positions, distinct non-zero loads.
    """

    linear: np.ndarray
    quadratic: np.ndarray
    residuals: np.ndarray
    residual_sd: np.ndarray
    condition_number: float
    rank: int
    n_points: int
    n_positions: int
    n_loads: int

    def apply(self, delta_counts: np.ndarray) -> np.ndarray:
        """Wrench (n, 3) from offset-subtracted counts (n, K)."""
        return apply_plate_matrix(delta_counts, self.linear, self.quadratic)


def apply_calibration_matrix(matrix, signals, offsets=None) -> np.ndarray:
    """Apply a general square or rectangular calibration matrix to channel signals.

    ``out[:, i] = Σ_j matrix[i, j] · (signals[:, j] − offsets[j])`` — the same
    operation as the C3D TYPE-4 ``CAL_MATRIX`` applied to its analog channels.

    Parameters
    ----------
    matrix : array_like
        (M, J) calibration matrix (output units per signal unit).
    signals : array_like
        (n, J) channel signals.
    offsets : array_like or None
        (J,) signal zero to subtract first.

    Returns
    -------
    numpy.ndarray
        (n, M) calibrated outputs.
    """
    m = np.asarray(matrix, dtype=np.float64)
    s = np.asarray(signals, dtype=np.float64)
    if m.ndim != 2:
        raise ValueError(f"calibration matrix must be 2-D, got shape {m.shape}")
    if s.ndim != 2 or s.shape[1] != m.shape[1]:
        raise ValueError(f"signals must be (n, {m.shape[1]}), got shape {s.shape}")
    if offsets is not None:
        o = np.asarray(offsets, dtype=np.float64)
        if o.shape != (m.shape[1],):
            raise ValueError(f"offsets must have shape ({m.shape[1]},), got {o.shape}")
        s = s - o
    return s @ m.T


def _distinct_rows(a: np.ndarray, tol: float) -> int:
    if a.size == 0:
        return 0
    keys = np.round(a / tol).astype(np.int64)
    return int(np.unique(keys, axis=0).shape[0])


def fit_plate_matrix(
    delta_counts,
    wrench,
    *,
    positions_mm=None,
    loads_n=None,
    quadratic: bool = False,
    min_positions: int = 9,
    min_loads: int = 5,
    max_condition: float = 1.0e4,
    rcond: float = 1.0e-3,
) -> PlateFit:
    """Fit the (3, K) calibration matrix (and optional quadratic term) by least squares.

    Parameters
    ----------
    delta_counts : array_like
        (N, K) mean counts minus tare offsets at each calibration point [counts].
    wrench : array_like
        (N, 3) applied (Fz [N], Mx [N·m], My [N·m]) at each point.
    positions_mm : array_like or None
        (N, 2) load positions [mm], to count distinct positions (from the wrench when None).
    loads_n : array_like or None
        (N,) applied loads [N], to count distinct loads (Fz of ``wrench`` when None).
    quadratic : bool
        Fit the quadratic term too.
    min_positions, min_loads : int
        Refuse designs with fewer distinct loaded positions / non-zero loads.
    max_condition : float
        Refuse designs whose applied loads (column-normalised) have a larger
        condition number: the loads must separate Fz, Mx and My.
    rcond : float
        Singular values of the column-normalised counts design below ``rcond`` times
        the largest are dropped (truncated SVD): a rigid plate on four equally stiff
        cells shows no "twist" pattern, and its coefficient must not be fitted to
        noise. The default (1e-3) sits above the relative noise of averaged
        readings (≈ 1e-4). At least three patterns must remain.

    Returns
    -------
    PlateFit

    Raises
    ------
    FitError
        With the reason when the design cannot determine the matrix.
    """
    d = np.asarray(delta_counts, dtype=np.float64)
    w = np.asarray(wrench, dtype=np.float64)
    if d.ndim != 2 or d.shape[1] < 1:
        raise ValueError(f"delta_counts must be (N, K), got shape {d.shape}")
    if w.shape != (d.shape[0], 3):
        raise ValueError(f"wrench must be ({d.shape[0]}, 3), got shape {w.shape}")
    if not (np.all(np.isfinite(d)) and np.all(np.isfinite(w))):
        raise ValueError("calibration points hold NaN or inf")
    n, k = d.shape
    fz = w[:, 0] if loads_n is None else np.asarray(loads_n, dtype=np.float64)
    if fz.shape != (n,):
        raise ValueError(f"loads_n must have shape ({n},), got {fz.shape}")
    loaded = fz > 1e-9
    if positions_mm is None:
        safe = np.where(loaded, w[:, 0], 1.0)
        pos = np.column_stack([-w[:, 2] / safe * 1000.0, w[:, 1] / safe * 1000.0])
    else:
        pos = np.asarray(positions_mm, dtype=np.float64)
        if pos.shape != (n, 2):
            raise ValueError(f"positions_mm must have shape ({n}, 2), got {pos.shape}")
    n_pos = _distinct_rows(pos[loaded], 1.0)
    n_loads = _distinct_rows(fz[loaded][:, None], 0.05)
    if n_pos < min_positions:
        raise FitError(f"only {n_pos} distinct load positions; the fit needs at least {min_positions}")
    if n_loads < min_loads:
        raise FitError(f"only {n_loads} distinct loads; the fit needs at least {min_loads}")
    wn = np.linalg.norm(w, axis=0)
    if np.any(wn == 0):
        raise FitError("applied loads have no moment about one axis: put loads off the centre lines (3x3 grid)")
    svw = np.linalg.svd(w / wn, compute_uv=False)
    cond_w = float(svw[0] / svw[-1]) if svw[-1] > 0 else float("inf")
    if cond_w > max_condition:
        raise FitError(f"applied loads do not separate Fz, Mx and My (condition number {cond_w:.3g} > {max_condition:.3g}): "
                       "are all positions on one line?")
    x = np.hstack([d, d * d]) if quadratic else d
    n_par = x.shape[1]
    if n < n_par + 1:
        raise FitError(f"{n} calibration points cannot determine {n_par} coefficients per output")
    norms = np.linalg.norm(x[:, :k], axis=0)
    if np.any(norms == 0):
        raise FitError(f"cell(s) {np.flatnonzero(norms == 0).tolist()} never responded to any load")
    norms = np.linalg.norm(x, axis=0)
    xs = x / norms
    u, sv, vt = np.linalg.svd(xs, full_matrices=False)
    rank = int(np.sum(sv > sv[0] * rcond))
    if rank < 3:
        raise FitError(f"the cells respond in only {rank} independent pattern(s); Fz, Mx and My need 3: "
                       "check the cells and spread the loads")
    cond = float(sv[0] / sv[rank - 1])
    coef_s = vt[:rank].T @ ((u[:, :rank].T @ w) / sv[:rank, None])
    coef = (coef_s / norms[:, None]).T  # (3, n_par)
    lin = np.ascontiguousarray(coef[:, :k])
    quad = np.ascontiguousarray(coef[:, k:]) if quadratic else np.zeros((3, k))
    resid = apply_plate_matrix(d, lin, quad) - w
    dof = max(n - n_par, 1)
    sd = np.sqrt(np.sum(resid * resid, axis=0) / dof)
    return PlateFit(lin, quad, resid, sd, cond, rank, n, n_pos, n_loads)
