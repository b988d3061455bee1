"""The shipped workflows, defined once. tools/build_workflows.py writes them in ComfyUI's UI format
(workflows/*.json, what users drag in) and API format (workflows/api/*.json, for /prompt).

A graph is {id: (class_type, {input: value or (source_id, output_index)})}."""

DIT = "UniAVGen/"
VOCODER = "UniAVGen/code2wav_bigvgan_model/"    # where the download command puts it
VAE = "wan2.2_vae.safetensors"
UMT5 = "umt5_xxl_fp8_e4m3fn_scaled.safetensors"
DOWNLOADS = {DIT, VOCODER, VAE, UMT5}         # model files the user downloads (README); the pack ships the rest
# What the shipped inputs show (example_inputs/, made by python -m uniavgen_core.cli.samples; the tests compare
# these with the generator): the face picture, uniavgen_face.png, and the face in the clip to dub, uniavgen_clip.mp4.
FACE = ("a person with tan skin, short pink hair, blue eyes and purple lips, wearing a purple shirt, in front of a "
        "pink background")
CLIP_FACE = ("a person with yellow skin, curly red hair, gray eyes and dark red lips, wearing a white shirt, in front "
             "of an orange background")
VOICE_TEXT = "just a minute, please."          # what uniavgen_voice.wav says
SPEECH_TEXT = "the weather was cold this morning, but the sun is out now."        # what uniavgen_speech.wav says


def scene(face: str) -> str:
    """A caption for the real model's text encoder (umT5) of a shipped synthetic face."""
    return f"A flat cartoon drawing of {face}. The person talks to the camera, with small head movements."


CAPTION = scene(FACE)
TEXT = "Over the past week it has been raining nonstop, but the sun is finally breaking through today!"
SAMPLER = dict(task="auto", duration_seconds=5.0625, steps=50, shift=5.0, seed=2025, video_cfg=3.0, audio_cfg=2.0,
               macfg_fraction=0.5, slg_layer=11)


def _models(g, caption=CAPTION):
    g[1] = ("UniAVGenModelLoader", dict(model=DIT, weight_dtype="auto", attention="auto", block_swap=0,
                                        compile=False))
    g[2] = ("UniAVGenVocoderLoader", dict(vocoder=VOCODER, precision="fp32"))
    g[3] = ("VAELoader", dict(vae_name=VAE))
    g[4] = ("CLIPLoader", dict(clip_name=UMT5, type="wan", device="default"))
    g[5] = ("CLIPTextEncode", dict(text=caption, clip=(4, 0)))
    g[6] = ("CLIPTextEncode", dict(text="", clip=(4, 0)))


def _reference(g, node_id, image):
    g[node_id] = ("UniAVGenReferenceImage", dict(image=image, vae=(3, 0), resolution="official (short side 736)",
                                                short_side=480, crop="none", aspect="keep"))


def _video(g, sampler, first_id, prefix):
    """Decode video (VAE: node 3) and audio (vocoder: node 2), mux them, save the mp4."""
    g[first_id] = ("VAEDecode", dict(samples=(sampler, 0), vae=(3, 0)))
    g[first_id + 1] = ("UniAVGenAudioDecode", dict(vocoder=(2, 0), mel=(sampler, 1)))
    g[first_id + 2] = ("CreateVideo", dict(images=(first_id, 0), fps=16.0, audio=(first_id + 1, 0)))
    g[first_id + 3] = ("SaveVideo", dict(video=(first_id + 2, 0), filename_prefix=f"UniAVGen/{prefix}", format="auto",
                                         codec="auto"))


def _long_video(g, source, first_id, prefix):
    """Decode the audio, then decode and save the long video a few seconds at a time with it."""
    g[first_id] = ("UniAVGenAudioDecode", dict(vocoder=(2, 0), mel=(source, 1)))
    g[first_id + 1] = ("UniAVGenSaveLongVideo", dict(vae=(3, 0), latent=(source, 0), audio=(first_id, 0),
                                                     filename_prefix=f"UniAVGen/{prefix}", tile_frames=8,
                                                     context_frames=2))


def _outputs(g, sampler, first_id, prefix):
    """The mp4, plus the audio on its own and the face mask as one mp4 with the speech. The mask video carries the
    speech so that it needs the vocoder too: a vocoder that fails validation stops the whole run instead of
    letting the sampler run for the mask alone."""
    _video(g, sampler, first_id, prefix)
    g[first_id + 4] = ("SaveAudio", dict(audio=(first_id + 1, 0), filename_prefix=f"UniAVGen/{prefix}"))
    g[first_id + 5] = ("MaskToImage", dict(mask=(sampler, 2)))
    g[first_id + 6] = ("CreateVideo", dict(images=(first_id + 5, 0), fps=16.0, audio=(first_id + 1, 0)))
    g[first_id + 7] = ("SaveVideo", dict(video=(first_id + 6, 0), filename_prefix=f"UniAVGen/{prefix}_face_mask",
                                         format="auto", codec="auto"))


def avg(prefix="avg"):
    g = {}
    _models(g)
    g[7] = ("LoadImage", dict(image="uniavgen_face.png"))
    _reference(g, 8, (7, 0))
    g[9] = ("UniAVGenSpeechText", dict(model=(1, 0), text=TEXT, language="auto", reference_text=""))
    g[10] = ("UniAVGenSampler", dict(model=(1, 0), speech=(9, 0), positive=(5, 0), negative=(6, 0), reference=(8, 0),
                                     **SAMPLER))
    _outputs(g, 10, 11, prefix)
    return g


def _with_audio(prefix, file, role, sampler_input, **speech):
    """The AVG graph plus an encoded audio file on the sampler's `sampler_input`."""
    g = avg(prefix)
    g[20] = ("LoadAudio", dict(audio=file))
    g[21] = ("UniAVGenAudioEncode", dict(audio=(20, 0), role=role))
    g[9][1].update(speech)
    g[10][1][sampler_input] = (21, 0)
    return g


def ravg():
    return _with_audio("ravg", "uniavgen_voice.wav", "reference voice (RAVG)", "voice",
                       reference_text=VOICE_TEXT)


def a2v():
    return _with_audio("a2v", "uniavgen_speech.wav", "driving audio (A2V)", "driving_audio", text="")


def v2a():
    g = {}
    _models(g, scene(CLIP_FACE))
    g[7] = ("LoadVideo", dict(file="uniavgen_clip.mp4"))
    g[8] = ("GetVideoComponents", dict(video=(7, 0)))
    g[9] = ("UniAVGenSpeechText", dict(model=(1, 0), text=TEXT, language="auto", reference_text=""))
    g[20] = ("UniAVGenVideoEncode", dict(images=(8, 0), fps=(8, 2), vae=(3, 0),
                                         resolution="official (short side 736)", short_side=480))
    g[10] = ("UniAVGenSampler", dict(model=(1, 0), speech=(9, 0), positive=(5, 0), negative=(6, 0),
                                     driving_video=(20, 0), **SAMPLER))
    _outputs(g, 10, 11, "v2a")
    return g


LONG_TEXT = ("Over the past week it has been raining nonstop, but the sun is finally breaking through today! "
             "This morning I walked down to the harbour, and the boats were already heading out. "
             "The fishermen told me the sea has been calm since dawn, which is rare this time of year. "
             "Tomorrow we are going to the sea, all of us together, and we will stay until the evening. "
             "If the weather holds, we might even take a boat out to the islands.")
LONG = dict(task="auto", duration_seconds=0.0, overlap=4, chars_per_second=0.0,
            **{k: v for k, v in SAMPLER.items() if k not in ("task", "duration_seconds")})
EXTEND = dict(overlap=4, duration_seconds=0.0, **{k: v for k, v in SAMPLER.items() if k not in ("task",
                                                                                              "duration_seconds")})
PARTS = ("And tomorrow we are going to the sea, all of us together.",)


def long_talk():
    """A long transcript said in one node: the Long Sampler cuts it into segments of the trained length that carry on
    from each other, and the stitched latent and mel are decoded once."""
    g = {}
    _models(g)
    g[7] = ("LoadImage", dict(image="uniavgen_face.png"))
    _reference(g, 8, (7, 0))
    g[9] = ("UniAVGenSpeechText", dict(model=(1, 0), text=LONG_TEXT, language="auto", reference_text=""))
    g[10] = ("UniAVGenLongSampler", dict(model=(1, 0), speech=(9, 0), positive=(5, 0), negative=(6, 0),
                                         reference=(8, 0), **LONG))
    _long_video(g, 10, 11, "long_talk")
    return g


def long_lipsync():
    """A long recording drives the face in one node (A2V and its continuations); the recording itself is saved
    with the video, so no vocoder is needed."""
    g = {k: v for k, v in long_talk().items() if k not in (2, 11, 12)}
    g[9][1].update(text="")
    g[20] = ("LoadAudio", dict(audio="uniavgen_long_speech.wav"))
    g[21] = ("UniAVGenAudioEncode", dict(audio=(20, 0), role="driving audio (A2V)"))
    g[10][1]["driving_audio"] = (21, 0)
    g[11] = ("UniAVGenSaveLongVideo", dict(vae=(3, 0), latent=(10, 0), audio=(20, 0),
                                           filename_prefix="UniAVGen/long_lipsync", tile_frames=8, context_frames=2))
    return g


def long_extend():
    """A talk part by part: clip 1 from the Sampler, then each UniAVGen Extend says its own words after the clip so
    far, from its last second, and outputs the whole clip so far; the last one is decoded once."""
    g = {k: v for k, v in avg().items() if k <= 10}           # models, face, clip 1's words and sampler
    source = 10
    for i, text in enumerate(PARTS):
        words, extend = 20 + 2 * i, 21 + 2 * i
        g[words] = ("UniAVGenSpeechText", dict(model=(1, 0), text=text, language="auto", reference_text=""))
        g[extend] = ("UniAVGenExtend", dict(model=(1, 0), speech=(words, 0), positive=(5, 0), negative=(6, 0),
                                            latent=(source, 0), mel=(source, 1), reference=(8, 0),
                                            **dict(EXTEND, seed=2026 + i)))
        source = extend
    _long_video(g, source, 11, "long_extend")
    return g


def two_gpus():
    """AVG with its sampling on two GPUs: UniAVGen Parallel Devices between the loader and the sampler runs the
    two guidance passes on a GPU each (cfg)."""
    g = {k: v for k, v in avg().items() if k <= 10}           # models, face, words and sampler
    g[30] = ("UniAVGenParallelDevices", dict(model=(1, 0), devices="cuda:0, cuda:1", mode="cfg"))
    g[10][1]["model"] = (30, 0)
    _video(g, 10, 11, "two_gpus")
    return g


MINI_TEXT = "hello there, this small face talks on your computer."


def mini_demo():
    """UniAVGen-mini, shipped with the pack, with its weight-free codec, captions and vocoder: no download. The face
    is a picture in Load Image (the shipped synthetic face by default) and the caption describes it."""
    g = {}
    g[1] = ("UniAVGenModelLoader", dict(model="UniAVGen-mini.safetensors", weight_dtype="auto", attention="auto",
                                        block_swap=0, compile=False))
    g[2] = ("UniAVGenVocoderLoader", dict(vocoder="griffin-lim (weight-free)", precision="fp32"))
    g[3] = ("UniAVGenVideoCodecLoader", dict(codec="UniAVGen-mini-video-codec.safetensors"))
    g[4] = ("LoadImage", dict(image="uniavgen_face.png"))
    g[5] = ("UniAVGenCaptionEncode", dict(model=(1, 0), text=FACE))
    g[6] = ("UniAVGenCaptionEncode", dict(model=(1, 0), text=""))
    g[7] = ("UniAVGenReferenceImage", dict(image=(4, 0), vae=(3, 0), resolution="short side", short_side=128,
                                           crop="none", aspect="keep"))
    g[8] = ("UniAVGenSpeechText", dict(model=(1, 0), text=MINI_TEXT, language="en", reference_text=""))
    g[9] = ("UniAVGenSampler", dict(model=(1, 0), speech=(8, 0), positive=(5, 0), negative=(6, 0), reference=(7, 0),
                                    **dict(SAMPLER, duration_seconds=3.0625, steps=16, video_cfg=1.5, audio_cfg=2.0,
                                           slg_layer=-1)))
    _video(g, 9, 10, "mini_demo")
    return g


# id (the API file's name) -> (title: the UI file's name, which ComfyUI's template browser shows as it is;
# the number gives the order, since the browser lists a pack's templates unsorted), builder
WORKFLOWS = {
    "uniavgen_mini_demo": ("1. Mini demo, nothing to download", mini_demo),
    "uniavgen_avg_joint_generation": ("2. Talking video with its speech (AVG)", avg),
    "uniavgen_ravg_voice_clone": ("3. Voice clone (RAVG)", ravg),
    "uniavgen_a2v_audio_driven": ("4. Lip sync to your audio (A2V)", a2v),
    "uniavgen_v2a_dubbing": ("5. Dubbing a video (V2A)", v2a),
    "uniavgen_long_talk": ("6. Long talk from a transcript (Long Sampler)", long_talk),
    "uniavgen_long_extend": ("7. Long talk, part by part (Extend)", long_extend),
    "uniavgen_long_lipsync": ("8. Long lip sync to a recording (Long Sampler)", long_lipsync),
    "uniavgen_two_gpus": ("9. Talking video on two GPUs (Parallel Devices)", two_gpus),
}

# Node titles where the class name alone would be ambiguous (two text encoders) or says too little.
TITLES = {
    "CLIPTextEncode": {5: "Caption: what the video shows", 6: "Negative caption"},
    "UniAVGenCaptionEncode": {5: "Caption: describe the face", 6: "Negative caption"},
    "CreateVideo": {17: "Face mask video (with the speech)"},
    "SaveVideo": {18: "Save the face mask video"},
    "UniAVGenExtend": {21: "UniAVGen Extend, part 2"},
    "UniAVGenSpeechText": {20: "Speech Text, part 2"},
}

# The groups a workflow is drawn in, left to right, and the classes in each.
STAGES = (
    ("Models", {"UniAVGenModelLoader", "UniAVGenVocoderLoader", "VAELoader", "CLIPLoader",
                "UniAVGenVideoCodecLoader", "UniAVGenLoraLoader", "UniAVGenParallelDevices"}),
    ("Face, voice, words and caption", {"CLIPTextEncode", "UniAVGenCaptionEncode", "LoadImage", "LoadAudio",
                                        "LoadVideo", "GetVideoComponents", "UniAVGenReferenceImage",
                                        "UniAVGenSpeechText", "UniAVGenAudioEncode", "UniAVGenVideoEncode",
                                        "UniAVGenSyntheticFace", "UniAVGenLastFrame"}),
    ("Generate", {"UniAVGenSampler", "UniAVGenLongSampler", "UniAVGenExtend"}),
    ("Decode and save", {"VAEDecode", "UniAVGenAudioDecode", "CreateVideo", "SaveVideo", "SaveAudio",
                         "MaskToImage", "UniAVGenJoinClips", "UniAVGenSaveLongVideo"}),
)
PARTS_TITLE = "Part 2: its words"


def stage(workflow: str, node_id: int, cls: str) -> str:
    """The group of a node. Part by part: the later parts' words have their own group."""
    name = next(name for name, classes in STAGES if cls in classes)
    if workflow == "uniavgen_long_extend" and node_id >= 20 and name not in ("Generate", "Decode and save"):
        return PARTS_TITLE
    return name


_REAL_DOWNLOADS = """**Needs the real model** (about 23 GB, once; the pack's README, "First run"):

```
hf download MCG-NJU/UniAVGen --include "diffusion_pytorch_model*" --include config.json --include vocab.txt --include "code2wav_bigvgan_model/*" --local-dir models/uniavgen/UniAVGen
```
The loaders already name the folders this makes. ComfyUI's missing-models dialog offers the Wan 2.2 VAE
and the umT5 text encoder. What the nodes adjusted appears on them after a run."""

_SHIPPED_FACE = ("The shipped picture, `uniavgen_face.png`, is a synthetic cartoon face (tan skin, short pink hair, "
                 "purple shirt, pink background) and the caption describes it: describe your own picture there.")

NOTES = {
    "uniavgen_mini_demo": """## Mini demo: nothing to download

The pack's small model (4.5 M parameters, trained on synthetic cartoon faces and espeak voices) with
weight-free codecs: the face in **Load Image** says the words of **UniAVGen Speech Text**, and the speech and
the 3-second video are generated together (5-6 s on a 2-core CPU). It shows the pipeline working, not
the real model's quality.

**Your own picture**: choose it in **Load Image**, then describe it in **Caption: describe the face** with
the same words as the shipped caption (skin, hair, eyes, lips, shirt and background colours). The small
model learned only such words and cartoon faces, so a photo gives a rough cartoon-like result.
**Your own words**: letters and `',.?!-` in **UniAVGen Speech Text**.""",
    "uniavgen_avg_joint_generation": """## Talking video with its speech (AVG)

A face picture + a transcript + a caption: UniAVGen generates the speech and the talking video together.
""" + _SHIPPED_FACE + """ Your words go in **UniAVGen Speech Text**.

""" + _REAL_DOWNLOADS,
    "uniavgen_ravg_voice_clone": """## Voice clone (RAVG)

Like AVG, but the speech takes the voice of a recording in **Load Audio**, whose transcript goes in
**reference_text** of **UniAVGen Speech Text**. The shipped `uniavgen_voice.wav` is a 1.4-second synthetic
voice saying "just a minute, please."; a real voice works best with 2-10 s. """ + _SHIPPED_FACE + """

""" + _REAL_DOWNLOADS,
    "uniavgen_a2v_audio_driven": """## Lip sync to your audio (A2V)

A speech recording in **Load Audio** drives the face: only the video is generated, so the transcript stays
empty. The shipped `uniavgen_speech.wav` is a 3-second synthetic voice saying "the weather was cold this
morning, but the sun is out now." """ + _SHIPPED_FACE + """

""" + _REAL_DOWNLOADS,
    "uniavgen_v2a_dubbing": """## Dubbing a video (V2A)

A video of a talking face in **Load Video** + a transcript: UniAVGen generates new speech that follows the
lips, and keeps the pictures. The shipped `uniavgen_clip.mp4` is a 5-second synthetic cartoon face (yellow
skin, curly red hair, white shirt, orange background) and the caption describes it.

""" + _REAL_DOWNLOADS,
    "uniavgen_long_talk": """## Long talk from a transcript

**UniAVGen Long Sampler** says a long transcript, up to 10 minutes: it cuts the job into segments of the
model's trained length, each taking the last second of the one before as its start, and stitches one latent
and one mel. Each segment gets the next whole sentences (a line each when the text has line breaks); duration
0 takes as long as the words need. **UniAVGen Save Long Video** decodes and writes the mp4 two seconds at a
time, so memory stays small however long the talk. """ + _SHIPPED_FACE + """

""" + _REAL_DOWNLOADS,
    "uniavgen_long_lipsync": """## Long lip sync to a recording

A recording of any length up to 10 minutes in **Load Audio** drives the face: **UniAVGen Long Sampler**
follows it segment by segment, each segment taking the last second of the one before as its start, and
**UniAVGen Save Long Video** writes the video two seconds at a time with the recording itself as its sound.
The shipped `uniavgen_long_speech.wav` is 20 s of synthetic speech; the Speech Text stays empty (the words
are in the recording). """ + _SHIPPED_FACE + """

""" + _REAL_DOWNLOADS,
    "uniavgen_two_gpus": """## Talking video on two GPUs

Workflow 2 with **UniAVGen Parallel Devices** between the Model Loader and the Sampler: the two guidance
passes of every step run on a GPU each: the one-GPU result, predicted in about half the time. A worker per device
starts at the first run and stays until **Unload models**. 4 or 8 GPUs: list them in `devices` and choose
`cfg+ulysses`.

""" + _REAL_DOWNLOADS,
    "uniavgen_long_extend": """## Long talk, part by part

Part 1 is an AVG clip. Each **UniAVGen Extend** says its own words after the clip so far, starting from its
last second (overlap), and outputs the whole clip so far: chain more parts by copying the Extend and its
Speech Text onto the last Extend's outputs, and save the last one (**UniAVGen Save Long Video** decodes it
two seconds at a time). """ + _SHIPPED_FACE + """

""" + _REAL_DOWNLOADS,
}
