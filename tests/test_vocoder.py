"""BigVGAN vocoder wrapper on a tiny random model saved in the Hugging Face folder layout."""
import pytest
import torch

from helpers import save_tiny_vocoder
from uniavgen_core.audio.vocoder import Vocoder, VocoderError

transformers = pytest.importorskip("transformers", reason="transformers is a declared dependency; install it")


@pytest.fixture(scope="module")
def tiny_folder(tmp_path_factory):
    return save_tiny_vocoder(tmp_path_factory.mktemp("code2wav_bigvgan_model"), loud=True)


def test_round_trip_240_samples_per_frame(tiny_folder):
    vocoder = Vocoder.from_folder(tiny_folder)
    for frames in (1, 7, 131):
        audio = vocoder.decode(torch.randn(2, 80, frames) * 2 - 5)
        assert audio["sample_rate"] == 24000 and audio["waveform"].shape == (2, 1, frames * 240)
        assert audio["waveform"].abs().max() <= 1.0 and audio["waveform"].std() > 0.01


def test_long_inputs_are_decoded_in_chunks_like_whole(tiny_folder):
    vocoder = Vocoder.from_folder(tiny_folder)
    mel = torch.randn(1, 80, 300) * 2 - 5
    whole = vocoder.decode(mel, chunk_frames=10_000)["waveform"]
    chunked = vocoder.decode(mel, chunk_frames=64)["waveform"]
    assert chunked.shape == whole.shape
    assert float((chunked - whole).abs().max()) < 1e-4          # -80 dB: the context covers the receptive field


def test_missing_files_and_wrong_models(tiny_folder, tmp_path):
    with pytest.raises(VocoderError, match="code2wav_bigvgan_model folder"):
        Vocoder.from_folder(tmp_path)
    (tmp_path / "config.json").write_text((tiny_folder / "config.json").read_text())
    (tmp_path / "pytorch_model.bin").write_bytes(b"never unpickled")
    with pytest.raises(VocoderError, match="no .safetensors weights"):
        Vocoder.from_folder(tmp_path)
    wrong = transformers.Qwen2_5OmniToken2WavBigVGANModel(transformers.Qwen2_5OmniBigVGANConfig(
        upsample_initial_channel=64, upsample_rates=[5, 3, 2, 2, 2, 4]))
    with pytest.raises(VocoderError, match="480 samples per frame"):
        Vocoder(wrong)


def test_too_old_transformers_is_explained(monkeypatch, tiny_folder):
    import sys
    import types
    old = types.ModuleType("transformers")
    old.__version__ = "4.40.0"
    monkeypatch.setitem(sys.modules, "transformers", old)
    with pytest.raises(VocoderError, match="too old.*pip install -U transformers"):
        Vocoder.from_folder(tiny_folder)
