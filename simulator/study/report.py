"""A simulated study's report: success and complication rates by procedure and guidance mode, the
difference guidance makes, and which patient factors drive failure.

Read back from the store (the attempts are ordinary attempts; the complications are those the
instructors' report finds, :data:`simulator.analysis.report.COMPLICATIONS`):

* per procedure x mode: placement success, any complication and pass (the scorecard's pass mark),
  each with its Wilson interval;
* per procedure, fluoroscopy minus landmark on the same patients: the paired difference in success
  (Newcombe's interval, exact McNemar test: every patient had both);
* per mode, a logistic model of failure (no successful placement) on BMI (per 5 kg/m2), age (per
  10 years), sex, the transitional vertebra, the sacral hiatus, the supraspinous ligament's end,
  scoliosis and degenerate interspaces, with the procedure as a factor
  (:func:`simulator.analysis.logistic.fit_logistic`: Firth's penalised likelihood when events are
  few or separated);
* the operator's parameters and the run's time.

Written as ``report.md`` (the README's table comes from it), ``report.html``, ``study.json`` and
``figure.png``.
"""

from __future__ import annotations

import html
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from simulator.analysis import stats
from simulator.analysis.logistic import LogisticFit, fit_logistic
from simulator.analysis.report import COMPLICATIONS, attempt_rows, format_p, format_percent
from simulator.errors import SpineSimError
from simulator.study.operators import skill
from simulator.study.runner import StudyPlan

#: Complications counted in "any complication" (a broken scoring rule is not a patient's harm).
HARMS = tuple(c.id for c in COMPLICATIONS if c.id != "hard_fail")
_TITLES = {"lumbar_interlaminar": "Lumbar interlaminar L4-L5", "cervical_interlaminar": "Cervical interlaminar C7-T1",
           "caudal": "Caudal", "lumbar_transforaminal": "Lumbar transforaminal L4-L5 right"}


@dataclass
class StudyReport:
    """What :func:`study_report` found (plain data: :meth:`as_dict` is ``study.json``)."""

    plan: dict
    skill: dict
    rows: list[dict]
    rates: list[dict]
    differences: list[dict]
    models: dict[str, Any]
    run: dict = field(default_factory=dict)

    def as_dict(self) -> dict:
        return {"plan": self.plan, "operator": self.skill, "rates": self.rates, "differences": self.differences,
                "models": self.models, "run": self.run, "rows": self.rows}


def study_rows(plan: StudyPlan, store) -> list[dict]:
    """One flat row per stored attempt of the study: the job, the outcome, the complications and
    the patient's factors."""
    actor = store.sign_in(plan.account)
    origins = store.origins(actor, f"study:{plan.key}:")
    by_id = {aid: origin for origin, aid in origins.items()}
    wanted = {plan.origin(p, m, i) for p, m, i in plan.jobs()}
    out = []
    for row in attempt_rows(store, actor):
        origin = by_id.get(row.attempt_id)
        if origin is None or origin not in wanted:
            continue
        _, _, procedure, mode, index = origin.split(":")
        patient = store.attempt_record(actor, row.attempt_id).header.get("patient") or {}
        harms = [c for c in HARMS if row.complications.get(c)]
        out.append({
            "procedure": procedure, "mode": mode, "patient": int(index), "attempt_id": row.attempt_id,
            "outcome": row.outcome, "success": row.success, "failure": not row.success, "passed": row.passed,
            "score": row.score, "complication": bool(harms), "complications": harms,
            "time_s": row.time_s, "images": row.images, "dap_gy_cm2": row.dap_gy_cm2,
            "sex": patient.get("sex"), "age_years": patient.get("age_years"), "bmi_kg_m2": patient.get("bmi_kg_m2"),
            "height_cm": patient.get("height_cm"), "transitional": patient.get("transitional"),
            "hiatus": patient.get("hiatus"), "supraspinous_ends_at": patient.get("supraspinous_ends_at"),
            "scoliosis": "yes" if (patient.get("scoliosis_deg") or 0.0) > 0 else "no",
            "degenerate": "yes" if patient.get("degenerate_levels") else "no",
        })
    out.sort(key=lambda r: (plan.procedures.index(r["procedure"]), plan.modes.index(r["mode"]), r["patient"]))
    return out


def study_report(plan: StudyPlan, store, run: dict | None = None, confidence: float = 0.95) -> StudyReport:
    """The study's report from what the store holds of it."""
    rows = study_rows(plan, store)
    if not rows:
        raise SpineSimError(f"study {plan.key}: no attempts stored yet (run it first)")
    rates = []
    for procedure in plan.procedures:
        for mode in plan.modes:
            sel = [r for r in rows if r["procedure"] == procedure and r["mode"] == mode]
            if not sel:
                continue
            entry = {"procedure": procedure, "mode": mode, "n": len(sel)}
            for measure in ("success", "complication", "passed"):
                k = sum(bool(r[measure]) for r in sel)
                w = stats.wilson_interval(k, len(sel), confidence)
                entry[measure] = {"count": k, "proportion": w.proportion, "low": w.low, "high": w.high}
            for harm in HARMS:
                entry.setdefault("by_complication", {})[harm] = sum(harm in r["complications"] for r in sel)
            rates.append(entry)
    differences = []
    if {"landmark", "fluoroscopy"} <= set(plan.modes):
        for procedure in plan.procedures:
            by_patient = {}
            for r in rows:
                if r["procedure"] == procedure:
                    by_patient.setdefault(r["patient"], {})[r["mode"]] = r["success"]
            pairs = [(v["fluoroscopy"], v["landmark"]) for v in by_patient.values() if len(v) == 2]
            if not pairs:
                continue
            d = stats.paired_difference(pairs, confidence)
            differences.append({"procedure": procedure, "measure": "success", "fluoroscopy_minus_landmark": d.difference,
                                "low": d.low, "high": d.high, "n_pairs": d.n_pairs,
                                "mcnemar_p_value": d.mcnemar_p_value,
                                "only_fluoroscopy_success": d.only_a_success, "only_landmark_success": d.only_b_success})
    models: dict[str, Any] = {}
    for mode in plan.modes:
        sel = [r for r in rows if r["mode"] == mode]
        categorical = {"sex": "female", "transitional": "none", "hiatus": "typical", "supraspinous_ends_at": "L4",
                       "scoliosis": "no", "degenerate": "no"}
        if len(plan.procedures) > 1:
            categorical = {"procedure": plan.procedures[0], **categorical}
        try:
            fit = fit_logistic(sel, "failure", numeric={"bmi_kg_m2": 5.0, "age_years": 10.0},
                               categorical=categorical, confidence=confidence)
            models[mode] = _fit_dict(fit)
        except SpineSimError as err:
            models[mode] = {"error": str(err)}
    return StudyReport(plan.as_dict(), skill(plan.skill).as_dict(), rows, rates, differences, models, dict(run or {}))


def _fit_dict(fit: LogisticFit) -> dict:
    return {"outcome": fit.outcome, "n": fit.n, "events": fit.events, "method": fit.method,
            "converged": fit.converged, "note": fit.note, "coefficients": fit.table()}


# ------------------------------------------------------------------------------------------ writing
def _rate(entry: dict) -> str:
    return f"{format_percent(entry['proportion'])} ({format_percent(entry['low'])}-{format_percent(entry['high'])})"


def markdown(report: StudyReport) -> str:
    """The report as Markdown: the rates table, the paired differences, the failure models and
    the operator's parameters."""
    plan = report.plan
    lines = [f"# Simulated study {plan['key']}", "",
             f"{plan['patients']} patients (seed {plan['seed']}), virtual operator `{plan['skill']}`, "
             f"technique {plan['technique_version']}, label volumes {plan['voxel_mm']:g} mm.", ""]
    if report.run:
        run = report.run
        median = (f"; median {run['median_attempt_s']:.2f} s per attempt, patient builds included"
                  if run.get("median_attempt_s") else "")
        lines += [f"Run: {run.get('attempts', 0)} attempts in {run.get('wall_s', 0) / 60:.1f} min on "
                  f"{run.get('workers', 1)} worker(s) ({run.get('attempts_per_s', 0):.2f} attempts/s{median}).", ""]
    lines += ["## Success and complications (95% Wilson intervals)", "",
              "| Procedure | Guidance | n | Placement success | Any complication | Passed |",
              "|---|---|---:|---|---|---|"]
    for e in report.rates:
        lines.append(f"| {_TITLES.get(e['procedure'], e['procedure'])} | {e['mode']} | {e['n']} | "
                     f"{_rate(e['success'])} | {_rate(e['complication'])} | {_rate(e['passed'])} |")
    if report.differences:
        lines += ["", "## Fluoroscopy minus landmark, same patients (paired)", "",
                  "| Procedure | Pairs | Difference in success (95% CI) | McNemar p |", "|---|---:|---|---:|"]
        for d in report.differences:
            lines.append(f"| {_TITLES.get(d['procedure'], d['procedure'])} | {d['n_pairs']} | "
                         f"{100 * d['fluoroscopy_minus_landmark']:+.1f} points ({100 * d['low']:+.1f} to "
                         f"{100 * d['high']:+.1f}) | {format_p(d['mcnemar_p_value'])} |")
    lines += ["", "## What drives failure (logistic model per guidance mode; odds ratios, 95% CI)", ""]
    for mode, model in report.models.items():
        if "error" in model:
            lines += [f"**{mode}**: {model['error']}", ""]
            continue
        lines += [f"**{mode}** ({model['n']} attempts, {model['events']} failures; {model['method']}"
                  + (f"; {model['note']}" if model["note"] else "") + ")", "",
                  "| Factor | Odds ratio (95% CI) | p |", "|---|---|---:|"]
        for c in model["coefficients"]:
            if c["name"] == "intercept":
                continue
            lines.append(f"| {c['name']} | {_num(c['odds_ratio'])} ({_num(c['or_low'])}-{_num(c['or_high'])}) | "
                         f"{format_p(c['p_value'])} |")
        lines.append("")
    lines += ["## The virtual operator's parameters (`assets/operators.toml`)", "",
              "| Parameter | Value |", "|---|---:|"]
    lines += [f"| {k} | {v} |" for k, v in report.skill.items() if k != "name"]
    return "\n".join(lines) + "\n"


def _num(x) -> str:
    if x is None:
        return "-"
    if x == float("inf"):
        return "inf"
    return f"{x:.2f}" if abs(x) < 100 else f"{x:.0f}"


def figure(report: StudyReport):
    """Success and any-complication rates per procedure, one point per mode, Wilson intervals."""
    from simulator.analysis.plots import MODE_COLOURS, _figure

    procs = list(dict.fromkeys(e["procedure"] for e in report.rates))
    modes = list(dict.fromkeys(e["mode"] for e in report.rates))
    fig = _figure(9.0, 3.8)
    for k, (measure, title) in enumerate((("success", "Placement success"), ("complication", "Any complication"))):
        ax = fig.add_subplot(1, 2, k + 1)
        for j, mode in enumerate(modes):
            xs, ys, lo, hi = [], [], [], []
            for i, proc in enumerate(procs):
                e = next((r for r in report.rates if r["procedure"] == proc and r["mode"] == mode), None)
                if e is None:
                    continue
                m = e[measure]
                xs.append(i + (j - (len(modes) - 1) / 2) * 0.3)
                ys.append(100 * m["proportion"])
                lo.append(100 * (m["proportion"] - m["low"]))
                hi.append(100 * (m["high"] - m["proportion"]))
            colour = MODE_COLOURS.get(mode, "#666666")
            ax.errorbar(xs, ys, yerr=[lo, hi], fmt="o" if mode == "fluoroscopy" else "s", color=colour,
                        capsize=3, markersize=6, label=mode)
        ax.set_xticks(range(len(procs)), [_TITLES.get(p, p).replace(" L4-L5 right", "").replace(" L4-L5", "")
                                          .replace(" C7-T1", "") for p in procs], rotation=20, ha="right", fontsize=8)
        ax.set_ylim(-3, 103)
        ax.set_ylabel(f"{title} (%)", fontsize=9)
        ax.grid(axis="y", alpha=0.3)
        ax.set_title(title, fontsize=10)
        if k == 0:  # one legend for both panels, in the title line (clear of the points)
            fig.legend(*ax.get_legend_handles_labels(), loc="upper right", ncol=2, fontsize=8, frameon=False)
    n = report.plan["patients"]
    fig.suptitle(f"{n} simulated patients, virtual operator '{report.plan['skill']}' (95% Wilson intervals)",
                 fontsize=10, x=0.02, ha="left")
    return fig


def write_study_report(report: StudyReport, out_dir: str | Path) -> dict[str, Path]:
    """Write ``report.md``, ``report.html``, ``study.json`` and ``figure.png`` into ``out_dir``."""
    from simulator.analysis.plots import figure_png

    out = Path(out_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise SpineSimError(f"{out}: cannot create the folder ({err.strerror})") from None
    text = markdown(report)
    paths = {"markdown": out / "report.md", "html": out / "report.html", "json": out / "study.json",
             "figure": out / "figure.png"}
    paths["markdown"].write_text(text, encoding="utf-8")
    paths["json"].write_text(json.dumps(report.as_dict(), indent=1, default=_json_default), encoding="utf-8")
    paths["figure"].write_bytes(figure_png(figure(report)))
    paths["html"].write_text(_html(text), encoding="utf-8")
    return paths


def _json_default(x):
    if isinstance(x, float) and x != x:
        return None
    return str(x)


def _html(markdown_text: str) -> str:
    """A plain HTML page of the Markdown report (its tables as tables), with the figure beside it."""
    body, table = [], []

    def flush():
        if table:
            rows = [r.strip("|").split("|") for r in table if not set(r) <= set("|-: ")]
            body.append("<table>" + "".join(
                "<tr>" + "".join(f"<{'th' if i == 0 else 'td'}>{html.escape(c.strip())}</{'th' if i == 0 else 'td'}>"
                                 for c in row) + "</tr>" for i, row in enumerate(rows)) + "</table>")
            table.clear()

    for line in markdown_text.splitlines():
        if line.startswith("|"):
            table.append(line)
            continue
        flush()
        if line.startswith("# "):
            body.append(f"<h1>{html.escape(line[2:])}</h1><img src='figure.png' alt='rates'>")
        elif line.startswith("## "):
            body.append(f"<h2>{html.escape(line[3:])}</h2>")
        elif line.strip():
            body.append(f"<p>{html.escape(line).replace('**', '')}</p>")
    flush()
    style = ("body{font-family:sans-serif;max-width:60em;margin:2em auto}table{border-collapse:collapse}"
             "td,th{border:1px solid #ccc;padding:.2em .5em}img{max-width:100%}")
    return f"<!doctype html><meta charset='utf-8'><title>SpineSim study</title><style>{style}</style>" + "".join(body)
