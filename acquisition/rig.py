"""Rig description: plates, their load cells, geometry and the channel map.

A rig file is JSON (see ``rig_docs/rig_file.md``).  Positions are in millimetres:
cell positions in each plate's own frame (x to the subject's right, y forward,
origin at the plate centre), the plate centre's position in the room frame.
The description is pure data: acquisition stores it in every trial file,
calibration takes plate geometry from it, dsp takes cell positions from it.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, cast

from steplab.constants import ADC_FULL_SCALE_COUNTS as ADC_FULL_SCALE_COUNTS  # re-exported: 24-bit signed converter

RIG_FORMAT_VERSION = 1
PLATE_ROLES = ("box", "floor_left", "floor_right")


class RigError(ValueError):
    """A rig description that cannot be used (message names what is wrong)."""


@dataclass(frozen=True)
class Cell:
    """One load cell: the wire channel it arrives on and where it sits (mm, plate frame)."""

    name: str
    channel: int
    x_mm: float
    y_mm: float
    capacity_n: float = 1961.33  # a 200 kg cell
    nominal_counts_per_n: float = 4000.0


@dataclass(frozen=True)
class Plate:
    """A rigid top on four (or more) cells.

    ``role`` is one of ``PLATE_ROLES`` (other rigs may add roles).  ``centre_mm``
    is the plate centre in the room frame (z = top surface height).
    """

    name: str
    role: str
    width_mm: float  # along x (mediolateral)
    length_mm: float  # along y (anteroposterior)
    centre_mm: tuple[float, float, float]
    cells: tuple[Cell, ...]

    @property
    def channels(self) -> tuple[int, ...]:
        return tuple(c.channel for c in self.cells)

    @property
    def capacity_n(self) -> float:
        return float(sum(c.capacity_n for c in self.cells))


@dataclass(frozen=True)
class Rig:
    """The whole rig: plates, channel count and the default sample rate."""

    name: str
    serial: str
    channels: int
    sample_rate_hz: float
    plates: tuple[Plate, ...]
    box_height_mm: float = 200.0
    format_version: int = RIG_FORMAT_VERSION
    notes: str = field(default="", compare=False)

    # -- lookups -----------------------------------------------------------
    def plate(self, name_or_role: str) -> Plate:
        for p in self.plates:
            if p.name == name_or_role or p.role == name_or_role:
                return p
        raise RigError(f"rig {self.name!r} has no plate named {name_or_role!r}")

    @property
    def plate_names(self) -> tuple[str, ...]:
        return tuple(p.name for p in self.plates)

    # -- serialisation -----------------------------------------------------
    def to_dict(self) -> dict:
        d = asdict(self)
        d["format"] = "steplab-rig"
        return d

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    def hash(self) -> str:
        """SHA-256 of the canonical JSON (notes excluded): names the rig description."""
        d = self.to_dict()
        d.pop("notes", None)
        blob = json.dumps(d, sort_keys=True, separators=(",", ":")).encode()
        return hashlib.sha256(blob).hexdigest()

    @classmethod
    def from_dict(cls, d: dict) -> Rig:
        try:
            if d.get("format", "steplab-rig") != "steplab-rig":
                raise RigError(f"not a steplab rig description (format {d.get('format')!r})")
            version = int(d.get("format_version", RIG_FORMAT_VERSION))
            if version != RIG_FORMAT_VERSION:
                raise RigError(f"rig format version {version} is not supported (expected {RIG_FORMAT_VERSION})")
            plates = tuple(
                Plate(
                    name=str(p["name"]),
                    role=str(p.get("role", p["name"])),
                    width_mm=float(p["width_mm"]),
                    length_mm=float(p["length_mm"]),
                    centre_mm=cast("tuple[float, float, float]", tuple(float(v) for v in p["centre_mm"])),  # length checked by validate
                    cells=tuple(Cell(**_cell_fields(c)) for c in p["cells"]),
                )
                for p in d["plates"]
            )
            rig = cls(
                name=str(d["name"]),
                serial=str(d.get("serial", "")),
                channels=int(d["channels"]),
                sample_rate_hz=float(d["sample_rate_hz"]),
                plates=plates,
                box_height_mm=float(d.get("box_height_mm", 200.0)),
                notes=str(d.get("notes", "")),
            )
        except RigError:
            raise
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise RigError(f"rig description is incomplete or malformed: {exc}") from None
        rig.validate()
        return rig

    def validate(self) -> None:
        """Refuse a description nothing downstream could use (RigError, one line naming what is wrong).

        Checked once, at the edge (``from_dict``, so every rig file and every
        device-reported rig): at least one plate; every number finite; plate
        sizes and cell capacities positive; ``centre_mm`` three numbers; every
        channel an integer in range and used once.
        """
        if isinstance(self.channels, bool) or not isinstance(self.channels, int) or not (1 <= self.channels <= 64):
            raise RigError(f"channel count {self.channels} is out of range 1..64")
        if not (1.0 <= self.sample_rate_hz <= 20000.0):  # also refuses NaN
            raise RigError(f"sample rate {self.sample_rate_hz} Hz is out of range 1..20000")
        if not (math.isfinite(self.box_height_mm) and 0.0 <= self.box_height_mm <= 1000.0):
            raise RigError(f"box height {self.box_height_mm} mm must be a number in 0..1000")
        if not self.plates:
            raise RigError("the rig has no plates; at least one is needed")
        seen: set[int] = set()
        names: set[str] = set()
        for p in self.plates:
            if p.name in names:
                raise RigError(f"plate name {p.name!r} is used twice")
            names.add(p.name)
            for what, v in (("width_mm", p.width_mm), ("length_mm", p.length_mm)):
                if not (math.isfinite(v) and 0.0 < v <= 10_000.0):
                    raise RigError(f"plate {p.name!r}: {what} {v} must be a positive number of millimetres (at most 10 m)")
            if len(p.centre_mm) != 3 or not all(math.isfinite(v) for v in p.centre_mm):
                raise RigError(f"plate {p.name!r}: centre_mm must be three finite numbers [x, y, z], "
                               f"not {list(p.centre_mm)}")
            if len(p.cells) < 3:
                raise RigError(f"plate {p.name!r} has {len(p.cells)} cells; at least 3 are needed for a COP")
            for c in p.cells:
                if isinstance(c.channel, bool) or not isinstance(c.channel, int):
                    raise RigError(f"cell {c.name!r} of plate {p.name!r}: channel {c.channel!r} is not an integer")
                if not (math.isfinite(c.x_mm) and math.isfinite(c.y_mm)):
                    raise RigError(f"cell {c.name!r} of plate {p.name!r}: x_mm and y_mm must be finite numbers")
                if not (0 <= c.channel < self.channels):
                    raise RigError(f"cell {c.name!r} of plate {p.name!r} is on channel {c.channel}, outside 0..{self.channels - 1}")
                if c.channel in seen:
                    raise RigError(f"channel {c.channel} is mapped to more than one cell")
                if not (math.isfinite(c.capacity_n) and c.capacity_n > 0
                        and math.isfinite(c.nominal_counts_per_n) and c.nominal_counts_per_n > 0):
                    raise RigError(f"cell {c.name!r} needs a positive capacity and sensitivity")
                seen.add(c.channel)


def _cell_fields(c: dict) -> dict[str, Any]:
    """A rig file's cell object as Cell arguments: numbers as floats, name and channel as given (validate checks them)."""
    return {k: (float(v) if k not in ("name", "channel") else v) for k, v in c.items()}


def _four_cells(first_channel: int, half_w: float, half_l: float, prefix: str) -> tuple[Cell, ...]:
    corners = (("front_left", -half_w, +half_l), ("front_right", +half_w, +half_l),
               ("back_right", +half_w, -half_l), ("back_left", -half_w, -half_l))
    return tuple(Cell(f"{prefix}_{n}", first_channel + i, x, y) for i, (n, x, y) in enumerate(corners))


def default_rig(sample_rate_hz: float = 1000.0, serial: str = "SIM-0001") -> Rig:
    """The default smart step: a 20 cm box and two floor plates in front of it, 12 channels.

    Room frame: origin on the floor at the front edge of the box, centred
    between the floor plates; y forward (away from the box), x to the right.
    """
    return Rig(
        name="smart-step",
        serial=serial,
        channels=12,
        sample_rate_hz=sample_rate_hz,
        box_height_mm=200.0,
        plates=(
            Plate("box", "box", 500.0, 400.0, (0.0, -200.0, 200.0), _four_cells(0, 225.0, 175.0, "box")),
            Plate("floor_left", "floor_left", 240.0, 500.0, (-125.0, 260.0, 0.0), _four_cells(4, 100.0, 225.0, "fl")),
            Plate("floor_right", "floor_right", 240.0, 500.0, (125.0, 260.0, 0.0), _four_cells(8, 100.0, 225.0, "fr")),
        ),
    )


def split_box_rig(sample_rate_hz: float = 4000.0, serial: str = "SIM-0016") -> Rig:
    """A 16-channel variant: the box top split left/right plus two floor plates."""
    return Rig(
        name="smart-step-split-box",
        serial=serial,
        channels=16,
        sample_rate_hz=sample_rate_hz,
        box_height_mm=200.0,
        plates=(
            Plate("box_left", "box_left", 250.0, 400.0, (-125.0, -200.0, 200.0), _four_cells(0, 100.0, 175.0, "bl")),
            Plate("box_right", "box_right", 250.0, 400.0, (125.0, -200.0, 200.0), _four_cells(4, 100.0, 175.0, "br")),
            Plate("floor_left", "floor_left", 240.0, 500.0, (-125.0, 260.0, 0.0), _four_cells(8, 100.0, 225.0, "fl")),
            Plate("floor_right", "floor_right", 240.0, 500.0, (125.0, 260.0, 0.0), _four_cells(12, 100.0, 225.0, "fr")),
        ),
    )


def load_rig(path: str | Path | None) -> Rig:
    """Read a rig file; ``None`` gives the default rig.  Raises RigError with a clear message."""
    if path is None:
        return default_rig()
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise RigError(f"cannot read rig file {p}: {exc.strerror or exc}") from None
    try:
        d = json.loads(text)
    except json.JSONDecodeError as exc:
        raise RigError(f"rig file {p} is not valid JSON (line {exc.lineno}: {exc.msg})") from None
    if not isinstance(d, dict):
        raise RigError(f"rig file {p} does not hold a JSON object")
    return Rig.from_dict(d)
