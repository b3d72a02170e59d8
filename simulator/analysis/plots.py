"""The report's figures, drawn with matplotlib on the Agg canvas (no Qt, no display, no pyplot
state): placement success by procedure and guidance mode with Wilson intervals, LC-CUSUM
learning curves with the decision limit, and technique boxplots.

Every function takes a :class:`simulator.analysis.report.Report` and returns a
:class:`matplotlib.figure.Figure`; :func:`figure_png` turns one into PNG bytes.
"""

from __future__ import annotations

import io
import math

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

__all__ = ["figure_png", "learning_curve_figure", "success_rate_figure", "technique_figure"]

#: One colour per guidance mode (colour-blind safe: Okabe-Ito), others grey.
MODE_COLOURS = {"landmark": "#E69F00", "fluoroscopy": "#0072B2"}
_OTHER = "#777777"
_TRAINEE_COLOURS = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#000000")


def _figure(width_in: float, height_in: float) -> Figure:
    fig = Figure(figsize=(width_in, height_in), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _human(name: str) -> str:
    return name.replace("_", " ")


def _empty(ax, text: str = "no attempts") -> None:
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, color="#777777")
    ax.set_xticks([])
    ax.set_yticks([])


def figure_png(fig: Figure, dpi: int = 110) -> bytes:
    """The figure as PNG bytes."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    return buf.getvalue()


def success_rate_figure(report, measure: str = "success") -> Figure:
    """Rate of ``measure`` (default placement success) per procedure, one point per guidance mode,
    with the Wilson interval as error bars and the number of attempts under each point."""
    procs = list(report.procedures)
    modes = list(report.guidance_modes)
    fig = _figure(max(6.0, 1.3 * len(procs) + 2.0), 4.2)
    ax = fig.add_subplot()
    if not procs:
        _empty(ax)
        return fig
    width = 0.7 / max(1, len(modes))
    for j, mode in enumerate(modes):
        xs, ys, lo, hi, ns = [], [], [], [], []
        for i, proc in enumerate(procs):
            r = report.rate(proc, mode, measure)
            if r is None or r.n == 0:
                continue
            xs.append(i + (j - (len(modes) - 1) / 2) * width)
            ys.append(100 * r.proportion)
            lo.append(100 * (r.proportion - r.low))
            hi.append(100 * (r.high - r.proportion))
            ns.append(r.n)
        if not xs:
            continue
        colour = MODE_COLOURS.get(mode, _OTHER)
        ax.errorbar(xs, ys, yerr=[lo, hi], fmt="o", color=colour, ecolor=colour, capsize=4, markersize=7,
                    label=mode)
        for x, n in zip(xs, ns):
            ax.annotate(f"n={n}", (x, 0), xytext=(0, -2), textcoords="offset points", ha="center", va="top",
                        fontsize=7, color=colour)
    ax.set_xticks(range(len(procs)), [_human(p) for p in procs], rotation=20, ha="right", fontsize=8)
    ax.set_xlim(-0.6, len(procs) - 0.4)
    ax.set_ylim(-8, 105)
    ax.set_ylabel(f"{dict(_measures()).get(measure, measure)} (%)")
    ax.grid(axis="y", alpha=0.3)
    ax.legend(title="guidance", fontsize=8, title_fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0),
              frameon=False)
    ax.set_title(f"{dict(_measures()).get(measure, measure)} with {100 * report.confidence:g}% Wilson intervals",
                 fontsize=10)
    return fig


def _measures():
    from simulator.analysis.report import MEASURES

    return MEASURES


def learning_curve_figure(report) -> Figure:
    """One panel per procedure (and guidance mode): each trainee's LC-CUSUM score after each attempt,
    the decision limit h dashed, and a star where competence was declared."""
    groups: dict[tuple[str, str | None], list] = {}
    for c in report.curves:
        groups.setdefault((c.procedure, c.guidance), []).append(c)
    n = max(1, len(groups))
    cols = 1 if n == 1 else 2
    rows = math.ceil(n / cols)
    fig = _figure(8.0 if cols == 2 else 6.5, max(3.2, 2.9 * rows))
    axes = fig.subplots(rows, cols, squeeze=False)
    trainees = sorted({c.trainee for c in report.curves})
    colour = {t: _TRAINEE_COLOURS[i % len(_TRAINEE_COLOURS)] for i, t in enumerate(trainees)}
    for k, ax in enumerate(axes.flat):
        if not groups:
            _empty(ax, "no learning curves")
            continue
        if k >= len(groups):
            ax.set_visible(False)
            continue
        (proc, mode), curves = list(groups.items())[k]
        top = report.h
        for c in curves:
            xs = list(range(0, c.n + 1))
            ys = [0.0, *c.result.scores]
            top = max(top, *ys)
            ax.plot(xs, ys, color=colour[c.trainee], lw=1.5, marker="o", markersize=3, label=c.trainee)
            if c.competence_attempt is not None:
                ax.plot([c.competence_attempt], [c.result.scores[c.competence_attempt - 1]], marker="*",
                        markersize=12, color=colour[c.trainee], markeredgecolor="black", markeredgewidth=0.5)
        ax.axhline(report.h, ls="--", color="black", lw=1)
        ax.text(0.99, report.h, f"h = {report.h:g} ", transform=ax.get_yaxis_transform(), ha="right", va="bottom",
                fontsize=7)
        ax.set_ylim(0, top * 1.15 + 0.1)
        ax.set_xlim(0, max(c.n for c in curves) + 0.5)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("attempt", fontsize=8)
        ax.set_ylabel("LC-CUSUM score", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.set_title(_human(proc) + (f", {mode}" if mode else ""), fontsize=9)
        ax.legend(fontsize=7, loc="upper left")
    return fig


def technique_figure(report) -> Figure:
    """Boxplots of time, needle passes, fluoroscopy time and dose-area product per procedure and
    guidance mode (only the groups that have the figure)."""
    from simulator.analysis.report import TECHNIQUE_MEASURES

    measures = TECHNIQUE_MEASURES
    groups = [(p, g) for p in report.procedures for g in report.guidance_modes
              if any(r.procedure == p and r.guidance == g for r in report.rows)]
    cols = 2
    rows = math.ceil(len(measures) / cols)
    fig = _figure(max(8.0, 0.55 * len(groups) * cols + 2), 3.3 * rows)
    axes = fig.subplots(rows, cols, squeeze=False)
    for ax, m in zip(axes.flat, measures):
        data, labels, colours = [], [], []
        for p, g in groups:
            values = [getattr(r, m.id) for r in report.rows
                      if r.procedure == p and r.guidance == g and getattr(r, m.id) is not None]
            if values:
                data.append(values)
                labels.append(f"{_human(p)}\n{g}")
                colours.append(MODE_COLOURS.get(g, _OTHER))
        ax.set_title(f"{m.name} ({m.unit})", fontsize=9)
        if not data:
            _empty(ax, "no attempts with this figure")
            continue
        box = ax.boxplot(data, patch_artist=True, widths=0.6)
        for patch, c in zip(box["boxes"], colours):
            patch.set_facecolor(c)
            patch.set_alpha(0.55)
        for median in box["medians"]:
            median.set_color("black")
        ax.set_xticks(range(1, len(labels) + 1), labels, fontsize=6.5, rotation=30, ha="right")
        ax.tick_params(axis="y", labelsize=7)
        ax.grid(axis="y", alpha=0.3)
    for ax in list(axes.flat)[len(measures):]:
        ax.set_visible(False)
    return fig
