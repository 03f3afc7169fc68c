"""The geometry of a bar chart drawn as SVG on the server: the plot inside its margins, round
y-axis ticks, the scale from values to heights and where each bar goes, all in SVG user units.

An app's chart subclasses ``BarPlot`` with its own data and builds its own bars from these
numbers (stacked by tier, a single series, ...); ``templates/_chart_axes.html`` draws the axes.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property


@dataclass(frozen=True)
class Tick:
    """One y-axis label and its grid line: ``value`` drawn at height ``y``."""

    value: int
    y: float


def tick_step(peak: int, most: int = 5) -> int:
    """A step of 1, 2 or 5 times a power of ten giving at most ``most`` intervals up to ``peak``."""
    magnitude = 1
    while True:
        for factor in (1, 2, 5):
            step = factor * magnitude
            if peak <= step * most:
                return step
        magnitude *= 10


@dataclass(frozen=True, kw_only=True)
class BarPlot:
    """Where the axes and the ``bands`` bars of a chart whose tallest bar is ``peak`` go.

    The drawing is ``width`` by ``height``; the plot is what the margins leave of it (room for
    the tick labels on the left and the x labels below). The y axis runs from 0 at the baseline
    up to the peak rounded up to a whole tick step; the bars share the plot's width in equal
    bands, each bar 70 % of its band and centred in it.
    """

    bands: int
    peak: int
    width: int = 760
    height: int = 260
    left: int = 44
    right: int = 12
    top: int = 12
    bottom: int = 36

    @property
    def plot_width(self) -> int:
        return self.width - self.left - self.right

    @property
    def plot_height(self) -> int:
        return self.height - self.top - self.bottom

    @property
    def baseline(self) -> int:
        """The y of value 0, where the bars stand."""
        return self.top + self.plot_height

    @cached_property
    def step(self) -> int:
        return tick_step(self.peak)

    @property
    def top_value(self) -> int:
        """The value at the top of the y axis; one step when there is nothing to show."""
        return max(self.step, -(-self.peak // self.step) * self.step)

    @property
    def scale(self) -> float:
        """Units of height per unit of value."""
        return self.plot_height / self.top_value

    @property
    def band(self) -> float:
        return self.plot_width / max(self.bands, 1)

    @property
    def bar_width(self) -> float:
        return round(self.band * 0.7, 2)

    def bar_x(self, index: int) -> float:
        """The left edge of bar ``index`` (from 0), a 15 % gap into its band."""
        return round(self.left + index * self.band + self.band * 0.15, 2)

    def span(self, value: float) -> float:
        """The height of ``value``, unrounded so that stacked segments add up exactly."""
        return value * self.scale

    @cached_property
    def ticks(self) -> list[Tick]:
        return [
            Tick(value, round(self.baseline - self.span(value), 2))
            for value in range(0, self.top_value + 1, self.step)
        ]
