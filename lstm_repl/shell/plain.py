"""The shell without a terminal (`cat book.txt | lstm-repl`): the model reads everything piped in,
then writes one continuation of it as plain text, shown as generate shows it (terminal_safe: a
control character or escape sequence the model writes comes out as \\x1b and the like).

The input is read in blocks through the fused path with the state carried from block to block,
and nothing is kept per token, so a megabyte or a gigabyte is read in the same memory.
"""

from __future__ import annotations

from collections import deque
from typing import BinaryIO, TextIO

import torch

from lstm_repl.model import LanguageModel, State
from lstm_repl.data.piped_input import decoded_blocks
from lstm_repl.session.sampling import Sampler, StopText, continue_from
from lstm_repl.session.session import Settings
from lstm_repl.terminal_text import terminal_safe
from lstm_repl.session.token_text import WORD
from lstm_repl.data.bpe import BpeVocab, safe_cut
from lstm_repl.data.vocab import Vocab

MAX_TOKENS_PER_CALL = 4096  # tokens per fused call


def run_plain(model: LanguageModel, vocab: Vocab, settings: Settings, source: BinaryIO, out: TextIO,
              prompt: str = "") -> None:
    """prompt: read before the source (repl --prompt-file)."""
    config = settings.sampling
    recent: deque[int] = deque(maxlen=config.repeat_window)  # the input's last tokens, for the repetition penalty
    state, logits = read_all(model, vocab, source, recent, prompt)
    if logits is None:
        return  # nothing but whitespace came in: nothing to continue
    sampler, stops = Sampler(config), StopText(config.stops)
    sampler.saw(recent)
    pending = b""  # bpe: bytes of a character begun by one token and finished by the next
    try:
        for token in continue_from(model, logits, state, sampler, config.length):
            if isinstance(vocab, BpeVocab):
                (spelled,), pending = vocab.spell([token], pending)
            else:
                spelled = vocab.token_text(token)
            piece, stopped = stops.cut(spelled)
            out.write(terminal_safe(piece))
            out.flush()
            if stopped:
                break
    finally:  # Ctrl-C too: the text so far ends its line
        out.write("\n")
        out.flush()


@torch.inference_mode()
def read_all(model: LanguageModel, vocab: Vocab, source: BinaryIO, recent: deque | None = None,
             prompt: str = "") -> tuple[State, torch.Tensor | None]:
    """The state after reading the primer, `prompt` and all of `source`, and the next-token
    logits there (None when the input held no text). `recent` (a bounded deque) gets the last ids read."""
    model.eval()
    recent = recent if recent is not None else deque(maxlen=0)
    _, state = model(torch.tensor([[vocab.primer_id()]], device=model.device))
    logits, seen_text, carried = None, False, ""
    for text in _with_prompt(prompt, decoded_blocks(source)):
        seen_text = seen_text or bool(text.strip())
        ids, carried = _block_ids(vocab, carried + text)
        recent.extend(ids)
        for start in range(0, len(ids), MAX_TOKENS_PER_CALL):
            state, logits = _read(model, ids[start : start + MAX_TOKENS_PER_CALL], state)
    if carried:  # the last word of the input
        last = vocab.tokenize(carried)[0]
        recent.extend(last)
        state, logits = _read(model, last, state)
    return state, logits if seen_text else None


def _block_ids(vocab: Vocab, text: str) -> tuple[list[int], str]:
    """A block's token ids, and the text at its end that may go on in the next block (a word;
    at bpe level all after the last safe cut)."""
    if isinstance(vocab, BpeVocab):
        cut = safe_cut(text, 0, len(text))
        return vocab.encode(text[:cut]), text[cut:]
    pieces = vocab.split(text)
    carried = pieces.pop() if vocab.level == "word" and pieces and _may_go_on(pieces[-1]) else ""
    return [vocab.ids.get(p, 0) for p in pieces], carried


def _with_prompt(prompt: str, blocks):
    if prompt:
        yield prompt
    yield from blocks


def _may_go_on(piece: str) -> bool:
    """A word or a run of spaces at the end of a block may continue in the next one."""
    return bool(WORD.fullmatch(piece)) or (piece.isspace() and "\n" not in piece)


def _read(model: LanguageModel, ids: list[int], state: State) -> tuple[State, torch.Tensor]:
    """The stack reads ids; only the last position is decoded (a block's logits would be
    tokens x vocabulary: hundreds of MB at word level)."""
    out, state = model.read(torch.tensor([ids], device=model.device), state)
    return state, model.decoder(out[0, -1])
