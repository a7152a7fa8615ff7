"""Small line plots drawn with reportlab.graphics (no matplotlib): axes, ticks, lines, bands, markers."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from reportlab.graphics.shapes import Circle, Drawing, Line, Polygon, PolyLine, Rect, String
from reportlab.lib import colors

LEFT_COLOUR = colors.HexColor("#1f5fa8")
RIGHT_COLOUR = colors.HexColor("#d0641b")
TOTAL_COLOUR = colors.HexColor("#333333")
BOX_COLOUR = colors.HexColor("#6a8d3a")
GRID_COLOUR = colors.HexColor("#dddddd")
FONT = "Helvetica"


def nice_ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    """About ``n`` round tick values covering [lo, hi]."""
    if not (math.isfinite(lo) and math.isfinite(hi)) or hi <= lo:
        hi = lo + 1.0
    raw = (hi - lo) / max(1, n)
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    first = math.ceil(lo / step - 1e-9) * step
    out = []
    v = first
    while v <= hi + 1e-9 * step:
        out.append(round(v, 10))
        v += step
    return out


def _fmt_tick(v: float) -> str:
    return f"{v:.0f}" if abs(v - round(v)) < 1e-9 else f"{v:g}"


def decimate(x: np.ndarray, y: np.ndarray, max_points: int = 1200) -> tuple[np.ndarray, np.ndarray]:
    """Min/max decimation for drawing: peaks survive, at most about ``max_points`` points."""
    n = x.shape[0]
    if n <= max_points:
        return x, y
    buckets = max_points // 2
    edges = np.linspace(0, n, buckets + 1).astype(int)
    xs, ys = [], []
    for a, b in zip(edges[:-1], edges[1:], strict=True):
        if b <= a:
            continue
        seg = y[a:b]
        ok = np.isfinite(seg)
        if not ok.any():
            continue
        i_min = a + int(np.nanargmin(seg))
        i_max = a + int(np.nanargmax(seg))
        for i in sorted({i_min, i_max}):
            xs.append(x[i])
            ys.append(y[i])
    return np.asarray(xs), np.asarray(ys)


class Plot:
    """A plot area inside a Drawing; data coordinates mapped to the frame [x0, x0+w] × [y0, y0+h]."""

    def __init__(self, d: Drawing, x0: float, y0: float, w: float, h: float, xlim: tuple[float, float],
                 ylim: tuple[float, float], *, title: str = "", xlabel: str = "", ylabel: str = "",
                 xticks: Sequence[float] | None = None, xticklabels: Sequence[str] | None = None) -> None:
        self.d, self.x0, self.y0, self.w, self.h = d, x0, y0, w, h
        lo, hi = xlim
        if hi <= lo:
            lo, hi = lo - 1.0, hi + 1.0
        self.xlim = (lo, hi)
        ylo, yhi = ylim
        if not (math.isfinite(ylo) and math.isfinite(yhi)) or yhi <= ylo:
            ylo, yhi = (ylo - 1.0, ylo + 1.0) if math.isfinite(ylo) else (0.0, 1.0)
        self.ylim = (ylo, yhi)
        d.add(Rect(x0, y0, w, h, strokeColor=colors.HexColor("#999999"), fillColor=None, strokeWidth=0.5))
        for v in nice_ticks(ylo, yhi, 4):
            if ylo <= v <= yhi:
                yy = self.py(v)
                d.add(Line(x0, yy, x0 + w, yy, strokeColor=GRID_COLOUR, strokeWidth=0.4))
                d.add(String(x0 - 3, yy - 2.5, _fmt_tick(v), fontName=FONT, fontSize=6.5, textAnchor="end"))
        ticks = list(xticks) if xticks is not None else nice_ticks(lo, hi, 6)
        labels = list(xticklabels) if xticklabels is not None else [_fmt_tick(v) for v in ticks]
        for v, lab in zip(ticks, labels, strict=True):
            if lo - 1e-9 <= v <= hi + 1e-9:
                xx = self.px(v)
                d.add(Line(xx, y0, xx, y0 - 2.5, strokeColor=colors.black, strokeWidth=0.4))
                d.add(String(xx, y0 - 9, lab, fontName=FONT, fontSize=6.5, textAnchor="middle"))
        if title:
            d.add(String(x0, y0 + h + 4, title, fontName="Helvetica-Bold", fontSize=8))
        if xlabel:
            d.add(String(x0 + w / 2, y0 - 18, xlabel, fontName=FONT, fontSize=7, textAnchor="middle"))
        if ylabel:
            s = String(0, 0, ylabel, fontName=FONT, fontSize=7, textAnchor="middle")
            from reportlab.graphics.shapes import Group

            g = Group(s)
            g.transform = (0, 1, -1, 0, x0 - 24, y0 + h / 2)
            d.add(g)

    def px(self, x: float) -> float:
        lo, hi = self.xlim
        return self.x0 + (x - lo) / (hi - lo) * self.w

    def py(self, y: float) -> float:
        lo, hi = self.ylim
        return self.y0 + (min(max(y, lo), hi) - lo) / (hi - lo) * self.h

    def line(self, x: Sequence[float] | np.ndarray, y: Sequence[float] | np.ndarray, colour, width: float = 0.8,
             dash: Sequence[float] | None = None) -> None:
        """A polyline; NaN / None values break it into pieces."""
        pts: list[float] = []
        for xv, yv in zip(x, y, strict=True):
            if yv is None or not math.isfinite(float(yv)):
                self._flush(pts, colour, width, dash)
                pts = []
                continue
            pts += [self.px(float(xv)), self.py(float(yv))]
        self._flush(pts, colour, width, dash)

    def _flush(self, pts: list[float], colour, width: float, dash) -> None:
        if len(pts) >= 4:
            self.d.add(PolyLine(pts, strokeColor=colour, strokeWidth=width, strokeDashArray=dash))

    def band(self, x: Sequence[float], lo: Sequence[float | None], hi: Sequence[float | None], colour) -> None:
        """A shaded band between lo and hi (a single point gets a short bar)."""
        pts = [(float(a), float(b), float(c)) for a, b, c in zip(x, lo, hi, strict=True) if b is not None and c is not None]
        fill = colors.Color(colour.red, colour.green, colour.blue, alpha=0.18)
        if len(pts) == 1:
            xv, b, c = pts[0]
            half = 0.02 * self.w
            self.d.add(Rect(self.px(xv) - half, self.py(b), 2 * half, max(0.5, self.py(c) - self.py(b)),
                            fillColor=fill, strokeColor=None))
            return
        if len(pts) < 2:
            return
        poly = [v for xv, b, _ in pts for v in (self.px(xv), self.py(b))]
        poly += [v for xv, _, c in reversed(pts) for v in (self.px(xv), self.py(c))]
        self.d.add(Polygon(poly, fillColor=fill, strokeColor=None))

    def points(self, x: Sequence[float], y: Sequence[float | None], colour, r: float = 2.0) -> None:
        for xv, yv in zip(x, y, strict=True):
            if yv is not None and math.isfinite(float(yv)):
                self.d.add(Circle(self.px(float(xv)), self.py(float(yv)), r, fillColor=colour, strokeColor=colour))

    def vline(self, x: float, colour, label: str = "", dash: Sequence[float] | None = (2, 1.5), row: int = 0) -> None:
        """A vertical marker; ``row`` staggers its label downwards so close markers stay readable."""
        if not (self.xlim[0] <= x <= self.xlim[1]):
            return
        xx = self.px(x)
        self.d.add(Line(xx, self.y0, xx, self.y0 + self.h, strokeColor=colour, strokeWidth=0.6, strokeDashArray=dash))
        if label:
            self.d.add(String(xx + 1, self.y0 + self.h - 7 - 7 * row, label, fontName="Helvetica-Bold", fontSize=6,
                              fillColor=colour))

    def hline(self, y: float, colour, dash: Sequence[float] | None = (3, 2)) -> None:
        if self.ylim[0] <= y <= self.ylim[1]:
            yy = self.py(y)
            self.d.add(Line(self.x0, yy, self.x0 + self.w, yy, strokeColor=colour, strokeWidth=0.6, strokeDashArray=dash))


def legend(d: Drawing, x: float, y: float, items: Sequence[tuple[str, object]], font_size: float = 6.5,
           right_edge: float | None = None) -> None:
    """A one-line legend: short coloured bars with labels (ending at ``right_edge`` when given)."""
    from reportlab.pdfbase.pdfmetrics import stringWidth

    if right_edge is not None:
        x = right_edge - sum(20 + stringWidth(label, FONT, font_size) for label, _ in items)
    for label, colour in items:
        d.add(Line(x, y + 2.5, x + 10, y + 2.5, strokeColor=colour, strokeWidth=1.6))
        d.add(String(x + 13, y, label, fontName=FONT, fontSize=font_size))
        x += 20 + stringWidth(label, FONT, font_size)
