"""A session's text as a trace document (docs/trace-format.md), streamed token by token so a long
text costs one reading of it and no memory: what `:save` writes."""

from __future__ import annotations

from typing import Iterator

import torch

from lstm_repl.session.read_ahead import FUSED_CHUNK, Layers
from lstm_repl.session.session import Session
from lstm_repl.session.tracing import document_header, gates_to_numpy, token_json, top_predictions


def trace_header(session: Session, gates_for: int | None = None) -> dict:
    """The document's header, without its tokens."""
    first_gated = _first_gated(session, gates_for)
    header = document_header(session.model, session.vocab, session.loaded.name, session.text,
                             session.read.probs, first_gated)
    if session.interventions:
        header["interventions"] = session.interventions.to_json()
    return header


def trace_tokens(session: Session, gates_for: int | None = None) -> Iterator[dict]:
    """Each token's trace in turn: its probability, the top predictions after it, and its gates
    for the last `gates_for` tokens (all when None). Predictions come from one fused call per
    chunk from the kept states, gates from one walk of steps through the gated end."""
    first_gated = _first_gated(session, gates_for)
    gates = _gates_from(session, first_gated)
    ids = session.ids
    for start in range(0, len(ids), FUSED_CHUNK):
        chunk = ids[start : start + FUSED_CHUNK].tolist()
        with torch.inference_mode():  # never around a yield: a reader that stops would leave it on
            probs = _chunk_logits(session, start, chunk).float().softmax(-1)
            tops = [top_predictions(row, session.settings.shown) for row in probs]
        for offset, token in enumerate(chunk):
            index = start + offset
            layers = next(gates) if index >= first_gated else None
            yield token_json(index, token, session.piece(index), float(session.read.probs[index]), tops[offset],
                             layers, session.vocab)


def trace_document(session: Session, gates_for: int | None = None) -> dict:
    """The whole document in memory (for short texts; :save streams it with trace_tokens)."""
    return {**trace_header(session, gates_for), "tokens": list(trace_tokens(session, gates_for))}


def _gates_from(session: Session, first: int) -> Iterator[Layers]:
    """The gates of every token from `first` on: kept ones as kept, the rest stepped, the state
    carried from one to the next."""
    state = None
    for index in range(first, len(session.ids)):
        kept = session.store.gates(index + 1)
        if kept is not None:
            state = None
            yield kept
            continue
        with torch.inference_mode():
            _, state, raw = session.gate_step(session.ids[index], session.state(index) if state is None else state,
                                              index)
        yield gates_to_numpy(raw)


def _chunk_logits(session: Session, start: int, chunk: list[int]) -> torch.Tensor:
    """Next-token logits after each token of the chunk: one fused call, or with interventions
    set, the gate path step by step."""
    state = session.state(start)
    if not session.interventions:
        return session.model(torch.tensor([chunk], device=session.model.device), state)[0][0]
    rows = []
    for index, token in enumerate(chunk, start):
        logits, state, _ = session.gate_step(token, state, index)
        rows.append(logits[0])
    return torch.stack(rows)


def _first_gated(session: Session, gates_for: int | None) -> int:
    return 0 if gates_for is None else max(0, len(session.ids) - gates_for)
