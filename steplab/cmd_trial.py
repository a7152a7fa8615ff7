"""``steplab trial show|reject|accept|reanalyze|reject-rep|accept-rep``: one stored trial (never deleted, only rejected)."""

from __future__ import annotations

import argparse
import json

from steplab.cmd_db import add_db_option, open_records, records_errors
from steplab.errors import UserError


def register(sub) -> None:
    p = sub.add_parser("trial", help="show, reject, accept or re-analyse a stored trial",
                       description="Stored trials. A trial is never deleted; it is rejected with a reason.")
    tsub = p.add_subparsers(dest="trial_command", metavar="ACTION")
    show = tsub.add_parser("show", help="a trial with every result version")
    show.add_argument("trial", metavar="ID")
    show.add_argument("--json", action="store_true")
    add_db_option(show)
    show.set_defaults(func=run_show)
    rej = tsub.add_parser("reject", help="reject a trial (kept, excluded from summaries)")
    rej.add_argument("trial", metavar="ID")
    rej.add_argument("--reason", required=True)
    add_db_option(rej)
    rej.set_defaults(func=run_reject)
    acc = tsub.add_parser("accept", help="accept a rejected trial again")
    acc.add_argument("trial", metavar="ID")
    add_db_option(acc)
    acc.set_defaults(func=run_accept)
    rea = tsub.add_parser("reanalyze", help="analyse again from the stored raw recording; adds a result version")
    rea.add_argument("trial", metavar="ID")
    rea.add_argument("--param", action="append", default=[], metavar="NAME=VALUE",
                     help="an analysis parameter of metrics.md to change (repeatable), e.g. force_cutoff_hz=50")
    rea.add_argument("--reason", default=None)
    rea.add_argument("--json", action="store_true", help="print {trial, version}")
    add_db_option(rea)
    rea.set_defaults(func=run_reanalyze)
    rrep = tsub.add_parser("reject-rep", help="reject one rep of the newest result (kept, left out of summaries)")
    rrep.add_argument("trial", metavar="ID")
    rrep.add_argument("rep", metavar="REP", help="the rep's number (1, 2, ...), as `trial show` lists them")
    rrep.add_argument("--reason", required=True)
    add_db_option(rrep)
    rrep.set_defaults(func=run_reject_rep)
    arep = tsub.add_parser("accept-rep", help="count a rejected rep of the newest result again")
    arep.add_argument("trial", metavar="ID")
    arep.add_argument("rep", metavar="REP")
    add_db_option(arep)
    arep.set_defaults(func=run_accept_rep)
    p.set_defaults(func=lambda a: (p.print_help(), 2)[1])


def trial_id(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise UserError(f"a trial id is a number, got {text!r}") from None
    if v <= 0:
        raise UserError(f"a trial id is a positive number, got {text!r}")
    return v


def parse_params(pairs: list[str], base):
    """AnalysisParams from ``base`` with NAME=VALUE changes (a one-line error for an unknown name or bad value)."""
    import dataclasses

    from steplab.dsp import AnalysisParams

    changes: dict = {}
    names = {f.name: f for f in dataclasses.fields(AnalysisParams)}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        name = name.strip()
        if not sep or name not in names:
            raise UserError(f"--param {pair!r}: expected NAME=VALUE with NAME one of {', '.join(names)}")
        if name == "stabilization_method":
            changes[name] = value
        elif name == "filter_order":
            try:
                changes[name] = int(value)
            except ValueError:
                raise UserError(f"--param {name} must be an integer, got {value!r}") from None
        else:
            try:
                changes[name] = float(value)
            except ValueError:
                raise UserError(f"--param {name} must be a number, got {value!r}") from None
    try:
        return dataclasses.replace(base, **changes)
    except ValueError as exc:
        raise UserError(f"--param: {exc}") from None


def run_show(args: argparse.Namespace) -> int:
    from steplab.records.trials import trial_details

    tid = trial_id(args.trial)
    db = open_records(args)
    try:
        with records_errors(), db.read() as s:
            d = trial_details(s, tid)
            if d is None:
                raise UserError(f"there is no trial {tid}")
    finally:
        db.dispose()
    if args.json:
        print(json.dumps(d, allow_nan=False))
    else:
        print(f"trial {d['id']}  patient {d['patient']}  visit {d['visit']}  {d['protocol']} {d['protocol_version']}  "
              f"lead {d['lead'] or '-'}  {'accepted' if d['accepted'] else 'rejected: ' + str(d['reject_reason'])}")
        for r in d["results"]:
            print(f"  result v{r['version']}  {r['created_at']}  {len(r['analysis']['reps'])} reps  {r['reason'] or ''}")
    return 0


def _set(args: argparse.Namespace, accepted: bool) -> int:
    from steplab.records.trials import set_accepted

    tid = trial_id(args.trial)
    db = open_records(args)
    try:
        with records_errors():
            set_accepted(db, tid, accepted, getattr(args, "reason", None))
    finally:
        db.dispose()
    print(f"trial {tid} {'accepted' if accepted else 'rejected'}")
    return 0


def run_reject(args: argparse.Namespace) -> int:
    return _set(args, False)


def run_accept(args: argparse.Namespace) -> int:
    return _set(args, True)


def run_reanalyze(args: argparse.Namespace) -> int:
    from steplab.records.models import Trial
    from steplab.records.protocols import analysis_params
    from steplab.records.trials import reanalyze

    tid = trial_id(args.trial)
    db = open_records(args)
    try:
        with records_errors():
            with db.read() as s:
                t = s.get(Trial, tid)
                if t is None:
                    raise UserError(f"there is no trial {tid}")
                base = analysis_params(t.protocol)
            params = parse_params(args.param, base)
            version = reanalyze(db, tid, params=params, reason=args.reason)
    finally:
        db.dispose()
    print(json.dumps({"trial": str(tid), "version": version}) if args.json else f"trial {tid}: result version {version}")
    return 0


def _set_rep(args: argparse.Namespace, accepted: bool) -> int:
    from steplab.records.audit import current_actor
    from steplab.records.reps import set_rep_accepted

    tid = trial_id(args.trial)
    try:
        rep = int(args.rep)
    except ValueError:
        raise UserError(f"a rep number is a whole number, got {args.rep!r}") from None
    db = open_records(args)
    try:
        with records_errors():
            version = set_rep_accepted(db, tid, rep, accepted, getattr(args, "reason", None), actor=current_actor())
    finally:
        db.dispose()
    print(f"trial {tid}: rep {rep} of result version {version} {'counts again' if accepted else 'rejected'}")
    return 0


def run_reject_rep(args: argparse.Namespace) -> int:
    return _set_rep(args, False)


def run_accept_rep(args: argparse.Namespace) -> int:
    return _set_rep(args, True)
