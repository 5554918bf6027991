"""Choosing the next token (temperature, top-k, top-p) and generating text as a stream."""

from __future__ import annotations

from typing import Iterator

import torch

from lstm_repl.config import SampleConfig
from lstm_repl.model.interventions import Interventions
from lstm_repl.model import LanguageModel, State
from lstm_repl.model.packed import pick_token
from lstm_repl.model.precision import resolve_generation_precision
from lstm_repl.data.vocab import UNK_ID, Vocab


def filter_logits(logits: torch.Tensor, top_k: int = 0, top_p: float = 1.0) -> torch.Tensor:
    """Mask (to -inf) every token outside the top-k and outside the top-p nucleus. logits: (V,)"""
    if top_k > 0 and top_k < logits.shape[-1]:
        kth = torch.topk(logits, top_k).values[-1]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p < 1.0:
        sorted_logits, order = torch.sort(logits, descending=True)
        cumulative = sorted_logits.softmax(-1).cumsum(-1)
        # drop a token once the tokens before it already reach top_p; the first always stays (a
        # top_p below float32's smallest number, 1e-320, would otherwise compare as 0 and drop it)
        drop_sorted = (cumulative - sorted_logits.softmax(-1)) >= top_p
        drop_sorted[0] = False
        logits = logits.masked_fill(drop_sorted.scatter(0, order, drop_sorted), float("-inf"))
    return logits


class Sampler:
    """Chooses each next token of one generation: greedy at temperature 0, else a draw from
    softmax(logits / T) kept to the top-k / top-p tokens; never <unk>.

    The rule is pick_token (model/packed.py), one uniform number a token, so that a packed model
    can apply it itself, token after token, given the uniforms (PackedLSTM.decode)."""

    def __init__(self, config: SampleConfig, generator: torch.Generator | None = None, block: int = 256):
        config.check()  # a NaN temperature would pick an index past the vocabulary
        self.config = config
        self.generator = generator  # made on the first draw: greedy choices never need one
        self.block = block
        self._uniforms: list[float] = []
        self._masks: dict[tuple[int, torch.device], torch.Tensor] = {}

    @property
    def filters(self) -> bool:
        """True when a choice needs the logits filtered first (top-k, top-p)."""
        return self.config.temperature > 0 and bool(self.config.top_k or self.config.top_p < 1.0)

    def choose(self, logits: torch.Tensor) -> int:
        """One token id from logits (V,)."""
        temperature, mask = self.config.temperature, self.mask(logits.shape[-1], logits.device)
        if self.filters:  # <unk> out and temperature in first: the nucleus is of what can be chosen
            logits = filter_logits((logits.float() + mask) / temperature, self.config.top_k, self.config.top_p)
            temperature = 1.0
        return pick_token(logits, mask, temperature, self.uniforms(1)[0])

    def uniforms(self, count: int) -> list[float]:
        """The next `count` numbers in [0, 1) of this generation's stream (zeros when greedy)."""
        if self.config.temperature == 0:
            return [0.0] * count
        if len(self._uniforms) < count:
            if self.generator is None:
                self.generator = make_generator(self.config.seed)
            fresh = torch.rand(max(count, self.block), generator=self.generator, dtype=torch.float64)
            self._uniforms += fresh.tolist()
        taken, self._uniforms = self._uniforms[:count], self._uniforms[count:]
        return taken

    def mask(self, vocab_size: int, device: torch.device) -> torch.Tensor:
        """(V,): 0, and -inf at <unk>, which is never chosen."""
        key = (vocab_size, device)
        if key not in self._masks:
            mask = torch.zeros(vocab_size, device=device)
            mask[UNK_ID] = float("-inf")
            self._masks[key] = mask
        return self._masks[key]


def choose(logits: torch.Tensor, config: SampleConfig, generator: torch.Generator | None) -> int:
    """One token id from logits (V,), for a caller that keeps its own generator (greedy needs none)."""
    if generator is None and config.temperature > 0:
        raise ValueError("choose() draws from the caller's generator: pass one, or keep a Sampler")
    return Sampler(config, generator, block=1).choose(logits)


def make_generator(seed: int | None) -> torch.Generator:
    generator = torch.Generator()
    if seed is None:
        generator.seed()
    else:
        generator.manual_seed(seed)
    return generator


def read_prompt(
    model: LanguageModel, ids: list[int], state: State | None = None, edits: Interventions | None = None
) -> tuple[torch.Tensor | None, State | None]:
    """Run a prompt through the fused path in one call (with interventions, the gate path step by
    step): logits after its last token, and state."""
    if not ids:
        return None, state
    if edits:
        for token in ids:
            logits, state, _ = model.step(torch.tensor([token], device=model.device), state, edits=edits)
        return logits[0], state
    tokens = torch.tensor([ids], dtype=torch.long, device=model.device)
    top, state = model.read(tokens, state)  # every position's logits would be T x V: GBs at word level
    return model.decoder(top[0, -1:])[0], state


DECODE_CHUNK = 32  # tokens a packed model generates per call (5-10 ms at batch 1 here)


@torch.inference_mode()
def generate(
    model: LanguageModel,
    prompt_ids: list[int],
    config: SampleConfig,
    state: State | None = None,
    start_id: int = 0,
    edits: Interventions | None = None,
) -> Iterator[int]:
    """Yield token ids as they are chosen (the gate path, batch 1).

    The prompt is read by the fused path in one call. Without a prompt, generation starts from
    `start_id` (say, a newline) and the zero state. `edits`: interventions on every step.
    """
    model.eval()
    precision = resolve_generation_precision(config.precision, model.device, model.config.cell)
    logits, state = read_prompt(model, prompt_ids, state, edits)
    if logits is None:
        logits, state, _ = model.step(torch.tensor([start_id], device=model.device), state, precision, edits)
        logits = logits[0]
    yield from _continue(model, logits, state, Sampler(config), config.length, precision, edits)


@torch.inference_mode()
def greedy_ids(model: LanguageModel, logits: torch.Tensor, state: State, count: int,
               edits: Interventions | None = None) -> list[int]:
    """The `count` most likely next token ids in turn after logits (V,) and state, as temperature 0
    would generate them (the shell's ghost text)."""
    return list(_continue(model, logits, state, Sampler(SampleConfig(temperature=0)), count, "fp32", edits))


@torch.inference_mode()
def continue_from(model: LanguageModel, logits: torch.Tensor, state: State, sampler: Sampler,
                  length: int) -> Iterator[int]:
    """`length` token ids chosen after logits (V,) and state, at the sampler's precision."""
    precision = resolve_generation_precision(sampler.config.precision, model.device, model.config.cell)
    yield from _continue(model, logits, state, sampler, length, precision)


def _continue(model: LanguageModel, logits: torch.Tensor, state: State, sampler: Sampler, length: int,
              precision: str, edits: Interventions | None = None) -> Iterator[int]:
    """`length` tokens chosen after logits (V,) and state. A kind with a packed form generates
    stretches of DECODE_CHUNK tokens without returning to Python, unless top-k/top-p need every
    logit; otherwise a step per token."""
    if length <= 0:
        return
    token = sampler.choose(logits)
    yield token
    packed = None if edits else model.packed(precision)
    if packed is not None and not sampler.filters:
        yield from _decode(packed, token, state, sampler, length - 1, len(logits))
        return
    for _ in range(length - 1):
        step_logits, state, _ = model.step(torch.tensor([token], device=model.device), state, precision, edits)
        token = sampler.choose(step_logits[0])
        yield token


def _decode(packed, token: int, state: State, sampler: Sampler, length: int, vocab_size: int) -> Iterator[int]:
    """`length` more tokens after `token`, DECODE_CHUNK per call of the packed model."""
    state = list(state)
    mask = sampler.mask(vocab_size, state[0].device)
    while length > 0:
        uniforms = sampler.uniforms(min(DECODE_CHUNK, length))
        chosen, state = packed.decode(token, state, uniforms, mask, sampler.config.temperature)
        yield from chosen
        token, length = chosen[-1], length - len(chosen)


def generate_text(model: LanguageModel, vocab: Vocab, prompt: str, config: SampleConfig,
                  edits: Interventions | None = None) -> Iterator[str]:
    """Yield the text of each generated token; stop early once the output ends with config.stop."""
    produced = ""
    for token in generate(model, vocab.encode(prompt), config, start_id=vocab.primer_id(), edits=edits):
        piece = vocab.token_text(token)
        yield piece
        if config.stop:
            produced = (produced + piece)[-len(config.stop) - 64 :]
            if produced.endswith(config.stop):
                return
