"""Weight-free codecs: patch-PCA video codec, Griffin-Lim vocoder, hashed caption encoder."""
from __future__ import annotations

import math

import pytest
import torch

from uniavgen_core.mini.codecs import GriffinLimVocoder, HashedCaptionEncoder, PatchPCACodec, PCAFitter
from uniavgen_core.audio.mel import log_mel


def blob_clip(seed: int, frames: int = 17, size: int = 64, blobs: int = 3) -> torch.Tensor:
    """Soft-edged coloured ellipses drifting and turning over a colour ramp: [frames, size, size, 3]."""
    g = torch.Generator().manual_seed(seed)
    r = lambda *s: torch.rand(*s, generator=g)
    y, x = torch.meshgrid(torch.linspace(0, 1, size), torch.linspace(0, 1, size), indexing="ij")
    c0, c1, angle = r(3), r(3), r(1) * 2 * math.pi
    ramp = ((x * torch.cos(angle) + y * torch.sin(angle)) + 1)[..., None] / 2
    clip = (c0 * (1 - ramp) + c1 * ramp).expand(frames, size, size, 3)
    t = torch.arange(frames, dtype=torch.float32)[:, None, None]
    for _ in range(blobs):
        centre, velocity = r(2) * 0.8 + 0.1, (r(2) - 0.5) * 0.02
        radii, colour, spin = r(2) * 0.2 + 0.05, r(3), (r(1) - 0.5) * 0.1
        dy, dx = y - (centre[0] + velocity[0] * t), x - (centre[1] + velocity[1] * t)
        a = spin * t
        u = (dx * torch.cos(a) + dy * torch.sin(a)) / radii[0]
        v = (-dx * torch.sin(a) + dy * torch.cos(a)) / radii[1]
        mask = torch.sigmoid((1 - torch.sqrt(u * u + v * v)) * 12)[..., None]
        clip = clip * (1 - mask) + colour * mask
    return clip


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    return -10 * math.log10(float((a.double() - b.double()).pow(2).mean()))


def span_clips(count: int, seed: int, frames: int = 9, h: int = 32, w: int = 48) -> torch.Tensor:
    """Clips whose every patch lies in a 48-dimensional affine space: per picture and tile, a
    mix of 12 fixed 16x16 colour patterns (4 pictures x 12 patterns = 48 directions)."""
    patterns = torch.rand(12, 16, 16, 3, generator=torch.Generator().manual_seed(1)) - 0.5
    coef = (torch.rand(count, frames, h // 16, w // 16, 12, generator=torch.Generator().manual_seed(seed)) - 0.5)
    tiles = 0.5 + 0.05 * torch.einsum("btyxk,kijc->btyixjc", coef, patterns)
    return tiles.reshape(count, frames, h, w, 3)


@pytest.fixture(scope="module")
def blob_codec() -> PatchPCACodec:
    return PatchPCACodec.fit(torch.stack([blob_clip(s) for s in range(i, i + 8)]) for i in range(0, 32, 8))


def test_exact_round_trip_in_the_span():
    codec = PatchPCACodec.fit(span_clips(6, seed=0))
    clips = span_clips(2, seed=99)                        # held out, but inside the span
    assert float((codec.decode(codec.encode(clips)) - clips).abs().max()) < 1e-5


def test_latent_layout_and_shapes(blob_codec):
    clip = blob_clip(500)                                  # 17 x 64 x 64
    z = blob_codec.encode(clip)
    assert z.shape == (48, 5, 4, 4) == PatchPCACodec.latent_shape(17, 64, 64) and z.dtype == torch.float32
    assert blob_codec.decode(z).shape == clip.shape
    batch = torch.stack([clip, blob_clip(501)])
    zb = blob_codec.encode(batch)
    assert zb.shape == (2, 48, 5, 4, 4) and torch.allclose(zb[0], z, atol=1e-5)
    assert blob_codec.decode(zb).shape == batch.shape
    assert blob_codec.encode(clip[:1]).shape == (48, 1, 4, 4)           # a single picture
    # latent frame 0 sees picture 0 alone, latent frame 1 pictures 1..4, tiles are 16 x 16
    changed = clip.clone()
    changed[1:5] = torch.rand(4, 64, 64, 3, generator=torch.Generator().manual_seed(0))
    z2 = blob_codec.encode(changed)
    assert torch.equal(z2[:, 0], z[:, 0]) and torch.equal(z2[:, 2:], z[:, 2:]) and not torch.equal(z2[:, 1], z[:, 1])
    changed = clip.clone()
    changed[0, 20, 40] = 1 - changed[0, 20, 40]
    diff = (blob_codec.encode(changed) - z).abs().amax(0) > 0
    assert diff.nonzero().tolist() == [[0, 1, 2]]
    for bad in (clip[:8], clip[:, :40], clip[..., :2], (clip * 255).to(torch.uint8)):
        with pytest.raises(ValueError):
            blob_codec.encode(bad)
    with pytest.raises(ValueError, match="latents must be"):
        blob_codec.decode(torch.zeros(16, 5, 4, 4))


def test_latents_are_unit_scale_and_round_trip_psnr(blob_codec):
    train = torch.stack([blob_clip(s) for s in range(8)])
    z = blob_codec.encode(train)
    assert float(z.mean()) == pytest.approx(0, abs=0.1) and float(z.std()) == pytest.approx(1, abs=0.2)
    held = torch.stack([blob_clip(1000 + s) for s in range(8)])
    rec = blob_codec.decode(blob_codec.encode(held))
    assert rec.min() >= 0 and rec.max() <= 1
    # measured 32.2 dB overall (29.3 .. 36.0 per clip), 33.4 dB on frame 0 (fit: 32 clips, 17 x 64 x 64)
    assert psnr(rec, held) > 30.5
    assert psnr(rec[:, 0], held[:, 0]) > 31.5


def test_save_load_round_trip_and_errors(blob_codec, tmp_path):
    path = tmp_path / "codec.safetensors"
    blob_codec.save(path)
    loaded = PatchPCACodec.load(path)
    for name in ("basis", "mean", "channel_mean", "channel_std"):
        assert torch.equal(getattr(loaded, name), getattr(blob_codec, name))
    clip = blob_clip(7)
    assert torch.equal(loaded.encode(clip), blob_codec.encode(clip))

    from safetensors.torch import save_file
    with pytest.raises(FileNotFoundError, match="no video codec file"):
        PatchPCACodec.load(tmp_path / "absent.safetensors")
    (tmp_path / "junk.safetensors").write_bytes(b"\x00" * 64)
    with pytest.raises(ValueError, match=r"junk\.safetensors is not a readable safetensors file"):
        PatchPCACodec.load(tmp_path / "junk.safetensors")
    save_file({"weight": torch.zeros(3)}, str(tmp_path / "model.safetensors"))
    with pytest.raises(ValueError, match=r"model\.safetensors is not a patch-PCA video codec file"):
        PatchPCACodec.load(tmp_path / "model.safetensors")
    meta = {"format": "uniavgen-patch-pca-codec", "version": "1", "patch": "4x16x16x3", "latent_channels": "48"}
    tensors = {"basis": blob_codec.basis[:, :16].contiguous(), "mean": blob_codec.mean,
               "channel_mean": blob_codec.channel_mean, "channel_std": blob_codec.channel_std}
    save_file(tensors, str(tmp_path / "narrow.safetensors"), metadata=meta)
    with pytest.raises(ValueError, match=r"narrow\.safetensors: codec tensor 'basis' .*expected float32 \(3072, 48\)"):
        PatchPCACodec.load(tmp_path / "narrow.safetensors")
    save_file({k: v for k, v in tensors.items() if k != "basis"}, str(tmp_path / "part.safetensors"), metadata=meta)
    with pytest.raises(ValueError, match=r"tensors \['basis'\] are missing"):
        PatchPCACodec.load(tmp_path / "part.safetensors")
    save_file(tensors, str(tmp_path / "v9.safetensors"), metadata={**meta, "version": "9"})
    with pytest.raises(ValueError, match="version '9' is not supported"):
        PatchPCACodec.load(tmp_path / "v9.safetensors")


def test_fit_is_deterministic_and_streaming_matches_whole():
    clips = torch.stack([blob_clip(s, frames=9, size=32) for s in range(6)])
    whole = PatchPCACodec.fit([clips])
    fitter = PCAFitter()
    for clip in clips:
        fitter.add(clip)
    streamed = fitter.finish()
    assert fitter.count == 6 * 3 * 4
    assert torch.allclose(streamed.basis, whole.basis, atol=1e-4)
    assert torch.equal(PatchPCACodec.fit([clips]).basis, whole.basis)
    with pytest.raises(ValueError, match="more than 48 patches"):
        PCAFitter().finish()


def speech_like(seconds: float = 1.0, rate: int = 24000, seed: int = 0) -> torch.Tensor:
    """Harmonics of a gliding pitch (120-200 Hz) shaped by three moving formants, a syllable
    envelope and a little breath noise; peak 0.5."""
    t = torch.arange(int(seconds * rate), dtype=torch.float64) / rate
    f0 = 140 + 40 * torch.sin(2 * math.pi * 0.7 * t) + 20 * torch.sin(2 * math.pi * 2.3 * t + 1.0)
    phase = 2 * math.pi * torch.cumsum(f0, 0) / rate
    formants = ((500 + 250 * torch.sin(2 * math.pi * 1.1 * t), 90, 1.0),
                (1500 + 600 * torch.sin(2 * math.pi * 0.8 * t + 2.0), 120, 0.5),
                (2600 + 200 * torch.sin(2 * math.pi * 0.5 * t + 0.5), 160, 0.25))
    wave = torch.zeros_like(t)
    for k in range(1, 60):
        fk = k * f0
        amp = sum(a * torch.exp(-0.5 * ((fk - f) / bw) ** 2) for f, bw, a in formants) / k + 0.01 / k
        wave += amp * (fk < 0.45 * rate) * torch.sin(k * phase)
    env = (0.55 + 0.45 * torch.sin(2 * math.pi * 3.5 * t - 1.5)).clamp(min=0) ** 1.5
    noise = torch.randn(t.shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    wave = wave * env + 0.02 * (1 - env) * noise
    return (0.5 * wave / wave.abs().max()).float()


def test_griffin_lim_shapes_range_determinism():
    vocoder = GriffinLimVocoder()
    assert not hasattr(vocoder, "model")
    for frames in (1, 2, 7, 131):
        audio = vocoder.decode(torch.randn(2, 80, frames) * 2 - 5)
        assert audio["sample_rate"] == 24000 and audio["waveform"].shape == (2, 1, frames * 240)
        assert audio["waveform"].dtype == torch.float32 and audio["waveform"].abs().max() <= 1.0
    mel = torch.randn(80, 20) * 2 - 5
    first, again = vocoder.decode(mel)["waveform"], vocoder.decode(mel)["waveform"]
    assert first.shape == (1, 1, 4800) and torch.equal(first, again)
    with pytest.raises(ValueError, match="log-mel"):
        vocoder.decode(torch.zeros(1, 64, 10))


def test_griffin_lim_re_analysis_error():
    mel = log_mel(speech_like(1.0))
    wave = GriffinLimVocoder(speech_level_db=None).decode(mel)["waveform"][0, 0]      # the level the mel asks for
    err = (log_mel(wave) - mel).abs()
    # measured 0.097 mean log units (64 iterations), 0.089 without the 3 frames at each end; with
    # the wave shifted by 30 (60) samples the latter becomes 0.100 (0.125)
    assert float(err.mean()) < 0.105
    assert float(err[:, 3:-3].mean()) < 0.095


def test_hashed_captions():
    enc = HashedCaptionEncoder(dim=64, max_rows=6)
    feats = enc.encode("The cat, the CAT!")
    assert feats.shape == (4, 64) and feats.dtype == torch.float32
    assert torch.equal(feats, enc.encode("the cat the cat"))
    # the same word differs only by the small position term; different words are unrelated
    assert 0 < float((feats[0] - feats[2]).pow(2).mean().sqrt()) < 0.2
    assert float(torch.cosine_similarity(feats[0], feats[1], dim=0).abs()) < 0.5
    assert float(feats.pow(2).mean()) == pytest.approx(1.01, abs=0.2)
    assert enc.encode("").shape == (0, 64) and enc.encode(" ,.! ").shape == (0, 64)
    assert enc.encode("one two three four five six seven eight").shape == (6, 64)
    assert not torch.equal(enc.encode("cat dog"), enc.encode("dog cat"))
    # pinned values: the same in every process, on every machine
    assert HashedCaptionEncoder(dim=4, position_scale=0).encode("hello")[0].tolist() == pytest.approx(
        PINNED_HELLO, abs=1e-6)


PINNED_HELLO = [-0.7185059785842896, 1.4103739261627197, -1.2150481939315796, -0.13510113954544067]
