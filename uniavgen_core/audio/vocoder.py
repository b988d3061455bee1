"""BigVGAN vocoder of Qwen2.5-Omni (transformers `Qwen2_5OmniToken2WavBigVGANModel`), as used by
the release (docs/MODEL.md §7.4): log-mel [B, 80, T] in, 24 kHz waveform (240 samples per frame) out."""
from __future__ import annotations

import os
from pathlib import Path

import torch

from ..units import HOP, N_MELS, SAMPLE_RATE
from .levels import limit_peaks

MIN_TRANSFORMERS = "4.52"
CHUNK_FRAMES = 1024          # longer inputs are decoded piecewise ...
CONTEXT_FRAMES = 64          # ... with this much mel context on each side (beyond the receptive field)


class VocoderError(RuntimeError):
    pass


def _model_class():
    try:
        import transformers
    except ImportError:
        raise VocoderError(f"the vocoder needs the transformers package (>= {MIN_TRANSFORMERS}): "
                           f"pip install -U transformers") from None
    cls = getattr(transformers, "Qwen2_5OmniToken2WavBigVGANModel", None)
    if cls is None:
        raise VocoderError(f"transformers {transformers.__version__} is too old for the Qwen2.5-Omni BigVGAN "
                           f"vocoder; it needs >= {MIN_TRANSFORMERS}: pip install -U transformers")
    return cls


def _check_loading(info: dict, folder: Path) -> None:
    """Strict loading: transformers fills missing weights with random ones, which decode to noise."""
    from ..checkpoint.loading import summarise_keys
    problems = []
    for kind in ("missing_keys", "unexpected_keys"):
        keys = sorted(info.get(kind) or [])
        if keys:
            problems.append(f"{kind.replace('_', ' ')} ({len(keys)}): {summarise_keys(keys)}")
    mismatched = info.get("mismatched_keys") or []
    if mismatched:
        problems.append(f"shape mismatches ({len(mismatched)}): " + "; ".join(str(m) for m in mismatched[:3]))
    if problems:
        raise VocoderError(f"the vocoder in {folder} does not match the BigVGAN it describes:\n  "
                           + "\n  ".join(problems) + "\n  download the release's code2wav_bigvgan_model folder "
                           "again (a partial download leaves weights out)")


class Vocoder:
    def __init__(self, model: torch.nn.Module):
        cfg = model.config
        rate = 1
        for r in cfg.upsample_rates:
            rate *= r
        if cfg.mel_dim != N_MELS or rate != HOP:
            raise VocoderError(f"this BigVGAN takes {cfg.mel_dim} mel bins and makes {rate} samples per frame; "
                               f"UniAVGen needs {N_MELS} and {HOP} (the code2wav_bigvgan_model of the release)")
        self.model = model.eval().requires_grad_(False)

    @classmethod
    def from_folder(cls, folder: str | os.PathLike, device="cpu", dtype: torch.dtype = torch.float32) -> "Vocoder":
        """A Hugging Face folder: config.json + *.safetensors (pickled weights are never loaded)."""
        folder = Path(folder)
        if not (folder / "config.json").is_file():
            raise VocoderError(f"no vocoder at {folder}: expected the release's code2wav_bigvgan_model folder "
                               f"with config.json and its .safetensors weights")
        if not any(folder.glob("*.safetensors")):
            raise VocoderError(f"{folder} has config.json but no .safetensors weights (pickled .bin files are "
                               f"not loaded); download the safetensors version")
        model_cls = _model_class()
        try:
            model, info = model_cls.from_pretrained(str(folder), local_files_only=True, use_safetensors=True,
                                                    output_loading_info=True)
        except Exception as err:  # noqa: BLE001 - transformers and safetensors raise many types for bad files
            raise VocoderError(f"cannot load the vocoder from {folder} ({type(err).__name__}: {str(err)[:300]}); "
                               f"the files are damaged or incomplete: download the release's "
                               f"code2wav_bigvgan_model folder again") from None
        _check_loading(info, folder)
        for name, tensor in model.state_dict().items():
            if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
                raise VocoderError(f"the vocoder in {folder} has NaN or infinite values in {name}; the file is "
                                   f"damaged: download it again")
        return cls(model.to(device=device, dtype=dtype))

    @torch.no_grad()
    def decode(self, log_mel: torch.Tensor, chunk_frames: int = CHUNK_FRAMES) -> dict:
        """log-mel [B, 80, T] (de-normalised, see mel.denormalise) -> AUDIO dict with waveform
        [B, 1, T*240] float32 on the CPU. A wave within [-1, 1] is returned as the model made it; one
        that the release would clamp is limited smoothly to -1 dBFS instead (levels.limit_peaks)."""
        if log_mel.dim() == 2:
            log_mel = log_mel[None]
        if log_mel.dim() != 3 or log_mel.shape[1] != N_MELS:
            raise ValueError(f"vocoder input must be a log-mel [batch, {N_MELS}, frames], got {tuple(log_mel.shape)}")
        param = next(self.model.parameters())
        mel = log_mel.to(device=param.device, dtype=param.dtype)
        frames = mel.shape[-1]
        # The model's forward clamps its wave to [-1, 1]; its last layer's output is the wave before that.
        made = []
        hook = self.model.conv_post.register_forward_hook(lambda module, args, out: made.append(out))
        pieces = []
        try:
            for start in range(0, frames, chunk_frames):
                lo, hi = max(0, start - CONTEXT_FRAMES), min(frames, start + chunk_frames + CONTEXT_FRAMES)
                self.model(mel[..., lo:hi])
                wave = made.pop().reshape(mel.shape[0], -1)
                keep = (start - lo) * HOP
                pieces.append(wave[:, keep: keep + (min(frames, start + chunk_frames) - start) * HOP])
        finally:
            hook.remove()
        wave = torch.cat(pieces, dim=-1).float().cpu()
        if float(wave.abs().max()) > 1:
            wave = limit_peaks(wave)
        return {"waveform": wave[:, None], "sample_rate": SAMPLE_RATE}
