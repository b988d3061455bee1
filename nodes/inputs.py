"""Conditioning inputs: transcript, reference face, voice / driving audio, driving video."""
import functools
import os
from dataclasses import dataclass
from pathlib import Path

import torch

from uniavgen_core.audio.inputs import PreparedAudio, level_driving_audio, reference_voice
from uniavgen_core.audio.speech_tokenizer import SpeechTokenizer
from uniavgen_core.audio.transcript import describe, fit_to_vocabulary, wordless
from uniavgen_core.checkpoint.loading import embedded_vocab
from uniavgen_core.frontend import image_prep
from uniavgen_core.frontend.face import FaceDetectorUnavailable, detect_face
from uniavgen_core.frontend.jobs import Speech
from uniavgen_core.units import FPS, LATENT_CHANNELS, video_frames

from . import folders, host
from .common import ASPECTS, CATEGORY, CROPS, check_images, resolution_inputs, with_messages

VOICE, DRIVING = "reference voice (RAVG)", "driving audio (A2V)"


@functools.lru_cache(maxsize=4)
def _tokenizer(model_path: str) -> SpeechTokenizer:
    """The vocabulary embedded in a converted file, else vocab.txt next to the model."""
    text = embedded_vocab(model_path)
    if text is not None:
        return SpeechTokenizer.from_text(text)
    return SpeechTokenizer.from_file(folders.vocab_for(Path(model_path)))


class UniAVGenSpeechText:
    DESCRIPTION = ("The words to speak, in the characters the loaded model's speech vocabulary has. English is read "
                   "character by character, Chinese is converted to pinyin. A character the vocabulary has only in "
                   "another form is changed to that form and the message says so: capitals are lower-cased for "
                   "UniAVGen-mini, which knows only lower-case letters, space and ' , . ? ! - (write numbers as "
                   "words); curly quotes, full-width punctuation and line breaks become their plain forms. The "
                   "release's vocab.txt has letters in both cases, digits and punctuation, and its text is never "
                   "changed. Characters with no form in the vocabulary are listed (they are read as a pause). For "
                   "voice cloning, give the reference recording's transcript too.")
    CATEGORY = CATEGORY
    RETURN_TYPES = ("UNIAVGEN_SPEECH",)
    RETURN_NAMES = ("speech",)
    FUNCTION = "encode"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "model": ("UNIAVGEN_MODEL", {"tooltip": "The UniAVGen model: its speech vocabulary (in the file, or "
                      "vocab.txt in its folder) decides which characters the text may use."}),
            "text": ("STRING", {"multiline": True, "default": "", "tooltip": "Transcript of the speech to generate, "
                     "in the characters the model's vocabulary has (UniAVGen-mini: lower-case letters, space and "
                     "' , . ? ! -; capitals are lower-cased for it). Audio-driven video (A2V) needs none: its "
                     "speech is the driving audio."}),
            "language": (["auto", "en", "zh"], {"default": "auto", "tooltip":
                         "auto: Chinese if the text has Chinese characters, else English."}),
        }, "optional": {
            "reference_text": ("STRING", {"multiline": True, "default": "", "tooltip":
                               "Transcript of the reference voice recording (voice cloning only)."}),
        }}

    def encode(self, model, text, language, reference_text=""):
        tokenizer = _tokenizer(str(model.model.path))
        fitted = fit_to_vocabulary(text, tokenizer.vocab)
        ref = fit_to_vocabulary(reference_text.strip(), tokenizer.vocab)
        tokens = tokenizer.encode(fitted.text, language, ref_text=ref.text or None)
        null = tokenizer.null(ref_text=ref.text or None, lang=language)
        messages = fitted.messages() + [f"reference transcript: {m}" for m in ref.messages()]
        if tokens.unknown:
            messages.append(f"{tokens.warning()} This model's vocabulary has {describe(tokenizer.vocab)}.")
        nothing = wordless(text)
        if nothing:
            messages.append(f"the transcript has no words ({nothing}): generated speech will have none (fine for "
                            f"audio-driven video, A2V, which takes its speech from the driving audio)")
        return with_messages((Speech(tokens, null, fitted.text, ref.text),), messages)


@dataclass
class Reference:
    latent: torch.Tensor                 # [48, 1, h, w] normalised Wan2.2 latent


def side(resolution: str, value: int) -> int | None:
    """The short side the resolution choice asks for; None: the release's rule."""
    return value if resolution == "short side" else None


def encode_frames(vae, frames: torch.Tensor) -> torch.Tensor:
    """IMAGE frames -> normalised Wan2.2 latent [48, T, h, w] through the native VAE."""
    channels = getattr(vae, "latent_channels", None)
    if channels != LATENT_CHANNELS:
        raise ValueError(f"this VAE has {channels} latent channels; UniAVGen needs the Wan2.2 VAE "
                         f"(48 channels, e.g. wan2.2_vae.safetensors in models/vae), not the Wan2.1 VAE")
    raw = vae.encode(frames[..., :3])
    return host.wan22_format().process_in(raw)[0].float()


class UniAVGenReferenceImage:
    DESCRIPTION = ("The face to animate: resizes the picture the way the model expects (optionally cropped "
                   "around the detected face) and encodes it with the Wan2.2 VAE. Outputs the image the model "
                   "sees and a mask of the detected face.")
    CATEGORY = CATEGORY
    RETURN_TYPES = ("UNIAVGEN_REFERENCE", "IMAGE", "MASK")
    RETURN_NAMES = ("reference", "image", "face_mask")
    FUNCTION = "encode"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "image": ("IMAGE", {"tooltip": "Reference picture of the person (the first image of a batch is used)."}),
            "vae": ("VAE", {"tooltip": "The Wan2.2 VAE (VAELoader with wan2.2_vae.safetensors)."}),
            **resolution_inputs(),
            "crop": (CROPS, {"default": "none", "tooltip": "none: keep the whole picture. face: crop to the "
                     "aspect below around the face found by insightface (centre crop if none is found). "
                     "center: crop around the picture's centre."}),
            "aspect": (ASPECTS, {"default": "keep", "tooltip": "Width:height of the crop; keep = no crop."}),
        }}

    def encode(self, image, vae, resolution, short_side, crop, aspect):
        check_images(image, "image")
        messages = ["only the first image of the batch is used"] if image.shape[0] > 1 else []
        frame = image[:1, ..., :3].float()
        box = None
        if crop == "face":
            try:
                box = detect_face(frame[0], os.path.join(host.folder_paths().models_dir, "insightface"))
                if box is None:
                    messages.append("no face found in the reference image: cropped around the centre instead")
            except FaceDetectorUnavailable as err:
                messages.append(f"face crop unavailable ({err}): cropped around the centre instead")
        ratio = None
        if crop != "none" and aspect != "keep":
            w_ratio, h_ratio = (int(v) for v in aspect.split(":"))
            ratio = w_ratio / h_ratio
        prepared, mask, framed = image_prep.frame_reference(frame, ratio, box, side(resolution, short_side))
        return with_messages((Reference(encode_frames(vae, prepared)), prepared, mask[None]), messages + framed)


@dataclass
class AudioInput:
    role: str
    prepared: PreparedAudio


class UniAVGenAudioEncode:
    DESCRIPTION = ("Prepares audio for the model: a reference voice to clone (RAVG) or the speech that drives "
                   "the video (A2V). Any sample rate or channel count; converted to 24 kHz mono and levelled.")
    CATEGORY = CATEGORY
    RETURN_TYPES = ("UNIAVGEN_AUDIO",)
    RETURN_NAMES = ("audio",)
    FUNCTION = "encode"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "audio": ("AUDIO", {"tooltip": "Audio from LoadAudio or any node producing AUDIO."}),
            "role": ([VOICE, DRIVING], {"default": VOICE, "tooltip": "reference voice: whose voice to speak "
                     "with. driving audio: the speech the video is lip-synced to (trimmed or padded to the "
                     "sampler's duration)."}),
        }}

    def encode(self, audio, role):
        prepared = reference_voice(audio) if role == VOICE else level_driving_audio(audio)
        return with_messages((AudioInput(role, prepared),), prepared.messages)


@dataclass
class DrivingVideo:
    latent: torch.Tensor                 # [48, T, h, w] normalised, 4(T-1)+1 frames at 16 fps
    reference: Reference                 # its first frame

    @property
    def frames(self) -> int:
        return video_frames(self.latent.shape[1])


class UniAVGenVideoEncode:
    DESCRIPTION = ("A video to dub (V2A): resampled to 16 fps, cut to 4k+1 frames, resized like the reference "
                   "and encoded with the Wan2.2 VAE. Its first frame is the reference face.")
    CATEGORY = CATEGORY
    RETURN_TYPES = ("UNIAVGEN_VIDEO", "IMAGE")
    RETURN_NAMES = ("video", "frames")
    FUNCTION = "encode"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "images": ("IMAGE", {"tooltip": "The video's frames (e.g. from GetVideoComponents or a video loader)."}),
            "fps": ("FLOAT", {"default": float(FPS), "min": 1.0, "max": 240.0, "step": 0.001, "tooltip":
                    "Frame rate of the input frames; they are resampled to the model's 16 fps."}),
            "vae": ("VAE", {"tooltip": "The Wan2.2 VAE (VAELoader with wan2.2_vae.safetensors)."}),
            **resolution_inputs(),
        }}

    def encode(self, images, fps, vae, resolution, short_side):
        check_images(images, "images")
        clip, messages = image_prep.frame_video(images[..., :3].float(), fps, side(resolution, short_side))
        latent = encode_frames(vae, clip)
        # the Wan2.2 VAE is causal: the first latent frame encodes the first picture alone
        return with_messages((DrivingVideo(latent, Reference(latent[:, :1])), clip), messages)
