"""free_transformer: causal given its latents, KL by brute force, gradients through the binary mapper."""

import itertools

import torch

import bestiary
from bestiary.models.transformer.free_transformer import free_transformer_loss, kl_to_uniform


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
