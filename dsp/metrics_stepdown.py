"""Step-down (walk-off) and forward step-down (tap) metrics (metrics.md § Step-down, § Forward step-down)."""

from __future__ import annotations

from dataclasses import dataclass

from steplab.dsp import analysis as A
from steplab.dsp.events import crossing_time_s, value_at
from steplab.dsp.metrics_balance import filtered_cop, range_and_speed
from steplab.dsp.metrics_landing import arrest_time, plate_landing_metrics, sample_span, stabilization_time
from steplab.dsp.results import RepResult

STEP_DOWN_METRICS = (
    "lowering_duration_s", "peak_descent_speed_m_s", "touchdown_speed_m_s", "trail_support_at_contact_pct",
    "landing_peak_force_bw", "time_to_peak_s", "loading_rate_bw_s", "peak_loading_rate_bw_s",
    "impulse_100ms_bw_s", "peak_deceleration_m_s2", "landing_phase_duration_s", "time_to_stabilization_s",
    "box_cop_ml_range_mm", "box_cop_ml_velocity_mm_s", "integration_drift_m_s",
)
FORWARD_METRICS = ("lowering_duration_s", "raising_duration_s", "tap_force_pct_bw", "peak_descent_speed_m_s",
                   "box_cop_ml_range_mm")


def _floors(trial: A.Trial) -> list[str]:
    return [f for f in ("floor_left", "floor_right") if f in trial.fz]


def _reps_by_floor_contact(trial: A.Trial, floors: list[str]) -> list[tuple[int, int, bool]]:
    """Floor-contact events (per-plate contacts, united) after the weighing window; bounces merged."""
    from steplab.dsp.metrics_landing import _merge_bounces

    lo = trial.quiet_end or 0
    runs = [run for run in A.floor_contact_events(trial, floors) if run[0] > 0 and run[0] >= lo]
    return _merge_bounces(trial, runs)


def _min_v_between(trial: A.Trial, t0: float, t1: float) -> float:
    """min v over [t0, t1] (samples inside plus the interpolated end points)."""
    r = trial.rate_hz
    i0, i1 = sample_span(t0, t1, r, trial.n)
    vals = [value_at(trial.v, t0, r), value_at(trial.v, t1, r)]
    if i1 >= i0:
        vals.append(float(trial.v[i0:i1 + 1].min()))
    return min(vals)


def lead_contact(trial: A.Trial, floors: list[str], on: int, off: int, lead: str | None):
    """The lead floor plate's contact within one floor-contact event (decision 0003).

    Returns ``(role, (start, end, t_contact_s) or None, problem flag or None)``.
    Detected lead: the plate whose own contact starts first (interpolated time).
    With an override, contact is searched on the named limb's plate only; if that
    plate has no contact in the event the flag is ``lead_plate_not_contacted``; if the
    other floor plate was already in contact when the named plate was struck (the other
    limb landed first), the flag is ``lead_override_contradicted``.
    """
    contacts = A.plate_contacts_in(trial, floors, on, off)
    if lead is None:
        if not contacts:
            return None, None, "no_contact"
        role = min(contacts, key=lambda f: (contacts[f][2], contacts[f][0]))
        return role, contacts[role], None
    role = f"floor_{lead}"
    c = contacts.get(role)
    if c is None:
        return role, None, "lead_plate_not_contacted"
    for other, oc in contacts.items():
        if other != role and oc[2] < c[2] and oc[1] > c[0]:
            return role, c, "lead_override_contradicted"
    return role, c, None


def _rep_quiet(trial: A.Trial, k: int, region_lo: int, i_c: int):
    """The quiet stance just before the rep (metrics.md § kinematics).

    For the first rep that is the weighing window, unless the subject moved in
    between (a recording that starts on the floor plates: the step back up onto
    the box is not a rep, and the rep starts from the quiet stance after it).
    """
    q = A.rep_quiet_window(trial, region_lo, i_c)
    if k == 0 and trial.quiet_end is not None and trial.quiet_end <= i_c:
        if q is None or A.K.first_outside(trial.total, trial.quiet_end, q[0], trial.level_n, trial.thr_n) < 0:
            return trial.quiet_start, trial.quiet_end
    return q


@dataclass
class _RepStart:
    """What step-down and forward-step-down reps share up to onset (k-th floor contact)."""

    flags: list[str]
    hi: int  # end of the rep's region (next contact or the end of the trial)
    role: str  # the lead (or tapping) floor plate
    crun: tuple  # its contact run: (i_on, i_off, t_on_s)
    lead: str | None
    metrics: dict
    t_onset_s: float | None


def _reps_from_the_box(trial: A.Trial, lead, metric_names, reps: list[RepResult]):
    """Segment floor contacts, find each rep's lead, quiet stance, velocity and onset.

    Reps that stop early (a lead problem, no quiet stance) are appended to
    ``reps`` with their flag; the others are yielded for their own metrics.
    """
    floors = _floors(trial)
    contacts = _reps_by_floor_contact(trial, floors)
    for k, (on, off, bounced) in enumerate(contacts):
        rep_flags = ["bounce"] if bounced else []
        region_lo = contacts[k - 1][1] if k > 0 else (trial.quiet_start if trial.quiet_start is not None else 0)
        hi = contacts[k + 1][0] if k + 1 < len(contacts) else trial.n
        role, crun, problem = lead_contact(trial, floors, on, off, lead)
        rep_lead = role.split("_", 1)[1] if role else lead
        m = dict.fromkeys(metric_names)
        if problem is not None:
            reps.append(RepResult(rep_lead, None, None if crun is None else crun[2], m, rep_flags + [problem]))
            continue
        q = _rep_quiet(trial, k, region_lo, crun[0])
        if q is None:
            reps.append(RepResult(rep_lead, None, crun[2], m, rep_flags + ["no_quiet_stance"]))
            continue
        qs, qe = q
        # metrics.md § kinematics: v = ∫ (F − F_quiet,rep)/m dt from the quiet stance before the rep
        # (v = 0 there); the baseline is the mean force of that rep's own quiet stance, so slow cell
        # drift between reps does not move its onset
        A.K.integrate_velocity(trial.total, qs, hi, A.quiet_level_n(trial, qs, qe), trial.mass_kg, trial.dt, trial.v)
        # metrics.md § Movement onset
        t_on, _ = A.onset_time(trial, qe, crun[0] + 1, qs)
        yield _RepStart(rep_flags, hi, role, crun, rep_lead, m, t_on)


def analyze_step_down(trial: A.Trial, *, lead, body_mass_kg, flags) -> list[RepResult]:
    """metrics.md § Step-down: one rep per step down onto a floor plate (step-ups are not reps)."""
    p = trial.params
    r = trial.rate_hz
    if not A.weigh_standing_start(trial, body_mass_kg, flags):
        return A.no_reps(flags)
    reps: list[RepResult] = []
    for rep in _reps_from_the_box(trial, lead, STEP_DOWN_METRICS, reps):
        m, rep_flags, t_on = rep.metrics, rep.flags, rep.t_onset_s
        i_c, t_c = rep.crun[0], rep.crun[2]
        v_c = value_at(trial.v, t_c, r)
        if t_on is not None:
            # metrics.md § Step-down: lowering_duration_s = t_contact − t_onset
            m["lowering_duration_s"] = t_c - t_on
            # metrics.md § Step-down: peak_descent_speed_m_s = −min v over [t_onset, t_contact]
            m["peak_descent_speed_m_s"] = -_min_v_between(trial, t_on, t_c)
            # metrics.md § Step-down: box_cop_ml_range_mm, box_cop_ml_velocity_mm_s during lowering
            i0, i1 = sample_span(t_on, t_c, r, trial.n)
            x, _ = filtered_cop(trial, "box", i0, i1 + 1)
            m["box_cop_ml_range_mm"], m["box_cop_ml_velocity_mm_s"] = range_and_speed(x, r)
        # metrics.md § Step-down: touchdown_speed_m_s = −v(t_contact)
        m["touchdown_speed_m_s"] = -v_c
        # metrics.md § Step-down: trail_support_at_contact_pct = box Fz(t_contact) / BW × 100
        m["trail_support_at_contact_pct"] = value_at(trial.filtered("box", i_c - 2, i_c + 2), t_c, r) / trial.bw_n * 100.0
        # metrics.md § Step-down: landing phase [t_contact, t_arrest]
        t_arr = arrest_time(trial, t_c, i_c, rep_flags)
        m.update(plate_landing_metrics(trial, rep.role, t_c, t_arr))
        # metrics.md § Step-down: time_to_stabilization_s (threshold method)
        m["time_to_stabilization_s"] = stabilization_time(trial, t_c, rep.hi, rep_flags)
        if t_arr is not None:
            # decision 0003: a landing phase cut by the end of the recording (t_arr None,
            # flagged truncated) reports none of the metrics that need the whole phase
            m["landing_phase_duration_s"] = t_arr - t_c
            i0, i1 = sample_span(t_c, t_arr, r, trial.n)
            # metrics.md § Step-down: peak_deceleration_m_s2 = (max F over the landing phase − BW) / m
            m["peak_deceleration_m_s2"] = (float(trial.filtered("total", i0, i1 + 1)[i0:i1 + 1].max())
                                           - trial.bw_n) / trial.mass_kg
        # metrics.md § kinematics: integration_drift_m_s = mean v over the last 1 s of the closing quiet stance
        drift = A.drift_after(trial, i_c, rep.hi)
        m["integration_drift_m_s"] = drift
        if drift is not None and abs(drift) > p.drift_flag_m_s:
            rep_flags.append("integration_drift")
        reps.append(RepResult(rep.lead, t_on, t_c, m, rep_flags))
    if not reps:
        flags.append("no_reps")
    return reps


def analyze_forward_step_down(trial: A.Trial, *, lead, body_mass_kg, flags) -> list[RepResult]:
    """metrics.md § Forward step-down: one rep per heel tap on a floor plate; lead = the tapping limb."""
    p = trial.params
    r = trial.rate_hz
    if not A.weigh_standing_start(trial, body_mass_kg, flags):
        return A.no_reps(flags)
    reps: list[RepResult] = []
    for rep in _reps_from_the_box(trial, lead, FORWARD_METRICS, reps):
        m, t_on, role = rep.metrics, rep.t_onset_s, rep.role
        # metrics.md § Forward step-down: tap = floor Fz ≥ contact_threshold_n
        i_c, i_off, t_tap = rep.crun
        t_end = crossing_time_s(trial.fz[role], i_off, p.contact_threshold_n, r) if i_off < trial.n else (trial.n - 1) / r
        # metrics.md § Forward step-down: tap_force_pct_bw = max floor Fz during the tap / BW × 100
        m["tap_force_pct_bw"] = float(trial.filtered(role, i_c, i_off)[i_c:i_off].max()) / trial.bw_n * 100.0
        if t_on is not None:
            # metrics.md § Forward step-down: lowering_duration_s (onset → tap)
            m["lowering_duration_s"] = t_tap - t_on
            m["peak_descent_speed_m_s"] = -_min_v_between(trial, t_on, t_tap)
            i0, i1 = sample_span(t_on, t_tap, r, trial.n)
            x, _ = filtered_cop(trial, "box", i0, i1 + 1)
            m["box_cop_ml_range_mm"], _ = range_and_speed(x, r)
        # metrics.md § Forward step-down: raising_duration_s (tap end → back to quiet).  Decision 0003:
        # back to quiet = where |F − BW| re-enters the onset band for good (the first in-band run of
        # ≥ quiet_window_s after the tap), not where |v| ≤ onset speed: after seconds of integration
        # the drift of v is of the order of the onset speed itself.
        if i_off < trial.n:
            t_quiet = A.back_to_quiet_s(trial, i_off, rep.hi)
            if t_quiet is not None:
                m["raising_duration_s"] = max(0.0, t_quiet - t_end)
        reps.append(RepResult(rep.lead, t_on, t_tap, m, rep.flags))
    if not reps:
        flags.append("no_reps")
    return reps
