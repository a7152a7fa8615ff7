"""CSV/TSV of forces → per-plate vertical force (and moments when the file has them).

Delimiter (tab, comma, semicolon or blanks) and an optional header row are detected.
A column named like time (``time``, ``t``, ``time_s``, ``seconds``; ``time_ms`` in ms)
gives the sample rate, otherwise ``rate_hz`` is required; columns named ``frame``,
``sample`` or ``index`` are ignored.

**Force components** (decision 0012).  When a header names force components
(``Fx``/``Fy``/``Fz``, alone or with a plate prefix or suffix: ``FP1_Fz``, ``Fz1``,
``Force.Fz1``, ``Fz_left``, ``Fz [N]``), each plate is the group of columns that share
the rest of the name, in order of first appearance; only its ``Fz`` is the vertical
force, its shear columns are listed in the provenance and not used.  Its ``Mx``/``My``
(same naming; N·m, N·mm when the name says ``Nmm``) give the COP; ``Mz``/``Tz`` and COP
columns are listed as ignored.  Any other column is refused by name.

**Plain columns** (no component names): one force column per plate, or several cells
per plate in file order (their sum is the plate's Fz; ``plates`` must then be given).
A column whose name contains ``mx`` or ``my`` is a moment of the plate of the force
column before it.

A vertical force that is mostly negative (a file storing the push, not the reaction)
is negated, and said so in the provenance.  A value beyond any plate's range
(30 kN) is refused: such a file is corrupt.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from steplab.dsp.params import PlateForces
from steplab.records.import_common import (
    DEFAULT_ROLES,
    IGNORE_ROLE,
    MAX_PLAUSIBLE_FORCE_N,
    MAX_RATE_HZ,
    MIN_RATE_HZ,
    ForceImportError,
    LoadedTrial,
    add_flag,
    cop_check_force_n,
    flat_top_samples,
    parse_plates,
    plate_cop_mm,
    plate_roles,
    reconcile_rate,
    refuse_impossible_force,
)

_TIME_RE = re.compile(r"^(t|time|timestamp|seconds|secs?|s)([ _\-\[(].*)?$")
_INDEX_RE = re.compile(r"^(frame|frames|sample|samples|index|idx|n)([ _\-\[(].*)?$")
_MOMENT_RE = re.compile(r"(^|[^a-z])(mx|my)([^a-z]|$)")
_UNITS_RE = re.compile(r"\[[^\]]*\]|\([^)]*\)")
_FORCE_COMPONENT_RE = re.compile(r"(?<![a-z])f([xyz])(?![a-z])")
_MOMENT_COMPONENT_RE = re.compile(r"(?<![a-z])(m|t)([xyz])(?![a-z])")
_COP_RE = re.compile(r"(?<![a-z])cop[ _.\-]?([xyz])(?![a-z])")
_KISTLER_RE = re.compile(r"(?<![a-z])f(x12|x34|y14|y23)(?![0-9a-z])")
_GENERIC_RE = re.compile(r"(?<![a-z])(forces?|moments?|torques?|grf)(?![a-z])")
_UNIT_SUFFIX_RE = re.compile(r"[ _.\-](n|kn|nm|nmm|mm|m)$")
MAX_TIME_S = 1e9
MAX_MOMENT_NM = MAX_PLAUSIBLE_FORCE_N * 5.0  # 30 kN five metres from the plate's centre
CSV_COP_LIMIT_MM = 1000.0  # no plate is larger than 2 × 2 m: a COP beyond is outside it
NEGATE_MIN_N = 100.0
_FORCE_RANGE = f"any force plate's range (±{MAX_PLAUSIBLE_FORCE_N:g} N)"
_MOMENT_RANGE = f"any force plate's range for a moment (±{MAX_MOMENT_NM:g} N·m)"


def _split(line: str, delim: str | None) -> list[str]:
    return [s.strip().strip('"').strip("'") for s in (line.split(delim) if delim else line.split())]


def _is_number(s: str) -> bool:
    try:
        float(s)
        return True
    except ValueError:
        return False


def _plate_key(name: str, match: re.Match) -> str:
    rest = name[:match.start()] + " " + name[match.end():]
    rest = _GENERIC_RE.sub(" ", rest)
    rest = _UNIT_SUFFIX_RE.sub("", rest.strip())
    return re.sub(r"[^a-z0-9]+", "", rest)


def _read_table(p: Path) -> tuple[list[str], list[str], bool, np.ndarray, list[int]]:
    """(header as written, lower-case names, has header, data (rows, cols), line number of each row)."""
    try:
        text = p.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        raise ForceImportError(f"{p.name}: not a text file of forces (not UTF-8 text)") from None
    except OSError as exc:
        raise ForceImportError(f"{p}: cannot read ({exc.strerror or exc})") from None
    lines = [(i + 1, ln) for i, ln in enumerate(text.splitlines()) if ln.strip() and not ln.lstrip().startswith("#")]
    if not lines:
        raise ForceImportError(f"{p.name}: file holds no data")
    first = lines[0][1]
    delim = "\t" if "\t" in first else "," if "," in first else ";" if ";" in first else None
    head = _split(first, delim)
    has_header = not all(_is_number(s) for s in head if s != "")
    names = [h.lower() for h in head] if has_header else [f"column {j + 1}" for j in range(len(head))]
    if not has_header:
        head = names
    rows = lines[1:] if has_header else lines
    if not rows:
        raise ForceImportError(f"{p.name}: file has a header but no data rows")
    ncol = len(names)
    data = np.empty((len(rows), ncol))
    for r, (lineno, ln) in enumerate(rows):
        fields = _split(ln, delim)
        if len(fields) != ncol:
            raise ForceImportError(f"{p.name}: line {lineno} has {len(fields)} columns, expected {ncol}")
        try:
            data[r] = [float(s) for s in fields]
        except ValueError:
            raise ForceImportError(f"{p.name}: line {lineno} holds a value that is not a number") from None
    bad = ~np.isfinite(data)
    if bad.any():
        r, j = np.argwhere(bad)[0]
        raise ForceImportError(f"{p.name}: line {rows[r][0]} column {head[j]!r} holds NaN or inf")
    if data.shape[0] < 2:
        raise ForceImportError(f"{p.name}: needs at least 2 samples, has {data.shape[0]}")
    return head, names, has_header, data, [ln for ln, _ in rows]


def _refuse_big(p: Path, data: np.ndarray, cols: list[int], head: list[str], line_of: list[int], limit: float,
                what: str) -> None:
    """Refuse a value beyond ``limit``: ``what`` says what that is (e.g. "any force plate's range (±30000 N)")."""
    for j in cols:
        big = np.abs(data[:, j]) > limit
        if big.any():
            r = int(np.argmax(big))
            raise ForceImportError(f"{p.name}: line {line_of[r]} column {head[j]!r} holds {data[r, j]:.4g}, "
                                   f"beyond {what}; the file is corrupt")


def _rate(p: Path, data: np.ndarray, time_col: int | None, names: list[str], head: list[str],
          line_of: list[int], given_rate: float | None) -> float:
    if time_col is None:
        if given_rate is None:
            raise ForceImportError(f"{p.name}: the file has no time column; give the sample rate with --rate HZ")
        return given_rate
    _refuse_big(p, data, [time_col], head, line_of, MAX_TIME_S, f"any time of a recording (±{MAX_TIME_S:g} s)")
    t = data[:, time_col] * (1e-3 if "ms" in names[time_col] else 1.0)
    dt = np.diff(t)
    if np.any(dt <= 0):
        raise ForceImportError(f"{p.name}: time column {head[time_col]!r} is not strictly increasing")
    mean_dt = float(t[-1] - t[0]) / (t.size - 1)
    if not (1.0 / MAX_RATE_HZ <= mean_dt <= 1.0 / MIN_RATE_HZ):
        raise ForceImportError(f"{p.name}: time column {head[time_col]!r} steps by {mean_dt:.4g} s on average: "
                               f"a rate outside {MIN_RATE_HZ:g}..{MAX_RATE_HZ:g} Hz (a time in ms needs a name "
                               "such as time_ms)")
    if np.max(np.abs(dt - mean_dt)) > 0.01 * mean_dt + 1e-9:
        raise ForceImportError(f"{p.name}: time column {head[time_col]!r} is not uniformly sampled")
    return reconcile_rate(1.0 / mean_dt, given_rate, p, "rate of the time column")


def _moment_scale(name: str) -> float:
    return 1e-3 if "nmm" in name.replace(".", "").replace("·", "").replace("*", "").replace(" ", "") else 1.0


def load_text(p: Path, given_rate: float | None, plates) -> LoadedTrial:
    """Read a CSV/TSV of forces (see the module docstring)."""
    head, names, has_header, data, line_of = _read_table(p)
    time_col = None
    if has_header:
        time_col = next((j for j, nm in enumerate(names) if _TIME_RE.match(nm)), None)
    rate = _rate(p, data, time_col, names, head, line_of, given_rate)
    bases = [_UNITS_RE.sub(" ", nm).strip() for nm in names]
    if has_header and any(_FORCE_COMPONENT_RE.search(b) for j, b in enumerate(bases) if j != time_col):
        return _load_components(p, head, bases, data, line_of, time_col, rate, plates)
    return _load_plain(p, head, names, has_header, data, line_of, time_col, rate, plates)


def _finish(p: Path, plates_fz: list[tuple[np.ndarray, np.ndarray | None, np.ndarray | None]], roles, rate: float,
            extra: dict) -> LoadedTrial:
    out: dict[str, PlateForces] = {}
    saturated = 0
    negated: list[str] = []
    outside: dict[str, int] = {}
    for (fz, mx, my), role in zip(plates_fz, roles):
        if role == IGNORE_ROLE:
            continue
        lo, hi = float(np.min(fz)), float(np.max(fz))
        if lo < -NEGATE_MIN_N and -lo > 2.0 * max(hi, 0.0):
            fz = -fz
            mx = None if mx is None else -mx
            my = None if my is None else -my
            negated.append(role)
        pf = PlateForces(fz_n=np.ascontiguousarray(fz), mx_nm=mx, my_nm=my)
        out[role] = pf
        saturated += flat_top_samples(pf.fz_n, rate)
        cop = plate_cop_mm(pf, cop_min_force_n=cop_check_force_n(pf.fz_n))
        n_out = int(np.sum(np.isfinite(cop[:, 0]) & (np.abs(cop) > CSV_COP_LIMIT_MM).any(axis=1)))
        if n_out:
            outside[role] = n_out
    if negated:
        extra["negated_plates"] = negated  # the file stored the push (Fz < 0 under load)
    if saturated:
        extra["saturated_samples"] = saturated
    if outside:
        extra["cop_outside_plate_samples"] = outside
        add_flag(extra, "cop_outside_plate")
    if IGNORE_ROLE in roles:
        extra["ignored_plates"] = [i + 1 for i, r in enumerate(roles) if r == IGNORE_ROLE]
    return LoadedTrial(out, rate, "csv", extra)


def _load_components(p: Path, head, bases, data, line_of, time_col, rate, plates) -> LoadedTrial:
    kistler = [head[j] for j, b in enumerate(bases) if _KISTLER_RE.search(b)]
    if kistler:
        raise ForceImportError(f"{p.name}: columns {', '.join(kistler)} are a Kistler plate's sensor channels; "
                               "they need the plate's geometry: export the plate's Fz (or a C3D file)")
    groups: dict[str, dict[str, int]] = {}
    ignored: list[str] = []
    shear: list[str] = []
    for j, b in enumerate(bases):
        if j == time_col or _INDEX_RE.match(b):
            continue
        m = _FORCE_COMPONENT_RE.search(b)
        if m:
            g = groups.setdefault(_plate_key(b, m), {})
            if "f" + m.group(1) in g:
                raise ForceImportError(f"{p.name}: columns {head[g['f' + m.group(1)]]!r} and {head[j]!r} "
                                       "are the same force component of one plate")
            g["f" + m.group(1)] = j
            continue
        m = _COP_RE.search(b)
        if m:
            ignored.append(head[j])
            continue
        m = _MOMENT_COMPONENT_RE.search(b)
        if m:
            if m.group(1) == "t" or m.group(2) == "z":
                ignored.append(head[j])  # free moment: not needed for the COP
                continue
            groups.setdefault(_plate_key(b, m), {})["m" + m.group(2)] = j
            continue
        raise ForceImportError(f"{p.name}: column {head[j]!r} is neither time, a force component (Fx, Fy, Fz) "
                               "nor a moment (Mx, My); remove it or rename it")
    plates_cols = []
    for key, g in groups.items():
        label = key or "(unnamed)"
        if "fz" not in g:
            cols = ", ".join(head[j] for j in g.values())
            raise ForceImportError(f"{p.name}: plate {label} has no vertical force column Fz (has {cols})")
        shear += [head[g[c]] for c in ("fx", "fy") if c in g]
        plates_cols.append(g)
    _refuse_big(p, data, [g[c] for g in plates_cols for c in ("fx", "fy", "fz") if c in g], head, line_of,
                MAX_PLAUSIBLE_FORCE_N, _FORCE_RANGE)
    n_plates = len(plates_cols)
    roles = plate_roles(plates, n_plates, p)
    fzs = []
    for g in plates_cols:
        mx = my = None
        if "mx" in g and "my" in g:
            mx = data[:, g["mx"]] * _moment_scale(head[g["mx"]].lower())
            my = data[:, g["my"]] * _moment_scale(head[g["my"]].lower())
            for a, j in ((mx, g["mx"]), (my, g["my"])):
                _refuse_big(p, a[:, None], [0], [head[j]], line_of, MAX_MOMENT_NM, _MOMENT_RANGE)
        elif "mx" in g or "my" in g:
            ignored += [head[g[c]] for c in ("mx", "my") if c in g]  # one moment alone gives no COP
        fzs.append((data[:, g["fz"]].copy(), mx, my))
    extra: dict = {"columns": [head[g["fz"]] for g in plates_cols], "cells_per_plate": 1,
                   "vertical_columns": [head[g["fz"]] for g in plates_cols],
                   "rate_from": "time column" if time_col is not None else "--rate"}
    if shear:
        extra["shear_columns_ignored"] = shear
    if ignored:
        extra["ignored_columns"] = ignored
    return _finish(p, fzs, roles, rate, extra)


def _load_plain(p: Path, head, names, has_header, data, line_of, time_col, rate, plates) -> LoadedTrial:
    force_cols: list[int] = []
    moment_of: dict[int, dict[str, int]] = {}
    moment_scale: dict[int, float] = {}
    for j, nm in enumerate(names):
        if not has_header:
            force_cols.append(j)
            continue
        if j == time_col or _INDEX_RE.match(nm):
            continue
        mm = _MOMENT_RE.search(nm)
        if mm:
            if not force_cols:
                raise ForceImportError(f"{p.name}: moment column {head[j]!r} comes before any force column")
            moment_of.setdefault(force_cols[-1], {})[mm.group(2)] = j
            moment_scale[j] = _moment_scale(nm)
            continue
        force_cols.append(j)
    if not force_cols:
        raise ForceImportError(f"{p.name}: no force columns found")
    _refuse_big(p, data, force_cols, head, line_of, MAX_PLAUSIBLE_FORCE_N, _FORCE_RANGE)
    for j, scale in moment_scale.items():
        _refuse_big(p, data[:, j:j + 1] * scale, [0], [head[j]], line_of, MAX_MOMENT_NM, _MOMENT_RANGE)

    n_force = len(force_cols)
    if plates is None:
        if moment_of or n_force in DEFAULT_ROLES:
            roles = plate_roles(None, n_force, p)
        else:
            raise ForceImportError(f"{p.name}: {n_force} force columns; name the plates with --plates ROLE,... "
                                   "(columns are split evenly among them, in file order)")
    else:
        roles = parse_plates(plates)
    n_plates = len(roles)
    if n_force % n_plates:
        raise ForceImportError(f"{p.name}: {n_force} force columns cannot be split evenly among {n_plates} plates")
    per = n_force // n_plates
    if per > 1 and moment_of:
        raise ForceImportError(f"{p.name}: moment columns are only supported with one force column per plate")
    fzs = []
    for i in range(n_plates):
        cols = force_cols[i * per:(i + 1) * per]
        fz = data[:, cols].sum(axis=1)
        refuse_impossible_force(fz, f"{p.name}: plate {i + 1}", "the sum of its cells")
        mom = moment_of.get(cols[0], {}) if per == 1 else {}
        mx = data[:, mom["mx"]] * moment_scale[mom["mx"]] if "mx" in mom and "my" in mom else None
        my = data[:, mom["my"]] * moment_scale[mom["my"]] if mx is not None else None
        fzs.append((fz, mx, my))
    extra = {"columns": [head[j] for j in force_cols] if has_header else n_force,
             "cells_per_plate": per, "rate_from": "time column" if time_col is not None else "--rate"}
    return _finish(p, fzs, roles, rate, extra)
