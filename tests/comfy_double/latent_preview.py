"""Double of latent_preview: a previewer exists only when `enabled` (like --preview-method)."""
enabled = False
decoded = []


class Latent2RGBPreviewer:
    def decode_latent_to_preview_image(self, preview_format, x0):
        decoded.append(tuple(x0.shape))
        return (preview_format, None, 512)


def get_previewer(device, latent_format):
    return Latent2RGBPreviewer() if enabled else None
