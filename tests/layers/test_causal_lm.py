"""CausalLM (the shell every stateful LM uses) and RecurrentState (their fixed-size cache), with a
toy mixer: an exponential moving average, h_t = 0.9 h_{t-1} + 0.1 W x_t."""

from dataclasses import dataclass

import pytest
import torch
from torch import nn

from bestiary.layers.block import Block
from bestiary.layers.causal_lm import CausalLM
from bestiary.layers.scan import scan_sequential
from bestiary.layers.state import NonFiniteStateError, RecurrentState


class EMAMixer(nn.Module):
    def __init__(self, d_model):
        super().__init__()
        self.proj = nn.Linear(d_model, d_model)

    def init_weights(self):  # CausalLM calls this after its default init
        nn.init.eye_(self.proj.weight)

    def init_cache(self, batch):
        return RecurrentState(self, batch, ("h",))

    def forward(self, x, *, cache=None):
        if cache is not None:
            cache.check(self, x)
        u = self.proj(x)
        h0 = None if cache is None else cache["h"]
        h = scan_sequential(torch.full_like(u, 0.9), 0.1 * u, h0)  # (B, T, D)
        if cache is not None:
            cache["h"] = h[:, -1]
            cache.length += x.shape[1]
        return h


@dataclass(kw_only=True)
class Config:
    vocab_size: int = 11
    d_model: int = 8
    n_layers: int = 2


class EMALM(CausalLM):
    def __init__(self, config):
        blocks = [
            Block(config.d_model, EMAMixer(config.d_model), None, norm="rmsnorm")
            for _ in range(config.n_layers)
        ]
        super().__init__(config, blocks)


def _model():
    torch.manual_seed(0)
    return EMALM(Config()).eval()


def test_mixer_init_weights_runs_after_the_default_and_embeddings_are_tied():
    model = _model()
    torch.testing.assert_close(model.blocks[0].mixer.proj.weight, torch.eye(8))
    assert model.lm_head.weight is model.tok_embed.weight
    assert not hasattr(model.blocks[0], "mlp_norm")  # mlp=None: a mixer-only block


def test_cached_decoding_equals_the_full_forward_with_a_constant_size_state():
    model, tokens = _model(), torch.randint(0, 11, (2, 9))
    full = model(tokens)
    cache = model.init_cache(2)
    steps = [model(tokens[:, :3], cache=cache)]
    size = cache.nbytes()
    steps += [model(tokens[:, t : t + 1], cache=cache) for t in range(3, 9)]
    torch.testing.assert_close(torch.cat(steps, 1), full)
    assert cache.length == 9 and cache.nbytes() == size  # the state did not grow


def test_a_cache_from_another_model_or_batch_is_refused():
    model, other = _model(), _model()
    with pytest.raises(ValueError, match="made by another EMALM"):  # the model's Cache checks its owner
        model(torch.zeros(2, 3, dtype=torch.long), cache=other.init_cache(2))
    with pytest.raises(ValueError, match="made by another EMAMixer"):  # and each layer's state its own
        model.blocks[0].mixer(torch.zeros(2, 3, 8), cache=other.blocks[0].mixer.init_cache(2))
    with pytest.raises(ValueError, match="made for batch 3"):
        model(torch.zeros(2, 3, dtype=torch.long), cache=model.init_cache(3))


def test_a_state_that_overflows_names_the_block():
    model = _model()
    with torch.no_grad():
        model.blocks[1].mixer.proj.weight.fill_(3e38)  # x @ W.T overflows float32
    with pytest.raises(NonFiniteStateError, match=r"blocks\.1: EMAMixer: .* 'h' became inf"):
        model(torch.ones(1, 4, dtype=torch.long), cache=model.init_cache(1))


def test_padding_is_refused_with_the_reason():
    model = _model()
    with pytest.raises(ValueError, match="cannot skip padding"):
        model(torch.zeros(1, 3, dtype=torch.long), padding_mask=torch.ones(1, 3, dtype=torch.bool))
