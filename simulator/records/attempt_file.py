"""The attempt record: versioned JSON Lines, the one format attempts are stored, exported and
replayed in.

Line 1 is the header::

    {"format": "spinesim-attempt", "format_version": 1, "app_version": "0.1.0",
     "scenario": {"id": ..., "source": ..., "sha256": ..., "text": "<the scenario TOML>"},
     "patient": {<every resolved patient parameter>}, "generator_version": "lumbar-1"}

Every following line is one command with its simulated time::

    {"t_s": 12.5, "command": "advance", "distance_mm": 2.0}

A file of command lines without a header is also accepted as a script of actions. Writing is
append-and-flush per command, so an attempt cut short keeps everything up to its last command.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from simulator import __version__
from simulator.errors import SpineSimError
from simulator.protocol.commands import parse_command

FORMAT = "spinesim-attempt"
FORMAT_VERSION = 1


@dataclass
class TimedCommand:
    t_s: float | None
    command: object  # a protocol command

    def as_dict(self) -> dict:
        out = {} if self.t_s is None else {"t_s": round(float(self.t_s), 3)}
        out.update(self.command.as_dict())
        return out


@dataclass
class AttemptRecord:
    """A header (may be ``None`` for a bare script) and the commands."""

    header: dict | None
    commands: list[TimedCommand] = field(default_factory=list)


def make_header(scenario_id: str, source: str, sha256: str, text: str, patient: dict,
                generator_version: str) -> dict:
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "app_version": __version__,
        "scenario": {"id": scenario_id, "source": source, "sha256": sha256, "text": text},
        "patient": patient,
        "generator_version": generator_version,
    }


class AttemptWriter:
    """Writes an attempt record as it happens (header first, then one line per command)."""

    def __init__(self, path: str | Path, header: dict):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file: IO[str] = open(self.path, "w", encoding="utf-8")
        self._write(header)

    def _write(self, obj: dict) -> None:
        self._file.write(json.dumps(obj, separators=(",", ":")) + "\n")
        self._file.flush()
        os.fsync(self._file.fileno())

    def append(self, timed: TimedCommand) -> None:
        self._write(timed.as_dict())

    def close(self) -> None:
        if not self._file.closed:
            self._file.close()


def write_record(path: str | Path, record: AttemptRecord) -> None:
    """Write a whole record at once."""
    with open(path, "w", encoding="utf-8") as f:
        if record.header is not None:
            f.write(json.dumps(record.header, separators=(",", ":")) + "\n")
        for c in record.commands:
            f.write(json.dumps(c.as_dict(), separators=(",", ":")) + "\n")


def read_record(path: str | Path) -> AttemptRecord:
    """Read an attempt record or a script of commands; errors name the file, line and field."""
    p = Path(path)
    try:
        lines = p.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise SpineSimError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError) as err:
        raise SpineSimError(f"{path}: cannot read ({err.__class__.__name__})") from None
    header = None
    commands: list[TimedCommand] = []
    last_t = 0.0
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as err:
            raise SpineSimError(f"{path}: line {number}: not valid JSON ({err.msg})") from None
        if not isinstance(obj, dict):
            raise SpineSimError(f"{path}: line {number}: must be a JSON object")
        if "format" in obj:
            if number != 1 and commands:
                raise SpineSimError(f"{path}: line {number}: a header must come first")
            if obj.get("format") != FORMAT:
                raise SpineSimError(f"{path}: line {number}: format: must be '{FORMAT}'")
            if obj.get("format_version") != FORMAT_VERSION:
                raise SpineSimError(f"{path}: line {number}: format_version: must be {FORMAT_VERSION}")
            header = obj
            continue
        t_s = obj.pop("t_s", None)
        if t_s is not None:
            if not isinstance(t_s, (int, float)) or isinstance(t_s, bool) or not (t_s >= 0) or t_s == float("inf"):
                raise SpineSimError(f"{path}: line {number}: t_s: must be a non-negative number")
            if t_s < last_t:
                raise SpineSimError(f"{path}: line {number}: t_s: must not go back in time ({t_s} < {last_t})")
            last_t = float(t_s)
        try:
            command = parse_command(obj)
        except SpineSimError as err:
            raise SpineSimError(f"{path}: line {number}: {err}") from None
        commands.append(TimedCommand(t_s, command))
    if not commands and header is None:
        raise SpineSimError(f"{path}: no commands in the file")
    return AttemptRecord(header, commands)
