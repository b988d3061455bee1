"""ComfyUI node adapters (classic V1 API). Thin: validate, convert, call uniavgen_core."""
from .chaining import UniAVGenJoinClips, UniAVGenLastFrame
from .decoding import UniAVGenAudioDecode, UniAVGenSaveLongVideo
from .examples import install as install_example_inputs  # noqa: F401  (the pack entry point calls it)
from .folders import register as register_folders  # noqa: F401  (the pack entry point calls it)
from .inputs import UniAVGenAudioEncode, UniAVGenReferenceImage, UniAVGenSpeechText, UniAVGenVideoEncode
from .long import UniAVGenExtend, UniAVGenLongSampler
from .loaders import UniAVGenConvertModel, UniAVGenModelLoader, UniAVGenVocoderLoader
from .parallel import UniAVGenParallelDevices
from .lora import UniAVGenLoraLoader
from .sampling import UniAVGenSampler, UniAVGenSchedule
from .weight_free import UniAVGenCaptionEncode, UniAVGenSyntheticFace, UniAVGenVideoCodecLoader

_NODES = {
    UniAVGenModelLoader: "UniAVGen Model Loader",
    UniAVGenLoraLoader: "UniAVGen LoRA Loader",
    UniAVGenParallelDevices: "UniAVGen Parallel Devices",
    UniAVGenVocoderLoader: "UniAVGen Vocoder Loader",
    UniAVGenSpeechText: "UniAVGen Speech Text",
    UniAVGenReferenceImage: "UniAVGen Reference Image",
    UniAVGenAudioEncode: "UniAVGen Audio Encode",
    UniAVGenVideoEncode: "UniAVGen Video Encode",
    UniAVGenSampler: "UniAVGen Sampler",
    UniAVGenSchedule: "UniAVGen Schedule",
    UniAVGenLongSampler: "UniAVGen Long Sampler",
    UniAVGenExtend: "UniAVGen Extend",
    UniAVGenAudioDecode: "UniAVGen Audio Decode",
    UniAVGenSaveLongVideo: "UniAVGen Save Long Video",
    UniAVGenLastFrame: "UniAVGen Last Frame",
    UniAVGenJoinClips: "UniAVGen Join Clips",
    UniAVGenConvertModel: "UniAVGen Convert Model (one file, bf16/fp8)",
    UniAVGenVideoCodecLoader: "UniAVGen Video Codec Loader (weight-free)",
    UniAVGenCaptionEncode: "UniAVGen Caption (weight-free)",
    UniAVGenSyntheticFace: "UniAVGen Synthetic Face",
}
NODE_CLASS_MAPPINGS = {cls.__name__: cls for cls in _NODES}
NODE_DISPLAY_NAME_MAPPINGS = {cls.__name__: name for cls, name in _NODES.items()}
