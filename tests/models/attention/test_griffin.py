"""Griffin and Hawk against transformers' RecurrentGemma (weights copied), the RG-LRU against its
equations, its scans against each other, and the decoding state."""

import math

import pytest
import torch

import bestiary
from bestiary.layers.rg_lru import RGLRU, RecurrentBlock
from bestiary.llm.convert import load_weights, recurrentgemma_state_dict

transformers = pytest.importorskip("transformers")

TINY = dict(vocab_size=64, d_model=64, n_heads=2, n_kv_heads=1, d_ff=48, sliding_window=5)


def _reference(block_types, n_layers):
    config = transformers.RecurrentGemmaConfig(
        vocab_size=64,
        hidden_size=64,  # sqrt(64) = 8 is exact in bfloat16, the dtype of the reference's embedding scale
        intermediate_size=2 * 48,  # the reference halves it for each branch of its MLP
        num_hidden_layers=n_layers,
        num_attention_heads=2,
        num_key_value_heads=1,
        attention_window_size=5,
        block_types=block_types,
        rope_parameters={"rope_type": "default", "rope_theta": 10000.0, "partial_rotary_factor": 0.5},
        attn_implementation="eager",
    )
    torch.manual_seed(0)
    return transformers.RecurrentGemmaForCausalLM(config).eval()


@pytest.mark.parametrize(
    "name, block_types, n_layers",
    [("griffin", ("recurrent", "recurrent", "attention"), 3), ("hawk", ("recurrent",), 2)],
)
def test_logits_equal_recurrentgemma_with_copied_weights(name, block_types, n_layers):
    reference = _reference(block_types, n_layers)
    with torch.no_grad():  # the reference initialises its norms at zero ((1 + w) scaling): vary them
        for param in reference.parameters():
            param.add_(0.1 * torch.randn_like(param))
    model = bestiary.build(name, **TINY, n_layers=n_layers) if name == "griffin" else None
    if name == "hawk":
        model = bestiary.build("hawk", vocab_size=64, d_model=64, n_heads=2, d_ff=48, n_layers=n_layers)
    load_weights(model.eval(), recurrentgemma_state_dict(reference.state_dict()))
    tokens = torch.randint(0, 64, (2, 12))  # longer than the window of 5
    with torch.no_grad():
        expected = reference(tokens, use_cache=False).logits
        torch.testing.assert_close(model(tokens), expected, atol=2e-4, rtol=1e-4)
        # and step by step through our cache
        cache = model.init_cache(2)
        steps = [model(tokens[:, :7], cache=cache)] + [
            model(tokens[:, t : t + 1], cache=cache) for t in range(7, 12)
        ]
        torch.testing.assert_close(torch.cat(steps, 1), expected, atol=2e-4, rtol=1e-4)


def test_rg_lru_follows_the_paper_equations():
    torch.manual_seed(0)
    lru = RGLRU(8, 2, scan="sequential").double()
    x = torch.randn(2, 6, 8, dtype=torch.float64)
    h0 = torch.randn(2, 8, dtype=torch.float64)
    a = torch.sigmoid(-lru.a_param)  # a = sigmoid(Λ) with Λ = -a_param
    h, expected = h0, []
    for t in range(6):
        x_t = x[:, t]
        heads = x_t.view(2, 2, 4)
        r = torch.sigmoid(
            torch.einsum("bhi,hij->bhj", heads, lru.recurrent_gate.weight) + lru.recurrent_gate.bias
        )
        i = torch.sigmoid(torch.einsum("bhi,hij->bhj", heads, lru.input_gate.weight) + lru.input_gate.bias)
        a_t = a ** (8 * r.reshape(2, 8))
        h = a_t * h + torch.sqrt(1 - a_t**2) * (i.reshape(2, 8) * x_t)
        expected.append(h)
    torch.testing.assert_close(lru(x, start=3, h0=h0), torch.stack(expected, 1))


def test_rg_lru_decays_start_in_the_published_range():
    lru = RGLRU(4096, 4)
    a = torch.exp(-torch.nn.functional.softplus(lru.a_param))
    assert a.min() >= 0.9 - 1e-6 and a.max() <= 0.999 + 1e-6


def test_hillis_steele_and_sequential_scans_agree_in_values_and_gradients():
    torch.manual_seed(0)
    block = RecurrentBlock(16, lru_width=16, n_heads=2, scan="sequential").double()
    parallel = RecurrentBlock(16, lru_width=16, n_heads=2, scan="hillis_steele").double()
    parallel.load_state_dict(block.state_dict())
    x = torch.randn(2, 37, 16, dtype=torch.float64, requires_grad=True)
    y_seq, y_par = block(x), parallel(x)
    torch.testing.assert_close(y_par, y_seq)
    (g_seq,) = torch.autograd.grad(y_seq.square().sum(), x)
    (g_par,) = torch.autograd.grad(y_par.square().sum(), x)
    torch.testing.assert_close(g_par, g_seq)


def test_decoding_state_stays_constant_while_attention_windows_stay_bounded():
    torch.manual_seed(0)
    model = bestiary.build("griffin", tiny=True).eval()  # window 8
    cache = model.init_cache(1)
    with torch.no_grad():
        model(torch.randint(0, 64, (1, 8)), cache=cache)
        recurrent_bytes = cache[0].nbytes()
        for _ in range(20):
            model(torch.randint(0, 64, (1, 1)), cache=cache)
    assert cache[0].nbytes() == recurrent_bytes  # the RG-LRU block's state did not grow
    assert cache.length == 28


def test_gemma_conventions_scale_the_embedding_and_cap_the_logits():
    torch.manual_seed(0)
    capped = bestiary.build("hawk", tiny=True, logit_soft_cap=2.0).eval()
    raw = bestiary.build("hawk", tiny=True, logit_soft_cap=None, embed_scale=False).eval()
    raw.load_state_dict(capped.state_dict())
    tokens = torch.randint(0, 64, (1, 5))
    with torch.no_grad():
        expected = 2.0 * torch.tanh(raw.forward_head(raw.forward_features(tokens)) / 2.0)
        capped.tok_embed.weight.div_(math.sqrt(32))  # undo sqrt(d_model) on the way in ...
        capped.lm_head.weight = torch.nn.Parameter(raw.lm_head.weight.clone())  # ... but not on the way out
        torch.testing.assert_close(capped(tokens), expected)
