"""The scenario file: one training case, validated field by field.

A scenario is a TOML file (see ``scenarios/lumbar_interlaminar_l4l5_fluoroscopy.toml`` for a
commented example). Every field is checked on loading; a problem is reported as one line naming
the file and the field, e.g. ``scenarios/x.toml: limits.time_s: must be greater than 0``.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from simulator.anatomy.patient import PatientParameters, validate_patient_values

SCHEMA_VERSION = 1
#: The procedures scenarios can name and the interspaces each may target. Cervical interlaminar:
#: C7-T1 preferred and no higher than C6-C7 (reference 3.4: Rathmell 2015 consensus).
PROCEDURE_LEVELS = {
    "lumbar_interlaminar": ("L1-L2", "L2-L3", "L3-L4", "L4-L5", "L5-S1"),
    "cervical_interlaminar": ("C6-C7", "C7-T1"),
    # caudal: through the sacral hiatus (the target zone runs from the hiatus up to S3)
    "caudal": ("sacral_hiatus",),
    # transforaminal: the foramen below the upper vertebra's pedicle, on the scenario's side
    "lumbar_transforaminal": ("L1-L2", "L2-L3", "L3-L4", "L4-L5", "L5-S1"),
    "cervical_transforaminal": ("C3-C4", "C4-C5", "C5-C6", "C6-C7", "C7-T1"),
    "thoracic_transforaminal": ("T1-T2", "T2-T3", "T3-T4", "T4-T5", "T5-T6", "T6-T7", "T7-T8", "T8-T9", "T9-T10",
                                "T10-T11", "T11-T12"),
    "s1_transforaminal": ("S1",),
    # the lower third of the joint on the scenario's side
    "sacroiliac_joint": ("inferior_joint",),
    # the nerve: the Ln medial branch is blocked on the L(n+1) transverse process; L5 is the L5
    # dorsal ramus in the groove between the sacral ala and the S1 superior articular process
    "lumbar_medial_branch": ("L1", "L2", "L3", "L4", "L5"),
    # the nerve: C3-C7 medial branches on their articular pillars; TON the third occipital nerve
    "cervical_medial_branch": ("TON", "C3", "C4", "C5", "C6", "C7", "C8"),
    "lumbar_facet": ("L1-L2", "L2-L3", "L3-L4", "L4-L5", "L5-S1"),
    "cervical_facet": ("C2-C3", "C3-C4", "C4-C5", "C5-C6", "C6-C7", "C7-T1"),
}
#: How each procedure is done (reference 3): prone, except the neck's lateral approaches (cervical
#: transforaminal supine or in lateral decubitus; cervical medial branch and facet also prone).
_DECUBITUS = ("left_lateral_decubitus", "right_lateral_decubitus")
PROCEDURE_POSITIONS = {procedure: ("prone",) for procedure in PROCEDURE_LEVELS}
PROCEDURE_POSITIONS["cervical_transforaminal"] = ("supine", *_DECUBITUS)
PROCEDURE_POSITIONS["cervical_medial_branch"] = ("prone", "supine", *_DECUBITUS)
PROCEDURE_POSITIONS["cervical_facet"] = ("prone", *_DECUBITUS)
#: Procedures done on one side (the scenario's ``side`` must be left or right).
SIDED = ("lumbar_transforaminal", "cervical_transforaminal", "thoracic_transforaminal", "s1_transforaminal",
         "sacroiliac_joint", "lumbar_medial_branch", "cervical_medial_branch", "lumbar_facet", "cervical_facet")
PROCEDURES = tuple(PROCEDURE_LEVELS)
TARGET_LEVELS = tuple(dict.fromkeys(level for levels in PROCEDURE_LEVELS.values() for level in levels))


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


class PatientSection(_Strict):
    """Who the patient is: a seed, and any parameters fixed by the author (the rest are drawn from
    the seed; see :class:`~simulator.anatomy.patient.PatientParameters`)."""

    seed: int = Field(default=0, ge=0)
    sex: Literal["male", "female"] | None = None
    age_years: float | None = None
    height_cm: float | None = None
    bmi_kg_m2: float | None = None
    lordosis_deg: float | None = None
    kyphosis_deg: float | None = None
    cervical_lordosis_deg: float | None = None
    scoliosis_deg: float | None = None
    supraspinous_ends_at: Literal["L4", "L5"] | None = None
    transitional: Literal["none", "sacralized_L5", "lumbarized_S1"] | None = None
    hiatus: Literal["typical", "high", "narrow", "absent_cornua"] | None = None
    degenerate_levels: tuple[str, ...] | None = None

    @model_validator(mode="after")
    def _ranges(self):
        problems = validate_patient_values(self.model_dump())
        if problems:
            field_name, message = problems[0]
            raise ValueError(f"{field_name}: {message}")
        return self

    def parameters(self) -> PatientParameters:
        return PatientParameters(**self.model_dump())


class NeedleSection(_Strict):
    """The needle the case starts with, and the others the trainee may choose instead."""

    id: str = "tuohy_20g_89mm"
    choices: tuple[str, ...] = ()

    @field_validator("id")
    @classmethod
    def _known(cls, value: str) -> str:
        return _known_needle(value)

    @field_validator("choices")
    @classmethod
    def _known_choices(cls, values: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(_known_needle(v) for v in values)


def _known_needle(value: str) -> str:
    from simulator.needle.spec import needle_catalogue

    if value not in needle_catalogue():
        raise ValueError(f"unknown needle '{value}' (known: {', '.join(sorted(needle_catalogue()))})")
    return value


Level = Literal["C2", "C3", "C4", "C5", "C6", "C7", "T1", "T2", "T3", "T4", "T5", "T6", "T7", "T8", "T9",
                "T10", "T11", "T12", "L1", "L2", "L3", "L4", "L5", "S1", "coccyx"]


class AnatomySection(_Strict):
    """Which anatomy: the seeded phantom (region and voxel size) or an imported CT by name."""

    voxel_mm: float = Field(default=1.0, ge=0.5, le=3.0)
    levels: tuple[Level, Level] | None = None
    ct: str | None = Field(default=None, min_length=1)


class ViewSection(_Strict):
    allow_spine_toggle: bool = True


class CArmSection(_Strict):
    """The C-arm: an image intensifier (circular field, the classic mobile C-arm) or a flat
    panel (square field)."""

    detector: Literal["image_intensifier", "flat_panel"] = "image_intensifier"


class LimitsSection(_Strict):
    time_s: float = Field(default=900.0, gt=0.0)
    images: int = Field(default=60, ge=0)
    contrast_ml: float = Field(default=5.0, gt=0.0, le=20.0)
    #: What the drug syringes hold in all (local anaesthetic, steroid, saline), mL.
    injectate_ml: float = Field(default=20.0, gt=0.0, le=30.0)


class ScoringSection(_Strict):
    pass_mark: float = Field(default=70.0, ge=0.0, le=100.0)
    expert_time_s: float = Field(default=240.0, gt=0.0)
    expert_images: int = Field(default=8, ge=1)


class Scenario(_Strict):
    """One training case."""

    schema_version: int
    id: str = Field(min_length=1, pattern=r"^[a-z0-9_\-]+$")
    title: str = Field(min_length=1)
    brief: str = ""
    procedure: Literal[PROCEDURES]
    target_level: Literal[TARGET_LEVELS]
    approach: Literal["midline", "paramedian"] = "midline"
    side: Literal["midline", "left", "right"] = "midline"
    guidance: Literal["fluoroscopy", "landmark"]
    patient_position: Literal["prone", "supine", "left_lateral_decubitus", "right_lateral_decubitus"] = "prone"
    patient: PatientSection = PatientSection()
    needle: NeedleSection = NeedleSection()
    anatomy: AnatomySection = AnatomySection()
    view: ViewSection = ViewSection()
    carm: CArmSection = CArmSection()
    limits: LimitsSection = LimitsSection()
    scoring: ScoringSection = ScoringSection()

    @field_validator("schema_version")
    @classmethod
    def _version(cls, value: int) -> int:
        if value != SCHEMA_VERSION:
            raise ValueError(f"must be {SCHEMA_VERSION} (this SpineSim reads schema version {SCHEMA_VERSION})")
        return value

    @model_validator(mode="after")
    def _level_matches_procedure(self):
        allowed = PROCEDURE_LEVELS[self.procedure]
        if self.target_level not in allowed:
            raise ValueError(f"target_level: {self.procedure} targets {', '.join(allowed)}, "
                             f"not {self.target_level}")
        return self

    @model_validator(mode="after")
    def _sided_procedure_has_a_side(self):
        if self.procedure in SIDED and self.side == "midline":
            raise ValueError(f"side: {self.procedure} is done on one side: side = 'left' or 'right'")
        return self

    @model_validator(mode="after")
    def _position_fits_procedure(self):
        allowed = PROCEDURE_POSITIONS[self.procedure]
        if self.patient_position not in allowed:
            raise ValueError(f"patient_position: {self.procedure} is done {' or '.join(allowed)}, "
                             f"not {self.patient_position}")
        return self

    @model_validator(mode="after")
    def _side_matches_approach(self):
        if self.approach == "paramedian" and self.side == "midline":
            raise ValueError("side: a paramedian approach needs side = 'left' or 'right'")
        return self


def json_schema() -> dict:
    """The scenario file's JSON Schema (draft 2020-12), for editors that check TOML against one
    (Taplo, Even Better TOML: ``#:schema ./scenario.schema.json`` on a file's first line)."""
    schema = Scenario.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "SpineSim scenario"
    schema["description"] = ("One SpineSim training case (a TOML file). The procedures' allowed target levels and "
                             "patient positions, checked on loading: " + "; ".join(
                                 f"{p}: {', '.join(levels)} ({' or '.join(PROCEDURE_POSITIONS[p])})"
                                 for p, levels in PROCEDURE_LEVELS.items()))
    return schema
