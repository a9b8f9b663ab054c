"""The report's SVG charts (streamer/analysis/report/svg.py): what each draws, where, and
that a long track does not make a long page."""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET

import numpy as np
import pandas as pd
from hypothesis import example, given, settings
from hypothesis import strategies as st

from streamer.analysis.report import svg
from streamer.analysis.report.svg import class_colors, distribution_svg, nice_ticks, timeline_svg

CLASSES = ["engaged", "bo<red>"]


def _faces(n: int, seconds: float) -> pd.DataFrame:
    t = np.linspace(0.0, seconds, n)
    engaged = np.full(n, 0.8)
    engaged[: n // 4] = np.nan  # not scored yet
    return pd.DataFrame({"time_s": t, "p_engaged": engaged, "p_bo<red>": 1.0 - engaged})


def _episodes(*rows: tuple[str, float, float]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["label", "onset_s", "offset_s"])


def _points(line: ET.Element) -> np.ndarray:
    return np.array([[float(v) for v in p.split(",")] for p in line.get("points", "").split()])


def test_a_timeline_draws_each_class_inside_the_plot_and_skips_unscored_frames():
    root = ET.fromstring(timeline_svg(_faces(200, 10.0), _episodes(), CLASSES, class_colors(CLASSES)))
    lines = root.findall("polyline")
    assert [ln.get("data-class") for ln in lines] == CLASSES
    assert lines[0].findtext("title") == "engaged"
    for ln in lines:
        pts = _points(ln)
        assert (pts[:, 0] >= svg.PLOT_X0 - 1e-6).all() and (pts[:, 0] <= svg.PLOT_X1 + 1e-6).all()
        assert (np.diff(pts[:, 0]) > 0).all()  # one point per pixel column, left to right
        # probability p sits at PLOT_Y1 - p * height: 0.8 and 0.2
        assert np.allclose(pts[:, 1], svg.PLOT_Y1 - float(ln.get("data-class") == "engaged") * 0.6 * 160 - 0.2 * 160)
        # the first quarter has no score: the line starts a quarter of the way in
        assert pts[0, 0] > svg.PLOT_X0 + 0.24 * (svg.PLOT_X1 - svg.PLOT_X0)


def test_a_long_track_is_drawn_at_one_point_per_pixel_column():
    faces = _faces(108_000, 3600.0)  # an hour at 30 fps
    page = timeline_svg(faces, _episodes(), CLASSES, class_colors(CLASSES))
    root = ET.fromstring(page)
    for ln in root.findall("polyline"):
        assert len(_points(ln)) <= svg.PLOT_X1 - svg.PLOT_X0 + 1
    assert len(page) < 60_000


def test_episodes_are_bars_of_their_class_at_their_times_with_names_escaped():
    colors = class_colors(CLASSES)
    text = timeline_svg(_faces(100, 10.0), _episodes(("bo<red>", 2.0, 4.0), ("engaged", 6.0, 9.0)), CLASSES, colors)
    assert "bo<red>" not in text and "bo&lt;red&gt;" in text
    root = ET.fromstring(text)
    bars = [r for r in root.findall("rect") if r.get("class") == "episode"]
    assert [b.get("fill") for b in bars] == [colors["bo<red>"], colors["engaged"]]
    assert bars[0].findtext("title") == "bo<red>: 2.00 s - 4.00 s"
    x = [float(b.get("x")) for b in bars]
    w = [float(b.get("width")) for b in bars]
    span = svg.PLOT_X1 - svg.PLOT_X0
    assert math.isclose(x[0], svg.PLOT_X0 + 0.2 * span, abs_tol=0.1) and math.isclose(w[1], 0.3 * span, abs_tol=0.2)


def test_a_distribution_has_a_bar_per_class_sized_by_its_share():
    root = ET.fromstring(distribution_svg({"engaged": 3, "bo<red>": 1, "none": 0}, class_colors(CLASSES), "all"))
    bars = root.findall("rect")
    assert [b.findtext("title") for b in bars] == ["engaged: 75.0 %", "bo<red>: 25.0 %", "none: 0.0 %"]
    widths = [float(b.get("width")) for b in bars]
    assert math.isclose(widths[0], 3 * widths[1], rel_tol=1e-3) and widths[2] == 0.0


def test_colours_match_matplotlib_palettes_so_notebook_and_report_agree():
    from matplotlib import colormaps
    from matplotlib.colors import to_hex

    for name, palette in (("tab10", svg.TAB10), ("tab20", svg.TAB20)):
        assert list(palette) == [to_hex(colormaps[name](i)) for i in range(len(palette))]
    assert class_colors([str(i) for i in range(12)])["1"] == svg.TAB20[1]


@settings(max_examples=500)
@example(lo=1.0, span=40001.0, most=3)  # 50000 apart would leave none inside
@given(st.floats(-1e4, 1e4), st.floats(1e-3, 1e5), st.integers(3, 12))
def test_ticks_are_round_evenly_spaced_and_inside_the_range(lo, span, most):
    ticks = nice_ticks(lo, lo + span, most)
    assert 1 <= len(ticks) <= most
    assert all(lo - 1e-6 * span <= t <= lo + span + 1e-6 * span for t in ticks)
    if len(ticks) > 1:
        steps = np.diff(ticks)
        assert np.allclose(steps, steps[0], rtol=1e-6)
        mantissa = steps[0] / 10 ** math.floor(math.log10(steps[0]))
        assert any(math.isclose(mantissa, m, rel_tol=1e-6) for m in (1, 2, 5, 10))
