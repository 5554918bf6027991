"""The ghost text: the model's greedy continuation after the cursor, up to the end of the line."""

from __future__ import annotations

import torch

from lstm_repl.session.sampling import greedy_ids
from lstm_repl.session.session import Session


@torch.inference_mode()
def ghost_pieces(session: Session, max_tokens: int | None = None) -> list[str]:
    """The continuation token by token; at word level it first finishes the word being typed."""
    limit = max_tokens or session.settings.ghost_tokens
    n = len(session.ids)
    logits, state = session.logits(n), session.state(n)
    out: list[str] = []
    if session.partial:
        completion = session.predictions()
        if not completion:
            return []
        word = completion[0][0]
        out.append(word[len(session.partial):])
        token = torch.tensor([session.vocab.ids[word]], device=session.model.device)
        logits, state, _ = session.model.step(token, state, edits=session.interventions or None)
        logits = logits[0]
    tokens = []
    for token in greedy_ids(session.model, logits, state, limit - len(out), session.interventions or None):
        if "\n" in session.vocab.token_text(token):
            break
        tokens.append(token)
    return out + session.read.spelled_after(tokens)  # bpe: the characters the tokens complete


def ghost(session: Session, max_tokens: int | None = None) -> str:
    return "".join(ghost_pieces(session, max_tokens))
