"""Several devices: the Parallel Devices node, and the ranks it gives a model. The ranks are worker processes of
this pack, one per device, each holding the whole model: started at the first sample, kept for the next ones,
and ended when ComfyUI unloads its models (they are registered with its memory manager), when the node's result
is dropped, and when ComfyUI exits, however it exits."""
import logging
import weakref

import torch

from uniavgen_core.frontend.jobs import JobError
from uniavgen_core.parallel import (MODES, Cancelled, ParallelConfig, RankPool, check_run, load_on_rank,
                                    long_on_rank, parse_devices, sample_on_rank)

from . import host
from .common import CATEGORY, with_messages

RANKS = "uniavgen_ranks"           # model_options key: the ParallelRanks a model samples on
NO_LORAS = ("LoRAs are applied by ComfyUI in this process and do not reach the ranks of UniAVGen Parallel Devices: "
            "remove the LoRA loader, or sample on one device to use it")


class RanksHolder(torch.nn.Module):
    """What ComfyUI's memory manager holds for the ranks (no weights in this process): unloading it ends them."""

    def __init__(self):
        super().__init__()
        self.device = torch.device("cpu")


class ParallelRanks:
    """The ranks of one model on `devices`, split as `mode` says (uniavgen_core.parallel)."""

    def __init__(self, devices: list[str], mode: str, handle):
        self.devices, self.config = devices, ParallelConfig(len(devices), mode)
        self.load_args = (str(handle.path), handle.weight_dtype, handle.attention)
        self.pool = None
        mm = host.mm()
        self.patcher = host.model_patcher(RanksHolder(), mm.get_torch_device(), torch.device("cpu"))
        ranks = weakref.ref(self)       # the patcher must not keep the ranks alive
        # load_models_gpu detaches a model it already holds before loading it again (unpatch_all False):
        # only an unload (unpatch_all True) ends the ranks
        self.patcher.add_callback(host.module("comfy.patcher_extension").CallbacksMP.ON_DETACH,
                                  lambda _, unpatch_all: unpatch_all and ranks() is not None and ranks().close())

    def __deepcopy__(self, memo):
        return self         # ModelPatcher.clone deep-copies model_options: every clone samples on the same ranks

    def describe(self) -> str:
        return f"{len(self.devices)} ranks ({self.config.mode}) on {', '.join(self.devices)}"

    def check(self, model, params, latent_frames: int, sampler=None) -> None:
        """What these ranks cannot run, as a JobError before any work."""
        if sampler is not None:
            raise JobError("a connected ComfyUI sampler runs in this process, not on the ranks of UniAVGen Parallel "
                           "Devices: disconnect it (the pack's own solvers, presets and sigmas run on the ranks)")
        if model.patches:
            raise JobError(NO_LORAS)
        try:
            check_run(self.config, params, latent_frames)
        except ValueError as err:
            raise JobError(str(err)) from None

    def run(self, fn, *args, on_step=None, **kwargs):
        """fn(model, *args, **kwargs) on every rank (uniavgen_core.parallel.RankPool.run), with ComfyUI's interrupt;
        the ranks start here when they are not running."""
        mm = host.mm()
        mm.load_models_gpu([self.patcher])          # "unload models" and the memory manager can now end them
        try:
            pool = self.pool
            if pool is None or not pool.alive:
                self.close()
                logging.info("UniAVGen: starting %s (each loads the model)", self.describe())
                pool = self.pool = RankPool(self.devices, load_on_rank, *self.load_args,
                                            cancelled=mm.processing_interrupted)
            return pool.run(fn, *args, progress=on_step, cancelled=mm.processing_interrupted, **kwargs)
        except Cancelled:
            mm.throw_exception_if_processing_interrupted()
            raise

    def sample(self, request, params, sigmas, report):
        """One sample on the ranks, with its face masks (run_sampler's result)."""
        return self.run(sample_on_rank, [request], params, self.config, capture_face_masks=True, sigmas=sigmas,
                        on_step=lambda info: report(info.step, info.steps, info.denoised_video))

    def long(self, inputs, trained_frames, params, on_step, **long_kwargs):
        """generate_long on the ranks (run_long's result)."""
        return self.run(long_on_rank, self.config, inputs, trained_frames, params, on_step=on_step, **long_kwargs)

    def close(self) -> None:
        if self.pool is not None:
            logging.info("UniAVGen: ending %s", self.describe())
            self.pool.close()
            self.pool = None


def ranks_of(model) -> ParallelRanks | None:
    """The ranks a UNIAVGEN_MODEL samples on, or None for this process's device."""
    return model.model_options.get(RANKS)


class UniAVGenParallelDevices:
    DESCRIPTION = ("Samples the model on several devices at once (the Sampler, Extend and Long Sampler after it): "
                   "cfg runs the conditional and unconditional guidance passes on 2 GPUs; ulysses splits the video "
                   "tokens of each pass over all of them; cfg+ulysses does both (two halves). Each device holds the "
                   "whole model in a worker process the pack starts at the first sample and keeps for the next; "
                   "'unload models', or closing ComfyUI, ends them. One device: sampling as usual.")
    CATEGORY = CATEGORY
    RETURN_TYPES = ("UNIAVGEN_MODEL",)
    RETURN_NAMES = ("model",)
    FUNCTION = "attach"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "model": ("UNIAVGEN_MODEL", {"tooltip": "From UniAVGen Model Loader. Each device loads the same file with "
                      "the loader's weight_dtype and attention; block swap and compile apply to one device only and "
                      "LoRAs are not carried to the devices."}),
            "devices": ("STRING", {"default": "cuda:0, cuda:1", "tooltip": "One device per worker, separated by "
                        "commas: cuda:0, cuda:1 (2 GPUs), cuda:0, cuda:1, cuda:2, cuda:3 (4), ... 'cpu, cpu' runs "
                        "two CPU workers, to try it without GPUs. GPUs of their own talk over NCCL; CPU workers, or "
                        "two on one GPU, over gloo (slower)."}),
            "mode": (list(MODES), {"default": "cfg", "tooltip": "cfg: exactly 2 devices, one guidance pass each, "
                     "nearly 2x faster (one exchange a step). ulysses: any number of devices, each with a share of "
                     "the video frames; the more devices, the more traffic (NVLink helps). cfg+ulysses: an even "
                     "number, e.g. 2 x 4 on 8 GPUs. All give the one-device result."}),
        }}

    def attach(self, model, devices, mode):
        try:
            names = parse_devices(devices)
            if len(names) == 1:
                return with_messages((model,), [f"one device ({names[0]}): sampling as usual, on ComfyUI's device"])
            ranks = ParallelRanks(names, mode, model.model)
        except ValueError as err:
            raise JobError(str(err)) from None
        if model.patches:
            raise JobError(NO_LORAS)
        attached = model.clone()
        attached.model_options[RANKS] = ranks
        return with_messages((attached,), [f"{ranks.describe()}: they start at the first sample and keep the model "
                                           f"until 'unload models'"])
