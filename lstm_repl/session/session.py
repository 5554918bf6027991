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
from array import array
from dataclasses import dataclass, field, replace
from typing import Iterator

import numpy as np
import torch

from lstm_repl.model.checkpoint import Checkpoint
from lstm_repl.config import SampleConfig
from lstm_repl.errors import ConfigError
from lstm_repl.model.interventions import Interventions
from lstm_repl.model import State
from lstm_repl.session.sampling import Sampler, StopText, make_generator
from lstm_repl.snapshot import Snapshot
from lstm_repl.session.read_ahead import (Layers, ReadAhead, chunk_read, chunk_sizes,
                                          next_token_logits, reads_fused)
from lstm_repl.session.state_store import CHECKPOINT_EVERY, StateStore
from lstm_repl.session.token_text import TokenText, common_prefix_length
from lstm_repl.session.tracing import gates_to_numpy, surprisal_bits, top_predictions
from lstm_repl.data.vocab import UNK_ID

@dataclass(frozen=True)
class Settings:
    """How the shell samples (the sampler's own settings, checked by SampleConfig, as the CLI's are;
    `sampling.length` is what Enter streams) and how much the panel and the ghost text show."""

    sampling: SampleConfig = field(default_factory=SampleConfig)
    shown: int = 5  # predictions listed in the panel
    ghost_tokens: int = 8  # longest ghost continuation (each token is one gate-path step per keystroke)

    def __post_init__(self) -> None:
        if self.sampling.length < 1:
            raise ConfigError(f"Enter streams at least 1 token; got a length of {self.sampling.length}")

    def sample_config(self, length: int | None = None) -> SampleConfig:
        return self.sampling if length is None else replace(self.sampling, length=length)


class Session:
    def __init__(self, loaded: Checkpoint, settings: Settings | None = None):
        self.settings = settings or Settings()
        self.generator = make_generator(self.settings.sampling.seed)
        self.loaded = loaded
        self.model = loaded.model.eval()
        self.vocab = loaded.vocab
        self._sorted_tokens: list[tuple[str, int]] = []
        self.read = TokenText(loaded.vocab)  # the tokens read so far, with their probabilities
        self.store: StateStore = StateStore()
        self.interventions = Interventions()  # taken by every step while set (interventions.py)
        self._edits_from = 0  # the first token they apply to: the last one read when they were set
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
        self.interventions, self._edits_from = Interventions(), 0  # another model: other layers and units
        self.reset()

    def reset(self) -> None:
        self.read = TokenText(self.vocab)
        primer_ids = [self.vocab.primer_id()]
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
    def ids(self):
        return self.read.ids

    @property
    def partial(self) -> str:
        return self.read.partial

    @property
    def text(self) -> str:
        return self.read.text

    def piece(self, index: int) -> str:
        return self.read.piece(index)

    def text_length(self) -> int:
        return self.read.text_length()

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
        read = self.read
        first = read.first_token_touched(start)
        new_ids, pieces, partial = read.tokenize(read.text_between(first, start) + tail)
        keep = first + read.same_tokens(first, new_ids, pieces)
        if keep == len(read) == first + len(new_ids) and partial == read.partial:
            return self.snapshot
        read.truncate(keep)
        self.store.truncate(keep)
        self._edits_from = min(self._edits_from, keep)  # what is read again now takes the interventions set
        read.partial = partial
        self._advance(new_ids[keep - first :], pieces[keep - first :])
        self._changed()
        return self.snapshot

    @torch.inference_mode()
    def _advance(self, new_ids: list[int], pieces: list[str]) -> None:
        if new_ids:
            self._read(new_ids, pieces, reads_fused(len(new_ids), self.interventions))

    def _read(self, ids: list[int], pieces: list[str], fused: bool) -> None:
        """Read a stretch: through the fused path up to its last token (a paste), or not."""
        if fused:
            self._read_fused(ids[:-1], pieces[:-1])
            ids, pieces = ids[-1:], pieces[-1:]
        for token, piece in zip(ids, pieces):
            self._step(token, piece)

    def _read_fused(self, ids: list[int], pieces: list[str]) -> None:
        """Read a run of tokens through the fused path, in chunks that end on the store's kept
        positions (so a paste leaves its states behind, every CHECKPOINT_EVERY tokens)."""
        offset = 0
        for size in chunk_sizes(len(self.read), len(ids)):
            start = len(self.read)
            probabilities, state = chunk_read(self.model, self.state(start), ids[offset : offset + size])
            for token, piece, p in zip(ids[offset : offset + size], pieces[offset : offset + size], probabilities):
                self.read.append(token, piece, p)
            self.store.put(len(self.read), state)
            offset += size

    def _step(self, token: int, piece: str) -> torch.Tensor:
        """Read one token through the gate path -> the next-token logits after it."""
        position = len(self.read)
        probability = float(self.logits(position).float().softmax(-1)[token])  # as read_ahead.gate_read
        logits, state, gates = self.gate_step(token, self.state(position), position)
        self.read.append(token, piece, probability)
        self.store.put(position + 1, state, gates_to_numpy(gates))
        return logits[0]

    @torch.inference_mode()
    def relearned(self, boundary: int, state: State, first: int, probabilities: list[float],
                  ahead: ReadAhead | None = None) -> None:
        """The model's weights were changed by learning from the text up to `boundary` tokens
        (training/session_learning.py): tokens first, first + 1, ... take the probabilities it
        scored them with, the state after `boundary` tokens is `state`, and the tokens from there on
        are read again with the new weights, as typing reads them (the one at the boundary keeps
        its score: the weights before the change gave it). `ahead`: those tokens as learning's
        thread read them with the new weights; the ones still in the text are taken, not re-read."""
        read = self.read
        tail = list(range(boundary, len(read)))
        ids, pieces = [read.ids[i] for i in tail], [read.piece(i) for i in tail]
        scores = {boundary: read.probs[boundary]} if tail else {}  # scored before the weights changed: kept
        scores.update((first + offset, probability) for offset, probability in enumerate(probabilities))
        read.truncate(boundary)
        self.store.truncate(boundary)
        self.store.put(boundary, tuple(t.clone() for t in state))
        self._logits_cache = None
        fused = reads_fused(len(ids), self.interventions)
        taken = self._take_ahead(ahead, ids, pieces, fused)
        if taken < len(ids):
            self._read(ids[taken:], pieces[taken:], fused)
        for index, probability in scores.items():
            read.probs[index] = probability
        self._changed()

    def _take_ahead(self, ahead: ReadAhead | None, ids: list[int], pieces: list[str], fused: bool) -> int:
        """The leading tokens of `ids` that `ahead` read as this stretch is read, appended as
        reading them would append them -> how many."""
        if ahead is None or ahead.fused != fused or ahead.start != len(self.read) or self.interventions:
            return 0
        same = common_prefix_length(ahead.ids, array("i", ids))
        count = len(ids) if same == len(ids) == len(ahead.ids) else ahead.usable(same)
        for k in range(count):
            position = len(self.read)
            self.read.append(ids[k], pieces[k], ahead.probabilities[k])
            if ahead.states[k] is not None:
                self.store.put(position + 1, ahead.states[k], ahead.gates[k])
        return count

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
            plain = end if not self.interventions else max(base, min(end, self._edits_from))
            if plain > base:
                _, state = self.model.read(torch.tensor([self.read.ids[base:plain]], device=self.model.device), state)
            for index in range(plain, end):  # only the gate path can take interventions
                _, state, _ = self.gate_step(self.read.ids[index], state, index)
            self.store.put(end, state)
            base = end
        return state

    def edits_for(self, index: int) -> Interventions | None:
        """The interventions reading token `index` takes: those set, from the token they were set at."""
        return self.interventions if self.interventions and index >= self._edits_from else None

    def gate_step(self, token: int, state: State, index: int):
        """Token `index` through the gate path, with its interventions -> logits, state, gates."""
        return self.model.step(torch.tensor([token], device=self.model.device), state, edits=self.edits_for(index))

    def intervene(self, interventions: Interventions) -> None:
        """Set the interventions every step takes from now on, from the last token read: it is read
        again with them, so the predictions after it (and the ghost text) show them at once. The
        states the previous ones shaped are forgotten (recomputed without them when looked at):
        the text before is read as the model reads it plainly."""
        if self.interventions:
            self.store.truncate(self._edits_from)
        n = len(self.read)
        self.interventions, self._edits_from = interventions, max(n - 1, 0)
        if n and interventions:
            with torch.inference_mode():
                _, state, gates = self.gate_step(self.read.ids[n - 1], self.state(n - 1), n - 1)
            self.store.put(n, state, gates_to_numpy(gates))
        self._changed()

    def interventions_from(self) -> int:
        """Characters of the text read plainly before the interventions set took over (a saved
        session restores them there)."""
        return self.read.end(self._edits_from + 1) if len(self.read) else 0

    @torch.inference_mode()
    def logits(self, position: int) -> torch.Tensor:
        """Next-token logits (V,) after `position` tokens: the decoder of the state's top h."""
        if self._logits_cache is not None and self._logits_cache[0] == position:
            return self._logits_cache[1]
        logits = next_token_logits(self.model, self.state(position))
        self._logits_cache = (position, logits)
        return logits

    @torch.inference_mode()
    def token_gates(self, index: int) -> Layers:
        """Every gate of token `index` (0-based), kept or recomputed from the state before it."""
        gates = self.store.gates(index + 1)
        if gates is None:
            _, _, raw = self.gate_step(self.read.ids[index], self.state(index), index)
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
        n = len(self.read)
        layers = self.token_gates(n - 1) if n else self._zero_gates()
        probability = float(self.read.probs[n - 1]) if n else None
        return Snapshot(
            position=n,
            token=self.read.shown(n - 1) if n else None,
            probability=probability,
            surprisal_bits=surprisal_bits(probability),
            top=self.predictions(),
            layers=layers,
            previous_cell=self._previous_cell(n, layers),
            quantities=self.model.rnn.quantities,
            cell_kind=self.model.config.cell,
            extras={"partial": self.partial, "unknown": bool(n) and self.read.ids[-1] == UNK_ID},
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
        probs = self.logits(len(self.read)).float().softmax(-1)
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

    # ------------------------------------------------------------ streaming

    @torch.inference_mode()
    def stream(self, length: int | None = None) -> Iterator[str]:
        """Sample a continuation token by token; each token is read into the session as it comes.
        A stop string ends it: the text is cut just after the stop (a word token is read again cut)."""
        config = self.settings.sample_config(length)
        if self.partial:  # finish the word being typed first
            self.edit(self.text_length(), " ")
            yield " "
        sampler, stops = Sampler(config, self.generator, block=1), StopText(config.stops)
        sampler.saw(self.ids[-config.repeat_window:].tolist() if config.penalises else [])
        for _ in range(config.length):
            token = sampler.choose(self.logits(len(self.read)))
            piece = self.read.spelled(token)
            logits = self._step(token, piece)
            self._changed()  # the snapshot is built when someone looks: a stream draws ~30 tokens a second
            self._logits_cache = (len(self.read), logits)
            kept, stopped = stops.cut(piece)
            if len(kept) < len(piece):
                self.edit(self.text_length() - len(piece) + len(kept), "")
            yield kept
            if stopped:
                return

    def fresh_seed(self) -> int:
        """Reseed with a seed drawn from the sampler's own stream (a seeded session, or its
        replay, draws the same one) -> that seed."""
        seed = int(torch.randint(0, 1 << 62, (1,), generator=self.generator))
        self.reseed(seed)
        return seed

    def reseed(self, seed: int | None) -> None:
        self.settings = replace(self.settings, sampling=replace(self.settings.sampling, seed=seed))
        self.generator = make_generator(seed)
