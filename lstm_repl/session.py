"""The shell's model state, without any UI: the text read so far, the latest token's gates and
predictions, ghost text and streaming.

Typing one token costs one gate-path step; backspace costs nothing; an edit recomputes only the
changed suffix, from the nearest kept state, a long one (a paste) through the fused path in
chunks. What is kept per token is small (its id and probability): states and gates are kept
sparsely (state_store.py) and recomputed on demand, so hours of typing and streaming fit in
bounded memory, and nothing done per keystroke depends on the text's length.
"""

from __future__ import annotations

import bisect
import math
import re
from array import array
from dataclasses import dataclass, replace
from typing import Iterator

import numpy as np
import torch

from lstm_repl.checkpoint import Checkpoint
from lstm_repl.config import SampleConfig
from lstm_repl.model import State
from lstm_repl.sampling import choose, greedy_ids, make_generator
from lstm_repl.snapshot import Snapshot
from lstm_repl.state_store import CHECKPOINT_EVERY, StateStore
from lstm_repl.tracing import document_header, gates_to_numpy, token_json, top_predictions
from lstm_repl.vocab import UNK_ID

FUSED_CHUNK = 256  # a suffix longer than this many tokens goes through the fused path, in chunks this long
PRIMER = "\n"  # read before the text, so the first typed token already has a prediction
WORD = re.compile(r"\w+")
Layers = list[dict[str, np.ndarray]]


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
        return SampleConfig(
            self.temperature, self.top_k, self.top_p, self.length if length is None else length, self.seed
        )


class Session:
    def __init__(self, loaded: Checkpoint, settings: Settings | None = None):
        self.settings = settings or Settings()
        self.generator = make_generator(self.settings.seed)
        self.loaded = loaded
        self.model = loaded.model.eval()
        self.vocab = loaded.vocab
        self._sorted_tokens: list[tuple[str, int]] = []
        self.ids = array("i")  # token ids read so far
        self.probs = array("f")  # the model's probability for each of them, before reading it
        self._ends = array("q")  # word level: where each token ends in the text (char level: i + 1)
        self._unknown: dict[int, str] = {}  # index -> the text typed there, for tokens read as <unk>
        self.partial = ""  # word level: the word being typed, not yet read by the model
        self.store: StateStore = StateStore()
        self._logits_cache: tuple[int, torch.Tensor] | None = None  # (position, next-token logits there)
        self.version = 0  # changes with every change of what the panel shows: views cache on it
        self._snapshot: Snapshot | None = None
        self.load(loaded)

    # ------------------------------------------------------------ model and text

    def load(self, loaded: Checkpoint) -> None:
        self.loaded = loaded
        self.model = loaded.model.eval()
        self.vocab = loaded.vocab
        self._sorted_tokens = sorted((text, i) for i, text in enumerate(self.vocab.tokens) if i != UNK_ID)
        self.reset()

    def reset(self) -> None:
        self.ids, self.probs, self._ends, self._unknown, self.partial = array("i"), array("f"), array("q"), {}, ""
        primer_ids = self.vocab.encode(PRIMER) or [1]
        with torch.inference_mode():
            _, state = self.model(torch.tensor([primer_ids], device=self.model.device))
        self.store.clear()
        self.store.put(0, state)
        self._changed()

    def _changed(self) -> None:
        """What the panel shows has changed: the one place cached views are invalidated."""
        self.version += 1  # never repeats
        self._snapshot = None
        self._logits_cache = None

    @property
    def text(self) -> str:
        """Everything read so far, as typed (O(length): for saving and tests, not per keystroke)."""
        return "".join(self.piece(i) for i in range(len(self.ids))) + self.partial

    @property
    def pieces(self) -> list[str]:
        return [self.piece(i) for i in range(len(self.ids))]

    def piece(self, index: int) -> str:
        """The text of token `index` as typed (an unknown character keeps its own text)."""
        return self._unknown.get(index) or self.vocab.token_text(self.ids[index])

    def text_length(self) -> int:
        return self._end(len(self.ids)) + len(self.partial)

    def _end(self, count: int) -> int:
        """Characters covered by the first `count` tokens."""
        if count == 0:
            return 0
        return self._ends[count - 1] if self.vocab.level == "word" else count

    def set_text(self, text: str) -> Snapshot:
        """Make the model have read `text`, reusing every state the new text shares with the old.
        Compares the whole text: the shell, which knows where the change is, calls edit()."""
        old = self.text
        start = common_prefix_length(old, text)
        if start == len(old) == len(text):
            return self.snapshot
        return self.edit(start, text[start:])

    def edit(self, start: int, tail: str) -> Snapshot:
        """The text from character `start` on becomes `tail`. Costs what the change costs: the
        tokens from the first changed one on are read again, from the nearest kept state."""
        first = self._first_token_touched(start)
        pieces, partial = self._split(self._text_between(first, start) + tail)
        new_ids = [self.vocab.ids.get(p, UNK_ID) for p in pieces]
        keep = first + self._same_tokens(first, new_ids, pieces)
        if keep == len(self.ids) == first + len(new_ids) and partial == self.partial:
            return self.snapshot
        self._truncate(keep)
        self.partial = partial
        self._advance(new_ids[keep - first :], pieces[keep - first :])
        self._changed()
        return self.snapshot

    def _text_between(self, first: int, start: int) -> str:
        """The text from where token `first` starts up to character `start` (a token or two)."""
        need, parts, index = start - self._end(first), [], first
        while need > sum(map(len, parts)) and index < len(self.ids):
            parts.append(self.piece(index))
            index += 1
        if index == len(self.ids):
            parts.append(self.partial)
        return "".join(parts)[:need]

    def _same_tokens(self, first: int, new_ids: list[int], pieces: list[str]) -> int:
        """How many of the tokens from `first` on stay: same id, and for <unk> the same text."""
        same = common_prefix_length(self.ids[first : first + len(new_ids)].tolist(), new_ids)
        unknown = self._unknown_between(first, first + same)
        return next((i - first for i in unknown if self._unknown[i] != pieces[i - first]), same)

    def _unknown_between(self, low: int, high: int) -> list[int]:
        """Sorted indices of <unk> tokens in [low, high), in whichever way is shorter to look."""
        if high - low < len(self._unknown):
            return [i for i in range(low, high) if i in self._unknown]
        return sorted(i for i in self._unknown if low <= i < high)

    def _first_token_touched(self, start: int) -> int:
        """The first token an edit at character `start` may change: at word level the one before
        it too (typing "m" after "the" makes "them")."""
        if self.vocab.level == "char":
            return min(start, len(self.ids))
        return min(bisect.bisect_right(self._ends, max(0, start - 1)), len(self.ids))

    def _split(self, text: str) -> tuple[list[str], str]:
        pieces = self.vocab.split(text)
        if self.vocab.level == "word" and pieces and WORD.fullmatch(pieces[-1]):
            return pieces[:-1], pieces[-1]  # a word still being typed: it ends at the next space or mark
        return pieces, ""

    def _truncate(self, length: int) -> None:
        for index in self._unknown_between(length, len(self.ids)):
            del self._unknown[index]
        del self.ids[length:], self.probs[length:], self._ends[length:]
        self.store.truncate(length)

    @torch.inference_mode()
    def _advance(self, new_ids: list[int], pieces: list[str]) -> None:
        if not new_ids:
            return
        if len(new_ids) > FUSED_CHUNK:  # a paste: fused path up to the last token, in chunks
            self._read_fused(new_ids[:-1], pieces[:-1])
            new_ids, pieces = new_ids[-1:], pieces[-1:]
        for token, piece in zip(new_ids, pieces):
            self._step(token, piece)

    def _append(self, token: int, piece: str, probability: float) -> None:
        if token == UNK_ID:
            self._unknown[len(self.ids)] = piece
        self.ids.append(token)
        self.probs.append(probability)
        if self.vocab.level == "word":
            self._ends.append(self._end(len(self.ids) - 1) + len(piece))

    def _read_fused(self, ids: list[int], pieces: list[str]) -> None:
        """Read a run of tokens through the fused path, in chunks that end on the store's kept
        positions (so a paste leaves its states behind, every CHECKPOINT_EVERY tokens)."""
        offset = 0
        while offset < len(ids):
            start = len(self.ids)
            size = CHECKPOINT_EVERY - start % CHECKPOINT_EVERY
            chunk = ids[offset : offset + size]
            before = self.logits(start)
            logits, state = self.model(torch.tensor([chunk], device=self.model.device), self.state(start))
            predicted = torch.cat([before[None], logits[0, :-1]]).float().log_softmax(-1)
            probabilities = predicted.gather(1, torch.tensor(chunk, device=predicted.device)[:, None]).exp()
            for token, piece, p in zip(chunk, pieces[offset : offset + size], probabilities[:, 0].tolist()):
                self._append(token, piece, p)
            self.store.put(len(self.ids), state)
            offset += len(chunk)

    def _step(self, token: int, piece: str) -> torch.Tensor:
        """Read one token through the gate path -> the next-token logits after it."""
        position = len(self.ids)
        probability = float(self.logits(position).float().softmax(-1)[token])
        logits, state, gates = self.model.step(torch.tensor([token], device=self.model.device), self.state(position))
        self._append(token, piece, probability)
        self.store.put(position + 1, state, gates_to_numpy(gates))
        return logits[0]

    # ------------------------------------------------------------ states, recomputed where not kept

    @torch.inference_mode()
    def state(self, position: int) -> State:
        """The state after `position` tokens: kept, or recomputed from the nearest kept one
        (the recurrent stack only, no decoder: at most CHECKPOINT_EVERY tokens)."""
        kept = self.store.state(position)
        if kept is not None:
            return kept
        base, state = self.store.nearest(position)
        while base < position:
            end = min(position, (base // CHECKPOINT_EVERY + 1) * CHECKPOINT_EVERY)
            ids = torch.tensor([self.ids[base:end]], device=self.model.device)
            _, state = self.model.read(ids, state)
            self.store.put(end, state)
            base = end
        return state

    @torch.inference_mode()
    def logits(self, position: int) -> torch.Tensor:
        """Next-token logits (V,) after `position` tokens: the decoder of the state's top h."""
        if self._logits_cache is not None and self._logits_cache[0] == position:
            return self._logits_cache[1]
        logits = self.model.decoder(self.state(position)[0][-1, 0])
        self._logits_cache = (position, logits)
        return logits

    @torch.inference_mode()
    def token_gates(self, index: int) -> Layers:
        """Every gate of token `index` (0-based), kept or recomputed from the state before it."""
        gates = self.store.gates(index + 1)
        if gates is None:
            _, _, raw = self.model.step(torch.tensor([self.ids[index]], device=self.model.device), self.state(index))
            gates = gates_to_numpy(raw)
        return gates

    # ------------------------------------------------------------ what the panel shows

    @property
    def snapshot(self) -> Snapshot:
        """What the panel draws for the latest token, built on first look after a change."""
        if self._snapshot is None:
            self._snapshot = self._make_snapshot()
        return self._snapshot

    def _make_snapshot(self) -> Snapshot:
        n = len(self.ids)
        layers = self.token_gates(n - 1) if n else self._zero_gates()
        probability = float(self.probs[n - 1]) if n else None
        return Snapshot(
            position=n,
            token=self.piece(n - 1) if n else None,
            probability=probability,
            surprisal_bits=None if probability is None else -math.log2(max(probability, 1e-45)),
            top=self.predictions(),
            layers=layers,
            previous_cell=self._previous_cell(n, layers),
            quantities=self.model.rnn.quantities,
            cell_kind=self.model.config.cell,
            extras={"partial": self.partial, "unknown": bool(n) and self.ids[-1] == UNK_ID},
        )

    def _zero_gates(self) -> Layers:
        hidden = self.model.config.hidden
        return [{q.symbol: np.zeros(hidden, np.float32) for q in self.model.rnn.quantities}
                for _ in range(self.model.config.layers)]

    def _previous_cell(self, n: int, layers: Layers) -> list[np.ndarray]:
        if n == 0:
            return [np.zeros_like(next(iter(layer.values()))) for layer in layers]
        memory = self.state(n - 1)[-1]  # c for LSTM kinds, h for the others
        return [memory[k, 0].float().cpu().numpy() for k in range(memory.shape[0])]

    def predictions(self) -> list[tuple[str, float]]:
        """Top next tokens; at word level, only those starting with the word being typed."""
        probs = self.logits(len(self.ids)).float().softmax(-1)
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
        logits, state = self.logits(n), self.state(n)
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
            self.edit(self.text_length(), " ")
            yield " "
        for _ in range(config.length):
            token = choose(self.logits(len(self.ids)), config, self.generator)
            piece = self.vocab.token_text(token)
            logits = self._step(token, piece)
            self._changed()  # the snapshot is built when someone looks: a stream draws ~30 tokens a second
            self._logits_cache = (len(self.ids), logits)
            yield piece

    def reseed(self, seed: int | None) -> None:
        self.settings = replace(self.settings, seed=seed)
        self.generator = make_generator(seed)

    # ------------------------------------------------------------ saving

    def trace_header(self, gates_for: int | None = None) -> dict:
        """The trace document's header (docs/trace-format.md), without its tokens."""
        first_gated = self._first_gated(gates_for)
        return document_header(self.model, self.vocab, self.loaded.name, self.text, self.probs, first_gated)

    def trace_tokens(self, gates_for: int | None = None) -> Iterator[dict]:
        """Each token's trace in turn: its probability, the top predictions after it, and its
        gates for the last `gates_for` tokens (all when None). Predictions come from one fused
        call per chunk from the kept states, gates from one walk of steps through the gated end,
        so a long text costs one reading of it and no memory."""
        first_gated = self._first_gated(gates_for)
        gates = self._gates_from(first_gated)
        with torch.inference_mode():
            for start in range(0, len(self.ids), FUSED_CHUNK):
                chunk = self.ids[start : start + FUSED_CHUNK].tolist()
                logits, _ = self.model(torch.tensor([chunk], device=self.model.device), self.state(start))
                probs = logits[0].float().softmax(-1)
                for offset, token in enumerate(chunk):
                    index = start + offset
                    layers = next(gates) if index >= first_gated else None
                    yield token_json(index, token, self.piece(index), float(self.probs[index]),
                                     top_predictions(probs[offset], self.settings.shown), layers, self.vocab)

    def _gates_from(self, first: int) -> Iterator[Layers]:
        """The gates of every token from `first` on: kept ones as kept, the rest stepped, the
        state carried from one to the next."""
        state = None
        for index in range(first, len(self.ids)):
            kept = self.store.gates(index + 1)
            if kept is not None:
                state = None
                yield kept
                continue
            with torch.inference_mode():
                token = torch.tensor([self.ids[index]], device=self.model.device)
                _, state, raw = self.model.step(token, self.state(index) if state is None else state)
            yield gates_to_numpy(raw)

    def trace_document(self, gates_for: int | None = None) -> dict:
        """The whole document in memory (for short texts; :save streams it with trace_tokens)."""
        return {**self.trace_header(gates_for), "tokens": list(self.trace_tokens(gates_for))}

    def _first_gated(self, gates_for: int | None) -> int:
        return 0 if gates_for is None else max(0, len(self.ids) - gates_for)


def common_prefix_length(a, b) -> int:
    """Length of the common prefix of two sequences (str, list or array), by halving: the
    comparisons run in C, so a long text costs microseconds."""
    n = min(len(a), len(b))
    if a[:n] == b[:n]:
        return n
    low, high = 0, n  # a[:low] == b[:low], a[:high] != b[:high]
    while high - low > 1:
        middle = (low + high) // 2
        if a[low:middle] == b[low:middle]:
            low = middle
        else:
            high = middle
    return low
