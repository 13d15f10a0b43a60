from __future__ import annotations

import torch

from auxformer.train.data import Batch
from auxformer.train.modality_dropout import drop_modalities


def _batch(b: int, video_present: bool = True) -> Batch:
    return Batch(
        audio=torch.ones(b, 5, 130),
        audio_mask=torch.ones(b, 5, dtype=torch.bool),
        video=torch.ones(b, 3, 8),
        video_mask=torch.full((b, 3), video_present),
        labels=torch.zeros(b, dtype=torch.long),
        clip_ids=[str(i) for i in range(b)],
    )


def test_per_sample_rates_and_never_both():
    g = torch.Generator().manual_seed(0)
    out = drop_modalities(_batch(20000), 0.2, 0.2, "sample", g)
    no_audio, no_video = ~out.audio_mask.any(1), ~out.video_mask.any(1)
    assert not (no_audio & no_video).any()
    assert abs(no_audio.float().mean() - 0.2) < 0.015
    assert abs(no_video.float().mean() - 0.2) < 0.015
    # dropped means masked *and* zeroed
    assert out.audio[no_audio].abs().sum() == 0 and out.video[no_video].abs().sum() == 0
    assert out.audio[~no_audio].min() == 1


def test_per_batch_draws_once():
    g = torch.Generator().manual_seed(1)
    outcomes = []
    for _ in range(2000):
        out = drop_modalities(_batch(8), 0.2, 0.2, "batch", g)
        a, v = (~out.audio_mask.any(1)), (~out.video_mask.any(1))
        assert a.all() or not a.any()  # the whole batch shares one draw
        assert v.all() or not v.any()
        outcomes.append((bool(a[0]), bool(v[0])))
    assert abs(sum(a for a, _ in outcomes) / 2000 - 0.2) < 0.03
    assert abs(sum(v for _, v in outcomes) / 2000 - 0.2) < 0.03
    assert not any(a and v for a, v in outcomes)


def test_a_clip_without_face_keeps_its_audio():
    g = torch.Generator().manual_seed(2)
    out = drop_modalities(_batch(5000, video_present=False), 0.2, 0.2, "sample", g)
    assert out.audio_mask.any(1).all()
