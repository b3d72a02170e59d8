"""xAPI (Experience API 1.0.3) statements for SpineSim attempts, for a learning record store (LRS).

One statement says how the attempt went (``passed`` or ``failed`` with its score, or ``completed``
when it was not scored, ``attempted`` when it was not finished) and one statement says each key
event of it (the needle's entry, loss of resistance, a dural puncture, contrast and the pattern it
made, a drug, an image, a broken safety rule, ...). Every statement is about the scenario's
activity (``https://spinesim.invalid/xapi/scenarios/<id>``) and shares the attempt's registration,
its course (as the parent context activity) and context extensions for the procedure, guidance
mode, patient seed and scoring version; the event statements point at the attempt's statement.

The actor is an Agent identified by an account only (``{homePage, name}``): trainees are
pseudonymous, so there is no e-mail address. Statement ids and the registration are UUIDs derived
(uuid5) from the attempt id, so exporting an attempt again gives the same statements and an LRS
stores them once. Timestamps are UTC with milliseconds; the attempt's timestamp is its end and its
duration the simulated time it took; an event's timestamp is the attempt's start plus the event's
simulated time.

The inputs are plain data (the attempt header, the events, the scorecard's dict, the start time),
so this module does not depend on how attempts are stored.

References: xAPI 1.0.3, Part Two (Data) and Part Three (Communication), github.com/adlnet/xAPI-Spec.
"""

from __future__ import annotations

import base64
import copy
import json
import math
import numbers
import os
import re
import socket
import tomllib
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from simulator.errors import SpineSimError

#: The xAPI version the statements follow and the ``X-Experience-API-Version`` header sent.
XAPI_VERSION = "1.0.3"
#: Where SpineSim's own IRIs live (``.invalid``: a reserved domain, never resolvable).
SPINESIM_XAPI = "https://spinesim.invalid/xapi"
#: The account system trainees are identified on, unless the trainee says otherwise.
DEFAULT_HOME_PAGE = "https://spinesim.invalid"
#: The namespace of every uuid5 derived here (statement ids, registrations).
UUID_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, SPINESIM_XAPI)
#: The language of the display strings (the shortest tag that is right: English, region unknown).
LANGUAGE = "en"

_ADL_VERBS = "http://adlnet.gov/expapi/verbs/"
_SPINESIM_VERBS = f"{SPINESIM_XAPI}/verbs/"
_EXT = f"{SPINESIM_XAPI}/extensions/"

#: Verb IRIs and their English display: ADL's vocabulary where a verb fits, SpineSim's otherwise.
VERBS = {
    "passed": (_ADL_VERBS + "passed", "passed"),
    "failed": (_ADL_VERBS + "failed", "failed"),
    "completed": (_ADL_VERBS + "completed", "completed"),
    "attempted": (_ADL_VERBS + "attempted", "attempted"),
    "answered": (_ADL_VERBS + "answered", "answered"),
    "inserted-needle": (_SPINESIM_VERBS + "inserted-needle", "inserted the needle in"),
    "felt-loss-of-resistance": (_SPINESIM_VERBS + "felt-loss-of-resistance", "felt a loss of resistance in"),
    "contacted-bone": (_SPINESIM_VERBS + "contacted-bone", "contacted bone in"),
    "elicited-paraesthesia": (_SPINESIM_VERBS + "elicited-paraesthesia", "elicited a paraesthesia in"),
    "punctured-dura": (_SPINESIM_VERBS + "punctured-dura", "punctured the dura in"),
    "saw-csf": (_SPINESIM_VERBS + "saw-csf", "saw CSF in the hub in"),
    "saw-blood": (_SPINESIM_VERBS + "saw-blood", "saw blood in the hub in"),
    "aspirated": (_SPINESIM_VERBS + "aspirated", "aspirated in"),
    "injected-contrast": (_SPINESIM_VERBS + "injected-contrast", "injected contrast in"),
    "injected-drug": (_SPINESIM_VERBS + "injected-drug", "injected a drug in"),
    "acquired-image": (_SPINESIM_VERBS + "acquired-image", "acquired an image in"),
    "broke-safety-rule": (_SPINESIM_VERBS + "broke-safety-rule", "broke a safety rule in"),
}

#: The key events that get a statement, and their verbs (other events are in the attempt record).
KEY_EVENTS = {
    "entry_set": "inserted-needle",
    "loss_of_resistance": "felt-loss-of-resistance",
    "bone_contacted": "contacted-bone",
    "paraesthesia": "elicited-paraesthesia",
    "dural_puncture": "punctured-dura",
    "csf_in_hub": "saw-csf",
    "blood_in_hub": "saw-blood",
    "aspirated": "aspirated",
    "contrast_injected": "injected-contrast",
    "pattern_reported": "answered",
    "drug_injected": "injected-drug",
    "image_acquired": "acquired-image",
}

#: Extension IRIs (context extensions, then result extensions).
EXTENSIONS = {
    "attempt_id": _EXT + "attempt-id",
    "procedure": _EXT + "procedure",
    "guidance": _EXT + "guidance",
    "patient_seed": _EXT + "patient-seed",
    "scoring_version": _EXT + "scoring-version",
    "scenario_sha256": _EXT + "scenario-sha256",
    "event": _EXT + "event",
    "contrast_pattern": _EXT + "contrast-pattern",
    "hard_fail": _EXT + "hard-fail",
    "hard_fails": _EXT + "hard-fails",
    "score_parts": _EXT + "score-parts",
    "placement": _EXT + "placement",
    "feedback": _EXT + "feedback",
    "metrics": _EXT + "metrics",
}

_ACTIVITY_SIMULATION = "http://adlnet.gov/expapi/activities/simulation"
_ACTIVITY_COURSE = "http://adlnet.gov/expapi/activities/course"
#: The most a SpineSim score can be (the scorecard's parts add up to 100).
MAX_SCORE = 100.0


@dataclass(frozen=True)
class Trainee:
    """Who did the attempt: a display name and an account on ``home_page``.

    Attributes
    ----------
    name : str
        Shown by LRS reports ("" to leave the statements without a name).
    account_name : str
        The pseudonymous account id the trainee is known by.
    home_page : str
        The canonical home page of the system the account is on (an IRL).
    """

    name: str
    account_name: str
    home_page: str = DEFAULT_HOME_PAGE

    def agent(self) -> dict:
        """The xAPI Agent: ``objectType``, ``name`` and the account, its only identifier."""
        out: dict[str, Any] = {"objectType": "Agent"}
        if self.name:
            out["name"] = self.name
        out["account"] = {"homePage": self.home_page, "name": self.account_name}
        return out


# ------------------------------------------------------------------------------ building
def statement_uuid(attempt_id: str, part: str) -> str:
    """The uuid5 of one statement (``part``: ``attempt``, ``event/<kind>/<n>``, ``hard-fail/<n>``)."""
    return str(uuid.uuid5(UUID_NAMESPACE, f"attempt/{attempt_id}/{part}"))


def registration_uuid(attempt_id: str) -> str:
    """The registration shared by an attempt's statements (uuid5 of the attempt id)."""
    return str(uuid.uuid5(UUID_NAMESPACE, f"attempt/{attempt_id}/registration"))


def scenario_iri(scenario_id: str) -> str:
    return f"{SPINESIM_XAPI}/scenarios/{urllib.parse.quote(scenario_id, safe='')}"


def course_iri(course_id: str) -> str:
    """A course id that is already an http(s) IRI is kept; any other is put under SpineSim's."""
    if course_id.lower().startswith(("http://", "https://")) and _is_iri(course_id):
        return course_id
    return f"{SPINESIM_XAPI}/courses/{urllib.parse.quote(course_id, safe='')}"


def iso_timestamp(moment: datetime) -> str:
    """ISO 8601 (RFC 3339) in UTC with milliseconds: ``2025-03-01T09:30:00.000Z``."""
    return moment.astimezone(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def iso_duration(seconds: float) -> str:
    """ISO 8601 duration in seconds to 0.01 s: ``PT102S``, ``PT7.25S``."""
    text = f"{max(0.0, round(float(seconds), 2)):.2f}".rstrip("0").rstrip(".")
    return f"PT{text}S"


def statements_for_attempt(attempt_id: str, trainee: Trainee | Mapping, header: Mapping,
                           events: Iterable, scorecard: Mapping | None, started_at: datetime,
                           *, course_id: str | None = None) -> list[dict]:
    """The xAPI statements of one attempt: the attempt's first, then one per key event in order,
    then one per broken safety rule (hard fail).

    Parameters
    ----------
    attempt_id : str
        The attempt's own id (the statement ids and registration derive from it).
    trainee : Trainee or mapping
        A :class:`Trainee`, or a mapping with ``name``, ``account_name`` and optionally
        ``home_page``.
    header : mapping
        The attempt header (:func:`simulator.records.attempt_file.make_header`).
    events : iterable
        The attempt's events: :class:`simulator.protocol.events.Event` or their ``as_dict()`` form.
    scorecard : mapping or None
        ``Scorecard.as_dict()``; None for an attempt that was not scored.
    started_at : datetime
        When the attempt started; must carry a time zone.
    course_id : str, optional
        The course the attempt belongs to (its activity is the statements' parent).
    """
    if not isinstance(attempt_id, str) or not attempt_id.strip():
        raise SpineSimError("attempt id: must be a non-empty string")
    if not isinstance(started_at, datetime) or started_at.utcoffset() is None:
        raise SpineSimError("start time: must be a datetime with a time zone")
    who = _trainee(trainee)
    scenario = header.get("scenario") or {}
    scenario_id = scenario.get("id")
    if not isinstance(scenario_id, str) or not scenario_id:
        raise SpineSimError("attempt header: scenario.id: missing")
    evs = [_event(e) for e in events]
    toml = _scenario_toml(scenario.get("text"))
    started = next((e for e in evs if e["kind"] == "attempt_started"), None)
    guidance = toml.get("guidance") or (started or {}).get("guidance")
    patient = header.get("patient") or {}
    finished = next((e for e in evs if e["kind"] == "attempt_finished"), None)
    end_s = finished["t_s"] if finished else max((e["t_s"] for e in evs), default=0.0)

    activity = {"objectType": "Activity", "id": scenario_iri(scenario_id),
                "definition": _definition(toml.get("title") or scenario_id, toml.get("brief"))}
    context_ext = {EXTENSIONS["attempt_id"]: attempt_id}
    for key, value in (("procedure", toml.get("procedure")), ("guidance", guidance),
                       ("patient_seed", patient.get("seed")),
                       ("scoring_version", (scorecard or {}).get("scoring_version")),
                       ("scenario_sha256", scenario.get("sha256"))):
        if value is not None:
            context_ext[EXTENSIONS[key]] = _plain(value)
    context: dict[str, Any] = {"registration": registration_uuid(attempt_id)}
    if course_id:
        context["contextActivities"] = {"parent": [{"objectType": "Activity", "id": course_iri(course_id),
                                                    "definition": {"type": _ACTIVITY_COURSE}}]}
    context["platform"] = f"SpineSim {header.get('app_version') or ''}".strip()
    context["extensions"] = context_ext

    def statement(part: str, verb: str, t_s: float, result: dict | None, refer: bool = True) -> dict:
        iri, display = VERBS[verb]
        ctx = copy.deepcopy(context)  # each statement its own copy
        if refer:
            ctx["statement"] = {"objectType": "StatementRef", "id": attempt_statement_id}
        out = {"id": statement_uuid(attempt_id, part), "actor": who.agent(),
               "verb": {"id": iri, "display": {LANGUAGE: display}}, "object": copy.deepcopy(activity)}
        if result:
            out["result"] = result
        out["context"] = ctx
        out["timestamp"] = iso_timestamp(started_at + timedelta(seconds=float(t_s)))
        return out

    attempt_statement_id = statement_uuid(attempt_id, "attempt")
    out = [statement("attempt", *_attempt_verb_and_result(scorecard, finished is not None, end_s), refer=False)]
    seen: dict[str, int] = {}
    for e in evs:
        verb = KEY_EVENTS.get(e["kind"])
        if verb is not None:
            # numbered within its kind, so events of other kinds (new ones too) leave the id alone
            n = seen[e["kind"]] = seen.get(e["kind"], -1) + 1
            out.append(statement(f"event/{e['kind']}/{n}", verb, e["t_s"], _event_result(e)))
    for index, rule in enumerate((scorecard or {}).get("hard_fails") or []):
        out.append(statement(f"hard-fail/{index}", "broke-safety-rule", end_s,
                             {"success": False, "extensions": {EXTENSIONS["hard_fail"]: _plain(rule)}}))
    return out


def _attempt_verb_and_result(scorecard: Mapping | None, finished: bool, end_s: float) -> tuple[str, float, dict]:
    result: dict[str, Any] = {}
    if scorecard is not None:
        verb = "passed" if scorecard.get("passed") else "failed"
        raw = min(MAX_SCORE, max(0.0, float(scorecard.get("score", 0.0))))
        result["score"] = {"scaled": round(raw / MAX_SCORE, 4), "raw": round(raw, 1), "min": 0.0, "max": MAX_SCORE}
        result["success"] = bool(scorecard.get("passed"))
        result["completion"] = True
    else:
        verb = "completed" if finished else "attempted"
        result["completion"] = finished
    result["duration"] = iso_duration(end_s)
    if scorecard is not None:
        result["extensions"] = {EXTENSIONS[key]: _plain(scorecard[name]) for key, name in
                                (("score_parts", "parts"), ("hard_fails", "hard_fails"), ("placement", "placement"),
                                 ("feedback", "feedback"), ("metrics", "metrics")) if name in scorecard}
    return verb, end_s, result


def _event_result(e: dict) -> dict:
    ext: dict[str, Any] = {EXTENSIONS["event"]: _plain(e)}
    result: dict[str, Any] = {}
    if e["kind"] == "contrast_injected":
        ext[EXTENSIONS["contrast_pattern"]] = _plain(e.get("vascular") or e.get("compartment"))
    elif e["kind"] == "pattern_reported":
        if isinstance(e.get("pattern"), str):
            result["response"] = e["pattern"]
        if isinstance(e.get("correct"), bool):
            result["success"] = e["correct"]
    result["extensions"] = ext
    return result


def _trainee(trainee) -> Trainee:
    if isinstance(trainee, Mapping):
        trainee = Trainee(name=str(trainee.get("name") or ""), account_name=trainee.get("account_name"),
                          home_page=trainee.get("home_page") or DEFAULT_HOME_PAGE)
    if not isinstance(trainee, Trainee):
        raise SpineSimError("trainee: must be a Trainee or a mapping with name and account_name")
    if not isinstance(trainee.account_name, str) or not trainee.account_name.strip():
        raise SpineSimError("trainee: account_name: must be a non-empty string")
    if not _is_iri(trainee.home_page) or not trainee.home_page.lower().startswith(("http://", "https://")):
        raise SpineSimError(f"trainee: home_page: '{trainee.home_page}' is not an http(s) address")
    return trainee


def _event(e) -> dict:
    """An event as a flat dict ``{kind, t_s, **data}``."""
    if isinstance(e, Mapping):
        out = dict(e)
    elif hasattr(e, "kind") and hasattr(e, "t_s"):
        out = {"kind": e.kind, "t_s": e.t_s, **dict(getattr(e, "data", {}) or {})}
    else:
        raise SpineSimError(f"events: {e!r} is not an event")
    if not isinstance(out.get("kind"), str):
        raise SpineSimError(f"events: {e!r} has no kind")
    t_s = out.get("t_s")
    if isinstance(t_s, bool) or not isinstance(t_s, numbers.Real) or not math.isfinite(t_s) or t_s < 0:
        raise SpineSimError(f"events: {out['kind']}: t_s must be a non-negative number")
    out["t_s"] = round(float(t_s), 3)
    return out


def _scenario_toml(text) -> dict:
    """The scenario's top-level fields (title, procedure, guidance, brief), or {} if unreadable."""
    if not isinstance(text, str):
        return {}
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError:
        return {}
    return {k: data[k] for k in ("title", "procedure", "guidance", "brief") if isinstance(data.get(k), str)}


def _definition(title: str, brief: str | None) -> dict:
    out: dict[str, Any] = {"name": {LANGUAGE: title}}
    if brief and brief.strip():
        out["description"] = {LANGUAGE: " ".join(brief.split())}
    out["type"] = _ACTIVITY_SIMULATION
    return out


def _plain(value):
    """JSON-ready: numpy scalars to numbers, non-finite floats to None, tuples to lists."""
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        f = float(value)
        return f if math.isfinite(f) else None
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if hasattr(value, "tolist"):  # numpy arrays and scalars
        value = value.tolist()
        return [_plain(v) for v in value] if isinstance(value, list) else _plain(value)
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return str(value)


# ------------------------------------------------------------------------------ files and the LRS
def write_statements(path, statements: Sequence[Mapping]) -> Path:
    """Write the statements as one JSON array (UTF-8); returns the path."""
    p = Path(path)
    try:
        p.parent.mkdir(parents=True, exist_ok=True)
        tmp = p.with_name(p.name + ".tmp")
        tmp.write_text(json.dumps(list(statements), indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        os.replace(tmp, p)
    except OSError as err:
        raise SpineSimError(f"{path}: cannot write ({err.strerror or err.__class__.__name__})") from None
    return p


def post_statements(lrs_url: str, statements: Sequence[Mapping], auth: tuple[str, str] | None = None,
                    timeout_s: float = 10) -> list[str]:
    """POST the statements as one batch to ``<lrs_url>/statements``; returns the ids the LRS stored.

    Every statement is validated first (an LRS rejects the whole batch for one bad statement).
    ``auth``: (user, password) for HTTP Basic authentication; None sends the explicit "no
    authentication" header of the spec (``Basic Og==``, an empty user and password). Raises
    :class:`SpineSimError` naming the URL when the LRS refuses, cannot be reached or does not answer.
    """
    url = lrs_url.rstrip("/") + "/statements"
    scheme = urllib.parse.urlsplit(url).scheme.lower()
    if scheme not in ("http", "https") or not urllib.parse.urlsplit(url).netloc:
        raise SpineSimError(f"{lrs_url}: the LRS address must start with http:// or https://")
    statements = list(statements)
    if not statements:
        return []
    for index, s in enumerate(statements):
        problems = validate_statement(s)
        if problems:
            raise SpineSimError(f"{url}: statement {index} is not valid xAPI ({problems[0]}); nothing was sent")
    user, password = auth if auth is not None else ("", "")
    token = base64.b64encode(f"{user}:{password}".encode("utf-8")).decode("ascii")
    body = json.dumps(statements, ensure_ascii=False).encode("utf-8")
    request = urllib.request.Request(url, data=body, method="POST", headers={
        "X-Experience-API-Version": XAPI_VERSION,
        "Content-Type": "application/json",
        "Authorization": f"Basic {token}",
    })
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            answer = response.read()
    except urllib.error.HTTPError as err:
        detail = _error_detail(err)
        raise SpineSimError(f"{url}: the LRS refused the statements (HTTP {err.code} {err.reason}"
                            f"{': ' + detail if detail else ''})") from None
    except urllib.error.URLError as err:
        reason = err.reason
        if isinstance(reason, (TimeoutError, socket.timeout)):
            raise SpineSimError(f"{url}: the LRS did not answer within {timeout_s:g} s") from None
        raise SpineSimError(f"{url}: cannot reach the LRS ({reason})") from None
    except (TimeoutError, socket.timeout):
        raise SpineSimError(f"{url}: the LRS did not answer within {timeout_s:g} s") from None
    except OSError as err:
        raise SpineSimError(f"{url}: cannot reach the LRS ({err})") from None
    try:
        ids = json.loads(answer.decode("utf-8")) if answer else None
    except (UnicodeDecodeError, json.JSONDecodeError):
        ids = None
    if isinstance(ids, list) and all(isinstance(i, str) for i in ids):
        return ids
    return [str(s.get("id")) for s in statements]


def _error_detail(err: urllib.error.HTTPError) -> str:
    """The start of the LRS's error body, on one line."""
    try:
        text = err.read(400).decode("utf-8", "replace")
    except Exception:  # noqa: BLE001 - the detail is a courtesy; the status says enough
        return ""
    text = " ".join(text.split())
    return text[:200] + ("..." if len(text) > 200 else "")


# ------------------------------------------------------------------------------ validation
_UUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
_SCHEME_IRI = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*:[^\s<>\"{}|\\^`\x00-\x1f\x7f]+$")
_N = r"\d+(?:[.,]\d+)?"
_DURATION = re.compile(rf"^P(?:{_N}W|(?=\d|T\d)(?:{_N}Y)?(?:{_N}M)?(?:{_N}D)?"
                       rf"(?:T(?=\d)(?:{_N}H)?(?:{_N}M)?(?:{_N}S)?)?)$")
_TIMESTAMP = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(?::\d{2}(?:[.,]\d+)?)?(?P<tz>Z|[+-]\d{2}(?::?\d{2})?)?$")
_LANGUAGE_TAG = re.compile(
    r"^(?:(?:[A-Za-z]{2,3}(?:-[A-Za-z]{3}){0,3}|[A-Za-z]{4,8})(?:-[A-Za-z]{4})?(?:-(?:[A-Za-z]{2}|\d{3}))?"
    r"(?:-(?:[A-Za-z0-9]{5,8}|\d[A-Za-z0-9]{3}))*(?:-[0-9A-WY-Za-wy-z](?:-[A-Za-z0-9]{2,8})+)*"
    r"(?:-[xX](?:-[A-Za-z0-9]{1,8})+)?|[xX](?:-[A-Za-z0-9]{1,8})+)$")
_SHA1 = re.compile(r"^[0-9a-fA-F]{40}$")
_IFIS = ("mbox", "mbox_sha1sum", "openid", "account")

_STATEMENT_KEYS = {"id", "actor", "verb", "object", "result", "context", "timestamp", "stored", "authority",
                   "version", "attachments"}
_SUBSTATEMENT_KEYS = {"objectType", "actor", "verb", "object", "result", "context", "timestamp", "attachments"}
_AGENT_KEYS = {"objectType", "name", *_IFIS}
_GROUP_KEYS = {"objectType", "name", "member", *_IFIS}
_ACTIVITY_KEYS = {"objectType", "id", "definition"}
_DEFINITION_KEYS = {"name", "description", "type", "moreInfo", "extensions", "interactionType",
                    "correctResponsesPattern", "choices", "scale", "source", "target", "steps"}
_RESULT_KEYS = {"score", "success", "completion", "response", "duration", "extensions"}
_SCORE_KEYS = {"scaled", "raw", "min", "max"}
_CONTEXT_KEYS = {"registration", "instructor", "team", "contextActivities", "revision", "platform", "language",
                 "statement", "extensions"}
_CONTEXT_ACTIVITY_KEYS = {"parent", "grouping", "category", "other"}
_ATTACHMENT_KEYS = {"usageType", "display", "description", "contentType", "length", "sha2", "fileUrl"}


def _is_iri(value) -> bool:
    """An absolute IRI (a scheme, no spaces or characters IRIs exclude; http(s) ones with a host)."""
    if not isinstance(value, str) or not _SCHEME_IRI.match(value):
        return False
    scheme = value.split(":", 1)[0].lower()
    if scheme in ("http", "https"):
        return bool(urllib.parse.urlsplit(value).netloc)
    return True


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def is_uuid(value) -> bool:
    return isinstance(value, str) and bool(_UUID.match(value))


def is_duration(value) -> bool:
    """An ISO 8601 duration in the format of ISO 8601:2004 4.4.3.2 (``PT1H2M3.5S``, ``P3Y``, ``P4W``)."""
    return isinstance(value, str) and bool(_DURATION.match(value))


def is_timestamp(value) -> bool:
    """An ISO 8601 date and time in extended format (the time zone checked separately)."""
    if not isinstance(value, str) or not _TIMESTAMP.match(value):
        return False
    try:
        datetime.fromisoformat(value.replace(",", ".").replace("Z", "+00:00"))
    except ValueError:
        return False
    return True


def validate_statement(statement) -> list[str]:
    """The ways ``statement`` breaks the xAPI 1.0.3 data rules (empty: it is valid).

    Checks the required properties and their types: actor (Agent or Group, exactly one inverse
    functional identifier, a well-formed account), verb (IRI id, language-map display), object
    (Activity with an IRI id, Agent, Group, StatementRef or SubStatement), result (score scaled in
    [-1, 1], raw within min..max, booleans, ISO 8601 duration), context (UUID registration,
    contextActivities, revision and platform only for an Activity, StatementRef), ISO 8601
    timestamps with a time zone, UUID ids, version 1.0.x, IRI extension keys, no null values outside
    extensions, no empty objects and no properties the spec does not define.
    """
    problems: list[str] = []
    if not isinstance(statement, Mapping):
        return ["statement: must be a JSON object"]
    _check_statement(statement, "", problems, sub=False)
    _check_nulls_and_empties(statement, "", problems)
    return problems


def _p(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _unknown(obj: Mapping, allowed: set, path: str, problems: list[str]) -> None:
    for key in obj:
        if key not in allowed:
            problems.append(f"{_p(path, str(key))}: not a property the spec defines here")


def _check_statement(s: Mapping, path: str, problems: list[str], sub: bool) -> None:
    _unknown(s, _SUBSTATEMENT_KEYS if sub else _STATEMENT_KEYS, path, problems)
    for key in ("actor", "verb", "object"):
        if key not in s:
            problems.append(f"{_p(path, key)}: missing (required)")
    if "id" in s and not is_uuid(s["id"]):
        problems.append(f"{_p(path, 'id')}: must be a UUID in standard string form")
    if "actor" in s:
        _check_actor(s["actor"], _p(path, "actor"), problems)
    if "verb" in s:
        _check_verb(s["verb"], _p(path, "verb"), problems)
    if "object" in s:
        _check_object(s["object"], _p(path, "object"), problems, sub)
    if "result" in s:
        _check_result(s["result"], _p(path, "result"), problems)
    if "context" in s:
        obj = s.get("object")
        is_activity = isinstance(obj, Mapping) and obj.get("objectType", "Activity") == "Activity"
        _check_context(s["context"], _p(path, "context"), problems, is_activity)
    for key in ("timestamp", "stored"):
        if key in s:
            _check_timestamp(s[key], _p(path, key), problems)
    if "authority" in s:
        _check_actor(s["authority"], _p(path, "authority"), problems)
    if "version" in s and not (isinstance(s["version"], str) and re.match(r"^1\.0\.\d+$", s["version"])):
        problems.append(f"{_p(path, 'version')}: must be a 1.0.x version (and SHOULD NOT be set)")
    if "attachments" in s:
        _check_attachments(s["attachments"], _p(path, "attachments"), problems)


def _check_actor(actor, path: str, problems: list[str], as_object: bool = False) -> None:
    if not isinstance(actor, Mapping):
        problems.append(f"{path}: must be an Agent or Group object")
        return
    kind = actor.get("objectType", None if as_object else "Agent")
    if kind not in ("Agent", "Group"):
        problems.append(f"{path}.objectType: must be 'Agent' or 'Group'" if kind is not None else
                        f"{path}.objectType: required when an Agent or Group is the object")
        kind = "Agent"
    _unknown(actor, _GROUP_KEYS if kind == "Group" else _AGENT_KEYS, path, problems)
    if "name" in actor and not isinstance(actor["name"], str):
        problems.append(f"{path}.name: must be a string")
    ifis = [k for k in _IFIS if k in actor]
    if kind == "Agent" and len(ifis) != 1:
        problems.append(f"{path}: an Agent needs exactly one inverse functional identifier "
                        f"(mbox, mbox_sha1sum, openid or account), found {len(ifis)}"
                        + (f" ({', '.join(ifis)})" if ifis else ""))
    if kind == "Group":
        if len(ifis) > 1:
            problems.append(f"{path}: an identified Group has exactly one inverse functional identifier, "
                            f"found {len(ifis)} ({', '.join(ifis)})")
        members = actor.get("member")
        if not ifis and not isinstance(members, list):
            problems.append(f"{path}.member: an anonymous Group must list its members")
        if members is not None:
            if not isinstance(members, list):
                problems.append(f"{path}.member: must be an array of Agents")
            else:
                for i, m in enumerate(members):
                    if isinstance(m, Mapping) and m.get("objectType") == "Group":
                        problems.append(f"{path}.member[{i}]: a Group cannot contain a Group")
                    else:
                        _check_actor(m, f"{path}.member[{i}]", problems)
    if "mbox" in actor and not (isinstance(actor["mbox"], str) and re.match(r"^mailto:[^@\s]+@[^@\s]+$", actor["mbox"])):
        problems.append(f"{path}.mbox: must be a mailto IRI ('mailto:name@domain')")
    if "mbox_sha1sum" in actor and not (isinstance(actor["mbox_sha1sum"], str) and _SHA1.match(actor["mbox_sha1sum"])):
        problems.append(f"{path}.mbox_sha1sum: must be a hex SHA-1")
    if "openid" in actor and not _is_iri(actor["openid"]):
        problems.append(f"{path}.openid: must be a URI")
    if "account" in actor:
        account = actor["account"]
        if not isinstance(account, Mapping):
            problems.append(f"{path}.account: must be an object with homePage and name")
        else:
            _unknown(account, {"homePage", "name"}, f"{path}.account", problems)
            if not _is_iri(account.get("homePage")):
                problems.append(f"{path}.account.homePage: must be an IRL")
            if not isinstance(account.get("name"), str) or not account.get("name"):
                problems.append(f"{path}.account.name: must be a non-empty string")


def _check_language_map(value, path: str, problems: list[str]) -> None:
    if not isinstance(value, Mapping):
        problems.append(f"{path}: must be a language map (an object of language tag: string)")
        return
    for tag, text in value.items():
        if not isinstance(tag, str) or not _LANGUAGE_TAG.match(tag):
            problems.append(f"{path}: '{tag}' is not an RFC 5646 language tag")
        if not isinstance(text, str):
            problems.append(f"{path}.{tag}: must be a string")


def _check_extensions(value, path: str, problems: list[str]) -> None:
    if not isinstance(value, Mapping):
        problems.append(f"{path}: must be an object")
        return
    for key in value:
        if not _is_iri(key):
            problems.append(f"{path}: key '{key}' is not an IRI")


def _check_verb(verb, path: str, problems: list[str]) -> None:
    if not isinstance(verb, Mapping):
        problems.append(f"{path}: must be an object with id and display")
        return
    _unknown(verb, {"id", "display"}, path, problems)
    if not _is_iri(verb.get("id")):
        problems.append(f"{path}.id: must be an IRI (got {verb.get('id')!r})")
    if "display" not in verb:
        problems.append(f"{path}.display: missing (a language map; every SpineSim statement has one)")
    else:
        _check_language_map(verb["display"], f"{path}.display", problems)


def _check_activity(activity, path: str, problems: list[str]) -> None:
    if not isinstance(activity, Mapping):
        problems.append(f"{path}: must be an Activity object")
        return
    _unknown(activity, _ACTIVITY_KEYS, path, problems)
    if activity.get("objectType", "Activity") != "Activity":
        problems.append(f"{path}.objectType: must be 'Activity'")
    if not _is_iri(activity.get("id")):
        problems.append(f"{path}.id: must be an IRI (got {activity.get('id')!r})")
    definition = activity.get("definition")
    if definition is None:
        return
    if not isinstance(definition, Mapping):
        problems.append(f"{path}.definition: must be an object")
        return
    _unknown(definition, _DEFINITION_KEYS, f"{path}.definition", problems)
    for key in ("name", "description"):
        if key in definition:
            _check_language_map(definition[key], f"{path}.definition.{key}", problems)
    for key in ("type", "moreInfo"):
        if key in definition and not _is_iri(definition[key]):
            problems.append(f"{path}.definition.{key}: must be an IRI")
    if "extensions" in definition:
        _check_extensions(definition["extensions"], f"{path}.definition.extensions", problems)


def _check_object(obj, path: str, problems: list[str], sub: bool) -> None:
    if not isinstance(obj, Mapping):
        problems.append(f"{path}: must be an object")
        return
    kind = obj.get("objectType", "Activity")
    if kind == "Activity":
        _check_activity(obj, path, problems)
    elif kind in ("Agent", "Group"):
        _check_actor(obj, path, problems, as_object=True)
    elif kind == "StatementRef":
        _check_statement_ref(obj, path, problems)
    elif kind == "SubStatement":
        if sub:
            problems.append(f"{path}: a SubStatement cannot contain a SubStatement")
        else:
            _check_statement(obj, path, problems, sub=True)
    else:
        problems.append(f"{path}.objectType: must be Activity, Agent, Group, StatementRef or SubStatement")


def _check_statement_ref(ref, path: str, problems: list[str]) -> None:
    if not isinstance(ref, Mapping):
        problems.append(f"{path}: must be a StatementRef object")
        return
    _unknown(ref, {"objectType", "id"}, path, problems)
    if ref.get("objectType") != "StatementRef":
        problems.append(f"{path}.objectType: must be 'StatementRef'")
    if not is_uuid(ref.get("id")):
        problems.append(f"{path}.id: must be a UUID")


def _check_result(result, path: str, problems: list[str]) -> None:
    if not isinstance(result, Mapping):
        problems.append(f"{path}: must be an object")
        return
    _unknown(result, _RESULT_KEYS, path, problems)
    if "score" in result:
        _check_score(result["score"], f"{path}.score", problems)
    for key in ("success", "completion"):
        if key in result and not isinstance(result[key], bool):
            problems.append(f"{path}.{key}: must be true or false")
    if "response" in result and not isinstance(result["response"], str):
        problems.append(f"{path}.response: must be a string")
    if "duration" in result and not is_duration(result["duration"]):
        problems.append(f"{path}.duration: must be an ISO 8601 duration such as 'PT1M30.5S' "
                        f"(got {result['duration']!r})")
    if "extensions" in result:
        _check_extensions(result["extensions"], f"{path}.extensions", problems)


def _check_score(score, path: str, problems: list[str]) -> None:
    if not isinstance(score, Mapping):
        problems.append(f"{path}: must be an object")
        return
    _unknown(score, _SCORE_KEYS, path, problems)
    for key in _SCORE_KEYS:
        if key in score and not _is_number(score[key]):
            problems.append(f"{path}.{key}: must be a number")
    scaled = score.get("scaled")
    if _is_number(scaled) and not -1.0 <= scaled <= 1.0:
        problems.append(f"{path}.scaled: must be between -1 and 1 (got {scaled})")
    low, high, raw = score.get("min"), score.get("max"), score.get("raw")
    if _is_number(low) and _is_number(high) and not low < high:
        problems.append(f"{path}: min ({low}) must be less than max ({high})")
    if _is_number(raw):
        if _is_number(low) and raw < low:
            problems.append(f"{path}.raw: {raw} is below min {low}")
        if _is_number(high) and raw > high:
            problems.append(f"{path}.raw: {raw} is above max {high}")


def _check_context(context, path: str, problems: list[str], object_is_activity: bool) -> None:
    if not isinstance(context, Mapping):
        problems.append(f"{path}: must be an object")
        return
    _unknown(context, _CONTEXT_KEYS, path, problems)
    if "registration" in context and not is_uuid(context["registration"]):
        problems.append(f"{path}.registration: must be a UUID")
    if "instructor" in context:
        _check_actor(context["instructor"], f"{path}.instructor", problems)
    if "team" in context:
        team = context["team"]
        if not (isinstance(team, Mapping) and team.get("objectType") == "Group"):
            problems.append(f"{path}.team: must be a Group")
        else:
            _check_actor(team, f"{path}.team", problems)
    if "contextActivities" in context:
        ca = context["contextActivities"]
        if not isinstance(ca, Mapping):
            problems.append(f"{path}.contextActivities: must be an object")
        else:
            for key, value in ca.items():
                if key not in _CONTEXT_ACTIVITY_KEYS:
                    problems.append(f"{path}.contextActivities: '{key}' is not parent, grouping, category or other")
                    continue
                for i, activity in enumerate(value if isinstance(value, list) else [value]):
                    _check_activity(activity, f"{path}.contextActivities.{key}[{i}]", problems)
    for key in ("revision", "platform"):
        if key in context:
            if not isinstance(context[key], str):
                problems.append(f"{path}.{key}: must be a string")
            if not object_is_activity:
                problems.append(f"{path}.{key}: only allowed when the object is an Activity")
    if "language" in context and not (isinstance(context["language"], str)
                                      and _LANGUAGE_TAG.match(context["language"])):
        problems.append(f"{path}.language: must be an RFC 5646 language tag")
    if "statement" in context:
        _check_statement_ref(context["statement"], f"{path}.statement", problems)
    if "extensions" in context:
        _check_extensions(context["extensions"], f"{path}.extensions", problems)


def _check_timestamp(value, path: str, problems: list[str]) -> None:
    if not is_timestamp(value):
        problems.append(f"{path}: must be an ISO 8601 date and time such as '2025-03-01T09:30:00.000Z' "
                        f"(got {value!r})")
    elif not _TIMESTAMP.match(value).group("tz"):
        problems.append(f"{path}: has no time zone")


def _check_attachments(value, path: str, problems: list[str]) -> None:
    if not isinstance(value, list):
        problems.append(f"{path}: must be an array")
        return
    for i, a in enumerate(value):
        where = f"{path}[{i}]"
        if not isinstance(a, Mapping):
            problems.append(f"{where}: must be an object")
            continue
        _unknown(a, _ATTACHMENT_KEYS, where, problems)
        for key in ("usageType", "display", "contentType", "length", "sha2"):
            if key not in a:
                problems.append(f"{where}.{key}: missing (required)")
        if "usageType" in a and not _is_iri(a["usageType"]):
            problems.append(f"{where}.usageType: must be an IRI")
        for key in ("display", "description"):
            if key in a:
                _check_language_map(a[key], f"{where}.{key}", problems)
        if "length" in a and (isinstance(a["length"], bool) or not isinstance(a["length"], int)):
            problems.append(f"{where}.length: must be an integer")
        if "fileUrl" in a and not _is_iri(a["fileUrl"]):
            problems.append(f"{where}.fileUrl: must be an IRL")


def _check_nulls_and_empties(value, path: str, problems: list[str]) -> None:
    """No null anywhere but inside extensions; no empty objects (SHOULD NOT)."""
    if isinstance(value, Mapping):
        if not value and path:
            problems.append(f"{path}: an empty object (leave the property out instead)")
        for key, v in value.items():
            if key == "extensions":
                continue
            where = _p(path, str(key))
            if v is None:
                problems.append(f"{where}: null is not allowed")
            else:
                _check_nulls_and_empties(v, where, problems)
    elif isinstance(value, list):
        for i, v in enumerate(value):
            if v is None:
                problems.append(f"{path}[{i}]: null is not allowed")
            else:
                _check_nulls_and_empties(v, f"{path}[{i}]", problems)


__all__ = ["XAPI_VERSION", "Trainee", "VERBS", "KEY_EVENTS", "EXTENSIONS", "statements_for_attempt",
           "write_statements", "post_statements", "validate_statement", "statement_uuid", "registration_uuid",
           "scenario_iri", "course_iri", "iso_timestamp", "iso_duration", "is_uuid", "is_duration", "is_timestamp"]
