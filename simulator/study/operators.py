"""Virtual operators: the landmark and the image-guided technique, written down so it can be read
and criticised, performed through the trainee's own commands.

An operator is handed :class:`~simulator.study.senses.Hands` (landmark) or
:class:`~simulator.study.senses.Eyes` (fluoroscopy) and nothing else: every virtual attempt is an
ordinary recorded attempt (replayable in the app), and what the operator knows is only what those
senses give. How imperfect the hand and eye are is a :class:`Skill` (``assets/operators.toml``);
the random numbers come from the operator's own seed.

Landmark technique (domain reference section 3)
-----------------------------------------------
Lumbar interlaminar (3.2)
    The hands find the tops of both iliac crests on the flanks (the felt top lies above the bone
    by 0.57 mm per mm of soft tissue, plus the hands' error: Pysyk 2010); the intercristal line
    joins them. The midline is found by feeling for the spinous processes across the back at that
    height; then the fingers walk down the midline every 5 mm, telling the spinous processes
    (shallow bone) from the gaps between them. The gap at or just below the line is taken as
    L4-L5 and the target's gap counted from it. Entry in the gap's middle (placed with the
    palpation error, which grows with the fat over the bone), the needle straight forward with a
    10 degree cephalad tilt (with the hand's angle error); through skin and fat in 5 mm steps to
    25 mm short of the expected depth (Ravi 2011's line on BMI, misjudged by the operator's depth
    error), then saline loss-of-resistance tests every ``lor_step_mm``; a loss short of the
    expected depth by more than ``early_loss_mm`` is not trusted. Bone: back to the skin, walk 5
    degrees up (then down) and in again. Aspirate: blood, back 1 mm and again; CSF: stop. The
    drug, and finish.
Cervical interlaminar (3.3)
    Down the midline from the top of the neck for the vertebra prominens (taken as C7); the next
    gap below it is C7-T1 (the target's gap counted from it), entered 2.5 mm to the right of the
    midline (fused flavum, Lirk 2003), straight forward; expected depth by sex (Han 2003); the
    same loss-of-resistance technique.
Caudal (3.1)
    Up the midline from the coccyx: the coccyx, then the hiatus (where the finger sinks: bone felt
    8 mm deeper than on the sacrum, or none), then the shallow sacrum; the apex is the top of the
    hiatus (no coccyx felt: the hiatus lies just below where the sacrum is first felt). Entry at the
    hiatus's lower end, aimed 6 mm under the felt apex and 5 mm above it (cephalad, shallow);
    bone before the ligament: back 3 mm and 8 degrees steeper; through the sacrococcygeal ligament
    (its firm feel, then the pop), the hub lowered by 8 degrees and 15 mm up the canal; bone in the
    canal: back 2 mm, 3 degrees flatter. Aspirate; the drug.
Lumbar transforaminal (3.4, done blind as a paravertebral block)
    The level as for the interlaminar; entry 35 mm to the side and 15 mm above the gap (the upper
    vertebra's transverse process), 10 degrees medial; onto the transverse process, then back 10 mm,
    12 degrees caudal and 15 mm past the bone's depth (walking off its lower edge, into the
    foramen's outer part). Paraesthesia: back 2 mm. Aspirate; the drug.

Image-guided technique
----------------------
The same needle handling, with the fluoroscopic views of section 3 and the images read as a reader
reads them (bone landmarks' projections, the needle's tip, the endplates, the contrast pattern,
each with the reading error): AP with the target endplate squared (re-tilted until it reads
square within 2 degrees), the procedure's second view (lateral; for the transforaminal, also the
ipsilateral oblique), the target placed in depth from the two views; a bone-free line planned
down the beam from the planning views (what the trajectory view shows), aimed against the
needle's known drift; in to 16 mm short (interlaminar) or to a check point, then a check image
pair: the tip read and the line re-aimed (``corrections`` times at most); the last stretch (loss
of resistance for the epidurals); contrast (live for the caudal and transforaminal), its pattern
read and reported; on a vascular, intrathecal or subdural pattern the needle is moved a little
and contrast given again (twice at most), on a soft-tissue pattern advanced 1 mm with a saline
test; the drugs; finish. The ``reference`` skill level (no error) reproduces
:func:`simulator.simulation.reference.run_reference`'s placement on the default patients.
"""

from __future__ import annotations

import numpy as np

from simulator.study.hand import PROCEDURES, Operator
from simulator.study.image_guided import ImageGuidedOperator
from simulator.study.landmark import LandmarkOperator
from simulator.study.senses import Eyes, Hands
from simulator.study.skills import OPERATORS_SOURCE, Skill, parse_skill_levels, skill, skill_levels

__all__ = ["PROCEDURES", "MODES", "TECHNIQUE_VERSION", "Operator", "LandmarkOperator", "ImageGuidedOperator",
           "Skill", "skill", "skill_levels", "parse_skill_levels", "OPERATORS_SOURCE", "operate"]

#: Bumped whenever an operator's technique changes (so a study's rows say which technique ran).
TECHNIQUE_VERSION = "operators-1"
MODES = ("landmark", "fluoroscopy")


def operate(sim, skill_level: str | Skill = "intermediate", seed: int = 0) -> None:
    """Perform ``sim``'s case as a virtual operator of ``skill_level`` whose own random numbers
    come from ``seed``: the landmark technique in a landmark case, the image-guided one under
    fluoroscopy. The attempt is finished (and recorded wherever ``sim`` records)."""
    level = skill(skill_level) if isinstance(skill_level, str) else skill_level
    rng = np.random.default_rng(np.random.SeedSequence(int(seed), spawn_key=(0x0BE7,)))
    if sim.guidance == "fluoroscopy":
        eyes = Eyes(sim, level.reading_sd_mm, level.tilt_reading_sd_deg, level.pattern_misread, rng)
        ImageGuidedOperator(eyes, level, rng).run()
    else:
        LandmarkOperator(Hands(sim), level, rng).run()
