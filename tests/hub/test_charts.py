"""The bar-chart geometry both apps' SVG charts stand on: tick steps, scale and bar placement."""

from __future__ import annotations

from itertools import pairwise

import pytest

from hub.lib.charts import BarPlot, Tick, tick_step


@pytest.mark.parametrize(
    ("peak", "step"),
    [
        (0, 1),
        (1, 1),
        (5, 1),
        (6, 2),
        (10, 2),
        (11, 5),
        (25, 5),
        (26, 10),
        (50, 10),
        (51, 20),
        (101, 50),
        (251, 100),
        (12_345, 5_000),
    ],
)
def test_the_tick_step_is_the_smallest_round_step_with_at_most_five_intervals(
    peak: int, step: int
) -> None:
    assert tick_step(peak) == step


def test_every_peak_gets_a_one_two_five_step_and_two_to_five_intervals() -> None:
    for peak in range(1, 5_001):
        plot = BarPlot(bands=1, peak=peak)
        assert str(plot.step).strip("0") in {"1", "2", "5"}
        assert plot.peak <= plot.top_value <= plot.peak + plot.step - 1
        assert 1 <= len(plot.ticks) - 1 <= 5


def test_the_tick_step_takes_another_number_of_intervals() -> None:
    assert tick_step(10, most=10) == 1
    assert tick_step(11, most=10) == 2


def test_the_default_plot_is_760_by_260_less_its_margins() -> None:
    plot = BarPlot(bands=30, peak=3)
    assert (plot.plot_width, plot.plot_height) == (704, 212)
    assert plot.baseline == 224


def test_values_scale_to_heights_up_to_a_round_top_tick() -> None:
    plot = BarPlot(bands=12, peak=11, height=240)
    # 11 rounds up to 15 in steps of 5; 192 units of height make 12.8 per unit of value.
    assert (plot.step, plot.top_value) == (5, 15)
    assert plot.scale == pytest.approx(12.8)
    assert plot.span(11) == pytest.approx(140.8)
    assert plot.ticks == [Tick(0, 204), Tick(5, 140), Tick(10, 76), Tick(15, 12)]
    assert plot.ticks[0].y == plot.baseline
    assert plot.ticks[-1].y == plot.top


def test_a_peak_on_a_tick_is_the_top_of_the_axis() -> None:
    plot = BarPlot(bands=5, peak=10)
    assert plot.top_value == 10
    assert plot.span(10) == pytest.approx(plot.plot_height)


def test_no_data_still_draws_an_axis_from_zero_to_one() -> None:
    plot = BarPlot(bands=0, peak=0)
    assert plot.top_value == 1
    assert [tick.value for tick in plot.ticks] == [0, 1]
    assert plot.span(0) == 0
    assert plot.band == plot.plot_width  # no division by zero bars


def test_one_bar_is_centred_in_the_whole_plot() -> None:
    plot = BarPlot(bands=1, peak=3)
    assert plot.bar_x(0) == pytest.approx(plot.left + plot.plot_width * 0.15, abs=0.01)
    assert plot.bar_width == pytest.approx(plot.plot_width * 0.7, abs=0.01)
    centre = plot.bar_x(0) + plot.bar_width / 2
    assert centre == pytest.approx(plot.left + plot.plot_width / 2, abs=0.01)


def test_bars_share_the_plot_width_in_equal_bands() -> None:
    plot = BarPlot(bands=30, peak=3)
    xs = [plot.bar_x(index) for index in range(30)]
    gaps = {round(right - left, 1) for left, right in pairwise(xs)}
    assert gaps == {round(plot.plot_width / 30, 1)}
    # The last bar ends a 15 % gap short of the plot's right edge, as the first starts after one.
    assert xs[-1] + plot.bar_width == pytest.approx(
        plot.left + plot.plot_width - plot.band * 0.15, abs=0.02
    )
