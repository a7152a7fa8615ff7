"""The analysis: calibrated plate forces (and COP) in, an AnalysisResult out.

Public entry points ``analyze_forces`` (plate forces and moments as arrays) and
``analyze_plate_signals`` (plate Fz with moments on demand: what the composition
root ``steplab.analysis_pipeline.analyze_counts`` hands over after calibration)
validate their arguments once, here; everything below runs on validated float64
arrays.  Counts → newtons is the calibration stage's (decision 0009).
Weighing, onset and segmentation follow metrics.md § Weighing and movement onset
and § Centre-of-mass kinematics; protocol metrics live in ``metrics_*.py``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

import steplab
from steplab.constants import G_M_S2
from steplab.dsp import _kernels as K
from steplab.dsp.events import crossing_time_s, last_at_or_below_abs
from steplab.dsp.filters import filtfilt_rows_inplace
from steplab.dsp.params import PROTOCOL_VERSIONS, PROTOCOLS, ROLES, AnalysisParams, PlateForces
from steplab.dsp.results import AnalysisResult

MIN_RATE_HZ = 20.0
MAX_RATE_HZ = 100_000.0
#: a rep's preceding quiet stance must last at least this fraction of quiet_window_s
MIN_QUIET_FRACTION = 0.5
#: σq above this multiple of the unsteady limit means there is no quiet stance at all
NO_QUIET_SD_FACTOR = 3.0
_EVENT_CAP = 4096
#: decision 0003: the visit's body mass disagrees with the plates when |m·g − measured quiet force|
#: exceeds max(BODY_MASS_MISMATCH_FRACTION·m·g, BODY_MASS_MISMATCH_MIN_N) → flag ``body_mass_mismatch``
BODY_MASS_MISMATCH_FRACTION = 0.02
BODY_MASS_MISMATCH_MIN_N = 10.0

REQUIRED_ROLES = {
    "step-down": (("box",), ("floor_left", "floor_right")),
    "forward-step-down": (("box",), ("floor_left", "floor_right")),
    "drop-landing": ((), ("floor_left", "floor_right")),
    "squat": (("floor_left", "floor_right"), ()),
    "balance": ((), ("floor_left", "floor_right")),
}


#: decision 0003: filtered force segments are computed with this many cut-off periods of raw
#: signal on each side (the zero-lag filter's response has decayed below 1e-15 there), so a
#: segment equals the whole-recording filter to rounding; at the recording's own ends the
#: segment uses the same odd-reflection padding as the whole-recording filter.
FILTER_MARGIN_PERIODS = 10.0


class MomentSource(Protocol):
    """Plate moments on demand: ``source(role, lo, hi) -> (Mx, My)`` [N·m] over samples [lo, hi).

    ``roles`` names the plates it has moments for.  The analysis reads moments (for
    COP) only inside a few windows; ``steplab.calibration.apply.CalibratedMoments``
    computes them from the counts there and nowhere else.
    """

    @property
    def roles(self) -> tuple[str, ...]: ...

    def __call__(self, role: str, lo: int, hi: int) -> tuple[np.ndarray, np.ndarray]: ...


@dataclass
class Trial:
    """Validated signals and the weighing of one recording (internal).

    Filtered forces are computed lazily, only over the sample ranges the metrics read
    (``filtered``); plate moments likewise (``moments``), from a ``MomentSource``
    when the trial came from ``analyze_plate_signals``.
    """

    rate_hz: float
    params: AnalysisParams
    fz: dict[str, np.ndarray]          # unfiltered plate Fz, N
    mx: dict[str, np.ndarray | None]
    my: dict[str, np.ndarray | None]
    total: np.ndarray                  # unfiltered F, N
    n: int
    bw_n: float = math.nan             # BW of the metrics: the visit's m·g when given, else weighed
    mass_kg: float = math.nan
    level_n: float = math.nan          # measured quiet force: centre of every quiet-band search, v baseline
    fixed_level_n: float | None = None  # a level measured by the caller (streaming: the trial's own weighing)
    sd_q_n: float = math.nan
    thr_n: float = math.nan            # onset threshold max(5σq, 2.5 % BW)
    quiet_start: int | None = None     # weighing window [quiet_start, quiet_end)
    quiet_end: int | None = None
    v: np.ndarray = field(default=None)  # type: ignore[assignment,arg-type]  # scratch velocity, m/s
    contact_cache: dict = field(default_factory=dict)  # id(signal) → (signal, on, off) arrays
    moment_source: MomentSource | None = None  # lazy moments (analyze_plate_signals)
    _filt: dict[str, tuple[np.ndarray, list[tuple[int, int]]]] = field(default_factory=dict)  # key → (buffer, filled spans)

    @property
    def dt(self) -> float:
        return 1.0 / self.rate_hz

    def window_n(self, seconds: float) -> int:
        return max(1, int(round(seconds * self.rate_hz)))

    def filtered(self, key: str, lo: int, hi: int) -> np.ndarray:
        """Full-length buffer of ``key`` ("total" or a plate role) low-passed at force_cutoff_hz,
        valid (equal to filtering the whole recording) at least on samples [lo, hi)."""
        lo = max(0, int(lo))
        hi = min(self.n, int(hi))
        entry = self._filt.get(key)
        if entry is None:
            entry = (np.empty(self.n), [])
            self._filt[key] = entry
        buf, spans = entry
        if hi <= lo:
            return buf
        for a, b in spans:
            if a <= lo and hi <= b:
                return buf
        p = self.params
        margin = int(math.ceil(FILTER_MARGIN_PERIODS * self.rate_hz / p.force_cutoff_hz))
        s = max(0, lo - margin)
        e = min(self.n, hi + margin)
        x = self.total if key == "total" else self.fz[key]
        out = np.empty((1, e - s))
        filtfilt_rows_inplace(x[s:e].reshape(1, -1), out, p.filter_order, p.force_cutoff_hz, self.rate_hz)
        buf[lo:hi] = out[0, lo - s:hi - s]
        spans.append((lo, hi))
        return buf

    def has_moments(self, role: str) -> bool:
        """True when plate ``role`` has moments (arrays or a moment source)."""
        src = self.moment_source
        return (self.mx.get(role) is not None and self.my.get(role) is not None) or (src is not None and role in src.roles)

    def moments(self, role: str, lo: int, hi: int) -> tuple[np.ndarray | None, np.ndarray | None]:
        """(Mx, My) [N·m] of a plate over samples [lo, hi), or (None, None) without moments."""
        src = self.moment_source
        if src is not None and role in src.roles:
            return src(role, lo, hi)
        mx = self.mx.get(role)
        my = self.my.get(role)
        if mx is None or my is None:
            return None, None
        return mx[lo:hi], my[lo:hi]


# --------------------------------------------------------------------------- validation
def check_rate(rate_hz) -> float:
    """The sample rate as a float [Hz]; ValueError outside MIN_RATE_HZ..MAX_RATE_HZ."""
    try:
        r = float(rate_hz)
    except (TypeError, ValueError):
        raise ValueError(f"sample rate must be a number, got {rate_hz!r}") from None
    if not math.isfinite(r) or not (MIN_RATE_HZ <= r <= MAX_RATE_HZ):
        raise ValueError(f"sample rate {rate_hz!r} Hz is outside {MIN_RATE_HZ:g}..{MAX_RATE_HZ:g} Hz")
    return r


def check_request(protocol, lead, body_mass_kg, params, rate_hz):
    """Validate the analysis request: (body mass [kg] or None, AnalysisParams) out; ValueError otherwise."""
    if protocol not in PROTOCOLS:
        raise ValueError(f"unknown protocol {protocol!r}; expected one of {', '.join(PROTOCOLS)}")
    if lead not in (None, "left", "right"):
        raise ValueError(f"lead must be 'left', 'right' or None, got {lead!r}")
    if body_mass_kg is not None:
        try:
            bm = float(body_mass_kg)
        except (TypeError, ValueError):
            raise ValueError(f"body_mass_kg must be a number, got {body_mass_kg!r}") from None
        if not math.isfinite(bm) or not (5.0 <= bm <= 500.0):
            raise ValueError(f"body_mass_kg {body_mass_kg!r} is outside 5..500 kg")
        body_mass_kg = bm
    if params is None:
        params = AnalysisParams()
    elif not isinstance(params, AnalysisParams):
        raise ValueError(f"params must be an AnalysisParams, got {type(params).__name__}")
    nyq = 0.5 * rate_hz
    for name in ("force_cutoff_hz", "cop_cutoff_hz"):
        if getattr(params, name) >= nyq:
            raise ValueError(f"{name} {getattr(params, name)} Hz must be below the Nyquist frequency {nyq:g} Hz "
                             f"of the {rate_hz:g} Hz recording")
    return body_mass_kg, params


def check_roles(protocol: str, roles) -> None:
    """ValueError unless ``roles`` hold the plates ``protocol`` needs (REQUIRED_ROLES)."""
    need_all, need_one = REQUIRED_ROLES[protocol]
    missing = [r for r in need_all if r not in roles]
    if missing:
        raise ValueError(f"protocol {protocol} needs the {', '.join(missing)} plate(s); got {', '.join(sorted(roles)) or 'none'}")
    if need_one and not any(r in roles for r in need_one):
        raise ValueError(f"protocol {protocol} needs a floor plate (floor_left or floor_right); got {', '.join(sorted(roles)) or 'none'}")


def _as_signal(name: str, a, n: int | None) -> np.ndarray | None:
    if a is None:
        return None
    arr = np.asarray(a)
    if arr.dtype.kind not in "fiu":
        raise ValueError(f"{name} must be numeric, got dtype {arr.dtype}")
    arr = np.ascontiguousarray(arr, dtype=np.float64)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {arr.shape}")
    if n is not None and arr.shape[0] != n:
        raise ValueError(f"{name} has {arr.shape[0]} samples; the other signals have {n}")
    if arr.shape[0] < 2:
        raise ValueError(f"{name} has {arr.shape[0]} sample(s); at least 2 are needed")
    if not K.all_finite(arr):
        raise ValueError(f"{name} holds NaN or inf samples")
    return arr


# --------------------------------------------------------------------------- public API
def analyze_forces(plates: dict[str, PlateForces], rate_hz: float, protocol: str, *,
                   lead: str | None = None, body_mass_kg: float | None = None,
                   params: AnalysisParams | None = None, provenance: dict | None = None) -> AnalysisResult:
    """Analyse calibrated plate forces of one trial.

    Parameters
    ----------
    plates : dict role → PlateForces
        Roles from ``ROLES`` (``"box"``, ``"floor_left"``, ``"floor_right"``), any subset the
        protocol needs; Fz in N, moments in N·m, all of equal length n ≥ 2, finite.
    rate_hz : float
        Sample rate, Hz (20..100 000).
    protocol : str
        One of ``PROTOCOLS``.
    lead : {"left", "right", None}
        Overrides the detected lead limb.
    body_mass_kg : float, optional
        The visit's body mass; used instead of weighing when given.
    params : AnalysisParams, optional
        Defaults of metrics.md when omitted.
    provenance : dict, optional
        Caller facts merged into the result's provenance (calibration id/hash, rig hash,
        lost samples, CRC errors, saturated samples, time since tare, flags ...).

    Returns
    -------
    AnalysisResult
    """
    return _analyze_forces(plates, rate_hz, protocol, lead=lead, body_mass_kg=body_mass_kg, params=params,
                           provenance=provenance)


def _analyze_forces(plates, rate_hz, protocol, *, lead=None, body_mass_kg=None, params=None, provenance=None,
                    level_n: float | None = None) -> AnalysisResult:
    """``analyze_forces`` with an optional quiet force level measured by the caller (N).

    The streaming analyser analyses each rep's stretch of a recording it has weighed
    once; with ``level_n`` the stretch's segmentation is centred on that level (as the
    batch analysis of the whole recording is) instead of the stretch's own quiet window.
    """
    rate = check_rate(rate_hz)
    body_mass_kg, params = check_request(protocol, lead, body_mass_kg, params, rate)
    if level_n is not None and not (math.isfinite(float(level_n)) and float(level_n) > 0.0):
        raise ValueError(f"level_n must be a positive finite force in N, got {level_n!r}")
    if not isinstance(plates, dict) or not plates:
        raise ValueError("plates must be a non-empty dict of role → PlateForces")
    for role, pf in plates.items():
        if role not in ROLES:
            raise ValueError(f"unknown plate role {role!r}; expected one of {', '.join(ROLES)}")
        if not isinstance(pf, PlateForces):
            raise ValueError(f"plate {role!r} must be a PlateForces, got {type(pf).__name__}")
    check_roles(protocol, plates.keys())
    n: int | None = None
    fz: dict[str, np.ndarray] = {}
    mx: dict[str, np.ndarray | None] = {}
    my: dict[str, np.ndarray | None] = {}
    for role, pf in plates.items():
        f = _as_signal(f"{role} fz_n", pf.fz_n, n)
        if f is None:
            raise ValueError(f"{role} fz_n is missing")
        fz[role] = f
        n = f.shape[0]
        mx[role] = _as_signal(f"{role} mx_nm", pf.mx_nm, n)
        my[role] = _as_signal(f"{role} my_nm", pf.my_nm, n)
    assert n is not None  # plates is not empty
    total = np.zeros(n)
    for a in fz.values():
        total += a
    return _run(fz, mx, my, total, rate, protocol, lead, body_mass_kg, params, dict(provenance or {}),
                level_n=None if level_n is None else float(level_n))


def analyze_plate_signals(fz_n: dict[str, np.ndarray], total_n: np.ndarray, rate_hz: float, protocol: str, *,
                          moments: MomentSource | None = None, lead: str | None = None,
                          body_mass_kg: float | None = None, params: AnalysisParams | None = None,
                          provenance: dict | None = None) -> AnalysisResult:
    """Analyse plate vertical forces whose moments are computed on demand.

    The entry of the composition root (``steplab.analysis_pipeline.analyze_counts``):
    the calibration stage computes every plate's Fz and their sum in one pass and
    supplies the moments only where the metrics read them.

    Parameters
    ----------
    fz_n : dict role → numpy.ndarray
        C-contiguous float64 (n,) plate vertical force [N], n ≥ 2, finite (roles from ``ROLES``).
    total_n : numpy.ndarray
        C-contiguous float64 (n,): the sum of the ``fz_n`` [N].  It is checked to be
        finite, and with it the plates' samples (a NaN or inf sample of a plate makes
        the sum non-finite).
    moments : MomentSource or None
        Moments (Mx, My) [N·m] of the plates it names; None: no COP metrics.
    rate_hz, protocol, lead, body_mass_kg, params, provenance
        As ``analyze_forces``.

    Returns
    -------
    AnalysisResult
    """
    rate = check_rate(rate_hz)
    body_mass_kg, params = check_request(protocol, lead, body_mass_kg, params, rate)
    if not isinstance(fz_n, dict) or not fz_n:
        raise ValueError("fz_n must be a non-empty dict of role → plate Fz array")
    for role in fz_n:
        if role not in ROLES:
            raise ValueError(f"unknown plate role {role!r}; expected one of {', '.join(ROLES)}")
    check_roles(protocol, fz_n.keys())
    total = total_n
    if not isinstance(total, np.ndarray) or total.dtype != np.float64 or total.ndim != 1 or not total.flags.c_contiguous:
        raise ValueError("total_n must be a C-contiguous float64 1-D array")
    n = total.shape[0]
    if n < 2:
        raise ValueError(f"the plate signals have {n} sample(s); at least 2 are needed")
    for role, f in fz_n.items():
        if not isinstance(f, np.ndarray) or f.dtype != np.float64 or f.shape != (n,) or not f.flags.c_contiguous:
            raise ValueError(f"{role} fz_n must be a C-contiguous float64 array of the total's {n} samples")
    if not K.all_finite(total):
        raise ValueError("plate forces hold NaN or inf samples")
    if moments is not None and not (callable(moments) and hasattr(moments, "roles")):
        raise ValueError("moments must be a MomentSource (callable (role, lo, hi) with a roles attribute)")
    return _run(dict(fz_n), {}, {}, total, rate, protocol, lead, body_mass_kg, params, dict(provenance or {}),
                moment_source=moments)


# --------------------------------------------------------------------------- pipeline
def _run(fz, mx, my, total, rate, protocol, lead, body_mass_kg, params, provenance, moment_source=None,
         level_n=None) -> AnalysisResult:
    n = total.shape[0]
    roles = list(fz.keys())
    trial = Trial(rate_hz=rate, params=params, fz=fz, mx=mx, my=my, total=total, n=n,
                  moment_source=moment_source, fixed_level_n=level_n)
    trial.v = np.empty(n)  # each rep writes its own integration range before reading it
    flags: list[str] = []
    caller_flags = provenance.pop("flags", None)
    if caller_flags:
        flags.extend(str(f) for f in caller_flags)
    if provenance.get("saturated_samples"):
        flags.append("saturated")

    if protocol == "drop-landing":
        from steplab.dsp.metrics_landing import analyze_drop_landing as fn
    elif protocol == "step-down":
        from steplab.dsp.metrics_stepdown import analyze_step_down as fn
    elif protocol == "forward-step-down":
        from steplab.dsp.metrics_stepdown import analyze_forward_step_down as fn
    elif protocol == "squat":
        from steplab.dsp.metrics_balance import analyze_squat as fn
    else:
        from steplab.dsp.metrics_balance import analyze_balance as fn
    reps = fn(trial, lead=lead, body_mass_kg=body_mass_kg, flags=flags)
    if not reps and "no_reps" not in flags:
        # decision 0003: a trial that yields no rep says so at trial level
        flags.append("no_reps")

    all_flags = list(dict.fromkeys(flags + [f for r in reps for f in r.flags]))
    prov = {
        "software": "steplab",
        "software_version": steplab.__version__,
        "protocol": protocol,
        "protocol_version": PROTOCOL_VERSIONS[protocol],
        "params": params.to_dict(),
        "sample_rate_hz": rate,
        "n_samples": n,
        "plates": roles,
        "body_weight_source": "body_mass_kg" if body_mass_kg is not None else "weighing",
        "quiet_window_s": None if trial.quiet_start is None else [trial.quiet_start / rate, trial.quiet_end / rate],
        "weighing_sd_n": trial.sd_q_n if math.isfinite(trial.sd_q_n) else None,
        "measured_quiet_force_n": trial.level_n if math.isfinite(trial.level_n) else None,
        "calibration_id": None,
        "calibration_hash": None,
    }
    prov.update(provenance)
    prov["flags"] = all_flags
    return AnalysisResult(protocol=protocol, sample_rate_hz=rate, body_weight_n=trial.bw_n,
                          body_mass_kg=trial.mass_kg, reps=reps, flags=list(dict.fromkeys(flags)), provenance=prov)


# --------------------------------------------------------------------------- weighing
def unsteady_limit_n(trial: Trial) -> float:
    p = trial.params
    return max(p.unsteady_sd_n, p.unsteady_bw_fraction * trial.bw_n)


def quiet_window(trial: Trial, lo: int, hi: int, body_mass_kg: float | None) -> tuple[int, float, float, bool]:
    """The quiet_window_s window of smallest SD of F inside [lo, hi): (start, mean, σ, is stance).

    "Is stance" (decision 0003): the window exists, its mean is ≥ contact_threshold_n and
    σ ≤ NO_QUIET_SD_FACTOR × max(10 N, 2 % BW) (BW = m·g when the body mass is given).
    """
    p = trial.params
    w = trial.window_n(p.quiet_window_s)
    s, mean, sd = K.min_sd_window(trial.total, lo, hi, w)
    if s < 0:
        return -1, math.nan, math.nan, False
    bw = body_mass_kg * G_M_S2 if body_mass_kg is not None else mean
    limit = max(p.unsteady_sd_n, p.unsteady_bw_fraction * bw)
    ok = bool(mean >= p.contact_threshold_n) and not (sd > NO_QUIET_SD_FACTOR * limit)
    return int(s), float(mean), float(sd), ok


def weigh(trial: Trial, lo: int, hi: int, body_mass_kg: float | None, flags: list[str]) -> bool:
    """metrics.md § Weighing: the quiet_window_s window of smallest SD of F inside [lo, hi).

    Sets BW, m, σq, the measured quiet force level, the onset threshold and the quiet
    window; returns False (and flags ``no_quiet_stance``) when there is no quiet stance.
    """
    s, mean, sd, ok = quiet_window(trial, lo, hi, body_mass_kg)
    return set_weighing(trial, s, mean, sd, ok, body_mass_kg, flags)


def set_weighing(trial: Trial, s: int, mean: float, sd: float, ok: bool, body_mass_kg: float | None,
                 flags: list[str]) -> bool:
    """Apply a weighing window found by :func:`quiet_window` (see :func:`weigh`)."""
    p = trial.params
    if body_mass_kg is not None:
        trial.mass_kg = body_mass_kg
        trial.bw_n = body_mass_kg * G_M_S2
    if not ok:
        # decision 0003: with no usable weighing (and no body mass) BW stays NaN (null in JSON),
        # never the mean of a window that is not quiet stance (e.g. an unloaded plate)
        if s >= 0:
            trial.sd_q_n = sd
        flags.append("no_quiet_stance")
        return False
    if body_mass_kg is None:
        trial.bw_n = mean
        trial.mass_kg = mean / G_M_S2
    # decision 0003: every quiet-band search is centred on the measured quiet force and v is
    # integrated about it (F = m·g in stance by definition); the visit's body mass gives BW and
    # m of the metrics.  A mass that disagrees with the plates is flagged, never silently used.
    trial.level_n = mean if trial.fixed_level_n is None else trial.fixed_level_n
    if body_mass_kg is not None and abs(trial.bw_n - trial.level_n) > max(BODY_MASS_MISMATCH_FRACTION * trial.bw_n,
                                                                 BODY_MASS_MISMATCH_MIN_N):
        flags.append("body_mass_mismatch")
    trial.sd_q_n = sd
    w = trial.window_n(p.quiet_window_s)
    trial.quiet_start = int(s)
    trial.quiet_end = int(s + w)
    # metrics.md § Weighing: σq > max(10 N, 2 % BW) → unsteady_weighing
    if sd > unsteady_limit_n(trial):
        flags.append("unsteady_weighing")
    # metrics.md § Movement onset: threshold max(5·σq, 2.5 % BW)
    trial.thr_n = max(p.onset_sd_factor * sd, p.onset_bw_fraction * trial.bw_n)
    return True


def no_reps(flags: list[str]) -> list:
    """No usable weighing: no rep can be analysed (decision 0003: trial flags, not a placeholder rep)."""
    for f in ("no_quiet_stance", "no_reps"):
        if f not in flags:
            flags.append(f)
    return []


def weigh_standing_start(trial: Trial, body_mass_kg: float | None, flags: list[str]) -> bool:
    """Weigh on the first quiet_search_s of loaded stance (a trial may start off the plates)."""
    p = trial.params
    loaded = np.flatnonzero(trial.total >= p.contact_threshold_n)
    if loaded.size == 0:
        if body_mass_kg is not None:
            trial.mass_kg = body_mass_kg
            trial.bw_n = body_mass_kg * G_M_S2
        flags.append("no_quiet_stance")
        return False
    lo = int(loaded[0])
    hi = min(trial.n, lo + trial.window_n(p.quiet_search_s))
    return weigh(trial, lo, hi, body_mass_kg, flags)


def rep_quiet_window(trial: Trial, lo: int, hi: int) -> tuple[int, int] | None:
    """The quiet stance just before a rep: last in-band run ≥ MIN_QUIET_FRACTION·window in [lo, hi).

    Returns the min-SD window (≤ quiet_window_s long) in that run's last quiet_search_s,
    as [start, end), or None.
    """
    p = trial.params
    w = trial.window_n(p.quiet_window_s)
    min_len = max(2, int(round(MIN_QUIET_FRACTION * w)))
    starts = np.empty(_EVENT_CAP, dtype=np.int64)
    ends = np.empty(_EVENT_CAP, dtype=np.int64)
    k = K.band_runs(trial.total, lo, hi, trial.level_n, trial.thr_n, min_len, starts, ends)
    if k == 0:
        return None
    rs, re = int(starts[k - 1]), int(ends[k - 1])
    ww = min(w, re - rs)
    s, _, _ = K.min_sd_window(trial.total, max(rs, re - trial.window_n(p.quiet_search_s)), re, ww)
    return int(s), int(s + ww)


def quiet_level_n(trial: Trial, qs: int, qe: int) -> float:
    """Mean total force (N) over the quiet stance ``[qs, qe)``: a rep's own integration baseline
    (metrics.md § kinematics); ×BW figures keep the weighing's BW."""
    return float(np.mean(trial.total[qs:qe]))


def onset_time(trial: Trial, q_end: int, hi: int, v_lo: int) -> tuple[float | None, int]:
    """metrics.md § Movement onset: detection where |F − BW| > thr after the quiet window,
    then back to the last time |v| ≤ onset_speed_m_s.  Returns (t_onset_s, detection index)."""
    p = trial.params
    d = K.first_outside(trial.total, q_end, hi, trial.level_n, trial.thr_n)
    if d < 0:
        d = hi - 1
    j = last_at_or_below_abs(trial.v, v_lo, d + 1, p.onset_speed_m_s)
    if j is None:
        return None, int(d)
    if j >= d:
        # still slower than onset_speed_m_s at detection: onset is the detection crossing itself
        if d >= 1:
            a = abs(float(trial.total[d - 1]) - trial.level_n)
            b = abs(float(trial.total[d]) - trial.level_n)
            frac = 1.0 if b == a else min(1.0, max(0.0, (trial.thr_n - a) / (b - a)))
            return (d - 1 + frac) / trial.rate_hz, int(d)
        return d / trial.rate_hz, int(d)
    # interpolate where |v| rises through onset_speed_m_s between j and j+1
    a = abs(float(trial.v[j]))
    b = abs(float(trial.v[j + 1]))
    frac = 0.0 if b == a else min(1.0, max(0.0, (p.onset_speed_m_s - a) / (b - a)))
    return (j + frac) / trial.rate_hz, int(d)


def contact_runs(trial: Trial, fz: np.ndarray, lo: int = 0, hi: int | None = None) -> list[tuple[int, int]]:
    """metrics.md § Step-down: contact = Fz ≥ contact_threshold_n held ≥ contact_min_s; runs [on, off)."""
    p = trial.params
    cached = trial.contact_cache.get(id(fz))
    if cached is None or cached[0] is not fz:
        min_n = max(1, int(math.ceil(p.contact_min_s * trial.rate_hz - 1e-9)))
        on = np.empty(_EVENT_CAP, dtype=np.int64)
        off = np.empty(_EVENT_CAP, dtype=np.int64)
        k = K.contact_events(fz, p.contact_threshold_n, min_n, on, off)
        cached = (fz, on[:k].copy(), off[:k].copy())
        trial.contact_cache[id(fz)] = cached
    _, on, off = cached
    hi = trial.n if hi is None else hi
    sel = (on >= lo) & (on < hi)
    return [(int(a), int(b)) for a, b in zip(on[sel], off[sel])]


def floor_contact_events(trial: Trial, floors: list[str]) -> list[tuple[int, int]]:
    """Floor-contact events: the union of the floor plates' own contact runs, as [on, off).

    Contact is found per plate (decision 0003): a plate whose Fz is ≥ contact_threshold_n
    for contact_min_s starts an event even if noise on another plate keeps their sum low.
    """
    runs = sorted(r for f in floors for r in contact_runs(trial, trial.fz[f]))
    out: list[list[int]] = []
    for on, off in runs:
        if out and on <= out[-1][1]:
            out[-1][1] = max(out[-1][1], off)
        else:
            out.append([on, off])
    return [(a, b) for a, b in out]


def plate_contacts_in(trial: Trial, floors: list[str], on: int, off: int) -> dict[str, tuple[int, int, float]]:
    """Per floor plate, its first contact run starting in [on, off): (start, end, interpolated time s)."""
    out = {}
    for f in floors:
        c = contact_runs(trial, trial.fz[f], on, off)
        if c:
            out[f] = (c[0][0], c[0][1], contact_time_s(trial, trial.fz[f], c[0][0]))
    return out


def contact_time_s(trial: Trial, fz: np.ndarray, i: int) -> float:
    return crossing_time_s(fz, i, trial.params.contact_threshold_n, trial.rate_hz)


def back_to_quiet_s(trial: Trial, lo: int, hi: int) -> float | None:
    """Time (s) at which |F − BW| re-enters the onset band (±thr) for good after sample lo.

    "For good": the first in-band run of ≥ quiet_window_s in [lo, hi); the crossing
    into the band at its start is interpolated.  Returns lo's time if the run starts
    at lo, None if there is no such run.
    """
    w = trial.window_n(trial.params.quiet_window_s)
    starts = np.empty(1, dtype=np.int64)
    ends = np.empty(1, dtype=np.int64)
    k = K.band_runs(trial.total, lo, hi, trial.level_n, trial.thr_n, w, starts, ends)
    if k == 0:
        return None
    s = int(starts[0])
    if s <= lo or s == 0:
        return lo / trial.rate_hz
    a = abs(float(trial.total[s - 1]) - trial.level_n)
    b = abs(float(trial.total[s]) - trial.level_n)
    frac = 1.0 if a == b else min(1.0, max(0.0, (a - trial.thr_n) / (a - b)))
    return (s - 1 + frac) / trial.rate_hz


def drift_after(trial: Trial, lo: int, hi: int) -> float | None:
    """metrics.md § kinematics: mean v over the last 1 s of the quiet stance that ends the rep."""
    p = trial.params
    w = trial.window_n(p.quiet_window_s)
    starts = np.empty(_EVENT_CAP, dtype=np.int64)
    ends = np.empty(_EVENT_CAP, dtype=np.int64)
    k = K.band_runs(trial.total, lo, hi, trial.level_n, trial.thr_n, w, starts, ends)
    if k == 0:
        return None
    re = int(ends[0])
    return float(np.mean(trial.v[re - w:re]))
