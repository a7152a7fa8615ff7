"""The virtual subject of the simulated step box: body, limb qualities and their asymmetry.

A :class:`Subject` describes a person by a handful of physical and motor-control
parameters; :meth:`Subject.limb_params` applies the asymmetry to the involved
limb and returns what the movement models (``sim_movements``) use for one limb.
Everything is SI except COP amplitudes (mm).  See ``rig_docs/simulator.md``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from steplab.constants import G_M_S2

LIMBS = ("left", "right")


def other_limb(limb: str) -> str:
    """The contralateral limb name ('left' <-> 'right')."""
    if limb not in LIMBS:
        raise ValueError(f"limb must be 'left' or 'right', got {limb!r}")
    return "right" if limb == "left" else "left"


@dataclass(frozen=True)
class LimbParams:
    """Motor qualities of one limb after the subject's asymmetry is applied.

    Attributes
    ----------
    limb : 'left' or 'right'.
    eccentric_control : 0..1 quality of eccentric braking when this limb lowers the body
        (trail limb of a step-down, stance limb of a tap).
    landing_stiffness_n_m : leg stiffness (N/m) when this limb lands.
    landing_damping_ratio : damping ratio of the landing spring-damper (dimensionless).
    landing_yield : 0..1, how much the landing leg "gives" at touchdown (knee flexion
        set-point speed as a fraction of the touchdown speed); lower = harder landing.
    weight_share : fraction of body weight this limb carries in bilateral stance / squat.
    sway_amplitude_mm : SD of the mediolateral COP in single-limb stance on this limb (mm).
    frontal_plane_sway_mm : SD of the mediolateral box COP while this limb lowers the body (mm).
    """

    limb: str
    eccentric_control: float
    landing_stiffness_n_m: float
    landing_damping_ratio: float
    landing_yield: float
    weight_share: float
    sway_amplitude_mm: float
    frontal_plane_sway_mm: float


@dataclass(frozen=True)
class Subject:
    """A virtual patient.

    Parameters
    ----------
    body_mass_kg : body mass (kg), 20..250; default 70.
    height_m : standing height (m), 1.0..2.3; the standing centre-of-mass height is
        0.56 × height.
    involved_limb : 'left', 'right' or None (healthy, symmetric).
    asymmetry : 0..0.5, how much worse the involved limb is (0 = symmetric).
    eccentric_control : 0..1, quality of eccentric braking of a healthy limb (default 0.8).
    landing_stiffness_n_m : leg stiffness at landing of a healthy limb (N/m, default 20 kN/m;
        literature 10–40 kN/m).
    sway_amplitude_mm : mediolateral COP SD in single-limb stance of a healthy limb (mm).
    rep_variability : coefficient of variation applied per rep to durations, speeds and
        stiffnesses (0..0.3, default 0.05); draws come from the simulator's seed.
    """

    body_mass_kg: float = 70.0
    height_m: float = 1.75
    involved_limb: str | None = None
    asymmetry: float = 0.0
    eccentric_control: float = 0.8
    landing_stiffness_n_m: float = 20000.0
    sway_amplitude_mm: float = 4.0
    rep_variability: float = 0.05

    def __post_init__(self) -> None:
        for name in ("body_mass_kg", "height_m", "asymmetry", "eccentric_control",
                     "landing_stiffness_n_m", "sway_amplitude_mm", "rep_variability"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or not math.isfinite(value):
                raise ValueError(f"{name} must be a finite number, got {value!r}")
        checks = (
            (20.0 <= self.body_mass_kg <= 250.0, f"body_mass_kg must be in 20..250 kg, got {self.body_mass_kg}"),
            (1.0 <= self.height_m <= 2.3, f"height_m must be in 1.0..2.3 m, got {self.height_m}"),
            (self.involved_limb in (None, "left", "right"),
             f"involved_limb must be 'left', 'right' or None, got {self.involved_limb!r}"),
            (0.0 <= self.asymmetry <= 0.5, f"asymmetry must be in 0..0.5, got {self.asymmetry}"),
            (0.0 <= self.eccentric_control <= 1.0, f"eccentric_control must be in 0..1, got {self.eccentric_control}"),
            (2000.0 <= self.landing_stiffness_n_m <= 200000.0,
             f"landing_stiffness_n_m must be in 2e3..2e5 N/m, got {self.landing_stiffness_n_m}"),
            (0.0 <= self.sway_amplitude_mm <= 50.0, f"sway_amplitude_mm must be in 0..50 mm, got {self.sway_amplitude_mm}"),
            (0.0 <= self.rep_variability <= 0.3, f"rep_variability must be in 0..0.3, got {self.rep_variability}"),
        )
        for ok, msg in checks:
            if not ok:
                raise ValueError(msg)

    @property
    def body_weight_n(self) -> float:
        """Body weight m·g (N)."""
        return self.body_mass_kg * G_M_S2

    @property
    def standing_com_height_m(self) -> float:
        """Centre-of-mass height above the feet in quiet standing (m)."""
        return 0.56 * self.height_m

    def limb_params(self, limb: str) -> LimbParams:
        """Parameters of one limb, with the asymmetry applied if it is the involved limb.

        The involved limb has worse eccentric control (× (1 − a)), a stiffer, less
        damped and less yielding landing (stiffness × (1 + a)), carries less weight
        (share 0.5·(1 − 0.4·a)) and sways more in single-limb stance (× (1 + 1.5·a)).
        """
        if limb not in LIMBS:
            raise ValueError(f"limb must be 'left' or 'right', got {limb!r}")
        a = self.asymmetry if (self.involved_limb is not None) else 0.0
        inv_share = 0.5 * (1.0 - 0.4 * a)
        if limb == self.involved_limb:
            ec = self.eccentric_control * (1.0 - a)
            k = self.landing_stiffness_n_m * (1.0 + a)
            zeta = 0.30 * (1.0 - a)
            yld = 0.45 * (1.0 - a)
            share = inv_share
            sway = self.sway_amplitude_mm * (1.0 + 1.5 * a)
        else:
            ec = self.eccentric_control
            k = self.landing_stiffness_n_m
            zeta = 0.30
            yld = 0.45
            share = 1.0 - inv_share
            sway = self.sway_amplitude_mm
        return LimbParams(
            limb=limb,
            eccentric_control=ec,
            landing_stiffness_n_m=k,
            landing_damping_ratio=zeta,
            landing_yield=yld,
            weight_share=share,
            sway_amplitude_mm=sway,
            frontal_plane_sway_mm=2.0 + 12.0 * (1.0 - ec),
        )
