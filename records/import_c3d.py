"""C3D force platforms (TYPE 1–4) → per-plate vertical force and moments in a lab frame with z up.

The file is read by ezc3d in a child process (:mod:`steplab.records.import_c3d_reader`),
so that a corrupt file that crashes the reader becomes a one-line error here.  Before
that, the file's own header is checked against its length: a cut file is refused.

The plate conversion follows the C3D user guide (c3d.org, FORCE_PLATFORM group),
implemented here from the analog channels rather than taken from ezc3d's
``extract_forceplat_data``: ezc3d's TYPE-1 moments have the opposite sign of its own
TYPE-2 moments (F × COP − Tz instead of COP × F + Tz), and for TYPE-3 it negates the
sensor half-spacings a, b together with a positive az0 (a mirrored COP).

Every type is brought to the same form, in the plate's own axes: the force F the
subject applies to the plate and the moment M about the centre of the plate's working
surface, in N and N·m.  The plate axes are turned into the lab axes with the rotation
the CORNERS define (corner k lies in quadrant k of the plate frame: +x+y, −x+y, −x−y,
+x−y; the plate's z axis points down into the plate).

**The lab's vertical** (decision 0012) is not assumed to be z: each plate's upward
normal (−z of the plate frame, from its CORNERS) names the lab axis closest to it
(``+Z`` in a z-up lab, ``+Y`` in a y-up lab...), which must be the same for every plate
and within ``MAX_TILT_DEG`` of each normal.  Forces and moments are then expressed in
the *vertical lab frame*: z along that lab axis (up), x along the first other lab axis
(X, or Y when X is vertical), y = z × x (right-handed).  In a z-up lab this frame is
the lab frame itself.  ``Fz`` is positive under load; the COP follows as
``x = −My/Fz``, ``y = Mx/Fz`` about the plate's surface centre in that frame.

* TYPE 1: Fx Fy Fz Px Py Tz; (Px, Py) is the COP on the surface about its centre:
  M = P × F + (0, 0, Tz).
* TYPE 2: Fx Fy Fz Mx My Mz about the plate origin O; ORIGIN is the vector d from O to
  the surface centre (z < 0 for an origin below the surface; a positive z is the older
  AMTI description of the opposite vector and is negated): M_centre = M_O + F × d.
* TYPE 3 (Kistler): Fx12 Fx34 Fy14 Fy23 Fz1 Fz2 Fz3 Fz4 with sensor k in quadrant k
  at (±a, ±b) and the surface az0 above the sensor plane (ORIGIN = a, b, az0; az0 < 0,
  a positive az0 is taken as its magnitude):
  Mx = b (Fz1 + Fz2 − Fz3 − Fz4), My = a (−Fz1 + Fz2 + Fz3 − Fz4),
  Mz = b (Fx34 − Fx12) + a (Fy14 − Fy23), then moved to the surface with d = (0, 0, az0).
* TYPE 4: as TYPE 2 after the 6×6 CAL_MATRIX turns the six channels into F and M_O.

``FORCE_PLATFORM:ZERO`` (first, last frame, 1-based) names the unloaded frames whose
mean is each channel's baseline; it is subtracted when the range is valid and the
plate carries less than ``ZERO_MAX_LOAD_N`` there (else the range is not unloaded:
flagged ``zero_range_loaded`` and not applied).
"""

from __future__ import annotations

import json
import math
import os
import struct
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from steplab.dsp.params import PlateForces
from steplab.records.import_common import (
    COP_OUTSIDE_MARGIN_MM,
    IGNORE_ROLE,
    ForceImportError,
    LoadedTrial,
    add_flag,
    cop_check_force_n,
    flat_top_samples,
    plate_cop_mm,
    plate_roles,
    reconcile_rate,
    refuse_impossible_force,
)

READER = Path(__file__).with_name("import_c3d_reader.py")
#: Address space of the reader child: 1 GiB and 40 × the file (ezc3d's objects and the arrays).
READER_BASE_BYTES, READER_BYTES_PER_FILE_BYTE = 1 << 30, 40
MAX_TILT_DEG = 10.0
ZERO_MAX_LOAD_N = 100.0
PLATE_SIDE_MM = (50.0, 5000.0)  # a plate's side: a degenerate CORNERS lies outside
MAX_CORNER_MM = 100_000.0  # a plate 100 m from the lab origin is no plate
MAX_ORIGIN_MM = 2000.0

_C3D_CHANNELS = {1: 6, 2: 6, 3: 8, 4: 6}
_LENGTH_SCALE_M = {"mm": 1e-3, "cm": 1e-2, "m": 1.0, "dm": 0.1}
_LENGTH_WORDS = {"millimeters": "mm", "millimetres": "mm", "centimeters": "cm", "centimetres": "cm",
                 "meters": "m", "metres": "m", "decimeters": "dm", "decimetres": "dm"}
_FORCE_SCALE_N = {"n": 1.0, "nt": 1.0, "newton": 1.0, "newtons": 1.0, "kn": 1e3, "lbf": 4.4482216152605}
#: Labels of a raw or voltage channel: the values after ANALOG:SCALE are taken in the C3D
#: guide's default units (N, N·POINT:UNITS, POINT:UNITS), as ezc3d and other readers do.
_UNITLESS = {"", "v", "mv", "volt", "volts", "adc", "count", "counts", "bit", "bits"}
_AXES = ("X", "Y", "Z")


# -- file structure ------------------------------------------------------------------

def _raw_header(p: Path, size: int) -> dict:
    """The C3D header block (512 bytes) as stored, before any reader interprets it."""
    def bad(why: str) -> ForceImportError:
        return ForceImportError(f"{p.name}: cannot read C3D file ({why})")

    with open(p, "rb") as fh:
        head = fh.read(512)
        if len(head) < 512:
            raise bad(f"{size} bytes, shorter than the 512-byte header")
        if head[1] != 0x50:
            raise bad("not a C3D file: its second byte is not 0x50")
        param_block = head[0]
        if param_block < 2:
            raise bad(f"parameter section at block {param_block}")
        fh.seek((param_block - 1) * 512)
        ph = fh.read(4)
    if len(ph) < 4:
        raise bad(f"truncated: the parameter section at block {param_block} lies beyond the end of the file")
    processor = ph[3] - 83
    if processor not in (1, 2, 3):
        raise bad(f"unknown processor type {ph[3]} in the parameter section")
    endian = ">" if processor == 3 else "<"
    n_points, n_analog_per_frame, first, last, _gap = struct.unpack(endian + "HHHHH", head[2:12])
    data_start, analog_per_frame = struct.unpack(endian + "HH", head[16:20])
    sign_byte = {1: head[15], 2: head[13], 3: head[12]}[processor]  # Intel, DEC, MIPS floats
    return {"points_rate_hz": _raw_float(head[20:24], processor), "n_points": n_points,
            "n_analog_per_frame": n_analog_per_frame, "first_frame": first,
            "last_frame": last, "data_start_block": data_start, "float_data": bool(sign_byte & 0x80),
            "analog_samples_per_frame": analog_per_frame}


def _raw_float(b: bytes, processor: int) -> float:
    """A 4-byte float of the file: IEEE little-endian (Intel), VAX F (DEC) or IEEE big-endian (MIPS)."""
    if processor == 3:
        return float(struct.unpack(">f", b)[0])
    if processor == 2:  # VAX F: the 16-bit words swapped, exponent bias 128 and a 0.1f mantissa: IEEE / 4
        return float(struct.unpack("<f", bytes((b[2], b[3], b[0], b[1])))[0]) / 4.0
    return float(struct.unpack("<f", b)[0])


def _check_length(p: Path, size: int, hdr: dict, params: dict) -> int:
    """Frames the header declares; refuses a file shorter than its data (cut, or a garbled header)."""
    n_frames = hdr["last_frame"] - hdr["first_frame"] + 1
    if n_frames < 1:
        raise ForceImportError(f"{p.name}: cannot read C3D file (the header declares frames "
                               f"{hdr['first_frame']}..{hdr['last_frame']})")
    if hdr["last_frame"] == 0xFFFF:  # a 16-bit header overflows: long files give the count in POINT:FRAMES
        frames_param: Any = (params.get("POINT") or {}).get("FRAMES")
        try:
            n_frames = max(n_frames, int(np.atleast_1d(frames_param)[0]))
        except (TypeError, ValueError, IndexError):
            pass
    start = hdr["data_start_block"]
    ds_param = (params.get("POINT") or {}).get("DATA_START")
    if start == 0 and ds_param is not None:
        start = int(np.atleast_1d(ds_param)[0])
    bytes_per_value = 4 if hdr["float_data"] else 2
    frame_bytes = (4 * hdr["n_points"] + hdr["n_analog_per_frame"]) * bytes_per_value
    need = (max(start, 1) - 1) * 512 + n_frames * frame_bytes
    if size < need:
        held = max(0, size - (max(start, 1) - 1) * 512) // frame_bytes if frame_bytes else 0
        raise ForceImportError(f"{p.name}: truncated C3D file: the header declares {n_frames} frames "
                               f"({need} bytes) but the file has {size} bytes ({held} whole frames)")
    return n_frames


def read_c3d_isolated(p: Path, timeout_s: float | None = None) -> tuple[np.ndarray, dict]:
    """(analogs float64 (channels, samples), meta) read by ezc3d in a child process.

    The child's address space is capped (1 GiB + 40 × the file size) and its time
    limited (60 s + 20 s per MB).  A crash of the reader (a signal), its refusal or
    no answer in time becomes a ForceImportError naming the file.
    """
    size = p.stat().st_size
    if timeout_s is None:
        timeout_s = 60.0 + 20.0 * size / 1e6
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHONWARNINGS")}
    env.update(OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")  # no thread pools to reserve
    max_bytes = READER_BASE_BYTES + READER_BYTES_PER_FILE_BYTE * size
    with tempfile.TemporaryDirectory(prefix="steplab-c3d-") as tmp:
        out = Path(tmp) / "c3d.npz"
        try:
            r = subprocess.run([sys.executable, str(READER), str(p), str(out), str(max_bytes)], capture_output=True,
                               text=True, timeout=timeout_s, stdin=subprocess.DEVNULL, env=env)
        except subprocess.TimeoutExpired:
            raise ForceImportError(f"{p.name}: cannot read C3D file (the reader gave no answer in "
                                   f"{timeout_s:.0f} s)") from None
        if r.returncode < 0:
            raise ForceImportError(f"{p.name}: cannot read C3D file (the C3D reader crashed with signal "
                                   f"{-r.returncode}: the file is corrupt)")
        if r.returncode != 0 or not out.exists():
            lines = [ln for ln in r.stderr.strip().splitlines() if ln.strip()]
            msg = lines[-1].strip() if lines else f"reader exit status {r.returncode}"
            raise ForceImportError(f"{p.name}: cannot read C3D file ({msg})")
        with np.load(out, allow_pickle=False) as z:
            analogs = np.array(z["analogs"], dtype=np.float64)
            meta = json.loads(str(z["meta"]))
    return analogs, meta


# -- parameters and units --------------------------------------------------------------

def _param(params: dict, group: str, name: str, path: Path, required: bool = True):
    value = (params.get(group) or {}).get(name)
    if value is None:
        if required:
            raise ForceImportError(f"{path.name}: C3D parameter {group}:{name} is missing")
        return None
    return value


def _unit_key(u) -> str:
    s = str(u).strip().lower()
    for ch in ".·*-_ ":
        s = s.replace(ch, "")
    return s


def length_unit_scale_m(unit: str) -> float | None:
    """Metres per unit of a length: ``mm``, ``m``, ``cm``, ``meters`` and their truncations (``mete``)."""
    u = _unit_key(unit)
    if u in _LENGTH_SCALE_M:
        return _LENGTH_SCALE_M[u]
    if len(u) >= 4:
        for word, short in _LENGTH_WORDS.items():
            if word.startswith(u) or (u.startswith(word) and u[len(word):] in ("", "s")):
                return _LENGTH_SCALE_M[short]
    return None


def force_unit_scale_n(unit) -> float | None:
    """N per unit of a force channel (``N``, ``NT``, ``kN``, ``lbf``; a volt or ADC label: 1); None if unknown."""
    u = _unit_key(unit) if unit is not None else ""
    if u in _FORCE_SCALE_N:
        return _FORCE_SCALE_N[u]
    if u in _UNITLESS:
        return 1.0
    return None


def moment_unit_scale_nm(unit, length_m: float) -> float | None:
    """N·m per unit of a moment channel: ``Nmm``, ``Nm``, ``N.cm``, ``NTmm``...; a volt or ADC label:
    N·(POINT:UNITS); None if unknown."""
    u = _unit_key(unit) if unit is not None else ""
    if u in _UNITLESS:
        return length_m
    for fu in sorted(_FORCE_SCALE_N, key=len, reverse=True):
        rest = u[len(fu):]
        if u.startswith(fu) and rest:
            s = length_unit_scale_m(rest)
            if s is not None:
                return _FORCE_SCALE_N[fu] * s
    if u in ("nmeter", "newtonmeter", "newtonmetre"):
        return 1.0
    return None


# -- geometry ----------------------------------------------------------------------------

def plate_rotation(corners_mm: np.ndarray, where: str) -> tuple[np.ndarray, tuple[float, float]]:
    """(3×3 rotation whose columns are the plate's x, y, z axes in the lab, half-sizes (x, y) [mm]).

    Refuses CORNERS that are not a plate: not finite, far from the lab, sides outside
    50..5000 mm, or not a rectangle (opposite sides or diagonals differ by > 5 %).
    """
    c = np.asarray(corners_mm, dtype=np.float64)
    if not np.all(np.isfinite(c)) or np.max(np.abs(c)) > MAX_CORNER_MM:
        raise ForceImportError(f"{where}: FORCE_PLATFORM:CORNERS are degenerate (a corner is not finite "
                               f"or more than {MAX_CORNER_MM / 1000:g} m from the lab origin)")
    sides = [float(np.linalg.norm(c[:, k] - c[:, (k + 1) % 4])) for k in range(4)]
    diags = [float(np.linalg.norm(c[:, 0] - c[:, 2])), float(np.linalg.norm(c[:, 1] - c[:, 3]))]
    lo, hi = PLATE_SIDE_MM
    rect = (abs(sides[0] - sides[2]) <= 0.05 * max(sides[0], sides[2])
            and abs(sides[1] - sides[3]) <= 0.05 * max(sides[1], sides[3])
            and abs(diags[0] - diags[1]) <= 0.05 * max(diags))
    if not all(lo <= s <= hi for s in sides) or not rect:
        raise ForceImportError(f"{where}: FORCE_PLATFORM:CORNERS are degenerate (sides "
                               f"{', '.join(f'{s:.4g}' for s in sides)} mm; a plate is a rectangle with "
                               f"sides of {lo:g}..{hi:g} mm)")
    x = c[:, 0] - c[:, 1]
    y = c[:, 0] - c[:, 3]
    z = np.cross(x, y)
    y = np.cross(z, x)
    rot = np.column_stack((x / np.linalg.norm(x), y / np.linalg.norm(y), z / np.linalg.norm(z)))
    return rot, (0.5 * float(np.linalg.norm(c[:, 0] - c[:, 1])), 0.5 * float(np.linalg.norm(c[:, 0] - c[:, 3])))


def vertical_lab_frame(rotations: list[np.ndarray], path: Path) -> tuple[str, np.ndarray, list[float]]:
    """(name of the lab's vertical axis such as ``"+Y"``, 3×3 basis (columns x, y, z in the lab), tilts [deg]).

    Each plate's upward normal is −z of its frame; the lab axis closest to the normals
    is the lab's vertical.
    """
    ups = [-r[:, 2] for r in rotations]
    axis_of = [int(np.argmax(np.abs(u))) for u in ups]
    if len(set(axis_of)) != 1:
        names = ", ".join(f"plate {i + 1}: {_AXES[k]}" for i, k in enumerate(axis_of))
        raise ForceImportError(f"{path.name}: the force platforms' normals point along different lab axes "
                               f"({names}); CORNERS are inconsistent")
    k = axis_of[0]
    tilts = [math.degrees(math.acos(min(1.0, abs(float(u[k]))))) for u in ups]
    worst = int(np.argmax(tilts))
    if tilts[worst] > MAX_TILT_DEG:
        raise ForceImportError(f"{path.name}: force platform {worst + 1} is tilted {tilts[worst]:.1f}° from "
                               f"the lab's {_AXES[k]} axis (at most {MAX_TILT_DEG:g}°): a sloped plate is not "
                               "supported")
    votes = sum(1.0 if u[k] > 0 else -1.0 for u in ups)
    sign = 1.0 if votes > 0 or (votes == 0 and ups[0][k] > 0) else -1.0
    ez = np.zeros(3)
    ez[k] = sign
    ex = np.zeros(3)
    ex[0 if k != 0 else 1] = 1.0
    ey = np.cross(ez, ex)
    return ("+" if sign > 0 else "-") + _AXES[k], np.column_stack((ex, ey, ez)), tilts


# -- plate conversion ---------------------------------------------------------------

def plate_forces(kind: int, ch: np.ndarray, units: list, origin: np.ndarray, length_m: float,
                 cal: np.ndarray | None, where: str) -> tuple[np.ndarray, np.ndarray]:
    """Force on the plate [N] and moment about the surface centre [N·m], (3, n) each, plate axes."""
    def force_scale(j: int) -> float:
        s = force_unit_scale_n(units[j])
        if s is None:
            raise ForceImportError(f"{where}: force channel {j + 1} has the unknown unit {units[j]!r} "
                                   "(N, NT, kN or lbf expected)")
        return s

    def moment_scale(j: int) -> float:
        u = units[j]
        s = moment_unit_scale_nm(u, length_m)
        if s is None:
            raise ForceImportError(f"{where}: moment channel {j + 1} has the unknown unit {u!r} "
                                   "(N·mm or N·m expected)")
        return s

    o = origin * length_m
    if kind == 1:
        f = ch[0:3] * np.array([force_scale(j) for j in range(3)])[:, None]
        pos_scale = []
        for j in (3, 4):
            u = _unit_key(units[j]) if units[j] is not None else ""
            s = length_m if u in _UNITLESS else length_unit_scale_m(u)
            if s is None:
                raise ForceImportError(f"{where}: COP channel {j + 1} has the unknown unit {units[j]!r} "
                                       "(mm or m expected)")
            pos_scale.append(s)
        px, py = ch[3] * pos_scale[0], ch[4] * pos_scale[1]
        tz = ch[5] * moment_scale(5)
        m = np.vstack((py * f[2], -px * f[2], px * f[1] - py * f[0] + tz))
        return f, m
    if kind in (2, 4):
        if kind == 4:
            if cal is None:
                raise ForceImportError(f"{where}: TYPE-4 plate without a 6×6 FORCE_PLATFORM:CAL_MATRIX")
            ch = cal @ ch
            # the matrix gives N and N·(POINT:UNITS); the raw channels are volts
            f = ch[0:3].copy()
            m = ch[3:6] * length_m
        else:
            f = ch[0:3] * np.array([force_scale(j) for j in range(3)])[:, None]
            m = ch[3:6] * np.array([moment_scale(j) for j in range(3, 6)])[:, None]
        d = -o if o[2] > 0 else o
        return f, m + np.cross(f, d, axisa=0, axisb=0, axisc=0)
    # TYPE 3 (Kistler)
    scale = np.array([force_scale(j) for j in range(8)])[:, None]
    fx12, fx34, fy14, fy23, fz1, fz2, fz3, fz4 = ch * scale
    a, b, az0 = float(o[0]), float(o[1]), -abs(float(o[2]))
    f = np.vstack((fx12 + fx34, fy14 + fy23, fz1 + fz2 + fz3 + fz4))
    m = np.vstack((b * (fz1 + fz2 - fz3 - fz4), a * (-fz1 + fz2 + fz3 - fz4), b * (fx34 - fx12) + a * (fy14 - fy23)))
    return f, m + np.cross(f, np.array([0.0, 0.0, az0]), axisa=0, axisb=0, axisc=0)


def _zero_range(params: dict, n_frames: int, per_frame: int, n_samples: int) -> tuple[int, int] | None:
    """(first, last) 1-based frames of FORCE_PLATFORM:ZERO when they name frames of the file, else None."""
    z = (params.get("FORCE_PLATFORM") or {}).get("ZERO")
    try:
        a, b = (int(v) for v in np.atleast_1d(np.asarray(z, dtype=np.float64))[:2])
    except (TypeError, ValueError):
        return None
    if not (1 <= a <= b <= n_frames) or b * per_frame > n_samples:
        return None
    return a, b


def _analog_rate(hdr: dict, params: dict, p: Path) -> float:
    """ANALOG:RATE when the file gives it (an analog-only file has POINT:RATE 0), else the header's.

    When both are given they must agree to 1 %.
    """
    rate = None
    ar = (params.get("ANALOG") or {}).get("RATE")
    try:
        v = float(np.atleast_1d(np.asarray(ar, dtype=np.float64))[0]) if ar is not None else math.nan
    except (TypeError, ValueError, IndexError):
        v = math.nan
    h = float(hdr["points_rate_hz"]) * hdr["analog_samples_per_frame"]  # as stored: ezc3d derives its own
    header_ok = math.isfinite(h) and h > 0
    if math.isfinite(v) and v > 0:
        rate = v
        if header_ok and abs(h - v) > 0.01 * v:  # a garbled rate byte on one side
            raise ForceImportError(f"{p.name}: ANALOG:RATE {v:g} Hz contradicts the header's analog rate {h:g} Hz "
                                   "(POINT:RATE × analog samples per frame); the file is corrupt")
    elif header_ok:
        rate = h
    if rate is None:
        raise ForceImportError(f"{p.name}: the C3D file has no valid analog rate (ANALOG:RATE and POINT:RATE "
                               "are both missing or zero)")
    return rate


def load_c3d(p: Path, given_rate: float | None, plates) -> LoadedTrial:
    """Read a C3D file's force platforms (see the module docstring)."""
    size = p.stat().st_size
    hdr = _raw_header(p, size)
    analogs, meta = read_c3d_isolated(p)
    params = meta["parameters"]
    n_frames = _check_length(p, size, hdr, params)
    per_frame = max(1, int(meta.get("analog_samples_per_frame") or hdr["analog_samples_per_frame"] or 1))
    if analogs.ndim != 2:
        raise ForceImportError(f"{p.name}: cannot read C3D file (analog data of shape {analogs.shape})")
    n_ch, n = analogs.shape
    if n_ch and n < n_frames * per_frame:
        raise ForceImportError(f"{p.name}: truncated C3D file: the header declares {n_frames} frames "
                               f"({n_frames * per_frame} analog samples) but the file holds {n}")
    if "FORCE_PLATFORM" not in params:
        raise ForceImportError(f"{p.name}: the C3D file has no force platforms")
    used_v = np.atleast_1d(_param(params, "FORCE_PLATFORM", "USED", p))
    n_plates = int(used_v[0]) if used_v.size else 0
    if n_plates < 1:
        raise ForceImportError(f"{p.name}: the C3D file has no force platforms")
    if n_plates > 64:
        raise ForceImportError(f"{p.name}: FORCE_PLATFORM:USED = {n_plates} is not a number of plates")
    rate = reconcile_rate(_analog_rate(hdr, params, p), given_rate, p, "C3D analog rate")
    roles = plate_roles(plates, n_plates, p)

    try:
        types = [int(t) for t in np.atleast_1d(_param(params, "FORCE_PLATFORM", "TYPE", p))]
        channel = np.asarray(_param(params, "FORCE_PLATFORM", "CHANNEL", p), dtype=np.float64)
        corners = np.asarray(_param(params, "FORCE_PLATFORM", "CORNERS", p), dtype=np.float64)
        origin = np.asarray(_param(params, "FORCE_PLATFORM", "ORIGIN", p), dtype=np.float64)
        cal_all = _param(params, "FORCE_PLATFORM", "CAL_MATRIX", p, required=False)
        cal_all = None if cal_all is None else np.asarray(cal_all, dtype=np.float64)
    except (TypeError, ValueError):
        raise ForceImportError(f"{p.name}: FORCE_PLATFORM parameters are not numbers") from None
    point_units = _param(params, "POINT", "UNITS", p, required=False)
    pu = str(point_units[0]) if isinstance(point_units, list) and point_units else ""
    length_m = 1e-3 if not pu.strip() else length_unit_scale_m(pu)
    if length_m is None:
        raise ForceImportError(f"{p.name}: POINT:UNITS {pu!r} is not a length unit (mm, cm or m expected)")
    units_all = _param(params, "ANALOG", "UNITS", p, required=False)
    units_all = list(units_all) if isinstance(units_all, list) else []

    if channel.ndim == 1:
        channel = channel.reshape(-1, 1)
    if len(types) < n_plates or channel.ndim != 2 or channel.shape[1] < n_plates:
        raise ForceImportError(f"{p.name}: FORCE_PLATFORM:TYPE/CHANNEL describe fewer than USED = {n_plates} plates")
    if not (corners.size >= 12 * n_plates and corners.size % 12 == 0 and origin.size >= 3 * n_plates
            and origin.size % 3 == 0):
        raise ForceImportError(f"{p.name}: FORCE_PLATFORM:CORNERS/ORIGIN describe fewer than USED = {n_plates} plates")
    corners = corners.reshape(3, 4, -1)
    origin = origin.reshape(3, -1)
    zero = _zero_range(params, n_frames, per_frame, n)

    kept = [i for i, r in enumerate(roles) if r != IGNORE_ROLE]
    raw: dict[int, tuple] = {}
    for i in kept:
        where = f"{p.name}: force platform {i + 1}"
        kind = types[i]
        if kind not in _C3D_CHANNELS:
            raise ForceImportError(f"{where} is of TYPE {kind}; only TYPE 1-4 are supported")
        need = _C3D_CHANNELS[kind]
        if channel.shape[0] < need:
            raise ForceImportError(f"{where}: TYPE {kind} needs {need} channels, "
                                   f"FORCE_PLATFORM:CHANNEL has {channel.shape[0]}")
        idx = [int(v) - 1 for v in channel[:need, i]]
        if any(j < 0 or j >= n_ch for j in idx):
            raise ForceImportError(f"{where}: FORCE_PLATFORM:CHANNEL names a channel outside 1..{n_ch}")
        if np.max(np.abs(origin[:, i])) * length_m * 1000.0 > MAX_ORIGIN_MM or not np.all(np.isfinite(origin[:, i])):
            raise ForceImportError(f"{where}: FORCE_PLATFORM:ORIGIN {origin[:, i].tolist()} is degenerate "
                                   f"(more than {MAX_ORIGIN_MM:g} mm)")
        cal = None
        if kind == 4 and cal_all is not None and cal_all.size >= 36 * (i + 1) and cal_all.size % 36 == 0:
            cal = cal_all.reshape(6, 6, -1)[:, :, i]
        units = [units_all[j] if j < len(units_all) else None for j in idx]
        rot, half_mm = plate_rotation(corners[:, :, i] * length_m * 1000.0, where)
        ch = analogs[idx]
        if not np.all(np.isfinite(ch)):
            raise ForceImportError(f"{where}: the analog channels hold NaN or inf; the file is corrupt")
        f_p, m_p = plate_forces(kind, ch, units, origin[:, i], length_m, cal, where)
        raw[i] = (f_p, m_p, rot, half_mm, ch, units, cal)

    vertical, basis, tilts = vertical_lab_frame([raw[i][2] for i in kept], p)
    extra: dict = {"c3d_plate_types": types[:n_plates], "c3d_points_rate_hz": float(meta.get("points_rate_hz", 0.0)),
                   "lab_vertical_axis": vertical, "lab_frame": _frame_note(vertical),
                   "plate_tilt_deg": [round(t, 3) for t in tilts]}
    if IGNORE_ROLE in roles:
        extra["ignored_plates"] = [i + 1 for i, r in enumerate(roles) if r == IGNORE_ROLE]
    zero_note: dict = {"frames": list(zero) if zero else None, "applied": [], "baseline_fz_n": []}
    out: dict[str, PlateForces] = {}
    saturated = 0
    cop_outside: dict[str, int] = {}
    for i in kept:
        role = roles[i]
        where = f"{p.name}: force platform {i + 1}"
        f_p, m_p, rot, half_mm, ch, units, cal = raw[i]
        kind = types[i]
        to_v = basis.T @ rot  # plate axes → vertical lab frame
        f_v, m_v = to_v @ f_p, to_v @ m_p
        refuse_impossible_force(f_v, where)
        baseline_fz = None
        if zero is not None:
            lo, hi = (zero[0] - 1) * per_frame, zero[1] * per_frame
            base = np.zeros((ch.shape[0], 1))
            cols = [0, 1, 2, 5] if kind == 1 else list(range(ch.shape[0]))  # TYPE-1 COP channels have no baseline
            base[cols, 0] = ch[cols, lo:hi].mean(axis=1)
            fb, _ = plate_forces(kind, base, units, origin[:, i], length_m, cal, where)
            baseline_fz = float((to_v @ fb)[2, 0])
            if abs(baseline_fz) <= ZERO_MAX_LOAD_N:
                f_p, m_p = plate_forces(kind, ch - base, units, origin[:, i], length_m, cal, where)
                f_v, m_v = to_v @ f_p, to_v @ m_p
                zero_note["applied"].append(i + 1)
            else:
                add_flag(extra, "zero_range_loaded")
        # the plate measures the subject's push (down in the lab): the reaction is up; a file
        # storing the reaction already (its largest |Fz| pointing up) keeps its sign
        fz = f_v[2]
        sign = 1.0 if fz.size and fz[int(np.argmax(np.abs(fz)))] > 0 else -1.0
        if baseline_fz is not None:
            zero_note["baseline_fz_n"].append(round(sign * baseline_fz, 3))
        pf = PlateForces(fz_n=np.ascontiguousarray(sign * fz), mx_nm=np.ascontiguousarray(sign * m_v[0]),
                         my_nm=np.ascontiguousarray(sign * m_v[1]))
        out[role] = pf
        saturated += flat_top_samples(pf.fz_n, rate)
        outside = _cop_outside(pf, basis, rot, half_mm)
        if outside:
            cop_outside[role] = outside
    if zero is not None:
        extra["c3d_zero"] = zero_note
    if saturated:
        extra["saturated_samples"] = saturated  # the analysis flags "saturated"
    if cop_outside:
        extra["cop_outside_plate_samples"] = cop_outside
        add_flag(extra, "cop_outside_plate")
    return LoadedTrial(out, rate, "c3d", extra)


def _frame_note(vertical: str) -> str:
    k = _AXES.index(vertical[1])
    x = _AXES[0 if k != 0 else 1]
    return f"z = lab {vertical} (up), x = lab +{x}, y = z × x"


def _cop_outside(pf: PlateForces, basis: np.ndarray, rot: np.ndarray, half_mm: tuple[float, float]) -> int:
    """Samples loaded with at least cop_check_force_n whose COP lies outside the plate (by the margin)."""
    cop = plate_cop_mm(pf, cop_min_force_n=cop_check_force_n(pf.fz_n))
    ok = np.isfinite(cop[:, 0])
    if not ok.any():
        return 0
    v = np.vstack((cop[ok, 0], cop[ok, 1], np.zeros(int(ok.sum()))))
    in_plate = rot.T @ (basis @ v)  # vertical lab frame → lab → plate axes
    out = (np.abs(in_plate[0]) > half_mm[0] + COP_OUTSIDE_MARGIN_MM) | \
          (np.abs(in_plate[1]) > half_mm[1] + COP_OUTSIDE_MARGIN_MM)
    return int(np.sum(out))
