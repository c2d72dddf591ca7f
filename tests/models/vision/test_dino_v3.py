"""DINOv3 against transformers' DINOv3ViTModel with copied weights (GELU and SwiGLU MLPs, a
non-square image); 2-D RoPE; Gram anchoring; any resolution; bad input."""

import numpy as np
import pytest
import torch
from vision_helpers import assert_rejects, copy_renamed

import bestiary
from bestiary.layers.positions import rotate_half
from bestiary.models.vision.dino_v3 import HF_NAMES, gram_anchoring_loss, rope_2d


@pytest.mark.parametrize("mlp", ["gelu", "swiglu"])
def test_dino_v3_backbone_matches_transformers(mlp):
    pytest.importorskip("transformers")
    from transformers import DINOv3ViTConfig, DINOv3ViTModel

    torch.manual_seed(0)
    hf_config = DINOv3ViTConfig(
        hidden_size=16,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=32,
        num_register_tokens=2,
        image_size=16,
        patch_size=4,
        layerscale_value=0.5,
        use_gated_mlp=mlp == "swiglu",
        hidden_act="silu" if mlp == "swiglu" else "gelu",
    )
    hf = DINOv3ViTModel(hf_config).eval()
    ours = bestiary.build("dino_v3", tiny=True, head_prototypes=0, mlp=mlp).eval()
    copy_renamed(ours, hf.state_dict(), HF_NAMES)
    x = torch.randn(2, 3, 16, 24)  # non-square: rows and columns get different coordinates
    mask = torch.rand(2, 24) < 0.3
    with torch.no_grad():
        out = ours(x, mask=mask)
        ref = hf(x, bool_masked_pos=mask).last_hidden_state  # [CLS], registers, patches
    torch.testing.assert_close(out.cls_token, ref[:, 0], rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(out.register_tokens, ref[:, 1:3], rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(out.patch_tokens, ref[:, 3:], rtol=1e-4, atol=1e-5)


def test_dino_v3_key_projection_has_no_bias():
    attention = bestiary.build("dino_v3", tiny=True).blocks[0].mixer
    assert attention.k_proj.bias is None
    assert all(p.bias is not None for p in (attention.q_proj, attention.v_proj, attention.out_proj))


def test_dino_v3_rope_depends_only_on_relative_position():
    """Rotated q.k between two patches is unchanged when both move by the same offset."""
    torch.manual_seed(0)
    q, k = torch.randn(8), torch.randn(8)
    coords = torch.tensor([[0.1, -0.3], [0.5, 0.2], [0.1 + 0.25, -0.3 - 0.4], [0.5 + 0.25, 0.2 - 0.4]])
    cos, sin = rope_2d(coords, head_dim=8, theta=100.0)
    rq = q * cos + rotate_half(q.expand(4, 8)) * sin  # (4, 8)
    rk = k * cos + rotate_half(k.expand(4, 8)) * sin
    torch.testing.assert_close(rq[0] @ rk[1], rq[2] @ rk[3])
    assert not torch.allclose(rq[0] @ rk[1], rq[0] @ rk[3])


def test_gram_anchoring_loss():
    torch.manual_seed(0)
    student = torch.randn(2, 5, 4, dtype=torch.float64, requires_grad=True)
    teacher = torch.randn(2, 5, 4, dtype=torch.float64, requires_grad=True)
    loss = gram_anchoring_loss(student, teacher)
    # NumPy reference: squared Frobenius distance of cosine-similarity matrices, / N^2, batch mean
    s, g = student.detach().numpy(), teacher.detach().numpy()
    s = s / np.linalg.norm(s, axis=-1, keepdims=True)
    g = g / np.linalg.norm(g, axis=-1, keepdims=True)
    expected = np.mean([np.linalg.norm(s[b] @ s[b].T - g[b] @ g[b].T, "fro") ** 2 / 25 for b in range(2)])
    np.testing.assert_allclose(loss.item(), expected, rtol=1e-12)
    loss.backward()
    assert teacher.grad is None and student.grad.abs().sum() > 0  # the Gram teacher is frozen
    # only the similarity structure matters: rescaling patches changes nothing
    torch.testing.assert_close(
        gram_anchoring_loss(student * 3.0, student), torch.zeros((), dtype=torch.float64)
    )
    with pytest.raises(ValueError, match="same shape"):
        gram_anchoring_loss(student, teacher[:, :4])


def test_dino_v3_any_resolution_and_bad_input():
    model = bestiary.build("dino_v3", tiny=True).eval()
    assert model(torch.randn(1, 3, 32, 20)).patch_tokens.shape == (1, 8 * 5, 16)
    assert_rejects(model, {(1, 3, 18, 16): "multiples of 4", (1, 1, 16, 16): "C=3"})
