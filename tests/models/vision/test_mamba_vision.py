"""MambaVision: the mixer's two branches (SSM vs conv-only, concatenated), the stage layout (conv
stages, then mixers before attention), output shapes, and a short training sanity check."""

import torch

import bestiary
from bestiary.layers.attention import MultiHeadAttention
from bestiary.layers.mamba import selective_scan
from bestiary.models.vision.mamba_vision import ConvBlock, HybridStage, MambaVisionMixer


def test_mixer_concatenates_an_ssm_branch_and_a_conv_only_branch():
    torch.manual_seed(0)
    mixer = MambaVisionMixer(16, d_state=4).double()
    u = torch.randn(2, 7, 16, dtype=torch.float64)
    x, z = mixer.in_proj(u).chunk(2, dim=-1)
    # conv-only branch: a centred depthwise conv then SiLU, written out
    padded = torch.nn.functional.pad(z.transpose(1, 2), (1, 1))  # kernel 3, 'same'
    conv = torch.stack([(padded[..., t : t + 3] * mixer.conv_z.weight[:, 0]).sum(-1) for t in range(7)], -1)
    z_out = torch.nn.functional.silu(conv + mixer.conv_z.bias[:, None]).transpose(1, 2)
    torch.testing.assert_close(mixer.conv_branch(z), z_out)
    # SSM branch: the same conv form, then Mamba's selective scan
    xc = torch.nn.functional.silu(mixer.conv_x(x.transpose(1, 2))).transpose(1, 2)
    dt_low, B, C = mixer.x_proj(xc).split([mixer.dt_rank, 4, 4], dim=-1)
    dt = torch.nn.functional.softplus(mixer.dt_proj(dt_low))
    y, _ = selective_scan(xc, dt, -torch.exp(mixer.A_log), B, C, mixer.D)
    torch.testing.assert_close(mixer(u), mixer.out_proj(torch.cat([y, z_out], dim=-1)))


def test_mixer_is_not_causal_its_convs_see_the_next_token():
    torch.manual_seed(0)
    mixer = MambaVisionMixer(16, d_state=4).double()
    u = torch.randn(1, 6, 16, dtype=torch.float64)
    changed = u.clone()
    changed[0, 3] += 1.0
    diff = (mixer(changed) - mixer(u)).abs().sum(-1)[0]
    assert diff[2] > 0  # position 2 sees position 3 through the centred convs
    assert diff[0] == 0  # but not beyond the kernel and the forward scan


def test_stages_conv_first_then_mixers_before_attention():
    model = bestiary.build("mamba_vision", depths=(1, 2, 3, 4), dims=(8, 16, 32, 32), n_heads=(1, 1, 2, 2))
    assert all(isinstance(b, ConvBlock) for stage in model.stages[:2] for b in stage)
    layouts = []
    for stage in model.stages[2:]:
        assert isinstance(stage, HybridStage)
        layouts.append("".join("A" if isinstance(b.mixer, MultiHeadAttention) else "M" for b in stage.blocks))
    assert layouts == ["MMA", "MMAA"]  # ceil(depth / 2) mixers, then attention
    assert all(
        not b.mixer.causal
        for s in model.stages[2:]
        for b in s.blocks
        if isinstance(b.mixer, MultiHeadAttention)
    )


def test_output_shapes_and_features():
    model = bestiary.build("mamba_vision", tiny=True, num_classes=5).eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        features = model.forward_features(x)
        assert features.shape == (2, 32, 2, 2)  # 1/32 of the input side
        assert model(x).shape == (2, 5)


def test_a_few_steps_fit_a_tiny_batch():
    torch.manual_seed(0)
    model = bestiary.build("mamba_vision", tiny=True, num_classes=2)
    x, labels = torch.randn(4, 3, 32, 32), torch.tensor([0, 1, 0, 1])
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(15):
        loss = torch.nn.functional.cross_entropy(model(x), labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]
