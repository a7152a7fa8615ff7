"""Streaming analysis for the live view: blocks of plate forces in, reps out as they end.

``StreamingAnalyzer.push(block)`` takes a few milliseconds of plate Fz (or
``PlateForces`` with moments) per role and

* filters every plate causally (the scipy-designed Butterworth section of the
  batch filter, ``filter_order/2`` at ``force_cutoff_hz``, run by a numba kernel
  that carries ``zi`` across blocks) for the live display;
* weighs once, as the batch analysis does (the ``quiet_window_s`` window of
  smallest SD within the first ``quiet_search_s`` of loaded stance, or the
  given body mass), then runs a rep detector sample by sample (numba): a rep is
  armed by a stance of at least half a quiet window — quiet at body weight, or
  off the plates for a drop landing — starts when the total force leaves the
  quiet band ``max(5·σq, 2.5 % BW)``, and **ends** when the total force has
  stayed within ``min(quiet band, stabilization_band_bw·BW)`` of body weight
  for ``stabilization_hold_s`` + 20 ms.  A movement that ends off the plates
  (walking back to the box) is dropped.  Live events (movement, contact of the
  first floor plate, arrest ``v ≥ 0``) are kept in ``events``;
* at a rep's end, runs the reported metrics on the rep's buffered raw data
  (from ``quiet_search_s`` before the movement to the end) with the batch
  definitions (``analyze_forces``, zero-lag filter, the streaming body weight):
  causal filters drive the live view only, the zero-phase filter every
  reported number, so a rep's numbers do not depend on whether it was seen
  live.  The rep is returned by the ``push`` whose block holds its end, i.e.
  within one block (≤ 100 ms of data) of its end.  A segment with a step back
  up onto the box yields no rep, as in the batch analysis.

Agreement with ``analyze_forces`` on the whole recording (tested on multi-rep
recordings): events equal to 1e-9 s, metrics to 1e-6 relative, except
``integration_drift_m_s`` (the closing quiet stance is cut at the rep's end:
within 0.01 m/s).  Drop landings weigh on the first loaded stance when no body
mass is given (the batch weighs on the final one).
"""

from __future__ import annotations

import math
import time

import numpy as np
from scipy import signal

from steplab.constants import G_M_S2
from steplab.dsp import _kernels as K
from steplab.dsp import _streaming_kernels as SK
from steplab.dsp.analysis import BODY_MASS_MISMATCH_FRACTION, BODY_MASS_MISMATCH_MIN_N, MIN_QUIET_FRACTION, _analyze_forces
from steplab.dsp.params import PROTOCOLS, ROLES, AnalysisParams, PlateForces
from steplab.dsp.results import RepResult

FLOOR_ROLES = ("floor_left", "floor_right")
_EVENT_ROWS = 64
_END_MARGIN_S = 0.020


class StreamingAnalyzer:
    """Live analysis of a recording delivered block by block.

    Parameters
    ----------
    rate_hz : float
        Sample rate [Hz] (20..100 000).
    roles : sequence of str
        The plates that will be pushed (``"box"``, ``"floor_left"``, ``"floor_right"``).
    protocol : str
        One of ``PROTOCOLS``.
    params : AnalysisParams, optional
        Defaults of metrics.md when omitted.
    body_mass_kg : float, optional
        The visit's body mass [kg]; replaces weighing.
    lead : {"left", "right"}, optional
        Overrides the detected lead limb of every rep.
    """

    def __init__(self, rate_hz: float, roles, protocol: str = "step-down", params: AnalysisParams | None = None,
                 body_mass_kg: float | None = None, lead: str | None = None) -> None:
        try:
            rate = float(rate_hz)
        except (TypeError, ValueError):
            raise ValueError(f"rate_hz must be a number, got {rate_hz!r}") from None
        if not math.isfinite(rate) or not (20.0 <= rate <= 100_000.0):
            raise ValueError(f"rate_hz {rate_hz!r} is outside 20..100000 Hz")
        if protocol not in PROTOCOLS:
            raise ValueError(f"unknown protocol {protocol!r}; expected one of {', '.join(PROTOCOLS)}")
        roles = tuple(roles) if not isinstance(roles, str) else (roles,)
        if not roles or len(set(roles)) != len(roles) or any(r not in ROLES for r in roles):
            raise ValueError(f"roles must be distinct plate roles from {ROLES}, got {roles!r}")
        if params is None:
            params = AnalysisParams()
        elif not isinstance(params, AnalysisParams):
            raise ValueError(f"params must be an AnalysisParams, got {type(params).__name__}")
        if params.force_cutoff_hz >= 0.5 * rate:
            raise ValueError(f"force_cutoff_hz {params.force_cutoff_hz} Hz must be below the Nyquist frequency {0.5 * rate:g} Hz")
        if body_mass_kg is not None:
            bm = float(body_mass_kg)
            if not math.isfinite(bm) or not (5.0 <= bm <= 500.0):
                raise ValueError(f"body_mass_kg {body_mass_kg!r} is outside 5..500 kg")
            body_mass_kg = bm
        if lead not in (None, "left", "right"):
            raise ValueError(f"lead must be 'left', 'right' or None, got {lead!r}")
        self.rate_hz = rate
        self.roles = roles
        self.protocol = protocol
        self.params = params
        self.body_mass_kg = body_mass_kg
        self.lead = lead
        self._sos = np.ascontiguousarray(
            signal.butter(params.filter_order // 2, params.force_cutoff_hz / (0.5 * rate), output="sos"), dtype=np.float64)
        self._zi_unit = np.ascontiguousarray(signal.sosfilt_zi(self._sos))
        self._zi = np.zeros((len(roles), self._sos.shape[0], 2))
        self._filter_started = False
        cap = int(rate * 30)
        self._fz = np.zeros((len(roles), cap))
        self._mx = np.zeros((len(roles), cap))
        self._my = np.zeros((len(roles), cap))
        self._has_moments = [False] * len(roles)
        self._total = np.zeros(cap)
        self._floor = np.zeros((2, cap))
        self._len = 0           # valid samples in the buffer
        self._offset = 0        # absolute sample index of buffer[0]
        self._det = 0           # buffer index the detector has reached
        self._floor_rows = [roles.index(r) if r in roles else -1 for r in FLOOR_ROLES]
        self._st_i, self._st_f = SK.new_state()
        self._events_buf = np.zeros((_EVENT_ROWS, 4), dtype=np.int64)
        self._weighed = False
        self._first_loaded: int | None = None  # absolute index
        self.body_weight_n: float | None = None
        self.sigma_q_n: float | None = None
        self.quiet_force_n: float | None = None  # measured quiet force, N (the segmentation level)
        self.flags: list[str] = []
        self.events: list[tuple[str, float]] = []
        self.reps: list[RepResult] = []
        self._filtered_last = np.zeros(len(roles))
        w = max(1, int(round(params.quiet_window_s * rate)))
        self._w = w
        self._search = max(w, int(round(params.quiet_search_s * rate)))
        self._min_stance = max(2, int(round(MIN_QUIET_FRACTION * w)))
        self._end_hold = max(1, int(round(params.stabilization_hold_s * rate))) + max(2, int(round(_END_MARGIN_S * rate)))
        self._contact_min = max(1, int(math.ceil(params.contact_min_s * rate - 1e-9)))

    # -- live readouts --------------------------------------------------------------
    @property
    def n_samples(self) -> int:
        """Samples pushed so far."""
        return self._offset + self._len

    @property
    def filtered_fz_n(self) -> dict[str, float]:
        """Latest causally filtered Fz of each plate [N]."""
        return {r: float(self._filtered_last[i]) for i, r in enumerate(self.roles)}

    @property
    def left_share_pct(self) -> float | None:
        """Live share of the floor load on the left plate [%] (biofeedback); None when unloaded."""
        il, ir = self._floor_rows
        if il < 0 or ir < 0:
            return None
        left, right = self._filtered_last[il], self._filtered_last[ir]
        tot = left + right
        if not tot >= self.params.contact_threshold_n:
            return None
        return float(left / tot * 100.0)

    @property
    def velocity_m_s(self) -> float | None:
        """Live centre-of-mass vertical velocity [m/s] (None before weighing)."""
        return float(self._st_f[SK.F_V]) if self._weighed else None

    @property
    def phase(self) -> str:
        """``"weighing"``, ``"waiting"`` (no stance yet), ``"ready"`` (stance held) or ``"moving"``."""
        if not self._weighed:
            return "weighing"
        return ("waiting", "ready", "moving")[int(self._st_i[SK.I_PHASE])]

    # -- input ------------------------------------------------------------------------
    def _block_arrays(self, block) -> tuple[np.ndarray, list]:
        if not isinstance(block, dict):
            raise ValueError("block must be a dict of role → Fz array (N) or PlateForces")
        unknown = set(block) - set(self.roles)
        missing = set(self.roles) - set(block)
        if unknown or missing:
            raise ValueError(f"block must hold exactly the plates {self.roles}; "
                             f"missing {sorted(missing)}, unexpected {sorted(unknown)}")
        n = None
        fz = []
        mom: list[tuple[np.ndarray, np.ndarray] | None] = []
        for r in self.roles:
            v = block[r]
            if isinstance(v, PlateForces):
                a, mx, my = v.fz_n, v.mx_nm, v.my_nm
            else:
                a, mx, my = v, None, None
            a = np.asarray(a, dtype=np.float64)
            if a.ndim != 1:
                raise ValueError(f"plate {r} block must be 1-D, got shape {a.shape}")
            if n is None:
                n = a.shape[0]
            elif a.shape[0] != n:
                raise ValueError(f"plate {r} block has {a.shape[0]} samples, the others {n}")
            if not np.all(np.isfinite(a)):
                raise ValueError(f"plate {r} block holds NaN or inf")
            fz.append(a)
            if mx is not None and my is not None:
                mx = np.asarray(mx, dtype=np.float64)
                my = np.asarray(my, dtype=np.float64)
                if mx.shape != a.shape or my.shape != a.shape or not (np.all(np.isfinite(mx)) and np.all(np.isfinite(my))):
                    raise ValueError(f"plate {r} moments must be finite and match its Fz length")
                mom.append((mx, my))
            else:
                mom.append(None)
        return np.vstack(fz) if n else np.zeros((len(self.roles), 0)), mom

    def _ensure_capacity(self, extra: int) -> None:
        need = self._len + extra
        cap = self._total.shape[0]
        if need <= cap:
            return
        new_cap = max(need, 2 * cap)
        for name in ("_fz", "_mx", "_my", "_floor"):
            old = getattr(self, name)
            arr = np.zeros((old.shape[0], new_cap))
            arr[:, :self._len] = old[:, :self._len]
            setattr(self, name, arr)
        t = np.zeros(new_cap)
        t[:self._len] = self._total[:self._len]
        self._total = t

    def _trim(self, keep_from: int) -> None:
        """Drop buffered samples before buffer index ``keep_from``."""
        if keep_from <= 0:
            return
        keep_from = min(keep_from, self._len)
        m = self._len - keep_from
        for name in ("_fz", "_mx", "_my", "_floor"):
            arr = getattr(self, name)
            arr[:, :m] = arr[:, keep_from:self._len]
        self._total[:m] = self._total[keep_from:self._len]
        self._len = m
        self._offset += keep_from
        self._det -= keep_from
        for k in (SK.I_RUN_START, SK.I_SEG_START, SK.I_DETECT, SK.I_LAST_SLOW, SK.I_CONTACT, SK.I_ARREST,
                  SK.I_END_RUN_START, SK.I_CONTACT_RUN0, SK.I_CONTACT_RUN1):
            if self._st_i[k] >= 0:  # -1 / -2 are markers, not indices
                self._st_i[k] = max(0, self._st_i[k] - keep_from)

    def push(self, block) -> list[RepResult]:
        """Add one block of samples; return the reps that ended in it.

        Parameters
        ----------
        block : dict role → numpy.ndarray or PlateForces
            Every plate of ``roles``: Fz [N] (1-D, equal lengths, finite), or
            PlateForces with moments [N·m] for the COP metrics.

        Returns
        -------
        list of RepResult
            Reps whose end falls in this block; times are seconds from the
            first pushed sample.
        """
        fz, mom = self._block_arrays(block)
        n = fz.shape[1]
        if n == 0:
            return []
        self._ensure_capacity(n)
        a, b = self._len, self._len + n
        self._fz[:, a:b] = fz
        for i, m in enumerate(mom):
            if m is not None:
                self._mx[i, a:b], self._my[i, a:b] = m
                self._has_moments[i] = True
        self._total[a:b] = fz.sum(axis=0)
        for k, row in enumerate(self._floor_rows):
            if row >= 0:
                self._floor[k, a:b] = fz[row]
        self._len = b
        # causal filter with carried state (live view)
        if not self._filter_started:
            self._zi[:] = self._zi_unit[None, :, :] * fz[:, 0][:, None, None]
            self._filter_started = True
        y = np.empty_like(fz)
        SK.sos_block(np.ascontiguousarray(fz), self._sos, self._zi, y)
        self._filtered_last[:] = y[:, -1]
        if not self._weighed:
            self._try_weigh()
            if not self._weighed:
                return []
        return self._detect()

    def _try_weigh(self) -> None:
        p = self.params
        if self._first_loaded is None:
            loaded = np.flatnonzero(self._total[:self._len] >= p.contact_threshold_n)
            if loaded.size == 0:
                if self.protocol != "drop-landing" and self._len > self._search:
                    self._trim(self._len - self._search)  # keep memory bounded while nobody stands on the plates
                return
            self._first_loaded = self._offset + int(loaded[0])
        lo = self._first_loaded - self._offset
        if self._len < lo + self._search:
            return
        s, mean, sd = K.min_sd_window(self._total, lo, lo + self._search, self._w)
        bw = self.body_mass_kg * G_M_S2 if self.body_mass_kg is not None else float(mean)
        self.body_weight_n = bw
        # decision 0003: detection is centred on (and v integrated about) the measured quiet force;
        # the visit's body mass gives BW and m of the metrics and is flagged if it disagrees
        self.quiet_force_n = float(mean)
        self.sigma_q_n = float(sd)
        if sd > max(p.unsteady_sd_n, p.unsteady_bw_fraction * bw):
            self.flags.append("unsteady_weighing")
        if self.body_mass_kg is not None and abs(bw - mean) > max(BODY_MASS_MISMATCH_FRACTION * bw,
                                                                  BODY_MASS_MISMATCH_MIN_N):
            self.flags.append("body_mass_mismatch")
        thr = max(p.onset_sd_factor * sd, p.onset_bw_fraction * bw)
        st = self._st_f
        st[SK.F_BW] = self.quiet_force_n
        st[SK.F_MASS] = bw / G_M_S2
        st[SK.F_THR] = thr
        st[SK.F_STAB] = p.stabilization_band_bw * bw
        st[SK.F_UNLOADED] = p.contact_threshold_n
        st[SK.F_ONSET_SPEED] = p.onset_speed_m_s
        st[SK.F_CONTACT_N] = p.contact_threshold_n
        st[SK.F_PREV] = self._total[0]
        self._weighed = True

    def _detect(self) -> list[RepResult]:
        out: list[RepResult] = []
        while self._det < self._len:
            lo = self._det
            ne = SK.detect_block(self._total, self._floor, lo, self._len, 1.0 / self.rate_hz, self._min_stance,
                                 self._end_hold, self._contact_min, self._st_i, self._st_f, self._events_buf)
            self._det = self._len
            for k in range(ne):
                kind, i, a, _b = (int(x) for x in self._events_buf[k])
                t = (self._offset + i) / self.rate_hz
                if kind == SK.EV_MOVEMENT:
                    self.events.append(("movement", t))
                elif kind == SK.EV_CONTACT:
                    self.events.append((f"contact_{FLOOR_ROLES[a].split('_')[1]}", t))
                elif kind == SK.EV_ARREST:
                    self.events.append(("arrest", t))
                elif kind == SK.EV_REP_END:
                    self.events.append(("rep_end", t))
                    out.extend(self._analyse_segment(a, i))
                elif kind == SK.EV_ABANDON:
                    self.events.append(("left_plates", t))
            if ne >= self._events_buf.shape[0]:
                continue  # pragma: no cover - more events than rows: impossible for sane blocks
            # keep the stance that arms the next rep (at most quiet_search_s of it)
            if self._st_i[SK.I_PHASE] == 1 and self.protocol != "drop-landing" or self._st_i[SK.I_PHASE] == 0:
                keep = max(0, self._len - self._search - self._min_stance)
                seg = int(self._st_i[SK.I_SEG_START])
                keep = min(keep, seg) if seg >= 0 and self._st_i[SK.I_PHASE] != 0 else keep
                if keep > self._total.shape[0] // 2:
                    self._trim(keep)
            elif self._st_i[SK.I_PHASE] == 1:
                seg = int(self._st_i[SK.I_SEG_START])
                if seg > self._total.shape[0] // 2:
                    self._trim(seg)
        self.reps.extend(out)
        return out

    def _segment_start(self, seg_start: int) -> int:
        det = int(self._st_i[SK.I_DETECT])
        if det < 0:
            return seg_start
        return max(seg_start, det - self._search)

    def _analyse_segment(self, seg_start: int, end: int) -> list[RepResult]:
        s = self._segment_start(seg_start)
        if end - s < 4:
            return []
        plates = {}
        for i, r in enumerate(self.roles):
            if self._has_moments[i]:
                plates[r] = PlateForces(self._fz[i, s:end].copy(), self._mx[i, s:end].copy(), self._my[i, s:end].copy())
            else:
                plates[r] = PlateForces(self._fz[i, s:end].copy())
        try:
            res = _analyze_forces(plates, self.rate_hz, self.protocol, lead=self.lead,
                                  body_mass_kg=None if self.body_weight_n is None else self.body_weight_n / G_M_S2,
                                  params=self.params,
                                  level_n=self.quiet_force_n)
        except ValueError:
            return []
        t0 = (self._offset + s) / self.rate_hz
        reps = []
        for rep in res.reps:  # a segment with no rep in it (the step back up) gives none
            reps.append(RepResult(rep.lead, None if rep.t_onset_s is None else rep.t_onset_s + t0,
                                  None if rep.t_contact_s is None else rep.t_contact_s + t0,
                                  dict(rep.metrics), list(rep.flags)))
        return reps

    def finish(self) -> list[RepResult]:
        """End of the recording: analyse a rep still in progress (it is flagged as the batch would)."""
        if not self._weighed or self._st_i[SK.I_PHASE] != 2:
            return []
        reps = self._analyse_segment(int(self._st_i[SK.I_SEG_START]), self._len)
        self._st_i[SK.I_PHASE] = 1
        self.reps.extend(reps)
        return reps


# -- synthetic recordings (tests, benchmark) ---------------------------------------------

def synthetic_step_down(rate_hz: float = 1000.0, leads=("left", "right", "left"), body_mass_kg: float = 70.0,
                        noise_n: float = 1.5, seed: int = 1) -> dict[str, PlateForces]:
    """A multi-rep step-down recording built from a centre-of-mass trajectory.

    Each rep: 2 s quiet on the box, a 0.6 s lowering (a = −1 m/s²·sin), landing on
    the lead floor plate with a 0.4 s deceleration (arrested, a small overshoot, v back to 0), the
    load moving from box to floor over 0.15 s after contact, 2.5 s quiet on the
    floor, a 1 s step back up (load floor → box), then the next rep; 2 s quiet at
    the end.  Total force = m·(g + a); box COP sways mediolaterally during the
    lowering.  Gaussian noise of ``noise_n`` N on every plate.
    """
    dt = 1.0 / rate_hz
    m = body_mass_kg
    segs_a, segs_floor_share, segs_side, segs_cop = [], [], [], []

    def add(n, a, share, side, cop):
        segs_a.append(a)
        segs_floor_share.append(share)
        segs_side.append(np.full(n, side))
        segs_cop.append(cop)

    def quiet(seconds, share, side):
        n = int(round(seconds * rate_hz))
        add(n, np.zeros(n), np.full(n, share), side, np.zeros(n))

    side_code = {"left": 0, "right": 1}
    for lead in leads:
        s = side_code[lead]
        quiet(2.0, 0.0, s)
        n1 = int(round(0.6 * rate_hz))
        t1 = np.arange(n1) * dt
        add(n1, -1.0 * np.sin(np.pi * t1 / 0.6), np.zeros(n1), s, 0.012 * np.sin(2 * np.pi * t1 / 0.3))
        v_touch = 2.0 * 0.6 / np.pi  # descent speed at contact, m/s
        n2 = int(round(0.4 * rate_hz))
        t2 = np.arange(n2) * dt
        share = np.clip(t2 / 0.15, 0.0, 1.0)
        # braking: +20 % of the touchdown speed in 0.25 s (arrest), then back to v = 0 in 0.15 s
        brake = np.where(t2 < 0.25, 1.2 * v_touch * np.pi / 0.5 * np.sin(np.pi * t2 / 0.25),
                         -0.2 * v_touch * np.pi / 0.3 * np.sin(np.pi * (t2 - 0.25) / 0.15))
        add(n2, brake, share, s, np.zeros(n2))
        quiet(2.5, 1.0, s)
        n3 = int(round(1.0 * rate_hz))
        t3 = np.arange(n3) * dt
        add(n3, 0.8 * np.sin(2 * np.pi * t3 / 1.0), 1.0 - np.clip(t3 / 0.8, 0.0, 1.0), s, np.zeros(n3))
    quiet(2.0, 0.0, 0)
    a = np.concatenate(segs_a)
    share = np.concatenate(segs_floor_share)
    side = np.concatenate(segs_side)
    cop_x = np.concatenate(segs_cop)
    total = m * (G_M_S2 + a)
    rng = np.random.default_rng(seed)
    n = total.shape[0]
    floor = total * share
    box = total - floor
    fl = np.where(side == 0, floor, 0.0) + rng.normal(0.0, noise_n, n)
    fr = np.where(side == 1, floor, 0.0) + rng.normal(0.0, noise_n, n)
    box = box + rng.normal(0.0, noise_n, n)
    box_my = -box * cop_x  # COP x = -My/Fz (m)
    return {"box": PlateForces(box, np.zeros(n), box_my), "floor_left": PlateForces(fl), "floor_right": PlateForces(fr)}


def measure_streaming(block_ms: float = 10.0, rate_hz: float = 1000.0, reps: int = 6) -> dict:
    """Time ``StreamingAnalyzer.push`` per block on a synthetic multi-rep step-down.

    Returns
    -------
    dict
        ``{"block_ms", "rate_hz", "blocks", "p50_ms", "p99_ms", "max_ms", "reps"}``
        (processing time per block in milliseconds; the first rep's analysis,
        which includes numba compilation, is excluded by a warm-up run).
    """
    if not (block_ms > 0 and rate_hz > 0):
        raise ValueError("block_ms and rate_hz must be positive")
    leads = tuple("left" if i % 2 == 0 else "right" for i in range(reps))
    rec = synthetic_step_down(rate_hz, leads)
    n = rec["box"].fz_n.shape[0]
    step = max(1, int(round(block_ms * rate_hz / 1000.0)))

    def run(record_times: bool):
        sa = StreamingAnalyzer(rate_hz, tuple(rec), "step-down")
        times = []
        n_reps = 0
        for s in range(0, n, step):
            blk = {r: PlateForces(pf.fz_n[s:s + step], pf.mx_nm[s:s + step] if pf.mx_nm is not None else None,
                                  pf.my_nm[s:s + step] if pf.my_nm is not None else None) for r, pf in rec.items()}
            t = time.perf_counter_ns()
            n_reps += len(sa.push(blk))
            if record_times:
                times.append((time.perf_counter_ns() - t) / 1e6)
        return np.asarray(times), n_reps

    run(False)  # warm-up: numba compilation and first analysis
    times, n_reps = run(True)
    return {"block_ms": float(block_ms), "rate_hz": float(rate_hz), "blocks": int(times.size),
            "p50_ms": float(np.percentile(times, 50)), "p99_ms": float(np.percentile(times, 99)),
            "max_ms": float(times.max()), "reps": int(n_reps)}
