"""The guided procedure on a synthetic rig with a known forward model (gains, cross-talk,
offsets, noise, settling), and its handling of bad input: loaded tare, a dying channel,
a reversed cell, a mass that never settles, too few positions."""

import re

import numpy as np
import pytest

from steplab.acquisition.rig import default_rig
from steplab.calibration.procedure import (
    DONE,
    FAULT,
    LOADING,
    TARE,
    TIMEOUT,
    CalibrationPlan,
    CalibrationProcedure,
    ProcedureSettings,
)
from steplab.calibration.robot import CalibrationAborted, SimRobot, drive

G = 9.80665  # standard gravity [m/s²] (metrics.md): the tests' own truth, not the code's constant


class SyntheticRig:
    """Counts = offset + diag(sens)·cross·(bilinear cell loads) + noise; loads settle exponentially."""

    def __init__(self, rig, seed=0, tau_samples=20.0, noise_counts=150.0):
        rng = np.random.default_rng(seed)
        self.rig = rig
        c = rig.channels
        self.sens = 4000.0 * (1 + rng.uniform(-0.04, 0.04, c))
        self.offsets = rng.uniform(-1e5, 1e5, c)
        self.cross = np.eye(c)
        for p in rig.plates:
            ch = list(p.channels)
            for i in ch:
                for j in ch:
                    if i != j:
                        self.cross[i, j] = rng.uniform(-0.01, 0.01)
        self.rng = rng
        self.noise = noise_counts
        self.alpha = 1.0 - np.exp(-1.0 / tau_samples)
        self.load = np.zeros(c)
        self.target = np.zeros(c)
        self.t = 0
        self.dead_channel = None  # (channel, from sample)
        self.swing_n = 0.0  # amplitude of an oscillating load (N) on the box

    def forward(self, plate_name):
        p = self.rig.plate(plate_name)
        ch = list(p.channels)
        return (np.diag(self.sens) @ self.cross)[np.ix_(ch, ch)]

    def place_mass(self, plate, x_mm, y_mm, mass_kg):
        p = self.rig.plate(plate)
        xy = np.array([[c.x_mm, c.y_mm] for c in p.cells])
        a, b = np.abs(xy[:, 0]).max(), np.abs(xy[:, 1]).max()
        f = 0.25 * mass_kg * G * (1 + np.sign(xy[:, 0]) * x_mm / a) * (1 + np.sign(xy[:, 1]) * y_mm / b)
        self.target[list(p.channels)] += f

    def clear_masses(self):
        self.target[:] = 0.0

    def read_counts(self, n):
        out = np.empty((n, self.rig.channels))
        for i in range(n):
            self.load += self.alpha * (self.target - self.load)
            out[i] = self.load
        if self.swing_n:
            out[:, 0:4] += self.swing_n * np.sin(2 * np.pi * 2.0 * (self.t + np.arange(n)) / 1000.0)[:, None]
        counts = self.offsets + out @ (np.diag(self.sens) @ self.cross).T + self.rng.normal(0, self.noise, out.shape)
        if self.dead_channel is not None:
            ch, start = self.dead_channel
            counts[max(start - self.t, 0):, ch] = 0
        self.t += n
        return np.round(counts).astype(np.int32)


FAST = ProcedureSettings.fast()


@pytest.fixture
def rig():
    return default_rig()


def run(rig, sim, plate="box", on_stop=None, **kw):
    proc = CalibrationProcedure(rig, plate, settings=kw.pop("settings", FAST), **kw)
    robot = SimRobot(sim)
    return proc, drive(proc, sim.read_counts, on_prompt=robot.act, on_stop=on_stop, max_samples=2_000_000)


def test_full_procedure_recovers_the_known_matrix(rig):
    sim = SyntheticRig(rig, seed=1)
    proc, res = run(rig, sim, "floor_left")
    assert proc.state == DONE
    g = res.geometry
    xy_m = g.cell_xy_mm / 1000
    a = np.vstack([np.ones(4), xy_m[:, 1], -xy_m[:, 0]])
    expected = a @ np.linalg.inv(sim.forward("floor_left"))
    np.testing.assert_allclose(res.fit.linear, expected, rtol=2e-3, atol=2e-3 * np.abs(expected).max())
    np.testing.assert_allclose(res.offsets_counts, sim.offsets[list(g.channels)], atol=0.05 * 4000)  # 0.05 N
    # an independent load, converted with the fitted calibration
    f_true = np.array([300.0, 200.0, 100.0, 150.0])
    d = sim.forward("floor_left") @ f_true
    w = res.fit.apply(d)
    assert abs(w[0] - f_true.sum()) < 0.5
    rep = res.report
    assert rep.verification.fz_error_pct_fs < 0.05 and rep.verification.cop_rms_mm < 0.5
    assert rep.verification_nominal.cop_rms_mm > 5 * rep.verification.cop_rms_mm
    assert rep.verification.n_points == 5 * 2 * 7  # 5 positions x 2 repeats x (4 up + 3 down)
    assert rep.fit.n_points == 9 * 2 * 9
    assert rep.llf_n == pytest.approx(2.4 * rep.residual_sd_n)
    assert np.isfinite(rep.creep_pct) and np.isfinite(rep.zero_return_n)
    assert res.samples_used == proc.samples_fed < 400_000  # runs on samples, far faster than real time


def test_plate_loaded_during_tare_is_caught_and_resumed(rig):
    sim = SyntheticRig(rig, seed=2)
    sim.place_mass("box", 0.0, 0.0, 25.0)  # someone left a 25 kg plate on the box
    proc = CalibrationProcedure(rig, "box", settings=FAST)
    while proc.state != FAULT:  # warm-up and tare see a steady load and accept it
        proc.feed(sim.read_counts(50))
        if proc.prompt.kind == "load":
            sim.clear_masses()
            sim.place_mass("box", proc.prompt.x_mm, proc.prompt.y_mm, proc.prompt.mass_kg)
        assert proc.samples_fed < 100_000
    assert "loaded during the tare" in proc.message and proc.step.kind == "tare"
    proc.resume()
    assert proc.state == TARE
    robot = SimRobot(sim)
    robot.act(proc.prompt)  # the tare prompt: the plate is cleared
    res = drive(proc, sim.read_counts, on_prompt=robot.act, max_samples=2_000_000)
    assert res.report.verification.fz_error_pct_fs < 0.05


def test_reference_zero_refuses_a_loaded_tare_at_once(rig):
    sim = SyntheticRig(rig, seed=3)
    ref = sim.offsets[:4]
    sim.place_mass("box", 0.0, 0.0, 10.0)
    proc = CalibrationProcedure(rig, "box", settings=FAST, reference_offsets_counts=ref)
    while proc.state not in (FAULT, LOADING):
        proc.feed(sim.read_counts(50))
    assert proc.state == FAULT
    m = re.search(r"plate is loaded during tare \(reads ([0-9.]+) N above its zero\)", proc.message)
    assert m and abs(float(m.group(1)) - 10 * G) < 0.06 * 10 * G  # nominal gains are within a few %


def test_dying_channel_stops_the_step_and_resumes_there(rig):
    sim = SyntheticRig(rig, seed=4)
    sim.dead_channel = (2, 30_000)
    stops = []

    def on_stop(p):
        stops.append((p.step.index, p.message))
        sim.dead_channel = None  # the technician re-seats the connector
        return True

    proc, res = run(rig, sim, on_stop=on_stop)
    assert len(stops) == 1
    idx, msg = stops[0]
    assert "cell box_back_right (channel 2) reads constant 0: disconnected?" in msg
    assert proc.steps[idx].kind == "load"
    assert any("resumed: " in line for line in proc.log)
    assert res.report.verification.cop_rms_mm < 0.5


def test_dead_channel_without_repair_aborts_with_message(rig):
    sim = SyntheticRig(rig, seed=4)
    sim.dead_channel = (1, 0)
    with pytest.raises(CalibrationAborted, match="channel 1\\) reads constant 0"):
        run(rig, sim)


def test_reversed_cell_is_reported(rig):
    sim = SyntheticRig(rig, seed=5)
    sim.sens[9] *= -1
    with pytest.raises(CalibrationAborted, match="cell fr_front_right \\(channel 9\\) responds negatively to load.*reversed polarity"):
        run(rig, sim, "floor_right")


def test_mass_that_never_settles_times_out_and_resumes(rig):
    sim = SyntheticRig(rig, seed=6)
    proc = CalibrationProcedure(rig, "box", settings=FAST)
    robot = SimRobot(sim)
    last = None
    while proc.state not in (TIMEOUT, DONE):
        if proc.prompt.step_index != last:
            last = proc.prompt.step_index
            robot.act(proc.prompt)
            if proc.step.kind == "load" and proc.step.mass_kg == 40.0:
                sim.swing_n = 30.0  # the stacked mass swings
        proc.feed(sim.read_counts(50))
    assert proc.state == TIMEOUT
    assert "expected 392.3 N (40 kg) within 5 s but load never became steady" in proc.message
    stuck_at = proc.step.index
    sim.swing_n = 0.0
    proc.resume()
    assert proc.state == LOADING and proc.step.index == stuck_at
    while proc.step.index == stuck_at:
        proc.feed(sim.read_counts(50))
    assert proc.state == LOADING  # accepted once steady


def test_wrong_mass_times_out_with_the_reading(rig):
    sim = SyntheticRig(rig, seed=7)
    proc = CalibrationProcedure(rig, "box", settings=FAST)
    while proc.step.kind != "load":
        proc.feed(sim.read_counts(50))
    sim.place_mass("box", 0.0, 0.0, 5.0)  # 5 kg instead of the prompted 10 kg
    while proc.state != TIMEOUT:
        proc.feed(sim.read_counts(50))
    assert "expected 98.1 N (10 kg)" in proc.message and "reading steady at 49" in proc.message


def test_plans_with_too_few_positions_loads_or_repeats_are_refused(rig):
    from steplab.calibration.geometry import plate_geometry

    plan = CalibrationPlan.default(plate_geometry(rig, "box"))
    few = CalibrationPlan(plan.fit_masses_kg, plan.fit_positions_mm[:5], 2, plan.verify_masses_kg, plan.verify_positions_mm)
    with pytest.raises(ValueError, match="5 distinct fit positions; at least 9 are needed"):
        CalibrationProcedure(rig, "box", plan=few)
    with pytest.raises(ValueError, match="3 distinct fit loads"):
        CalibrationProcedure(rig, "box", plan=CalibrationPlan((10, 20, 30), plan.fit_positions_mm, 2, (15,), plan.verify_positions_mm))
    with pytest.raises(ValueError, match="1 repeats"):
        CalibrationProcedure(rig, "box", plan=CalibrationPlan(plan.fit_masses_kg, plan.fit_positions_mm, 1, plan.verify_masses_kg,
                                                              plan.verify_positions_mm))
    with pytest.raises(ValueError, match="must differ from the fit masses"):
        CalibrationProcedure(rig, "box", plan=CalibrationPlan(plan.fit_masses_kg, plan.fit_positions_mm, 2, (20.0,),
                                                              plan.verify_positions_mm))
    with pytest.raises(ValueError, match="is a fit position"):
        CalibrationProcedure(rig, "box", plan=CalibrationPlan(plan.fit_masses_kg, plan.fit_positions_mm, 2, (15.0,),
                                                              plan.fit_positions_mm[:1]))
    with pytest.raises(ValueError, match="no plate named 'roof'"):
        CalibrationProcedure(rig, "roof")


def test_prompts_walk_the_plan_up_then_down(rig):
    proc = CalibrationProcedure(rig, "box", settings=FAST)
    loads = [s for s in proc.steps if s.kind == "load" and s.phase == "fit" and s.repeat == 0 and s.position_index == 0]
    assert [s.mass_kg for s in loads] == [10, 20, 40, 60, 80, 60, 40, 20, 10, 0]
    assert [s.direction for s in loads] == [1, 1, 1, 1, 1, -1, -1, -1, -1, 0]
    assert proc.prompt.kind == "warmup" and "unloaded" in proc.prompt.text
    with pytest.raises(ValueError, match="counts must be"):
        proc.feed(np.zeros((10, 4)))
    with pytest.raises(ValueError, match="nothing to resume"):
        proc.resume()
