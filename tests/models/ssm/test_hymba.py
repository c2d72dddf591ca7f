"""Hymba: the parallel attention + SSM heads and how they combine, the meta tokens (prepended,
attended to even beyond the window, dropped from the output), the layer layout, cached decoding."""

import torch

import bestiary
from bestiary.models.ssm.hymba import HybridHeadMixer

SMALL = dict(vocab_size=64, d_model=16, n_heads=2, n_kv_heads=1, d_ff=24, d_state=4, sliding_window=3)


def _model(**overrides):
    torch.manual_seed(0)
    return (
        bestiary.build("hymba", **{**SMALL, "n_layers": 4, "n_meta_tokens": 2, **overrides}).double().eval()
    )


def test_heads_run_in_parallel_on_the_same_input_and_are_normalised_then_averaged():
    mixer = _model().blocks[1].mixer
    x = torch.randn(2, 6, 16, dtype=torch.float64)
    attended, summarised = mixer.attention(x), mixer.ssm(x)

    def rms(t):
        return t / t.pow(2).mean(-1, keepdim=True).add(mixer.attn_norm.eps).sqrt()

    with torch.no_grad():
        mixer.attn_norm.weight.uniform_(0.5, 1.5)  # beta_1, beta_2: learned per channel
        mixer.ssm_norm.weight.uniform_(0.5, 1.5)
        expected = (mixer.attn_norm.weight * rms(attended) + mixer.ssm_norm.weight * rms(summarised)) / 2
        torch.testing.assert_close(mixer(x), expected)
        mixer.ssm_norm.weight.zero_()  # beta_2 = 0: only the attention heads remain, halved
        torch.testing.assert_close(mixer(x), mixer.attn_norm.weight * rms(attended) / 2)


def test_global_attention_in_first_middle_and_last_layers_sliding_window_elsewhere():
    model = _model(n_layers=6)
    assert [b.mixer.window for b in model.blocks] == [None, 3, 3, None, 3, None]


def test_meta_tokens_are_prepended_attended_to_beyond_the_window_and_dropped_from_the_output():
    model = _model()
    tokens = torch.randint(0, 64, (1, 9))
    with torch.no_grad():
        before = model(tokens)
        assert before.shape == (1, 9, 64)  # logits for the real tokens only
        seen = []
        hook = model.blocks[0].register_forward_hook(lambda mod, args, out: seen.append(args[0]))
        model(tokens)
        hook.remove()
        assert seen[0].shape[1] == 2 + 9  # the blocks read meta tokens + tokens
        torch.testing.assert_close(seen[0][0, :2], model.meta_tokens)
        model.meta_tokens.add_(1.0)
        assert not torch.allclose(model(tokens)[:, -1], before[:, -1])  # they change every position


def test_sliding_window_attention_always_sees_the_meta_tokens():
    mixer = _model().blocks[1].mixer  # window 3, 2 meta tokens
    bias = mixer.meta_window_bias(4, 10, start=6)  # queries at positions 6..9 over keys 0..9
    visible = (bias[0, 0] == 0).int()
    # query 6: meta keys 0, 1 and its window 4..6 (the bias leaves the future, 7..9, to the causal mask)
    assert visible[0].tolist() == [1, 1, 0, 0, 1, 1, 1, 1, 1, 1]
    assert visible[3].tolist() == [1, 1, 0, 0, 0, 0, 0, 1, 1, 1]  # query 9: meta keys and 7..9
    # and the mixer really uses it: changing a meta position's input changes a far query's output
    x = torch.randn(1, 10, 16, dtype=torch.float64)
    far = x.clone()
    far[0, 1] += 1.0  # a meta position
    mid = x.clone()
    mid[0, 3] += 1.0  # an ordinary position far outside position 9's window
    with torch.no_grad():
        base, with_far, with_mid = (mixer.attention(t)[0, 9] for t in (x, far, mid))
    assert not torch.allclose(base, with_far)
    torch.testing.assert_close(base, with_mid)


def test_decoding_with_meta_tokens_equals_the_full_forward():
    model = _model()
    tokens = torch.randint(0, 64, (2, 10))
    with torch.no_grad():
        full = model(tokens)
        cache = model.init_cache(2)
        steps = [model(tokens[:, :4], cache=cache)] + [
            model(tokens[:, t : t + 1], cache=cache) for t in range(4, 10)
        ]
    assert cache.length == 2 + 10
    torch.testing.assert_close(torch.cat(steps, 1), full)


def test_hybrid_head_mixer_is_a_token_mixer():
    mixer = HybridHeadMixer(8, n_heads=2, n_kv_heads=None, window=None, n_meta=0, rope=None, norm_eps=1e-6)
    assert mixer(torch.randn(1, 3, 8)).shape == (1, 3, 8)
