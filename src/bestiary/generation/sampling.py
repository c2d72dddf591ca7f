"""Turning next-token logits into a choice: the samplers, each a small function on (B, V) logits.

- **greedy**: argmax. Deterministic, and prone to loops ("the the the").
- **temperature** T: sample from softmax(logits / T). T < 1 sharpens, T > 1 flattens, T = 0 is greedy.
- **top-k** (Fan, Lewis & Dauphin, "Hierarchical Neural Story Generation", 2018, arXiv:1805.04833):
  keep only the k most likely tokens.
- **top-p / nucleus** (Holtzman et al., "The Curious Case of Neural Text Degeneration", 2019,
  arXiv:1904.09751): keep the smallest set of most likely tokens whose mass reaches p.
- **min-p** (Nguyen et al., "Turning Up the Heat: Min-p Sampling for Creative and Coherent LLM
  Outputs", 2024, arXiv:2407.01082): keep tokens whose probability is at least `min_p` times the
  top token's, so the cut adapts to how confident the model is.
- **repetition penalty** (Keskar et al., "CTRL", 2019, arXiv:1909.05858): tokens already in the
  context get their logit divided by the penalty when positive, multiplied when negative (so
  both push the probability down).

Filters set removed logits to -inf; `probs_from_logits` chains them in the order
repetition penalty -> temperature -> top-k -> top-p -> min-p, the order `generate` uses.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from bestiary.options import option, validate

__all__ = [
    "SamplingParams",
    "apply_repetition_penalty",
    "filtered_logits",
    "min_p_filter",
    "probs_from_logits",
    "sample_next",
    "top_k_filter",
    "top_p_filter",
]

NEG_INF = float("-inf")


@dataclass(frozen=True)
class SamplingParams:
    """How to choose each next token. `temperature=0` means greedy (argmax).

    Validated on construction with the options mechanism of `bestiary.options` (types from the
    annotations, declared ranges; NaN is never in range): temperature >= 0, top_k >= 1,
    0 < top_p <= 1, 0 <= min_p <= 1, repetition_penalty > 0 (1 = off). None disables a filter.
    A bad value raises ConfigError (a ValueError) naming the parameter.
    """

    temperature: float = option(1.0, min=0.0)
    top_k: int | None = option(None, min=1)
    top_p: float | None = option(None, gt=0.0, max=1.0)
    min_p: float | None = option(None, min=0.0, max=1.0)
    repetition_penalty: float = option(1.0, gt=0.0)

    def __post_init__(self) -> None:
        validate(self, model="sampling")

    @property
    def greedy(self) -> bool:
        return self.temperature == 0


def _check_logits(logits: torch.Tensor) -> None:
    if not isinstance(logits, torch.Tensor) or logits.dim() != 2:
        raise ValueError(
            f"expected logits of shape (B, V), got {getattr(logits, 'shape', type(logits).__name__)}"
        )
    if not logits.is_floating_point():
        raise TypeError(f"expected floating-point logits, got {logits.dtype}")


def apply_repetition_penalty(logits: torch.Tensor, context: torch.Tensor, penalty: float) -> torch.Tensor:
    """CTRL penalty: for every token id present in `context` (B, T), divide its logit by `penalty`
    if positive, multiply if negative. logits (B, V) -> new logits (B, V)."""
    _check_logits(logits)
    SamplingParams(repetition_penalty=penalty)  # the same declared range as in generate
    if penalty == 1.0 or context.numel() == 0:
        return logits
    picked = logits.gather(1, context)  # (B, T): the logit of each context token (repeats are fine)
    picked = torch.where(picked > 0, picked / penalty, picked * penalty)
    return logits.scatter(1, context, picked)


def top_k_filter(logits: torch.Tensor, k: int) -> torch.Tensor:
    """Keep exactly the k largest logits per row (ties broken by index), set the rest to -inf."""
    _check_logits(logits)
    SamplingParams(top_k=k)
    if k >= logits.shape[-1]:
        return logits
    idx = logits.topk(k, dim=-1).indices  # (B, k)
    out = torch.full_like(logits, NEG_INF)
    return out.scatter(1, idx, logits.gather(1, idx))


def top_p_filter(logits: torch.Tensor, p: float) -> torch.Tensor:
    """Nucleus: keep the smallest set of most likely tokens whose total probability is >= p."""
    _check_logits(logits)
    SamplingParams(top_p=p)
    if p >= 1.0:
        return logits
    sorted_logits, order = logits.sort(dim=-1, descending=True)  # (B, V)
    probs = sorted_logits.softmax(-1)
    mass_before = probs.cumsum(-1) - probs  # probability of all strictly more likely tokens
    remove_sorted = mass_before >= p  # the prefix already reached p without this token
    remove_sorted[:, 0] = False  # the top token always stays
    remove = remove_sorted.scatter(1, order, remove_sorted)  # back to vocabulary order
    return logits.masked_fill(remove, NEG_INF)


def min_p_filter(logits: torch.Tensor, min_p: float) -> torch.Tensor:
    """Keep tokens with probability >= min_p * (probability of the most likely token)."""
    _check_logits(logits)
    SamplingParams(min_p=min_p)
    probs = logits.softmax(-1)
    threshold = min_p * probs.max(dim=-1, keepdim=True).values  # (B, 1)
    return logits.masked_fill(probs < threshold, NEG_INF)


def filtered_logits(
    logits: torch.Tensor, params: SamplingParams, context: torch.Tensor | None = None
) -> torch.Tensor:
    """Apply repetition penalty, temperature and the truncation filters to logits (B, V)."""
    _check_logits(logits)
    if logits.dtype not in (torch.float32, torch.float64):
        logits = logits.float()  # bf16/fp16 logits: softmax and cumsum want more precision
    if context is not None and params.repetition_penalty != 1.0:
        logits = apply_repetition_penalty(logits, context, params.repetition_penalty)
    if params.greedy:
        return logits
    logits = logits / params.temperature
    if params.top_k is not None:
        logits = top_k_filter(logits, params.top_k)
    if params.top_p is not None:
        logits = top_p_filter(logits, params.top_p)
    if params.min_p is not None:
        logits = min_p_filter(logits, params.min_p)
    return logits


def probs_from_logits(
    logits: torch.Tensor,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    min_p: float | None = None,
    repetition_penalty: float = 1.0,
    context: torch.Tensor | None = None,
) -> torch.Tensor:
    """The distribution the sampler draws from (B, V) (one-hot at the argmax when temperature=0).
    Handy to plot what each strategy does to a model's prediction."""
    params = SamplingParams(temperature, top_k, top_p, min_p, repetition_penalty)
    squeeze = logits.dim() == 1
    logits2 = logits[None] if squeeze else logits
    out = filtered_logits(logits2, params, context)
    if params.greedy:
        probs = torch.zeros_like(out).scatter(1, out.argmax(-1, keepdim=True), 1.0)
    else:
        probs = out.softmax(-1)
    return probs[0] if squeeze else probs


def sample_next(
    logits: torch.Tensor,
    params: SamplingParams,
    context: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Choose the next token for each row: logits (B, V) -> ids (B,)."""
    out = filtered_logits(logits, params, context)
    if params.greedy:
        return out.argmax(-1)
    return torch.multinomial(out.softmax(-1), 1, generator=generator).squeeze(1)  # (B,)
