"""Shared by the attention-zoo tests: copy a transformers decoder's weights into a CausalLM."""

import re

import torch

# transformers decoder layer names -> ours (CausalLM of Blocks); the attention's own names are per model
COMMON_NAMES = [
    (r"model\.embed_tokens\.weight", r"tok_embed.weight"),
    (r"model\.layers\.(\d+)\.input_layernorm\.weight", r"blocks.\1.mixer_norm.weight"),
    (r"model\.layers\.(\d+)\.post_attention_layernorm\.weight", r"blocks.\1.mlp_norm.weight"),
    (r"model\.layers\.(\d+)\.mlp\.(gate|up|down)_proj\.weight", r"blocks.\1.mlp.\2.weight"),
    (r"model\.norm\.weight", r"norm.weight"),
    (r"lm_head\.weight", r"lm_head.weight"),
]


def copy_hf_weights(ours, hf, names):
    """Write every tensor of `hf` into `ours` under the renamed key; every key of ours must be hit.

    names: (pattern, replacement) rules tried in order, COMMON_NAMES appended."""
    ours_state = ours.state_dict()
    written = set()
    for hf_key, tensor in hf.state_dict().items():
        for pattern, replacement in [*names, *COMMON_NAMES]:
            if re.fullmatch(pattern, hf_key):
                key = re.sub(pattern, replacement, hf_key)
                with torch.no_grad():
                    ours_state[key].copy_(tensor)
                written.add(key)
                break
        else:
            raise KeyError(f"no rule for {hf_key}")
    missing = set(ours_state) - written - {"lm_head.weight"}  # tied to tok_embed
    assert not missing, missing


def assert_cached_equals_full(model, tokens, split=3, **tolerance):
    """Whole sequence == a prompt then one token at a time through the cache."""
    full = model(tokens)
    cache = model.init_cache(tokens.shape[0])
    steps = [model(tokens[:, :split], cache=cache)]
    steps += [model(tokens[:, t : t + 1], cache=cache) for t in range(split, tokens.shape[1])]
    torch.testing.assert_close(torch.cat(steps, 1), full, **tolerance)
    return cache
