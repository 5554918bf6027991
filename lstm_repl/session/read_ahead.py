"""Reading tokens with a model as the session reads them, in functions of the model and a state
alone: the session's own reading (session.py) and learning's thread, which reads the tokens after
a learned boundary again with the new weights (training/session_learning.py), make the same calls
on the same numbers, so get the same bits, and the session can take what the thread read.

The session reads a stretch one of two ways, by its length: token by token through the gate path
(each token's state and gates kept), or, past FUSED_CHUNK tokens, through the fused path in chunks
that end on the state store's kept positions (a state at each chunk's end), the last token again
through the gate path, so the panel has its gates.
"""

from __future__ import annotations

from array import array
from dataclasses import dataclass, field
from typing import Iterable

import numpy as np
import torch

from lstm_repl.model import State
from lstm_repl.session.state_store import CHECKPOINT_EVERY
from lstm_repl.session.tracing import gates_to_numpy

FUSED_CHUNK = 256  # a stretch longer than this many tokens goes through the fused path
Layers = list[dict[str, np.ndarray]]


def reads_fused(length: int, interventions) -> bool:
    """Whether a stretch of `length` tokens is read through the fused path (interventions take
    only the gate path)."""
    return length > FUSED_CHUNK and not interventions


def next_token_logits(model, state: State) -> torch.Tensor:
    """Next-token logits (V,) from a state: the decoder of its top h."""
    return model.decoder(state[0][-1, 0])


def gate_read(model, token: int, state: State, edits=None):
    """One token through the gate path -> its probability (from `state`), the logits after it,
    the new state and its gates (Session._step makes these same two calls through its caches)."""
    probability = float(next_token_logits(model, state).float().softmax(-1)[token])
    logits, state, gates = model.step(torch.tensor([token], device=model.device), state, edits=edits)
    return probability, logits, state, gates


def chunk_sizes(start: int, count: int) -> list[int]:
    """The chunks `count` tokens from position `start` are read in: each ends on a kept position
    (a multiple of CHECKPOINT_EVERY), but the last."""
    sizes = []
    while count > 0:
        size = min(count, CHECKPOINT_EVERY - start % CHECKPOINT_EVERY)
        sizes.append(size)
        start, count = start + size, count - size
    return sizes


def chunk_read(model, state: State, chunk: list[int]) -> tuple[list[float], State]:
    """A chunk through the fused path -> each token's probability, the state after the chunk."""
    before = next_token_logits(model, state)
    logits, state = model(torch.tensor([chunk], device=model.device), state)
    predicted = torch.cat([before[None], logits[0, :-1]]).float().log_softmax(-1)
    probabilities = predicted.gather(1, torch.tensor(chunk, device=predicted.device)[:, None]).exp()
    return probabilities[:, 0].tolist(), state


@dataclass
class ReadAhead:
    """Tokens from position `start` read off the shell's loop as the session reads a stretch of
    their length (`fused` or not), with no interventions."""

    start: int
    fused: bool
    ids: array = field(default_factory=lambda: array("i"))
    probabilities: list[float] = field(default_factory=list)
    states: list[State | None] = field(default_factory=list)  # after each token: kept ones only
    gates: list[Layers | None] = field(default_factory=list)

    def usable(self, same: int) -> int:
        """How many leading tokens hold when only the first `same` are still the text's: on the
        gate path all of those; through the fused path the whole chunks among them (a chunk the
        text goes on past is read as a longer one), never the last token (read by the gate path),
        nor a chunk that ends on the last of the `same` (it may be the text's last token)."""
        if not self.fused:
            return same
        whole = (self.start + min(same - 1, len(self.ids) - 1)) // CHECKPOINT_EVERY * CHECKPOINT_EVERY - self.start
        return max(0, whole)

    def cut(self, length: int) -> None:
        del self.ids[length:], self.probabilities[length:], self.states[length:], self.gates[length:]

    def add_read(self, more: "ReadAhead") -> None:
        self.add(more.ids, more.probabilities, more.states, more.gates)

    def add(self, ids: Iterable[int], probabilities: list[float], states: list, gates: list) -> None:
        self.ids.extend(ids)
        self.probabilities += probabilities
        self.states += states
        self.gates += gates


@torch.inference_mode()
def read_ahead(model, state: State, ids: Iterable[int], start: int, fused: bool) -> ReadAhead:
    """`ids`, from position `start`, read from `state` as the session reads a stretch read
    `fused` or not (see the module's docstring)."""
    ids = list(ids)
    ahead = ReadAhead(start, fused)
    gated = ids
    if fused:
        offset = 0
        for size in chunk_sizes(start, len(ids) - 1):
            chunk = ids[offset : offset + size]
            probabilities, state = chunk_read(model, state, chunk)
            ahead.add(chunk, probabilities, [None] * (size - 1) + [state], [None] * size)
            offset += size
        gated = ids[-1:]
    for token in gated:
        probability, _, state, gates = gate_read(model, token, state)
        ahead.add([token], [probability], [state], [gates_to_numpy(gates)])
    return ahead
