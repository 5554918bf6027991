"""Dynamic evaluation on what a session reads (the shell's :learn): the weights after learning
are a function of the text alone, never of when the learning ran.

The text from `origin` (where learning was switched on) is cut at fixed boundaries, every
`segment` tokens. Segment k is tokens [k*L, (k+1)*L] from origin: it is scored with the weights
learned from segments 0..k-1 and then learned from (training/dynamic_eval.py Adapter), on a copy
of the model, so the work can run beside the shell. The session then takes the new weights, the
scores of the segment's tokens (as the weights before the step gave them: nothing is scored by
weights that learned from it), and reads the tokens after the last boundary again.

An edit that changes text learned from rolls the weights back to the last boundary before the
change: to a mark kept every MARK_EVERY segments (the last MARKS_KEPT of them, and the start),
from which the segments still in the text are learned again, to the same bits.

Three steps, so that only `run` need leave the caller's thread: `work` (what to do, read from the
session), `run` (do it, touching only this object and its model, and reading the session's tokens
after the boundary, a slice at a time, to read them ahead with the new weights) and `apply` (to
the session, which takes only the tokens read ahead that are still in its text).
"""

from __future__ import annotations

import copy
from array import array
from dataclasses import dataclass, field
from typing import Callable

import torch

from lstm_repl.config import DynamicConfig
from lstm_repl.model import State
from lstm_repl.session.read_ahead import ReadAhead, read_ahead, reads_fused
from lstm_repl.session.session import Session
from lstm_repl.session.token_text import common_prefix_length
from lstm_repl.training.dynamic_eval import Adapter, GradientStats, text_digest

MARK_EVERY = 10  # segments between the weights kept for rolling back
MARKS_KEPT = 4  # besides the start: with 50-token segments, the last 2,000 tokens or more
SEGMENTS_PER_RUN = 4  # at most, so the shell shows progress through a long paste
CATCH_UP_ROUNDS = 8  # of reading ahead the keys typed while the last round read


@dataclass
class Work:
    keep: int  # segments still in the text: learning rolls back to here first when it learned more
    ids: array  # the session's tokens from origin on, as far as this work needs them
    following: Callable[[], array | None] | None = None  # the session's tokens after the boundary it ends on


@dataclass
class Learned:
    boundary: int  # the session position the weights have read up to (origin + segments * L)
    weights: list[torch.Tensor]
    state: State  # after `boundary` tokens
    first: int  # the session index of the first score
    probabilities: list[float] = field(default_factory=list)  # of the tokens first, first + 1, ...
    moved: float = 0.0  # relative L2 distance of the weights from the anchor
    ahead: ReadAhead | None = None  # the tokens after the boundary, read with the new weights


class SessionLearner:
    def __init__(self, session: Session, config: DynamicConfig, anchor: list[torch.Tensor],
                 stats: GradientStats | None = None):
        """anchor: the trained weights (the decay pulls toward them). The learner starts from the
        weights the session's model has now, at the position it has read to."""
        self.config = config
        self.origin = len(session.read)
        self.model = _unpacked_copy(session.model)
        self._anchor, self._stats = anchor, stats
        self._start_state = session.state(self.origin)
        self.start_weights = [p.detach().clone() for p in session.model.parameters()]
        self.adapter: Adapter | None = None  # made by the first run: the gradient statistics take a while
        self.learned = array("i")  # the tokens learned from, from origin on
        self.marks: dict[int, tuple] = {}

    @property
    def segments(self) -> int:
        return self.adapter.segments if self.adapter is not None else 0

    def outlived(self, session: Session) -> bool:
        """The text before the origin was edited away: learning must start again (from
        start_weights) where the text now ends."""
        return len(session.read) < self.origin

    def work(self, session: Session) -> Work | None:
        """What is left to learn (or undo) for the text the session has read (not outlived);
        None: nothing."""
        ids = session.read.ids
        size = self.config.segment
        read = ids[self.origin:]
        same = common_prefix_length(read, self.learned)
        keep = min(self.segments, max(0, (same - 1) // size))
        available = max(0, (len(read) - 1) // size)
        if keep == self.segments and available <= keep:
            return None
        end = min(available, keep + SEGMENTS_PER_RUN)
        learned = read[: end * size + 1] if end > keep else read[: keep * size + 1]
        boundary = self.origin + len(learned) - 1
        return Work(keep, learned, lambda: _following(session, boundary))

    def run(self, work: Work) -> Learned:
        """Roll back as `work` says, then learn each whole segment of it."""
        adapter = self._adapter()
        size = self.config.segment
        if work.keep < adapter.segments:
            self._roll_back(work.keep, work.ids)
        first = self.origin + adapter.segments * size + 1
        probabilities: list[float] = []
        while (adapter.segments + 1) * size + 1 <= len(work.ids):
            k = adapter.segments
            probabilities += adapter.learn(work.ids[k * size:(k + 1) * size + 1]).exp().tolist()
            if adapter.segments % MARK_EVERY == 0:
                self._mark()
        self.learned = work.ids[: adapter.segments * size + 1] if adapter.segments else array("i")
        boundary = self.origin + adapter.segments * size
        ahead = self._read_ahead(adapter.state, boundary, work.following) if work.following is not None else None
        return Learned(boundary, adapter.weights(), adapter.state, first, probabilities,
                       adapter.distance(), ahead)

    @torch.inference_mode()  # as the session reads: its packed weights are views made so
    def apply(self, learned: Learned, session: Session) -> bool:
        """The session takes the weights, the scores, and reads what follows the boundary again;
        False (nothing done) when the text learned from has changed since (the next work undoes it)."""
        ids = session.read.ids
        if len(ids) < self.origin or common_prefix_length(ids[self.origin:], self.learned) < len(self.learned):
            return False
        for param, weight in zip(session.model.parameters(), learned.weights):
            param.copy_(weight)
        session.relearned(learned.boundary, learned.state, learned.first, learned.probabilities, learned.ahead)
        return True

    def span(self, session: Session) -> dict | None:
        """What the weights learned from: characters, sha256 and start of the text, tokens; None
        before the first segment."""
        if not self.segments:
            return None
        tokens = self.segments * self.config.segment + 1
        text = "".join(session.read.piece(i) for i in range(self.origin, self.origin + tokens))
        return {"characters": len(text), "tokens": tokens, "segments": self.segments,
                "sha256": text_digest(text), "start": text[:80]}

    def distance(self) -> float:
        return self.adapter.distance() if self.adapter is not None else 0.0

    # ------------------------------------------------------------ inside run

    def _read_ahead(self, state: State, boundary: int, following: Callable[[], array | None]) -> ReadAhead | None:
        """The session's tokens after the boundary, read with the new weights from `state` as the
        session would read them, and again for those typed (or changed) meanwhile, until it has
        read them all: the shell's loop then reads none of them itself. None where the session
        reads them with interventions."""
        ahead = None
        for _ in range(CATCH_UP_ROUNDS):
            ids = following()
            if ids is None:
                return None
            fused = reads_fused(len(ids), None)
            if ahead is None or ahead.fused != fused:
                ahead = ReadAhead(boundary, fused)
            same = common_prefix_length(ahead.ids, ids)
            if same == len(ids) == len(ahead.ids):
                break
            keep = ahead.usable(same)
            ahead.cut(keep)
            ahead.add_read(read_ahead(self.model, ahead.states[keep - 1] if keep else state, ids[keep:],
                                      boundary + keep, fused))
        return ahead

    def _adapter(self) -> Adapter:
        if self.adapter is None:
            self.adapter = Adapter(self.model, self.config, self._stats, self._start_state, anchor=self._anchor)
            self._mark()
        return self.adapter

    def _mark(self) -> None:
        self.marks[self.adapter.segments] = self.adapter.mark()
        dropped = sorted(k for k in self.marks if k)[:-MARKS_KEPT]
        for k in dropped:
            del self.marks[k]

    def _roll_back(self, keep: int, ids: array) -> None:
        """Back to `keep` segments: from the nearest mark at or before it, learning again the
        segments from there (their text is unchanged, so the weights come out the same)."""
        for k in [k for k in self.marks if k > keep]:
            del self.marks[k]
        adapter, size = self.adapter, self.config.segment
        adapter.restore(self.marks[max(self.marks)])
        while adapter.segments < keep:
            k = adapter.segments
            adapter.learn(ids[k * size:(k + 1) * size + 1])


def _unpacked_copy(model):
    """A deep copy of the model without its packs (compiled snapshots of its weights, whose views
    a copy may not take): the copy packs its own weights when it first steps."""
    return copy.deepcopy(model, memo={id(model._packed): {}})


def _following(session: Session, boundary: int) -> array | None:
    """The session's tokens from `boundary` on, for learning's thread to read ahead: a slice, taken
    whole under Python's lock (the session checks them again before it takes them). None while
    interventions are set (the session reads through them, the thread does not)."""
    return None if session.interventions else session.read.ids[boundary:]
