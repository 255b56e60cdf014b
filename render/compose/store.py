"""The piece cache: each rendered piece in a folder keyed by everything that can change it.

A piece's picture goes to an H.264 MP4 and its sound to PCM WAV (so the programme's join has no AAC
priming gap at every piece boundary), with QC's measures (``measure``) and ``done.json``, written
last, which vouches for the files by size and a sampled checksum. The key holds the shots, the
sources' content hashes, the house format and the versions, and nothing else: a piece's position in
the episode is not in it, so an edit elsewhere never re-renders it. A render whose frame or sample
count is not exact is refused (a join would drift).

A delivery that asks for the sound stems gets each piece's dialogue, music and effects (``render_stems``):
the piece's own graph, sound only, with what is not in the stem silenced, each stem cached in a folder
keyed by the piece's key, the stem and what the stems alone read of the shots (``Shot.sound``, ``speech``).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import tempfile
import wave
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from render import __version__
from render.compose import graph, measure
from render.compose.pieces import Piece
from render.core import ffmpeg, pipe
from render.core.cache import Cache, atomic_dir, held, key_of, write_text_atomic
from render.core.errors import FfmpegError
from render.core.house import HouseFormat
from render.core.timebase import samples_for, to_seconds
from render.edit.timeline import CUT, STEM_FIELDS, STEMS
from render.intake import conform
from render.intake.records import Source

COMPOSE_VERSION = 6  # 3: waveforms of levelled sound; done.json fingerprints; 4: WebM alpha decoded; 5: transitions
STEM_VERSION = 1


@dataclass(frozen=True, slots=True)
class RenderedPiece:
    """A piece on disk: exactly ``frames`` frames of video and the matching samples of sound."""

    segment_id: str
    key: str
    video: Path
    audio: Path
    frames: int
    cached: bool  # True when it came from the cache without rendering


@dataclass(frozen=True, slots=True)
class RenderedStems:
    """A piece's sound as its stems (``STEMS`` order: dialogue, music, effects), each exactly the piece's
    samples; they sum to the piece's sound."""

    piece_key: str
    keys: tuple[str, ...]
    audio: tuple[Path, ...]
    cached: bool  # True when every stem came from the cache


def _mix_view(shot: dict | None) -> dict | None:
    """A shot (as a dict) without the fields only the stems read: they change nothing in the piece."""
    return None if shot is None else {k: v for k, v in shot.items() if k not in STEM_FIELDS}


def piece_key(piece: Piece, sources: Mapping[str, Source], house: HouseFormat, fit_mode: str) -> str:
    """The cache key of a piece: what it shows, from which bytes, in which format; not where it sits."""
    shots = [_mix_view(dataclasses.asdict(s)) for s in piece.shots]
    ids = piece.record_ids + piece.edges.record_ids  # a crossfade across an edge shows the neighbour's media
    hashes = {rid: sources[rid].content_hash for rid in ids if rid in sources}
    bed = [dataclasses.asdict(piece.bed), list(piece.edges.bed)] if piece.bed else None
    # the neighbours and the transitions at the edges: what this piece shows of the shots either side
    edges = {k: _mix_view(v) if k in ("before", "after") else v for k, v in dataclasses.asdict(piece.edges).items()
             if k != "bed" and v is not None}
    if edges == {"exit": dataclasses.asdict(CUT)}:
        edges = {}
    return key_of("piece", COMPOSE_VERSION, conform.CONFORM_VERSION, house.key(), fit_mode, shots, hashes,
                  *([bed] if bed else []), *([edges] if edges else []))


def render_piece(piece: Piece, sources: Mapping[str, Source], house: HouseFormat, fit_mode: str,
                 cache: Cache, progress: Callable[[float], None] | None = None) -> RenderedPiece:
    """Render one piece into the cache (or find it there); returns where its files are."""
    found = cached_piece(piece, sources, house, fit_mode, cache)
    if found is not None:
        return found
    key = piece_key(piece, sources, house, fit_mode)
    folder = _piece_folder(key, house, cache)
    # two builds on one cache that need the same piece render it once: the second waits, then finds it.
    # The lock files live apart from the pieces, so the piece folders hold pieces and nothing else
    with held(cache.root / "locks" / key):
        return cached_piece(piece, sources, house, fit_mode, cache) or _render(piece, sources, house, fit_mode,
                                                                              key, folder, progress)


def _render(piece: Piece, sources: Mapping[str, Source], house: HouseFormat, fit_mode: str, key: str,
            folder: Path, progress: Callable[[float], None] | None) -> RenderedPiece:
    video, audio = folder / "video.mp4", folder / "audio.wav"
    seconds = float(to_seconds(piece.frames, house.rate))
    # QC's picture measures are taken from the picture as it goes to the encoder, in this pass: a
    # second decode of every 1080p piece cost a third as much CPU as encoding it. The join copies
    # these encodes bit for bit, so the file carries this picture up to the codec's quantisation,
    # which QC's low-pass leaves out of the legal-range reading anyway (EBU R 103)
    with atomic_dir(folder) as tmp:
        measured = None
        for seek in (True, False):  # the second try decodes every input from its start (``graph.open_at``)
            with tempfile.TemporaryDirectory(prefix="remixtv-qc-") as qdir:
                meter = measure.PictureMeasure(Path(qdir) / "signalstats.txt")
                with pipe.reading(measure.PictureMeasure.RECORD_BYTES, meter.feed) as view:
                    argv = graph.build_command(piece.shots, sources, house, fit_mode, tmp, tmp / "video.mp4",
                                               tmp / "audio.wav", piece.bed, piece.edges,
                                               qc_view=(meter.stats, view), seek=seek)
                    ffmpeg.run(argv, timeout_s=120 + 30 * seconds,
                               progress=(lambda t: progress(min(1.0, t / seconds))) if progress else None)
                try:
                    _exact_counts(argv, tmp / "video.mp4", tmp / "audio.wav", piece.frames,
                                  samples_for(piece.frames, house.rate))
                except FfmpegError:
                    if seek:
                        continue
                    raise
                measured = meter.piece(tmp / "audio.wav", piece.frames, house, argv)
                break
        write_text_atomic(tmp / QC_FILE, json.dumps(measured.to_json()))
        (tmp / "done.json").write_text(json.dumps({"segment": piece.segment_id, "piece": piece.index,
                                                   "frames": piece.frames, "engine": __version__,
                                                   "files": {n: fingerprint(tmp / n) for n in PIECE_FILES}}))
    return RenderedPiece(piece.segment_id, key, video, audio, piece.frames, cached=False)


def stem_key(piece: Piece, sources: Mapping[str, Source], house: HouseFormat, fit_mode: str, stem: str) -> str:
    """The cache key of one stem of a piece: the piece's key, the stem, and what the stems read of its
    shots and of the neighbours a crossfade at its edges borrows."""
    shots = [s for s in (*piece.shots, piece.edges.before, piece.edges.after) if s is not None]
    return key_of("stem", STEM_VERSION, piece_key(piece, sources, house, fit_mode), stem,
                  [{k: getattr(s, k) for k in STEM_FIELDS} for s in shots])


def render_stems(piece: Piece, sources: Mapping[str, Source], house: HouseFormat, fit_mode: str,
                 cache: Cache) -> RenderedStems:
    """Render a piece's dialogue, music and effects stems into the cache (or find them there)."""
    found = cached_stems(piece, sources, house, fit_mode, cache)
    if found is not None:
        return found
    keys = tuple(stem_key(piece, sources, house, fit_mode, stem) for stem in STEMS)
    for stem, key in zip(STEMS, keys):
        folder = _stem_folder(key, house, cache)
        if _intact(folder, STEM_FILES):
            continue
        with held(cache.root / "locks" / key):
            if not _intact(folder, STEM_FILES):
                _render_stem(piece, sources, house, fit_mode, stem, folder)
    return RenderedStems(piece_key(piece, sources, house, fit_mode), keys,
                         tuple(_stem_folder(k, house, cache) / "audio.wav" for k in keys), cached=False)


def cached_stems(piece: Piece, sources: Mapping[str, Source], house: HouseFormat, fit_mode: str,
                 cache: Cache) -> RenderedStems | None:
    """The piece's stems as the cache holds them, intact, or None if any must be rendered."""
    keys = tuple(stem_key(piece, sources, house, fit_mode, stem) for stem in STEMS)
    folders = [_stem_folder(k, house, cache) for k in keys]
    if not all(_intact(f, STEM_FILES) for f in folders):
        return None
    return RenderedStems(piece_key(piece, sources, house, fit_mode), keys, tuple(f / "audio.wav" for f in folders),
                         cached=True)


def _render_stem(piece: Piece, sources: Mapping[str, Source], house: HouseFormat, fit_mode: str, stem: str,
                 folder: Path) -> None:
    samples = samples_for(piece.frames, house.rate)
    seconds = float(to_seconds(piece.frames, house.rate))
    with atomic_dir(folder) as tmp:
        for seek in (True, False):  # as a piece: the second try decodes every input from its start
            argv = graph.build_command(piece.shots, sources, house, fit_mode, tmp, None, tmp / "audio.wav",
                                       piece.bed, piece.edges, seek=seek, stem=stem)
            ffmpeg.run(argv, timeout_s=60 + 10 * seconds)
            with wave.open(str(tmp / "audio.wav")) as w:
                got = w.getnframes()
            if got == samples:
                break
            if not seek:
                raise FfmpegError(argv, 0, "", f"rendered {got} samples of the {stem} stem, expected {samples}")
        (tmp / "done.json").write_text(json.dumps({"segment": piece.segment_id, "piece": piece.index, "stem": stem,
                                                   "samples": samples, "engine": __version__,
                                                   "files": {n: fingerprint(tmp / n) for n in STEM_FILES}}))


def _stem_folder(key: str, house: HouseFormat, cache: Cache) -> Path:
    return cache.root / "stems" / house.name / key[:2] / key


def _piece_folder(key: str, house: HouseFormat, cache: Cache) -> Path:
    return cache.root / "pieces" / house.name / key[:2] / key


def cached_piece(piece: Piece, sources: Mapping[str, Source], house: HouseFormat, fit_mode: str,
                 cache: Cache) -> RenderedPiece | None:
    """The piece as the cache holds it, intact, or None if it must be rendered."""
    key = piece_key(piece, sources, house, fit_mode)
    folder = _piece_folder(key, house, cache)
    # a piece without this QC's measures is rendered again rather than decoded for them: QC reads
    # every piece the same way, from the encoder's input (a decode would count the codec's ringing)
    if not _intact(folder) or cached_piece_qc(folder / "video.mp4", piece.frames) is None:
        return None
    return RenderedPiece(piece.segment_id, key, folder / "video.mp4", folder / "audio.wav", piece.frames, cached=True)


PIECE_FILES = ("video.mp4", "audio.wav")
STEM_FILES = ("audio.wav",)
QC_FILE = "qc-piece.json"  # QC's measures, taken in the render (``measure``)
_SAMPLE_BLOCK = 64 * 1024
_SAMPLE_BLOCKS = 16


def fingerprint(path: Path) -> dict:
    """A file's size and a checksum of sampled blocks (head, tail and 16 spread between).

    Reading ~1 MiB per file keeps a no-change rebuild cheap while catching truncation (the size),
    a rewritten header or tail, and most damage in between; a full hash of every piece would cost
    a read of the whole programme on every build.
    """
    size = path.stat().st_size
    h = hashlib.sha256(str(size).encode())
    with open(path, "rb") as f:
        offsets = {0, max(0, size - _SAMPLE_BLOCK)}
        offsets |= {size * i // (_SAMPLE_BLOCKS + 1) for i in range(1, _SAMPLE_BLOCKS + 1)}
        for off in sorted(offsets):
            f.seek(off)
            h.update(f.read(_SAMPLE_BLOCK))
    return {"size": size, "sample_sha256": h.hexdigest()}


def _intact(folder: Path, names: tuple[str, ...] = PIECE_FILES) -> bool:
    """A cached piece (or stem) is reused only when done.json vouches for files that still match it;
    anything else (an interrupted copy, a truncated or damaged file, an older layout) is rendered again."""
    try:
        files = json.loads((folder / "done.json").read_text())["files"]
        return all(fingerprint(folder / n) == files[n] for n in names)
    except (OSError, ValueError, KeyError, TypeError):
        return False


def _exact_counts(argv: list[str], video: Path, audio: Path, frames: int, samples: int) -> None:
    """Refuse a render whose frame or sample count is not exact (a join would drift)."""
    streams = ffmpeg.ffprobe_output(video).get("streams") or []  # none when no frame came out
    got = int(streams[0].get("nb_frames", 0)) if streams else 0
    with wave.open(str(audio)) as w:
        got_samples = w.getnframes()
    if got != frames or got_samples != samples:
        raise FfmpegError(argv, 0, "", f"rendered {got} frames / {got_samples} samples, "
                                       f"expected {frames} / {samples}")


T = TypeVar("T")


def kept(path: Path, version: int, parse: Callable[[dict], T], **expect: object) -> T | None:
    """What a piece's folder keeps in the JSON file ``path``, parsed, if it was written by ``version``
    (and holds ``expect``'s values); None when it is missing, of another version or unreadable."""
    try:
        data = json.loads(path.read_text())
        if data.get("version") == version and all(data.get(k) == v for k, v in expect.items()):
            return parse(data)
    except (FileNotFoundError, json.JSONDecodeError, KeyError, TypeError, ValueError):
        pass
    return None


def cached_piece_qc(video: Path, frames: int) -> measure.PieceQC | None:
    """A piece's QC measures as its folder holds them (its render took them), or None."""
    return kept(video.parent / QC_FILE, measure.QC_VERSION, measure.PieceQC.from_json, frames=frames)
