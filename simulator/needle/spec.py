"""Needle specifications: the catalogue in ``assets/needles.toml``, checked row by row on loading.

A malformed catalogue is reported as one :class:`~simulator.errors.SpineSimError` line naming the
file, the needle and the field, e.g. ``assets/needles.toml: needle 'x': length_mm must be > 0``.
"""

from __future__ import annotations

import math
import re
import tomllib
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from simulator.assets import read_asset_text
from simulator.errors import SpineSimError

#: Where the shipped catalogue lives, as named in error messages.
CATALOGUE_SOURCE = "assets/needles.toml"
#: The catalogue layout this module reads.
CATALOGUE_FORMAT_VERSION = 2
#: Tip designs: cutting bevel, curved epidural (Huber point), conical side-port, rounded side-port.
TIP_KINDS = ("quincke", "tuohy", "pencil_point", "blunt")

MM_PER_INCH = 25.4

_ID_PATTERN = re.compile(r"[a-z0-9][a-z0-9_.-]*")


@dataclass(frozen=True)
class NeedleSpec:
    """One needle model of the catalogue.

    Attributes
    ----------
    id : str
        Catalogue key, as scenarios name it (``[needle] id = "tuohy_20g_89mm"``).
    name : str
        What the trainee reads, with gauge and length as sold (``"Tuohy 20 G, 3.5 inch"``).
    tip : {"quincke", "tuohy", "pencil_point", "blunt"}
        Tip design: Quincke cutting bevel; Tuohy curved blunt (Huber) tip with a side opening;
        pencil point (Whitacre/Sprotte style) cone with a side port; blunt rounded tip with a side
        port.
    gauge : int
        Needle gauge (G); a smaller number is a thicker needle.
    outer_diameter_mm : float
        Shaft outer diameter, mm (nominal for the gauge).
    length_mm : float
        Shaft length from hub to tip, mm.
    depth_mark_interval_mm : float
        Spacing of the depth marks on the shaft, mm, counted from the tip (0: no marks).
    tip_bend_length_mm : float
        Length of the curved tip as manufactured, mm (the Tuohy curve; 0 for a straight needle).
    tip_bend_deg : float
        Angle of that curve to the shaft, degrees (0 for a straight needle).
    bevel_angle_deg : float
        Angle between a cutting bevel's face and the shaft axis, degrees; 0 for tips without a
        cutting bevel (Tuohy, pencil point, blunt).
    opening_offset_mm : float
        Distance from the tip back to the hub-side edge of the opening (bevel or side port), mm:
        the whole opening lies beyond a membrane only once the tip is this far past it.
    steer_mm_per_100mm : float
        Sideways drift of the tip per 100 mm advanced through soft tissue with the needle held
        straight, mm. It is towards the side the tip leads: for a Quincke away from the bevel face,
        for a Tuohy towards its opening (the way its curve bends); about 0 for symmetric tips.
    bendable : bool
        Whether the trainee may put a curve on the tip (bent-tip steering with spinal Quincke and
        blunt needles).
    max_user_bend_deg : float
        The largest tip curve the user interface may allow, degrees; 0 when not ``bendable``.
    """

    id: str
    name: str
    tip: str
    gauge: int
    outer_diameter_mm: float
    length_mm: float
    depth_mark_interval_mm: float
    tip_bend_length_mm: float
    tip_bend_deg: float
    bevel_angle_deg: float
    opening_offset_mm: float
    steer_mm_per_100mm: float
    bendable: bool
    max_user_bend_deg: float

    @property
    def radius_mm(self) -> float:
        """Shaft outer radius, mm."""
        return 0.5 * self.outer_diameter_mm

    @property
    def length_inch(self) -> float:
        """Shaft length in inches (needles are sold by inch: 3.5 inch is 89 mm)."""
        return self.length_mm / MM_PER_INCH

    def depth_marks_mm(self) -> list[float]:
        """Positions of the depth marks along the shaft, mm from the tip, nearest first.

        Returns
        -------
        list of float
            ``interval, 2 * interval, ...`` short of the hub; empty when the needle has no marks.
        """
        step = self.depth_mark_interval_mm
        if step <= 0.0:
            return []
        count = math.floor((self.length_mm - 1e-9) / step)
        return [step * k for k in range(1, count + 1)]


# every NeedleSpec field -> (kind, rule); kinds "str", "int", "float", "bool"; rules "> 0", ">= 0", "angle"
_FIELDS: dict[str, tuple[str, str]] = {
    "id": ("str", ""),
    "name": ("str", ""),
    "tip": ("str", ""),
    "gauge": ("int", "> 0"),
    "outer_diameter_mm": ("float", "> 0"),
    "length_mm": ("float", "> 0"),
    "depth_mark_interval_mm": ("float", ">= 0"),
    "tip_bend_length_mm": ("float", ">= 0"),
    "tip_bend_deg": ("float", "angle"),
    "bevel_angle_deg": ("float", "angle"),
    "opening_offset_mm": ("float", ">= 0"),
    "steer_mm_per_100mm": ("float", ">= 0"),
    "bendable": ("bool", ""),
    "max_user_bend_deg": ("float", "angle"),
}


def parse_needle_catalogue(text: str, source: str = CATALOGUE_SOURCE) -> dict[str, NeedleSpec]:
    """Read and check a needle catalogue.

    Parameters
    ----------
    text : str
        The TOML text: ``format_version`` and one ``[[needle]]`` table per needle with every field
        of :class:`NeedleSpec`.
    source : str
        The file's name for error messages.

    Returns
    -------
    dict of str to NeedleSpec
        The needles by id, in file order.

    Raises
    ------
    SpineSimError
        One line naming ``source``, the needle and the field: a field missing, unknown, of the
        wrong type, out of range or inconsistent with another; a duplicate id; bad TOML.
    """
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise SpineSimError(f"{source}: not valid TOML: {exc}") from None
    extra = sorted(set(data) - {"format_version", "needle"})
    if extra:
        raise SpineSimError(f"{source}: unknown top-level field '{extra[0]}'")
    version = data.get("format_version")
    if version != CATALOGUE_FORMAT_VERSION or isinstance(version, bool):
        raise SpineSimError(f"{source}: format_version must be {CATALOGUE_FORMAT_VERSION}")
    rows = data.get("needle")
    if not isinstance(rows, list) or not rows:
        raise SpineSimError(f"{source}: needle: no [[needle]] tables")
    catalogue: dict[str, NeedleSpec] = {}
    for number, row in enumerate(rows, start=1):
        spec = _parse_row(row, f"{source}: needle #{number}", source)
        if spec.id in catalogue:
            raise SpineSimError(f"{source}: needle '{spec.id}': id is used by an earlier needle")
        catalogue[spec.id] = spec
    return catalogue


def _parse_row(row: Any, where: str, source: str) -> NeedleSpec:
    """One ``[[needle]]`` table -> NeedleSpec; ``where`` names the row until its id is known."""
    if not isinstance(row, dict):
        raise SpineSimError(f"{where}: must be a [[needle]] table")
    needle_id = row.get("id")
    if isinstance(needle_id, str) and _ID_PATTERN.fullmatch(needle_id):
        where = f"{source}: needle '{needle_id}'"
    elif needle_id is None:
        raise SpineSimError(f"{where}: id is missing")
    else:
        raise SpineSimError(f"{where}: id must be lower-case letters, digits, '_', '.' or '-' "
                            f"(got {needle_id!r})")
    unknown = sorted(set(row) - set(_FIELDS))
    if unknown:
        raise SpineSimError(f"{where}: unknown field '{unknown[0]}'")
    values: dict[str, Any] = {}
    for name, (kind, rule) in _FIELDS.items():
        if name not in row:
            raise SpineSimError(f"{where}: {name} is missing")
        values[name] = _check_value(row[name], kind, rule, f"{where}: {name}")
    spec = NeedleSpec(**values)
    _check_consistency(spec, where)
    return spec


def _check_value(value: Any, kind: str, rule: str, what: str) -> Any:
    """The value of one field, checked for type and range; ``what`` prefixes the message."""
    if kind == "str":
        if not isinstance(value, str) or not value.strip():
            raise SpineSimError(f"{what} must be non-empty text")
        return value
    if kind == "bool":
        if not isinstance(value, bool):
            raise SpineSimError(f"{what} must be true or false")
        return value
    # bool is an int in Python; TOML true is never a count or a length
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise SpineSimError(f"{what} must be a number")
    if kind == "int":
        if not isinstance(value, int):
            raise SpineSimError(f"{what} must be a whole number")
    elif not math.isfinite(value):
        raise SpineSimError(f"{what} must be finite")
    if rule == "> 0" and not value > 0:
        raise SpineSimError(f"{what} must be > 0")
    if rule == ">= 0" and not value >= 0:
        raise SpineSimError(f"{what} must be >= 0")
    if rule == "angle" and not 0 <= value < 90:
        raise SpineSimError(f"{what} must be >= 0 and < 90 degrees")
    return value if kind == "int" else float(value)


def _check_consistency(spec: NeedleSpec, where: str) -> None:
    """Rules across fields of one needle."""
    if spec.tip not in TIP_KINDS:
        raise SpineSimError(f"{where}: tip must be one of {', '.join(TIP_KINDS)} (got '{spec.tip}')")
    for name in ("tip_bend_length_mm", "opening_offset_mm", "depth_mark_interval_mm"):
        if getattr(spec, name) >= spec.length_mm:
            raise SpineSimError(f"{where}: {name} must be less than length_mm ({spec.length_mm:g})")
    # a curve needs both a length and an angle, or the drawn tip and the steering disagree
    if (spec.tip_bend_length_mm > 0) != (spec.tip_bend_deg > 0):
        raise SpineSimError(f"{where}: tip_bend_deg must be > 0 exactly when tip_bend_length_mm is > 0")
    if spec.bevel_angle_deg > 0 and spec.tip != "quincke":
        raise SpineSimError(f"{where}: bevel_angle_deg must be 0 for a {spec.tip} tip (no cutting bevel)")
    if spec.tip == "quincke" and spec.bevel_angle_deg <= 0:
        raise SpineSimError(f"{where}: bevel_angle_deg must be > 0 for a quincke tip")
    if spec.bendable and spec.max_user_bend_deg <= 0:
        raise SpineSimError(f"{where}: max_user_bend_deg must be > 0 for a bendable needle")
    if not spec.bendable and spec.max_user_bend_deg != 0:
        raise SpineSimError(f"{where}: max_user_bend_deg must be 0 when bendable is false")


@lru_cache(maxsize=1)
def needle_catalogue() -> dict[str, NeedleSpec]:
    """The shipped needles (``assets/needles.toml``) by id.

    Raises
    ------
    SpineSimError
        When the shipped file is malformed (see :func:`parse_needle_catalogue`).
    """
    return parse_needle_catalogue(read_asset_text("needles.toml"), CATALOGUE_SOURCE)


def needle_spec(needle_id: str) -> NeedleSpec:
    """The needle called ``needle_id``."""
    try:
        return needle_catalogue()[needle_id]
    except KeyError:
        known = ", ".join(sorted(needle_catalogue()))
        raise SpineSimError(f"unknown needle '{needle_id}' (known: {known})") from None


def needles_for(tip: str | None = None, gauge: int | None = None) -> list[NeedleSpec]:
    """The shipped needles of one tip design and/or gauge, thickest and shortest first.

    Parameters
    ----------
    tip : str, optional
        One of :data:`TIP_KINDS`; any when None.
    gauge : int, optional
        Only this gauge; any when None.

    Returns
    -------
    list of NeedleSpec
    """
    if tip is not None and tip not in TIP_KINDS:
        raise SpineSimError(f"unknown needle tip '{tip}' (known: {', '.join(TIP_KINDS)})")
    chosen = [s for s in needle_catalogue().values()
              if (tip is None or s.tip == tip) and (gauge is None or s.gauge == gauge)]
    return sorted(chosen, key=lambda s: (TIP_KINDS.index(s.tip), s.gauge, s.length_mm))
