"""bench.chart: benchmark curves as standalone SVG."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from bench.chart import HEIGHT, LEFT, TOP, WIDTH, Series, line_chart, nice_ticks

pytestmark = pytest.mark.unit
SVG = "{http://www.w3.org/2000/svg}"


@pytest.mark.parametrize(
    ("top", "ticks"),
    [
        (437.0, [0, 100, 200, 300, 400, 500]),
        (50_000.0, [0, 10_000, 20_000, 30_000, 40_000, 50_000]),
        (600.0, [0, 200, 400, 600]),
        (0.7, [0, 0.2, 0.4, 0.6000000000000001, 0.8]),
        (0.0, [0, 1]),
    ],
)
def test_ticks_are_round_and_reach_the_top(top: float, ticks: list[float]) -> None:
    assert nice_ticks(top) == pytest.approx(ticks)


def test_a_chart_is_one_svg_document_with_a_line_per_series_scaled_to_the_axes() -> None:
    stored = Series("stored <alerts> & more", [(0.0, 0.0), (200.0, 25_000.0), (437.0, 49_925.0)])
    pace = Series("goal", [(0.0, 0.0), (600.0, 50_000.0)], dashed=True)
    document = line_chart([stored, pace], title="a & b", x_label="s", y_label="alerts")
    svg = ET.fromstring(document)  # noqa: S314 - our own output, not untrusted input
    assert (svg.get("width"), svg.get("height")) == (str(WIDTH), str(HEIGHT))
    first, second = svg.findall(f"{SVG}polyline")
    points = [tuple(map(float, p.split(","))) for p in str(first.get("points")).split()]
    assert len(points) == 3
    assert points[0] == (LEFT, HEIGHT - 56)  # the origin is the plot's bottom-left corner
    assert points[2][0] < WIDTH - 24  # 437 s on an axis that runs to 600 s
    last = [tuple(map(float, p.split(","))) for p in str(second.get("points")).split()][-1]
    assert last == (WIDTH - 24, TOP)  # the goal ends at both maxima
    assert second.get("stroke-dasharray")
    assert not first.get("stroke-dasharray")
    texts = [t.text for t in svg.iter(f"{SVG}text")]
    assert "a & b" in texts  # escaped on the way in, so the document parses
    assert "stored <alerts> & more" in texts
