"""Double of comfy.model_sampling: the rectified-flow model sampling (ModelSamplingDiscreteFlow mixed with CONST,
as ComfyUI builds it for a flow model), with what its samplers call."""
import torch


def _per_row(sigma, ndim):
    """A level, or one per batch row, shaped to broadcast over a [N, ...] tensor of `ndim` axes."""
    sigma = torch.as_tensor(sigma)
    return sigma.reshape(-1, *([1] * (ndim - 1))) if sigma.numel() > 1 else sigma


class CONST:
    """x = sigma noise + (1 - sigma) x0; the model's output is the velocity."""

    def calculate_denoised(self, sigma, model_output, model_input):
        return model_input - _per_row(sigma, model_output.ndim) * model_output

    def noise_scaling(self, sigma, noise, latent_image, max_denoise=False):
        sigma = _per_row(sigma, noise.ndim)
        return sigma * noise + (1.0 - sigma) * latent_image

    def inverse_noise_scaling(self, sigma, latent):
        return latent / (1.0 - _per_row(sigma, latent.ndim))


class ModelSamplingDiscreteFlow(torch.nn.Module):
    def __init__(self, model_config=None):
        super().__init__()
        self.set_parameters()

    def set_parameters(self, shift=1.0, timesteps=1000, multiplier=1000):
        self.shift, self.multiplier = shift, multiplier
        self.register_buffer("sigmas", self.sigma(torch.arange(1, timesteps + 1) / timesteps * multiplier))

    @property
    def sigma_max(self):
        return self.sigmas[-1]

    def timestep(self, sigma):
        return sigma * self.multiplier

    def sigma(self, timestep):
        s = timestep / self.multiplier
        return self.shift * s / (1 + (self.shift - 1) * s)
