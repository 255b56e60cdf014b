"""The naive baseline: render a build's timeline with MoviePy 2 (concatenate_videoclips + write_videofile).

    python bench/moviepy_baseline.py out/demo/preview/build.json /tmp/moviepy.mp4 [--profile preview]

Same shots, same size, frame rate and x264 preset as remixtv's profile, written the way a MoviePy
script usually is: every clip decoded, resized and composited frame by frame in Python/numpy.
Text uses MoviePy's TextClip with the house font. MoviePy reads media through Debian's ffmpeg 5.1
(IMAGEIO_FFMPEG_EXE), because MoviePy 2.2 misreads rotation with imageio's ffmpeg 7.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

os.environ.setdefault("IMAGEIO_FFMPEG_EXE", "/usr/bin/ffmpeg")

from moviepy import (
    AudioFileClip,
    ColorClip,
    CompositeVideoClip,
    ImageClip,
    TextClip,
    VideoFileClip,
    concatenate_videoclips,
)

REPO = Path(__file__).resolve().parent.parent
FONT = str(REPO / "assets" / "fonts" / "DejaVuSans.ttf")
SIZES = {"preview": ((960, 540), "ultrafast"), "master": ((1920, 1080), "veryfast")}
RATE = 30000 / 1001
BG = (16, 20, 24)


def fit(clip, size):
    w, h = size
    scale = min(w / clip.w, h / clip.h)
    clip = clip.resized(scale)
    return CompositeVideoClip([ColorClip(size, BG, duration=clip.duration), clip.with_position("center")],
                              size=size).with_audio(clip.audio)


def card(words: str, seconds: float, size) -> CompositeVideoClip:
    bg = ColorClip(size, BG, duration=seconds)
    label = TextClip(font=FONT, text=words[:300] or " ", font_size=size[1] // 18, color="white",
                     method="caption", size=(int(size[0] * 0.8), None)).with_duration(seconds)
    return CompositeVideoClip([bg, label.with_position("center")], size=size)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("build_json")
    parser.add_argument("out")
    parser.add_argument("--profile", default="preview", choices=tuple(SIZES))
    args = parser.parse_args()
    size, preset = SIZES[args.profile]
    build_dir = Path(args.build_json).parent
    build = json.loads(Path(args.build_json).read_text())
    intake = json.loads((build_dir / "intake.json").read_text())
    root = Path(intake["root"])
    files = {a["record"]: root / a["file"] for a in intake["accepted"] if a["file"]}
    texts = {a["record"]: a["record"] for a in intake["accepted"]}
    clips = []
    for seg in build["segments"]:
        for shot in seg["shots"]:
            seconds = shot["frames"] / RATE
            rid = shot["record"]
            if shot["kind"] == "video":
                src = VideoFileClip(str(files[rid]))
                start = shot["source_in_s"]
                clip = src.subclipped(start, min(src.duration, start + seconds))
                clips.append(fit(clip, size).with_duration(seconds))
            elif shot["kind"] == "image":
                clips.append(fit(ImageClip(str(files[rid])).with_duration(seconds), size))
            elif shot["kind"] == "audio":
                sound = AudioFileClip(str(files[rid]))
                sound = sound.subclipped(shot["source_in_s"], min(sound.duration, shot["source_in_s"] + seconds))
                clips.append(card(texts.get(rid, ""), seconds, size).with_audio(sound))
            elif shot["kind"] in ("text", "card", "credits"):
                clips.append(card(seg["id"] if shot["kind"] != "text" else texts.get(rid, ""), seconds, size))
            else:
                clips.append(ColorClip(size, (0, 0, 0), duration=seconds))
    episode = concatenate_videoclips(clips, method="compose")
    episode.write_videofile(args.out, fps=RATE, codec="libx264", preset=preset, audio_codec="aac",
                            audio_fps=48000, logger=None, threads=os.cpu_count(),
                            temp_audiofile_path=str(Path(args.out).parent))


if __name__ == "__main__":
    main()
