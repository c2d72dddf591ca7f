"""Text generation: samplers (greedy, temperature, top-k, top-p, min-p, repetition penalty),
`generate` / `stream` for any `model(tokens) -> logits` (with a KV cache when the model has one),
and beam search.

    from bestiary.generation import generate, stream, beam_search, probs_from_logits
    out = generate(model, prompt_ids, max_new_tokens=64, temperature=0.8, top_p=0.9)
"""

from bestiary.generation.generate import (
    beam_search,
    context_length_of,
    generate,
    stream,
    stream_text,
    supports_cache,
)
from bestiary.generation.sampling import (
    SamplingParams,
    apply_repetition_penalty,
    filtered_logits,
    min_p_filter,
    probs_from_logits,
    sample_next,
    top_k_filter,
    top_p_filter,
)

__all__ = [
    "SamplingParams",
    "apply_repetition_penalty",
    "beam_search",
    "context_length_of",
    "filtered_logits",
    "generate",
    "min_p_filter",
    "probs_from_logits",
    "sample_next",
    "stream",
    "stream_text",
    "supports_cache",
    "top_k_filter",
    "top_p_filter",
]
