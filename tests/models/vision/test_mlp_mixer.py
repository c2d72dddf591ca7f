"""MLP-Mixer against an independent functional implementation (einsum along explicit axes); bad input."""

import torch
import torch.nn.functional as F
from vision_helpers import assert_rejects

import bestiary


def test_mlp_mixer_matches_einsum_reference():
    """An independent functional Mixer (einsum along explicit axes) with the model's own weights."""
    model = bestiary.build("mlp_mixer", tiny=True).eval()
    x = torch.randn(2, 3, 16, 16)
    p = dict(model.named_parameters())
    # patches by hand: (B, C, 4, 4, 4, 4) -> (B, N=16, C*4*4), projected by the conv weight as a matrix
    patches = x.unfold(2, 4, 4).unfold(3, 4, 4)  # (B, C, 4, 4, ph, pw)
    patches = patches.permute(0, 2, 3, 1, 4, 5).reshape(2, 16, 3 * 16)
    h = patches @ p["patch_embed.proj.weight"].reshape(16, -1).T + p["patch_embed.proj.bias"]  # (B, N, D)
    for i in range(2):
        b = f"blocks.{i}."
        y = F.layer_norm(h, (16,), p[b + "mixer_norm.weight"], p[b + "mixer_norm.bias"], eps=1e-6)
        # token mixing: the MLP runs along the patch axis n, for every channel d
        hidden = F.gelu(
            torch.einsum("bnd,kn->bkd", y, p[b + "mixer.up.weight"]) + p[b + "mixer.up.bias"][:, None]
        )
        h = (
            h
            + torch.einsum("bkd,nk->bnd", hidden, p[b + "mixer.down.weight"])
            + p[b + "mixer.down.bias"][:, None]
        )
        y = F.layer_norm(h, (16,), p[b + "mlp_norm.weight"], p[b + "mlp_norm.bias"], eps=1e-6)
        # channel mixing: along d, for every patch n
        hidden = F.gelu(torch.einsum("bnd,kd->bnk", y, p[b + "mlp.up.weight"]) + p[b + "mlp.up.bias"])
        h = h + torch.einsum("bnk,dk->bnd", hidden, p[b + "mlp.down.weight"]) + p[b + "mlp.down.bias"]
    h = F.layer_norm(h, (16,), p["norm.weight"], p["norm.bias"], eps=1e-6).mean(1)
    expected = h @ p["head.weight"].T + p["head.bias"]
    with torch.no_grad():
        torch.testing.assert_close(model(x), expected, rtol=1e-4, atol=1e-5)


def test_mlp_mixer_bad_input():
    model = bestiary.build("mlp_mixer", tiny=True)
    assert_rejects(model, {(1, 3, 20, 20): r"H=16"})  # the token MLP fixes the number of patches
