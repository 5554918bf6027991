"""The equations of one unit at one token, with the numbers: what `:explain L:U` and
`trace --explain L:U` show.

For the last token of a text, each gate's pre-activation of unit u is split into its input part
(the x columns of the unit's row: W_xf·x), its recurrent part (W_hf·h₋₁) and its bias (b_f; PyTorch
keeps two, b_ih + b_hh, and they are shown summed as the README's one b), plus a peephole's
w_cf∗c₋₁; then the squashing function, the cell state and the hidden state, in the notation of
the README and docs/cells.md for whichever kind is loaded. Last, the unit's share of the top
prediction's logit: h_u times its decoder weight. Every number is recomputed here from the weights
(float64) and the state the model carried; the gate path's own values agree to float32 rounding.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch

from lstm_repl.data.vocab import UNK_ID, Vocab
from lstm_repl.model import LanguageModel, State
from lstm_repl.model.base import layer_weight_names
from lstm_repl.session.sampling import read_prompt
from lstm_repl.terminal_text import visible_token

SIGMA, TANH = "σ", "tanh"


@dataclass(frozen=True)
class GateSum:
    """One gate of one unit: its pre-activation as a sum of named parts, through its function."""

    symbol: str  # f, i, g, o; r, z, n; h for the plain RNN
    parts: tuple[tuple[str, float], ...]  # (label, value): ("W_xf·x", 0.41), ("W_hf·h₋₁", -1.2), ("b_f", 0.87)
    squash: str  # σ or tanh
    value: float  # squash(sum of the parts)

    @property
    def pre_activation(self) -> float:
        return math.fsum(v for _, v in self.parts)


@dataclass(frozen=True)
class LogitShare:
    """h_u times its weight in the decoder row of the most likely next token."""

    token: str
    probability: float
    logit: float  # the whole logit of that token
    weight: float  # W_y[token, u]
    share: float  # h_u ∗ weight


@dataclass
class Explanation:
    cell: str  # the kind: lstm, peephole, coupled, gru, rnn
    layer: int  # counted from 0
    unit: int
    token: str  # the text of the token read
    position: int  # its index in the text's tokens
    gates: list[GateSum]
    state: dict[str, float]  # c₋₁, c, h₋₁, h (those the kind has)
    state_lines: list[str]  # the update equations with their numbers
    share: LogitShare | None
    note: str = ""  # why there is no share, or what was left out
    derived: dict[str, float] = field(default_factory=dict)  # coupled: i = 1 − f

    def lines(self) -> list[str]:
        """The explanation as text (the token is data: shown by visible_token)."""
        out = [f"layer {self.layer + 1} unit {self.unit} ({self.cell}), reading {visible_token(self.token)!r} "
               f"(token {self.position})"]
        for gate in self.gates:
            out.append(f"  {gate.symbol} = {gate.squash}({' + '.join(label for label, _ in gate.parts)})")
            out.append(f"    = {gate.squash}({number_sum([v for _, v in gate.parts])}) = "
                       f"{gate.squash}({gate.pre_activation:.4f}) = {gate.value:.4f}")
        out += [f"  {line}" for line in self.state_lines]
        if self.share is not None:
            s = self.share
            out.append(f"  share of the top prediction's logit: h∗W_y = {factor(self.state['h'])}∗{factor(s.weight)} = "
                       f"{s.share:.4f} of {s.logit:.4f} (the logit of {visible_token(s.token)!r}, "
                       f"p {s.probability:.3f})")
        if self.note:
            out.append(f"  {self.note}")
        return out


def number_sum(values: list[float]) -> str:
    """1.2 − 0.5 + 0.1: a sum written with its signs."""
    text = f"{values[0]:.4f}"
    for value in values[1:]:
        text += f" − {-value:.4f}" if value < 0 else f" + {value:.4f}"
    return text


def factor(value: float) -> str:
    """A number in a product: in parentheses when negative, 0.5∗(−1.2)."""
    return f"({value:.4f})" if value < 0 else f"{value:.4f}"


def explain_unit(model: LanguageModel, vocab: Vocab, ids: list[int], layer: int, unit: int,
                 state: State | None = None) -> Explanation:
    """Unit `unit` of layer `layer` (from 0) at the last of `ids`. `state`: the state before that
    token when the caller has it (the shell), else the other ids are read first (fused path)."""
    model.eval()
    with torch.inference_mode():
        if state is None:
            _, state = read_prompt(model, ids[:-1])
        state = model.zero_state(1) if state is None else state
        token = torch.tensor([ids[-1]], device=model.device)
        logits, _, gates = model.step(token, state)  # the gate path's own values; x of each layer above 0
        x = model.embedding(token)[0] if layer == 0 else gates[layer - 1]["h"][0]
        previous = [s[layer, 0] for s in state]
        explanation = _EXPLAIN[model.config.cell](model, layer, unit, x.double(), [p.double() for p in previous])
        explanation.token, explanation.position = vocab.token_text(ids[-1]), len(ids) - 1
        explanation.share, explanation.note = _share(model, vocab, layer, unit, logits[0], explanation.state["h"])
    return explanation


def _rows(model: LanguageModel, layer: int, unit: int, block: int) -> tuple[torch.Tensor, ...]:
    """The unit's row in gate block `block` of the layer's W_ih, W_hh, b_ih, b_hh, in float64."""
    H = model.config.hidden
    row = block * H + unit
    return tuple(getattr(model.rnn, name)[row].double() for name in layer_weight_names(layer))


def _lstm_parts(model, layer, unit, block, symbol, x, h_prev) -> list[tuple[str, float]]:
    w_ih, w_hh, b_ih, b_hh = _rows(model, layer, unit, block)
    return [(f"W_x{symbol}·x", float(w_ih @ x)), (f"W_h{symbol}·h₋₁", float(w_hh @ h_prev)),
            (f"b_{symbol}", float(b_ih + b_hh))]


def _gate(symbol: str, parts: list[tuple[str, float]], squash: str) -> GateSum:
    pre = math.fsum(v for _, v in parts)
    value = 1 / (1 + math.exp(-pre)) if squash == SIGMA else math.tanh(pre)
    return GateSum(symbol, tuple(parts), squash, value)


def _lstm_state(gates: dict[str, GateSum], c_prev: float, i: float, i_label: str = "i") -> tuple[dict, list[str]]:
    f, g, o = gates["f"].value, gates["g"].value, gates["o"].value
    c = f * c_prev + i * g
    h = o * math.tanh(c)
    return {"c₋₁": c_prev, "c": c, "h": h}, [
        f"c = f∗c₋₁ + {i_label}∗g = {f:.4f}∗{factor(c_prev)} + {i:.4f}∗{factor(g)} = {c:.4f}",
        f"h = o∗tanh(c) = {o:.4f}∗tanh({c:.4f}) = {o:.4f}∗{factor(math.tanh(c))} = {h:.4f}",
    ]


def _explain_lstm(model, layer, unit, x, previous) -> Explanation:
    h_prev, c_prev = previous[0], float(previous[1][unit])
    order = {"i": SIGMA, "f": SIGMA, "g": TANH, "o": SIGMA}  # PyTorch's gate order
    gates = {s: _gate(s, _lstm_parts(model, layer, unit, k, s, x, h_prev), f) for k, (s, f) in enumerate(order.items())}
    state, lines = _lstm_state(gates, c_prev, gates["i"].value)
    return _explanation("lstm", layer, unit, [gates[s] for s in "figo"], state, lines)


def _explain_peephole(model, layer, unit, x, previous) -> Explanation:
    h_prev, c_prev = previous[0], float(previous[1][unit])
    peep = {s: float(getattr(model.rnn, f"weight_c{s}_l{layer}")[unit]) for s in "ifo"}
    parts = {s: _lstm_parts(model, layer, unit, k, s, x, h_prev) for k, s in enumerate("ifgo")}
    gates = {s: _gate(s, parts[s] + [(f"w_c{s}∗c₋₁", peep[s] * c_prev)], SIGMA) for s in "if"}
    gates["g"] = _gate("g", parts["g"], TANH)
    c = gates["f"].value * c_prev + gates["i"].value * gates["g"].value
    gates["o"] = _gate("o", parts["o"] + [("w_co∗c", peep["o"] * c)], SIGMA)  # o peeks at the new c
    state, lines = _lstm_state(gates, c_prev, gates["i"].value)
    return _explanation("peephole", layer, unit, [gates[s] for s in "figo"], state, lines)


def _explain_coupled(model, layer, unit, x, previous) -> Explanation:
    h_prev, c_prev = previous[0], float(previous[1][unit])
    gates = {s: _gate(s, _lstm_parts(model, layer, unit, k, s, x, h_prev), TANH if s == "g" else SIGMA)
             for k, s in enumerate("fgo")}
    i = 1 - gates["f"].value
    state, lines = _lstm_state(gates, c_prev, i, "(1 − f)")
    lines.insert(0, f"i = 1 − f = 1 − {gates['f'].value:.4f} = {i:.4f} (coupled: no weights of its own)")
    return _explanation("coupled", layer, unit, [gates[s] for s in "fgo"], state, lines, {"i": i})


def _explain_gru(model, layer, unit, x, previous) -> Explanation:
    h_prev = previous[0]
    h_prev_u = float(h_prev[unit])
    gates = {}
    for k, s in enumerate("rz"):
        w_ih, w_hh, b_ih, b_hh = _rows(model, layer, unit, k)
        gates[s] = _gate(s, [(f"W_i{s}·x", float(w_ih @ x)), (f"b_i{s}", float(b_ih)),
                             (f"W_h{s}·h₋₁", float(w_hh @ h_prev)), (f"b_h{s}", float(b_hh))], SIGMA)
    w_ih, w_hh, b_ih, b_hh = _rows(model, layer, unit, 2)
    r = gates["r"].value
    gates["n"] = _gate("n", [("W_in·x", float(w_ih @ x)), ("b_in", float(b_ih)),
                             ("r∗(W_hn·h₋₁ + b_hn)", r * float(w_hh @ h_prev + b_hh))], TANH)
    z, n = gates["z"].value, gates["n"].value
    h = (1 - z) * n + z * h_prev_u
    lines = [f"h = (1 − z)∗n + z∗h₋₁ = {1 - z:.4f}∗{factor(n)} + {z:.4f}∗{factor(h_prev_u)} = {h:.4f}"]
    return _explanation("gru", layer, unit, [gates[s] for s in "rzn"], {"h₋₁": h_prev_u, "h": h}, lines)


def _explain_rnn(model, layer, unit, x, previous) -> Explanation:
    h_prev = previous[0]
    w_ih, w_hh, b_ih, b_hh = _rows(model, layer, unit, 0)
    gate = _gate("h", [("W_ih·x", float(w_ih @ x)), ("W_hh·h₋₁", float(w_hh @ h_prev)),
                       ("b_ih + b_hh", float(b_ih + b_hh))], TANH)
    return _explanation("rnn", layer, unit, [gate], {"h₋₁": float(h_prev[unit]), "h": gate.value}, [])


def _explanation(cell, layer, unit, gates, state, lines, derived=None) -> Explanation:
    return Explanation(cell, layer, unit, "", 0, gates, state, lines, None, "", derived or {})


_EXPLAIN = {"lstm": _explain_lstm, "peephole": _explain_peephole, "coupled": _explain_coupled, "gru": _explain_gru,
            "rnn": _explain_rnn}


def _share(model: LanguageModel, vocab: Vocab, layer: int, unit: int, logits: torch.Tensor,
           h: float) -> tuple[LogitShare | None, str]:
    """The unit's part of the top prediction's logit, or why it has none."""
    config = model.config
    if layer != config.layers - 1:
        return None, f"h of layer {layer + 1} reaches the prediction only through the layers above it (no direct share)"
    if config.softmax != "full":
        return None, "the adaptive softmax has no one decoder row per token: no direct share shown"
    probs = logits.float().softmax(-1)
    probs[UNK_ID] = -1.0  # the top prediction a sampler can choose
    top = int(probs.argmax())
    weight = float(model.decoder.weight[top, unit])
    return LogitShare(vocab.token_text(top), float(probs[top]), float(logits[top]), weight, h * weight), ""
