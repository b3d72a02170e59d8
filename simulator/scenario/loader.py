"""Loading scenario files, with one-line errors that name the file and the field."""

from __future__ import annotations

import hashlib
import json
import tomllib
from dataclasses import dataclass
from pathlib import Path

from pydantic import ValidationError

from simulator.errors import SpineSimError
from simulator.scenario.schema import Scenario


@dataclass(frozen=True)
class LoadedScenario:
    """A validated scenario with where it came from.

    Attributes
    ----------
    scenario : Scenario
    source : str
        The file's path (or ``builtin:<name>``).
    text : str
        The file's text (kept in attempt records, so a record is self-contained).
    sha256 : str
    """

    scenario: Scenario
    source: str
    text: str
    sha256: str


def _message(err: ValidationError) -> str:
    first = err.errors()[0]
    loc = ".".join(str(p) for p in first["loc"])
    ctx = first.get("ctx", {})
    kind = first["type"]
    messages = {
        "missing": "is required",
        "extra_forbidden": "is not a known field",
        "greater_than": f"must be greater than {ctx.get('gt')}",
        "greater_than_equal": f"must be at least {ctx.get('ge')}",
        "less_than": f"must be less than {ctx.get('lt')}",
        "less_than_equal": f"must be at most {ctx.get('le')}",
        "finite_number": "must be a finite number",
        "float_parsing": "must be a number",
        "float_type": "must be a number",
        "int_parsing": "must be a whole number",
        "int_type": "must be a whole number",
        "int_from_float": "must be a whole number",
        "string_type": "must be text",
        "bool_type": "must be true or false",
        "bool_parsing": "must be true or false",
        "string_too_short": "must not be empty",
        "string_pattern_mismatch": "must use only lower-case letters, digits, '_' and '-'",
    }
    if kind == "literal_error":
        text = f"must be one of {ctx.get('expected')}"
    elif kind in messages:
        text = messages[kind]
    else:
        text = first["msg"].replace("Value error, ", "")
        head = text.split(": ", 1)[0]
        if head.isidentifier() and ": " in text:
            # a whole-section check that names its own field
            return f"{loc}.{text}" if loc else text
    return f"{loc}: {text}" if loc else text


def parse_scenario(text: str, source: str) -> LoadedScenario:
    """Validate scenario TOML ``text``; errors name ``source`` and the field."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise SpineSimError(f"{source}: not valid TOML ({err})") from None
    try:
        # strict: a true is not a count, "900" is not a number (JSON mode so lists fill tuples)
        scenario = Scenario.model_validate_json(json.dumps(data, default=str), strict=True)
    except ValidationError as err:
        raise SpineSimError(f"{source}: {_message(err)}") from None
    return LoadedScenario(scenario, source, text, hashlib.sha256(text.encode()).hexdigest())


def builtin_scenarios() -> dict[str, str]:
    """Scenario name -> TOML text of every scenario shipped with SpineSim."""
    from importlib import resources

    out: dict[str, str] = {}
    try:
        pkg = resources.files("simulator._scenarios")
        for entry in pkg.iterdir():
            if entry.name.endswith(".toml"):
                out[entry.name[:-5]] = entry.read_text(encoding="utf-8")
    except ModuleNotFoundError:
        pass
    return out


DEFAULT_SCENARIO = "lumbar_interlaminar_l4l5_fluoroscopy"


def load_scenario(ref: str | Path) -> LoadedScenario:
    """Load a scenario from a file path or a built-in name (e.g. ``lumbar_interlaminar_l4l5_landmark``)."""
    path = Path(ref)
    if path.suffix == ".toml" or path.exists():
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise SpineSimError(f"{ref}: no such scenario file") from None
        except (OSError, UnicodeDecodeError) as err:
            raise SpineSimError(f"{ref}: cannot read ({err.__class__.__name__})") from None
        return parse_scenario(text, str(ref))
    builtins = builtin_scenarios()
    if str(ref) in builtins:
        return parse_scenario(builtins[str(ref)], f"builtin:{ref}")
    known = ", ".join(sorted(builtins)) or "none"
    raise SpineSimError(f"{ref}: no such scenario file or built-in scenario (built-in: {known})")


def user_scenarios_dir() -> Path:
    """The folder of the instructor's own scenarios, ``<data folder>/scenarios`` (created if
    missing; see :func:`simulator.paths.data_dir`).

    Returns
    -------
    Path
    """
    from simulator.paths import data_dir

    path = data_dir() / "scenarios"
    path.mkdir(parents=True, exist_ok=True)
    return path


def user_scenarios() -> dict[str, Path]:
    """The instructor's saved scenarios that load: file name without ``.toml`` -> path, sorted
    by name. A file that does not load is left out (the scenario editor opens it to fix it).

    Returns
    -------
    dict of str to Path
    """
    out: dict[str, Path] = {}
    for path in sorted(user_scenarios_dir().glob("*.toml")):
        try:
            load_scenario(path)
        except SpineSimError:
            continue
        out[path.stem] = path
    return out
