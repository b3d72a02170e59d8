"""Commands: every trainee action, as a plain serialisable record.

``Simulation.apply(command)`` is the only way the state of an attempt changes; an attempt record is
the list of commands with their simulated times. In JSON a command is an object with a
``"command"`` name and its fields, e.g. ``{"command": "advance", "distance_mm": 2.0}``.

==========================  ==============================================================
command                     fields
==========================  ==============================================================
``set_entry``               ``point_mm`` [x, y, z] on the skin; ``direction`` [x, y, z]
                            (optional; default: straight forward, patient anterior)
``advance``                 ``distance_mm`` (0 < d <= 20)
``withdraw``                ``distance_mm`` (0 < d <= 150)
``redirect``                ``cranial_deg``, ``right_deg`` (each within +-30): tip towards
                            the head / the patient's right
``move_carm``               ``oblique_deg`` (+ detector to the patient's left, within +-100),
                            ``tilt_deg`` (+ detector to the head, within +-45),
                            ``isocentre_mm`` (optional)
``acquire_image``           (none): one exposure, kept in the attempt's images
``fluoroscopy_on``          ``pulse_rate_pps``: 7.5, 15 or 30 pulses per second, or absent
                            for continuous (30 frames/s); ``subtraction`` (bool): digital
                            subtraction against a mask taken now: the pedal goes down
``fluoroscopy_off``         (none): the pedal comes up; the last frame is held on the monitor
``collimate``               ``field_mm`` (50-300): the iris's field diameter at the detector;
                            ``shutter_mm`` (20-300 or absent: open): the gap between the two
                            parallel shutter blades (closing from the image's left and right)
``magnify``                 ``field_of_view_mm``: 300 (full), 230 or 170 (magnification modes)
``test_loss_of_resistance`` ``medium``: ``"saline"`` or ``"air"``
``inject_contrast``         ``volume_ml`` (0 < v <= 10)
``inject_drug``             ``drug_id`` (one of assets/drugs.toml), ``volume_ml`` (0 < v <= 20):
                            the injectate (local anaesthetic, steroid, saline) after contrast
``palpate``                 ``point_mm`` [x, y, z] near the skin
``choose_needle``           ``needle_id``: another needle the scenario offers (before entry)
``rotate_bevel``            ``roll_deg``: the bevel opening's roll about the shaft (0 faces
                            the head, 90 the patient's right); the tip steers from now on
``bend_tip``                ``bend_deg`` (0-30): bend a bendable needle's tip before insertion
``attach_syringe``          ``medium``: ``"saline"`` or ``"air"``: a loss-of-resistance syringe
                            on the hub; its pressure is read at every advance
``detach_syringe``          (none)
``aspirate``                (none): draw back on the syringe and look at the hub
``report_pattern``          ``pattern``: what the trainee reads in the last contrast run, one of
                            :data:`PATTERNS` (epidural, intrathecal, subdural, venous,
                            arterial, joint, disc, bone, soft_tissue)
``set_spine_visible``       ``visible`` (bool)
``finish``                  (none)
==========================  ==============================================================
"""

from __future__ import annotations

import json
from typing import Annotated, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from simulator.errors import SpineSimError

Vector = tuple[float, float, float]


class _Command(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    def as_dict(self) -> dict:
        return self.model_dump(exclude_none=True)


class SetEntry(_Command):
    command: Literal["set_entry"] = "set_entry"
    point_mm: Vector
    direction: Vector | None = None


class Advance(_Command):
    command: Literal["advance"] = "advance"
    distance_mm: float = Field(gt=0.0, le=20.0)


class Withdraw(_Command):
    command: Literal["withdraw"] = "withdraw"
    distance_mm: float = Field(gt=0.0, le=150.0)


class Redirect(_Command):
    command: Literal["redirect"] = "redirect"
    cranial_deg: float = Field(default=0.0, ge=-30.0, le=30.0)
    right_deg: float = Field(default=0.0, ge=-30.0, le=30.0)


class MoveCArm(_Command):
    command: Literal["move_carm"] = "move_carm"
    oblique_deg: float = Field(default=0.0, ge=-100.0, le=100.0)
    tilt_deg: float = Field(default=0.0, ge=-45.0, le=45.0)
    isocentre_mm: Vector | None = None


class AcquireImage(_Command):
    command: Literal["acquire_image"] = "acquire_image"


class FluoroscopyOn(_Command):
    command: Literal["fluoroscopy_on"] = "fluoroscopy_on"
    pulse_rate_pps: Literal[7.5, 15.0, 30.0] | None = None
    subtraction: bool = False


class FluoroscopyOff(_Command):
    command: Literal["fluoroscopy_off"] = "fluoroscopy_off"


class Magnify(_Command):
    command: Literal["magnify"] = "magnify"
    field_of_view_mm: Literal[300.0, 230.0, 170.0]


class Collimate(_Command):
    command: Literal["collimate"] = "collimate"
    field_mm: float = Field(ge=50.0, le=300.0)
    shutter_mm: float | None = Field(default=None, ge=20.0, le=300.0)


class TestLossOfResistance(_Command):
    __test__ = False  # not a pytest class
    command: Literal["test_loss_of_resistance"] = "test_loss_of_resistance"
    medium: Literal["saline", "air"] = "saline"


class InjectContrast(_Command):
    command: Literal["inject_contrast"] = "inject_contrast"
    volume_ml: float = Field(gt=0.0, le=10.0)


class InjectDrug(_Command):
    command: Literal["inject_drug"] = "inject_drug"
    drug_id: str = Field(min_length=1)
    volume_ml: float = Field(gt=0.0, le=20.0)


class Palpate(_Command):
    command: Literal["palpate"] = "palpate"
    point_mm: Vector


class ChooseNeedle(_Command):
    command: Literal["choose_needle"] = "choose_needle"
    needle_id: str = Field(min_length=1)


class RotateBevel(_Command):
    command: Literal["rotate_bevel"] = "rotate_bevel"
    roll_deg: float = Field(ge=-360.0, le=360.0)


class BendTip(_Command):
    command: Literal["bend_tip"] = "bend_tip"
    bend_deg: float = Field(ge=0.0, le=30.0)


class AttachSyringe(_Command):
    command: Literal["attach_syringe"] = "attach_syringe"
    medium: Literal["saline", "air"] = "saline"


class DetachSyringe(_Command):
    command: Literal["detach_syringe"] = "detach_syringe"


class Aspirate(_Command):
    command: Literal["aspirate"] = "aspirate"


class SetSpineVisible(_Command):
    command: Literal["set_spine_visible"] = "set_spine_visible"
    visible: bool


#: The contrast patterns a trainee can report (reference 3.0): the compartments the contrast model
#: fills, with vascular uptake read as venous or arterial whatever else fills.
PATTERNS = ("epidural", "intrathecal", "subdural", "venous", "arterial", "joint", "disc", "bone", "soft_tissue")


class ReportPattern(_Command):
    command: Literal["report_pattern"] = "report_pattern"
    pattern: Literal[PATTERNS]


class Finish(_Command):
    command: Literal["finish"] = "finish"


Command = Annotated[
    Union[SetEntry, Advance, Withdraw, Redirect, MoveCArm, AcquireImage, FluoroscopyOn, FluoroscopyOff, Collimate, Magnify,
          TestLossOfResistance,
          InjectContrast, InjectDrug, Palpate, ChooseNeedle, RotateBevel, BendTip, AttachSyringe, DetachSyringe, Aspirate,
          SetSpineVisible, ReportPattern, Finish],
    Field(discriminator="command"),
]
_ADAPTER = TypeAdapter(Command)

COMMAND_NAMES = ("set_entry", "advance", "withdraw", "redirect", "move_carm", "acquire_image", "fluoroscopy_on",
                 "fluoroscopy_off", "collimate", "magnify", "test_loss_of_resistance", "inject_contrast", "inject_drug",
                 "report_pattern", "palpate", "choose_needle", "rotate_bevel", "bend_tip", "attach_syringe",
                 "detach_syringe", "aspirate", "set_spine_visible", "finish")


def describe_validation_error(err: ValidationError) -> str:
    """The first problem of a pydantic error as ``field: message``."""
    first = err.errors()[0]
    loc = ".".join(str(p) for p in first["loc"])
    msg = first["msg"]
    if first["type"] == "union_tag_invalid":
        return f"command: unknown command (expected one of {', '.join(COMMAND_NAMES)})"
    if first["type"] == "union_tag_not_found":
        return "command: missing"
    if first["type"] == "extra_forbidden":
        return f"{loc}: unknown field"
    msg = msg.replace("Value error, ", "")
    return f"{loc}: {msg}" if loc else msg


def parse_command(data: dict) -> _Command:
    """A command from its JSON form; raises :class:`SpineSimError` naming the bad field.

    Types are strict, as in JSON: ``true`` is not a distance and ``"2"`` is not a number.
    """
    if not isinstance(data, dict):
        raise SpineSimError("a command must be a JSON object")
    try:
        text = json.dumps(data)
    except (TypeError, ValueError) as err:
        raise SpineSimError(f"not a JSON command ({err})") from None
    try:
        return _ADAPTER.validate_json(text, strict=True)
    except ValidationError as err:
        raise SpineSimError(describe_validation_error(err)) from None
