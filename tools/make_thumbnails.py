"""The template browser's cards: workflows/<title>.jpg, one per shipped workflow, square, readable at card size.

    python tools/make_thumbnails.py --url http://127.0.0.1:8198     # runs the mini demo there for its frames
    python tools/make_thumbnails.py --mini-clip OUT.mp4              # or: a clip the mini demo made

Each card says what its template makes. The mini demo's shows frames and the speech of a clip the mini demo really
generated (run through a ComfyUI with the pack: its API workflow is posted to /prompt and the mp4 fetched). The
others need the real model, which is not run here, so their cards show the shipped inputs they load and the kind
of output, in words and symbols, never a made-up output frame. Needs pillow, numpy and av.
"""
from __future__ import annotations

import argparse
import io
import json
import sys
import tempfile
import time
import urllib.parse
import urllib.request
import wave
from pathlib import Path

import av
import numpy as np
from PIL import Image, ImageDraw, ImageFont

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tools"))
from workflow_graphs import MINI_TEXT, TEXT, VOICE_TEXT, WORKFLOWS  # noqa: E402

SIZE = 512                    # the card shows it 256 px wide: text at 26 px or more stays >= 13 px there
BG, FG, DIM, ACCENT = (28, 30, 36), (238, 238, 238), (160, 166, 178), (255, 196, 87)
INPUTS = REPO / "example_inputs"


def font(size: int, bold: bool = False):
    name = "DejaVuSans-Bold.ttf" if bold else "DejaVuSans.ttf"
    for folder in ("/usr/share/fonts/truetype/dejavu", "/usr/share/fonts/TTF", "/usr/share/fonts/dejavu"):
        if (Path(folder) / name).is_file():
            return ImageFont.truetype(str(Path(folder) / name), size)
    return ImageFont.load_default(size)


def read_clip(path: Path) -> tuple[list[Image.Image], np.ndarray]:
    """The frames and the mono audio of an mp4."""
    with av.open(str(path)) as c:
        frames = [f.to_image() for f in c.decode(video=0)]
    with av.open(str(path)) as c:
        audio = np.concatenate([f.to_ndarray().mean(axis=0) for f in c.decode(audio=0)])
    return frames, audio


def read_wav(path: Path) -> np.ndarray:
    with wave.open(str(path)) as w:
        return np.frombuffer(w.readframes(w.getnframes()), "<i2").astype(np.float32) / 32768


def waveform(draw: ImageDraw.ImageDraw, box, samples: np.ndarray, colour=ACCENT) -> None:
    x0, y0, x1, y1 = box
    mid, half = (y0 + y1) / 2, (y1 - y0) / 2
    peak = float(np.abs(samples).max()) or 1.0
    columns = np.array_split(np.abs(samples) / peak, int(x1 - x0) // 3)
    for i, col in enumerate(columns):
        h = max(1.0, float(col.max()) * half)
        draw.line([(x0 + 3 * i, mid - h), (x0 + 3 * i, mid + h)], fill=colour, width=2)


def centred(draw, y, text, size, fill=FG, bold=False):
    f = font(size, bold)
    w = draw.textlength(text, font=f)
    draw.text(((SIZE - w) / 2, y), text, font=f, fill=fill)


def wrap(draw, text, size, width, bold=False) -> list[str]:
    f, lines, line = font(size, bold), [], ""
    for word in text.split():
        if draw.textlength(f"{line} {word}".strip(), font=f) <= width:
            line = f"{line} {word}".strip()
        else:
            lines.append(line)
            line = word
    return lines + [line]


def arrow(draw, x0, x1, y):
    draw.line([(x0, y), (x1 - 12, y)], fill=FG, width=6)
    draw.polygon([(x1, y), (x1 - 20, y - 14), (x1 - 20, y + 14)], fill=FG)


def video_symbol(draw, box):
    """A screen with a play triangle: 'a video', not a picture of one."""
    x0, y0, x1, y1 = box
    draw.rounded_rectangle(box, radius=14, outline=FG, width=5)
    cx, cy, r = (x0 + x1) / 2, (y0 + y1) / 2, (y1 - y0) / 5
    draw.polygon([(cx - r * 0.8, cy - r), (cx - r * 0.8, cy + r), (cx + r, cy)], fill=FG)


def picture(img: Image.Image, side: int) -> Image.Image:
    img = img.convert("RGB")
    s = min(img.size)
    left, top = (img.width - s) // 2, (img.height - s) // 2
    return img.crop((left, top, left + s, top + s)).resize((side, side), Image.LANCZOS)


def mini_card(clip: Path) -> Image.Image:
    frames, audio = read_clip(clip)
    card = Image.new("RGB", (SIZE, SIZE), BG)
    d = ImageDraw.Draw(card)
    centred(d, 14, "Mini demo: runs on a CPU", 30, bold=True)
    centred(d, 52, "nothing to download", 26, DIM)
    face = picture(Image.open(INPUTS / "uniavgen_face.png"), 150)
    card.paste(face, (22, 110))
    d.text((22, 266), "your picture", font=font(24), fill=DIM)
    arrow(d, 184, 236, 185)
    # the loudest moments of the generated speech, where the mouth moves most
    per_frame = np.array_split(np.abs(audio), len(frames))
    loud = np.argsort([float(a.mean()) for a in per_frame])[::-1]
    picks = sorted(int(i) for i in loud[:: max(1, len(loud) // 8)][:2])
    for k, i in enumerate(picks):
        card.paste(picture(frames[i], 120), (246 + 128 * k, 125))
    d.text((246, 266), "generated video", font=font(24), fill=DIM)
    d.rounded_rectangle((22, 318, SIZE - 22, 420), radius=10, fill=(40, 43, 52))
    waveform(d, (34, 326, SIZE - 34, 412), audio)
    centred(d, 428, "+ its speech, generated together", 24, DIM)
    centred(d, 464, f'"{MINI_TEXT.split(",")[0]}..."', 24, ACCENT)
    return card


def real_card(title: str, inputs: list, output: str) -> Image.Image:
    """Inputs (pictures and sounds that ship with the pack) -> the kind of output, for the real model."""
    card = Image.new("RGB", (SIZE, SIZE), BG)
    d = ImageDraw.Draw(card)
    centred(d, 14, title, 32, bold=True)
    y = 78
    for kind, value, label in inputs:
        if kind == "picture":
            card.paste(picture(value, 120), (22, y))
            d.text((156, y + 44), label, font=font(26), fill=DIM)
            y += 132
        elif kind == "sound":
            d.rounded_rectangle((22, y, 300, y + 60), radius=10, fill=(40, 43, 52))
            waveform(d, (32, y + 6, 290, y + 54), value)
            d.text((312, y + 15), label, font=font(26), fill=DIM)
            y += 72
        else:
            lines = wrap(d, value, 24, SIZE - 60)
            if len(lines) > 2:
                lines = [lines[0], lines[1].rstrip('",.') + '..."']
            for line in lines:
                d.text((22, y), line, font=font(24), fill=ACCENT)
                y += 29
            d.text((22, y), label, font=font(22), fill=DIM)
            y += 36
    y = max(y, 300)
    d.line([(22, y), (SIZE - 22, y)], fill=(70, 74, 84), width=2)
    arrow(d, 30, 90, y + 54)
    video_symbol(d, (110, y + 16, 216, y + 92))
    lines = wrap(d, output, 28, SIZE - 232 - 16, bold=True)
    for i, line in enumerate(lines):
        d.text((232, y + 54 - 17 * len(lines) + 34 * i), line, font=font(28, True), fill=FG)
    centred(d, SIZE - 36, "needs the real UniAVGen model (23 GB)", 22, DIM)
    if y + 100 > SIZE - 36:
        raise ValueError(f"{title}: the card's inputs leave no room for its output")
    return card


def real_cards() -> dict[str, Image.Image]:
    face = Image.open(INPUTS / "uniavgen_face.png")
    with av.open(str(INPUTS / "uniavgen_clip.mp4")) as c:
        clip_frame = next(c.decode(video=0)).to_image()
    voice, speech = read_wav(INPUTS / "uniavgen_voice.wav"), read_wav(INPUTS / "uniavgen_speech.wav")
    long_speech = read_wav(INPUTS / "uniavgen_long_speech.wav")
    words = ("text", f'"{TEXT}"', "your words")
    return {
        "uniavgen_avg_joint_generation": real_card("Talking video + speech", [
            ("picture", face, "your picture"), words], "talking video with its speech"),
        "uniavgen_ravg_voice_clone": real_card("Voice clone", [
            ("picture", face, "your picture"), ("sound", voice, "a voice"),
            ("text", f'"{VOICE_TEXT}"', "what that voice says")], "video + speech in that voice"),
        "uniavgen_a2v_audio_driven": real_card("Lip sync to your audio", [
            ("picture", face, "your picture"), ("sound", speech, "your speech")], "video lip-synced to it"),
        "uniavgen_v2a_dubbing": real_card("Dubbing a video", [
            ("picture", clip_frame, "your video"), words], "new speech that follows the lips"),
        "uniavgen_long_talk": real_card("Long talk", [
            ("picture", face, "your picture"), ("text", '"Over the past week... out to the islands."',
                                                "a long transcript")], "minutes of video, one voice"),
        "uniavgen_long_lipsync": real_card("Long lip sync", [
            ("picture", face, "your picture"), ("sound", long_speech, "a long talk")],
            "long video lip-synced to it"),
        "uniavgen_two_gpus": real_card("Two GPUs", [
            ("picture", face, "your picture"), words], "the same video, made on two GPUs"),
        "uniavgen_long_extend": real_card("Long talk, part by part", [
            ("picture", face, "your picture"), ("text", '"Over the past week..." then "And tomorrow..."',
                                                "each part's words")], "one long video, one voice"),
    }


def run_mini(url: str, out: Path) -> Path:
    """Run the mini demo's API workflow on a ComfyUI and fetch the mp4 it saved."""
    api = json.loads((REPO / "workflows" / "api" / "uniavgen_mini_demo.json").read_text())
    body = json.dumps({"prompt": api, "client_id": "uniavgen-thumbnails"}).encode()
    req = urllib.request.Request(url + "/prompt", body, {"Content-Type": "application/json"})
    prompt_id = json.loads(urllib.request.urlopen(req, timeout=60).read())["prompt_id"]
    for _ in range(1800):
        history = json.loads(urllib.request.urlopen(f"{url}/history/{prompt_id}", timeout=60).read())
        if prompt_id in history and history[prompt_id].get("status", {}).get("completed"):
            break
        time.sleep(1)
    else:
        raise SystemExit("the mini demo did not finish in 30 minutes")
    for output in history[prompt_id]["outputs"].values():
        for item in output.get("images", []):
            if item["filename"].endswith(".mp4"):
                query = urllib.parse.urlencode({k: item[k] for k in ("filename", "subfolder", "type")})
                out.write_bytes(urllib.request.urlopen(f"{url}/view?{query}", timeout=60).read())
                return out
    raise SystemExit(f"the mini demo saved no mp4: {json.dumps(history[prompt_id])[:1000]}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--url", help="a ComfyUI with the pack, to run the mini demo on")
    source.add_argument("--mini-clip", type=Path, help="an mp4 the mini demo made")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        clip = args.mini_clip or run_mini(args.url.rstrip("/"), Path(tmp) / "mini_demo.mp4")
        cards = {"uniavgen_mini_demo": mini_card(clip), **real_cards()}
    for name, (title, _) in WORKFLOWS.items():
        path = REPO / "workflows" / f"{title}.jpg"
        buffer = io.BytesIO()
        cards[name].save(buffer, "JPEG", quality=88)
        path.write_bytes(buffer.getvalue())
        print("wrote", path.relative_to(REPO))
    return 0


if __name__ == "__main__":
    sys.exit(main())
