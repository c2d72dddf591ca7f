"""The transformer family: decoder_only presets and properties, MTP, BLT, Free Transformer."""

import itertools
import math

import pytest
import torch
import torch.nn.functional as F

import bestiary
from bestiary.models.transformer.free_transformer import free_transformer_loss, kl_to_uniform
from bestiary.models.transformer.multi_token_prediction import mtp_loss


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


def test_free_transformer_is_causal_given_its_latents():
    model = bestiary.build("free_transformer", tiny=True).eval()
    x = torch.randint(0, 32, (2, 12))
    y = x.clone()
    y[:, 8:] = (y[:, 8:] + 1) % 32
    z = model.sample_prior(2, 12, torch.Generator().manual_seed(0))
    with torch.no_grad():
        torch.testing.assert_close(model(x, z).logits[:, :8], model(y, z).logits[:, :8])
        # without given latents the ENCODER sees the whole sequence: its bits at t=0 react to the future
        assert not torch.allclose(model(x).bit_logits[:, 0], model(y).bit_logits[:, 0])


# ------------------------------------------------------------------------------------ decoder_only
def test_manual_and_sdpa_paths_give_the_same_logits():
    model = bestiary.build("decoder_only", tiny=True).eval()
    x = torch.randint(0, 64, (2, 10))
    torch.testing.assert_close(model(x, manual=True), model(x), atol=1e-5, rtol=1e-5)


def test_left_padded_batch_matches_unpadded_sequences():
    model = bestiary.build("decoder_only", tiny=True).eval()
    a, b = torch.randint(1, 64, (1, 8)), torch.randint(1, 64, (1, 5))
    batch = torch.cat([a, torch.cat([torch.zeros(1, 3, dtype=torch.long), b], 1)])  # pad b on the left
    keep = torch.ones(2, 8, dtype=torch.bool)
    keep[1, :3] = False
    with torch.no_grad():
        out = model(batch, padding_mask=keep)
        torch.testing.assert_close(out[0], model(a)[0], atol=1e-5, rtol=1e-5)
    # RoPE is relative, so b shifted right by 3 positions gives the same logits as b alone
    torch.testing.assert_close(out[1, 3:], model(b)[0], atol=1e-4, rtol=1e-4)


def test_a_small_decoder_learns_to_copy():
    torch.manual_seed(0)
    model = bestiary.build(
        "decoder_only", vocab_size=12, d_model=32, n_layers=2, n_heads=4, d_ff=64, max_seq_len=32
    )
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    for _ in range(100):  # sequences "a b c d | a b c d": the second half is predictable
        half = torch.randint(2, 12, (16, 4))
        seq = torch.cat([half, torch.ones(16, 1, dtype=torch.long), half], 1)
        logits = model(seq[:, :-1])
        loss = F.cross_entropy(logits[:, 4:].reshape(-1, 12), seq[:, 5:].reshape(-1))
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 1.0  # chance is log(10) = 2.3; an induction head gets it near 0


# -------------------------------------------------------------------------- multi-token prediction
def test_mtp_loss_aligns_each_head_with_its_offset():
    tokens = torch.randint(0, 10, (2, 9))
    n = 3
    perfect = torch.full((2, n, 9, 10), -20.0)
    for k in range(n):  # head k at position t puts all mass on tokens[t + k + 1]
        perfect[:, k, : 9 - k - 1].scatter_(-1, tokens[:, k + 1 :, None], 20.0)
    assert mtp_loss(perfect, tokens) < 1e-6
    shifted = perfect.roll(1, dims=2)  # off by one position: the loss must notice
    assert mtp_loss(shifted, tokens) > 1.0


def test_mtp_with_one_head_is_an_ordinary_language_model_loss():
    model = bestiary.build("multi_token_prediction", tiny=True, n_future=1)
    x = torch.randint(0, 32, (2, 10))
    logits = model(x).logits
    assert logits.shape == (2, 1, 10, 32)
    expected = F.cross_entropy(logits[:, 0, :-1].reshape(-1, 32), x[:, 1:].reshape(-1))
    torch.testing.assert_close(mtp_loss(logits, x), expected)


# ------------------------------------------------------------------------------------------- BLT
def test_blt_fixed_patches_and_override():
    model = bestiary.build("byte_latent_transformer", tiny=True, patch_size=3).eval()
    x = torch.randint(0, 256, (1, 8))
    assert model.patch_ids(x).tolist() == [[0, 0, 0, 1, 1, 1, 2, 2]]
    # patch_size=1 via an explicit override equals the fixed patching with patch_size=1
    one = bestiary.build("byte_latent_transformer", tiny=True, patch_size=1).eval()
    one.load_state_dict(model.state_dict())
    with torch.no_grad():
        torch.testing.assert_close(model(x, patch_ids=torch.arange(8)[None]), one(x))


def test_blt_entropy_patching_follows_the_threshold():
    model = bestiary.build("byte_latent_transformer", tiny=True, patching="entropy").eval()
    x = torch.randint(0, 256, (2, 10))
    model.config.entropy_threshold = -1.0  # every byte is "surprising": one patch per byte
    assert model.patch_ids(x).tolist() == [list(range(10))] * 2
    model.config.entropy_threshold = math.log(256) + 1  # above the maximum entropy: a single patch
    assert model.patch_ids(x).tolist() == [[0] * 10] * 2
    # an entropy model that is sure of byte 0 everywhere: patches start right after each uncertain step
    with torch.no_grad():
        logp = model.entropy_model(x).log_softmax(-1)
        entropy = -(logp.exp() * logp).sum(-1)
    model.config.entropy_threshold = entropy[0, :-1].median().item()
    starts = model.patch_starts(x)
    assert starts[0, 0] and torch.equal(starts[0, 1:], entropy[0, :-1] > model.config.entropy_threshold)


# ---------------------------------------------------------------------------------- FreeTransformer
def test_free_transformer_kl_matches_brute_force_over_all_codes():
    model = bestiary.build("free_transformer", tiny=True)  # H = 3 bits: 8 codes
    bit_logits = torch.randn(2, 4, 3, dtype=torch.float64)
    p = torch.sigmoid(bit_logits)
    brute = torch.zeros(2, 4, dtype=torch.float64)
    for bits in itertools.product([0, 1], repeat=3):  # Q(code) = prod_h p_h^b_h (1 - p_h)^(1 - b_h)
        b = torch.tensor(bits, dtype=torch.float64)
        q = (p**b * (1 - p) ** (1 - b)).prod(-1)
        brute += q * torch.log(q * 8)  # KL(Q || uniform(8))
    torch.testing.assert_close(kl_to_uniform(bit_logits), brute)
    # the binary mapper's G is the same distribution (sums to one, forward value is one-hot)
    y = model.binary_mapper(bit_logits.float())
    assert (
        torch.allclose(y.sum(-1), torch.ones(2, 4)) and ((y.detach() - y.detach().round()).abs() < 1e-6).all()
    )


def test_free_transformer_gradients_reach_the_encoder_through_the_binary_mapper():
    model = bestiary.build("free_transformer", tiny=True).train()
    x = torch.randint(0, 32, (2, 12))
    out = model(x)
    loss = free_transformer_loss(out, x, kappa=0.0)
    loss.backward()
    assert model.enc_readout.weight.grad.abs().sum() > 0  # the VAE encoder learns
    assert model.latent_proj.weight.grad.abs().sum() > 0
    model.eval()
    with torch.no_grad():  # eval without latents: the encoder's most likely code, deterministic
        torch.testing.assert_close(model(x).logits, model(x).logits)
