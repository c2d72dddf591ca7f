"""RWKV: RWKV-4 against transformers' RwkvForCausalLM with copied weights; RWKV-7's time mix against
the paper's equations written naively, one position and one head at a time, in float64."""

import math
import re

import pytest
import torch
import torch.nn.functional as F

import bestiary
from bestiary.models.attention.rwkv import HF_RWKV_NAMES, FirstLayerValues, TimeMix7


def _randomize(model, scale=0.3):
    """Every parameter random (the zero/one inits would hide mistakes), decays kept moderate."""
    torch.manual_seed(1)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn_like(p) * scale)
    return model


def _tiny(version, **overrides):
    torch.manual_seed(0)
    model = bestiary.build("rwkv", tiny=True, version=version, **overrides)
    return _randomize(model.double().eval())


def _hf_rwkv(ours):
    transformers = pytest.importorskip("transformers")
    c = ours.config
    config = transformers.RwkvConfig(
        vocab_size=c.vocab_size,
        hidden_size=c.d_model,
        num_hidden_layers=c.n_layers,
        intermediate_size=c.d_ff,
        attention_hidden_size=c.d_model,
        layer_norm_epsilon=c.norm_eps,
        rescale_every=0,  # fp16 inference rescaling: off, to compare the plain arithmetic
        tie_word_embeddings=False,
    )
    hf = transformers.RwkvForCausalLM(config).double().eval()
    theirs = hf.state_dict()
    mine = {}
    for name, tensor in ours.state_dict().items():
        their_name = name
        for pattern, replacement in HF_RWKV_NAMES:
            their_name = re.sub(pattern, replacement, their_name)
        assert theirs[their_name].numel() == tensor.numel(), name
        mine[their_name] = tensor.reshape(theirs[their_name].shape)
    assert set(mine) == set(theirs), set(theirs) ^ set(mine)
    hf.load_state_dict(mine)
    return hf


def test_rwkv4_logits_equal_transformers_with_copied_weights():
    ours = _tiny(4)
    hf = _hf_rwkv(ours)
    tokens = torch.randint(0, 64, (2, 12))
    with torch.no_grad():
        # transformers' CPU WKV casts each key to float32 (`key[:, t].float()`): float32-level agreement
        torch.testing.assert_close(ours(tokens), hf(tokens).logits, rtol=1e-5, atol=1e-6)


def test_rwkv4_169m_parameter_count_equals_transformers():
    transformers = pytest.importorskip("transformers")
    config = transformers.RwkvConfig(
        vocab_size=50277, hidden_size=768, num_hidden_layers=12, intermediate_size=3072, context_length=1024
    )
    with torch.device("meta"):
        hf = transformers.RwkvForCausalLM(config)
        ours = bestiary.build("rwkv4_169m")
    assert bestiary.count_params(ours) == sum(p.numel() for p in hf.parameters()) == 169_342_464


@pytest.mark.parametrize("version", [4, 7])
def test_cached_decoding_equals_the_full_forward(version):
    model, tokens = _tiny(version, chunk_size=3), torch.randint(0, 64, (2, 9))
    with torch.no_grad():
        full = model(tokens)
        cache = model.init_cache(2)
        steps = [model(tokens[:, :4], cache=cache)]
        size = cache.nbytes()
        steps += [model(tokens[:, t : t + 1], cache=cache) for t in range(4, 9)]
    torch.testing.assert_close(torch.cat(steps, 1), full, rtol=1e-12, atol=1e-12)
    assert cache.nbytes() == size  # fixed-size state


def _naive_time_mix7(mixer, x, first_values):
    """The RWKV-7 time mix straight from the paper (arXiv:2503.14456, section 4), a loop over positions
    and heads with the full N x N transition matrix diag(w_t) - kappa_hat^T (a_t * kappa_hat)."""
    B, T, D = x.shape
    H, N = mixer.n_heads, mixer.head_dim
    out = torch.zeros(B, T, D, dtype=x.dtype)
    for b in range(B):
        S = [torch.zeros(N, N, dtype=x.dtype) for _ in range(H)]
        for t in range(T):
            x_t, x_prev = x[b, t], (x[b, t - 1] if t > 0 else torch.zeros(D, dtype=x.dtype))
            lerp = {name: x_t + (x_prev - x_t) * mixer.mix[name] for name in "rwkvag"}
            r = mixer.receptance.weight @ lerp["r"]
            k = mixer.key.weight @ lerp["k"]
            v = mixer.value.weight @ lerp["v"]
            d = mixer.w0 + torch.tanh(lerp["w"] @ mixer.w1) @ mixer.w2
            w = torch.exp(-math.exp(-0.5) * torch.sigmoid(d))
            a = torch.sigmoid(mixer.a0 + lerp["a"] @ mixer.a1 @ mixer.a2)
            g = torch.sigmoid(lerp["g"] @ mixer.g1) @ mixer.g2
            if mixer.layer_id > 0:
                nu = torch.sigmoid(mixer.v0 + lerp["v"] @ mixer.v1 @ mixer.v2)
                v = v + nu * (first_values[b, t] - v)
            kappa = k * mixer.k_k
            k_tilde = k * (1 + (a - 1) * mixer.k_a)
            p = torch.zeros(D, dtype=x.dtype)
            for h in range(H):
                sl = slice(h * N, (h + 1) * N)
                kappa_hat = kappa[sl] / kappa[sl].norm().clamp_min(1e-12)
                transition = torch.diag(w[sl]) - torch.outer(kappa_hat, a[sl] * kappa_hat)
                S[h] = S[h] @ transition + torch.outer(v[sl], k_tilde[sl])
                y = S[h] @ r[sl]
                y = (y - y.mean()) / torch.sqrt(y.var(unbiased=False) + 64e-5)  # group norm of the head
                y = y * mixer.group_norm.weight[sl] + mixer.group_norm.bias[sl]
                bonus = (r[sl] * k_tilde[sl] * mixer.r_k[h]).sum() * v[sl]
                p[sl] = y + bonus
            out[b, t] = mixer.output.weight @ (p * g)
    return out


@pytest.mark.parametrize("mode", ["chunkwise", "recurrent"])
@pytest.mark.parametrize("layer_id", [0, 1])
def test_rwkv7_time_mix_equals_the_papers_equations(layer_id, mode):
    torch.manual_seed(0)
    first = FirstLayerValues()
    mixer = _randomize(TimeMix7(16, 8, layer_id, 2, first, mode=mode, chunk_size=3).double())
    x = torch.randn(2, 7, 16, dtype=torch.float64)
    first.values = torch.randn(2, 7, 16, dtype=torch.float64)  # layer 0's values (used by layer 1)
    with torch.no_grad():
        expected = _naive_time_mix7(mixer, x, first.values)
        torch.testing.assert_close(mixer(x), expected, rtol=1e-10, atol=1e-10)


def test_rwkv7_value_residual_reads_layer_zero():
    """Changing layer 0's values changes layer 1's output: the value residual is wired."""
    torch.manual_seed(0)
    first = FirstLayerValues()
    mixer = _randomize(TimeMix7(16, 8, 1, 2, first).double())
    x = torch.randn(1, 5, 16, dtype=torch.float64)
    first.values = torch.zeros(1, 5, 16, dtype=torch.float64)
    with torch.no_grad():
        y0 = mixer(x)
        first.values = torch.ones(1, 5, 16, dtype=torch.float64)
        assert not torch.allclose(mixer(x), y0)


def test_rwkv7_state_forgets_what_the_removal_key_points_at():
    """The delta rule: with w = 1 and a = 1, writing v under a unit key k (kappa = k) replaces
    whatever was stored under k, so S k = v afterwards (a plain linear attention would add)."""
    from bestiary.models.attention.rwkv import rwkv7_recurrence

    N = 4
    k = F.normalize(torch.randn(1, 2, 1, N, dtype=torch.float64), dim=-1).expand(1, 2, 1, N)
    v = torch.randn(1, 2, 1, N, dtype=torch.float64)
    ones = torch.ones(1, 2, 1, N, dtype=torch.float64)
    _, S = rwkv7_recurrence(k, ones, k, v, k, ones, torch.zeros(1, 1, N, N, dtype=torch.float64))
    torch.testing.assert_close(S[0, 0] @ k[0, 1, 0], v[0, 1, 0])


def test_version_is_checked():
    with pytest.raises(bestiary.ConfigError, match="version"):
        bestiary.build("rwkv", tiny=True, version=5)


def _naive_wkv4(time_decay, time_first, k, v):
    """RWKV-4's WKV as the paper writes it (arXiv:2305.13048, eq. 14), no stabilisation:
    wkv_t = (sum_{i<t} e^{-(t-1-i) w + k_i} v_i + e^{u + k_t} v_t) / (the same without v)."""
    w = torch.exp(time_decay)
    out = torch.zeros_like(k)
    for t in range(k.shape[1]):
        num = torch.exp(time_first + k[:, t]) * v[:, t]
        den = torch.exp(time_first + k[:, t])
        for i in range(t):
            weight = torch.exp(-(t - 1 - i) * w + k[:, i])
            num, den = num + weight * v[:, i], den + weight
        out[:, t] = num / den
    return out


def test_rwkv4_wkv_equals_the_papers_formula_and_survives_huge_keys():
    from bestiary.models.attention.rwkv import wkv4_recurrence

    g = torch.Generator().manual_seed(0)
    time_decay, time_first = (torch.randn(6, generator=g, dtype=torch.float64) for _ in range(2))
    k, v = (torch.randn(2, 8, 6, generator=g, dtype=torch.float64) for _ in range(2))
    empty = (torch.zeros(2, 6, dtype=torch.float64),) * 2 + (torch.full((2, 6), -1e38, dtype=torch.float64),)
    wkv, _ = wkv4_recurrence(time_decay, time_first, k, v, empty)
    torch.testing.assert_close(wkv, _naive_wkv4(time_decay, time_first, k, v))
    # a shift of every key cancels between numerator and denominator; e^{k + 800} overflows float64,
    # the running-max form does not
    assert not torch.isfinite(_naive_wkv4(time_decay, time_first, k + 800, v)).all()
    torch.testing.assert_close(wkv4_recurrence(time_decay, time_first, k + 800, v, empty)[0], wkv)


@pytest.mark.parametrize("chunk_size", [1, 3, 4, None])
def test_rwkv7_chunkwise_equals_the_recurrence_outputs_state_and_gradients(chunk_size):
    from bestiary.models.attention.rwkv import rwkv7_chunkwise, rwkv7_recurrence

    g = torch.Generator().manual_seed(0)
    B, T, H, N = 2, 10, 2, 4
    r, k, v = (torch.randn(B, T, H, N, generator=g, dtype=torch.float64) for _ in range(3))
    decay = torch.exp(-0.6 * torch.rand(B, T, H, N, generator=g, dtype=torch.float64))
    kappa = F.normalize(torch.randn(B, T, H, N, generator=g, dtype=torch.float64), dim=-1)
    a = torch.rand(B, T, H, N, generator=g, dtype=torch.float64)
    state = torch.randn(B, H, N, N, generator=g, dtype=torch.float64)
    inputs = [t.requires_grad_() for t in (r, decay, k, v, kappa, a, state)]
    y_rec, s_rec = rwkv7_recurrence(*inputs)
    y_chunk, s_chunk = rwkv7_chunkwise(*inputs, chunk_size=chunk_size)
    torch.testing.assert_close(y_chunk, y_rec, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(s_chunk, s_rec, rtol=1e-10, atol=1e-12)
    weights = torch.randn_like(y_rec), torch.randn_like(s_rec)
    grads = [
        torch.autograd.grad((y * weights[0]).sum() + (s * weights[1]).sum(), inputs)
        for y, s in ((y_rec, s_rec), (y_chunk, s_chunk))
    ]
    for g_chunk, g_rec in zip(grads[1], grads[0], strict=True):
        torch.testing.assert_close(g_chunk, g_rec, rtol=1e-9, atol=1e-11)
