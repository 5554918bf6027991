"""The panel's pure views: hand-made Snapshots in, text (and fragments) out. No model, no torch."""

from __future__ import annotations

import io
import math
import re

import numpy as np
import pytest
from rich.cells import cell_len
from rich.console import Console
from rich.text import Text

from lstm_repl.quantities import GATE_01, GATE_11, LSTM_QUANTITIES, Quantity
from lstm_repl.shell.fragments import AnsiLines, to_text
from lstm_repl.shell.drawing import PALETTE, quantity_colour, quantity_label, value_bar
from lstm_repl.terminal_text import visible_token
from lstm_repl.shell.strip_view import strip_height, strip_view
from lstm_repl.shell.units_view import gate_bars_view, select_units
from lstm_repl.shell.views import PanelSettings, render_panel
from lstm_repl.snapshot import Snapshot

GRU_QUANTITIES = (
    Quantity("r", "reset gate", *GATE_01),
    Quantity("z", "update gate", *GATE_01),
    Quantity("n", "candidate", *GATE_11),
    Quantity("h", "hidden state", *GATE_11),
)
COUPLED_QUANTITIES = tuple(
    Quantity(q.symbol, q.name, q.low, q.high, derived=True) if q.symbol == "i" else q for q in LSTM_QUANTITIES
)
LSTM_LABELS = ("forget f", "input i", "output o", "candidate g", "cell c", "hidden h")
TOP = [(" ", 0.42), ("\n", 0.12), ("e", 0.08), ("\t", 0.05), ("th", 0.01)]


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def lstm_layer(rng: np.random.Generator, hidden: int) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Plausible LSTM values for one layer, and the cell state before the step."""
    i, f, o = _sigmoid(rng.normal(0, 2, hidden)), _sigmoid(rng.normal(1, 2, hidden)), _sigmoid(rng.normal(0, 2, hidden))
    g = np.tanh(rng.normal(0, 1.5, hidden))
    previous = rng.normal(0, 1.2, hidden)
    c = f * previous + i * g
    values = {"f": f, "i": i, "o": o, "g": g, "c": c, "h": o * np.tanh(c)}
    return {k: v.astype(np.float32) for k, v in values.items()}, previous.astype(np.float32)


def make_snapshot(hidden: int = 16, n_layers: int = 2, token: str | None = "e", seed: int = 0, **kw) -> Snapshot:
    rng = np.random.default_rng(seed)
    layers, previous = zip(*(lstm_layer(rng, hidden) for _ in range(n_layers)))
    fields = dict(
        position=7,
        token=token,
        probability=0.183,
        surprisal_bits=-math.log2(0.183),
        top=list(TOP),
        layers=list(layers),
        previous_cell=list(previous),
        quantities=LSTM_QUANTITIES,
    )
    fields.update(kw)
    return Snapshot(**fields)


def gru_snapshot(hidden: int = 12) -> Snapshot:
    rng = np.random.default_rng(1)
    r, z = _sigmoid(rng.normal(0, 2, hidden)), _sigmoid(rng.normal(0, 2, hidden))
    n = np.tanh(rng.normal(0, 1.5, hidden))
    previous = np.tanh(rng.normal(0, 1, hidden))
    h = (1 - z) * n + z * previous
    layer = {k: v.astype(np.float32) for k, v in dict(r=r, z=z, n=n, h=h).items()}
    return Snapshot(7, "a", 0.5, 1.0, list(TOP), [layer], [previous.astype(np.float32)], GRU_QUANTITIES, "gru")


def recorded(renderable, width: int) -> str:
    """As ARCHITECTURE.md tests renderables: a recording console without colour."""
    console = Console(record=True, width=width, file=io.StringIO(), color_system=None)
    console.print(renderable)
    return console.export_text()


def panel_text(snapshot: Snapshot, width: int = 120, height: int | None = None, **settings) -> str:
    return to_text(render_panel(snapshot, PanelSettings(**settings), width, height), width)


# ----------------------------------------------------------------------------- labels, tokens


def test_every_lstm_quantity_is_labelled_in_words_and_symbol():
    text = panel_text(make_snapshot())
    for label in LSTM_LABELS:
        assert text.count(label) == 2, label  # once in the bars, once in the strip
    assert "next token (top 5)" in text


def test_header_shows_token_surprisal_probability_and_layer():
    text = panel_text(make_snapshot(token="e"))
    header = text.splitlines()[0]
    assert "read e" in header
    assert "2.45 bits" in header and "p 0.183" in header
    assert "layer 1 of 2" in text


def test_whitespace_tokens_are_visible():
    text = panel_text(make_snapshot(token="\n"))
    assert "read ⏎" in text
    rows = text.splitlines()
    top_rows = rows[rows.index(next(r for r in rows if r.startswith("next token"))) + 1 :][:5]
    assert [row.split()[0] for row in top_rows] == ["␣", "⏎", "e", "⇥", "th"]
    assert "42.0%" in top_rows[0] and "1.0%" in top_rows[4]


def test_visible_token():
    assert visible_token("a b\tc\n") == "a␣b⇥c⏎"
    assert visible_token("\x07") == "\\x07"
    assert visible_token("") == "∅"
    assert visible_token(None) == ""


def test_nothing_read_yet():
    empty = Snapshot(0, None, None, None, [("T", 0.3)], [], [], LSTM_QUANTITIES)
    text = panel_text(empty, 80)
    assert "nothing read yet" in text and "T" in text


# ----------------------------------------------------------------------------- unit choice


def test_default_units_are_those_whose_cell_changed_most():
    snap = make_snapshot(hidden=16, n_layers=1)
    c = snap.layers[0]["c"]
    previous = c.copy()
    previous[[3, 11, 6]] -= np.array([0.9, 0.5, 0.7], dtype=np.float32)
    previous[9] += 0.8  # a fall counts as much as a rise
    snap = make_snapshot(hidden=16, n_layers=1, previous_cell=[previous])
    assert select_units(snap, 0, 4, None) == [3, 9, 6, 11]
    text = panel_text(snap, 120, max_units=4)
    assert "units 3 9 6 11 (largest |Δc|)" in text
    assert text.index("#3") < text.index("#9") < text.index("#6") < text.index("#11")


def test_pinned_units_are_shown_in_the_order_given():
    snap = make_snapshot(hidden=32)
    assert select_units(snap, 0, 12, [17, 3, 99, 17, -1, 0]) == [17, 3, 0]  # out of range and repeats dropped
    text = panel_text(snap, 120, units=[17, 3, 0])
    assert "units 17 3 0 (pinned)" in text
    unit_row = next(line for line in text.splitlines() if line.startswith("unit"))
    assert unit_row.split() == ["unit", "#17", "#3", "#0"]


def test_pinned_units_that_do_not_fit_are_counted():
    text = panel_text(make_snapshot(hidden=32), 60, units=list(range(10)))
    unit_row = next(line for line in text.splitlines() if line.startswith("unit"))
    shown = len(unit_row.split()) - 1
    assert 1 <= shown < 10
    assert f"{10 - shown} more do not fit" in text


def test_units_of_the_chosen_layer_and_clamping():
    snap = make_snapshot(hidden=16, n_layers=2)
    assert "layer 2 of 2" in panel_text(snap, layer=1)
    assert "layer 2 of 2" in panel_text(snap, layer=7)
    top_unit = int(np.argmax(np.abs(snap.layers[1]["c"] - snap.previous_cell[1])))
    assert select_units(snap, 1, 1, None) == [top_unit]


# ----------------------------------------------------------------------------- widths and heights


@pytest.mark.parametrize("width", [60, 80, 120, 200])
def test_panel_fits_every_width(width):
    snap = make_snapshot(hidden=32)
    panel = render_panel(snap, PanelSettings(), width)
    for text in (recorded(panel, width), to_text(panel, width)):
        lines = text.splitlines()
        assert all(cell_len(line) <= width for line in lines)
        assert "forget f" in text and "mean" in text
    # a recording console as wide as the panel does not wrap it
    assert len(recorded(panel, width).splitlines()) == len(panel)


def test_narrow_terminals_show_fewer_units():
    snap = make_snapshot(hidden=32)

    def unit_columns(width: int) -> int:
        row = next(line for line in panel_text(snap, width).splitlines() if line.startswith("unit"))
        return len(row.split()) - 1

    assert 1 <= unit_columns(60) < unit_columns(80) < unit_columns(120) <= unit_columns(200) == 12


def test_strip_wraps_and_holds_every_unit():
    snap = make_snapshot(hidden=100, n_layers=1)
    strip = strip_view(snap, 0, 60)
    assert len(strip) == strip_height(snap, 0, 60) > 1 + 6
    text = to_text(strip, 60)
    assert sum(ch in "▁▂▃▄▅▆▇█" for ch in text.split(")", 1)[1]) == 100 * 6
    assert "all 100 units of layer 1" in text


def test_means_at_the_end_of_each_strip():
    snap = make_snapshot(hidden=16, n_layers=1)
    lines = to_text(strip_view(snap, 0, 120), 120).splitlines()
    forget = next(line for line in lines if line.startswith("forget f"))
    assert forget.endswith(f"mean  {float(np.mean(snap.layers[0]['f'])):.2f}")


def test_short_terminal_drops_the_strip_first():
    snap = make_snapshot(hidden=32)
    full = render_panel(snap, PanelSettings(), 120)
    for height in range(1, len(full) + 2):
        panel = render_panel(snap, PanelSettings(), 120, height)
        assert len(panel) <= height
    text = panel_text(snap, 120, height=16)
    assert "hidden h" in text and "␣" in text and "all 32 units" not in text
    text = panel_text(snap, 120, height=10)
    assert "hidden h" in text and "next token" in text  # top-k shrinks, the bars stay


# ----------------------------------------------------------------------------- other cells


def test_gru_quantities_get_their_own_labels():
    text = panel_text(gru_snapshot(), 100)
    for label in ("reset r", "update z", "candidate n", "hidden h"):
        assert label in text
    assert "forget" not in text and "cell c" not in text
    assert "(largest |Δh|)" in text
    assert {quantity_colour(s) for s in "rzn"} <= set(PALETTE.values())


def test_derived_quantity_is_marked():
    snap = make_snapshot(quantities=COUPLED_QUANTITIES)
    text = panel_text(snap, 120)
    assert "input i =1−f" in text
    assert "derived" in text and "i = 1 − f" in text
    label = quantity_label(Quantity("q", "mystery gate", 0, 1, derived=True))
    assert label == "mystery q*"


def test_nan_and_out_of_range_values_do_not_break_the_view():
    snap = make_snapshot(hidden=8, n_layers=1)
    snap.layers[0]["c"][:] = np.array([np.nan, 3.5, -12.34, 150.0, 0, 1e6, np.inf, -0.001], dtype=np.float32)
    text = to_text(gate_bars_view(snap, 0, list(range(8)), 200), 200)
    cell = next(line for line in text.splitlines() if line.startswith("cell c"))
    for shown in ("nan", "3.50", "-12.3", "150", "0.00", "1e6", "+inf"):
        assert shown in cell
    assert "-0.00" not in cell


def test_bars_carry_the_value_without_colour():
    gate, signed = LSTM_QUANTITIES[0], LSTM_QUANTITIES[4]
    assert value_bar(0.5, gate, 8) == "████    "
    assert value_bar(1.7, gate, 4) == "████"  # clipped
    assert value_bar(0.5, signed, 8) == "    ██  "
    assert value_bar(-1.0, signed, 8) == "████    "
    assert value_bar(-0.25, signed, 8) == "   █    "
    assert all(len(value_bar(v, q, 6)) == 6 for v in (-3, -0.3, 0, 0.3, 3) for q in LSTM_QUANTITIES)


# ----------------------------------------------------------------------------- fragments


def _styled_lines(renderable, width: int, color: bool) -> list[str]:
    """The panel writer's lines, each style's escape code shown as <style string>."""
    return AnsiLines(lambda style: f"\x00{style}\x01", color).lines(renderable, width)


def _styles_and_text(line: str) -> list[tuple[str, str]]:
    return re.findall(r"\x00([^\x01]*)\x01([^\x00]*)", line)


def test_the_panel_writer_colours_only_when_asked():
    panel = render_panel(make_snapshot(hidden=32), PanelSettings(), 100)
    coloured = [pair for line in _styled_lines(panel, 100, True) for pair in _styles_and_text(line)]
    plain_lines = _styled_lines(panel, 100, False)
    plain = [pair for line in plain_lines for pair in _styles_and_text(line)]
    assert any(f"fg:{PALETTE['f']}" in style for style, _ in coloured)
    assert any("bg:" in style for style, _ in coloured)
    assert not any("fg:" in style or "bg:" in style for style, _ in plain)
    assert any("bold" in style for style, _ in plain)  # attributes survive NO_COLOR
    assert "".join(text for _, text in coloured) == "".join(text for _, text in plain)
    texts = ["".join(text for _, text in _styles_and_text(line)).rstrip() for line in plain_lines]
    assert texts == to_text(panel, 100).split("\n")


def test_the_panel_writer_takes_any_rich_renderable():
    text = Text.assemble(("hot", "bold red"), " ", ("cold", "#0000ff on #ffffff"), " ", ("x", "color(200)"))
    pairs = _styles_and_text(_styled_lines(text, 40, True)[0])
    assert ("bold fg:ansired", "hot") in [(" ".join(sorted(s.split())), t) for s, t in pairs]
    assert ("fg:#0000ff bg:#ffffff", "cold") in pairs
    assert any(style.startswith("fg:#") and t == "x" for style, t in pairs)
    assert len(_styled_lines(Text("word " * 20), 20, False)) >= 5
    assert to_text(Text("a  \nb"), 10) == "a\nb"


def test_the_panel_writer_crops_a_panel_wider_than_the_width():
    panel = render_panel(make_snapshot(hidden=32), PanelSettings(), 120)
    for line in _styled_lines(panel, 80, False):
        assert cell_len("".join(text for _, text in _styles_and_text(line))) <= 80
