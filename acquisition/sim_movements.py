"""Movement scenarios of the simulated step box, from centre-of-mass physics.

Every scenario is a stream of *episodes* (a rep with its quiet stance, or a
non-rep transition such as the step back up onto the box).  An episode is
simulated on a fixed internal grid (``DT_S`` = 0.1 ms) by integrating the
vertical centre-of-mass motion m·z'' = ΣF − m·g, where the forces come from

* a limb acting as a controller (PD tracking of a reference height, gains from the
  limb's eccentric control) — stance, lowering on the box, squats, step-ups;
* a landing leg as a unilateral spring-damper (the limb's landing stiffness) whose
  set-point yields after touchdown (knee flexion) — step-down and drop landings;
* a small band-limited "tremor" force (physiological force fluctuation).

The output is per foot (left, right): vertical force (N), position in the room
frame (mm) and the surface it stands on (air, box top, floor), plus the COM height
and velocity and the true rep events.  ``sim_rig`` maps feet to the rig's plates.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field, replace

import numpy as np
from scipy.signal import butter, sosfilt

from ._sim_kernels import integrate_com
from .rig import Rig
from .sim_subject import G_M_S2, LIMBS, Subject, other_limb

DT_S = 1e-4  # internal integration step (s)
SURF_AIR, SURF_BOX, SURF_FLOOR = 0, 1, 2
FOOT_INDEX = {"left": 0, "right": 1}
SCENARIOS = ("step-down", "forward-step-down", "drop-landing", "squat", "balance", "quiet", "empty", "session")
CONTACT_THRESHOLD_N = 20.0
ONSET_SPEED_M_S = 0.01


@dataclass
class RepEvent:
    """True events of one rep (times in seconds of model time).

    ``lead``: the limb that steps down / taps / lands first (None for bilateral
    movements and balance); ``stance``: the limb supporting on the box or plate
    (step-down trail limb, tap stance limb, balance stance limb).
    ``t_onset_s``: last time before contact with |v| ≤ 0.01 m/s (the metric's onset
    applied to the true COM velocity).  ``t_contact_s``: first time the landing
    plate's force is ≥ 20 N for ≥ 20 ms.  ``touchdown_speed_m_s``: −v there.
    ``landing_peak_n``: max landing-plate force (N) from contact to the arrest of the
    descent (first v ≥ 0).  Further values (N, s, m/s, mm, %) are in ``values``.
    """

    protocol: str
    lead: str | None
    stance: str | None
    t_start_s: float
    t_onset_s: float | None
    t_contact_s: float | None
    t_end_s: float
    touchdown_speed_m_s: float | None = None
    landing_peak_n: float | None = None
    t_peak_s: float | None = None
    values: dict[str, float] = field(default_factory=dict)

    def shifted(self, dt_s: float) -> RepEvent:
        """The same event with every time moved by ``dt_s``."""
        def sh(t):
            return None if t is None else t + dt_s
        vals = {k: (v + dt_s if k.startswith("t_") else v) for k, v in self.values.items()}
        return replace(self, t_start_s=self.t_start_s + dt_s, t_onset_s=sh(self.t_onset_s),
                       t_contact_s=sh(self.t_contact_s), t_end_s=self.t_end_s + dt_s,
                       t_peak_s=sh(self.t_peak_s), values=vals)


@dataclass
class Episode:
    """One simulated stretch on the internal grid (DT_S); times in events are relative to its start."""

    z_m: np.ndarray
    v_m_s: np.ndarray
    foot_f_n: np.ndarray  # (2, n) left, right
    foot_x_mm: np.ndarray  # (2, n) room frame
    foot_y_mm: np.ndarray
    foot_surf: np.ndarray  # (2, n) int8: SURF_AIR / SURF_BOX / SURF_FLOOR
    events: list[RepEvent]
    name: str

    @property
    def n(self) -> int:
        return int(self.z_m.shape[0])


@dataclass(frozen=True)
class Stage:
    """Where feet stand (room frame, mm) and the box height (m), derived from a rig."""

    box_height_m: float
    box_foot_xy_mm: tuple[tuple[float, float], tuple[float, float]]
    floor_foot_xy_mm: tuple[tuple[float, float], tuple[float, float]]

    @classmethod
    def from_rig(cls, rig: Rig) -> Stage:
        box_h = rig.box_height_mm
        box_plates = [p for p in rig.plates if abs(p.centre_mm[2] - box_h) < 1.0 and box_h > 0]
        if box_plates:
            x0 = min(p.centre_mm[0] - p.width_mm / 2 for p in box_plates)
            x1 = max(p.centre_mm[0] + p.width_mm / 2 for p in box_plates)
            y0 = min(p.centre_mm[1] - p.length_mm / 2 for p in box_plates)
            y1 = max(p.centre_mm[1] + p.length_mm / 2 for p in box_plates)
            bx, by = (x0 + x1) / 2, (y0 + y1) / 2
            half = min(100.0, (x1 - x0) / 4)
        else:
            bx, by, half = 0.0, -200.0, 100.0
        floor = {}
        for side, sign in (("left", -1.0), ("right", 1.0)):
            try:
                p = rig.plate(f"floor_{side}")
                floor[side] = (p.centre_mm[0], p.centre_mm[1])
            except ValueError:
                floor[side] = (sign * 125.0, 260.0)
        return cls(box_height_m=box_h / 1000.0,
                   box_foot_xy_mm=((bx - half, by + 20.0), (bx + half, by + 20.0)),
                   floor_foot_xy_mm=(floor["left"], floor["right"]))


def quintic(n: int, p0: float, v0: float, a0: float, p1: float, v1: float, a1: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Position, velocity, acceleration of the quintic joining two states over n·DT_S seconds."""
    T = max(n, 1) * DT_S
    m = np.array([[T**3, T**4, T**5], [3 * T**2, 4 * T**3, 5 * T**4], [6 * T, 12 * T**2, 20 * T**3]])
    rhs = np.array([p1 - (p0 + v0 * T + 0.5 * a0 * T * T), v1 - (v0 + a0 * T), a1 - a0])
    c3, c4, c5 = np.linalg.solve(m, rhs)
    t = np.arange(n) * DT_S
    p = p0 + v0 * t + 0.5 * a0 * t**2 + c3 * t**3 + c4 * t**4 + c5 * t**5
    v = v0 + a0 * t + 3 * c3 * t**2 + 4 * c4 * t**3 + 5 * c5 * t**4
    a = a0 + 6 * c3 * t + 12 * c4 * t**2 + 20 * c5 * t**3
    return p, v, a


def smoothstep(n: int, y0: float, y1: float) -> np.ndarray:
    """n samples rising smoothly (cosine) from y0 to y1."""
    if n <= 1:
        return np.full(max(n, 0), float(y1))
    s = 0.5 - 0.5 * np.cos(np.pi * np.arange(n) / (n - 1))
    return y0 + (y1 - y0) * s


@functools.lru_cache(maxsize=16)
def _lowpass(cutoff_hz: float) -> tuple[np.ndarray, float]:
    sos = butter(2, cutoff_hz, fs=1.0 / DT_S, output="sos")
    imp = np.zeros(int(40.0 / cutoff_hz / DT_S))
    imp[0] = 1.0
    gain = float(np.sqrt(np.sum(sosfilt(sos, imp) ** 2)))
    return sos, gain


def _ns(seconds: float) -> int:
    return max(1, int(round(seconds / DT_S)))


@dataclass
class _Run:
    z: np.ndarray
    v: np.ndarray
    pd: np.ndarray
    spr: np.ndarray
    n: int


class MovementLibrary:
    """Builds episodes for one subject on one stage; holds the COM state between them."""

    def __init__(self, stage: Stage, subject: Subject, seed: int = 0, balance_duration_s: float = 10.0):
        self.stage = stage
        self.subject = subject
        self.rng = np.random.default_rng([int(seed), 0x5AB])
        self.m = subject.body_mass_kg
        self.mg = subject.body_weight_n
        self.z_floor = subject.standing_com_height_m
        self.z_box = self.z_floor + stage.box_height_m
        self.z = self.z_box
        self.v = 0.0
        self.balance_duration_s = float(balance_duration_s)
        self.limbs = {limb: subject.limb_params(limb) for limb in LIMBS}
        self._segs: list[dict] = []

    # -- random helpers ----------------------------------------------------------------
    def var(self) -> float:
        """A per-rep variability factor 1 + cv·N(0,1) (clipped at ±2.5 SD)."""
        return 1.0 + self.subject.rep_variability * float(np.clip(self.rng.standard_normal(), -2.5, 2.5))

    def tremor(self, n: int, sd_n: float, cutoff_hz: float = 4.0) -> np.ndarray:
        """Band-limited force fluctuation (N), tapered to zero at both ends."""
        if sd_n <= 0 or n < 4:
            return np.zeros(n)
        sos, gain = _lowpass(cutoff_hz)
        x = sosfilt(sos, self.rng.standard_normal(n)) * (sd_n / gain)
        k = min(n // 2, _ns(0.05))
        taper = np.ones(n)
        taper[:k] = smoothstep(k, 0.0, 1.0)
        taper[n - k:] = smoothstep(k, 1.0, 0.0)
        return x * taper

    # -- physics ----------------------------------------------------------------------------
    def run(self, n: int, *, pd=None, ext=None, springs=(), tremor_sd_n: float = 0.0, stop_below_z: float = -np.inf) -> _Run:
        """Integrate n steps from the current COM state; ``pd`` = (w, z_ref, v_ref, a_ref, kp, kd)."""
        zeros = np.zeros(n)
        if pd is None:
            w, zr, vr, ar, kp, kd = zeros, zeros, zeros, zeros, 0.0, 0.0
        else:
            w, zr, vr, ar, kp, kd = pd
            w = np.broadcast_to(np.asarray(w, dtype=np.float64), (n,)).copy()
        ext_n = zeros if ext is None else np.ascontiguousarray(ext, dtype=np.float64)
        n_s = len(springs)
        spr_z0 = np.zeros((max(n_s, 1), n))
        spr_k = np.zeros(max(n_s, 1))
        spr_c = np.zeros(max(n_s, 1))
        for s, (z0, k, c) in enumerate(springs):
            spr_z0[s] = z0
            spr_k[s] = k
            spr_c[s] = c
        if n_s == 0:
            spr_z0[:] = -np.inf
        out_z = np.zeros(n + 1)
        out_v = np.zeros(n + 1)
        out_pd = np.zeros(n)
        out_spr = np.zeros((max(n_s, 1), n))
        tremor = self.tremor(n, tremor_sd_n)
        m = integrate_com(self.z, self.v, self.m, G_M_S2, DT_S, w, np.ascontiguousarray(zr, dtype=np.float64),
                          np.ascontiguousarray(vr, dtype=np.float64), np.ascontiguousarray(ar, dtype=np.float64),
                          float(kp), float(kd), ext_n, tremor, spr_z0, spr_k, spr_c, float(stop_below_z),
                          out_z, out_v, out_pd, out_spr)
        if m == n:  # state after the last step
            f = out_pd[n - 1] + ext_n[n - 1] + out_spr[:, n - 1].sum()
            v_next = out_v[n - 1] + (f / self.m - G_M_S2) * DT_S
            out_v[n] = v_next
            out_z[n] = out_z[n - 1] + v_next * DT_S
        self.z, self.v = float(out_z[m]), float(out_v[m])
        return _Run(out_z[:m], out_v[:m], out_pd[:m], out_spr[:n_s, :m], m)

    def pd_gains(self, freq_hz: float, zeta: float) -> tuple[float, float]:
        w = 2.0 * np.pi * freq_hz
        return self.m * w * w, 2.0 * zeta * self.m * w

    def hold_pd(self, n: int, z_level: float, freq_hz: float = 1.2, zeta: float = 0.8):
        kp, kd = self.pd_gains(freq_hz, zeta)
        zeros = np.zeros(n)
        return (1.0, np.full(n, z_level), zeros, zeros, kp, kd)

    # -- episode assembly -----------------------------------------------------------------------
    def seg(self, z, v, f_left, f_right, surf_left, surf_right, *, ml=(2.0, 2.0), ap=(3.0, 3.0),
            dx=(0.0, 0.0), dy=(0.0, 0.0)) -> None:
        n = len(z)
        self._segs.append(dict(
            z=np.asarray(z, dtype=np.float64), v=np.asarray(v, dtype=np.float64),
            f=np.stack([np.broadcast_to(f_left, (n,)), np.broadcast_to(f_right, (n,))]).astype(np.float64),
            surf=np.stack([np.broadcast_to(surf_left, (n,)), np.broadcast_to(surf_right, (n,))]).astype(np.int8),
            ml=np.stack([np.broadcast_to(ml[0], (n,)), np.broadcast_to(ml[1], (n,))]).astype(np.float64),
            ap=np.stack([np.broadcast_to(ap[0], (n,)), np.broadcast_to(ap[1], (n,))]).astype(np.float64),
            dx=np.stack([np.broadcast_to(dx[0], (n,)), np.broadcast_to(dx[1], (n,))]).astype(np.float64),
            dy=np.stack([np.broadcast_to(dy[0], (n,)), np.broadcast_to(dy[1], (n,))]).astype(np.float64)))

    def finish(self, name: str, events: list[RepEvent]) -> Episode:
        segs, self._segs = self._segs, []
        z = np.concatenate([s["z"] for s in segs])
        v = np.concatenate([s["v"] for s in segs])
        f = np.concatenate([s["f"] for s in segs], axis=1)
        surf = np.concatenate([s["surf"] for s in segs], axis=1)
        ml = np.concatenate([s["ml"] for s in segs], axis=1)
        ap = np.concatenate([s["ap"] for s in segs], axis=1)
        dx = np.concatenate([s["dx"] for s in segs], axis=1)
        dy = np.concatenate([s["dy"] for s in segs], axis=1)
        n = z.shape[0]
        x = np.zeros((2, n))
        y = np.zeros((2, n))
        sos, gain = _lowpass(0.7)
        k = min(n // 2, _ns(0.3))
        taper = np.ones(n)
        if k > 1:
            taper[:k] = smoothstep(k, 0.0, 1.0)
            taper[n - k:] = smoothstep(k, 1.0, 0.0)
        for foot in (0, 1):
            for code, xy in ((SURF_BOX, self.stage.box_foot_xy_mm[foot]), (SURF_FLOOR, self.stage.floor_foot_xy_mm[foot])):
                on = surf[foot] == code
                x[foot, on] = xy[0]
                y[foot, on] = xy[1]
            sway_ml = sosfilt(sos, self.rng.standard_normal(n)) / gain * taper
            sway_ap = sosfilt(sos, self.rng.standard_normal(n)) / gain * taper
            x[foot] += dx[foot] + ml[foot] * sway_ml
            y[foot] += dy[foot] + ap[foot] * sway_ap
        f = np.where(f > 0.0, f, 0.0)
        for ev in events:
            self._finish_event(ev, z, v, f, x, surf)
        return Episode(z, v, f, x, y, surf, events, name)

    def _finish_event(self, ev: RepEvent, z, v, f, x, surf) -> None:
        """Values that need the finished arrays (COP ranges after sway is added)."""
        if (ev.protocol in ("step-down", "forward-step-down") and ev.t_onset_s is not None and ev.t_contact_s is not None
                and ev.stance is not None):
            i0, i1 = int(round(ev.t_onset_s / DT_S)), int(round(ev.t_contact_s / DT_S))
            foot = FOOT_INDEX[ev.stance]
            xs = x[foot, i0:i1 + 1]
            ev.values["box_cop_ml_range_mm"] = float(xs.max() - xs.min()) if xs.size else 0.0
        if ev.protocol == "balance" and ev.stance is not None:
            i0, i1 = int(round(ev.values["t_single_start_s"] / DT_S)), int(round(ev.values["t_single_end_s"] / DT_S))
            foot = FOOT_INDEX[ev.stance]
            xs = x[foot, i0:i1]
            ev.values["cop_ml_range_mm"] = float(xs.max() - xs.min())
            ev.values["cop_ml_sd_mm"] = float(xs.std())

    # -- phases -----------------------------------------------------------------------------------
    def quiet(self, seconds: float, on: str, left_share: float = 0.5) -> int:
        """Bilateral quiet stance on 'box' or 'floor'; returns the number of samples."""
        n = _ns(seconds)
        level = self.z_box if on == "box" else self.z_floor
        r = self.run(n, pd=self.hold_pd(n, level), tremor_sd_n=0.004 * self.mg)
        code = SURF_BOX if on == "box" else SURF_FLOOR
        total = r.pd
        self.seg(r.z, r.v, total * left_share, total * (1 - left_share), code, code)
        return n

    def shift(self, seconds: float, on: str, foot_from: str, share_from: float, share_to: float, *, air_after: bool) -> int:
        """Move the share of ``foot_from`` between two values (lifting or loading a foot) while holding height."""
        n = _ns(seconds)
        level = self.z_box if on == "box" else self.z_floor
        r = self.run(n, pd=self.hold_pd(n, level, 1.5), tremor_sd_n=0.004 * self.mg)
        share = smoothstep(n, share_from, share_to)
        code = SURF_BOX if on == "box" else SURF_FLOOR
        s_from = np.full(n, code, dtype=np.int8)
        if air_after:
            s_from[share <= 1e-9] = SURF_AIR
        f_from, f_other = r.pd * share, r.pd * (1 - share)
        if foot_from == "left":
            self.seg(r.z, r.v, f_from, f_other, s_from, code)
        else:
            self.seg(r.z, r.v, f_other, f_from, code, s_from)
        return n

    def bilateral_share(self, weight: float = 0.4) -> float:
        """Left share in bilateral stance: part of the limb weight-share asymmetry."""
        return 0.5 + (self.limbs["left"].weight_share - 0.5) * weight

    # -- scenarios --------------------------------------------------------------------------------
    def quiet_episode(self, seconds: float = 10.0, on: str = "box") -> Episode:
        self.quiet(seconds, on, self.bilateral_share())
        return self.finish("quiet", [])

    def empty_episode(self, seconds: float = 10.0) -> Episode:
        n = _ns(seconds)
        zeros = np.zeros(n)
        self.seg(zeros, zeros, zeros, zeros, SURF_AIR, SURF_AIR, ml=(0.0, 0.0), ap=(0.0, 0.0))
        return self.finish("empty", [])

    def step_up(self, first: str) -> None:
        """Non-rep transition: from bilateral stance on the floor plates back up onto the box."""
        s_first = self.limbs[first].weight_share
        self.shift(0.35, "floor", first, s_first, 0.0, air_after=True)
        n_sw, n_rise, n_sw2, n_place = _ns(0.35), _ns(1.1), _ns(0.35), _ns(0.35)
        n = n_sw + n_rise + n_sw2 + n_place
        zr, vr, ar = np.full(n, self.z_box), np.zeros(n), np.zeros(n)
        zr[:n_sw] = self.z
        p, pv, pa = quintic(n_rise, self.z, 0.0, 0.0, self.z_box, 0.0, 0.0)
        zr[n_sw:n_sw + n_rise], vr[n_sw:n_sw + n_rise], ar[n_sw:n_sw + n_rise] = p, pv, pa
        kp, kd = self.pd_gains(2.0, 0.8)
        r = self.run(n, pd=(1.0, zr, vr, ar, kp, kd), tremor_sd_n=0.004 * self.mg)
        box_share = np.zeros(n)
        box_share[n_sw:n_sw + n_rise] = np.minimum(1.0, smoothstep(n_rise, 0.0, 1.6))
        box_share[n_sw + n_rise:] = 1.0
        f_first = r.pd * box_share
        f_stay = r.pd * (1.0 - box_share)
        place = smoothstep(n_place, 0.0, 1.0 - self.bilateral_share() if first == "left" else self.bilateral_share())
        f_first[n - n_place:] = r.pd[n - n_place:] * (1.0 - place)
        f_stay[n - n_place:] = r.pd[n - n_place:] * place
        surf_first = np.full(n, SURF_BOX, dtype=np.int8)
        surf_first[:n_sw] = SURF_AIR
        surf_stay = np.full(n, SURF_FLOOR, dtype=np.int8)
        surf_stay[n_sw + n_rise:n - n_place] = SURF_AIR
        surf_stay[n - n_place:] = SURF_BOX
        if first == "left":
            self.seg(r.z, r.v, f_first, f_stay, surf_first, surf_stay)
        else:
            self.seg(r.z, r.v, f_stay, f_first, surf_stay, surf_first)

    def step_down(self, lead: str, quiet_s: float) -> Episode:
        """Walk-off step-down: lead foot lands on its floor plate, trail follows; stance; step back up."""
        trail = other_limb(lead)
        tp, lp = self.limbs[trail], self.limbs[lead]
        ec = tp.eccentric_control
        box_h = self.stage.box_height_m
        n0 = self.quiet(quiet_s, "box", self.bilateral_share())
        i_move = n0
        s_lead = self.bilateral_share() if lead == "left" else 1.0 - self.bilateral_share()
        n0 += self.shift(0.4, "box", lead, s_lead, 0.0, air_after=True)
        i_lower = n0
        # lowering: the trail limb tracks a quintic reference ending with the planned touchdown speed
        h_c = 0.6 * box_h * self.var()
        t_low = (0.5 + 0.35 * ec) * self.var()
        v_plan = (0.06 + 0.30 * (1.0 - ec)) * self.var()
        n_low = _ns(t_low)
        n_ext = _ns(1.5)
        z_c = self.z_box - h_c
        p, pv, pa = quintic(n_low, self.z, 0.0, 0.0, z_c, -v_plan, 0.0)
        zr = np.concatenate([p, z_c - v_plan * DT_S * np.arange(1, n_ext + 1)])
        vr = np.concatenate([pv, np.full(n_ext, -v_plan)])
        ar = np.concatenate([pa, np.zeros(n_ext)])
        ff = 0.96 + 0.04 * ec
        kp, kd = self.pd_gains((1.0 + 2.5 * ec) * self.var(), 0.3 + 0.5 * ec)
        r = self.run(n_low + n_ext, pd=(ff, zr, vr, ar, kp, kd), tremor_sd_n=(0.004 + 0.01 * (1 - ec)) * self.mg,
                     stop_below_z=z_c)
        fpd = r.pd
        lead_surf = np.full(r.n, SURF_AIR, dtype=np.int8)
        ml_amp = tp.frontal_plane_sway_mm
        medial = -1.0 if trail == "right" else 1.0  # towards the midline
        drift = smoothstep(r.n, 0.0, medial * 15.0 * (1.0 - ec))  # frontal-plane collapse moves the COP medially
        zero = np.zeros(r.n)
        if lead == "left":
            self.seg(r.z, r.v, zero, fpd, lead_surf, SURF_BOX, ml=(0.0, ml_amp), dx=(0.0, drift))
        else:
            self.seg(r.z, r.v, fpd, zero, SURF_BOX, lead_surf, ml=(ml_amp, 0.0), dx=(drift, 0.0))
        i_contact0 = n0 + r.n
        f_tc = float(fpd[-1]) if r.n else self.mg
        # landing: lead spring-damper with a yielding set-point; the trail limb sheds its load
        k = lp.landing_stiffness_n_m * self.var()
        c = 2.0 * lp.landing_damping_ratio * np.sqrt(k * self.m)
        # a hard (little-yielding) lead leg accepts the weight abruptly: the trail limb sheds it faster
        t_tr = (0.05 + 0.20 * lp.landing_yield) * (0.85 + 0.3 * ec) * self.var()
        n_tr, n_sw, n_q = _ns(t_tr), _ns(0.3), _ns(0.35)
        n_set = _ns(0.7 * self.var())
        n_rest = _ns(1.0 + quiet_s)
        n = n_tr + n_sw + n_q + n_rest
        q_final = tp.weight_share
        z0 = np.full(n, self.z_floor + self.mg / k)
        zp, _, _ = quintic(min(n_set, n), self.z, 0.0, 0.0, self.z_floor + self.mg / k, 0.0, 0.0)
        z0[:len(zp)] = zp
        z0 += 1e-6  # the leg touches at the current height
        ext = np.zeros(n)
        ext[:n_tr] = f_tc * smoothstep(n_tr, 1.0, 0.0)
        r2 = self.run(n, ext=ext, springs=[(z0, k, c)], tremor_sd_n=0.004 * self.mg)
        q = np.zeros(n)
        q[n_tr + n_sw:n_tr + n_sw + n_q] = smoothstep(n_q, 0.0, q_final)
        q[n_tr + n_sw + n_q:] = q_final
        sup = r2.spr[0]
        f_lead, f_trail = sup * (1 - q), sup * q + ext
        trail_surf = np.full(n, SURF_FLOOR, dtype=np.int8)
        trail_surf[:n_tr] = SURF_BOX
        trail_surf[n_tr:n_tr + n_sw] = SURF_AIR
        if lead == "left":
            self.seg(r2.z, r2.v, f_lead, f_trail, SURF_FLOOR, trail_surf)
        else:
            self.seg(r2.z, r2.v, f_trail, f_lead, trail_surf, SURF_FLOOR)
        i_end = i_contact0 + n
        # events on the episode's arrays (lead plate = lead foot while it is the only foot there)
        z_all = np.concatenate([s["z"] for s in self._segs])
        v_all = np.concatenate([s["v"] for s in self._segs])
        f_lead_all = np.concatenate([s["f"][FOOT_INDEX[lead]] for s in self._segs])
        f_trail_all = np.concatenate([s["f"][FOOT_INDEX[trail]] for s in self._segs])
        ev = self._landing_event("step-down", lead, trail, v_all, f_lead_all, f_lead_all + f_trail_all, i_lower, i_end)
        ev.values["t_movement_s"] = i_move * DT_S
        ev.values["trail_support_at_contact_n"] = (float(f_trail_all[int(round(ev.t_contact_s / DT_S))])
                                                   if ev.t_contact_s is not None else float("nan"))
        ev.values["lowering_com_drop_m"] = float(self.z_box - z_all[i_contact0 - 1]) if i_contact0 > 0 else 0.0
        self.step_up(lead)
        return self.finish("step-down", [ev])

    def _landing_event(self, protocol, lead, stance, v, f_land, f_total, i_search, i_end) -> RepEvent:
        """Contact (≥ 20 N for 20 ms), onset, touchdown speed, landing peak and arrest from arrays."""
        above = f_land >= CONTACT_THRESHOLD_N
        hold = _ns(0.02)
        i_c = None
        idx = np.flatnonzero(above[i_search:i_end]) + i_search
        for i in idx:
            if above[i:i + hold].all():
                i_c = int(i)
                break
        ev = RepEvent(protocol, lead, stance, 0.0, None, None, i_end * DT_S)
        if i_c is None:
            return ev
        slow = np.flatnonzero(np.abs(v[:i_c + 1]) <= ONSET_SPEED_M_S)
        i_on = int(slow[-1]) if slow.size else 0
        up = np.flatnonzero(v[i_c:i_end] >= 0.0)
        i_ar = i_c + int(up[0]) if up.size else min(i_end, i_c + _ns(1.0))
        i_ar = max(i_ar, i_c + 1)
        i_pk = i_c + int(np.argmax(f_land[i_c:i_ar]))
        first = np.flatnonzero(f_land[i_search:i_end] > 0.0)
        ev.t_onset_s = i_on * DT_S
        ev.t_contact_s = i_c * DT_S
        ev.touchdown_speed_m_s = float(-v[i_c])
        ev.landing_peak_n = float(f_land[i_pk])
        ev.t_peak_s = i_pk * DT_S
        ev.values.update({
            "t_arrest_s": i_ar * DT_S,
            "t_first_contact_s": (i_search + int(first[0])) * DT_S if first.size else i_c * DT_S,
            "lowering_duration_s": (i_c - i_on) * DT_S,
            "peak_descent_speed_m_s": float(-v[i_on:i_c + 1].min()),
            "peak_total_force_n": float(f_total[i_c:i_ar].max()),
            "body_weight_n": self.mg,
        })
        return ev

    def forward_step_down(self, tap: str, quiet_s: float) -> Episode:
        """Stand on one limb on the box, lower the other heel to tap its floor plate, return."""
        stance = other_limb(tap)
        sp = self.limbs[stance]
        ec = sp.eccentric_control
        box_h = self.stage.box_height_m
        n0 = self.quiet(quiet_s, "box", self.bilateral_share())
        i_move = n0
        s_tap = self.bilateral_share() if tap == "left" else 1.0 - self.bilateral_share()
        n0 += self.shift(0.4, "box", tap, s_tap, 0.0, air_after=True)
        i_lower = n0
        z_tap = self.z_box - 0.55 * box_h * self.var()
        overshoot = (0.006 + 0.03 * (1.0 - ec)) * self.var()
        n_low, n_hold, n_up, n_after = _ns((0.55 + 0.4 * ec) * self.var()), _ns(0.12), _ns(0.7 * self.var()), _ns(0.2)
        p1, v1, a1 = quintic(n_low, self.z, 0.0, 0.0, z_tap - overshoot, 0.0, 0.0)
        p2, v2, a2 = quintic(n_up, z_tap - overshoot, 0.0, 0.0, self.z_box, 0.0, 0.0)
        zr = np.concatenate([p1, np.full(n_hold, z_tap - overshoot), p2, np.full(n_after, self.z_box)])
        vr = np.concatenate([v1, np.zeros(n_hold), v2, np.zeros(n_after)])
        ar = np.concatenate([a1, np.zeros(n_hold), a2, np.zeros(n_after)])
        n = len(zr)
        kp, kd = self.pd_gains(1.5 + 2.0 * ec, 0.35 + 0.5 * ec)
        r = self.run(n, pd=(1.0, zr, vr, ar, kp, kd), springs=[(np.full(n, z_tap), 12000.0, 300.0)],
                     tremor_sd_n=(0.004 + 0.01 * (1 - ec)) * self.mg)
        f_tap = r.spr[0]
        tap_surf = np.where(np.arange(n) < n_low // 3, SURF_AIR, SURF_FLOOR).astype(np.int8)
        tap_surf[n_low + n_hold + n_up // 2:] = SURF_AIR
        dy_tap = 150.0 - self.stage.floor_foot_xy_mm[FOOT_INDEX[tap]][1]
        ml_amp = sp.frontal_plane_sway_mm
        if tap == "left":
            self.seg(r.z, r.v, f_tap, r.pd, tap_surf, SURF_BOX, ml=(1.0, ml_amp), dy=(dy_tap, 0.0))
        else:
            self.seg(r.z, r.v, r.pd, f_tap, SURF_BOX, tap_surf, ml=(ml_amp, 1.0), dy=(0.0, dy_tap))
        i_end = n0 + n
        v_all = np.concatenate([s["v"] for s in self._segs])
        f_tap_all = np.concatenate([s["f"][FOOT_INDEX[tap]] for s in self._segs])
        f_tap_all[:i_lower] = 0.0  # the tapping foot's box load before the shift is not a tap
        ev = self._landing_event("forward-step-down", tap, stance, v_all, f_tap_all, f_tap_all, i_lower, i_end)
        ev.values["tap_force_n"] = float(f_tap.max())
        ev.values["t_movement_s"] = i_move * DT_S
        touching = np.flatnonzero(f_tap >= CONTACT_THRESHOLD_N)
        ev.values["t_tap_end_s"] = (n0 + int(touching[-1])) * DT_S if touching.size else float("nan")
        s_back = 1.0 - self.bilateral_share() if tap == "right" else self.bilateral_share()
        self.shift(0.4, "box", tap, 0.0, s_back, air_after=False)
        self.quiet(0.3, "box", self.bilateral_share())
        return self.finish("forward-step-down", [ev])

    def drop_landing(self, quiet_s: float, *, step_up_after: bool, first_up: str = "left") -> Episode:
        """From standing on the box, drop off and land bilaterally on both floor plates, stay."""
        n0 = self.quiet(quiet_s, "box", self.bilateral_share())
        i_move = n0
        # small preparatory lowering, then the box support is released
        n_prep = _ns(0.5 * self.var())
        p, pv, pa = quintic(n_prep, self.z, 0.0, 0.0, self.z - 0.015, -0.06, 0.0)
        kp, kd = self.pd_gains(2.0, 0.8)
        r = self.run(n_prep, pd=(1.0, p, pv, pa, kp, kd), tremor_sd_n=0.004 * self.mg)
        sh = self.bilateral_share()
        self.seg(r.z, r.v, r.pd * sh, r.pd * (1 - sh), SURF_BOX, SURF_BOX)
        n_rel = _ns(0.15)
        ext = float(r.pd[-1]) * smoothstep(n_rel, 1.0, 0.0)
        r = self.run(n_rel, ext=ext)
        self.seg(r.z, r.v, ext * sh, ext * (1 - sh), SURF_BOX, SURF_BOX)
        # flight until the first foot touches
        z_touch = {side: self.z_floor + 0.02 + 0.004 * float(self.rng.uniform(-1, 1)) for side in LIMBS}
        r = self.run(_ns(1.0), stop_below_z=max(z_touch.values()))
        self.seg(r.z, r.v, 0.0, 0.0, SURF_AIR, SURF_AIR)
        i_c0 = n0 + n_prep + n_rel + r.n
        v_td = min(self.v, 0.0)
        n_abs, n_rise = _ns(0.22 * self.var()), _ns(0.8 * self.var())
        n_rest = _ns(1.0 + quiet_s)
        n = n_abs + n_rise + n_rest
        springs = []
        d_flex = 0.10 * self.var()
        for side in LIMBS:
            lp = self.limbs[side]
            k = lp.landing_stiffness_n_m * self.var()
            c = 2.0 * lp.landing_damping_ratio * np.sqrt(k * self.m / 2.0)
            share = lp.weight_share
            z_end = self.z_floor + share * self.mg / k
            a1, _, _ = quintic(n_abs, z_touch[side], lp.landing_yield * v_td, 0.0, self.z_floor - d_flex, 0.0, 0.0)
            a2, _, _ = quintic(n_rise, self.z_floor - d_flex, 0.0, 0.0, z_end, 0.0, 0.0)
            z0 = np.concatenate([a1, a2, np.full(n_rest, z_end)])
            springs.append((z0, k, c))
        r = self.run(n, springs=springs, tremor_sd_n=0.004 * self.mg)
        self.seg(r.z, r.v, r.spr[0], r.spr[1], SURF_FLOOR, SURF_FLOOR)
        i_end = i_c0 + n
        v_all = np.concatenate([s["v"] for s in self._segs])
        f_l = np.concatenate([s["f"][0] for s in self._segs])
        f_r = np.concatenate([s["f"][1] for s in self._segs])
        f_l[:i_c0 - 1] = 0.0  # loads on the box are not landings
        f_r[:i_c0 - 1] = 0.0
        ev = self._landing_event("drop-landing", None, None, v_all, f_l + f_r, f_l + f_r, i_move, i_end)
        for side, fs in (("left", f_l), ("right", f_r)):
            side_ev = self._landing_event("drop-landing", None, None, v_all, fs, fs, i_move, i_end)
            if side_ev.t_contact_s is not None:
                i_c = int(round(side_ev.t_contact_s / DT_S))
                i_ar = int(round(ev.values.get("t_arrest_s", side_ev.values["t_arrest_s"]) / DT_S))
                i_pk = i_c + int(np.argmax(fs[i_c:max(i_ar, i_c + 1)]))
                ev.values[f"t_contact_{side}_s"] = side_ev.t_contact_s
                ev.values[f"landing_peak_{side}_n"] = float(fs[i_pk])
                ev.values[f"t_peak_{side}_s"] = i_pk * DT_S
        ev.values["t_movement_s"] = i_move * DT_S
        if step_up_after:
            self.step_up(first_up)
        return self.finish("drop-landing", [ev])

    def squat(self, quiet_s: float) -> Episode:
        """Bilateral squat on both floor plates with the subject's left/right weight share."""
        n0 = self.quiet(quiet_s, "floor", self.bilateral_share())
        depth = 0.32 * self.subject.height_m / 1.75 * self.var()
        n_d, n_h, n_u, n_a = _ns(1.3 * self.var()), _ns(0.3), _ns(1.3 * self.var()), _ns(0.6)
        p1, v1, a1 = quintic(n_d, self.z, 0.0, 0.0, self.z_floor - depth, 0.0, 0.0)
        p2, v2, a2 = quintic(n_u, self.z_floor - depth, 0.0, 0.0, self.z_floor, 0.0, 0.0)
        zr = np.concatenate([p1, np.full(n_h, self.z_floor - depth), p2, np.full(n_a, self.z_floor)])
        vr = np.concatenate([v1, np.zeros(n_h), v2, np.zeros(n_a)])
        ar = np.concatenate([a1, np.zeros(n_h), a2, np.zeros(n_a)])
        n = len(zr)
        kp, kd = self.pd_gains(2.5, 0.7)
        r = self.run(n, pd=(1.0, zr, vr, ar, kp, kd), tremor_sd_n=0.005 * self.mg)
        frac = np.clip((self.z_floor - zr) / depth, 0.0, 1.0)
        share = 0.5 + (self.limbs["left"].weight_share - 0.5) * (0.4 + 0.6 * frac)
        self.seg(r.z, r.v, r.pd * share, r.pd * (1 - share), SURF_FLOOR, SURF_FLOOR)
        fl, fr = r.pd * share, r.pd * (1 - share)
        moving = np.abs(r.v) > ONSET_SPEED_M_S
        v_all = np.concatenate([s["v"] for s in self._segs])
        slow = np.flatnonzero(np.abs(v_all[:n0 + n_d // 2]) <= ONSET_SPEED_M_S)

        def pct(mask):
            return float(100.0 * fl[mask].sum() / (fl[mask] + fr[mask]).sum()) if mask.any() else float("nan")

        ev = RepEvent("squat", None, None, 0.0, (int(slow[-1]) if slow.size else n0) * DT_S, None, (n0 + n) * DT_S)
        ev.values.update({
            "t_bottom_s": (n0 + n_d + n_h // 2) * DT_S,
            "t_movement_s": n0 * DT_S,
            "left_share_pct": pct(moving),
            "left_share_descent_pct": pct(moving & (r.v < 0)),
            "left_share_ascent_pct": pct(moving & (r.v > 0)),
            "depth_m": float(self.z_floor - r.z.min()),
            "body_weight_n": self.mg,
        })
        return self.finish("squat", [ev])

    def balance(self, stance: str, quiet_s: float) -> Episode:
        """Single-limb stance on one floor plate with COP sway; the other foot lifts and returns."""
        lift = other_limb(stance)
        sp = self.limbs[stance]
        n0 = self.quiet(quiet_s, "floor", self.bilateral_share())
        s_lift = self.bilateral_share() if lift == "left" else 1.0 - self.bilateral_share()
        n_lift = self.shift(0.5, "floor", lift, s_lift, 0.0, air_after=True)
        n_hold = _ns(self.balance_duration_s)
        r = self.run(n_hold, pd=self.hold_pd(n_hold, self.z_floor, 1.5), tremor_sd_n=0.008 * self.mg)
        zero = np.zeros(n_hold)
        amp_ml, amp_ap = sp.sway_amplitude_mm, 1.4 * sp.sway_amplitude_mm
        if stance == "left":
            self.seg(r.z, r.v, r.pd, zero, SURF_FLOOR, SURF_AIR, ml=(amp_ml, 0.0), ap=(amp_ap, 0.0))
        else:
            self.seg(r.z, r.v, zero, r.pd, SURF_AIR, SURF_FLOOR, ml=(0.0, amp_ml), ap=(0.0, amp_ap))
        self.shift(0.5, "floor", lift, 0.0, s_lift, air_after=False)
        ev = RepEvent("balance", None, stance, 0.0, n0 * DT_S, None, (n0 + n_lift + n_hold) * DT_S)
        ev.values.update({"t_movement_s": n0 * DT_S, "t_single_start_s": (n0 + n_lift) * DT_S,
                          "t_single_end_s": (n0 + n_lift + n_hold) * DT_S, "body_weight_n": self.mg})
        return self.finish("balance", [ev])


class ScenarioStream:
    """An endless sequence of episodes for a scenario (deterministic for a seed)."""

    def __init__(self, stage: Stage, subject: Subject, scenario: str = "session", seed: int = 0):
        if scenario not in SCENARIOS:
            raise ValueError(f"unknown scenario {scenario!r}; expected one of {', '.join(SCENARIOS)}")
        self.scenario = scenario
        self.lib = MovementLibrary(stage, subject, seed)
        if scenario in ("squat", "balance"):
            self.lib.z = self.lib.z_floor
        self._lead: str | None = None  # with follow(): the limb every rep leads with (None: alternate)
        self._request: tuple[str, str | None] | None = None
        self._gen = self._episodes()

    def follow(self, scenario: str, lead: str | None = None) -> None:
        """From the next episode on, perform ``scenario``, every rep leading with ``lead`` (None: alternate).

        The simulated subject does what the clinician asks: the session page
        calls this (through ``SimulatedStepBox.perform``) when a recording of a
        protocol starts.  A move between the box and the floor that the new
        scenario needs comes first (a step up, or a drop landing that stays down).
        """
        if scenario not in SCENARIOS:
            raise ValueError(f"unknown scenario {scenario!r}; expected one of {', '.join(SCENARIOS)}")
        if lead not in (None, *LIMBS):
            raise ValueError(f"lead must be left, right or None, got {lead!r}")
        self._request = (scenario, lead)  # one assignment: read once by next_episode (the generating thread)

    def next_episode(self) -> Episode:
        request, self._request = self._request, None
        if request is not None:
            self.scenario, self._lead = request
            self._gen = self._episodes(transition=True)
        return next(self._gen)

    def _pause(self) -> float:
        return 1.5 + 0.5 * float(self.lib.rng.uniform())

    def _episodes(self, transition: bool = False):
        lib = self.lib
        sc = self.scenario
        if transition:
            on_floor = lib.z < 0.5 * (lib.z_floor + lib.z_box)
            if sc in ("squat", "balance") and not on_floor:
                yield lib.drop_landing(self._pause(), step_up_after=False, first_up=self._lead or "left")
            elif sc in ("step-down", "forward-step-down", "drop-landing", "session") and on_floor:
                lib.quiet(1.0, "floor", lib.bilateral_share())
                lib.step_up(self._lead or "left")
                yield lib.finish("step-up", [])
        if sc == "empty":
            while True:
                yield lib.empty_episode()
        if sc == "quiet":
            while True:
                yield lib.quiet_episode()
        k = 0
        while True:
            side = self._lead or LIMBS[k % 2]
            if sc == "step-down":
                yield lib.step_down(side, self._pause())
            elif sc == "forward-step-down":
                yield lib.forward_step_down(side, self._pause())
            elif sc == "drop-landing":
                yield lib.drop_landing(self._pause(), step_up_after=True, first_up=side)
            elif sc == "squat":
                yield lib.squat(self._pause())
            elif sc == "balance":
                yield lib.balance(side, self._pause())
            else:  # session: one clinic cycle
                yield lib.quiet_episode(3.0, "box")
                for i in range(4):
                    yield lib.step_down(LIMBS[i % 2], self._pause())
                for i in range(4):
                    yield lib.forward_step_down(LIMBS[i % 2], self._pause())
                for i in range(3):
                    yield lib.drop_landing(self._pause(), step_up_after=i < 2, first_up=LIMBS[i % 2])
                for _ in range(3):
                    yield lib.squat(self._pause())
                for i in range(2):
                    yield lib.balance(LIMBS[i % 2], self._pause())
                lib.quiet(1.0, "floor", lib.bilateral_share())
                lib.step_up("left")
                yield lib.finish("step-up", [])
            k += 1
