"""TMRoPE: position IDs equal transformers' Qwen2.5-Omni get_rope_index on the same token layout
(image, video, audio, video with interleaved audio); each frequency section turns by its axis;
text-only is ordinary RoPE attention; cached decoding equals the full forward."""

import types

import pytest
import torch
from attention_zoo_helpers import assert_cached_equals_full

import bestiary
from bestiary.layers.attention import MultiHeadAttention
from bestiary.layers.positions import RotaryEmbedding
from bestiary.models.attention.tmrope import MultimodalRotary, mrope_sections, tmrope_position_ids

omni = pytest.importorskip("transformers.models.qwen2_5_omni.modeling_qwen2_5_omni")

TEXT, V_START, V_END, A_START, A_END, IMAGE, VIDEO, AUDIO = 1, 2, 3, 4, 5, 6, 7, 8


def _hf_rope_index(input_ids, **kwargs):
    """transformers' method, run on a stand-in for the model (it reads only these attributes)."""
    cls = omni.Qwen2_5OmniPreTrainedModelForConditionalGeneration
    model = types.SimpleNamespace(
        spatial_merge_size=2,
        config=types.SimpleNamespace(
            image_token_id=IMAGE,
            video_token_id=VIDEO,
            audio_token_id=AUDIO,
            vision_start_token_id=V_START,
            audio_start_token_id=A_START,
            position_id_per_seconds=25,
            seconds_per_chunk=2,
        ),
    )
    model.get_llm_pos_ids_for_vision = types.MethodType(cls.get_llm_pos_ids_for_vision, model)
    model.get_chunked_index = types.MethodType(cls.get_chunked_index, model)
    ids, _ = cls.get_rope_index(model, input_ids[None], **kwargs)
    return ids[:, 0]


def _audio_frames(n_tokens):
    """Feature frames that transformers' audio encoder turns into n_tokens (two stride-2 steps)."""
    frames = 1
    while ((frames - 1) // 2 + 1 - 2) // 2 + 1 != n_tokens:
        frames += 1
    return frames


def test_image_video_and_audio_positions_equal_transformers():
    # text(3) [image 1 x 4 x 6 patches = 6 tokens] text(2) [video 3 frames of 4 x 4, 1 s each] text(1) [audio 5]
    ids = [TEXT] * 3 + [V_START] + [IMAGE] * 6 + [V_END] + [TEXT] * 2
    ids += [V_START] + [VIDEO] * 12 + [V_END] + [TEXT] + [A_START] + [AUDIO] * 5 + [A_END] + [TEXT] * 2
    expected = _hf_rope_index(
        torch.tensor(ids),
        image_grid_thw=torch.tensor([[1, 4, 6]]),
        video_grid_thw=torch.tensor([[3, 4, 4]]),
        second_per_grids=torch.tensor([1.0]),
        audio_seqlens=torch.tensor([_audio_frames(5)]),
    )
    segments = [
        ("text", 3),
        ("image", 1, 4, 6),
        ("text", 2),
        ("video", 3, 4, 4, 1.0),
        ("text", 1),
        ("audio", 5),
        ("text", 2),
    ]
    assert torch.equal(tmrope_position_ids(segments), expected)


def test_video_with_audio_is_interleaved_in_two_second_chunks_as_in_transformers():
    # 5 frames 1 s apart (t = 0, 25, ..., 100) and 120 audio tokens (40 ms each: t = 0..119)
    n_video, n_audio = 5 * 4, 120
    ids = [TEXT] * 2 + [V_START, A_START] + [VIDEO] * (n_video + n_audio) + [A_END, V_END] + [TEXT]
    expected = _hf_rope_index(
        torch.tensor(ids),
        video_grid_thw=torch.tensor([[5, 4, 4]]),
        second_per_grids=torch.tensor([1.0]),
        audio_seqlens=torch.tensor([_audio_frames(n_audio)]),
        use_audio_in_video=True,
    )
    got = tmrope_position_ids([("text", 2), ("video_audio", 5, 4, 4, 1.0, n_audio), ("text", 1)])
    assert torch.equal(got, expected)
    t = got[0, 4:-3]  # the media tokens' time IDs: 2-second chunks, video then audio
    assert t[:8].tolist() == [3, 3, 3, 3, 28, 28, 28, 28]  # frames 0, 1 (t 0, 25) first ...
    assert t[8:58].tolist() == list(range(3, 53))  # ... then the audio of the same 2 seconds


def test_each_frequency_section_turns_by_its_axis():
    rotary = MultimodalRotary(16)
    assert mrope_sections(128) == (16, 24, 24) and mrope_sections(16) == (2, 3, 3)
    ids = torch.tensor([[[5, 9]], [[2, 7]], [[11, 3]]])  # (3, B=1, T=2): t, h, w
    cos, _ = rotary.cos_sin(ids)
    inv_freq = 1.0 / 10000.0 ** (torch.arange(0, 16, 2) / 16)
    axis_of_frequency = [0, 0, 1, 1, 1, 2, 2, 2]
    for f, axis in enumerate(axis_of_frequency):
        expected = torch.cos(ids[axis, 0].float() * inv_freq[f])
        torch.testing.assert_close(cos[0, :, f], expected)
        torch.testing.assert_close(cos[0, :, f + 8], expected)


def test_text_only_is_ordinary_rope_attention():
    torch.manual_seed(0)
    model = bestiary.build("tmrope", tiny=True).eval()
    attn = model.blocks[0].mixer
    plain = MultiHeadAttention(32, 2, n_kv_heads=1, bias=False, causal=True, rope=RotaryEmbedding(16)).eval()
    plain.load_state_dict(attn.state_dict())
    x = torch.randn(2, 9, 32)
    with torch.no_grad():
        torch.testing.assert_close(attn(x), plain(x), atol=1e-5, rtol=1e-5)
        ids = tmrope_position_ids([("text", 1), ("image", 1, 4, 6), ("text", 0)])[:, None].expand(3, 2, 9)
        assert not torch.allclose(attn(x, position_ids=ids), plain(x))  # the image grid is 2-D


def test_cached_decoding_equals_the_full_forward_with_multimodal_ids():
    torch.manual_seed(0)
    model = bestiary.build("tmrope", tiny=True).eval()
    tokens = torch.randint(0, 64, (2, 12))
    ids = tmrope_position_ids([("text", 2), ("image", 1, 4, 6), ("text", 2)])[:, None].expand(3, 2, 12)
    with torch.no_grad():
        full = model(tokens, position_ids=ids)
        cache = model.init_cache(2)
        steps = [model(tokens[:, :5], cache=cache, position_ids=ids[..., :5])]
        steps += [
            model(tokens[:, t : t + 1], cache=cache, position_ids=ids[..., t : t + 1]) for t in range(5, 12)
        ]
        torch.testing.assert_close(torch.cat(steps, 1), full, atol=1e-5, rtol=1e-5)
        assert_cached_equals_full(model, tokens, atol=1e-5, rtol=1e-5)  # text IDs by default


def test_position_ids_of_the_wrong_shape_are_refused():
    model = bestiary.build("tmrope", tiny=True)
    with pytest.raises(ValueError, match="position_ids"):
        model(torch.randint(0, 64, (2, 5)), position_ids=torch.zeros(2, 5, dtype=torch.long))
