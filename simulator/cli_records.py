"""The command line's records commands: the attempt store (``attempts``, ``replay``, ``export``,
``import``, ``users``) and the instructors' ``report``.

Who acts: ``--user ACCOUNT`` (default: the station's trainee, see
:func:`simulator.records.recording.station_account`); instructor actions need ``--instructor
ACCOUNT`` and the instructor password from ``SPINESIM_INSTRUCTOR_PASSWORD`` or a prompt.
"""

from __future__ import annotations

import getpass
import json
import os
import sys
from datetime import timezone
from pathlib import Path

from simulator.errors import SpineSimError


def add_parsers(sub) -> None:
    """Add the records commands to the ``spinesim`` sub-parsers."""
    def who(p) -> None:
        p.add_argument("--user", help="act as this trainee (default: the station's user, or SPINESIM_USER)")
        p.add_argument("--instructor", help="act as this instructor (the password from SPINESIM_INSTRUCTOR_PASSWORD "
                       "or a prompt): others' attempts, exports, imports, users")

    ls = sub.add_parser("attempts", help="list the stored attempts (yours, or everyone's for an instructor)")
    who(ls)
    ls.add_argument("--owner", help="only this trainee's attempts (instructors)")
    ls.add_argument("--json", action="store_true", help="print JSON")

    rp = sub.add_parser("replay", help="replay an attempt (a stored attempt id, or an attempt file) on its patient")
    rp.add_argument("attempt", help="attempt id in the store, or an attempt record file")
    who(rp)
    rp.add_argument("--gui", action="store_true", help="open the replay window (play, pause, seek)")
    rp.add_argument("--rescore", action="store_true",
                    help="store the new scorecard when the scoring version is newer than the attempt's")
    rp.add_argument("--json", action="store_true", help="print the scorecard as JSON")

    ex = sub.add_parser("export", help="export attempts: the portable signed file, CSV, xAPI or DICOM")
    ex.add_argument("attempts", nargs="*", type=int, help="attempt ids (CSV: default all you may see)")
    who(ex)
    ex.add_argument("--format", choices=("attempt", "csv", "xapi", "dicom"), required=True)
    ex.add_argument("--out", required=True, help="file (attempt, csv, xapi) or folder (dicom) to write")
    ex.add_argument("--lrs", help="xapi: also POST the statements to this Learning Record Store URL")
    ex.add_argument("--lrs-user", help="xapi: the LRS's basic-auth user (its password from SPINESIM_LRS_PASSWORD)")

    im = sub.add_parser("import", help="import a signed attempt file exported by another station")
    im.add_argument("file")
    who(im)

    us = sub.add_parser("users", help="add a trainee or instructor")
    us.add_argument("account")
    us.add_argument("--name", help="display name (default: the account)")
    us.add_argument("--role", choices=("trainee", "instructor"), default="trainee")
    who(us)

    co = sub.add_parser("courses", help="list your courses (an instructor: all), or create one with --create")
    who(co)
    co.add_argument("--create", metavar="NAME", help="create a course (an instructor action)")
    co.add_argument("--scenario", action="append", default=[], help="with --create: a scenario, in order (repeat)")
    co.add_argument("--member", action="append", default=[], help="with --create: a trainee of the group (repeat)")

    rt = sub.add_parser("report", help="the landmark-versus-image-guided report (HTML and PDF)")
    who(rt)
    rt.add_argument("--out", required=True, help="folder for report.html and report.pdf")
    rt.add_argument("--course", help="only this course (id or name)")
    rt.add_argument("--trainee", action="append", help="only these trainees (repeat)")
    rt.add_argument("--from", dest="date_from", help="first day (YYYY-MM-DD)")
    rt.add_argument("--to", dest="date_to", help="last day (YYYY-MM-DD)")
    rt.add_argument("--procedure", action="append", help="only these procedures (repeat)")
    rt.add_argument("--acceptable-failure-rate", type=float, default=0.2, help="LC-CUSUM p0 (default 0.2)")
    rt.add_argument("--unacceptable-failure-rate", type=float, default=0.4, help="LC-CUSUM p1 (default 0.4)")


HANDLERS = {}


def _handler(name):
    def register(fn):
        HANDLERS[name] = fn
        return fn
    return register


def _password(prompt: str, variable: str) -> str:
    value = os.environ.get(variable)
    if value is not None:
        return value
    if not sys.stdin.isatty():
        raise SpineSimError(f"{variable}: not set, and there is no terminal to ask for the password")
    return getpass.getpass(prompt)


def _open(args):
    """(store, actor) for the command's ``--user`` / ``--instructor``."""
    from simulator.records.recording import station_account
    from simulator.records.store import Store

    store = Store.open(getattr(args, "database", None))
    if getattr(args, "instructor", None):
        return store, store.unlock(args.instructor, _password(f"Instructor password for {args.instructor}: ",
                                                              "SPINESIM_INSTRUCTOR_PASSWORD"))
    return store, store.sign_in(args.user or station_account())


@_handler("attempts")
def cmd_attempts(args) -> int:
    store, actor = _open(args)
    rows = store.attempts(actor, owner=args.owner)
    if args.json:
        print(json.dumps([{"id": a.id, "owner": a.owner, "scenario": a.scenario_id, "course": a.course,
                           "status": a.status, "started_at": a.started_at.isoformat(),
                           "commands": a.n_commands} for a in rows], indent=1))
        return 0
    for a in rows:
        card = store.scorecard(actor, a.id)
        score = "" if card is None else f"{'PASS' if card['passed'] else 'FAIL'} {card['score']:.0f}"
        print(f"{a.id:>6}  {a.started_at:%Y-%m-%d %H:%M}  {a.owner:<16} {a.scenario_id:<52} {a.status:<11} {score}")
    return 0


def replay_source(args):
    """(loaded scenario, record, store or None, actor or None, attempt id or None) of
    ``args.attempt``: a stored attempt id or an attempt file."""
    from simulator.records.attempt_file import read_record

    if args.attempt.isdigit() and not Path(args.attempt).exists():
        store, actor = _open(args)
        attempt_id = int(args.attempt)
        record = store.attempt_record(actor, attempt_id)
    else:
        store = actor = attempt_id = None
        record = read_record(args.attempt)
    if record.header is None:
        raise SpineSimError(f"{args.attempt}: a script of commands without a header names no scenario or patient")
    from simulator.scenario.loader import parse_scenario

    scenario = record.header["scenario"]
    return parse_scenario(scenario["text"], scenario.get("source", args.attempt)), record, store, actor, attempt_id


def generator_warning(record) -> str | None:
    """The warning when the attempt's patient was made by another generator version."""
    from simulator.anatomy.patient import GENERATOR_VERSION

    made_by = record.header.get("generator_version")
    if made_by and made_by != GENERATOR_VERSION:
        return (f"this attempt's patient was made by generator {made_by}, which is gone; it is rebuilt from "
                f"the same parameters by generator {GENERATOR_VERSION}, so the anatomy may differ in detail")
    return None


@_handler("replay")
def cmd_replay(args) -> int:
    loaded, record, store, actor, attempt_id = replay_source(args)
    warning = generator_warning(record)
    if warning:
        print(f"spinesim: warning: {warning}", file=sys.stderr)
    if args.gui:
        from simulator.app.replay_window import run_replay_app

        owner = None if store is None else store.attempt(actor, attempt_id).owner
        return run_replay_app(record, trainee=owner)
    from simulator.simulation.simulation import Simulation
    from simulator.protocol.commands import Finish

    sim = Simulation.replay(loaded, record)
    if not sim.finished:
        sim.apply(Finish())
    card = sim.scorecard.as_dict()
    stored = None if store is None else store.scorecard(actor, attempt_id)
    if args.rescore:
        if store is None:
            raise SpineSimError(f"{args.attempt}: only a stored attempt can be re-scored")
        if stored is not None and stored["scoring_version"] >= card["scoring_version"]:
            print(f"spinesim: attempt {attempt_id} is already scored with version {stored['scoring_version']}",
                  file=sys.stderr)
        else:
            store.add_scorecard(actor, attempt_id, card)
            print(f"spinesim: attempt {attempt_id} re-scored with scoring version {card['scoring_version']}",
                  file=sys.stderr)
    if args.json:
        print(json.dumps({"scorecard": card, "stored_scorecard": stored, "warning": warning}, indent=1))
    else:
        print(f"{'PASS' if card['passed'] else 'FAIL'}  score {card['score']:.0f}/100  outcome: "
              f"{card['placement']['outcome']}  (scoring version {card['scoring_version']})")
        if stored is not None and stored["score"] != card["score"]:
            print(f"  stored: score {stored['score']:.0f} (scoring version {stored['scoring_version']})")
        for line in card["feedback"]:
            print(f"  - {line}")
    return 0


@_handler("export")
def cmd_export(args) -> int:
    store, actor = _open(args)
    out = Path(args.out)
    if args.format == "csv":
        from simulator.records.csv_export import attempt_csv_rows, write_attempts_csv

        rows = attempt_csv_rows(store, actor, args.attempts)
        write_attempts_csv(rows, out)
        print(f"wrote {len(rows)} attempts to {out}")
        return 0
    if len(args.attempts) != 1:
        raise SpineSimError(f"attempts: the {args.format} export takes exactly one attempt id")
    attempt_id = args.attempts[0]
    if args.format == "attempt":
        store.export_attempt(actor, attempt_id, out)
        print(f"wrote {out}")
    elif args.format == "xapi":
        _export_xapi(store, actor, attempt_id, out, args)
    else:
        _export_dicom(store, actor, attempt_id, out)
    return 0


def _export_xapi(store, actor, attempt_id: int, out: Path, args) -> None:
    from simulator.records import xapi

    info = store.attempt(actor, attempt_id)
    statements = xapi.statements_for_attempt(
        str(attempt_id), xapi.Trainee(info.owner, info.owner), store.attempt_record(actor, attempt_id).header,
        store.events(actor, attempt_id), store.scorecard(actor, attempt_id),
        info.started_at if info.started_at.tzinfo else info.started_at.replace(tzinfo=timezone.utc),
        course_id=info.course)
    xapi.write_statements(out, statements)
    print(f"wrote {len(statements)} xAPI statements to {out}")
    if args.lrs:
        auth = (args.lrs_user, _password("LRS password: ", "SPINESIM_LRS_PASSWORD")) if args.lrs_user else None
        ids = xapi.post_statements(args.lrs, statements, auth=auth)
        print(f"posted {len(ids)} statements to {args.lrs}")


def _export_dicom(store, actor, attempt_id: int, folder: Path) -> None:
    """The attempt's X-ray images as DICOM: replayed from its commands (the images are a function of
    them), so nothing needs to have been stored."""
    from simulator.records import dicom_export
    from simulator.scenario.loader import parse_scenario
    from simulator.simulation.simulation import Simulation

    record = store.attempt_record(actor, attempt_id)
    scenario = record.header["scenario"]
    sim = Simulation.replay(parse_scenario(scenario["text"], scenario.get("source", "")), record)
    if not sim.images:
        raise SpineSimError(f"attempt {attempt_id}: no X-ray images were taken")
    info = store.attempt(actor, attempt_id)
    started = info.started_at if info.started_at.tzinfo else info.started_at.replace(tzinfo=timezone.utc)
    written = dicom_export.write_attempt_dicom(
        folder, dicom_export.images_from_simulation(sim),
        dicom_export.attempt_info_from_simulation(sim, f"spinesim-{attempt_id}", info.owner, started))
    print(f"wrote {len(written)} DICOM images to {folder}")


@_handler("import")
def cmd_import(args) -> int:
    store, actor = _open(args)
    print(f"imported as attempt {store.import_attempt(actor, args.file)}")
    return 0


@_handler("users")
def cmd_users(args) -> int:
    from simulator.records.store import Store

    store = Store.open(getattr(args, "database", None))
    actor = None
    if args.instructor:
        actor = store.unlock(args.instructor, _password(f"Instructor password for {args.instructor}: ",
                                                        "SPINESIM_INSTRUCTOR_PASSWORD"))
    password = None
    if args.role == "instructor":
        password = _password(f"New instructor password for {args.account}: ", "SPINESIM_NEW_PASSWORD")
    store.add_user(actor, args.account, args.name or args.account, args.role, password)
    print(f"added {args.role} {args.account}")
    return 0


@_handler("courses")
def cmd_courses(args) -> int:
    from simulator.scenario.loader import load_scenario

    store, actor = _open(args)
    if args.create:
        for ref in args.scenario:
            load_scenario(ref)  # a course names only scenarios that load
        course_id = store.create_course(actor, args.create, [load_scenario(r).scenario.id for r in args.scenario],
                                        args.member)
        print(f"created course {course_id}: {args.create}")
        return 0
    for c in store.courses(actor):
        print(f"{c.id:>4}  {c.name}: {', '.join(c.scenario_ids)}  (members: {', '.join(c.members) or 'none'})")
    return 0


@_handler("report")
def cmd_report(args) -> int:
    from simulator.analysis.report import Selection, attempt_rows, build_report, write_html, write_pdf

    store, actor = _open(args)
    course = int(args.course) if args.course and args.course.isdigit() else args.course
    selection = Selection(course=course, trainees=args.trainee, date_from=args.date_from, date_to=args.date_to,
                          procedures=args.procedure)
    report = build_report(attempt_rows(store, actor, selection),
                          acceptable_failure_rate=args.acceptable_failure_rate,
                          unacceptable_failure_rate=args.unacceptable_failure_rate)
    out = Path(args.out)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise SpineSimError(f"{out}: cannot create the folder ({err.strerror})") from None
    for path in (write_html(report, out / "report.html"), write_pdf(report, out / "report.pdf")):
        print(f"wrote {path}")
    return 0
