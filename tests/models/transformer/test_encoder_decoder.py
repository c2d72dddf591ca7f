"""encoder_decoder (T5) against `transformers`' T5ForConditionalGeneration with copied weights."""

import pytest
import torch
from transformer_helpers import ATOL, token_ids

import bestiary
from bestiary.llm import convert


def test_t5_matches_transformers():
    transformers = pytest.importorskip("transformers")
    cfg = transformers.T5Config(
        vocab_size=103,
        d_model=32,
        d_kv=8,
        d_ff=64,
        num_layers=2,
        num_decoder_layers=3,
        num_heads=4,
        relative_attention_num_buckets=8,
        relative_attention_max_distance=20,
        dropout_rate=0.0,
    )
    hf = transformers.T5ForConditionalGeneration(cfg).eval()
    ours = bestiary.build("encoder_decoder", **convert.t5_config(cfg.to_dict())).eval()
    readable = bestiary.build(
        "encoder_decoder", **convert.t5_config(cfg.to_dict()), attn_impl="manual"
    ).eval()
    convert.load_weights(ours, convert.t5_state_dict(hf.state_dict()))
    convert.load_weights(readable, convert.t5_state_dict(hf.state_dict()))
    src, tgt = (
        token_ids(103, T=30),
        token_ids(103, T=25, seed=1),
    )  # longer than max_distance: log buckets used
    src_mask = torch.ones_like(src)
    src_mask[0, 20:] = 0
    with torch.no_grad():
        ref = hf(input_ids=src, attention_mask=src_mask, decoder_input_ids=tgt).logits
        torch.testing.assert_close(ours(src, tgt, src_mask), ref, atol=ATOL, rtol=1e-4)
        torch.testing.assert_close(readable(src, tgt, src_mask), ref, atol=ATOL, rtol=1e-4)
