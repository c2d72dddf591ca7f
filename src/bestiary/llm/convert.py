"""Weight conversion between `transformers` checkpoints and Bestiary modules.

Each family has one documented name mapping (a plain function from the Hugging Face state dict to
ours) and a config translator. `load_weights` copies a state dict into a module and refuses, with
the tensor's name, anything that does not fit: a missing tensor, an unexpected one, or a shape
mismatch. Weights are read from safetensors only (never pickle).

Each name mapping is a table of (regex, replacement) pairs that lives beside the model it
describes (`HF_LLAMA_NAMES` and `HF_GPT2_NAMES` in `models/transformer/decoder_only.py`,
`HF_BERT_NAMES` in `encoder.py`, `HF_T5_NAMES` in `encoder_decoder.py`); this module applies them.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from bestiary.io import CheckpointMismatchError  # one error for every checkpoint that doesn't fit
from bestiary.models.attention.griffin import HF_RECURRENTGEMMA_NAMES
from bestiary.models.transformer.decoder_only import HF_GPT2_NAMES, HF_LLAMA_NAMES
from bestiary.models.transformer.encoder import HF_BERT_NAMES
from bestiary.models.transformer.encoder_decoder import HF_T5_NAMES


def load_weights(model: nn.Module, weights: Mapping[str, torch.Tensor], assign: bool = False) -> nn.Module:
    """Copy `weights` (our names) into `model`, checking every name and shape first.

    Tied parameters (e.g. lm_head.weight sharing tok_embed.weight) need to be given only once.
    `assign=True` puts the given tensors in place instead of copying (for a model built on the
    meta device, which skips random initialisation; re-tie shared weights afterwards).
    """
    expected = model.state_dict()
    # names that must be present: parameters (de-duplicated, so tied ones count once) and persistent buffers
    required = {name for name, _ in model.named_parameters()}
    required |= {name for name, _ in model.named_buffers() if name in expected}
    for name, tensor in weights.items():
        if name not in expected:
            raise CheckpointMismatchError(f"unexpected tensor {name!r} {tuple(tensor.shape)} in checkpoint")
        if tuple(tensor.shape) != tuple(expected[name].shape):
            raise CheckpointMismatchError(
                f"tensor {name!r} has shape {tuple(tensor.shape)} in the checkpoint "
                f"but {tuple(expected[name].shape)} in the model"
            )
    missing = sorted(required - set(weights))
    if missing:
        raise CheckpointMismatchError(
            f"checkpoint lacks tensor(s) {', '.join(missing[:5])}" + (" ..." if len(missing) > 5 else "")
        )
    model.load_state_dict(dict(weights), strict=False, assign=assign)
    return model


def _rename(hf: Mapping[str, torch.Tensor], rules: list[tuple[str, str]], skip: tuple[str, ...] = ()) -> dict:
    """Apply regex rename rules in order (first match wins); unknown names raise."""
    out = {}
    for name, tensor in hf.items():
        if any(re.search(s, name) for s in skip):
            continue
        for pattern, repl in rules:
            if re.fullmatch(pattern, name):
                out[re.sub(pattern, repl, name)] = tensor
                break
        else:
            raise CheckpointMismatchError(f"no mapping for checkpoint tensor {name!r}")
    return out


# ------------------------------------------------------------------------------- Llama


def llama_state_dict(hf: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """LlamaForCausalLM state dict -> decoder_only state dict (see the table above)."""
    return _rename(hf, HF_LLAMA_NAMES, skip=(r"rotary_emb",))


def llama_config(hf: Mapping[str, Any]) -> dict[str, Any]:
    """A transformers LlamaConfig (as a dict, e.g. config.json) -> decoder_only options."""
    rope = hf.get("rope_parameters") or hf.get("rope_scaling") or {}
    theta = hf.get("rope_theta", rope.get("rope_theta", 10000.0))
    if rope.get("rope_type", "default") not in ("default", "linear"):
        raise ValueError(f"RoPE type {rope.get('rope_type')!r} is not supported")
    return dict(
        vocab_size=hf["vocab_size"],
        d_model=hf["hidden_size"],
        n_layers=hf["num_hidden_layers"],
        n_heads=hf["num_attention_heads"],
        n_kv_heads=hf.get("num_key_value_heads") or hf["num_attention_heads"],
        head_dim=hf.get("head_dim"),
        d_ff=hf["intermediate_size"],
        max_seq_len=hf.get("max_position_embeddings", 2048),
        rope_theta=float(theta),
        rope_scaling_factor=float(rope.get("factor", 1.0)),
        norm="rmsnorm",
        norm_eps=float(hf.get("rms_norm_eps", 1e-6)),
        mlp="swiglu",
        bias=bool(hf.get("attention_bias", False)),
        tie_embeddings=bool(hf.get("tie_word_embeddings", False)),
        position="rope",
    )


# ------------------------------------------------------------------------------- GPT-2
def gpt2_state_dict(hf: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """GPT2LMHeadModel (or GPT2Model) state dict -> decoder_only state dict."""
    out: dict[str, torch.Tensor] = {}
    for name, t in hf.items():
        name = name.removeprefix("transformer.")
        if name.endswith(("attn.bias", "attn.masked_bias")) and t.dim() != 1:
            continue  # old checkpoints store the causal mask as a buffer
        for pattern, repl in HF_GPT2_NAMES.items():
            if re.fullmatch(pattern, name):
                new = re.sub(pattern, repl, name)
                # Conv1D: y = x @ W + b with W (in, out); nn.Linear stores W.T (out, in)
                conv1d = ".c_" in name and name.endswith("weight")
                out[new] = t.t().contiguous() if conv1d else t
                break
        else:
            raise CheckpointMismatchError(f"no mapping for checkpoint tensor {name!r}")
    return out


def gpt2_config(hf: Mapping[str, Any]) -> dict[str, Any]:
    """A transformers GPT2Config dict -> decoder_only options."""
    if hf.get("activation_function", "gelu_new") not in ("gelu_new", "gelu_pytorch_tanh"):
        raise ValueError(f"unsupported GPT-2 activation {hf.get('activation_function')!r}")
    return dict(
        vocab_size=hf["vocab_size"],
        d_model=hf["n_embd"],
        n_layers=hf["n_layer"],
        n_heads=hf["n_head"],
        n_kv_heads=None,
        d_ff=hf.get("n_inner") or 4 * hf["n_embd"],
        max_seq_len=hf["n_positions"],
        position="learned",
        norm="layernorm",
        norm_eps=hf.get("layer_norm_epsilon", 1e-5),
        mlp="gelu_tanh",
        bias=True,
        tie_embeddings=hf.get("tie_word_embeddings", True),
        fused_qkv=True,
    )


# -------------------------------------------------------------------------------- BERT


def bert_state_dict(hf: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """BertModel state dict (with or without the `bert.` prefix) -> Encoder state dict."""
    hf = {k.removeprefix("bert."): v for k, v in hf.items()}
    return _rename(hf, HF_BERT_NAMES, skip=(r"position_ids$",))


def bert_config(hf: Mapping[str, Any]) -> dict[str, Any]:
    """A transformers BertConfig dict -> EncoderConfig options."""
    if hf.get("hidden_act", "gelu") != "gelu":
        raise ValueError(f"unsupported BERT activation {hf.get('hidden_act')!r}")
    return dict(
        vocab_size=hf["vocab_size"],
        d_model=hf["hidden_size"],
        n_layers=hf["num_hidden_layers"],
        n_heads=hf["num_attention_heads"],
        d_ff=hf["intermediate_size"],
        max_seq_len=hf["max_position_embeddings"],
        type_vocab_size=hf.get("type_vocab_size", 2),
        dropout=hf.get("hidden_dropout_prob", 0.1),
        norm_eps=hf.get("layer_norm_eps", 1e-12),
    )


# ---------------------------------------------------------------------------------- T5


def t5_state_dict(hf: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """T5ForConditionalGeneration state dict -> EncoderDecoder state dict."""
    # encoder/decoder.embed_tokens are the shared embedding under other names
    return _rename(hf, HF_T5_NAMES, skip=(r"embed_tokens\.weight$",))


def t5_config(hf: Mapping[str, Any]) -> dict[str, Any]:
    """A transformers T5Config dict -> EncoderDecoderConfig options (original T5: ReLU FFN)."""
    if hf.get("feed_forward_proj", "relu") != "relu":
        raise ValueError(f"only the original ReLU T5 is supported, got {hf.get('feed_forward_proj')!r}")
    return dict(
        vocab_size=hf["vocab_size"],
        d_model=hf["d_model"],
        n_layers=hf["num_layers"],
        n_decoder_layers=hf.get("num_decoder_layers"),
        n_heads=hf["num_heads"],
        head_dim=hf["d_kv"],
        d_ff=hf["d_ff"],
        num_buckets=hf.get("relative_attention_num_buckets", 32),
        max_distance=hf.get("relative_attention_max_distance", 128),
        dropout=hf.get("dropout_rate", 0.1),
        norm_eps=hf.get("layer_norm_epsilon", 1e-6),
        tie_embeddings=hf.get("tie_word_embeddings", True),
    )


# ------------------------------------------------------------------------------- RecurrentGemma


def recurrentgemma_state_dict(hf: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """RecurrentGemmaForCausalLM (or RecurrentGemmaModel) state dict -> griffin / hawk state dict.

    RecurrentGemma's RMSNorm scales by (1 + weight) where ours scales by weight: add one."""
    hf = {("model." + k if not k.startswith(("model.", "lm_head.")) else k): v for k, v in hf.items()}
    ours = _rename(hf, HF_RECURRENTGEMMA_NAMES, skip=(r"^lm_head\.weight$",))  # tied to the embedding
    return {name: t + 1 if name.endswith("norm.weight") else t for name, t in ours.items()}
