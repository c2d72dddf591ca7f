"""Weight conversion between `transformers` checkpoints and Bestiary modules.

Each family has one documented name mapping (a plain function from the Hugging Face state dict to
ours) and a config translator. `load_weights` copies a state dict into a module and refuses, with
the tensor's name, anything that does not fit: a missing tensor, an unexpected one, or a shape
mismatch. Weights are read from safetensors only (never pickle).

Name mappings (HF -> Bestiary), `i` = layer index:

Llama (LlamaForCausalLM -> decoder_only):
    model.embed_tokens.weight                 -> tok_embed.weight
    model.layers.i.self_attn.{q,k,v}_proj     -> blocks.i.attn.{q,k,v}_proj
    model.layers.i.self_attn.o_proj           -> blocks.i.attn.out_proj
    model.layers.i.mlp.{gate,up,down}_proj    -> blocks.i.mlp.{gate,up,down}
    model.layers.i.input_layernorm            -> blocks.i.attn_norm
    model.layers.i.post_attention_layernorm   -> blocks.i.mlp_norm
    model.norm                                -> norm;   lm_head -> lm_head (absent when tied)

GPT-2 (GPT2LMHeadModel -> decoder_only, preset gpt2, which has fused_qkv=True): one tensor for one
tensor. GPT-2 stores linear layers as `Conv1D`, with the weight transposed (in, out):
    transformer.wte / wpe                     -> tok_embed / pos_embed
    transformer.h.i.ln_1 / ln_2               -> blocks.i.attn_norm / mlp_norm
    transformer.h.i.attn.c_attn  (d, 3d)      -> blocks.i.attn.qkv_proj      (transposed)
    transformer.h.i.attn.c_proj               -> blocks.i.attn.out_proj      (transposed)
    transformer.h.i.mlp.c_fc / c_proj         -> blocks.i.mlp.up / down      (transposed)
    transformer.ln_f                          -> norm

BERT (BertModel -> bestiary.models.transformer.encoder.Encoder):
    embeddings.{word,position,token_type}_embeddings -> embed.{tok,pos,segment}
    embeddings.LayerNorm                      -> embed.norm
    encoder.layer.i.attention.self.{query,key,value} -> blocks.i.attn.{q,k,v}_proj
    encoder.layer.i.attention.output.dense    -> blocks.i.attn.out_proj
    encoder.layer.i.attention.output.LayerNorm -> blocks.i.attn_norm   (post-norm)
    encoder.layer.i.intermediate.dense        -> blocks.i.mlp.up
    encoder.layer.i.output.dense / LayerNorm  -> blocks.i.mlp.down / blocks.i.mlp_norm
    pooler.dense                              -> pooler

T5 (T5ForConditionalGeneration -> bestiary.models.transformer.encoder_decoder.EncoderDecoder):
    shared                                    -> embed
    {encoder,decoder}.block.i.layer.0.SelfAttention.{q,k,v,o} -> {encoder,decoder}.blocks.i.attn.{q,k,v,out}_proj
    {..}.block.0.layer.0.SelfAttention.relative_attention_bias -> {..}.relative_bias.embedding
    {..}.block.i.layer.0.layer_norm           -> {..}.blocks.i.attn_norm
    decoder.block.i.layer.1.EncDecAttention.{q,k,v,o} / layer_norm -> decoder.blocks.i.cross_attn.* / cross_norm
    {..}.block.i.layer.-1.DenseReluDense.wi / wo / layer_norm -> {..}.blocks.i.mlp.up / down / mlp_norm
    {encoder,decoder}.final_layer_norm        -> {encoder,decoder}.norm;  lm_head -> lm_head
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn


class CheckpointMismatchError(ValueError):
    """A checkpoint that does not fit the module: names the tensor and both shapes."""


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
LLAMA_RULES = [
    (r"model\.embed_tokens\.weight", r"tok_embed.weight"),
    (r"model\.layers\.(\d+)\.self_attn\.([qkv])_proj\.(weight|bias)", r"blocks.\1.attn.\2_proj.\3"),
    (r"model\.layers\.(\d+)\.self_attn\.o_proj\.(weight|bias)", r"blocks.\1.attn.out_proj.\2"),
    (r"model\.layers\.(\d+)\.mlp\.(gate|up|down)_proj\.(weight|bias)", r"blocks.\1.mlp.\2.\3"),
    (r"model\.layers\.(\d+)\.input_layernorm\.weight", r"blocks.\1.attn_norm.weight"),
    (r"model\.layers\.(\d+)\.post_attention_layernorm\.weight", r"blocks.\1.mlp_norm.weight"),
    (r"model\.norm\.weight", r"norm.weight"),
    (r"lm_head\.weight", r"lm_head.weight"),
]


def llama_state_dict(hf: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """LlamaForCausalLM state dict -> decoder_only state dict (see the table above)."""
    return _rename(hf, LLAMA_RULES, skip=(r"rotary_emb",))


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
        rules = {
            r"wte\.weight": "tok_embed.weight",
            r"wpe\.weight": "pos_embed.weight",
            r"h\.(\d+)\.ln_1\.(weight|bias)": r"blocks.\1.attn_norm.\2",
            r"h\.(\d+)\.ln_2\.(weight|bias)": r"blocks.\1.mlp_norm.\2",
            r"h\.(\d+)\.attn\.c_attn\.(weight|bias)": r"blocks.\1.attn.qkv_proj.\2",
            r"h\.(\d+)\.attn\.c_proj\.(weight|bias)": r"blocks.\1.attn.out_proj.\2",
            r"h\.(\d+)\.mlp\.c_fc\.(weight|bias)": r"blocks.\1.mlp.up.\2",
            r"h\.(\d+)\.mlp\.c_proj\.(weight|bias)": r"blocks.\1.mlp.down.\2",
            r"ln_f\.(weight|bias)": r"norm.\1",
            r"lm_head\.weight": "lm_head.weight",
        }
        for pattern, repl in rules.items():
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
BERT_RULES = [
    (r"embeddings\.word_embeddings\.weight", r"embed.tok.weight"),
    (r"embeddings\.position_embeddings\.weight", r"embed.pos.weight"),
    (r"embeddings\.token_type_embeddings\.weight", r"embed.segment.weight"),
    (r"embeddings\.LayerNorm\.(weight|bias)", r"embed.norm.\1"),
    (r"encoder\.layer\.(\d+)\.attention\.self\.query\.(weight|bias)", r"blocks.\1.attn.q_proj.\2"),
    (r"encoder\.layer\.(\d+)\.attention\.self\.key\.(weight|bias)", r"blocks.\1.attn.k_proj.\2"),
    (r"encoder\.layer\.(\d+)\.attention\.self\.value\.(weight|bias)", r"blocks.\1.attn.v_proj.\2"),
    (r"encoder\.layer\.(\d+)\.attention\.output\.dense\.(weight|bias)", r"blocks.\1.attn.out_proj.\2"),
    (r"encoder\.layer\.(\d+)\.attention\.output\.LayerNorm\.(weight|bias)", r"blocks.\1.attn_norm.\2"),
    (r"encoder\.layer\.(\d+)\.intermediate\.dense\.(weight|bias)", r"blocks.\1.mlp.up.\2"),
    (r"encoder\.layer\.(\d+)\.output\.dense\.(weight|bias)", r"blocks.\1.mlp.down.\2"),
    (r"encoder\.layer\.(\d+)\.output\.LayerNorm\.(weight|bias)", r"blocks.\1.mlp_norm.\2"),
    (r"pooler\.dense\.(weight|bias)", r"pooler.\1"),
]


def bert_state_dict(hf: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """BertModel state dict (with or without the `bert.` prefix) -> Encoder state dict."""
    hf = {k.removeprefix("bert."): v for k, v in hf.items()}
    return _rename(hf, BERT_RULES, skip=(r"position_ids$",))


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
T5_RULES = [
    (r"shared\.weight", r"embed.weight"),
    (r"lm_head\.weight", r"lm_head.weight"),
    (
        r"(encoder|decoder)\.block\.0\.layer\.0\.SelfAttention\.relative_attention_bias\.weight",
        r"\1.relative_bias.embedding.weight",
    ),
    (
        r"(encoder|decoder)\.block\.(\d+)\.layer\.0\.SelfAttention\.([qkv])\.weight",
        r"\1.blocks.\2.attn.\3_proj.weight",
    ),
    (
        r"(encoder|decoder)\.block\.(\d+)\.layer\.0\.SelfAttention\.o\.weight",
        r"\1.blocks.\2.attn.out_proj.weight",
    ),
    (r"(encoder|decoder)\.block\.(\d+)\.layer\.0\.layer_norm\.weight", r"\1.blocks.\2.attn_norm.weight"),
    (
        r"decoder\.block\.(\d+)\.layer\.1\.EncDecAttention\.([qkv])\.weight",
        r"decoder.blocks.\1.cross_attn.\2_proj.weight",
    ),
    (
        r"decoder\.block\.(\d+)\.layer\.1\.EncDecAttention\.o\.weight",
        r"decoder.blocks.\1.cross_attn.out_proj.weight",
    ),
    (r"decoder\.block\.(\d+)\.layer\.1\.layer_norm\.weight", r"decoder.blocks.\1.cross_norm.weight"),
    (r"encoder\.block\.(\d+)\.layer\.1\.DenseReluDense\.wi\.weight", r"encoder.blocks.\1.mlp.up.weight"),
    (r"encoder\.block\.(\d+)\.layer\.1\.DenseReluDense\.wo\.weight", r"encoder.blocks.\1.mlp.down.weight"),
    (r"encoder\.block\.(\d+)\.layer\.1\.layer_norm\.weight", r"encoder.blocks.\1.mlp_norm.weight"),
    (r"decoder\.block\.(\d+)\.layer\.2\.DenseReluDense\.wi\.weight", r"decoder.blocks.\1.mlp.up.weight"),
    (r"decoder\.block\.(\d+)\.layer\.2\.DenseReluDense\.wo\.weight", r"decoder.blocks.\1.mlp.down.weight"),
    (r"decoder\.block\.(\d+)\.layer\.2\.layer_norm\.weight", r"decoder.blocks.\1.mlp_norm.weight"),
    (r"(encoder|decoder)\.final_layer_norm\.weight", r"\1.norm.weight"),
]


def t5_state_dict(hf: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """T5ForConditionalGeneration state dict -> EncoderDecoder state dict."""
    # encoder/decoder.embed_tokens are the shared embedding under other names
    return _rename(hf, T5_RULES, skip=(r"embed_tokens\.weight$",))


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
