"""The package layout: every module has one name, ``steplab.<stage>.<module>``, and a checkout imports as is.

The top-level folders are the data-flow stages; ``steplab/<stage>`` is a relative
symlink to each (rig_docs/decisions/0007-package-layout.md).  These tests check,
in fresh processes and in a fresh clone of this checkout's HEAD, that

* every module under ``steplab`` imports without an install, from the checkout's
  files, under exactly one name, and no top-level ``dsp`` / ``acquisition`` / ...
  module is ever imported;
* git stores the six stage links as symlinks to ``../<stage>``;
* a clone imports ``steplab.dsp`` with no install and mypy resolves every module;
* the documents hold what the code cites: every "metrics.md §" citation names a
  section of rig_docs/metrics.md, and every file rig_docs/architecture.md names exists.
"""

from __future__ import annotations

import ast
import json
import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
STAGES = ("acquisition", "calibration", "dsp", "records", "dashboard", "benchmarks")
GIT_TIMEOUT_S = 120
IMPORT_TIMEOUT_S = 300

# Run in a fresh interpreter: walk every module under steplab, import it, and report
# what was imported from where (JSON on stdout).
_IMPORT_ALL = r"""
import importlib, json, os, pkgutil, sys, traceback
import steplab
failed = {}
def onerror(name):
    failed[name] = traceback.format_exc(limit=3)
names = []
# Alembic runs its env.py inside a migration context; it is a script, never imported
SCRIPTS = {"steplab.records.migrations.env"}
for info in pkgutil.walk_packages(steplab.__path__, "steplab.", onerror=onerror):
    names.append(info.name)
    if info.name in SCRIPTS:
        continue
    try:
        importlib.import_module(info.name)
    except BaseException:
        failed[info.name] = traceback.format_exc(limit=3)
files = {}
for name, mod in list(sys.modules.items()):
    f = getattr(mod, "__file__", None)
    if f:
        files[name] = os.path.realpath(f)
print(json.dumps({"walked": names, "failed": failed, "files": files, "modules": sorted(sys.modules)}))
"""


def _git(*args: str, cwd: Path = REPO) -> str:
    r = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, timeout=GIT_TIMEOUT_S)
    assert r.returncode == 0, f"git {' '.join(args)} failed: {r.stderr.strip()}"
    return r.stdout


def _tracked(pattern: str) -> list[Path]:
    return [REPO / p for p in _git("ls-files", "-z", "--", pattern).split("\0") if p]


def _inside(path: str, root: Path) -> bool:
    real_root = os.path.realpath(root)
    return os.path.realpath(path).startswith(real_root + os.sep)


def _import_everything(cwd: Path, pythonpath: str | None) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    if pythonpath is not None:
        env["PYTHONPATH"] = pythonpath
    r = subprocess.run([sys.executable, "-c", _IMPORT_ALL], cwd=cwd, env=env, capture_output=True, text=True,
                       timeout=IMPORT_TIMEOUT_S)
    assert r.returncode == 0, f"importing every steplab module failed to run:\n{r.stderr[-3000:]}"
    return json.loads(r.stdout.strip().splitlines()[-1])


def _stage_packages_on_disk(root: Path) -> set[str]:
    """Every module name ``steplab.…`` that the files under root/steplab define (following the links)."""
    names = set()
    base = root / "steplab"
    for dirpath, dirnames, filenames in os.walk(base, followlinks=True):
        dirnames[:] = [d for d in dirnames if d != "__pycache__"]
        rel = Path(dirpath).relative_to(base)
        if "__init__.py" not in filenames:
            dirnames[:] = []
            continue
        pkg = ".".join(("steplab", *rel.parts))
        names.add(pkg)
        names.update(f"{pkg}.{f[:-3]}" for f in filenames if f.endswith(".py") and f != "__init__.py")
    return names


def _installed(f: str) -> bool:
    """A file of an installed distribution (the virtualenv may live inside the checkout, as `make` puts it)."""
    parts = Path(f).parts
    return "site-packages" in parts or "dist-packages" in parts


def _check_imports(report: dict, root: Path) -> None:
    assert not report["failed"], "modules that do not import (a module must import without a browser, " \
                                 "hardware or a database):\n" + "\n".join(f"{k}:\n{v}" for k, v in report["failed"].items())
    walked = set(report["walked"])
    on_disk = _stage_packages_on_disk(root)
    assert on_disk - {"steplab"} <= walked, f"modules pkgutil did not reach: {sorted(on_disk - walked - {'steplab'})}"
    for stage in STAGES:
        assert f"steplab.{stage}" in walked, f"steplab.{stage} is not importable as a package"
    top = {m.split(".", 1)[0] for m in report["modules"]}
    assert not top & set(STAGES), f"top-level stage modules were imported: {sorted(top & set(STAGES))}"
    by_file: dict[str, list[str]] = {}
    for name, f in report["files"].items():
        if name == "steplab" or name.startswith("steplab."):
            assert _inside(f, root), f"{name} was imported from {f}, outside {root}"
        if _inside(f, root) and not _installed(f):
            by_file.setdefault(f, []).append(name)
    for f, names in by_file.items():
        assert len(names) == 1, f"{f} is imported under several names: {names}"
        assert names[0] == "steplab" or names[0].startswith("steplab."), f"{f} is imported as {names[0]}, not steplab.…"


# --------------------------------------------------------------------------- (a) every module, one name
@pytest.fixture(scope="module")
def checkout_report(tmp_path_factory) -> dict:
    """Every steplab module imported by a fresh interpreter started elsewhere, with only the checkout on PYTHONPATH."""
    return _import_everything(cwd=tmp_path_factory.mktemp("elsewhere"), pythonpath=str(REPO))


def test_every_module_imports_from_the_checkout_under_one_name(checkout_report):
    report = checkout_report
    _check_imports(report, REPO)
    assert len(report["walked"]) > 50  # the walk really descended into the stage packages


def test_no_code_imports_a_top_level_stage():
    """Statically too: no tracked .py file writes ``import dsp`` / ``from acquisition import …``."""
    offenders = []
    for path in _tracked("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for n in names:
                if n.split(".", 1)[0] in STAGES:
                    offenders.append(f"{path.relative_to(REPO)}:{node.lineno}: {n}")
    assert not offenders, "imports of top-level stage modules (use steplab.<stage>):\n" + "\n".join(offenders)


def test_the_import_check_sees_a_second_name(checkout_report):
    """The check of (a) fails when a module is imported under a top-level name as well."""
    report = checkout_report
    rig = report["files"]["steplab.acquisition.rig"]
    broken = dict(report, modules=report["modules"] + ["acquisition", "acquisition.rig"],
                  files=dict(report["files"], **{"acquisition.rig": rig}))
    with pytest.raises(AssertionError, match="top-level stage modules"):
        _check_imports(broken, REPO)
    broken = dict(report, files=dict(report["files"], **{"rig_again": rig}))
    with pytest.raises(AssertionError, match="several names"):
        _check_imports(broken, REPO)


# --------------------------------------------------------------------------- (b) git stores the links
def test_git_stores_the_stage_links_as_relative_symlinks():
    entries = {}
    for line in _git("ls-files", "-s", "--", "steplab").splitlines():
        meta, path = line.split("\t", 1)
        mode, sha, _stage = meta.split()
        entries[path] = (mode, sha)
    for stage in STAGES:
        path = f"steplab/{stage}"
        assert path in entries, f"{path} is not tracked"
        mode, sha = entries[path]
        assert mode == "120000", f"{path} is stored with mode {mode}, not as a symlink (120000)"
        target = _git("cat-file", "blob", sha)
        assert target == f"../{stage}", f"{path} points at {target!r} in git, not ../{stage}"
        link = REPO / path
        assert link.is_symlink() and os.readlink(link) == f"../{stage}", \
            f"{path} in the checkout is not the symlink ../{stage} (Windows: git config core.symlinks true)"
        assert (REPO / stage / "__init__.py").is_file(), f"{stage}/__init__.py is missing"
    links = {p for p, (mode, _) in entries.items() if mode == "120000"}
    assert links == {f"steplab/{s}" for s in STAGES}, f"unexpected symlinks under steplab/: {sorted(links)}"


def test_setuptools_finds_the_stages_through_the_links():
    """What ``pip install .`` packages: packages.find of pyproject.toml follows the symlinks."""
    from setuptools import find_packages

    cfg = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["setuptools"]["packages"]["find"]
    found = set(find_packages(where=str(REPO / cfg.get("where", ["."])[0]), include=cfg["include"]))
    assert {"steplab", *(f"steplab.{s}" for s in STAGES)} <= found, sorted(found)
    assert not found & set(STAGES), f"top-level stages would be installed as packages: {sorted(found & set(STAGES))}"


# --------------------------------------------------------------------------- (c) a fresh clone
@pytest.fixture(scope="module")
def fresh_clone(tmp_path_factory) -> Path:
    """A fresh checkout of this checkout's HEAD (committed state, not the working tree)."""
    clone = tmp_path_factory.mktemp("clone") / "steplab"
    head = _git("rev-parse", "HEAD").strip()
    _git("init", "--quiet", str(clone), cwd=clone.parent)
    _git("-c", "core.symlinks=true", "fetch", "--quiet", "--no-tags", str(REPO), head, cwd=clone)
    _git("-c", "core.symlinks=true", "-c", "advice.detachedHead=false", "checkout", "--quiet", head, cwd=clone)
    return clone


@pytest.mark.slow
def test_a_fresh_clone_imports_without_installing(fresh_clone):
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    code = ("import steplab.dsp, steplab.acquisition.protocol, sys, os; "
            "print(os.path.realpath(steplab.dsp.__file__)); print(os.path.realpath(steplab.acquisition.protocol.__file__)); "
            "print(sorted({m.split('.')[0] for m in sys.modules} & set(sys.argv[1:])))")
    r = subprocess.run([sys.executable, "-c", code, *STAGES], cwd=fresh_clone, env=env, capture_output=True, text=True,
                       timeout=IMPORT_TIMEOUT_S)
    assert r.returncode == 0, r.stderr[-3000:]
    dsp_file, protocol_file, top = r.stdout.strip().splitlines()
    assert dsp_file == os.path.realpath(fresh_clone / "dsp" / "__init__.py")
    assert protocol_file == os.path.realpath(fresh_clone / "acquisition" / "protocol.py")
    assert top == "[]", f"top-level stage modules imported: {top}"


@pytest.mark.slow
def test_a_fresh_clone_imports_every_module(fresh_clone):
    _check_imports(_import_everything(cwd=fresh_clone, pythonpath=None), fresh_clone)


@pytest.mark.slow
def test_mypy_resolves_every_module_of_a_fresh_clone(fresh_clone, tmp_path):
    """mypy with the project's settings, except that an unresolved ``steplab.…`` import is an error."""
    mypy_cfg = tomllib.loads((fresh_clone / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["mypy"]

    def ini(v) -> str:
        if isinstance(v, bool):
            return "True" if v else "False"
        if isinstance(v, list):
            return ", ".join(str(x) for x in v)
        return str(v)

    lines = ["[mypy]", *(f"{k} = {ini(v)}" for k, v in mypy_cfg.items()),
             "[mypy-steplab,steplab.*]", "ignore_missing_imports = False"]
    cfg = tmp_path / "mypy.ini"
    cfg.write_text("\n".join(lines) + "\n", encoding="utf-8")
    report_dir = tmp_path / "report"
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    r = subprocess.run([sys.executable, "-m", "mypy", "--config-file", str(cfg), "--cache-dir", str(tmp_path / "cache"),
                        "--linecount-report", str(report_dir), "-p", "steplab"], cwd=fresh_clone, env=env,
                       capture_output=True, text=True, timeout=IMPORT_TIMEOUT_S)
    out = r.stdout + r.stderr
    # 0: clean, 1: type errors (the lead's full mypy run owns those); 2: a blocking error such as
    # "Source file found twice under different module names"
    assert r.returncode in (0, 1), out[-3000:]
    unresolved = [ln for ln in out.splitlines() if "import-not-found" in ln or "Cannot find implementation" in ln]
    assert not unresolved, "mypy cannot resolve:\n" + "\n".join(unresolved)
    assert "found twice" not in out, out[-3000:]
    checked = set()
    for ln in (report_dir / "linecount.txt").read_text(encoding="utf-8").splitlines()[1:]:
        checked.add(ln.split()[-1])
    expected = _stage_packages_on_disk(fresh_clone)
    assert expected <= checked, f"modules mypy did not check: {sorted(expected - checked)}"



@pytest.mark.slow
def test_a_build_of_a_fresh_clone_holds_every_module_as_a_file(fresh_clone, tmp_path):
    """What a wheel or an install gets (setuptools' build_py): real files under steplab/<stage>/, no links."""
    lib = tmp_path / "lib"
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    r = subprocess.run([sys.executable, "-c", "from setuptools import setup; setup()", "-q", "build_py",
                        "--build-lib", str(lib)], cwd=fresh_clone, env=env, capture_output=True, text=True,
                       timeout=IMPORT_TIMEOUT_S)
    assert r.returncode == 0, r.stderr[-3000:]
    assert sorted(p.name for p in lib.iterdir()) == ["steplab"], "only steplab is installed, no top-level stage"
    links = [str(p.relative_to(lib)) for p in lib.rglob("*") if p.is_symlink()]
    assert not links, f"the build holds symlinks: {links}"
    for name in _stage_packages_on_disk(fresh_clone):
        parts = name.split(".")
        as_package = lib.joinpath(*parts, "__init__.py")
        as_module = lib.joinpath(*parts[:-1], parts[-1] + ".py")
        assert as_package.is_file() or as_module.is_file(), f"{name} is missing from the build"

# --------------------------------------------------------------------------- (d) the documents hold what is cited
_NAME_STOP = ":;,()\"'`\n.—"
def _citation_pattern(doc: str) -> re.Pattern[str]:
    return re.compile(r"(?<![\w-])" + re.escape(doc) + r"[\"'`]?\s*§")
_NEXT = re.compile(r"\s*(?:,|\band\b)\s*§")
_SECTION_NUMBER = re.compile(r"^(?:§\s*)?(\d+(?:\.\d+)*)\.?\s+(.*)$")


def _citations(text: str, doc: str = "metrics.md") -> list[str]:
    """Every section a text cites as ``metrics.md § Name`` or ``metrics.md §3`` (chains: ``§ A, § B``)."""
    out = []
    for m in _citation_pattern(doc).finditer(text):
        pos = m.end()
        while True:
            num = re.compile(r"\s*(\d+(?:\.\d+)*)").match(text, pos)
            if num:
                out.append(num.group(1))
                pos = num.end()
            else:
                j = pos
                while j < len(text) and text[j] not in _NAME_STOP:
                    j += 1
                out.append(text[pos:j].strip())
                pos = j
            nxt = _NEXT.match(text, pos)
            if not nxt:
                break
            pos = nxt.end()
    return out


def _sections(md: str) -> tuple[set[str], list[list[str]]]:
    """(section numbers, word lists of the titles) of the headings of a markdown text."""
    numbers, titles = set(), []
    for line in md.splitlines():
        if not line.startswith("#"):
            continue
        heading = line.lstrip("#").strip()
        m = _SECTION_NUMBER.match(heading)
        if m:
            numbers.add(m.group(1))
            heading = m.group(2)
        titles.append(re.findall(r"[\w-]+", heading.lower()))
    return numbers, titles


def _resolves(citation: str, numbers: set[str], titles: list[list[str]]) -> bool:
    """A number names a numbered section; a name must be a run of whole words of one heading."""
    if re.fullmatch(r"\d+(?:\.\d+)*", citation):
        return citation in numbers
    words = re.findall(r"[\w-]+", citation.lower())
    if not words:
        return False
    return any(t[i:i + len(words)] == words for t in titles for i in range(len(t) - len(words) + 1))


def _unresolved_citations(doc: str) -> tuple[int, list[str]]:
    """(how many, which do not resolve) of the ``DOC § …`` citations in the code and in rig_docs/."""
    numbers, titles = _sections((REPO / "rig_docs" / doc).read_text(encoding="utf-8"))
    # this file holds example citations of its own (the parser's tests)
    sources = [p for p in _tracked("*.py") if p.resolve() != Path(__file__).resolve()]
    sources += [p for p in _tracked("rig_docs/*.md") if p.name != doc]
    cited, missing = 0, []
    for path in sources:
        for c in _citations(path.read_text(encoding="utf-8"), doc):
            cited += 1
            if not _resolves(c, numbers, titles):
                missing.append(f"{path.relative_to(REPO)}: {doc} § {c}")
    return cited, missing


def test_every_metrics_citation_names_a_section_of_metrics_md():
    cited, missing = _unresolved_citations("metrics.md")
    assert not missing, "citations of sections rig_docs/metrics.md does not have:\n" + "\n".join(missing)
    assert cited > 20  # the code does cite metrics.md; a broken parser finding none must not pass


def test_every_citation_of_another_rig_doc_names_one_of_its_sections():
    """``protocol.md § 9``, ``simulator.md § Cells``, …: every document of rig_docs/ the code cites by section."""
    missing = []
    for doc in sorted(p.name for p in (REPO / "rig_docs").glob("*.md") if p.name != "metrics.md"):
        missing += _unresolved_citations(doc)[1]
    assert not missing, "citations of sections that do not exist:\n" + "\n".join(missing)
    assert _unresolved_citations("protocol.md")[0] >= 1  # the code does cite protocol.md by section


def test_the_citation_check_can_fail():
    numbers, titles = _sections("# T\n## 3. Weighing and movement onset\n### 3.1 Weighing for drop landings\n")
    assert _citations("see metrics.md § Weighing: BW, and metrics.md §3.1, § Movement onset (x).") == \
        ["Weighing", "3.1", "Movement onset"]
    assert _citations("(metrics.md § Step-down, § Forward step-down).") == ["Step-down", "Forward step-down"]
    assert _citations("see protocol.md § 9 and rig.md § Calibration", "protocol.md") == ["9"]
    assert _citations("see protocol.md § 9 and rig.md § Calibration", "rig.md") == ["Calibration"]
    assert _citations("see sub_protocol.md § 9", "protocol.md") == []
    assert _citations("follow metrics.md § Weighing and movement onset\nand § Kinematics;") == \
        ["Weighing and movement onset", "Kinematics"]
    assert _resolves("Movement onset", numbers, titles) and _resolves("3.1", numbers, titles)
    assert _resolves("weighing for drop landings", numbers, titles)
    assert not _resolves("Kinematics", numbers, titles)
    assert not _resolves("4", numbers, titles)
    assert not _resolves("onset movement", numbers, titles)
    assert not _resolves("Weigh", numbers, titles)


_BACKTICKED = re.compile(r"`([^`\s]+)`")
_LINK = re.compile(r"\]\(([^)\s]+)\)")


def _architecture_problems(md: str, root: Path) -> list[str]:
    """Files rig_docs/architecture.md names that do not exist.

    A backticked ``x/y.py`` is a path from the repository root; a bare ``y.py`` lies in
    the stage folder its ``##`` section is about (``## acquisition …``); a relative link
    is a path from rig_docs/.
    """
    problems = []
    stage = None
    for line in md.splitlines():
        if line.startswith("## "):
            first = re.findall(r"\w+", line[3:])
            stage = first[0] if first and (root / first[0]).is_dir() else None
        for name in _BACKTICKED.findall(line):
            if not name.endswith(".py"):
                continue
            if "/" in name:
                path = root / name
            elif stage is not None:
                path = root / stage / name
            else:
                problems.append(f"{name}: a bare module name outside a stage section")
                continue
            pattern = re.sub(r"<[^>]*>", "*", str(path.relative_to(root)))
            if "*" in pattern:  # a pattern such as `cmd_<name>.py`: at least one file must match
                if not any(p.is_file() for p in root.glob(pattern)):
                    problems.append(f"{name}: no file matches {pattern}")
            elif not path.is_file():
                problems.append(f"{name}: {path.relative_to(root)} does not exist")
        for target in _LINK.findall(line):
            if "://" in target or target.startswith("#"):
                continue
            path = (root / "rig_docs" / target.split("#", 1)[0]).resolve()
            if not path.exists():
                problems.append(f"link {target}: does not exist")
    return problems


def test_every_file_architecture_md_names_exists():
    md = (REPO / "rig_docs" / "architecture.md").read_text(encoding="utf-8")
    assert not _architecture_problems(md, REPO)
    assert len(_BACKTICKED.findall(md)) > 20  # it does name modules


def test_the_architecture_check_can_fail():
    md = ("## acquisition (bytes)\n- `serial_device.py`, `rig.py`, `sim_<what>.py`, `none_<x>.py`\n"
          "- `dsp/none.py`, [x](nothere.md), [y](protocol.md)\n## Documents\n- `rig.py`\n")
    problems = _architecture_problems(md, REPO)
    assert any("serial_device.py" in p for p in problems)
    assert any("dsp/none.py" in p for p in problems)
    assert any("nothere.md" in p for p in problems)
    assert any("none_<x>.py" in p for p in problems)
    assert any("outside a stage section" in p for p in problems)
    assert not any("sim_<what>.py" in p or "protocol.md" in p for p in problems)
    assert len(problems) == 5, problems


# --------------------------------------------------------------------------- metrics.md covers what the code reports
def _documented_names() -> set[str]:
    return set(_BACKTICKED.findall((REPO / "rig_docs" / "metrics.md").read_text(encoding="utf-8")))


def _documented(name: str, documented: set[str]) -> bool:
    """Named in backticks, or a per-plate / within-trial variant of a documented name."""
    if name in documented:
        return True
    for suffix in ("_left", "_right", "_symmetry_index_pct"):
        if name.endswith(suffix) and name[: -len(suffix)] in documented:
            return True
    return False


def test_every_metric_the_code_reports_is_defined_in_metrics_md():
    from steplab.dsp.metrics_balance import BALANCE_METRICS, SQUAT_METRICS
    from steplab.dsp.metrics_landing import DROP_METRICS
    from steplab.dsp.metrics_stepdown import FORWARD_METRICS, STEP_DOWN_METRICS

    documented = _documented_names()
    names = set(STEP_DOWN_METRICS + FORWARD_METRICS + DROP_METRICS + BALANCE_METRICS + SQUAT_METRICS)
    assert len(names) > 30
    missing = sorted(n for n in names if not _documented(n, documented))
    assert not missing, f"metrics the analysis reports that rig_docs/metrics.md does not define: {missing}"
    assert not _documented("landing_peak_force", documented)  # the check is by whole name


def test_every_parameter_is_in_metrics_md():
    from dataclasses import fields

    from steplab.dsp.params import AnalysisParams

    documented = _documented_names()
    missing = sorted(f.name for f in fields(AnalysisParams) if f.name not in documented)
    assert not missing, f"analysis parameters rig_docs/metrics.md does not list: {missing}"


def _raised_flags() -> set[str]:
    """Flag names the analysis code raises: appended to a ``…flags`` list, listed on a line about
    flags, or returned as a problem code (``return role, contact, "lead_plate_not_contacted"``)."""
    found = set()
    sources = sorted((REPO / "dsp").glob("*.py")) + sorted((REPO / "records").glob("import*.py"))
    sources += [p for p in (REPO / "steplab" / "analysis_pipeline.py",) if p.exists()]
    for path in sources:
        src = path.read_text(encoding="utf-8")
        lines = src.splitlines()
        for node in ast.walk(ast.parse(src)):
            values: list[ast.expr] = []
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "append":
                target = node.func.value
                name = target.id if isinstance(target, ast.Name) else getattr(target, "attr", "")
                if "flags" in name:
                    values = list(node.args)
            elif isinstance(node, ast.Return) and isinstance(node.value, ast.Tuple):
                values = list(node.value.elts)
            elif isinstance(node, ast.List) and "flags" in lines[node.lineno - 1]:
                values = list(node.elts)
            for v in values:
                if isinstance(v, ast.Constant) and isinstance(v.value, str) and re.fullmatch(r"[a-z]+(_[a-z0-9]+)+|[a-z]+", v.value):
                    found.add(v.value)
    return found


def test_every_flag_the_code_raises_is_defined_in_metrics_md():
    flags = _raised_flags()
    assert {"no_reps", "truncated", "bounce", "lead_override_contradicted", "uncalibrated", "saturated"} <= flags, flags
    documented = _documented_names()
    missing = sorted(f for f in flags if f not in documented)
    assert not missing, f"flags the analysis raises that rig_docs/metrics.md does not explain: {missing}"


# --------------------------------------------------------------------------- interfaces.md covers the command
def _command_options() -> dict[str, set[str]]:
    """Top-level command name → every long option of it and of its own sub-commands."""
    import argparse

    from steplab.cli import build_parser

    def options(parser: argparse.ArgumentParser) -> set[str]:
        out = set()
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for sub in action.choices.values():
                    out |= options(sub)
            else:
                out |= {o for o in action.option_strings if o.startswith("--") and o != "--help"}
        return out

    commands = {}
    for action in build_parser()._actions:
        if isinstance(action, argparse._SubParsersAction):
            commands = {name: options(sub) for name, sub in action.choices.items()}
    return commands


def _undocumented(md: str, commands: dict[str, set[str]]) -> list[str]:
    """Commands and options that interfaces.md does not describe.

    A command's text runs from its first mention as code (`` `steplab NAME`` or an indented
    usage line; prose such as "a steplab trial file" does not count) to the next ``## ``
    heading; each of its options must appear there.
    """
    missing = []
    for name, opts in sorted(commands.items()):
        m = re.search(rf"(`|^    )steplab {re.escape(name)}(?![\w-])", md, re.M)
        start = m.start() if m else -1
        if start < 0:
            missing.append(f"steplab {name}")
            continue
        end = md.find("\n## ", start)
        text = md[start:] if end < 0 else md[start:end]
        missing += [f"steplab {name} {o}" for o in sorted(opts) if not re.search(re.escape(o) + r"(?![\w-])", text)]
    return missing


def test_interfaces_md_describes_every_command_and_option():
    commands = _command_options()
    assert {"run", "simulate", "record", "analyze", "calibrate", "bench"} <= set(commands)
    md = (REPO / "rig_docs" / "interfaces.md").read_text(encoding="utf-8")
    missing = _undocumented(md, commands)
    assert not missing, "commands and options rig_docs/interfaces.md does not describe:\n" + "\n".join(missing)


def test_the_interfaces_check_can_fail():
    md = "## `steplab run`\n`--device`, `--host-name`\n## `steplab bench`\n`--port`\n"
    missing = _undocumented(md, {"run": {"--device", "--host", "--port"}, "bench": {"--quick"}, "fly": set()})
    assert missing == ["steplab bench --quick", "steplab fly", "steplab run --host", "steplab run --port"]
