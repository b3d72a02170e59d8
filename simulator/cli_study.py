"""The command line's ``study`` command: virtual operators on a seeded population
(:mod:`simulator.study`), stored in the attempt store, and the study's report."""

from __future__ import annotations

import statistics
import time
from pathlib import Path

from simulator.errors import SpineSimError


def add_parser(sub) -> None:
    from simulator.study.operators import MODES, PROCEDURES
    from simulator.study.runner import STUDY_VOXEL_MM

    st = sub.add_parser("study", help="run virtual operators on a seeded population and report (resumes where "
                        "it stopped)")
    st.add_argument("--procedures", default=",".join(PROCEDURES),
                    help=f"comma-separated (default all: {','.join(PROCEDURES)})")
    st.add_argument("--modes", default=",".join(MODES), help="landmark, fluoroscopy or both (default both)")
    st.add_argument("--patients", type=int, required=True, help="how many patients of the population")
    st.add_argument("--seed", type=int, default=0, help="the population's and the operators' seed (default 0)")
    st.add_argument("--skill", default="intermediate", help="the operators' skill level in assets/operators.toml "
                    "(reference, expert, intermediate, novice; default intermediate)")
    st.add_argument("--workers", type=int, default=None, help="local worker processes (default: every core)")
    st.add_argument("--scheduler", help="run on a Dask cluster: the distributed scheduler's address "
                    "(tcp://HOST:8786); its workers need SpineSim installed")
    st.add_argument("--voxel-mm", type=float, default=STUDY_VOXEL_MM,
                    help=f"label volume voxel size (default {STUDY_VOXEL_MM:g}; the needle's physics are exact at "
                    "any size)")
    st.add_argument("--out", help="folder for report.md, report.html, study.json and figure.png "
                    "(default: ./spinesim-study-<key>)")
    st.add_argument("--report-only", action="store_true", help="write the report of what is stored; run nothing")


def cmd_study(args) -> int:
    from simulator.records.store import Store
    from simulator.study.report import study_report, write_study_report
    from simulator.study.runner import StudyPlan, default_workers, print_progress, run_study

    def names(value: str, what: str) -> tuple[str, ...]:
        out = tuple(v.strip() for v in str(value).split(",") if v.strip())
        if not out:
            raise SpineSimError(f"--{what}: name at least one")
        return out

    plan = StudyPlan(names(args.procedures, "procedures"), names(args.modes, "modes"), args.patients, args.seed,
                     args.skill, args.voxel_mm)
    workers = args.workers if args.workers is not None else default_workers()
    out = Path(args.out or f"spinesim-study-{plan.key}")
    with Store.open(None) as store:
        run_info = {}
        if not args.report_only:
            t0 = time.perf_counter()
            run = run_study(plan, store, workers=workers, scheduler=args.scheduler, progress=print_progress)
            wall = time.perf_counter() - t0
            run_info = {"attempts": run.stored, "done_before": run.done_before, "wall_s": round(wall, 1),
                        "workers": "dask" if args.scheduler else workers,
                        "attempts_per_s": round(run.stored / wall, 3) if wall > 0 else 0.0,
                        "median_attempt_s": round(statistics.median(run.attempt_seconds), 3)
                        if run.attempt_seconds else 0.0}
        report = study_report(plan, store, run_info)
        paths = write_study_report(report, out)
    print(f"study {plan.key}: {len(report.rows)} attempts; report in {paths['markdown']} and {paths['html']}")
    return 0
