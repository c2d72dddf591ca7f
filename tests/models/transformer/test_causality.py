"""Causality across the transformer family: a future token never changes a past output."""

import pytest
import torch

import bestiary


def _logits(out):
    return out if isinstance(out, torch.Tensor) else out.logits


# --------------------------------------------------------------------------- causality, all models
@pytest.mark.parametrize(
    "name,overrides",
    [
        ("decoder_only", {}),
        ("decoder_only", {"position": "alibi", "n_kv_heads": 1}),
        ("multi_token_prediction", {}),
        ("byte_latent_transformer", {}),
        ("byte_latent_transformer", {"patching": "entropy", "entropy_threshold": 4.0}),
        ("byte_latent_transformer", {"patch_size": 3, "n_local_layers": 2}),
    ],
)
def test_future_tokens_do_not_change_past_outputs(name, overrides):
    torch.manual_seed(0)
    model = bestiary.build(name, tiny=True, **overrides).eval()
    vocab = model.config.vocab_size
    x = torch.randint(0, vocab, (2, 16))
    y = x.clone()
    y[:, 9:] = torch.randint(0, vocab, (2, 7))  # change only positions 9..15
    with torch.no_grad():
        a, b = _logits(model(x)), _logits(model(y))
    torch.testing.assert_close(a[..., :9, :], b[..., :9, :], atol=1e-5, rtol=1e-5)
    assert not torch.allclose(a[..., 9:, :], b[..., 9:, :])  # and the future positions do react
