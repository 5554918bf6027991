"""The shell's model state, without any UI: the text read so far, one recurrent state per prefix
position, the latest token's gates and predictions, ghost text and streaming.

Typing one token costs one gate-path step; backspace pops; an edit in the middle recomputes
only the changed suffix, a long one (a paste) through the fused path in chunks.
"""

from __future__ import annotations

import bisect
import math
import re
from dataclasses import dataclass, replace
from typing import Iterator

import numpy as np
import torch

from lstm_repl.checkpoint import Checkpoint
from lstm_repl.config import SampleConfig
from lstm_repl.model import State
from lstm_repl.sampling import choose, greedy_ids, make_generator
from lstm_repl.snapshot import Snapshot
from lstm_repl.tracing import gates_to_numpy, top_predictions, trace_ids, trace_json
from lstm_repl.vocab import UNK_ID

FUSED_CHUNK = 256  # a suffix longer than this many tokens goes through the fused path
PRIMER = "\n"  # read before the text, so the first typed token already has a prediction
WORD = re.compile(r"\w+")


@dataclass
class Settings:
    temperature: float = 0.8
    top_k: int = 0  # sampling filter; 0 keeps all
    top_p: float = 1.0
    length: int = 200  # tokens streamed by Enter
    seed: int | None = None
    shown: int = 5  # predictions listed in the panel
    ghost_tokens: int = 8  # longest ghost continuation (each token is one gate-path step per keystroke)

    def sample_config(self, length: int | None = None) -> SampleConfig:
        return SampleConfig(self.temperature, self.top_k, self.top_p, self.length if length is None else length, self.seed)


class Session:
    def __init__(self, loaded: Checkpoint, settings: Settings | None = None):
        self.settings = settings or Settings()
        self.generator = make_generator(self.settings.seed)
        self.load(loaded)

    # ------------------------------------------------------------ model and text

    def load(self, loaded: Checkpoint) -> None:
        self.loaded = loaded
        self.model = loaded.model.eval()
        self.vocab = loaded.vocab
        self._sorted_tokens = sorted((text, i) for i, text in enumerate(self.vocab.tokens) if i != UNK_ID)
        self.reset()

    def reset(self) -> None:
        self.ids: list[int] = []
        self.pieces: list[str] = []
        self.partial = ""  # word level: the word being typed, not yet read by the model
        primer_ids = self.vocab.encode(PRIMER) or [1]
        with torch.inference_mode():
            logits, state = self.model(torch.tensor([primer_ids], device=self.model.device))
        self._states: dict[int, State] = {0: state}
        self._logits: dict[int, torch.Tensor] = {0: logits[0, -1]}
        self._gates: list[dict[str, np.ndarray]] = []
        self.version = getattr(self, "version", -1) + 1  # never repeats: views cache on it
        self._snapshot: Snapshot | None = None

    @property
    def text(self) -> str:
        return "".join(self.pieces) + self.partial

    def set_text(self, text: str) -> Snapshot:
        """Make the model have read `text`, reusing every state the new text shares with the old."""
        pieces, partial = self._split(text)
        ids = [self.vocab.ids.get(p, UNK_ID) for p in pieces]
        keep = _common_prefix(self.ids, ids)
        if keep == len(ids) == len(self.ids) and partial == self.partial and pieces == self.pieces:
            return self.snapshot
        self._truncate(keep)
        self.pieces, self.partial = pieces, partial
        self._advance(ids[keep:])
        self.version += 1
        self._snapshot = None
        return self.snapshot

    def _split(self, text: str) -> tuple[list[str], str]:
        pieces = self.vocab.split(text)
        if self.vocab.level == "word" and pieces and WORD.fullmatch(pieces[-1]):
            return pieces[:-1], pieces[-1]  # a word still being typed: it ends at the next space or mark
        return pieces, ""

    def _truncate(self, length: int) -> None:
        del self.ids[length:]
        del self._gates[length:]
        for store in (self._states, self._logits):
            for k in [k for k in store if k > length]:
                del store[k]

    @torch.inference_mode()
    def _advance(self, new_ids: list[int]) -> None:
        if not new_ids:
            return
        start = len(self.ids)
        self._ensure_state(start)
        if len(new_ids) > FUSED_CHUNK:  # a paste: fused path up to the last token, in chunks
            bulk, new_ids = new_ids[:-1], new_ids[-1:]
            self._read_fused(bulk)
        for token in new_ids:
            self._step(token)

    def _read_fused(self, ids: list[int]) -> None:
        for offset in range(0, len(ids), FUSED_CHUNK):
            chunk = ids[offset : offset + FUSED_CHUNK]
            position = len(self.ids)
            logits, state = self.model(torch.tensor([chunk], device=self.model.device), self._states[position])
            self.ids.extend(chunk)
            self._gates.extend([{}] * len(chunk))  # gates of pasted tokens are not kept
            self._states[len(self.ids)] = state
            self._logits[len(self.ids)] = logits[0, -1]

    def _step(self, token: int) -> None:
        position = len(self.ids)
        logits, state, gates = self.model.step(torch.tensor([token], device=self.model.device), self._states[position])
        self.ids.append(token)
        self._states[position + 1] = state
        self._logits[position + 1] = logits[0]
        self._gates.append(gates_to_numpy(gates))

    def _ensure_state(self, position: int) -> None:
        """The state after `position` tokens, recomputed from the nearest kept one if needed."""
        if position in self._states:
            return
        base = max(k for k in self._states if k <= position)
        ids = self.ids[base:position]
        logits, state = self.model(torch.tensor([ids], device=self.model.device), self._states[base])
        self._states[position] = state
        self._logits[position] = logits[0, -1]

    # ------------------------------------------------------------ what the panel shows

    @property
    def snapshot(self) -> Snapshot:
        """What the panel draws for the latest token, built on first look after a change."""
        if self._snapshot is None:
            self._snapshot = self._make_snapshot()
        return self._snapshot

    @torch.inference_mode()
    def _make_snapshot(self) -> Snapshot:
        n = len(self.ids)
        self._ensure_state(n)
        layers = self._latest_gates()
        probability = None
        if n:
            self._ensure_state(n - 1)
            probability = float(self._logits[n - 1].float().softmax(-1)[self.ids[-1]])
        return Snapshot(
            position=n,
            token=self.pieces[-1] if self.pieces else None,
            probability=probability,
            surprisal_bits=None if probability is None else -math.log2(max(probability, 1e-45)),
            top=self.predictions(),
            layers=layers,
            previous_cell=self._previous_cell(n, layers),
            quantities=self.model.rnn.quantities,
            cell_kind=self.model.config.cell,
            extras={"partial": self.partial, "unknown": self.ids[-1] == UNK_ID if self.ids else False},
        )

    def _latest_gates(self) -> list[dict[str, np.ndarray]]:
        n = len(self.ids)
        if n and self._gates[n - 1]:
            return self._gates[n - 1]
        if not n:
            return [{name: np.zeros(self.model.config.hidden, np.float32) for name in self._quantity_symbols()}
                    for _ in range(self.model.config.layers)]
        self._ensure_state(n - 1)  # a pasted token: recompute its gates on demand
        _, _, gates = self.model.step(torch.tensor([self.ids[-1]], device=self.model.device), self._states[n - 1])
        self._gates[n - 1] = gates_to_numpy(gates)
        return self._gates[n - 1]

    def _quantity_symbols(self) -> list[str]:
        return [q.symbol for q in self.model.rnn.quantities]

    def _previous_cell(self, n: int, layers: list[dict[str, np.ndarray]]) -> list[np.ndarray]:
        if n == 0:
            return [np.zeros_like(next(iter(layer.values()))) for layer in layers]
        self._ensure_state(n - 1)
        memory = self._states[n - 1][-1]  # c for LSTM kinds, h for the others
        return [memory[k, 0].float().cpu().numpy() for k in range(memory.shape[0])]

    def predictions(self) -> list[tuple[str, float]]:
        """Top next tokens; at word level, only those starting with the word being typed."""
        probs = self._logits[len(self.ids)].float().softmax(-1)
        if not self.partial:
            return [(self.vocab.token_text(i), p) for i, p in top_predictions(probs, self.settings.shown)]
        candidates = self._tokens_starting_with(self.partial)
        if not candidates:
            return []
        chosen = torch.tensor(candidates)
        values, order = torch.topk(probs[chosen], min(self.settings.shown, len(candidates)))
        return [(self.vocab.token_text(int(chosen[j])), float(v)) for v, j in zip(values, order)]

    def _tokens_starting_with(self, prefix: str) -> list[int]:
        tokens = self._sorted_tokens
        start = bisect.bisect_left(tokens, (prefix, -1))
        end = bisect.bisect_left(tokens, (prefix + "\U0010ffff", -1))
        return [i for _, i in tokens[start:end]]

    # ------------------------------------------------------------ ghost text and streaming

    def ghost(self, max_tokens: int | None = None) -> str:
        return "".join(self.ghost_pieces(max_tokens))

    @torch.inference_mode()
    def ghost_pieces(self, max_tokens: int | None = None) -> list[str]:
        """The greedy continuation after the cursor, token by token, up to the end of the line."""
        limit = max_tokens or self.settings.ghost_tokens
        n = len(self.ids)
        logits, state = self._logits[n], self._states[n]
        out: list[str] = []
        if self.partial:
            completion = self.predictions()
            if not completion:
                return []
            word = completion[0][0]
            out.append(word[len(self.partial):])
            logits, state, _ = self.model.step(torch.tensor([self.vocab.ids[word]], device=self.model.device), state)
            logits = logits[0]
        for token in greedy_ids(self.model, logits, state, limit - len(out)):
            piece = self.vocab.token_text(token)
            if "\n" in piece:
                break
            out.append(piece)
        return out

    @torch.inference_mode()
    def stream(self, length: int | None = None) -> Iterator[str]:
        """Sample a continuation token by token; each token is read into the session as it comes."""
        config = self.settings.sample_config(length)
        if self.partial:  # finish the word being typed first
            self.set_text(self.text + " ")
            yield " "
        for _ in range(config.length):
            token = choose(self._logits[len(self.ids)], config, self.generator)
            piece = self.vocab.token_text(token)
            self.pieces.append(piece)
            self._step(token)
            self.version += 1
            self._snapshot = None  # built when someone looks: a stream draws ~30 of its tokens a second
            yield piece

    def reseed(self, seed: int | None) -> None:
        self.settings = replace(self.settings, seed=seed)
        self.generator = make_generator(seed)

    # ------------------------------------------------------------ saving

    def trace_document(self) -> dict:
        """The session's text and per-token traces, in the trace format (docs/trace-format.md)."""
        traces, _, _ = trace_ids(self.model, self.ids, self.settings.shown, *self._start())
        return trace_json(self.model, self.vocab, traces, self.loaded.name, self.pieces)

    def _start(self) -> tuple[State, torch.Tensor]:
        return self._states[0], self._logits[0].float().softmax(-1)


def _common_prefix(a: list[int], b: list[int]) -> int:
    n = min(len(a), len(b))
    if a[:n] == b[:n]:  # the usual case: typing or deleting at the end
        return n
    for i in range(n):
        if a[i] != b[i]:
            return i
    return n
