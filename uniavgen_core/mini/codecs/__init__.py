"""Weight-free and tiny stand-ins with the layouts of the release's codecs: a patch-PCA video
codec (Wan2.2 VAE latent layout), a Griffin-Lim vocoder (BigVGAN's interface) and a hashed
caption encoder (umT5 feature rows)."""
from __future__ import annotations

from .caption_hash import HashedCaptionEncoder
from .griffin_lim import GriffinLimVocoder
from .video_pca import PatchPCACodec, PCAFitter

__all__ = ["GriffinLimVocoder", "HashedCaptionEncoder", "PatchPCACodec", "PCAFitter"]
