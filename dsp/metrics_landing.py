"""Landing-phase metrics shared by step-down and drop landing (metrics.md § Step-down, § Drop landing)."""

from __future__ import annotations

import math

import numpy as np

from steplab.constants import G_M_S2
from steplab.dsp import analysis as A
from steplab.dsp.events import integral_between, value_at
from steplab.dsp.results import RepResult

PLATE_LANDING_METRICS = ("landing_peak_force_bw", "time_to_peak_s", "loading_rate_bw_s",
                         "peak_loading_rate_bw_s", "impulse_100ms_bw_s")
# metrics.md § Drop landing: a --lead naming the plate struck more than this after the other
# plate is contradicted by the data (the rep keeps its metrics and is flagged)
LEAD_CONTRADICTION_S = 0.010

DROP_METRICS = tuple(f"{m}_{s}" for m in PLATE_LANDING_METRICS for s in ("left", "right")) + (
    "peak_deceleration_m_s2", "time_to_stabilization_s", "landing_phase_duration_s") + tuple(
    f"{m}_symmetry_index_pct" for m in PLATE_LANDING_METRICS)


def arrest_time(trial: A.Trial, t_contact_s: float, i_contact: int, flags: list[str]) -> float | None:
    """metrics.md § Step-down: t_arrest = first time after contact with v ≥ 0, else contact + timeout.

    Decision 0003: when the recording ends before the descent is arrested and before
    contact + arrest_timeout_s, the landing phase is cut: flag ``truncated``, return None.
    """
    p = trial.params
    v = trial.v
    timeout_n = trial.window_n(p.arrest_timeout_s)
    hi = min(trial.n, i_contact + timeout_n + 1)
    t_limit = t_contact_s + p.arrest_timeout_s
    if i_contact >= 1 and v[i_contact - 1] >= 0.0 and value_at(v, t_contact_s, trial.rate_hz) >= 0.0:
        return t_contact_s
    hit = np.flatnonzero(v[i_contact:hi] >= 0.0)
    if hit.size:
        i = i_contact + int(hit[0])
        a, b = float(v[i - 1]), float(v[i])
        t = (i - 1 + (0.0 - a) / (b - a)) / trial.rate_hz if b != a else i / trial.rate_hz
        t = max(t, t_contact_s)
        if t <= t_limit:
            return t
    if t_limit > (trial.n - 1) / trial.rate_hz + 1e-12:
        flags.append("truncated")
        return None
    flags.append("descent_not_arrested")
    return t_limit


def sample_span(t0_s: float, t1_s: float, rate_hz: float, n: int) -> tuple[int, int]:
    """Samples [i0, i1] lying inside [t0_s, t1_s] (at least the sample nearest t0)."""
    i0 = int(math.ceil(t0_s * rate_hz - 1e-9))
    i1 = int(math.floor(t1_s * rate_hz + 1e-9))
    i0 = min(max(i0, 0), n - 1)
    i1 = min(max(i1, i0), n - 1)
    return i0, i1


def plate_landing_metrics(trial: A.Trial, role: str, t_contact_s: float, t_arrest_s: float | None) -> dict:
    """metrics.md § Step-down (lead limb): peak, time to peak, rates and 100 ms impulse of one plate.

    ``t_arrest_s`` None (a landing phase cut by the end of the recording, decision 0003):
    only the 100 ms impulse (when the recording holds it); the peak and rates are None.
    """
    r = trial.rate_hz
    bw = trial.bw_n
    if t_arrest_s is None:
        m = dict.fromkeys(PLATE_LANDING_METRICS)
        if t_contact_s + 0.1 <= (trial.n - 1) / r + 1e-12:
            i0 = int(math.ceil(t_contact_s * r - 1e-9))
            fz_f = trial.filtered(role, i0 - 2, int(math.ceil((t_contact_s + 0.1) * r)) + 3)
            m["impulse_100ms_bw_s"] = integral_between(fz_f, t_contact_s, t_contact_s + 0.1, r) / bw
        return m
    i0, i1 = sample_span(t_contact_s, t_arrest_s, r, trial.n)
    # the filtered plate force over the landing phase and the 100 ms impulse window (+ neighbours)
    fz_f = trial.filtered(role, i0 - 2, max(i1, int(math.ceil((t_contact_s + 0.1) * r))) + 3)
    seg = fz_f[i0:i1 + 1]
    ip = i0 + int(np.argmax(seg))
    peak = float(fz_f[ip])
    t_peak = ip / r
    m = {}
    # metrics.md § Step-down: landing_peak_force_bw = max lead-plate Fz over the landing phase / BW
    m["landing_peak_force_bw"] = peak / bw
    # metrics.md § Step-down: time_to_peak_s = t_peak − t_contact
    ttp = t_peak - t_contact_s
    m["time_to_peak_s"] = ttp
    # metrics.md § Step-down: loading_rate_bw_s = (peak − Fz(t_contact)) / time_to_peak / BW
    f_c = value_at(fz_f, t_contact_s, r)
    m["loading_rate_bw_s"] = (peak - f_c) / ttp / bw if ttp > 0 else None
    # metrics.md § Step-down: peak_loading_rate_bw_s = max central-difference dFz/dt over [t_contact, t_peak] / BW
    j0 = max(i0, 1)
    j1 = min(ip, trial.n - 2)
    if j1 >= j0:
        d = (fz_f[j0 + 1:j1 + 2] - fz_f[j0 - 1:j1]) * (0.5 * r)
        m["peak_loading_rate_bw_s"] = float(d.max()) / bw
    else:
        m["peak_loading_rate_bw_s"] = None
    # metrics.md § Step-down: impulse_100ms_bw_s = ∫ Fz dt over [t_contact, t_contact + 0.1 s] / BW
    if t_contact_s + 0.1 <= (trial.n - 1) / r + 1e-12:
        m["impulse_100ms_bw_s"] = integral_between(fz_f, t_contact_s, t_contact_s + 0.1, r) / bw
    else:
        m["impulse_100ms_bw_s"] = None
    return m


def stabilization_time(trial: A.Trial, t_contact_s: float, hi: int, flags: list[str]) -> float | None:
    """metrics.md § Step-down: time_to_stabilization_s (threshold method) on the filtered F.

    First t ≥ t_contact from which |F − BW| ≤ band·BW for the next hold_s; the entry
    into the band is interpolated.  None and ``not_stabilized`` if [.., hi) ends first.
    """
    p = trial.params
    r = trial.rate_hz
    band = p.stabilization_band_bw * trial.bw_n
    hold = trial.window_n(p.stabilization_hold_s)
    i0 = int(math.ceil(t_contact_s * r - 1e-9))
    # search in growing chunks of the lazily filtered F: a fit found inside a chunk is the
    # first fit of the whole range (an earlier run that did not fit ended inside the chunk)
    step = max(3 * hold, trial.window_n(2.0), trial.window_n(p.arrest_timeout_s) + 2)
    end = min(hi, i0 + step)
    while True:
        dev = np.abs(trial.filtered("total", i0, end)[i0:end] - trial.level_n)
        m = dev.shape[0]
        bad = np.flatnonzero(dev > band)
        # candidate starts of in-band runs: the contact sample and each sample after an out-of-band one
        cands = np.concatenate(([0], bad + 1))
        next_bad = np.concatenate((bad, [m]))
        fits = (next_bad - cands >= hold + 1) & (cands + hold < m)
        hit = np.flatnonzero(fits)
        if hit.size or end >= hi:
            break
        end = min(hi, end + 2 * step)
    if hit.size:
        c = int(cands[hit[0]])
        if c == 0:
            return 0.0
        i = i0 + c
        # interpolate the entry into the band between samples i−1 (out) and i (in)
        a = float(dev[c - 1])
        b = float(dev[c])
        frac = (a - band) / (a - b) if a != b else 1.0
        t = (i - 1 + min(1.0, max(0.0, frac))) / r
        return max(0.0, t - t_contact_s)
    flags.append("not_stabilized")
    return None


def weigh_drop_landing(trial: A.Trial, landings: list[tuple[int, int, bool]], body_mass_kg: float | None,
                       flags: list[str]) -> bool:
    """metrics.md § Weighing for drop landings: the final quiet stance (the last quiet_window_s).

    Decision 0003: if the recording does not end in quiet stance (the subject steps off, or
    it stops during a landing), the quiet stance after the latest landing that has one is
    used instead (the quietest window within that landing's floor contact).  The first
    candidate whose σ is within the unsteady limit wins; else the first stance at all
    (flagged ``unsteady_weighing``).  This gives the measured quiet force level that every
    segmentation search uses even when the visit's body mass is given.
    """
    p = trial.params
    w = trial.window_n(p.quiet_window_s)
    regions = [(max(0, trial.n - w), trial.n)] + [(on, off) for on, off, _ in reversed(landings)]
    first_ok = None
    for lo, hi in regions:
        s, mean, sd, ok = A.quiet_window(trial, lo, hi, body_mass_kg)
        if not ok:
            continue
        bw = body_mass_kg * G_M_S2 if body_mass_kg is not None else mean
        if sd <= max(p.unsteady_sd_n, p.unsteady_bw_fraction * bw):
            return A.set_weighing(trial, s, mean, sd, True, body_mass_kg, flags)
        if first_ok is None:
            first_ok = (s, mean, sd)
    if first_ok is not None:
        return A.set_weighing(trial, *first_ok, True, body_mass_kg, flags)
    return A.set_weighing(trial, -1, math.nan, math.nan, False, body_mass_kg, flags)


def analyze_drop_landing(trial: A.Trial, *, lead, body_mass_kg, flags) -> list[RepResult]:
    """metrics.md § Drop landing: one rep per landing, v integrated backwards from the quiet stance after it."""
    p = trial.params
    r = trial.rate_hz
    floors: list[str] = [f for f in ("floor_left", "floor_right") if f in trial.fz]
    landings = _landings_after_flight(trial, [run for run in A.floor_contact_events(trial, floors) if run[0] > 0])
    ok = weigh_drop_landing(trial, landings, body_mass_kg, flags)
    reps = []
    for k, (on, off, bounced) in enumerate(landings):
        rep_flags = ["bounce"] if bounced else []
        lo = landings[k - 1][1] if k > 0 else 0
        hi = landings[k + 1][0] if k + 1 < len(landings) else trial.n
        contacts = {f: c[2] for f, c in A.plate_contacts_in(trial, floors, on, off).items()}
        if not contacts:
            continue
        first = min(contacts, key=lambda f: contacts[f])
        rep_lead = lead if lead is not None else first.split("_", 1)[1]
        t_c = contacts[first]
        # metrics.md § Drop landing: per-plate metrics do not depend on a lead; an override only
        # names it, and is flagged where the data contradict it
        if lead is not None:
            named = f"floor_{lead}"
            if named not in contacts:
                rep_flags.append("lead_plate_not_contacted")
            elif contacts[named] - t_c > LEAD_CONTRADICTION_S:
                rep_flags.append("lead_override_contradicted")
        i_c = int(math.ceil(t_c * r - 1e-9))
        # the quiet stance after the landing: after a drop jump it follows the next landing
        q = _quiet_after(trial, i_c, trial.n) if ok else None
        if q is None:
            rep_flags.append("no_quiet_stance")
            if t_c + p.arrest_timeout_s > (trial.n - 1) / r + 1e-12:
                rep_flags.append("truncated")  # decision 0003: the recording ends within the landing
            reps.append(RepResult(rep_lead, None, t_c, dict.fromkeys(DROP_METRICS), rep_flags))
            continue
        qs, qe = q
        # metrics.md § kinematics: drop landings integrate backwards from the quiet stance after them (v = 0)
        A.K.integrate_velocity_backward(trial.total, lo, qe, trial.level_n, trial.mass_kg, trial.dt, trial.v)
        j = np.flatnonzero(np.abs(trial.v[lo:i_c]) <= p.onset_speed_m_s)
        t_on = (lo + int(j[-1])) / r if j.size else None
        t_arr = arrest_time(trial, t_c, i_c, rep_flags)
        m = dict.fromkeys(DROP_METRICS)
        for f in floors:
            side = f.split("_", 1)[1]
            if f in contacts:
                pm = plate_landing_metrics(trial, f, contacts[f], None if t_arr is None else max(t_arr, contacts[f]))
                for name, val in pm.items():
                    m[f"{name}_{side}"] = val
        m["time_to_stabilization_s"] = stabilization_time(trial, t_c, hi, rep_flags)
        if t_arr is not None:
            i0, i1 = sample_span(t_c, t_arr, r, trial.n)
            # metrics.md § Step-down: peak_deceleration_m_s2 = (max F over the landing phase − BW)/m
            m["peak_deceleration_m_s2"] = (float(trial.filtered("total", i0, i1 + 1)[i0:i1 + 1].max())
                                           - trial.bw_n) / trial.mass_kg
            m["landing_phase_duration_s"] = t_arr - t_c
        from steplab.dsp.symmetry import symmetry_index_pct
        for name in PLATE_LANDING_METRICS:
            # metrics.md § Drop landing: within-trial left/right symmetry (Robinson 1987)
            m[f"{name}_symmetry_index_pct"] = symmetry_index_pct(m[f"{name}_left"], m[f"{name}_right"])
        reps.append(RepResult(rep_lead, t_on, t_c, m, rep_flags))
    return reps


def _quiet_after(trial: A.Trial, i_c: int, hi: int) -> tuple[int, int] | None:
    """The quiet stance after a landing: first in-band run ≥ MIN_QUIET_FRACTION window in [i_c, hi)."""
    p = trial.params
    w = trial.window_n(p.quiet_window_s)
    min_len = max(2, int(round(A.MIN_QUIET_FRACTION * w)))
    starts = np.empty(A._EVENT_CAP, dtype=np.int64)
    ends = np.empty(A._EVENT_CAP, dtype=np.int64)
    k = A.K.band_runs(trial.total, i_c, hi, trial.level_n, trial.thr_n, min_len, starts, ends)
    if k == 0:
        return None
    rs, re = int(starts[0]), int(ends[0])
    ww = min(w, re - rs)
    s, _, _ = A.K.min_sd_window(trial.total, rs, min(re, rs + trial.window_n(p.quiet_search_s)), ww)
    return int(s), int(s + ww)


def _merge_bounces(trial: A.Trial, runs: list[tuple[int, int]]) -> list[tuple[int, int, bool]]:
    """Join floor-contact runs with no quiet stance between them (a bounce) into one landing."""
    p = trial.params
    w = trial.window_n(p.quiet_window_s)
    min_len = max(2, int(round(A.MIN_QUIET_FRACTION * w)))
    out: list[list] = []
    starts = np.empty(1, dtype=np.int64)
    ends = np.empty(1, dtype=np.int64)
    for on, off in runs:
        if out:
            prev_on = out[-1][0]
            k = A.K.band_runs(trial.total, prev_on, on, trial.level_n, trial.thr_n, min_len, starts, ends)
            if k == 0:
                out[-1][1] = off
                out[-1][2] = True
                continue
        out.append([on, off, False])
    return [(a, b, c) for a, b, c in out]


#: decision 0003: a landing is a floor contact after a flight of at least this long (both floor
#: plates below contact_threshold_n); shorter gaps are a bounce within the same landing.
MIN_FLIGHT_S = 0.100


def _landings_after_flight(trial: A.Trial, runs: list[tuple[int, int]]) -> list[tuple[int, int, bool]]:
    """Drop landing: each floor-contact event after a flight ≥ MIN_FLIGHT_S is a landing (one rep);
    events after a shorter airborne gap join the previous landing, flagged ``bounce``."""
    min_gap = max(1, int(math.ceil(MIN_FLIGHT_S * trial.rate_hz - 1e-9)))
    out: list[list] = []
    for on, off in runs:
        if out and on - out[-1][1] < min_gap:
            out[-1][1] = off
            out[-1][2] = True
            continue
        out.append([on, off, False])
    return [(a, b, c) for a, b, c in out]
