"""Simulated studies: virtual operators on a seeded population, stored like any attempt.

A study is fixed by its :class:`StudyPlan` (procedures, guidance modes, number of patients, seed,
skill level, voxel size). Its work is one task per patient: the patient's regions are built once
(the lumbar one serves both lumbar procedures) and each procedure is done in each mode by the
virtual operator (:mod:`simulator.study.operators`). A task's result is a list of whole attempts
(header, commands, events, scorecard) that the parent stores in one transaction, each with the
origin ``study:<key>:<procedure>:<mode>:<patient index>``.

Reproducible by construction: patient ``i`` comes from ``(seed, i)`` alone
(:func:`~simulator.study.population.draw_patient`), the operator's random numbers from ``(seed, i,
procedure, mode)``, the simulation's from the patient; nothing depends on which worker ran a task,
in which order tasks finished or how many ran before. So 1 and N workers give the same attempts, a
study stopped and started again skips the origins it finds stored and ends with the same attempts
as one run straight through, and growing a study (more patients) keeps what was done.

Workers: local processes (``workers``), or a Dask cluster (``scheduler``: an existing
``distributed`` scheduler's address; the workers need SpineSim installed).
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import time
import tomllib
from dataclasses import asdict, dataclass, field
from typing import Callable, Iterable

import numpy as np
import tomli_w

from simulator.errors import SpineSimError
from simulator.study.operators import MODES, PROCEDURES, TECHNIQUE_VERSION, operate, skill

#: The built-in scenario each procedure and mode starts from (its level, side, needle, limits and
#: region); the patient is replaced by the study's.
BASE_SCENARIOS = {
    ("lumbar_interlaminar", "landmark"): "lumbar_interlaminar_l4l5_landmark",
    ("lumbar_interlaminar", "fluoroscopy"): "lumbar_interlaminar_l4l5_fluoroscopy",
    ("cervical_interlaminar", "landmark"): "cervical_interlaminar_c7t1_landmark",
    ("cervical_interlaminar", "fluoroscopy"): "cervical_interlaminar_c7t1_fluoroscopy",
    ("caudal", "landmark"): "caudal_landmark",
    ("caudal", "fluoroscopy"): "caudal_fluoroscopy",
    ("lumbar_transforaminal", "landmark"): "lumbar_transforaminal_l4l5_right_landmark",
    ("lumbar_transforaminal", "fluoroscopy"): "lumbar_transforaminal_l4l5_right_fluoroscopy",
}
#: Studies build coarser label volumes than the scenarios (1 mm): the needle, palpation and scoring
#: use the anatomy's exact geometry at any voxel size; the voxels make only the images (which the
#: virtual operator reads through landmarks, not pixels), the contrast spread and the danger
#: distances. 2 mm builds a region ~6x faster.
STUDY_VOXEL_MM = 2.0
#: The virtual operator's images, pixels a side (kept in no file: a replay renders its own).
STUDY_IMAGE_PX = 128
#: How long to wait for a Dask scheduler to answer, seconds.
SCHEDULER_TIMEOUT_S = 20.0


@dataclass(frozen=True)
class StudyPlan:
    """What a study runs.

    Attributes
    ----------
    procedures, modes : tuple of str
    patients : int
        Patients ``0 .. patients - 1`` of the seeded population.
    seed : int
    skill : str
        The virtual operator's skill level (``assets/operators.toml``).
    voxel_mm : float
    image_size_px : int
    """

    procedures: tuple[str, ...]
    modes: tuple[str, ...]
    patients: int
    seed: int
    skill: str = "intermediate"
    voxel_mm: float = STUDY_VOXEL_MM
    image_size_px: int = STUDY_IMAGE_PX

    def __post_init__(self):
        for p in self.procedures:
            if p not in PROCEDURES:
                raise SpineSimError(f"study: procedures: '{p}' is not one the virtual operators perform "
                                    f"({', '.join(PROCEDURES)})")
        for m in self.modes:
            if m not in MODES:
                raise SpineSimError(f"study: modes: '{m}' must be landmark or fluoroscopy")
        if not self.procedures or not self.modes:
            raise SpineSimError("study: procedures and modes: name at least one of each")
        if isinstance(self.patients, bool) or not isinstance(self.patients, int) or self.patients < 1:
            raise SpineSimError(f"study: patients: must be a whole number >= 1 (got {self.patients!r})")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise SpineSimError(f"study: seed: must be a whole number >= 0 (got {self.seed!r})")
        skill(self.skill)
        if not (0.3 <= self.voxel_mm <= 4.0):
            raise SpineSimError(f"study: voxel_mm: {self.voxel_mm} is outside 0.3-4 mm")

    @property
    def key(self) -> str:
        """The study's name in the store: everything that makes an attempt what it is (not the
        number of patients, nor which procedures: a grown study keeps what was done)."""
        from simulator.anatomy.patient import GENERATOR_VERSION
        from simulator.study.population import DRAW_VERSION, population_table

        ident = [self.seed, self.skill, skill(self.skill).as_dict(), self.voxel_mm, self.image_size_px,
                 TECHNIQUE_VERSION, DRAW_VERSION, GENERATOR_VERSION, population_table().digest]
        return hashlib.sha256(json.dumps(ident, sort_keys=True).encode()).hexdigest()[:12]

    @property
    def account(self) -> str:
        """The virtual operator's account: one per skill level, the same in both modes (so the
        modes pair on each patient)."""
        return f"virtual-{self.skill}"

    def origin(self, procedure: str, mode: str, index: int) -> str:
        return f"study:{self.key}:{procedure}:{mode}:{index}"

    def jobs(self) -> list[tuple[str, str, int]]:
        return [(p, m, i) for i in range(self.patients) for p in self.procedures for m in self.modes]

    def as_dict(self) -> dict:
        return {**asdict(self), "key": self.key, "technique_version": TECHNIQUE_VERSION}


def operator_seed(seed: int, index: int, procedure: str, mode: str) -> int:
    """The operator's own seed for one attempt: from the study seed, patient, procedure and mode."""
    words = [int.from_bytes(hashlib.sha256(s.encode()).digest()[:4], "little") for s in (procedure, mode)]
    return int(np.random.SeedSequence(seed, spawn_key=(index, *words)).generate_state(1, np.uint32)[0])


def study_scenario_text(base_text: str, patient: dict, voxel_mm: float) -> str:
    """A base scenario's TOML with the study's patient and voxel size."""
    data = tomllib.loads(base_text)
    data["patient"] = patient
    data.setdefault("anatomy", {})["voxel_mm"] = float(voxel_mm)
    return tomli_w.dumps(data)


def _patient_table(draw) -> dict:
    p = draw.parameters()
    return {"seed": int(p.seed), "sex": p.sex, "age_years": round(float(p.age_years), 3),
            "height_cm": round(float(p.height_cm), 3), "bmi_kg_m2": round(float(p.bmi_kg_m2), 3),
            "scoliosis_deg": round(float(p.scoliosis_deg), 3), "supraspinous_ends_at": p.supraspinous_ends_at,
            "transitional": p.transitional, "hiatus": p.hiatus, "degenerate_levels": list(p.degenerate_levels)}


def _command_lines(timed_commands) -> list[dict]:
    """Commands as the attempt record's lines."""
    return [{"t_s": c.t_s, **c.command.as_dict()} for c in timed_commands]


def _digest(command_lines: list[dict]) -> str:
    """A short fingerprint of an attempt's commands (what the study's reproducibility compares)."""
    return hashlib.sha256(json.dumps(command_lines, sort_keys=True).encode()).hexdigest()[:16]


def run_patient(plan: dict, index: int) -> list[dict]:
    """Every attempt of one patient (a worker's task; plain data in and out).

    Parameters
    ----------
    plan : dict
        :meth:`StudyPlan.as_dict` (without ``key`` and ``technique_version``, or with them).
    index : int
        The patient's index.

    Returns
    -------
    list of dict
        One per (procedure, mode): ``origin``, ``header``, ``commands`` (the record's line dicts),
        ``events`` ((kind, t_s, data)), ``scorecard``, ``summary`` (the study's row) and
        ``seconds``.
    """
    from simulator.anatomy.anatomy import build_anatomy
    from simulator.scenario.loader import load_scenario, parse_scenario
    from simulator.simulation.simulation import Simulation
    from simulator.study.population import draw_patient

    fields_ = {k: v for k, v in plan.items() if k in StudyPlan.__dataclass_fields__}
    fields_["procedures"], fields_["modes"] = tuple(fields_["procedures"]), tuple(fields_["modes"])
    study = StudyPlan(**fields_)
    draw = draw_patient(study.seed, index)
    patient = _patient_table(draw)
    anatomies = {}
    out = []
    for procedure in study.procedures:
        for mode in study.modes:
            t0 = time.perf_counter()
            base = load_scenario(BASE_SCENARIOS[(procedure, mode)])
            origin = study.origin(procedure, mode, index)
            loaded = parse_scenario(study_scenario_text(base.text, patient, study.voxel_mm), origin)
            sc = loaded.scenario
            region = tuple(sc.anatomy.levels) if sc.anatomy.levels else None
            if region not in anatomies:
                # one patient, one set of landmarks (the phantom is analytic: the same in every region)
                shared = next(iter(anatomies.values())).landmarks if anatomies else None
                anatomies[region] = build_anatomy(sc.patient.parameters(), voxel_mm=study.voxel_mm, levels=region,
                                                  use_cache=False, landmarks=shared)
            sim = Simulation(loaded, anatomy=anatomies[region], image_size_px=study.image_size_px)
            seed = operator_seed(study.seed, index, procedure, mode)
            try:
                operate(sim, study.skill, seed)
            except SpineSimError as err:
                raise SpineSimError(f"{origin}: {err}") from None
            except Exception as err:  # a fault of the operator: name the attempt (the study resumes from here)
                first_line = str(err).splitlines()[0] if str(err) else ""
                raise SpineSimError(f"{origin}: the virtual operator failed ({err.__class__.__name__}: "
                                    f"{first_line})") from err
            card = sim.scorecard.as_dict()
            commands = _command_lines(sim.commands)
            digest = _digest(commands)
            placement = card.get("placement") or {}
            summary = {"procedure": procedure, "mode": mode, "patient": index, "operator_seed": seed,
                       "outcome": placement.get("outcome"), "passed": bool(card.get("passed")),
                       "score": card.get("score"), "commands": len(commands), "commands_sha256": digest,
                       "tip_mm": [round(float(v), 2) for v in sim.needle.tip_mm] if sim.needle.inserted else None,
                       **{k: patient[k] for k in ("sex", "age_years", "height_cm", "bmi_kg_m2", "scoliosis_deg",
                                                  "supraspinous_ends_at", "transitional", "hiatus")},
                       "degenerate_levels": len(patient["degenerate_levels"])}
            out.append({"origin": origin, "header": sim.header, "commands": commands,
                        "events": [(e.kind, float(e.t_s), dict(e.data)) for e in sim.events],
                        "scorecard": card, "summary": summary, "seconds": time.perf_counter() - t0})
    return out


@dataclass
class StudyRun:
    """What :func:`run_study` did."""

    plan: StudyPlan
    done_before: int = 0
    stored: int = 0
    seconds: float = 0.0
    attempt_seconds: list[float] = field(default_factory=list)


def pending_patients(plan: StudyPlan, stored: Iterable[str]) -> list[int]:
    """The patients with at least one attempt not yet stored."""
    have = set(stored)
    return [i for i in range(plan.patients)
            if any(plan.origin(p, m, i) not in have for p in plan.procedures for m in plan.modes)]


def run_study(plan: StudyPlan, store, workers: int = 1, scheduler: str | None = None,
              progress: Callable[[str], None] | None = None, stop_after: int | None = None) -> StudyRun:
    """Run the study's missing attempts and store them.

    Parameters
    ----------
    plan : StudyPlan
    store : simulator.records.store.Store
    workers : int
        Local worker processes (1: in this process). Ignored with ``scheduler``.
    scheduler : str, optional
        A Dask ``distributed`` scheduler's address (``tcp://host:8786``).
    progress : callable, optional
        Called with one line of progress now and then.
    stop_after : int, optional
        Stop after storing this many patients (an interrupted study, for tests and for running a
        big study in sittings).
    """
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise SpineSimError(f"study: workers: must be a whole number >= 1 (got {workers!r})")
    actor = store.sign_in(plan.account, f"Virtual operator ({plan.skill})")
    stored = store.origins(actor, f"study:{plan.key}:")
    todo = pending_patients(plan, stored)
    run = StudyRun(plan, done_before=len(stored))
    t0 = time.perf_counter()
    say = progress or (lambda line: None)
    say(f"study {plan.key}: {len(todo)} of {plan.patients} patients to do "
        f"({len(plan.procedures)} procedures x {len(plan.modes)} modes each)")
    plan_dict = plan.as_dict()
    finished = 0

    def keep(results: list[dict]) -> None:
        nonlocal finished
        missing = [r for r in results if r["origin"] not in stored]
        store.put_finished_attempts(actor, missing)
        run.stored += len(missing)
        run.attempt_seconds.extend(r["seconds"] for r in results)
        finished += 1
        if finished % max(1, len(todo) // 20) == 0 or finished == len(todo):
            rate = run.stored / max(time.perf_counter() - t0, 1e-9)
            say(f"  {finished}/{len(todo)} patients, {run.stored} attempts stored, {rate:.2f} attempts/s")

    def stop() -> bool:
        return stop_after is not None and finished >= stop_after

    if scheduler:
        _run_dask(scheduler, plan_dict, todo, keep, stop)
    elif workers == 1:
        for index in todo:
            keep(run_patient(plan_dict, index))
            if stop():
                break
    else:
        _run_processes(workers, plan_dict, todo, keep, stop)
    run.seconds = time.perf_counter() - t0
    return run


def _share_cores(threads: int) -> None:
    """A worker process's start: its compiled kernels take its share of the cores, not all of them
    (two workers each running every core's worth of threads spent a fifth of the time switching).
    The kernels split their work by rows, so the thread count never changes a result."""
    import numba

    numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))


def _run_processes(workers: int, plan_dict: dict, todo: list[int], keep, stop) -> None:
    import multiprocessing
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

    # spawn, not fork: the parent holds a database connection and compiled-code threads
    threads = max(1, (os.cpu_count() or 1) // workers)
    with ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn"),
                             initializer=_share_cores, initargs=(threads,)) as pool:
        queue = list(todo)
        running = set()
        while queue or running:
            while queue and len(running) < 2 * workers and not stop():
                running.add(pool.submit(run_patient, plan_dict, queue.pop(0)))
            if not running:
                break
            done, running = wait(running, return_when=FIRST_COMPLETED)
            for future in done:
                keep(future.result())
            if stop():
                for future in running:
                    future.cancel()
                break


def _run_dask(address: str, plan_dict: dict, todo: list[int], keep, stop) -> None:
    try:
        from distributed import Client, as_completed
    except ImportError:
        raise SpineSimError("study: --scheduler needs Dask's distributed package "
                            "(pip install 'spinesim[cluster]')") from None
    try:
        client = Client(address, timeout=f"{SCHEDULER_TIMEOUT_S}s")
    except (OSError, TimeoutError) as err:
        raise SpineSimError(f"study: scheduler {address}: cannot connect ({err})") from None
    with client:
        futures = client.map(run_patient, [plan_dict] * len(todo), todo, pure=False)
        for future in as_completed(futures):
            keep(future.result())
            if stop():
                client.cancel(futures)
                break


def study_summaries(plan: StudyPlan, store) -> list[dict]:
    """The study's rows, read back from the store (one per attempt, in job order): what the
    tests compare and the report reads."""
    actor = store.sign_in(plan.account)
    origins = store.origins(actor, f"study:{plan.key}:")
    out = []
    for procedure, mode, index in plan.jobs():
        attempt_id = origins.get(plan.origin(procedure, mode, index))
        if attempt_id is None:
            continue
        record = store.attempt_record(actor, attempt_id)
        card = store.scorecard(actor, attempt_id) or {}
        commands = _command_lines(record.commands)
        out.append({"procedure": procedure, "mode": mode, "patient": index, "attempt_id": attempt_id,
                    "outcome": (card.get("placement") or {}).get("outcome"), "passed": bool(card.get("passed")),
                    "score": card.get("score"),
                    "commands_sha256": _digest(commands)})
    return out


def default_workers() -> int:
    """All local cores."""
    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1))


def print_progress(line: str) -> None:
    print(line, file=sys.stderr, flush=True)
