"""Autoregressive generation for any language model: sampling, streaming, beam search.

A model is anything callable as `model(tokens) -> logits`, tokens (B, T) long, logits (B, T, V).
If it also has `init_cache(batch)` and accepts `model(tokens, cache=cache)` (every Bestiary language
model whose token mixers can decode incrementally: `decoder_only`, `build_lm(...)` over such a
backbone), generation keeps what the past positions left behind (attention's keys and values, a
recurrent layer's state): after the prompt, each step feeds only the newest token (O(T) or O(1)
work per token instead of re-reading all T). Both paths give the same tokens.

    out = generate(model, prompt, max_new_tokens=50, temperature=0.8, top_p=0.95)
    for token in stream(model, prompt_ids, max_new_tokens=50): print(token)
    best, logprob = beam_search(model, prompt_ids, beam_width=4, max_new_tokens=20)

Context length: a prompt longer than the model's context raises ValueError. If prompt + new tokens
would run past it, the uncached path slides a window (the model sees the last `context_length`
tokens, as nanoGPT does); the cached path raises ValueError up front, because cached positions
cannot be forgotten without recomputing them.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import torch

from bestiary.generation.sampling import SamplingParams, sample_next
from bestiary.layers.mixer import can_decode

__all__ = ["beam_search", "context_length_of", "generate", "stream", "stream_text", "supports_cache"]

Model = Callable[..., torch.Tensor]


def supports_cache(model: Any) -> bool:
    """True for models that can decode incrementally: `init_cache(batch)` exists and doesn't refuse
    (they accept `cache=` in forward)."""
    return can_decode(model)


def context_length_of(model: Any) -> int | None:
    """The longest sequence the model accepts: `model.config.max_seq_len` or `model.max_seq_len`."""
    config = getattr(model, "config", None)
    for obj in (config, model):
        value = getattr(obj, "max_seq_len", None)
        if isinstance(value, int):
            return value
    return None


def _last_logits(model: Model, tokens: torch.Tensor, **kwargs: Any) -> torch.Tensor:
    """Logits of the last position only (B, V).

    Models that split `forward` into `forward_features` and `forward_head` (our language models)
    skip the output projection for every other position: at prefill that projection
    (T x d_model x vocab) can cost as much as the rest of the model for a large vocabulary."""
    if callable(getattr(model, "forward_features", None)) and callable(getattr(model, "forward_head", None)):
        return model.forward_head(model.forward_features(tokens, **kwargs)[:, -1, :])  # (B, V)
    return model(tokens, **kwargs)[:, -1, :]  # (B, V)


def _model_device(model: Any) -> torch.device:
    try:
        return next(model.parameters()).device
    except (AttributeError, StopIteration):
        return torch.device("cpu")


def _as_batch(prompt: torch.Tensor | Sequence[int], device: torch.device) -> torch.Tensor:
    tokens = prompt if isinstance(prompt, torch.Tensor) else torch.tensor(list(prompt), dtype=torch.long)
    if tokens.dim() == 1:
        tokens = tokens[None]
    if tokens.dim() != 2 or tokens.dtype != torch.long:
        raise ValueError(
            f"prompt must be long token ids of shape (T,) or (B, T), got {tuple(tokens.shape)} {tokens.dtype}"
        )
    if tokens.shape[1] == 0:
        raise ValueError("prompt must hold at least one token (start with a BOS/EOS token if you have none)")
    return tokens.to(device)


def _token_steps(
    model: Model,
    tokens: torch.Tensor,
    max_new_tokens: int,
    params: SamplingParams,
    use_cache: bool | None,
    context_length: int | None,
    generator: torch.Generator | None,
) -> Iterator[torch.Tensor]:
    """Yield the next token ids (B,) one step at a time; `tokens` (B, T) is the prompt."""
    if not isinstance(max_new_tokens, int) or max_new_tokens < 0:
        raise ValueError(f"max_new_tokens must be an int >= 0, got {max_new_tokens!r}")
    cache_ok = supports_cache(model)
    if use_cache is None:
        use_cache = cache_ok
    elif use_cache and not cache_ok:
        raise ValueError(
            f"use_cache=True but {type(model).__name__} cannot decode incrementally (no init_cache)"
        )
    if context_length is None:
        context_length = context_length_of(model)
    T = tokens.shape[1]
    if context_length is not None:
        if context_length < T:
            raise ValueError(
                f"the prompt has {T} tokens but the model's context is {context_length}; shorten it "
                "(e.g. keep the last tokens: prompt[..., -context_length:])"
            )
        if use_cache and T + max_new_tokens > context_length:
            raise ValueError(
                f"prompt ({T}) + max_new_tokens ({max_new_tokens}) exceeds the context ({context_length}); "
                "lower max_new_tokens, or pass use_cache=False to slide a window over the last tokens"
            )
    context = tokens
    with torch.no_grad():
        cache = model.init_cache(tokens.shape[0]) if use_cache else None
        logits = None
        for step in range(max_new_tokens):
            if use_cache:
                # step 0: the whole prompt fills the cache; later: only the newest token
                feed = context if step == 0 else context[:, -1:]
                logits = _last_logits(model, feed, cache=cache)  # (B, V)
            else:
                window = context if context_length is None else context[:, -context_length:]
                logits = _last_logits(model, window)  # (B, V): the whole window every step
            nxt = sample_next(
                logits, params, context if params.repetition_penalty != 1.0 else None, generator
            )
            context = torch.cat([context, nxt[:, None]], dim=1)  # (B, T + step + 1)
            yield nxt


def generate(
    model: Model,
    prompt: torch.Tensor | Sequence[int],
    max_new_tokens: int,
    *,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    min_p: float | None = None,
    repetition_penalty: float = 1.0,
    eos_token_id: int | None = None,
    use_cache: bool | None = None,
    context_length: int | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Prompt (T,) or (B, T) -> prompt + continuation (B, T + N), N <= max_new_tokens.

    `temperature=0` is greedy decoding. `use_cache=None` decodes incrementally when the model can.
    Generation stops early once every row has produced `eos_token_id`; rows that finished earlier
    are padded with it. Pass a seeded `torch.Generator` for reproducible sampling.
    """
    params = SamplingParams(temperature, top_k, top_p, min_p, repetition_penalty)
    tokens = _as_batch(prompt, _model_device(model))
    out = [tokens]
    done = torch.zeros(tokens.shape[0], dtype=torch.bool, device=tokens.device)
    for nxt in _token_steps(model, tokens, max_new_tokens, params, use_cache, context_length, generator):
        if eos_token_id is not None:
            nxt = torch.where(done, torch.full_like(nxt, eos_token_id), nxt)
            done |= nxt == eos_token_id
        out.append(nxt[:, None])
        if eos_token_id is not None and bool(done.all()):
            break
    return torch.cat(out, dim=1)


def stream(
    model: Model,
    prompt: torch.Tensor | Sequence[int],
    max_new_tokens: int,
    *,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    min_p: float | None = None,
    repetition_penalty: float = 1.0,
    eos_token_id: int | None = None,
    use_cache: bool | None = None,
    context_length: int | None = None,
    generator: torch.Generator | None = None,
) -> Iterator[int]:
    """Yield new token ids (ints) one at a time for a single prompt; stops after `eos_token_id`.

    Same arguments and the same tokens as `generate` (for one sequence), but lazy: a chat UI can
    print each token as soon as it exists.
    """
    params = SamplingParams(temperature, top_k, top_p, min_p, repetition_penalty)
    tokens = _as_batch(prompt, _model_device(model))
    if tokens.shape[0] != 1:
        raise ValueError(
            f"stream takes one prompt, got a batch of {tokens.shape[0]}; use generate for batches"
        )
    for nxt in _token_steps(model, tokens, max_new_tokens, params, use_cache, context_length, generator):
        token = int(nxt[0])
        yield token
        if eos_token_id is not None and token == eos_token_id:
            return


def stream_text(
    model: Model, tokenizer: Any, prompt: str, max_new_tokens: int, **kwargs: Any
) -> Iterator[str]:
    """Like `stream` but takes and yields text: each yield is the newly completed piece of text.

    A token may end in the middle of a multi-byte character (an emoji is several byte-level
    tokens), so we decode everything generated so far and hold back an incomplete tail ("\ufffd").
    """
    ids: list[int] = []
    shown = ""
    for token in stream(model, tokenizer.encode(prompt), max_new_tokens, **kwargs):
        ids.append(token)
        text = tokenizer.decode(ids)
        if text.endswith("\ufffd"):
            continue
        yield text[len(shown) :]
        shown = text


def beam_search(
    model: Model,
    prompt: torch.Tensor | Sequence[int],
    beam_width: int,
    max_new_tokens: int,
    *,
    eos_token_id: int | None = None,
    length_penalty: float = 0.0,
    context_length: int | None = None,
) -> tuple[list[int], float]:
    """Approximately the most likely continuation: (new token ids, their total log-probability).

    Keeps the `beam_width` best partial sequences by total log-probability; at each step every
    beam is extended by every token and the best `beam_width` extensions survive. A beam that emits
    `eos_token_id` is finished. Finished beams are ranked by logprob / length**length_penalty
    (0 = raw log-probability, which favours short answers; ~1 normalises per token). With
    beam_width=1 this is greedy decoding; with beam_width >= V**(N-1) it is exhaustive search.
    Runs the model on all beams' full sequences each step (no KV cache: simple and exact).
    """
    if not isinstance(beam_width, int) or beam_width < 1:
        raise ValueError(f"beam_width must be an int >= 1, got {beam_width!r}")
    if not isinstance(max_new_tokens, int) or max_new_tokens < 1:
        raise ValueError(f"max_new_tokens must be an int >= 1, got {max_new_tokens!r}")
    tokens = _as_batch(prompt, _model_device(model))
    if tokens.shape[0] != 1:
        raise ValueError("beam_search takes one prompt")
    limit = context_length or context_length_of(model)
    if limit is not None and tokens.shape[1] + max_new_tokens > limit:
        raise ValueError(
            f"prompt ({tokens.shape[1]}) + max_new_tokens ({max_new_tokens}) exceeds the context ({limit})"
        )

    def rank(seq_len: int, logprob: float) -> float:
        return logprob / (seq_len**length_penalty) if length_penalty else logprob

    T = tokens.shape[1]
    beams = tokens  # (K, T + step): alive beams
    scores = torch.zeros(1, device=tokens.device)  # (K,) total log-prob of each alive beam
    finished: list[tuple[list[int], float]] = []
    with torch.no_grad():
        for _ in range(max_new_tokens):
            logprobs = model(beams)[:, -1, :].float().log_softmax(-1)  # (K, V)
            V = logprobs.shape[-1]
            total = (scores[:, None] + logprobs).flatten()  # (K * V,): every one-token extension
            k = min(beam_width, total.numel())
            best, flat_idx = total.topk(k)
            beam_idx, token = flat_idx // V, flat_idx % V
            beams = torch.cat([beams[beam_idx], token[:, None]], dim=1)  # (k, T + step + 1)
            scores = best
            if eos_token_id is not None:
                ended = token == eos_token_id
                for i in ended.nonzero().flatten().tolist():
                    finished.append((beams[i, T:].tolist(), float(scores[i])))
                beams, scores = beams[~ended], scores[~ended]
                if beams.shape[0] == 0:
                    break
                # without length normalisation, alive beams only lose probability: stop once the
                # best finished beam beats every alive one
                if finished and not length_penalty and max(s for _, s in finished) >= float(scores.max()):
                    break
    finished += [(beams[i, T:].tolist(), float(scores[i])) for i in range(beams.shape[0])]
    seq, logprob = max(finished, key=lambda f: rank(len(f[0]), f[1]))
    if math.isnan(logprob):
        raise RuntimeError("beam search produced NaN log-probabilities; check the model's logits")
    return seq, logprob
