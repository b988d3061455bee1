"""A fixed linear video codec with the latent layout of the Wan2.2 VAE.

Pictures [T, H, W, 3] in [0, 1] (T = 4k + 1, H and W multiples of 16) <-> latents
[48, 1 + k, H/16, W/16]. Latent frame 0 encodes picture 0 alone (repeated four times to fill a
patch), latent frame i >= 1 encodes pictures 4i-3 .. 4i. Each 4 x 16 x 16 x 3 patch (3072 values,
flattened time, row, column, colour) loses its fitted mean, is projected on the 48 leading
principal directions, and each channel is scaled to zero mean and unit variance over the
fitting data, so latents are about unit scale per channel like normalised Wan latents."""
from __future__ import annotations

import os
from typing import Iterable

import torch

from ...units import LATENT_CHANNELS, SPATIAL_STRIDE, TEMPORAL_STRIDE

PATCH_T, PATCH_S, COLOURS = TEMPORAL_STRIDE, SPATIAL_STRIDE, 3     # the Wan2.2 VAE's strides
PATCH_DIM = PATCH_T * PATCH_S * PATCH_S * COLOURS           # 3072
FORMAT = "uniavgen-patch-pca-codec"
VERSION = "1"
_TENSORS = {"basis": (PATCH_DIM, LATENT_CHANNELS), "mean": (PATCH_DIM,),
            "channel_mean": (LATENT_CHANNELS,), "channel_std": (LATENT_CHANNELS,)}
_CHUNK = 8192                # patches per matrix product while fitting
_BLOCK = 768                 # block size of the Gram matrix products


def _check_pixels(frames: torch.Tensor) -> torch.Tensor:
    """[T, H, W, 3] or [B, T, H, W, 3] -> float [B, T, H, W, 3]."""
    if frames.dim() == 4:
        frames = frames[None]
    if frames.dim() != 5 or frames.shape[-1] != COLOURS:
        raise ValueError(f"pictures must be [frames, height, width, 3] or [batch, frames, height, width, 3], "
                         f"got {tuple(frames.shape)}")
    _, t, h, w, _ = frames.shape
    if t < 1 or (t - 1) % PATCH_T:
        raise ValueError(f"{t} frames: the count must be 4k+1 (1, 5, 9, ..., 81)")
    if h % PATCH_S or w % PATCH_S or h == 0 or w == 0:
        raise ValueError(f"{h}x{w} pictures: height and width must be positive multiples of {PATCH_S}")
    if not frames.is_floating_point():
        raise ValueError(f"pictures must be floating point in [0, 1], got {frames.dtype}")
    return frames


def _group(frames: torch.Tensor, i: int) -> torch.Tensor:
    """The pictures [B, 4, H, W, 3] of latent frame i: picture 0 repeated for i = 0, else 4i-3 .. 4i."""
    if i == 0:
        return frames[:, :1].expand(-1, PATCH_T, -1, -1, -1)
    return frames[:, PATCH_T * i - 3: PATCH_T * i + 1]


def _to_patches(group: torch.Tensor) -> torch.Tensor:
    """[..., 4, H, W, 3] -> [..., H/16, W/16, 3072]."""
    *lead, t, h, w, c = group.shape
    x = group.reshape(*lead, t, h // PATCH_S, PATCH_S, w // PATCH_S, PATCH_S, c)
    n = len(lead)
    x = x.permute(*range(n), n + 1, n + 3, n, n + 2, n + 4, n + 5)
    return x.reshape(*lead, h // PATCH_S, w // PATCH_S, PATCH_DIM)


def _from_patches(patches: torch.Tensor) -> torch.Tensor:
    """[..., h, w, 3072] -> [..., 4, 16h, 16w, 3]."""
    *lead, h, w, _ = patches.shape
    x = patches.reshape(*lead, h, w, PATCH_T, PATCH_S, PATCH_S, COLOURS)
    n = len(lead)
    x = x.permute(*range(n), n + 2, n, n + 3, n + 1, n + 4, n + 5)
    return x.reshape(*lead, PATCH_T, h * PATCH_S, w * PATCH_S, COLOURS)


class PCAFitter:
    """Streams clips into the patch covariance: `add(frames)` as often as wanted, then `finish()`.

    Each batch's patches are shifted by the first batch's mean (so that the sums do not cancel),
    their Gram matrix is formed in float32 and summed in float64."""

    def __init__(self):
        self.count = 0
        self._shift: torch.Tensor | None = None
        self._sum = torch.zeros(PATCH_DIM, dtype=torch.float64)
        self._gram = torch.zeros(PATCH_DIM, PATCH_DIM, dtype=torch.float64)

    @torch.no_grad()
    def add(self, frames: torch.Tensor) -> None:
        """Pictures [T, H, W, 3] or [B, T, H, W, 3] in [0, 1]; their patches join the statistics."""
        frames = _check_pixels(frames).float().cpu()
        patches = torch.cat([_to_patches(_group(frames, i)).reshape(-1, PATCH_DIM)
                             for i in range(1 + (frames.shape[1] - 1) // PATCH_T)])
        if self._shift is None:
            self._shift = patches.double().mean(0)
        shift = self._shift.float()
        for lo in range(0, patches.shape[0], _CHUNK):
            x = patches[lo: lo + _CHUNK] - shift
            # the upper block triangle of x^T x only (about 40 % fewer flops); finish() mirrors it
            for i in range(0, PATCH_DIM, _BLOCK):
                for j in range(i, PATCH_DIM, _BLOCK):
                    self._gram[i: i + _BLOCK, j: j + _BLOCK] += (x[:, i: i + _BLOCK].T @ x[:, j: j + _BLOCK]).double()
            self._sum += x.double().sum(0)
        self.count += patches.shape[0]

    @torch.no_grad()
    def finish(self) -> "PatchPCACodec":
        if self.count <= LATENT_CHANNELS:
            raise ValueError(f"the codec needs more than {LATENT_CHANNELS} patches of fitting data, got {self.count}")
        mean_shifted = self._sum / self.count
        upper = torch.triu(self._gram)          # exact: the diagonal blocks were summed whole
        gram = upper + upper.T - torch.diag_embed(upper.diagonal())
        cov = gram / self.count - torch.outer(mean_shifted, mean_shifted)
        values, vectors = _top_eigen(cov, LATENT_CHANNELS)
        # Deterministic signs: the largest entry (the first one, on ties) of each direction is positive.
        pick = vectors.abs().argmax(0)
        vectors = vectors * torch.sign(vectors[pick, torch.arange(LATENT_CHANNELS)])
        std = values.clamp(min=0).sqrt().clamp(min=1e-6)
        # the projection of the fitted mean is zero, so the channel means are zero
        return PatchPCACodec(vectors.float(), (self._shift + mean_shifted).float(),
                             torch.zeros(LATENT_CHANNELS), std.float(), patches=self.count)


def _top_eigen(cov: torch.Tensor, k: int, extra: int = 48, max_iter: int = 300,
               tol: float = 1e-13) -> tuple[torch.Tensor, torch.Tensor]:
    """The k leading eigenpairs of a symmetric positive semi-definite matrix, largest first.

    Block subspace iteration on k + extra directions with Rayleigh-Ritz (torch.linalg.eigh of the
    small projected matrix); far cheaper than a full eigh of 3072 x 3072 and deterministic (seeded
    start). It stops when the k leading Ritz values change by less than tol (relative)."""
    n = cov.shape[0]
    m = min(n, k + extra)
    q = torch.linalg.qr(torch.randn(n, m, dtype=cov.dtype, generator=torch.Generator().manual_seed(0)))[0]
    prev = None
    for _ in range(max_iter):
        cq = cov @ q
        values, small = torch.linalg.eigh(q.T @ cq)
        values = values.flip(0)[:k]
        if prev is not None and float((values - prev).abs().max()) <= tol * float(values[0].abs().clamp(min=1e-300)):
            break
        prev = values
        q = torch.linalg.qr(cq)[0]
    vectors = q @ small.flip(1)[:, :k]
    return values, vectors


class PatchPCACodec:
    """Pictures [T, H, W, 3] <-> latents [48, 1 + k, H/16, W/16] (batched forms take a leading B)."""

    def __init__(self, basis: torch.Tensor, mean: torch.Tensor, channel_mean: torch.Tensor,
                 channel_std: torch.Tensor, patches: int = 0):
        given = {"basis": basis, "mean": mean, "channel_mean": channel_mean, "channel_std": channel_std}
        for name, shape in _TENSORS.items():
            if tuple(given[name].shape) != shape:
                raise ValueError(f"codec {name} must be {shape}, got {tuple(given[name].shape)}")
        self.basis, self.mean = basis.float().contiguous(), mean.float().contiguous()
        self.channel_mean, self.channel_std = channel_mean.float().contiguous(), channel_std.float().contiguous()
        self.patches = patches
        self._cache: dict = {}

    @classmethod
    def fit(cls, batches: Iterable[torch.Tensor]) -> "PatchPCACodec":
        """Fit on an iterable of clips [T, H, W, 3] or batches [B, T, H, W, 3] (read once)."""
        fitter = PCAFitter()
        for frames in batches:
            fitter.add(frames)
        return fitter.finish()

    @staticmethod
    def latent_shape(frames: int, height: int, width: int) -> tuple[int, int, int, int]:
        _check_pixels(torch.empty(frames, height, width, COLOURS))
        return LATENT_CHANNELS, 1 + (frames - 1) // PATCH_T, height // PATCH_S, width // PATCH_S

    def _on(self, device: torch.device) -> tuple[torch.Tensor, ...]:
        if device not in self._cache:
            self._cache[device] = tuple(t.to(device) for t in (self.basis, self.mean, self.channel_mean,
                                                               self.channel_std))
        return self._cache[device]

    @torch.no_grad()
    def encode(self, frames: torch.Tensor) -> torch.Tensor:
        """[T, H, W, 3] -> [48, 1 + k, H/16, W/16]; [B, T, H, W, 3] -> [B, 48, 1 + k, H/16, W/16]. float32."""
        single = frames.dim() == 4
        x = _check_pixels(frames)
        basis, mean, c_mean, c_std = self._on(x.device)
        # one latent frame at a time keeps the patch tensor small for long, large clips
        z = torch.stack([(_to_patches(_group(x, i).float()) - mean) @ basis
                         for i in range(1 + (x.shape[1] - 1) // PATCH_T)], dim=1)
        z = ((z - c_mean) / c_std).permute(0, 4, 1, 2, 3).contiguous()
        return z[0] if single else z

    @torch.no_grad()
    def decode(self, latent: torch.Tensor) -> torch.Tensor:
        """[48, L, h, w] -> [4L - 3, 16h, 16w, 3]; [B, 48, L, h, w] -> [B, 4L - 3, ...]; float32 in [0, 1].

        Latent frame 0 decodes to four pictures of which the mean is taken (for a latent of a
        still patch, the projection of the reconstruction on still patches)."""
        single = latent.dim() == 4
        z = latent[None] if single else latent
        if z.dim() != 5 or z.shape[1] != LATENT_CHANNELS or min(z.shape[2:]) < 1:
            raise ValueError(f"latents must be [{LATENT_CHANNELS}, frames, height, width] (or with a leading "
                             f"batch), got {tuple(latent.shape)}")
        basis, mean, c_mean, c_std = self._on(z.device)
        z = z.float().permute(0, 2, 3, 4, 1) * c_std + c_mean          # [B, L, h, w, 48]
        pictures = []
        for i in range(z.shape[1]):
            group = _from_patches(z[:, i] @ basis.T + mean)            # [B, 4, H, W, 3]
            pictures.append(group.mean(1, keepdim=True) if i == 0 else group)
        out = torch.cat(pictures, dim=1).clamp(0, 1)
        return out[0] if single else out

    def save(self, path: str | os.PathLike) -> None:
        from safetensors.torch import save_file
        save_file({"basis": self.basis, "mean": self.mean, "channel_mean": self.channel_mean,
                   "channel_std": self.channel_std}, str(path),
                  metadata={"format": FORMAT, "version": VERSION, "patch": f"{PATCH_T}x{PATCH_S}x{PATCH_S}x{COLOURS}",
                            "patch_layout": "time,row,column,colour", "latent_channels": str(LATENT_CHANNELS),
                            "fitted_patches": str(self.patches)})

    @classmethod
    def load(cls, path: str | os.PathLike) -> "PatchPCACodec":
        """Read a file written by `save`; a file of any other kind raises ValueError."""
        from safetensors import safe_open
        path = os.fspath(path)
        if not os.path.isfile(path):
            raise FileNotFoundError(f"no video codec file at {path}")
        try:
            with safe_open(path, framework="pt") as f:
                meta, keys = f.metadata() or {}, set(f.keys())
        except Exception as err:                  # safetensors' own error for a damaged or foreign file
            raise ValueError(f"{path} is not a readable safetensors file: {err}") from None
        if meta.get("format") != FORMAT:
            raise ValueError(f"{path} is not a patch-PCA video codec file "
                             f"(metadata format {meta.get('format')!r}, expected {FORMAT!r})")
        if meta.get("version") != VERSION:
            raise ValueError(f"{path}: codec format version {meta.get('version')!r} is not supported "
                             f"(this code reads version {VERSION})")
        expect = {"patch": f"{PATCH_T}x{PATCH_S}x{PATCH_S}x{COLOURS}", "latent_channels": str(LATENT_CHANNELS)}
        for key, value in expect.items():
            if meta.get(key) != value:
                raise ValueError(f"{path}: codec {key} is {meta.get(key)!r}, this code needs {value!r}")
        missing = sorted(set(_TENSORS) - keys)
        if missing:
            raise ValueError(f"{path}: the codec tensors {missing} are missing")
        with safe_open(path, framework="pt") as f:
            tensors = {name: f.get_tensor(name) for name in _TENSORS}
        for name, shape in _TENSORS.items():
            t = tensors[name]
            if tuple(t.shape) != shape or t.dtype != torch.float32:
                raise ValueError(f"{path}: codec tensor {name!r} is {t.dtype} {tuple(t.shape)}, "
                                 f"expected float32 {shape}")
            if not torch.isfinite(t).all():
                raise ValueError(f"{path}: codec tensor {name!r} holds non-finite values")
        if not (tensors["channel_std"] > 0).all():
            raise ValueError(f"{path}: codec channel_std must be positive")
        basis = tensors["basis"].double()
        if float((basis.T @ basis - torch.eye(LATENT_CHANNELS, dtype=torch.float64)).abs().max()) > 1e-4:
            raise ValueError(f"{path}: the codec basis is not orthonormal")
        try:
            patches = int(meta.get("fitted_patches", "0"))
        except ValueError:
            patches = 0
        return cls(tensors["basis"], tensors["mean"], tensors["channel_mean"], tensors["channel_std"], patches)
