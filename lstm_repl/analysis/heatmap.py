"""A text with each character's background coloured by a unit's value, one band per unit, as in
Karpathy et al. (2015): a self-contained HTML page (no script, no network) or ANSI colours.

Colours: signed quantities (c, h, g) run from blue (negative) through white to red (positive);
gates (0 to 1) from white to green. A cell state is unbounded, so it is shown through tanh (the
scale its h sees; the caller squashes it); the legend says so.
"""

from __future__ import annotations

import html
import math
from dataclasses import dataclass

import numpy as np

NEGATIVE, ZERO, POSITIVE = (33, 102, 172), (247, 247, 247), (178, 24, 43)
GATE_HIGH = (27, 120, 55)
VISIBLE_NEWLINE = "⏎"


@dataclass
class Band:
    title: str  # "layer 1 unit 244 · cell state c · in-quotes 0.93"
    values: np.ndarray  # per character
    signed: bool


def colour(value: float, signed: bool) -> tuple[int, int, int]:
    if not math.isfinite(value):
        return ZERO
    if signed:
        t = max(-1.0, min(1.0, value))
        target = POSITIVE if t > 0 else NEGATIVE
        return _mix(ZERO, target, abs(t))
    return _mix(ZERO, GATE_HIGH, max(0.0, min(1.0, value)))


def _mix(a, b, t: float) -> tuple[int, int, int]:
    return tuple(round(x + (y - x) * t) for x, y in zip(a, b))  # type: ignore[return-value]


def per_character(token_values: np.ndarray, token_ends: np.ndarray, length: int) -> np.ndarray:
    """Spread per-token values over the characters of each token."""
    starts = np.concatenate([[0], token_ends[:-1]])
    out = np.zeros(length, dtype=np.float32)
    for start, end, value in zip(starts.tolist(), token_ends.tolist(), token_values.tolist()):
        out[start:end] = value
    return out


def html_page(text: str, bands: list[Band], title: str) -> str:
    parts = [_HEAD.format(title=html.escape(title)), f"<h1>{html.escape(title)}</h1>", _LEGEND]
    for band in bands:
        parts.append(f"<h2>{html.escape(band.title)}</h2><pre>")
        parts.extend(_html_chars(text, band))
        parts.append("</pre>")
    parts.append("</body></html>\n")
    return "".join(parts)


def _html_chars(text: str, band: Band):
    run_colour, run = None, []
    for ch, value in zip(text, band.values.tolist()):
        rgb = colour(value, band.signed)
        if rgb != run_colour and run:
            yield _span(run_colour, "".join(run))
            run = []
        run_colour = rgb
        run.append(VISIBLE_NEWLINE + "\n" if ch == "\n" else ch)
    if run:
        yield _span(run_colour, "".join(run))


def _span(rgb, text: str) -> str:
    return f'<span style="background:rgb{rgb}">{html.escape(text)}</span>'


def grid_html(title: str, columns: list[str], rows: list[str], values: np.ndarray, signed: bool) -> str:
    """A self-contained HTML fragment (a notebook's cell output): a table with a column per token
    and a row per unit, each cell coloured by values[row, column], its value in the tooltip. Every
    title, token and label is escaped: they are data."""
    head = "".join(f'<th style="{_CELL}writing-mode:vertical-rl">{html.escape(c)}</th>' for c in columns)
    body = []
    for label, row in zip(rows, values.tolist()):
        cells = "".join(f'<td title="{v:.4g}" style="{_CELL}background:rgb{colour(v, signed)}"></td>' for v in row)
        body.append(f'<tr><th style="{_CELL}text-align:right">{html.escape(label)}</th>{cells}</tr>')
    return (f'<div style="overflow-x:auto"><p style="font-family:sans-serif">{html.escape(title)}</p>'
            f'<table style="border-collapse:collapse;font-family:monospace;font-size:11px">'
            f"<tr><th></th>{head}</tr>{''.join(body)}</table>{_LEGEND}</div>")


_CELL = "padding:0;min-width:0.9em;height:0.9em;border:0;"


_HEAD = """<!doctype html>
<html><head><meta charset="utf-8"><title>{title}</title>
<style>
body {{ font-family: sans-serif; margin: 2em; color: #222; }}
pre {{ font-family: "DejaVu Sans Mono", Menlo, Consolas, monospace; font-size: 14px; line-height: 1.35;
       white-space: pre-wrap; word-break: break-all; border: 1px solid #ddd; padding: 0.6em; }}
h2 {{ font-size: 15px; margin: 1.2em 0 0.3em; }}
.legend span {{ display: inline-block; width: 2.2em; text-align: center; font-size: 12px; }}
</style></head><body>
"""

_KEY = "display:inline-block;width:2.6em;text-align:center;font-size:12px;"  # inline: a notebook has no <style>
_LEGEND = (
    '<p class="legend" style="font-family:sans-serif">signed (c, h, g): '
    + "".join(f'<span style="{_KEY}background:rgb{colour(v, True)}">{v:+.1f}</span>' for v in (-1, -0.5, 0, 0.5, 1))
    + " &nbsp; gates (f, i, o): "
    + "".join(f'<span style="{_KEY}background:rgb{colour(v, False)}">{v:.2f}</span>' for v in (0, 0.25, 0.5, 0.75, 1))
    + " &nbsp; a cell state c is coloured by tanh(c)</p>"
)
