"""A deterministic stand-in for ComfyUI's VAE object (encode/decode signatures and shapes)."""
import torch
import torch.nn.functional as F


class FakeWanVAE:
    def __init__(self, latent_channels=48):
        self.latent_channels = latent_channels
        gen = torch.Generator().manual_seed(0)
        self.proj = torch.randn(latent_channels, 3, generator=gen)

    def encode(self, pixels):
        """IMAGE [T, H, W, 3] -> raw latent [1, C, (T-1)//4 + 1, H/16, W/16]."""
        t, h, w, _ = pixels.shape
        x = pixels.movedim(-1, 0)[None]                                      # [1, 3, T, H, W]
        keep = torch.arange(0, t, 4)
        x = F.avg_pool3d(x[:, :, keep], kernel_size=(1, 16, 16))
        return torch.einsum("ck,bkthw->bcthw", self.proj, x)

    def decode(self, latent):
        """raw latent [B, C, t, h, w] -> [B, 4t-3, 16h, 16w, 3] in 0..1."""
        b, c, t, h, w = latent.shape
        rgb = torch.sigmoid(latent[:, :3])
        rgb = rgb.repeat_interleave(16, 3).repeat_interleave(16, 4)
        rgb = torch.cat([rgb[:, :, :1], rgb[:, :, 1:].repeat_interleave(4, 2)], dim=2)
        return rgb.movedim(1, -1)
