"""PNG plots of evaluation results (matplotlib, headless Agg backend)."""

import io
import math

import numpy as np

from tfcvr import atomic, optional

FEATURE = "Plotting (the leaderboard's plots/, trainer.evaluate's calibration.png)"


def require_matplotlib() -> None:
    """Fails early, before any work, when the plots a command must write cannot be drawn."""
    optional.require("matplotlib", FEATURE)


def available() -> bool:
    """Whether matplotlib is installed (the `plots` extra): the leaderboard draws its plots only then."""
    try:
        optional.require("matplotlib", FEATURE)
    except optional.MissingDependencyError:
        return False
    return True


def _pyplot():
    matplotlib = optional.require("matplotlib", FEATURE)
    matplotlib.use("Agg")
    from matplotlib import pyplot

    return pyplot


def _save(pyplot, figure, path: str, title: str = "") -> str:
    if title:
        figure.suptitle(title)
    figure.tight_layout()
    image = io.BytesIO()
    figure.savefig(image, format="png", dpi=110, bbox_inches="tight")  # "tight": a legend outside the panels
    pyplot.close(figure)
    atomic.write_file(path, image.getvalue())  # local or gs://, whole or not at all
    return path


# Ten colours by three line styles: 30 distinct lines, more than the registered methods, each told apart in print.
_COLOURS = [f"tab:{c}" for c in ("blue", "orange", "green", "red", "purple", "brown", "pink", "gray", "olive", "cyan")]
_LINE_STYLES = ("-", "--", "-.")
_MARKERS = ("o", "s", "^")


def line_styles(names) -> dict:
    """{name: matplotlib line keywords}, distinct for up to 30 names (then colours repeat with other styles)."""
    styles = {}
    for index, name in enumerate(names):
        style = (index // len(_COLOURS)) % len(_LINE_STYLES)
        styles[name] = {
            "color": _COLOURS[index % len(_COLOURS)],
            "linestyle": _LINE_STYLES[style],
            "marker": _MARKERS[style],
        }
    return styles


def _finite(values):
    return [v for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))]


def plot_calibration(curves: dict, path: str, title: str = "") -> str:
    """pCVR vs observed CVR (clicked impressions) per pCTR bucket, one line per model (`calibration_figure`)."""
    pyplot = _pyplot()
    return _save(pyplot, calibration_figure(pyplot, curves), path, title)


def calibration_figure(pyplot, curves: dict):
    """The calibration panels, one line style per model and the legend outside them (right of the figure).

    `curves`: {model: rows of `calibration.calibration_by_bucket`}. With
    ground truth in the rows, a second panel shows mean pCVR vs true CVR over
    all impressions of each bucket (where the unclicked ones count).
    """
    styles = line_styles(curves)
    with_truth = any("true_cvr_all" in row for rows in curves.values() for row in rows)
    figure, axes = pyplot.subplots(1, 2 if with_truth else 1, figsize=(12 if with_truth else 6.5, 4.5), squeeze=False)
    clicked, everything = axes[0][0], axes[0][-1]
    observed_drawn = False
    for name, rows in curves.items():
        centres = np.arange(len(rows))
        clicked.plot(centres, [r["mean_pcvr_clicked"] for r in rows], label=f"{name} pCVR", **styles[name])
        if not observed_drawn:
            clicked.plot(
                centres,
                [r["observed_cvr"] for r in rows],
                color="black",
                linestyle=":",
                marker="x",
                label="observed CVR (clicked)",
            )
            observed_drawn = True
        if with_truth:
            everything.plot(centres, [r["mean_pcvr_all"] for r in rows], **styles[name])
    if with_truth:
        first = next(iter(curves.values()))
        everything.plot(
            np.arange(len(first)),
            [r["true_cvr_all"] for r in first],
            color="black",
            linestyle=":",
            marker="x",
            label="true CVR (all impressions)",
        )
        everything.set_title("all impressions (ground truth)")
    clicked.set_title("clicked impressions")
    for axis in {id(clicked): clicked, id(everything): everything}.values():
        axis.set_xlabel("pCTR bucket (equal-frequency, low to high)")
        axis.set_ylabel("CVR")
    handles, labels = clicked.get_legend_handles_labels()
    if with_truth:
        handles += everything.get_lines()[-1:]
        labels += [everything.get_lines()[-1].get_label()]
    figure.legend(handles, labels, loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize=7, frameon=False)
    return figure


def plot_metric_bars(summary: dict, metrics: list, path: str, title: str = "") -> str:
    """One panel per metric: mean with a ±std error bar per model. `summary`: {model: {metric: (mean, std)}}."""
    pyplot = _pyplot()
    metrics = [m for m in metrics if any(m in values for values in summary.values())]
    columns = min(3, max(1, len(metrics)))
    rows = max(1, math.ceil(len(metrics) / columns))
    figure, axes = pyplot.subplots(rows, columns, figsize=(4.5 * columns, 3.2 * rows), squeeze=False)
    names = list(summary)
    for axis, metric in zip(axes.flat, metrics):
        means = [summary[n].get(metric, (float("nan"), 0.0))[0] for n in names]
        stds = [summary[n].get(metric, (float("nan"), 0.0))[1] for n in names]
        axis.bar(np.arange(len(names)), means, yerr=stds, capsize=3, color="tab:blue")
        finite = _finite([m - s for m, s in zip(means, stds)] + [m + s for m, s in zip(means, stds)])
        if finite and metric.endswith("auc"):
            low, high = min(finite), max(finite)
            margin = max(1e-3, 0.1 * (high - low))
            axis.set_ylim(low - margin, high + margin)
        axis.set_xticks(np.arange(len(names)))
        axis.set_xticklabels(names, rotation=45, ha="right", fontsize=8)
        axis.set_title(metric, fontsize=9)
    for axis in list(axes.flat)[len(metrics) :]:
        axis.axis("off")
    return _save(pyplot, figure, path, title)


def plot_bias(summary: dict, path: str, title: str = "") -> str:
    """Mean pCVR − true CVR on clicked and on unclicked impressions per model (needs ground truth)."""
    pyplot = _pyplot()
    names = list(summary)
    width = 0.38
    figure, axis = pyplot.subplots(figsize=(max(6, 0.9 * len(names) + 2), 4))
    for offset, (key, label) in zip(
        (-width / 2, width / 2), (("cvr_bias_clicked", "clicked"), ("cvr_bias_unclicked", "unclicked"))
    ):
        means = [summary[n].get(key, (float("nan"), 0.0))[0] for n in names]
        stds = [summary[n].get(key, (float("nan"), 0.0))[1] for n in names]
        axis.bar(np.arange(len(names)) + offset, means, width, yerr=stds, capsize=3, label=label)
    axis.axhline(0.0, color="black", linewidth=0.8)
    axis.set_xticks(np.arange(len(names)))
    axis.set_xticklabels(names, rotation=45, ha="right", fontsize=8)
    axis.set_ylabel("mean pCVR − true CVR")
    axis.legend()
    axis.set_title(title or "CVR bias by click status")
    return _save(pyplot, figure, path)
