"""Choosing the next token (temperature, top-k, top-p) and generating text as a stream."""

from __future__ import annotations

from typing import Iterator

import torch

from lstm_repl.config import SampleConfig
from lstm_repl.model import Gates, LanguageModel, State
from lstm_repl.vocab import UNK_ID, Vocab


def filter_logits(logits: torch.Tensor, top_k: int = 0, top_p: float = 1.0) -> torch.Tensor:
    """Mask (to -inf) every token outside the top-k and outside the top-p nucleus. logits: (V,)"""
    if top_k > 0 and top_k < logits.shape[-1]:
        kth = torch.topk(logits, top_k).values[-1]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p < 1.0:
        sorted_logits, order = torch.sort(logits, descending=True)
        cumulative = sorted_logits.softmax(-1).cumsum(-1)
        # drop a token once the tokens before it already reach top_p; the first always stays
        drop_sorted = (cumulative - sorted_logits.softmax(-1)) >= top_p
        logits = logits.masked_fill(drop_sorted.scatter(0, order, drop_sorted), float("-inf"))
    return logits


def choose(logits: torch.Tensor, config: SampleConfig, generator: torch.Generator | None) -> int:
    """One token id from logits (V,): greedy at temperature 0, else sampled. Never <unk>."""
    scaled = logits.float() / (config.temperature or 1.0)  # a new tensor: the caller's stays intact
    scaled[UNK_ID] = float("-inf")
    if config.temperature == 0:
        return int(scaled.argmax())
    if config.top_k or config.top_p < 1.0:
        scaled = filter_logits(scaled, config.top_k, config.top_p)
    return int(torch.multinomial(scaled.softmax(-1), 1, generator=generator))


def make_generator(seed: int | None) -> torch.Generator:
    generator = torch.Generator()
    if seed is None:
        generator.seed()
    else:
        generator.manual_seed(seed)
    return generator


def read_prompt(model: LanguageModel, ids: list[int], state: State | None = None) -> tuple[torch.Tensor | None, State | None]:
    """Run a prompt through the fused path in one call: logits after its last token, and state."""
    if not ids:
        return None, state
    tokens = torch.tensor([ids], dtype=torch.long, device=model.device)
    logits, state = model(tokens, state)
    return logits[0, -1], state


@torch.inference_mode()
def generate(
    model: LanguageModel,
    prompt_ids: list[int],
    config: SampleConfig,
    state: State | None = None,
    start_id: int = 0,
) -> Iterator[tuple[int, Gates]]:
    """Yield (token id, gates of the step that read it) one token at a time, through the gate path.

    Without a prompt, generation starts from `start_id` (say, a newline) and the zero state.
    """
    model.eval()
    generator = make_generator(config.seed)
    logits, state = read_prompt(model, prompt_ids, state)
    if logits is None:
        logits, state, _ = model.step(torch.tensor([start_id], device=model.device), state)
        logits = logits[0]
    for _ in range(config.length):
        token = choose(logits, config, generator)
        step_logits, state, gates = model.step(torch.tensor([token], device=model.device), state)
        logits = step_logits[0]
        yield token, gates


def generate_text(model: LanguageModel, vocab: Vocab, prompt: str, config: SampleConfig) -> Iterator[str]:
    """Yield the text of each generated token; stop early once the output ends with config.stop."""
    produced = ""
    start_id = vocab.ids.get("\n", 1)
    for token, _ in generate(model, vocab.encode(prompt), config, start_id=start_id):
        piece = vocab.token_text(token)
        yield piece
        if config.stop:
            produced = (produced + piece)[-len(config.stop) - 64 :]
            if produced.endswith(config.stop):
                return
