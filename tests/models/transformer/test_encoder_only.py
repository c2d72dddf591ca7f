"""encoder_only (BERT) against `transformers`' BertModel with copied weights."""

import pytest
import torch
from transformer_helpers import ATOL, token_ids

import bestiary
from bestiary.llm import convert


def test_bert_matches_transformers():
    transformers = pytest.importorskip("transformers")
    cfg = transformers.BertConfig(
        vocab_size=99,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=64,
        max_position_embeddings=40,
    )
    hf = transformers.BertModel(cfg).eval()
    ours = bestiary.build("encoder_only", **convert.bert_config(cfg.to_dict())).eval()
    convert.load_weights(ours, convert.bert_state_dict(hf.state_dict()))
    ids = token_ids(99, T=10)
    mask = torch.ones_like(ids)
    mask[1, 6:] = 0  # padding at the end of the second sentence
    types = torch.zeros_like(ids)
    types[:, 5:] = 1  # sentence B
    with torch.no_grad():
        ref = hf(input_ids=ids, attention_mask=mask, token_type_ids=types)
        hidden = ours(ids, mask, types)
    real = mask.bool()  # padding positions are not compared (both libraries leave them meaningless)
    torch.testing.assert_close(hidden[real], ref.last_hidden_state[real], atol=ATOL, rtol=1e-4)
    torch.testing.assert_close(ours.pool(hidden), ref.pooler_output, atol=ATOL, rtol=1e-4)
