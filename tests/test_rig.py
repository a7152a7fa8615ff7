"""The rig description is validated once, at the edge: every command refuses a bad rig file in one line."""

from __future__ import annotations

import json
import subprocess

import pytest
from conftest import steplab_cmd

from steplab.acquisition.rig import Rig, RigError, default_rig, load_rig, split_box_rig

NAN = float("nan")


def _bad(change):
    d = json.loads(default_rig().to_json())  # lists, as a rig file holds them
    change(d)
    return d


def _set(path, value):
    def change(d):
        target = d
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value
    return change


BAD_RIGS = {
    "centre_mm with one number": (_set(("plates", 0, "centre_mm"), [0]), "centre_mm"),
    "centre_mm with NaN": (_set(("plates", 1, "centre_mm"), [0, NAN, 0]), "centre_mm"),
    "NaN width": (_set(("plates", 0, "width_mm"), NAN), "width_mm"),
    "negative length": (_set(("plates", 2, "length_mm"), -240.0), "length_mm"),
    "infinite width": (_set(("plates", 0, "width_mm"), float("inf")), "width_mm"),
    "no plates": (_set(("plates",), []), "no plates"),
    "channel out of range": (_set(("plates", 0, "cells", 0, "channel"), 12), "outside 0..11"),
    "channel not an integer": (_set(("plates", 0, "cells", 0, "channel"), 1.5), "not an integer"),
    "channel a string": (_set(("plates", 0, "cells", 0, "channel"), "3"), "not an integer"),
    "NaN cell position": (_set(("plates", 0, "cells", 1, "x_mm"), NAN), "x_mm"),
    "infinite capacity": (_set(("plates", 0, "cells", 1, "capacity_n"), float("inf")), "capacity"),
    "NaN sample rate": (_set(("sample_rate_hz",), NAN), "sample rate"),
    "NaN box height": (_set(("box_height_mm",), NAN), "box height"),
    "a cell that is not an object": (_set(("plates", 0, "cells", 0), 7), "malformed"),
    "plates not a list of objects": (_set(("plates",), [1, 2]), "malformed"),
}


@pytest.mark.parametrize("name", list(BAD_RIGS))
def test_a_bad_rig_description_is_a_rig_error(name):
    change, message = BAD_RIGS[name]
    with pytest.raises(RigError, match=message):
        Rig.from_dict(_bad(change))


@pytest.mark.parametrize("rig", [default_rig(), split_box_rig()], ids=["12ch", "16ch"])
def test_the_shipped_rigs_pass_and_round_trip(rig, tmp_path):
    (tmp_path / "rig.json").write_text(rig.to_json())
    assert load_rig(tmp_path / "rig.json") == rig


# every command that takes --rig refuses these in one line, before anything starts, and writes nothing
COMMANDS = {
    "simulate": ["simulate", "--pty", "--seconds", "5"],
    "calibrate": ["calibrate", "--device", "sim", "--auto", "--out", "cal.json"],
    "record sim": ["record", "--device", "sim", "--seconds", "2", "--out", "t.npz"],
    "run": ["run", "--device", "sim", "--port", "1"],  # refused before the port is even tried
}


@pytest.mark.parametrize("command", list(COMMANDS))
@pytest.mark.parametrize("name", ["centre_mm with one number", "NaN width", "no plates"])
def test_every_command_refuses_a_bad_rig_file_in_one_line(tmp_path, command, name):
    work = tmp_path / "work"
    work.mkdir()
    rig_file = tmp_path / "bad_rig.json"
    rig_file.write_text(json.dumps(_bad(BAD_RIGS[name][0])))  # NaN as JSON writes it (Python reads it back)
    r = subprocess.run(steplab_cmd(*COMMANDS[command], "--rig", str(rig_file)), capture_output=True, text=True,
                       timeout=120, cwd=work)
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 2 and len(lines) == 1 and "Traceback" not in r.stderr, r.stderr
    assert BAD_RIGS[name][1] in lines[0]
    assert list(work.iterdir()) == []  # no trial, no journal, no calibration record
