"""xAPI 1.0.3 statements of an attempt: built from a real (expert) attempt, every one valid; the
validator catching each class of error; deterministic ids; a JSON file; POSTing to a throwaway LRS
(headers, auth, body) and the errors when it refuses or cannot be reached."""

from __future__ import annotations

import base64
import copy
import json
import socket
import threading
import time
import uuid
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from spine_helpers import FLUORO_L4L5

from simulator.errors import SpineSimError
from simulator.protocol.events import Event
from simulator.records import xapi
from simulator.records.xapi import (
    EXTENSIONS,
    KEY_EVENTS,
    Trainee,
    post_statements,
    statements_for_attempt,
    validate_statement,
    write_statements,
)

START = datetime(2025, 3, 1, 9, 30, tzinfo=timezone(timedelta(hours=1)))
TRAINEE = Trainee(name="Trainee 17", account_name="t-0017")


@pytest.fixture(scope="module")
def expert(request):
    """The expert's attempt at the L4-L5 fluoroscopy case on the session's small anatomy."""
    from simulator.scenario.loader import load_scenario
    from simulator.simulation.reference import run_reference
    from simulator.simulation.simulation import Simulation

    sim = Simulation(load_scenario(FLUORO_L4L5), anatomy=request.getfixturevalue("small_anatomy"), image_size_px=64)
    run_reference(sim)
    assert sim.finished and sim.scorecard.passed
    return sim


def _build(sim, attempt_id="attempt-0001", events=None, scorecard="card", **kwargs):
    return statements_for_attempt(attempt_id, TRAINEE, sim.header, sim.events if events is None else events,
                                  sim.scorecard.as_dict() if scorecard == "card" else scorecard, START,
                                  **({"course_id": "regional-anaesthesia-2025"} | kwargs))


def _verb(statement) -> str:
    return statement["verb"]["id"].rsplit("/", 1)[-1]


# ------------------------------------------------------------------------------ building
def test_every_statement_of_the_expert_attempt_is_valid_xapi(expert):
    statements = _build(expert)
    for s in statements:
        assert validate_statement(s) == [], (s["verb"], validate_statement(s))
    json.dumps(statements, allow_nan=False)  # plain JSON, no NaN
    ids = [s["id"] for s in statements]
    assert len(set(ids)) == len(ids)  # an LRS rejects a batch with a repeated id

    attempt, events = statements[0], statements[1:]
    key = [e for e in expert.events if e.kind in KEY_EVENTS]
    assert [s["result"]["extensions"][EXTENSIONS["event"]]["kind"] for s in events] == [e.kind for e in key]
    assert {"entry_set", "loss_of_resistance", "contrast_injected", "drug_injected", "image_acquired"} <= {
        e.kind for e in key}

    # the attempt: passed, its score, the simulated time it took, stamped at its end
    assert attempt["verb"] == {"id": "http://adlnet.gov/expapi/verbs/passed", "display": {"en": "passed"}}
    card = expert.scorecard
    result = attempt["result"]
    assert result["score"]["raw"] == pytest.approx(round(card.score, 1))
    assert result["score"]["scaled"] == pytest.approx(card.score / 100, abs=1e-4)
    assert (result["score"]["min"], result["score"]["max"]) == (0.0, 100.0)
    assert result["success"] is True and result["completion"] is True
    finish = next(e for e in expert.events if e.kind == "attempt_finished")
    assert result["duration"] == xapi.iso_duration(finish.t_s)
    assert attempt["timestamp"] == xapi.iso_timestamp(START + timedelta(seconds=finish.t_s))
    assert attempt["timestamp"].endswith("Z") and "." in attempt["timestamp"]
    assert "statement" not in attempt["context"]

    # who, what, in which context
    for s in statements:
        assert s["actor"] == {"objectType": "Agent", "name": "Trainee 17",
                              "account": {"homePage": "https://spinesim.invalid", "name": "t-0017"}}
        assert "mbox" not in s["actor"]
        assert s["object"]["id"] == f"https://spinesim.invalid/xapi/scenarios/{FLUORO_L4L5}"
        assert s["object"]["definition"]["name"]["en"] == expert.scenario.title
        ctx = s["context"]
        assert ctx["registration"] == attempt["context"]["registration"]
        assert uuid.UUID(ctx["registration"]).version == 5
        assert ctx["contextActivities"]["parent"][0]["id"] == \
            "https://spinesim.invalid/xapi/courses/regional-anaesthesia-2025"
        ext = ctx["extensions"]
        assert ext[EXTENSIONS["procedure"]] == expert.scenario.procedure
        assert ext[EXTENSIONS["guidance"]] == "fluoroscopy"
        assert ext[EXTENSIONS["patient_seed"]] == expert.scenario.patient.seed
        assert ext[EXTENSIONS["scoring_version"]] == card.version
        assert s["verb"]["id"].startswith(("http://adlnet.gov/expapi/verbs/", "https://spinesim.invalid/xapi/verbs/"))
        assert "version" not in s  # the spec: providers SHOULD NOT set it

    # each event statement: its time, a pointer to the attempt's statement
    for s, e in zip(events, key):
        assert s["timestamp"] == xapi.iso_timestamp(START + timedelta(seconds=e.t_s))
        assert s["context"]["statement"] == {"objectType": "StatementRef", "id": attempt["id"]}
    contrast = next(s for s in events if _verb(s) == "injected-contrast")
    assert contrast["result"]["extensions"][EXTENSIONS["contrast_pattern"]] == "epidural"
    entry = next(s for s in events if _verb(s) == "inserted-needle")
    assert entry["result"]["extensions"][EXTENSIONS["event"]]["entry_mm"]
    reported = [s for s in events if _verb(s) == "answered"]
    assert reported
    for s in reported:  # the trainee's reading of the contrast pattern (ADL "answered")
        assert s["result"]["response"] == "epidural" and s["result"]["success"] is True


def test_statements_are_deterministic(expert):
    """The same attempt gives the same statements (so re-exporting is idempotent), from events or
    their dicts; another attempt id gives other ids and another registration."""
    first = _build(expert)
    assert _build(expert) == first
    assert _build(expert, events=[e.as_dict() for e in expert.events]) == first
    assert first[0]["id"] == str(uuid.uuid5(xapi.UUID_NAMESPACE, "attempt/attempt-0001/attempt"))
    # an event's id is its kind and its number among them: events of other kinds do not move it
    fewer = _build(expert, events=[e for e in expert.events if e.kind != "needle_advanced"])
    assert [s["id"] for s in fewer] == [s["id"] for s in first]
    other = _build(expert, attempt_id="attempt-0002")
    assert not {s["id"] for s in other} & {s["id"] for s in first}
    assert other[0]["context"]["registration"] != first[0]["context"]["registration"]
    # a start in another time zone at the same instant: the same timestamps
    again = statements_for_attempt("attempt-0001", TRAINEE, expert.header, expert.events,
                                   expert.scorecard.as_dict(), START.astimezone(timezone.utc),
                                   course_id="regional-anaesthesia-2025")
    assert again == first


def test_a_failed_attempt_with_a_dural_puncture_and_a_hard_fail(expert):
    events = list(expert.events)
    finish = events.pop()
    events += [Event("dural_puncture", finish.t_s, {"depth_mm": 52.1, "tip_mm": [0.0, -20.0, 50.0]}),
               Event("csf_in_hub", finish.t_s, {}),
               Event("attempt_finished", finish.t_s + 1.0, {"outcome": "intrathecal", "tissue": "csf",
                                                            "interspace": "L4-L5"})]
    card = expert.scorecard.as_dict() | {"passed": False, "score": 35.0, "hard_fails": [
        "An epidural drug was injected before contrast confirmed the needle's position."]}
    statements = _build(expert, events=events, scorecard=card, course_id=None)
    assert all(validate_statement(s) == [] for s in statements)
    attempt = statements[0]
    assert _verb(attempt) == "failed"
    assert attempt["result"]["success"] is False and attempt["result"]["score"]["scaled"] == pytest.approx(0.35)
    assert attempt["result"]["extensions"][EXTENSIONS["hard_fails"]] == card["hard_fails"]
    assert "contextActivities" not in attempt["context"]  # no course: no parent
    verbs = [_verb(s) for s in statements]
    assert {"punctured-dura", "saw-csf"} <= set(verbs)
    rule = statements[-1]
    assert _verb(rule) == "broke-safety-rule" and rule["result"]["success"] is False
    assert rule["result"]["extensions"][EXTENSIONS["hard_fail"]] == card["hard_fails"][0]


def test_unscored_and_unfinished_attempts(expert):
    done = _build(expert, scorecard=None)
    assert _verb(done[0]) == "completed" and done[0]["result"] == {"completion": True,
                                                                   "duration": done[0]["result"]["duration"]}
    cut = [e for e in expert.events if e.kind != "attempt_finished"][:40]
    unfinished = _build(expert, events=cut, scorecard=None)
    assert _verb(unfinished[0]) == "attempted" and unfinished[0]["result"]["completion"] is False
    assert unfinished[0]["result"]["duration"] == xapi.iso_duration(cut[-1].t_s)
    assert EXTENSIONS["scoring_version"] not in unfinished[0]["context"]["extensions"]
    assert all(validate_statement(s) == [] for s in done + unfinished)


def test_bad_inputs_are_refused(expert):
    with pytest.raises(SpineSimError, match="time zone"):
        statements_for_attempt("a1", TRAINEE, expert.header, expert.events, None, datetime(2025, 3, 1, 9, 30))
    with pytest.raises(SpineSimError, match="account_name"):
        statements_for_attempt("a1", {"name": "x", "account_name": " "}, expert.header, expert.events, None, START)
    with pytest.raises(SpineSimError, match="attempt id"):
        statements_for_attempt("", TRAINEE, expert.header, expert.events, None, START)


def test_durations_and_timestamps():
    assert xapi.iso_duration(102.0) == "PT102S"
    assert xapi.iso_duration(7.254) == "PT7.25S"
    assert xapi.iso_duration(0) == "PT0S"
    assert xapi.iso_timestamp(datetime(2025, 3, 1, 10, 0, 0, 123456, tzinfo=timezone(timedelta(hours=1)))) == \
        "2025-03-01T09:00:00.123Z"
    for good in ("PT4H35M59.14S", "P3Y1M29DT4H35M59.14S", "P3Y", "P4W", "PT1234S", "PT0S"):
        assert xapi.is_duration(good), good
    for bad in ("", "P", "PT", "4S", "P1DT", "PT-3S", "P4W1D", "1:30", "PT1.5", 12):
        assert not xapi.is_duration(bad), bad


# ------------------------------------------------------------------------------ the validator
def _valid(expert):
    return copy.deepcopy(_build(expert)[0])


def _set(path: str, value):
    def change(s):
        *parents, last = path.split(".")
        obj = s
        for key in parents:
            obj = obj[key]
        if value is _DELETE:
            del obj[last]
        else:
            obj[last] = value
    return change


_DELETE = object()

#: (what is wrong, the change, a piece of the expected problem)
MISTAKES = [
    ("missing actor", _set("actor", _DELETE), "actor: missing"),
    ("missing verb", _set("verb", _DELETE), "verb: missing"),
    ("missing object", _set("object", _DELETE), "object: missing"),
    ("two IFIs", _set("actor.mbox", "mailto:t17@example.com"), "exactly one inverse functional identifier"),
    ("no IFI", _set("actor.account", _DELETE), "exactly one inverse functional identifier"),
    ("actor objectType", _set("actor.objectType", "Person"), "actor.objectType"),
    ("account without homePage", _set("actor.account.homePage", _DELETE), "actor.account.homePage"),
    ("bad mbox", lambda s: s.update(actor={"objectType": "Agent", "mbox": "t17@example.com"}), "actor.mbox"),
    ("verb id not an IRI", _set("verb.id", "passed"), "verb.id"),
    ("verb id with a space", _set("verb.id", "http://adlnet.gov/expapi/verbs/pass ed"), "verb.id"),
    ("verb display not a language map", _set("verb.display", "passed"), "verb.display"),
    ("verb display bad language tag", _set("verb.display", {"english!": "passed"}), "language tag"),
    ("object id not an IRI", _set("object.id", "scenarios/lumbar"), "object.id"),
    ("relative http IRI", _set("object.id", "http:///no-host"), "object.id"),
    ("scaled score above 1", _set("result.score.scaled", 1.2), "scaled"),
    ("scaled score a string", _set("result.score.scaled", "0.9"), "scaled: must be a number"),
    ("raw score above max", _set("result.score.raw", 120.0), "above max"),
    ("min not below max", _set("result.score.min", 100.0), "must be less than max"),
    ("success not a boolean", _set("result.success", "true"), "result.success"),
    ("bad duration", _set("result.duration", "102 s"), "result.duration"),
    ("alternative duration format", _set("result.duration", "PT00:01:42"), "result.duration"),
    ("bad timestamp", _set("timestamp", "2025-03-01 09:30"), "timestamp"),
    ("timestamp without zone", _set("timestamp", "2025-03-01T09:30:00.000"), "time zone"),
    ("impossible date", _set("timestamp", "2025-13-01T09:30:00Z"), "timestamp"),
    ("id not a UUID", _set("id", "attempt-0001"), "id: must be a UUID"),
    ("registration not a UUID", _set("context.registration", "attempt-0001"), "context.registration"),
    ("extension key not an IRI", lambda s: s["context"]["extensions"].update({"procedure": "x"}), "not an IRI"),
    ("result extension key not an IRI", lambda s: s["result"]["extensions"].update({"parts": 1}), "not an IRI"),
    ("bad contextActivities key", _set("context.contextActivities.course", [{"id": "https://x.invalid/c"}]),
     "contextActivities"),
    ("context statement not a ref", _set("context.statement", {"objectType": "StatementRef", "id": "x"}),
     "context.statement.id"),
    ("null outside extensions", _set("context.platform", None), "null is not allowed"),
    ("unknown property", _set("score", 100), "score: not a property"),
    ("empty object", _set("result.score", {}), "empty object"),
    ("version 2", _set("version", "2.0.0"), "version"),
]


@pytest.mark.parametrize("what, change, expected", MISTAKES, ids=[m[0] for m in MISTAKES])
def test_the_validator_catches_each_class_of_error(expert, what, change, expected):
    statement = _valid(expert)
    assert validate_statement(statement) == []
    change(statement)
    problems = validate_statement(statement)
    assert problems, f"{what}: not caught"
    assert any(expected in p for p in problems), problems


def test_the_validator_accepts_the_specs_own_examples():
    """Statements from xAPI-Data.md (Appendix A and the Group and SubStatement sections) are valid:
    the validator is not just tuned to SpineSim's statements."""
    simple = {"id": "fd41c918-b88b-4b20-a0a5-a4c32391aaa0", "timestamp": "2015-11-18T12:17:00+00:00",
              "actor": {"objectType": "Agent", "name": "Project Tin Can API", "mbox": "mailto:user@example.com"},
              "verb": {"id": "http://example.com/xapi/verbs#sent-a-statement", "display": {"en-US": "sent"}},
              "object": {"id": "http://example.com/xapi/activity/simplestatement",
                         "definition": {"name": {"en-US": "simple statement"}}}}
    attempted = {"id": "7ccd3322-e1a5-411a-a67d-6a735c76f119", "timestamp": "2015-12-18T12:17:00+00:00",
                 "actor": {"objectType": "Agent", "name": "Example Learner",
                           "mbox": "mailto:example.learner@adlnet.gov"},
                 "verb": {"id": "http://adlnet.gov/expapi/verbs/attempted", "display": {"en-US": "attempted"}},
                 "object": {"id": "http://example.adlnet.gov/xapi/example/simpleCBT"},
                 "result": {"score": {"scaled": 0.95}, "success": True, "completion": True, "duration": "PT1234S"}}
    team = {"actor": {"objectType": "Group", "name": "Team PB", "mbox": "mailto:teampb@example.com",
                      "member": [{"name": "Andrew Downes", "account": {"homePage": "http://www.example.com",
                                                                       "name": "13936749"}, "objectType": "Agent"},
                                 {"name": "Ena Hills", "mbox_sha1sum": "ebd31e95054c018b10727ccffd2ef2ec3a016ee9"}]},
            "verb": {"id": "http://adlnet.gov/expapi/verbs/attended", "display": {"en-GB": "attended"}},
            "object": {"objectType": "SubStatement",
                       "actor": {"objectType": "Agent", "mbox": "mailto:test@example.com"},
                       "verb": {"id": "http://example.com/visited", "display": {"en-US": "will visit"}},
                       "object": {"objectType": "Activity", "id": "http://example.com/website"}},
            "context": {"registration": "ec531277-b57b-4c15-8d91-d292c5b2b8f7",
                        "contextActivities": {"parent": {"id": "http://www.example.com/meetings/series/267"}}}}
    for s in (simple, attempted, team):
        assert validate_statement(s) == []
    assert validate_statement("not a statement") == ["statement: must be a JSON object"]


# ------------------------------------------------------------------------------ the file
def test_write_statements_writes_a_json_array(expert, tmp_path):
    statements = _build(expert)
    path = write_statements(tmp_path / "out" / "attempt.xapi.json", statements)
    assert json.loads(path.read_text(encoding="utf-8")) == statements
    write_statements(path, statements)  # again: the same file
    assert json.loads(path.read_text(encoding="utf-8")) == statements
    with pytest.raises(SpineSimError, match="cannot write"):
        write_statements(path / "inside-a-file.json", statements)


# ------------------------------------------------------------------------------ the LRS
class _LRS:
    """A throwaway LRS: records each request; answers ``status`` (200 with the ids by default)."""

    def __init__(self, status=200, delay_s=0.0):
        self.requests: list[dict] = []
        self.status = status
        lrs = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                lrs.requests.append({"path": self.path, "headers": dict(self.headers), "body": body})
                time.sleep(delay_s)
                if lrs.status == 200:
                    answer = json.dumps([s["id"] for s in json.loads(body)]).encode()
                else:
                    answer = b'{"error": "Statement 3: verb.display: invalid\\nlanguage map"}'
                self.send_response(lrs.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("X-Experience-API-Version", "1.0.3")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                try:
                    self.wfile.write(answer)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up waiting (the timeout test)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/xapi/"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()


def test_post_sends_the_statements_with_the_version_and_auth_headers(expert):
    statements = _build(expert)
    with _LRS() as lrs:
        ids = post_statements(lrs.url, statements, auth=("spinesim", "s3cret:x"))
        post_statements(lrs.url.rstrip("/"), statements[:1])  # no auth; the URL without a slash
    assert ids == [s["id"] for s in statements]
    first, second = lrs.requests
    assert first["path"] == "/xapi/statements" and second["path"] == "/xapi/statements"
    headers = {k.lower(): v for k, v in first["headers"].items()}
    assert headers["x-experience-api-version"] == "1.0.3"
    assert headers["content-type"] == "application/json"
    assert headers["authorization"] == "Basic " + base64.b64encode(b"spinesim:s3cret:x").decode()
    assert json.loads(first["body"].decode("utf-8")) == statements
    # without credentials: the spec's explicit "no authentication" (an empty user and password)
    assert {k.lower(): v for k, v in second["headers"].items()}["authorization"] == "Basic Og=="


def test_post_errors_name_the_url_on_one_line(expert):
    statements = _build(expert)
    with _LRS(status=400) as lrs:
        with pytest.raises(SpineSimError) as refused:
            post_statements(lrs.url, statements, auth=("u", "p"))
    message = str(refused.value)
    assert lrs.url + "statements" in message and "HTTP 400" in message and "verb.display" in message
    assert "\n" not in message

    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    with pytest.raises(SpineSimError) as unreachable:
        post_statements(url, statements, timeout_s=2)
    assert f"{url}/statements: cannot reach the LRS" in str(unreachable.value)

    with _LRS(delay_s=1.0) as slow:
        with pytest.raises(SpineSimError, match="did not answer within 0.2 s"):
            post_statements(slow.url, statements, timeout_s=0.2)

    with pytest.raises(SpineSimError, match="http:// or https://"):
        post_statements("ftp://lrs.invalid", statements)


def test_post_refuses_invalid_statements_before_sending(expert):
    statements = _build(expert)
    statements[2] = copy.deepcopy(statements[2])
    statements[2]["result"]["score"] = {"scaled": 2.0}
    with _LRS() as lrs:
        with pytest.raises(SpineSimError, match=r"statement 2 is not valid xAPI .*scaled.*nothing was sent"):
            post_statements(lrs.url, statements)
        assert post_statements(lrs.url, []) == []
    assert lrs.requests == []
