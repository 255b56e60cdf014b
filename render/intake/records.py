"""Intake: each record of a call-out becomes a usable Source or a Quarantined entry with a reason.

Submissions are untrusted and read-only: we never modify or move them. Each file is opened
through a neutral-named symlink in the cache (no extension), so ffprobe decides the format
from content against an allow-list of demuxers, never from a possibly lying file name.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

from render.callout.folder import CallOut, Record
from render.core.cache import Cache
from render.core.errors import FfmpegError, MediaRejected, UserError
from render.intake import heif, probe
from render.intake.probe import MediaInfo

MAX_DURATION_S = Fraction(15 * 60)
MAX_PIXELS = probe.DEFAULT_MAX_PIXELS  # a decompression bomb guard: larger pictures are refused
MAX_PIXELS_ENV = "REMIXTV_MAX_MEGAPIXELS"
TEXT_BYTES_LIMIT = 200_000
PROBE_VERSION = 5  # 4: telecine detection; 5: HEIF decoded, Monkey's Audio accepted, MIDI explained, short media decoded whole


@dataclass(frozen=True, slots=True)
class Source:
    """An accepted record and what it holds: media (through a safe link) or text."""

    record: Record
    content_hash: str
    media: MediaInfo | None = None
    link: Path | None = None
    text: str = ""

    @property
    def visual(self) -> str:
        """How it appears on screen: ``video``, ``image``, ``audio`` (shown as a visual) or ``text``."""
        return self.media.media_type if self.media else "text"

    @property
    def duration_s(self) -> Fraction | None:
        return self.media.duration_s if self.media else None

    @property
    def demuxer(self) -> str:
        return self.media.demuxer.split(",")[0] if self.media else ""


@dataclass(frozen=True, slots=True)
class Quarantined:
    record: Record
    reason: str
    evidence: str = ""


def resolve_file(callout: CallOut, record: Record) -> Path:
    """The submission's path, refusing any path that leaves the call-out folder."""
    rel = record.file
    if os.path.isabs(rel) or rel.startswith("~"):
        raise MediaRejected(f"file path {rel!r} is absolute; it must be relative to the call-out folder")
    candidate = (callout.root / rel)
    resolved = candidate.resolve()
    if not resolved.is_relative_to(callout.root):
        raise MediaRejected(f"file path {rel!r} leaves the call-out folder", f"resolves to {resolved}")
    if not resolved.is_file():
        raise MediaRejected(f"file {rel!r} is missing" if not resolved.exists() else f"{rel!r} is not a regular file")
    return resolved


def decode_text(raw: bytes, name: str) -> str:
    """Words of a text upload in any common encoding (BOMs honoured; UTF-8, then Windows-1252)."""
    if b"\x00" in raw and not raw.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise MediaRejected(f"{name} is binary, not text")
    for bom, enc in ((b"\xef\xbb\xbf", "utf-8-sig"), (b"\xff\xfe\x00\x00", "utf-32"), (b"\x00\x00\xfe\xff", "utf-32"),
                     (b"\xff\xfe", "utf-16"), (b"\xfe\xff", "utf-16")):
        if raw.startswith(bom):
            try:
                return raw.decode(enc).replace("\r\n", "\n").strip()
            except UnicodeDecodeError:
                raise MediaRejected(f"{name} claims {enc} but does not decode") from None
    for enc in ("utf-8", "cp1252"):
        try:
            return raw.decode(enc).replace("\r\n", "\n").strip()
        except UnicodeDecodeError:
            continue
    return raw.decode("latin-1").strip()


def safe_link(cache: Cache, source: Path, content_hash: str) -> Path:
    """A symlink named only by content hash, pointing at the (read-only) submission."""
    link = cache.path("links", content_hash)
    if not (link.is_symlink() and os.readlink(link) == str(source)):
        tmp = link.with_name(f".{link.name}.{os.getpid()}")
        tmp.unlink(missing_ok=True)
        tmp.symlink_to(source)
        os.replace(tmp, link)
    return link


def max_pixels_setting() -> int:
    """The picture size cap in pixels: ``$REMIXTV_MAX_MEGAPIXELS`` megapixels, else 120."""
    raw = os.environ.get(MAX_PIXELS_ENV, "").strip()
    if not raw:
        return MAX_PIXELS
    try:
        value = float(raw)
    except ValueError:
        value = 0.0
    if not 0 < value < float("inf"):  # also refuses nan
        raise UserError(f"{MAX_PIXELS_ENV}={raw!r} is not a picture size: give megapixels, e.g. {MAX_PIXELS_ENV}=120")
    return max(1, int(value * 1_000_000))


def _media(cache: Cache, link: Path, content_hash: str, max_pixels: int) -> MediaInfo:
    key = f"{content_hash}-p{PROBE_VERSION}"
    cached = cache.read_json("probe", key)
    if cached is not None and "ffprobe" in cached:
        return probe.from_document(cached)
    if cached is not None and cached.get("max_pixels") == max_pixels and "rejected" in cached:
        raise MediaRejected(cached["rejected"], cached.get("evidence", ""))
    try:
        info, document = probe.read_media(link, max_pixels)
    except MediaRejected as exc:
        # a verdict on these bytes, kept so every later build does not probe a broken upload again;
        # a probe that ran out of time judged nothing and is tried again next build
        if "timed out" not in exc.evidence:
            cache.write_json("probe", key, {"rejected": exc.reason, "evidence": exc.evidence[-4000:],
                                            "max_pixels": max_pixels})
        raise
    cache.write_json("probe", key, document)
    return info


def intake_record(callout: CallOut, record: Record, cache: Cache,
                  max_duration_s: Fraction = MAX_DURATION_S, max_pixels: int | None = None) -> Source | Quarantined:
    """Decide whether one record can be used; never raises for a bad submission.

    ``max_pixels`` caps picture size (default: ``max_pixels_setting()``); larger pictures are
    quarantined from their header, before anything decodes them.
    """
    max_pixels = max_pixels_setting() if max_pixels is None else max_pixels
    if not record.released:
        return Quarantined(record, "no signed release (released is not 'yes')")
    try:
        if not record.file:
            text = record.text.strip()
            return Source(record, hashlib.sha256(text.encode()).hexdigest(), text=text)
        path = resolve_file(callout, record)
        if path.stat().st_size == 0:
            raise MediaRejected("empty file (0 bytes)")
        digest = cache.content_hash(path)
        if record.kind == "text":
            raw = path.read_bytes()[: TEXT_BYTES_LIMIT + 1]
            if len(raw) > TEXT_BYTES_LIMIT:
                raise MediaRejected(f"text file longer than {TEXT_BYTES_LIMIT // 1000} kB; too long for a card")
            text = decode_text(raw, record.file) or record.text.strip()
            if not text:
                raise MediaRejected("text file holds no words")
            return Source(record, digest, text=text)
        with path.open("rb") as f:
            head = f.read(16)
        link = (heif.still_of(cache, path, digest, max_pixels) if heif.is_heif(head)
                else safe_link(cache, path, digest))
        media = _media(cache, link, digest, max_pixels)
        if media.video and media.video.width * media.video.height > max_pixels:  # probed earlier under a larger cap
            raise MediaRejected(probe.over_pixel_limit(media.video.width, media.video.height, max_pixels))
        if media.duration_s and media.duration_s > max_duration_s:
            raise MediaRejected(f"{float(media.duration_s) / 60:.1f} min long; the limit is "
                                f"{float(max_duration_s) / 60:.0f} min")
        return Source(record, digest, media=media, link=link)
    except MediaRejected as exc:
        return Quarantined(record, exc.reason, exc.evidence)
    except FfmpegError as exc:
        return Quarantined(record, f"could not be read ({exc.reason})", str(exc))
    except OSError as exc:
        return Quarantined(record, f"could not be read ({exc.strerror or exc})")
