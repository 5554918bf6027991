"""Every quantity of every unit at every token of a long text, read fast: the text is cut into
`streams` contiguous parts read side by side through the gate path (one batched step reads one
token of each part), each part first reading the BURN_IN tokens before it so that its state has
the context it would have had. Yields the values in chunks, with the text position of each row;
nothing per token is kept, so a text of any length fits in memory.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterator

import numpy as np
import torch

from lstm_repl.model import LanguageModel

BURN_IN = 256  # tokens each part reads before its own (an LSTM's memory of text is shorter)
STREAMS = 64  # parts read side by side
STEPS_PER_CHUNK = 32  # batched steps per yielded chunk
MIN_STREAM = 256  # tokens: a shorter text is read in fewer parts


@dataclass
class Chunk:
    positions: np.ndarray  # (n,) text position (token index) of each row
    values: dict[tuple[int, str], torch.Tensor]  # (layer, quantity symbol) -> (n, hidden) float32


@torch.inference_mode()
def trace_units(model: LanguageModel, ids: np.ndarray, streams: int = STREAMS, burn_in: int = BURN_IN,
                steps_per_chunk: int = STEPS_PER_CHUNK) -> Iterator[Chunk]:
    model.eval()
    count = len(ids)
    streams = max(1, min(streams, count // max(2 * burn_in, MIN_STREAM)))  # a part at least twice its burn-in
    length = math.ceil(count / streams) if count else 0
    # stream b reads positions b * length - burn .. (b + 1) * length - 1; stream 0 has nothing
    # before it, so it waits (its state held at zero) for the first `burn_in` steps
    starts = np.arange(streams) * length - burn_in
    padded = np.concatenate([ids.astype(np.int64), np.zeros(1, np.int64)])  # position `count`: a pad
    device = model.device
    state = model.zero_state(streams)
    total_steps = burn_in + length
    for first in range(0, total_steps, steps_per_chunk):
        rows: dict[tuple[int, str], list[torch.Tensor]] = {}
        positions = []
        for step in range(first, min(first + steps_per_chunk, total_steps)):
            where = starts + step
            readable = (where >= 0) & (where < count)
            tokens = torch.from_numpy(padded[np.where(readable, where, count)]).to(device)
            _, state, gates = model.step(tokens, state)
            if not readable.all():  # a stream not yet started (or past the end) stays at zero
                keep = torch.from_numpy(readable).to(device, state[0].dtype)[None, :, None]
                state = tuple(s * keep for s in state)
            if step >= burn_in:
                own = np.where(readable, where, -1)
                positions.append(own)
                for layer, quantities in enumerate(gates):
                    for symbol, value in quantities.items():
                        rows.setdefault((layer, symbol), []).append(value.float())
        if positions:
            flat = np.concatenate(positions)
            valid = torch.from_numpy(flat >= 0)
            yield Chunk(flat[flat >= 0], {key: torch.cat(parts)[valid] for key, parts in rows.items()})
