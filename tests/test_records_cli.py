"""Attempts in the store from end to end, as an instructor and a trainee use them: every command of
a simulation committed as it happens (a station killed mid-attempt keeps its attempt up to its last
command), listed, replayed to the same score, exported (signed file, CSV, xAPI, DICOM), imported
on another station, and reported on."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import textwrap

import pytest
from pg_server import pg_server  # noqa: F401  (the session fixture)
from spine_helpers import FLUORO_L4L5

from simulator.records.xapi import validate_statement


def spinesim(env, *args, timeout=900):
    return subprocess.run([sys.executable, "-m", "simulator", *map(str, args)], env=env, capture_output=True,
                          text=True, timeout=timeout)


@pytest.fixture(scope="module")
def station(cli_env, tmp_path_factory):
    """A station's environment with its own database, an instructor, and one expert attempt of
    trainee alice made by the CLI and kept in the store."""
    folder = tmp_path_factory.mktemp("station")
    env = dict(cli_env, SPINESIM_DATABASE_URL=f"sqlite:///{folder / 'station.db'}",
               SPINESIM_NEW_PASSWORD="correct horse", SPINESIM_INSTRUCTOR_PASSWORD="correct horse")
    run = spinesim(env, "users", "bob", "--name", "Dr Bob", "--role", "instructor")
    assert run.returncode == 0, run.stderr
    run = spinesim(env, "attempt", FLUORO_L4L5, "--reference", "--store", "--user", "alice", "--json",
                   "--record", folder / "alice.jsonl", "--images")
    assert run.returncode == 0, run.stderr
    attempt_id = int(run.stderr.split("stored as attempt")[1].split()[0])
    return {"env": env, "folder": folder, "id": attempt_id, "result": json.loads(run.stdout)}


def test_a_stored_attempt_is_listed_and_replays_to_the_same_score(station):
    env, attempt_id = station["env"], station["id"]
    run = spinesim(env, "attempts", "--user", "alice", "--json")
    listed = {a["id"]: a for a in json.loads(run.stdout)}
    assert listed[attempt_id]["status"] == "finished" and listed[attempt_id]["owner"] == "alice"
    from simulator.records.store import Store

    with Store.open(env["SPINESIM_DATABASE_URL"]) as store:  # the images were asked for: kept
        images = store.images(store.sign_in("alice"), attempt_id)
    assert len(images) == station["result"]["scorecard"]["metrics"]["images"]
    # another trainee does not see it
    run = spinesim(env, "attempts", "--user", "carol", "--json")
    assert attempt_id not in {a["id"] for a in json.loads(run.stdout)}
    run = spinesim(env, "replay", attempt_id, "--user", "alice", "--json")
    assert run.returncode == 0, run.stderr
    replayed = json.loads(run.stdout)
    assert replayed["scorecard"]["score"] == station["result"]["scorecard"]["score"]
    assert replayed["stored_scorecard"]["score"] == station["result"]["scorecard"]["score"]
    assert replayed["warning"] is None
    run = spinesim(env, "replay", attempt_id, "--user", "carol")
    assert run.returncode == 2 and run.stderr.count("\n") == 1 and str(attempt_id) in run.stderr
    # the same attempt from its file: the same score
    run = spinesim(env, "replay", station["folder"] / "alice.jsonl", "--json")
    assert json.loads(run.stdout)["scorecard"]["score"] == station["result"]["scorecard"]["score"]


def test_exports_csv_xapi_dicom_and_a_signed_file_another_station_imports(station, tmp_path):
    env, attempt_id = station["env"], station["id"]
    out = tmp_path / "attempts.csv"
    run = spinesim(env, "export", "--format", "csv", "--out", out, "--user", "alice")
    assert run.returncode == 0, run.stderr
    rows = list(csv.DictReader(open(out, encoding="utf-8")))
    row = next(r for r in rows if int(r["attempt_id"]) == attempt_id)
    assert float(row["score"]) == station["result"]["scorecard"]["score"] and row["passed"] == "True"
    assert float(row["metrics.images"]) == station["result"]["scorecard"]["metrics"]["images"]

    statements = tmp_path / "xapi.json"
    run = spinesim(env, "export", attempt_id, "--format", "xapi", "--out", statements, "--instructor", "bob")
    assert run.returncode == 0, run.stderr
    loaded = json.loads(statements.read_text())
    assert loaded and all(validate_statement(s) == [] for s in loaded)
    assert loaded[0]["verb"]["id"].endswith("/passed")

    folder = tmp_path / "dicom"
    run = spinesim(env, "export", attempt_id, "--format", "dicom", "--out", folder, "--instructor", "bob")
    assert run.returncode == 0, run.stderr
    assert len(list(folder.glob("*.dcm"))) == station["result"]["scorecard"]["metrics"]["images"]

    signed = tmp_path / "attempt.json"
    run = spinesim(env, "export", attempt_id, "--format", "attempt", "--out", signed, "--user", "alice")
    assert run.returncode == 2 and "instructor" in run.stderr  # exporting is an instructor action
    run = spinesim(env, "export", attempt_id, "--format", "attempt", "--out", signed, "--instructor", "bob")
    assert run.returncode == 0, run.stderr
    other = dict(env, SPINESIM_DATABASE_URL=f"sqlite:///{tmp_path / 'other.db'}")
    assert spinesim(other, "users", "eve", "--role", "instructor").returncode == 0
    tampered = tmp_path / "tampered.json"
    tampered.write_text(signed.read_text().replace('"score": 100.0', '"score": 99.0', 1)
                        .replace('"score":100.0', '"score":99.0', 1))
    assert tampered.read_text() != signed.read_text()
    run = spinesim(other, "import", tampered, "--instructor", "eve")
    assert run.returncode == 2 and "tampered.json" in run.stderr
    run = spinesim(other, "import", signed, "--instructor", "eve")
    assert run.returncode == 0, run.stderr


def test_a_course_is_made_and_its_report_is_written_as_html_and_pdf(station, tmp_path):
    env = station["env"]
    run = spinesim(env, "courses", "--create", "Spring class", "--scenario", FLUORO_L4L5, "--member", "alice",
                   "--user", "alice")
    assert run.returncode == 2 and "instructor" in run.stderr
    run = spinesim(env, "courses", "--create", "Spring class", "--scenario", FLUORO_L4L5, "--member", "alice",
                   "--instructor", "bob")
    assert run.returncode == 0, run.stderr
    run = spinesim(env, "courses", "--user", "alice")
    assert "Spring class" in run.stdout and FLUORO_L4L5 in run.stdout
    run = spinesim(env, "attempt", FLUORO_L4L5, "--reference", "--store", "--user", "alice",
                   "--course", "Spring class")
    assert run.returncode == 0, run.stderr
    run = spinesim(env, "report", "--out", tmp_path, "--instructor", "bob", "--course", "Spring class")
    assert run.returncode == 0, run.stderr
    html = (tmp_path / "report.html").read_text(encoding="utf-8")
    assert "lumbar interlaminar" in html and "Wilson" in html
    assert (tmp_path / "report.pdf").read_bytes().startswith(b"%PDF")


#: A station that runs a simulation recording into the store and says after each command how many
#: it has done (the store has committed it by then).
_STATION = textwrap.dedent("""
    import sys
    from simulator.anatomy.anatomy import build_anatomy
    from simulator.protocol import commands as cmd
    from simulator.records.recording import StoreRecorder
    from simulator.records.store import Store
    from simulator.scenario.loader import load_scenario
    from simulator.simulation.simulation import Simulation

    loaded = load_scenario(sys.argv[1])
    anatomy = build_anatomy(loaded.scenario.patient.parameters(), voxel_mm=3.0, levels=("L3", "S1"))
    store = Store.open()
    recorder = StoreRecorder(store, store.sign_in("dave"))
    sim = Simulation(loaded, anatomy=anatomy, image_size_px=32, recorders=[recorder])
    print("attempt", recorder.attempt_id, flush=True)
    entry = anatomy.skin_point_behind(anatomy.landmark("L4-L5.epidural_target"))
    sim.apply(cmd.SetEntry(point_mm=tuple(float(v) for v in entry)))
    for n in range(1, 1000):
        sim.apply(cmd.Advance(distance_mm=0.5) if n % 2 else cmd.Withdraw(distance_mm=0.5))
        print("done", n + 1, flush=True)
""")


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_a_station_killed_mid_attempt_keeps_every_command_it_acknowledged(cli_env, tmp_path, request, backend):
    """The station is really killed (SIGKILL) after some commands: its attempt is in the store up to
    the last acknowledged command, marked incomplete, and replays; on SQLite and on PostgreSQL."""
    from simulator.records.store import Store
    from simulator.scenario.loader import load_scenario
    from simulator.simulation.simulation import Simulation

    if backend == "sqlite":
        url = f"sqlite:///{tmp_path / 'killed.db'}"
    else:
        server = request.getfixturevalue("pg_server")
        url = server.url(server.create_database())
    with Store.open(url) as setup:  # the trainee's account, as the centre's admin makes it
        setup.add_user(None, "dave", "Dave D.")
    env = dict(cli_env, SPINESIM_DATABASE_URL=url)
    child = subprocess.Popen([sys.executable, "-c", _STATION, FLUORO_L4L5], env=env, stdout=subprocess.PIPE,
                             text=True)
    attempt_id, acknowledged = None, 0
    for line in child.stdout:
        word, number = line.split()
        if word == "attempt":
            attempt_id = int(number)
        elif int(number) >= 40:
            acknowledged = int(number)
            os.kill(child.pid, signal.SIGKILL)
            break
    child.wait(timeout=60)
    assert child.returncode == -signal.SIGKILL and attempt_id is not None
    store = Store.open(url)
    actor = store.sign_in("dave")
    assert store.attempt(actor, attempt_id).status == "incomplete"
    assert store.attempt(actor, attempt_id).owner == "dave"
    record = store.attempt_record(actor, attempt_id)
    assert len(record.commands) >= acknowledged  # nothing acknowledged is lost
    assert [c.command.command for c in record.commands[:3]] == ["set_entry", "advance", "withdraw"]
    from simulator.anatomy.anatomy import build_anatomy

    loaded = load_scenario(FLUORO_L4L5)
    anatomy = build_anatomy(loaded.scenario.patient.parameters(), voxel_mm=3.0, levels=("L3", "S1"))
    sim = Simulation.replay(loaded, record, anatomy=anatomy, image_size_px=32, stop_on_refusal=True)
    assert len(sim.commands) == len(record.commands)

    # resumed: the record so far replayed, the recorder attached, the attempt carried on to its end
    from simulator.protocol import commands as cmd
    from simulator.records.recording import StoreRecorder

    recorder, so_far = StoreRecorder.resuming(store, actor, attempt_id)
    assert store.attempt(actor, attempt_id).status == "in_progress"
    sim = Simulation.replay(loaded, so_far, anatomy=anatomy, image_size_px=32)
    sim.attach(recorder)
    sim.apply(cmd.Advance(distance_mm=1.0))
    sim.apply(cmd.Finish())
    assert store.attempt(actor, attempt_id).status == "finished"
    assert len(store.attempt_record(actor, attempt_id).commands) == len(so_far.commands) + 2
    assert store.scorecard(actor, attempt_id)["score"] == sim.scorecard.score


def test_an_attempt_scored_by_an_older_version_is_rescored_and_both_kept(station):
    """``replay --rescore``: an attempt whose stored scorecard is of an older scoring version gets
    the current one beside it, recorded as a re-score; the original stays."""
    from simulator.records.store import Store
    from simulator.scoring.scorecard import SCORING_VERSION

    env = station["env"]
    store = Store.open(env["SPINESIM_DATABASE_URL"])
    alice = store.sign_in("alice")
    record = store.attempt_record(alice, station["id"])
    old = store.start_attempt(alice, record.header)
    for timed in record.commands:
        store.append_command(old, timed)
    card = dict(station["result"]["scorecard"], scoring_version=SCORING_VERSION - 1, score=55.0)
    store.finish_attempt(old, card)
    store.close()
    run = spinesim(env, "replay", old, "--user", "alice", "--rescore")
    assert run.returncode == 0 and "re-scored" in run.stderr, run.stderr
    assert "stored: score 55" in run.stdout
    store = Store.open(env["SPINESIM_DATABASE_URL"])
    kept = store.scorecards(store.sign_in("alice"), old)
    assert [(c.kind, c.scoring_version) for c in kept] == [("original", SCORING_VERSION - 1),
                                                           ("rescore", SCORING_VERSION)]
    assert kept[1].scorecard["score"] == station["result"]["scorecard"]["score"]
