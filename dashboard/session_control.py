"""The visit in progress on the rig of this dashboard, and where its recordings go.

One rig, one visit at a time: ``SessionControl`` (one per dashboard, see
``control_for``) remembers the visit being recorded, starts recordings through
``LiveFeed.start_recording`` (journal first, loss-free) and, when a recording is
written, saves it into the visit with ``records.session_trials.save_live_trial``
on a worker thread of its own: never the analysis thread (the live view resumes at
once) and never a web thread.  The worker is not a daemon, so a recording that
``steplab run`` finishes while stopping is still saved before the process ends.
Everything the browser changes carries the clinician captured when the
recording started (the worker has no request context).
"""

from __future__ import annotations

import threading
import weakref
from dataclasses import dataclass
from pathlib import Path

from steplab.acquisition.recorder import RecordingError
from steplab.records import session_trials
from steplab.records.db import Database, data_dir
from steplab.records.patients import RecordsError, add_visit
from steplab.records.trials import TrialError, set_scores

from .live_feed import LiveFeed

SAVE_JOIN_S = 120.0  # ``wait_saved``: longest wait for a save in progress


@dataclass(frozen=True)
class RecordingTarget:
    """Where a recording goes: the visit, protocol, lead and who started it."""

    visit_id: int
    protocol: str
    lead: str | None
    actor: str


class SessionControl:
    """The visit in progress and its recordings (thread-safe; see the module docstring)."""

    def __init__(self, db: Database, live: LiveFeed | None, trials_dir: Path | None = None) -> None:
        self.db = db
        self._live = None if live is None else weakref.ref(live)  # the registry below is keyed by the feed
        self.trials_dir = Path(trials_dir) if trials_dir is not None else data_dir() / "trials"
        self._lock = threading.Lock()
        self._save_lock = threading.Lock()
        self.visit_id: int | None = None
        self.last_trial_id: int | None = None
        self.message = ""  # one line: what happened to the last recording
        self.version = 0  # +1 whenever the visit, its trials or the message change
        self._savers: list[threading.Thread] = []
        self.pending: RecordingTarget | None = None  # a recording in progress

    @property
    def live(self) -> LiveFeed | None:
        return None if self._live is None else self._live()

    def _changed(self, message: str | None = None) -> None:
        with self._lock:
            if message is not None:
                self.message = message
            self.version += 1

    # -- the visit ---------------------------------------------------------------------
    def start_visit(self, code: str, battery: list[str], body_mass_kg: float | None) -> int:
        """Make a new visit of patient ``code`` (records.patients.add_visit) and make it the one in progress."""
        if not code:
            raise RecordsError("choose a patient first")
        if not battery:
            raise RecordsError("choose at least one protocol for the visit")
        vid = add_visit(self.db, code, body_mass_kg=body_mass_kg, battery=list(battery))
        with self._lock:
            self.visit_id = vid
            self.last_trial_id = None
        self._changed(f"visit {vid} of {code} started")
        if self.live is not None:
            self.live.set_analysis(battery[0], body_mass_kg)
        return vid

    def visit(self) -> dict | None:
        vid = self.visit_id
        return None if vid is None else session_trials.visit_brief(self.db, vid)

    def save_body_mass(self, mass_kg: float, actor: str) -> int:
        vid = self.visit_id
        if vid is None:
            raise RecordsError("start a visit first: the weight is stored in the visit")
        session_trials.set_visit_body_mass(self.db, vid, mass_kg, actor=actor)
        if self.live is not None:
            self.live.set_analysis(None, round(mass_kg, 2))
        self._changed()
        return vid

    # -- recordings --------------------------------------------------------------------
    def record(self, protocol: str, lead: str | None, seconds: float, actor: str) -> Path:
        """Start recording ``seconds`` of ``protocol`` into the visit in progress; returns the trial file."""
        vid = self.visit_id
        live = self.live
        if live is None:
            raise RecordingError("no rig is attached to this dashboard")
        if vid is None:
            raise RecordingError("start a visit first: a recording is saved into the visit")
        if not protocol:
            raise RecordingError("choose the protocol to record")
        brief = session_trials.visit_brief(self.db, vid)
        target = RecordingTarget(vid, protocol, lead, actor)
        live.set_analysis(protocol, brief["body_mass_kg"])  # the live reps are this protocol's
        perform = getattr(live.device, "perform", None)  # the simulated subject does what is recorded
        if perform is not None:
            perform(protocol, lead)
        out = live.start_recording(seconds, self.trials_dir, on_saved=lambda path, _t, summary: self._saved(
            target, path, summary))
        with self._lock:
            self.pending = target
        self._changed(f"recording {seconds:g} s of {protocol}" + (f" leading {lead}" if lead else "") + "…")
        return out

    def _saved(self, target: RecordingTarget, path: Path, summary: dict) -> None:
        """LiveFeed's hook (the thread that finished the recording): save into the visit on a worker."""
        worker = threading.Thread(target=self._save, args=(target, Path(path), dict(summary or {})),
                                  name="steplab-save-trial", daemon=False)
        with self._lock:
            self._savers = [t for t in self._savers if t.is_alive()] + [worker]
        worker.start()

    def _save(self, target: RecordingTarget, path: Path, summary: dict) -> None:
        with self._save_lock:
            lost = int(summary.get("lost_samples", 0) or 0)
            try:
                saved = session_trials.save_live_trial(self.db, target.visit_id, path, target.protocol,
                                                       lead=target.lead, actor=target.actor)
            except Exception as exc:  # the trial file stays; the clinician reads why in one line
                msg = f"the recording {path.name} is kept, but it could not be saved into the visit: {exc}"
                with self._lock:
                    self.pending = None
                self._changed(msg)
                return
            with self._lock:
                self.pending = None
                if self.visit_id == target.visit_id:
                    self.last_trial_id = saved.trial_id
            ended = summary.get("ended")
            note = f" (stopped early: {ended})" if ended and ended != "complete" else ""
            self._changed(f"saved trial {saved.trial_id}: {target.protocol}, {saved.reps} reps, "
                          f"{lost} lost samples{note}")

    def wait_saved(self, timeout_s: float = SAVE_JOIN_S) -> bool:
        """Wait (with a deadline) until every save started so far has ended; True when they have."""
        with self._lock:
            savers = list(self._savers)
        for t in savers:
            t.join(timeout_s)
        return not any(t.is_alive() for t in savers)

    def trials(self) -> list[dict]:
        vid = self.visit_id
        return [] if vid is None else session_trials.visit_trials(self.db, vid)

    def save_scores(self, pain: float | None, quality: int | None, actor: str) -> int:
        tid = self.last_trial_id
        if tid is None:
            raise RecordsError("record a trial first: the scores belong to the last trial")
        try:
            set_scores(self.db, tid, pain_during=pain, quality_score=quality, actor=actor)
        except TrialError as exc:
            raise RecordsError(str(exc)) from None
        self._changed()
        return tid


_CONTROLS: weakref.WeakKeyDictionary[LiveFeed, SessionControl] = weakref.WeakKeyDictionary()
_CONTROLS_LOCK = threading.Lock()


def control_for(ctx) -> SessionControl:
    """The one SessionControl of the rig of ``ctx`` (a DashContext with ``live``), made on first use."""
    live = ctx.live
    if live is None:
        raise RecordingError("no rig is attached to this dashboard")
    with _CONTROLS_LOCK:
        control = _CONTROLS.get(live)
        if control is None:
            control = _CONTROLS[live] = SessionControl(ctx.db, live, ctx.trials_dir)
        return control
