"""The virtual subject and the movement physics (internal grid, no cells)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from steplab.acquisition.rig import default_rig
from steplab.acquisition.sim_movements import (
    DT_S,
    FOOT_INDEX,
    MovementLibrary,
    ScenarioStream,
    Stage,
    quintic,
)
from steplab.acquisition.sim_subject import G_M_S2, Subject

STAGE = Stage.from_rig(default_rig())


@pytest.mark.parametrize("kwargs, msg", [
    ({"body_mass_kg": 5.0}, "body_mass_kg"),
    ({"asymmetry": 0.7}, "asymmetry"),
    ({"involved_limb": "both"}, "involved_limb"),
    ({"eccentric_control": float("nan")}, "eccentric_control"),
    ({"landing_stiffness_n_m": -1.0}, "landing_stiffness"),
])
def test_subject_rejects_bad_parameters(kwargs, msg):
    with pytest.raises(ValueError, match=msg):
        Subject(**kwargs)


def test_limb_params_make_the_involved_limb_worse_and_leave_a_healthy_subject_symmetric():
    healthy = Subject()
    assert healthy.limb_params("left") == replace(healthy.limb_params("right"), limb="left")
    s = Subject(involved_limb="left", asymmetry=0.3)
    inv, uni = s.limb_params("left"), s.limb_params("right")
    assert inv.eccentric_control == pytest.approx(0.8 * 0.7)
    assert inv.landing_stiffness_n_m > uni.landing_stiffness_n_m
    assert inv.landing_damping_ratio < uni.landing_damping_ratio
    assert inv.weight_share < 0.5 < uni.weight_share
    assert inv.weight_share + uni.weight_share == pytest.approx(1.0)
    assert inv.sway_amplitude_mm > uni.sway_amplitude_mm
    with pytest.raises(ValueError, match="limb"):
        s.limb_params("middle")


def test_quintic_meets_its_boundary_conditions():
    n = 5000
    p, v, a = quintic(n, 1.0, 0.2, -1.0, 0.8, -0.3, 0.5)
    T = n * DT_S
    assert (p[0], v[0], a[0]) == pytest.approx((1.0, 0.2, -1.0))
    # evaluate the end by one more step of the polynomial's own derivative chain
    assert p[-1] + v[-1] * DT_S == pytest.approx(0.8, abs=1e-6)
    assert v[-1] == pytest.approx(-0.3, abs=1e-3)
    np.testing.assert_allclose(np.gradient(p, DT_S)[1:-1], v[1:-1], atol=1e-6)
    assert T == pytest.approx(0.5)


def _episodes(subject, scenario, n, seed=0):
    stream = ScenarioStream(STAGE, subject, scenario, seed)
    return [stream.next_episode() for _ in range(n)]


@pytest.mark.parametrize("scenario", ["step-down", "forward-step-down", "drop-landing", "squat", "balance", "quiet"])
def test_impulse_momentum_holds_on_the_internal_grid(scenario):
    subject = Subject(body_mass_kg=82.0)
    for ep in _episodes(subject, scenario, 2):
        f = ep.foot_f_n.sum(axis=0)
        # Σ(F − mg)·dt between any two samples equals m·Δv (semi-implicit Euler is exact in this sense)
        for i0, i1 in ((0, ep.n - 1), (ep.n // 3, 2 * ep.n // 3)):
            impulse = np.sum(f[i0:i1] - subject.body_weight_n) * DT_S
            assert impulse == pytest.approx(subject.body_mass_kg * (ep.v_m_s[i1] - ep.v_m_s[i0]), abs=1e-6)


def test_every_rep_starts_with_at_least_one_second_of_quiet_stance():
    subject = Subject()
    for scenario in ("step-down", "forward-step-down", "drop-landing", "squat", "balance"):
        for ep in _episodes(subject, scenario, 2, seed=4):
            ev = ep.events[0]
            i_on = int(round(ev.values["t_movement_s"] / DT_S))
            assert i_on >= int(1.0 / DT_S), scenario
            assert ev.t_onset_s >= ev.values["t_movement_s"] - 0.05, scenario
            f = ep.foot_f_n.sum(axis=0)[:i_on]
            quiet = f[-int(1.0 / DT_S):]
            assert np.all(np.abs(quiet - subject.body_weight_n) < 0.05 * subject.body_weight_n), scenario
            assert np.abs(quiet.mean() - subject.body_weight_n) < 0.01 * subject.body_weight_n
            assert np.all(np.abs(ep.v_m_s[i_on - int(1.0 / DT_S):i_on]) <= 0.0101), scenario


def test_step_down_and_drop_landing_fall_in_the_literature_ranges():
    subject = Subject()
    bw = subject.body_weight_n
    for ep in _episodes(subject, "step-down", 4, seed=1):
        ev = ep.events[0]
        assert 1.15 <= ev.landing_peak_n / bw <= 1.6
        assert 0.4 <= ev.values["lowering_duration_s"] <= 1.0
        assert 0.02 < ev.touchdown_speed_m_s < 0.5
        lead = FOOT_INDEX[ev.lead]
        # the lead foot lands on the floor, the trail foot then follows onto the floor
        i_c = int(round(ev.t_contact_s / DT_S))
        assert ep.foot_surf[lead, i_c] == 2 and ep.foot_surf[1 - lead, i_c] == 1
        assert ep.foot_surf[1 - lead, i_c + int(1.5 / DT_S)] == 2
        assert ep.foot_surf[0, -1] == 1 and ep.foot_surf[1, -1] == 1  # back up on the box
    for ep in _episodes(subject, "drop-landing", 3, seed=1):
        ev = ep.events[0]
        assert 2.5 <= ev.landing_peak_n / bw <= 4.0
        assert ev.touchdown_speed_m_s > 1.4
        # started on the box: no load on the floor plates before the landing
        i_c = int(round(ev.values["t_first_contact_s"] / DT_S))
        assert np.all(ep.foot_surf[:, :i_c - 1] != 2)


def test_a_weaker_left_limb_shows_in_the_truth_of_step_downs():
    subject = Subject(involved_limb="left", asymmetry=0.3)
    reps = [ep.events[0] for ep in _episodes(subject, "step-down", 12, seed=2)]
    left_lead = [e for e in reps if e.lead == "left"]
    right_lead = [e for e in reps if e.lead == "right"]  # trail = left = involved lowers the body
    assert len(left_lead) == len(right_lead) == 6
    td_r = np.mean([e.touchdown_speed_m_s for e in right_lead])
    td_l = np.mean([e.touchdown_speed_m_s for e in left_lead])
    assert td_r > 1.2 * td_l
    pk_l = np.mean([e.landing_peak_n for e in left_lead])
    pk_r = np.mean([e.landing_peak_n for e in right_lead])
    assert pk_l > pk_r
    ttp_l = np.mean([e.t_peak_s - e.t_contact_s for e in left_lead])
    ttp_r = np.mean([e.t_peak_s - e.t_contact_s for e in right_lead])
    assert ttp_l < ttp_r
    cop_r = np.mean([e.values["box_cop_ml_range_mm"] for e in right_lead])
    cop_l = np.mean([e.values["box_cop_ml_range_mm"] for e in left_lead])
    assert cop_r > cop_l
    # a healthy subject shows no such difference beyond rep-to-rep variability
    healthy = [ep.events[0] for ep in _episodes(Subject(), "step-down", 12, seed=2)]
    h_l = np.mean([e.touchdown_speed_m_s for e in healthy if e.lead == "left"])
    h_r = np.mean([e.touchdown_speed_m_s for e in healthy if e.lead == "right"])
    assert abs(h_r - h_l) < 0.1 * (h_r + h_l)


def test_asymmetry_in_drop_landing_squat_balance_and_tap():
    s = Subject(involved_limb="right", asymmetry=0.3, rep_variability=0.03)
    drops = [ep.events[0] for ep in _episodes(s, "drop-landing", 3, seed=5)]
    assert np.mean([e.values["landing_peak_right_n"] for e in drops]) > np.mean([e.values["landing_peak_left_n"] for e in drops])
    squats = [ep.events[0] for ep in _episodes(s, "squat", 2, seed=5)]
    for e in squats:
        assert 50.0 < e.values["left_share_pct"] < 60.0  # the involved right carries less
    bal = [ep.events[0] for ep in _episodes(s, "balance", 2, seed=5)]
    by = {e.stance: e.values["cop_ml_sd_mm"] for e in bal}
    assert by["right"] > by["left"]
    taps = [ep.events[0] for ep in _episodes(s, "forward-step-down", 6, seed=5)]
    stance_r = np.mean([e.values["tap_force_n"] for e in taps if e.stance == "right"])
    stance_l = np.mean([e.values["tap_force_n"] for e in taps if e.stance == "left"])
    assert stance_r > stance_l
    for e in taps:
        assert 20.0 < e.values["tap_force_n"] < 0.35 * s.body_weight_n


def test_session_cycles_through_every_protocol_and_is_deterministic():
    a = _episodes(Subject(), "session", 20, seed=9)
    names = [ep.name for ep in a]
    for proto in ("step-down", "forward-step-down", "drop-landing", "squat", "balance", "step-up"):
        assert proto in names
    b = _episodes(Subject(), "session", 3, seed=9)
    for x, y in zip(a, b):
        assert np.array_equal(x.foot_f_n, y.foot_f_n)


def test_empty_rig_has_no_load_and_quiet_has_body_weight():
    (ep,) = _episodes(Subject(), "empty", 1)
    assert np.all(ep.foot_f_n == 0.0)
    (ep,) = _episodes(Subject(body_mass_kg=95.0), "quiet", 1)
    f = ep.foot_f_n.sum(axis=0)
    assert f.mean() == pytest.approx(95.0 * G_M_S2, rel=0.002)
    assert 0.5 < f.std() < 0.02 * 95.0 * G_M_S2


def test_unknown_scenario_is_rejected():
    with pytest.raises(ValueError, match="unknown scenario"):
        ScenarioStream(STAGE, Subject(), "cartwheel")


def test_library_state_is_continuous_between_episodes():
    lib_stream = ScenarioStream(STAGE, Subject(), "drop-landing", 0)
    e1, e2 = lib_stream.next_episode(), lib_stream.next_episode()
    assert e1.z_m[-1] == pytest.approx(e2.z_m[0], abs=1e-4)
    assert isinstance(lib_stream.lib, MovementLibrary)


def test_follow_makes_the_subject_do_the_asked_protocol_leading_with_the_asked_limb():
    stream = ScenarioStream(STAGE, Subject(), "session", 4)
    stream.next_episode()  # the session begins on the box
    stream.follow("step-down", "right")
    eps = [stream.next_episode() for _ in range(4)]
    assert [ep.name for ep in eps] == ["step-down"] * 4
    assert {ev.lead for ep in eps for ev in ep.events} == {"right"}
    stream.follow("squat")  # from the box to the floor first: a landing that stays down, then squats
    eps = [stream.next_episode() for _ in range(4)]
    assert eps[0].name == "drop-landing" and [ep.name for ep in eps[1:]] == ["squat"] * 3
    assert abs(eps[-1].z_m[-1] - stream.lib.z_floor) < 0.05  # still on the floor
    stream.follow("step-down", None)  # back up on the box, then step-downs alternating the lead
    eps = [stream.next_episode() for _ in range(5)]
    assert eps[0].name == "step-up" and [ep.name for ep in eps[1:]] == ["step-down"] * 4
    assert [ev.lead for ep in eps[1:] for ev in ep.events] == ["left", "right", "left", "right"]


def test_follow_refuses_what_the_subject_cannot_do():
    stream = ScenarioStream(STAGE, Subject(), "session", 0)
    with pytest.raises(ValueError, match="unknown scenario"):
        stream.follow("cartwheel")
    with pytest.raises(ValueError, match="lead"):
        stream.follow("step-down", "both")


def test_follow_keeps_the_physics_continuous_at_every_switch():
    stream = ScenarioStream(STAGE, Subject(), "step-down", 2)
    prev = stream.next_episode()
    for scenario, lead in (("squat", None), ("balance", "left"), ("drop-landing", None), ("forward-step-down", "left")):
        stream.follow(scenario, lead)
        for _ in range(2):
            ep = stream.next_episode()
            assert abs(ep.z_m[0] - prev.z_m[-1]) < 0.01, (scenario, ep.name)
            prev = ep
