"""The attempt store, the same tests on SQLite and on a real PostgreSQL server (started by the
tests themselves, see pg_server.py): records round-trip, a process killed mid-attempt loses
nothing it acknowledged, two writing processes lose nothing, trainees see only their own attempts
(on PostgreSQL even with SQL over their own login), the instructor password, signed result files,
rescoring and the migrations."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pytest
from pg_server import pg_server  # noqa: F401  (the session fixture)

from simulator.errors import SpineSimError
from simulator.protocol.events import Event
from simulator.records import security
from simulator.records.attempt_file import AttemptRecord, TimedCommand, make_header, read_record
from simulator.records.store import Actor, Store, database_url, default_database_url
from simulator.records.store_schema import metadata

SCENARIO = "lumbar_interlaminar_l4l5_fluoroscopy"
GOLDEN = Path(__file__).parent / "golden" / f"{SCENARIO}.jsonl"
INSTRUCTOR_PASSWORD = "correct horse battery"
#: Each person's database password (PostgreSQL logins).
LOGIN_PASSWORD = "login-pw-123"


@dataclass
class Backend:
    """One database to test on: ``url`` is the admin's (owner's) URL of a fresh database."""

    kind: str
    url: str
    server: object | None = None
    database: str | None = None

    def login(self, account: str, display_name: str, role: str = "trainee", instructor_password=None) -> str:
        """A person with their own database login (PostgreSQL) and a users row; their URL."""
        if self.kind == "sqlite":
            store = Store.open(self.url)
            try:
                store.put_user_unchecked(account, display_name, role, instructor_password)
            finally:
                store.close()
            return self.url
        security.create_login(self.url, account, display_name, role, LOGIN_PASSWORD, instructor_password)
        return self.server.url(self.database, account, LOGIN_PASSWORD)

    def another_database(self, tmp_path: Path) -> str:
        """The URL of a second fresh database (another station's)."""
        if self.kind == "sqlite":
            return f"sqlite:///{(tmp_path / 'other-station.db').as_posix()}"
        return self.server.url(self.server.create_database())


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request, tmp_path):
    if request.param == "sqlite":
        return Backend("sqlite", f"sqlite:///{(tmp_path / 'store.db').as_posix()}")
    server = request.getfixturevalue("pg_server")
    database = server.create_database()
    url = server.url(database)
    security.setup_centre_database(url)
    return Backend("postgresql", url, server, database)


@pytest.fixture
def store(backend):
    s = Store.open(backend.url)
    yield s
    s.close()


def _header(scenario_id: str = SCENARIO) -> dict:
    return make_header(scenario_id, "builtin", "0" * 64, "[scenario]\nid = 'x'\n", {"seed": 1, "sex": "male"},
                       "spine-3")


def _people(store: Store) -> tuple[Actor, Actor, Actor]:
    """(an unlocked instructor, trainee alice, trainee bob) in a fresh store."""
    store.add_user(None, "drlee", "Dr Lee", "instructor", password=INSTRUCTOR_PASSWORD)
    lee = store.unlock("drlee", INSTRUCTOR_PASSWORD)
    return lee, store.add_user(lee, "alice", "Alice A."), store.add_user(lee, "bob", "Bob B.")


def _commands(n: int) -> list[dict]:
    kinds = [{"command": "advance", "distance_mm": 1.5}, {"command": "acquire_image"},
             {"command": "redirect", "cranial_deg": -1.25, "right_deg": 0.5},
             {"command": "move_carm", "oblique_deg": 20.0, "tilt_deg": 5.0}]
    return [{"t_s": 0.5 * i, **kinds[i % len(kinds)]} for i in range(n)]


# ------------------------------------------------------------------------------ migrations
def test_a_fresh_database_reaches_head_and_matches_the_orm(backend):
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    store = Store.open(backend.url)
    try:
        current, head = store.schema_revision()
        assert current == head is not None
        with store.engine.connect() as conn:
            diff = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), metadata)
        assert diff == [], f"the migrations and the ORM disagree: {diff}"
    finally:
        store.close()
    Store.open(backend.url).close()  # opening again at head changes nothing


# ------------------------------------------------------------------------------ round trip
@pytest.fixture(scope="module")
def live_attempt(tmp_path_factory):
    """The golden expert attempt at the L4-L5 interlaminar scenario, run live on a coarse anatomy:
    (simulation, the events each command caused)."""
    from simulator.anatomy.anatomy import build_anatomy
    from simulator.scenario.loader import load_scenario
    from simulator.simulation.simulation import Simulation

    loaded = load_scenario(SCENARIO)
    anatomy = build_anatomy(loaded.scenario.patient.parameters(), voxel_mm=4.0, levels=("L3", "S1"))
    sim = Simulation(loaded, anatomy=anatomy, image_size_px=32)
    per_command = [list(sim.events)]
    for timed in read_record(GOLDEN).commands:
        per_command.append(sim.apply(timed.command, timed.t_s))
    assert sim.finished
    return sim, per_command


def test_an_attempt_round_trips_and_replays_to_the_same_scorecard(store, live_attempt):
    """Stored as it happens (each command, its events, an image on request, the scorecard), the
    attempt reads back as an AttemptRecord equal to the simulation's own, and its replay scores the
    same."""
    from simulator.simulation.simulation import Simulation

    sim, per_command = live_attempt
    _, alice, _ = _people(store)
    aid = store.start_attempt(alice, sim.header)
    store.append_events(aid, per_command[0])
    for timed, events in zip(sim.commands, per_command[1:], strict=True):
        store.append_command(aid, timed)
        store.append_events(aid, events)
    store.add_image(aid, 0, sim.images[0].display)
    store.finish_attempt(aid, sim.scorecard)

    record = store.attempt_record(alice, aid)
    assert record == AttemptRecord(json.loads(json.dumps(sim.header)), sim.commands)
    assert [e.as_dict() for e in store.events(alice, aid)] == json.loads(json.dumps([e.as_dict() for e in sim.events]))
    assert np.array_equal(store.image_array(alice, aid, 0), sim.images[0].display)
    info = store.attempt(alice, aid)
    assert (info.status, info.n_commands, info.owner) == ("finished", len(sim.commands), "alice")
    assert info.finished_at >= info.started_at
    assert store.scorecard(alice, aid) == json.loads(json.dumps(sim.scorecard.as_dict()))
    replay = Simulation.replay(sim.loaded, record, anatomy=sim.anatomy, image_size_px=32)
    assert replay.scorecard.as_dict() == sim.scorecard.as_dict()


def test_commands_are_checked_and_only_the_writing_process_appends(store, backend):
    lee, alice, _ = _people(store)
    aid = store.start_attempt(alice, _header())
    given = _commands(6)
    assert [store.append_command(aid, c) for c in given] == list(range(6))
    with pytest.raises(SpineSimError, match="distance_mm"):
        store.append_command(aid, {"t_s": 9.0, "command": "advance", "distance_mm": -1.0})
    with pytest.raises(SpineSimError, match="back in time"):
        store.append_command(aid, {"t_s": 0.1, "command": "acquire_image"})
    other = Store.open(backend.url)
    try:
        with pytest.raises(SpineSimError, match="not being written by this process"):
            other.append_command(aid, {"t_s": 9.0, "command": "finish"})
    finally:
        other.close()
    assert store.attempt_record(alice, aid).commands == [TimedCommand(c["t_s"], _parse(c)) for c in given]
    store.finish_attempt(aid)
    with pytest.raises(SpineSimError, match="already finished"):
        store.append_command(aid, {"t_s": 9.0, "command": "finish"})


def _parse(c: dict):
    from simulator.protocol.commands import parse_command

    return parse_command({k: v for k, v in c.items() if k != "t_s"})


# ----------------------------------------------------------------------- child processes
CHILD = r"""
import sys
from simulator.records.attempt_file import make_header
from simulator.records.store import Store

url, account, count, course = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4] or None
store = Store.open(url)
actor = store.actor(account)
header = make_header("child", "builtin", "0" * 64, "", {"seed": 1}, "spine-3")
aid = store.start_attempt(actor, header, course=course)
print("attempt", aid, flush=True)
if sys.stdin.readline().strip() != "go":
    sys.exit(2)
for i in range(count):
    seq = store.append_command(aid, {"t_s": 0.25 * i, "command": "advance", "distance_mm": 1.0 + (i % 7)})
    print("ack", seq, flush=True)
store.finish_attempt(aid, {"scoring_version": 2, "passed": True, "score": 80.0})
store.close()
print("done", flush=True)
"""


def _child(url: str, account: str, count: int, course: str = "") -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", CHILD, url, account, str(count), course], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=dict(os.environ))


def _started(child: subprocess.Popen) -> int:
    line = child.stdout.readline()
    if not line.startswith("attempt "):
        child.kill()
        raise AssertionError(f"the child did not start an attempt: {line!r} {child.stderr.read()[-2000:]}")
    return int(line.split()[1])


def _expected(i: int) -> TimedCommand:
    return TimedCommand(0.25 * i, _parse({"command": "advance", "distance_mm": 1.0 + (i % 7)}))


def test_a_process_killed_mid_attempt_loses_nothing_it_acknowledged(backend):
    """The child prints each command the store acknowledged; it is killed (SIGKILL) after the 25th.
    Every acknowledged command is there, and the next open marks the attempt incomplete."""
    admin = Store.open(backend.url)
    lee, alice, _ = _people(admin)
    admin.close()
    child = _child(backend.url, "alice", 100_000)
    aid = _started(child)
    child.stdin.write("go\n")
    child.stdin.flush()
    acknowledged = -1
    while acknowledged < 24:
        line = child.stdout.readline()
        assert line.startswith("ack "), f"child: {line!r} {child.stderr.read()[-2000:] if not line else ''}"
        acknowledged = int(line.split()[1])
    os.kill(child.pid, signal.SIGKILL)
    assert child.wait(timeout=30) == -signal.SIGKILL

    store = Store.open(backend.url)
    try:
        lee = store.unlock("drlee", INSTRUCTOR_PASSWORD)
        info = store.attempt(lee, aid)
        assert info.status == "incomplete"
        commands = store.attempt_record(lee, aid).commands
        assert len(commands) >= acknowledged + 1 == 25
        assert commands == [_expected(i) for i in range(len(commands))]
        assert info.n_commands == len(commands)
        # the trainee carries on where the record stops
        alice = store.actor("alice")
        assert store.resume_attempt(alice, aid).commands == commands
        assert store.append_command(aid, {"t_s": 1e4, "command": "finish"}) == len(commands)
        store.finish_attempt(aid)
        assert store.attempt(alice, aid).status == "finished"
    finally:
        store.close()


def test_two_processes_writing_at_once_lose_nothing(backend):
    """Two processes append to their own attempts in one course at the same time (released
    together): every command of both is there, in order."""
    admin = Store.open(backend.url)
    lee, _, _ = _people(admin)
    admin.create_course(lee, "Spring block", [SCENARIO, "caudal_fluoroscopy"], members=["alice", "bob"])
    admin.close()
    count = 150
    children = [_child(backend.url, name, count, "Spring block") for name in ("alice", "bob")]
    ids = [_started(c) for c in children]
    for c in children:
        c.stdin.write("go\n")
        c.stdin.flush()
    for c in children:
        out, err = c.communicate(timeout=120)
        assert c.returncode == 0, err[-2000:]
        assert out.rstrip().endswith("done")
    store = Store.open(backend.url)
    try:
        lee = store.unlock("drlee", INSTRUCTOR_PASSWORD)
        for aid in ids:
            assert store.attempt_record(lee, aid).commands == [_expected(i) for i in range(count)]
            assert store.attempt(lee, aid).status == "finished"
        assert [a.id for a in store.attempts(lee, course="Spring block")] == sorted(ids)
    finally:
        store.close()


# ------------------------------------------------------------------------------ roles
def test_a_trainee_cannot_read_another_trainees_attempts(backend):
    admin = Store.open(backend.url)
    lee, _, _ = _people(admin)
    admin.close()
    alice_url = backend.login("alice", "Alice A.")
    bob_url = backend.login("bob", "Bob B.")
    lee_url = backend.login("drlee", "Dr Lee", "instructor", INSTRUCTOR_PASSWORD)

    bobs = Store.open(bob_url)
    bob = bobs.actor("bob")
    bob_attempt = bobs.start_attempt(bob, _header())
    bobs.append_command(bob_attempt, {"t_s": 1.0, "command": "acquire_image"})
    bobs.finish_attempt(bob_attempt, {"scoring_version": 2, "score": 55.0})
    bobs.close()

    alices = Store.open(alice_url)
    try:
        alice = alices.actor("alice")
        own = alices.start_attempt(alice, _header())
        alices.append_command(own, {"t_s": 1.0, "command": "acquire_image"})
        assert [a.id for a in alices.attempts(alice)] == [own]
        for read in (alices.attempt, alices.attempt_record, alices.events, alices.scorecards, alices.images):
            with pytest.raises(SpineSimError, match=f"attempt {bob_attempt}"):
                read(alice, bob_attempt)
        with pytest.raises(SpineSimError, match="instructor password"):
            alices.attempts(alice, owner="bob")
        with pytest.raises(SpineSimError):
            alices.delete_attempt(alice, bob_attempt)
        with pytest.raises(SpineSimError, match="not issued by this store"):
            alices.attempt_record(Actor(alice.user_id, "alice", "Alice", "instructor", True), bob_attempt)
    finally:
        alices.close()

    lees = Store.open(lee_url)
    try:
        lee = lees.unlock("drlee", INSTRUCTOR_PASSWORD)
        assert lees.attempt_record(lee, bob_attempt).commands[0].command.command == "acquire_image"
        assert {a.owner for a in lees.attempts(lee)} == {"alice", "bob"}
    finally:
        lees.close()

    if backend.kind == "postgresql":
        _trainee_sql_sees_only_own_rows(backend, bob_attempt, own)


def _trainee_sql_sees_only_own_rows(backend: Backend, bob_attempt: int, alice_attempt: int) -> None:
    """Raw SQL over alice's own login: the server's row security, not SpineSim, hides bob's rows."""
    import psycopg

    server = backend.server
    with server.connect(backend.database, "alice", LOGIN_PASSWORD, autocommit=True) as conn:
        assert conn.execute("SELECT id, owner FROM attempts ORDER BY id").fetchall() == [(alice_attempt, "alice")]
        assert conn.execute("SELECT count(*) FROM attempt_commands WHERE attempt_id = %s",
                            (bob_attempt,)).fetchone() == (0,)
        assert conn.execute("SELECT count(*) FROM scorecards").fetchone() == (0,)
        assert conn.execute("SELECT account FROM users").fetchall() == [("alice",)]
        assert conn.execute("UPDATE attempts SET status = 'incomplete' WHERE id = %s", (bob_attempt,)).rowcount == 0
        for sql in ("SELECT * FROM credentials", "DELETE FROM attempts", "SET ROLE spinesim_instructor",
                    "SET ROLE bob", f"INSERT INTO attempt_commands VALUES ({bob_attempt}, 99, 1.0, '{{}}')",
                    "UPDATE attempts SET owner = 'alice'", "ALTER TABLE attempts DISABLE ROW LEVEL SECURITY",
                    "CREATE TABLE sneaky (x int)", f"UPDATE attempts SET header = '{{}}' WHERE id = {alice_attempt}",
                    "DELETE FROM attempt_commands"):
            with pytest.raises(psycopg.Error):
                conn.execute(sql)
    # the instructor's login sees everything
    with server.connect(backend.database, "drlee", LOGIN_PASSWORD, autocommit=True) as conn:
        assert conn.execute("SELECT count(*) FROM attempts").fetchone() == (2,)


def test_the_instructor_password(backend, store):
    store.add_user(None, "drlee", "Dr Lee", "instructor", password=INSTRUCTOR_PASSWORD)
    with pytest.raises(SpineSimError, match="wrong instructor password"):
        store.unlock("drlee", "not the password")
    lee = store.unlock("drlee", INSTRUCTOR_PASSWORD)
    assert lee.is_instructor and not store.actor("drlee").is_instructor
    alice = store.add_user(lee, "alice", "Alice A.")
    with pytest.raises(SpineSimError, match="not an instructor"):
        store.unlock("alice", INSTRUCTOR_PASSWORD)
    # with an instructor in the database, only an unlocked instructor adds users or edits courses
    for who in (None, alice, store.actor("drlee")):
        with pytest.raises(SpineSimError, match="instructor password"):
            store.add_user(who, "carol", "Carol")
        with pytest.raises(SpineSimError, match="instructor password"):
            store.create_course(who, "Block", [SCENARIO])
    with pytest.raises(SpineSimError, match="at least"):
        store.set_password(lee, "drlee", "short")
    with store.engine.connect() as conn:
        (stored,) = conn.exec_driver_sql("SELECT password_hash FROM credentials").one()
    assert stored.startswith("scrypt$") and INSTRUCTOR_PASSWORD not in stored
    store.set_password(lee, "drlee", "a new passphrase")
    with pytest.raises(SpineSimError):
        store.unlock("drlee", INSTRUCTOR_PASSWORD)
    assert store.unlock("drlee", "a new passphrase").is_instructor
    # courses: ordered scenarios, members see their own
    cid = store.create_course(lee, "Block", [SCENARIO, "caudal_fluoroscopy"], members=["alice"])
    assert store.course(alice, cid).scenario_ids == (SCENARIO, "caudal_fluoroscopy")
    store.set_course_scenarios(lee, "Block", ["caudal_fluoroscopy", SCENARIO])
    assert [c.scenario_ids for c in store.courses(alice)] == [("caudal_fluoroscopy", SCENARIO)]
    # renamed, a course keeps its scenarios, members and attempts; names stay unique
    aid = store.start_attempt(alice, _header(), course=cid)
    store.create_course(lee, "Other block", [SCENARIO])
    with pytest.raises(SpineSimError, match="Other block: already exists"):
        store.rename_course(lee, cid, "  Other   block ")
    with pytest.raises(SpineSimError, match="instructor password"):
        store.rename_course(alice, cid, "Mine now")
    store.rename_course(lee, "Block", "  Spring   block ")
    assert store.course(alice, cid).name == "Spring block"
    assert store.course(alice, cid).scenario_ids == ("caudal_fluoroscopy", SCENARIO)
    assert store.attempt(alice, aid).course == "Spring block"
    assert [a.id for a in store.attempts(lee, course="Spring block")] == [aid]


# ------------------------------------------------------------------- scorecards, results
def test_rescoring_keeps_the_original(store):
    _, alice, _ = _people(store)
    aid = store.start_attempt(alice, _header())
    store.finish_attempt(aid, {"scoring_version": 2, "passed": False, "score": 40.0})
    with pytest.raises(SpineSimError, match="not newer"):
        store.add_scorecard(alice, aid, {"scoring_version": 2, "passed": True, "score": 90.0})
    assert store.add_scorecard(alice, aid, {"scoring_version": 3, "passed": True, "score": 65.0}) == "rescore"
    cards = store.scorecards(alice, aid)
    assert [(c.kind, c.scoring_version, c.scorecard["score"]) for c in cards] == [("original", 2, 40.0),
                                                                                 ("rescore", 3, 65.0)]
    assert store.scorecard(alice, aid)["score"] == 65.0


def test_signed_result_files(backend, store, tmp_path):
    """Exported, an attempt imports on another station that trusts the exporting station's key;
    a changed file, an untrusted key and a second import are refused, naming the file."""
    lee, alice, _ = _people(store)
    aid = store.start_attempt(alice, _header())
    for c in _commands(5):
        store.append_command(aid, c)
    store.append_events(aid, [Event("attempt_started", 0.0, {"scenario": SCENARIO}),
                              Event("needle_advanced", 0.5, {"depth_mm": 1.5, "tip_mm": [0.0, 1.0, 2.0]})])
    store.add_image(aid, 0, np.arange(64, dtype=np.uint8).reshape(8, 8))
    store.finish_attempt(aid, {"scoring_version": 2, "passed": True, "score": 88.0})
    with pytest.raises(SpineSimError, match="instructor password"):
        store.export_attempt(alice, aid, tmp_path / "x.json")
    exported = store.export_attempt(lee, aid, tmp_path / "alice.result.json", include_images=True)

    other = Store.open(backend.another_database(tmp_path), station_key_file=tmp_path / "other-station.key")
    try:
        other.add_user(None, "drkim", "Dr Kim", "instructor", password=INSTRUCTOR_PASSWORD)
        kim = other.unlock("drkim", INSTRUCTOR_PASSWORD)
        with pytest.raises(SpineSimError, match=f"{exported}: signed by station key .* does not trust"):
            other.import_attempt(kim, exported)
        other.trust_key(kim, store.station_public_key, "station 1")

        tampered = tmp_path / "tampered.result.json"
        doc = json.loads(exported.read_text(encoding="utf-8"))
        doc["attempt"]["scorecards"][0]["scorecard"]["score"] = 100.0
        tampered.write_text(json.dumps(doc), encoding="utf-8")
        with pytest.raises(SpineSimError, match=f"{tampered}: signature does not match") as refused:
            other.import_attempt(kim, tampered)
        assert "\n" not in str(refused.value)
        doc = json.loads(exported.read_text(encoding="utf-8"))
        doc["attempt"]["commands"].pop()
        tampered.write_text(json.dumps(doc), encoding="utf-8")
        with pytest.raises(SpineSimError, match="signature does not match"):
            other.import_attempt(kim, tampered)

        new_id = other.import_attempt(kim, exported)
        assert other.attempt_record(kim, new_id) == store.attempt_record(lee, aid)
        assert other.events(kim, new_id) == store.events(lee, aid)
        assert other.scorecard(kim, new_id)["score"] == 88.0
        assert other.images(kim, new_id) == store.images(lee, aid)
        assert other.attempt(kim, new_id).owner == "alice"
        with pytest.raises(SpineSimError, match="already imported"):
            other.import_attempt(kim, exported)
    finally:
        other.close()
    key = tmp_path / "other-station.key"
    assert key.stat().st_mode & 0o777 == 0o600 and len(key.read_bytes()) == 32


def test_an_attempt_left_by_a_closed_store_is_incomplete_and_deletable(store, backend):
    lee, alice, _ = _people(store)
    second = Store.open(backend.url)
    aid = second.start_attempt(second.actor("alice"), _header())
    second.append_command(aid, {"t_s": 0.0, "command": "acquire_image"})
    assert store.recover() == []  # its writer is alive
    second.close()
    assert store.attempt(alice, aid).status == "incomplete"
    with pytest.raises(SpineSimError, match="instructor password"):
        store.delete_attempt(alice, aid)
    store.delete_attempt(lee, aid)
    with pytest.raises(SpineSimError, match="no such attempt"):
        store.attempt(lee, aid)


# ------------------------------------------------------------------------------- URLs
def test_the_database_url_comes_from_flag_env_settings_or_default(monkeypatch, tmp_path):
    from simulator.records.store import settings_path

    monkeypatch.setenv("SPINESIM_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("SPINESIM_DATABASE_URL", raising=False)
    assert database_url() == default_database_url() == f"sqlite:///{(tmp_path / 'spinesim.db').as_posix()}"
    settings_path().write_text('[database]\nurl = "postgresql://centre/spinesim"\n', encoding="utf-8")
    assert database_url() == "postgresql://centre/spinesim"
    monkeypatch.setenv("SPINESIM_DATABASE_URL", "sqlite:////srv/env.db")
    assert database_url() == "sqlite:////srv/env.db"
    assert database_url("sqlite:////srv/flag.db") == "sqlite:////srv/flag.db"
    monkeypatch.delenv("SPINESIM_DATABASE_URL")
    settings_path().write_text("[database]\nurl = 3\n", encoding="utf-8")
    with pytest.raises(SpineSimError, match="settings.toml: database.url"):
        database_url()
    with pytest.raises(SpineSimError, match="not a database URL"):
        Store.open("no-such-scheme")


def test_a_hand_made_actor_is_refused(tmp_path):
    store = Store.open(f"sqlite:///{(tmp_path / 's.db').as_posix()}")
    try:
        _people(store)
        forged = replace(store.actor("alice"), role="instructor", instructor_unlocked=True)
        with pytest.raises(SpineSimError, match="not issued"):
            store.attempts(forged)
    finally:
        store.close()
