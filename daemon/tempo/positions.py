"""Positions in a conformed stream: where the stream's samples land in what is heard, and back."""

from __future__ import annotations

import bisect

#: Anchors a PositionMap keeps (one per conformed block: about a minute at 32 kHz); older positions
#: are interpolated on the oldest kept segment's slope.
MAP_ANCHORS = 2048


class PositionMap:
    """Where the stream's samples land in the conformed output, and back (a jam reports its changes'
    offsets, paces itself and takes `at_samples` in output samples, while its stream counts input).

    Anchors (input, output) are added as the conformer takes blocks; a position between two is
    interpolated, one past the last extrapolated at the ratio in force. Empty, it is the identity
    (nothing conformed yet, or a jam not conformed at all).
    """

    def __init__(self) -> None:
        self._in: list[float] = [0.0]
        self._out: list[float] = [0.0]
        self.ratio = 1.0  # output per input beyond the last anchor

    def add(self, in_pos: float, out_pos: float, ratio: float) -> None:
        if in_pos <= self._in[-1]:
            return
        self._in.append(in_pos)
        self._out.append(out_pos)
        self.ratio = ratio
        if len(self._in) > 2 * MAP_ANCHORS:
            del self._in[:MAP_ANCHORS], self._out[:MAP_ANCHORS]

    def output_of(self, in_pos: float) -> int:
        return round(_through(in_pos, self._in, self._out, self.ratio))

    def input_of(self, out_pos: float) -> int:
        return round(_through(out_pos, self._out, self._in, 1.0 / self.ratio))


def _through(x: float, xs: list[float], ys: list[float], slope_after: float) -> float:
    """y at `x` on the polyline through (xs, ys), extended at `slope_after` past its end (and its first slope before it)."""
    if x >= xs[-1] or len(xs) == 1:
        return ys[-1] + (x - xs[-1]) * slope_after
    i = max(1, bisect.bisect_right(xs, x))
    x0, x1, y0, y1 = xs[i - 1], xs[i], ys[i - 1], ys[i]
    return y0 if x1 <= x0 else y0 + (x - x0) * (y1 - y0) / (x1 - x0)
