from tfcvr import models
from tfcvr.metrics import plots


def _curves(names, with_truth=True):
    rows = []
    for bucket in range(5):
        row = {"mean_pcvr_clicked": 0.1 + 0.01 * bucket, "observed_cvr": 0.1, "mean_pcvr_all": 0.05}
        if with_truth:
            row["true_cvr_all"] = 0.06
        rows.append(row)
    return {name: rows for name in names}


def test_every_registered_method_gets_its_own_line_style_and_the_legend_sits_outside_the_panels(tmp_path):
    pyplot = plots._pyplot()
    names = models.names()  # every registered name at once, as a leaderboard of all of them plots them
    figure = plots.calibration_figure(pyplot, _curves(names))
    clicked, everything = figure.axes
    method_lines = [line for line in clicked.get_lines() if line.get_label().endswith(" pCVR")]
    assert len(method_lines) == len(names)
    looks = {(line.get_color(), line.get_linestyle(), line.get_marker()) for line in method_lines}
    assert len(looks) == len(names)  # no two methods drawn alike
    (legend,) = figure.legends
    assert len(legend.get_texts()) == len(names) + 2  # every method, the observed and the true CVR
    figure.canvas.draw()
    panels_right = max(axis.get_window_extent().x1 for axis in (clicked, everything))
    assert legend.get_window_extent().x0 >= panels_right  # nothing of the legend covers a curve
    pyplot.close(figure)
    path = plots.plot_calibration(_curves(names), str(tmp_path / "calibration.png"))
    assert (tmp_path / "calibration.png").stat().st_size > 0 and path.endswith("calibration.png")


def test_line_styles_are_distinct_for_thirty_names():
    styles = plots.line_styles([f"m{i}" for i in range(30)])
    assert len({tuple(sorted(s.items())) for s in styles.values()}) == 30
    # The eleventh name reuses the first colour with another line style and marker.
    assert styles["m0"]["color"] == styles["m10"]["color"] and styles["m0"]["linestyle"] != styles["m10"]["linestyle"]
