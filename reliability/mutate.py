"""Seeded mutations of uploads and specs: the attacks the fuzzers run.

Each attack is a function ``(rng, data, name) -> (data, name)`` for uploads and ``(rng, text) -> text``
for specs, so a report's seed, attack and try number reproduce the exact bytes.
"""

from __future__ import annotations

import random
import re
import struct

# ------------------------------------------------------------------------------------------------
# uploads

ABSURD_U32 = (0, 1, 0x7FFFFFFF, 0xFFFFFFFF, 0x10000)
ABSURD_U16 = (0, 1, 255, 0x7FFF, 0xFFFF)
EXTENSIONS = (".mp4", ".mov", ".wav", ".mp3", ".jpg", ".png", ".webm", ".ogg", ".flac", ".gif", ".txt", ".heic",
              ".ape", ".mid", "")


def byte_flips(rng: random.Random, data: bytes, name: str) -> tuple[bytes, str]:
    """Flip bits in 1..64 random bytes anywhere in the file."""
    out = bytearray(data)
    for _ in range(rng.randint(1, 64)):
        out[rng.randrange(len(out))] ^= 1 << rng.randrange(8)
    return bytes(out), name


def truncation(rng: random.Random, data: bytes, name: str) -> tuple[bytes, str]:
    """Cut the file at a random offset (an interrupted upload), often inside the header."""
    cut = rng.randrange(1, len(data)) if rng.random() < 0.6 else rng.randrange(1, min(len(data), 4096))
    return data[:cut], name


def header_garbage(rng: random.Random, data: bytes, name: str) -> tuple[bytes, str]:
    """Overwrite a run of bytes inside the first 1 kB (where containers keep their headers)."""
    out = bytearray(data)
    start = rng.randrange(min(len(out), 1024))
    for i in range(start, min(len(out), start + rng.randint(1, 32))):
        out[i] = rng.randrange(256)
    return bytes(out), name


def _patch_sizes(rng: random.Random, data: bytes, patterns: list[tuple[bytes, int, int]]) -> bytes:
    """Set the size-like fields after marker bytes to absurd values: (marker, offset after it, width)."""
    out = bytearray(data)
    hits = [(m.start(), off, width) for marker, off, width in patterns
            for m in re.finditer(re.escape(marker), data[:1 << 20])]
    for start, off, width in rng.sample(hits, min(len(hits), rng.randint(1, 4))) if hits else []:
        pos = start + off
        if pos + width > len(out):
            continue
        value = rng.choice(ABSURD_U32 if width == 4 else ABSURD_U16)
        endian = ">" if data[:4] in (b"\x89PNG",) or b"ftyp" in data[:12] or data[:2] == b"\xff\xd8" else "<"
        out[pos:pos + width] = struct.pack(endian + ("I" if width == 4 else "H"), value)
    return bytes(out)


#: Where the common containers keep sizes, dimensions, durations and channel counts.
SIZE_FIELDS = [
    (b"RIFF", 4, 4), (b"data", 4, 4), (b"fmt ", 10, 2), (b"fmt ", 12, 4),  # WAV: size, data size, channels, rate
    (b"moov", -4, 4), (b"mdat", -4, 4), (b"trak", -4, 4), (b"stsz", 12, 4), (b"stco", 8, 4),  # MP4 box sizes
    (b"mvhd", 20, 4), (b"mvhd", 16, 4), (b"tkhd", 80, 4), (b"tkhd", 84, 4), (b"mdhd", 20, 4),  # durations, sizes
    (b"IHDR", 4, 4), (b"IHDR", 8, 4),  # PNG width, height
    (b"\xff\xc0", 5, 2), (b"\xff\xc0", 7, 2), (b"\xff\xc2", 5, 2),  # JPEG SOF height, width
    (b"COMM", 8, 2), (b"OpusHead", 9, 1),  # AIFF channels, Opus channel count
]


def absurd_fields(rng: random.Random, data: bytes, name: str) -> tuple[bytes, str]:
    """Absurd declared sizes, dimensions, durations and channel counts in the container's own fields."""
    patterns = [(m, o, w if w in (2, 4) else 2) for m, o, w in SIZE_FIELDS]
    return _patch_sizes(rng, data, patterns), name


def container_swap(rng: random.Random, data: bytes, name: str) -> tuple[bytes, str]:
    """A lying name (another format's extension), sometimes with another format's magic bytes in front."""
    stem = name.rsplit(".", 1)[0]
    ext = rng.choice([e for e in EXTENSIONS if not name.endswith(e) or not e])
    magic = rng.choice([b"", b"", b"RIFF\x00\x00\x00\x00WAVE", b"\x00\x00\x00\x18ftypisom", b"\x89PNG\r\n\x1a\n",
                        b"\xff\xd8\xff\xe0", b"OggS\x00\x02", b"ID3\x04\x00\x00", b"\x1aE\xdf\xa3", b"MThd",
                        b"\x00\x00\x00\x18ftypheic"])
    return magic + data, stem + ext


def zero_streams(rng: random.Random, data: bytes, name: str) -> tuple[bytes, str]:
    """Streams that declare nothing: WAV data and MP4 sample tables of zero length, or a bare header."""
    out = bytearray(data)
    zeroed = False
    for marker, off in ((b"data", 4), (b"stsz", 12), (b"stts", 8), (b"stco", 8)):
        for m in re.finditer(re.escape(marker), data[:1 << 20]):
            pos = m.start() + off
            if pos + 4 <= len(out):
                out[pos:pos + 4] = bytes(4)
                zeroed = True
    if not zeroed:  # no known table: keep the header alone
        return data[:min(len(data), rng.choice((44, 64, 512, 1024)))], name
    return bytes(out), name


UPLOAD_ATTACKS = {
    "byte_flips": byte_flips,
    "truncation": truncation,
    "header_garbage": header_garbage,
    "absurd_fields": absurd_fields,
    "container_swap": container_swap,
    "zero_streams": zero_streams,
}

# ------------------------------------------------------------------------------------------------
# specs

WEIRD_SCALARS = ["null", "true", "[]", "{}", "-1", "0", "1e308", "-1e308", "99999999999999999999999999",
                 ".nan", ".inf", "-.inf", '"99999:99:99"', '"-0:01"', '"1/0"', '"NaN"', "0x7fffffff",
                 '"\\u202e\\u0000\\x07"', '"\\ud83c\\udfac"', "!!binary aGVsbG8=", "!!python/object:os.system x",
                 "&a x", "*nope", "? complex\n  : key", '"' + "é" * 5000 + '"', "~"]
CONTROL = ["\x00", "\x07", "\x1b[31m", "\u202e", "\ufeff", "\ud7ff", "\t", "\r", "\x85", "\u2028"]


def _lines(text: str) -> list[str]:
    return text.split("\n")


def wrong_types(rng: random.Random, text: str) -> str:
    """A value swapped for one of another type (or an absurd number, NaN, infinity)."""
    lines = _lines(text)
    spots = [i for i, ln in enumerate(lines) if re.search(r":\s*\S", ln)]
    for i in rng.sample(spots, min(len(spots), rng.randint(1, 3))):
        key, _, _ = lines[i].partition(":")
        lines[i] = f"{key}: {rng.choice(WEIRD_SCALARS)}"
    return "\n".join(lines)


def unknown_keys(rng: random.Random, text: str) -> str:
    """Keys no spec has, at the top and inside segments (and inside flow mappings)."""
    lines = _lines(text)
    word = rng.choice(["segmnts", "runtme", "x", "__proto__", "ünïcödé", "a" * 300, "id ", "type:"])
    i = rng.randrange(len(lines) + 1)
    indent = re.match(r"\s*(- )?", lines[i - 1]).group(0).replace("-", " ") if i else ""
    lines.insert(i, f"{indent}{word!r}: 1")
    return "\n".join(lines)


def huge_numbers(rng: random.Random, text: str) -> str:
    """Every number in the spec replaced by a huge, negative, fractional or non-finite one."""
    return re.sub(r"(?<=[:\[ ,])(\s*)\d+(\.\d+)?(?=[,\]}\s]|$)",
                  lambda m: m.group(1) + rng.choice(["1e300", "-5", "0", "10" * 40, ".nan", ".inf", "0.0000001",
                                                     "4294967296", "-0"]), text, flags=re.MULTILINE)


def unicode_control(rng: random.Random, text: str) -> str:
    """Control characters, bidi overrides, BOMs and surrogate-adjacent code points in random places."""
    chars = list(text)
    for _ in range(rng.randint(1, 12)):
        chars.insert(rng.randrange(len(chars) + 1), rng.choice(CONTROL))
    return "".join(chars)


def deep_nesting(rng: random.Random, text: str) -> str:
    """A value nested thousands deep (flow or block style)."""
    depth = rng.choice([100, 1000, 5000, 20000])
    deep = "[" * depth + "]" * depth if rng.random() < 0.5 else "{a: " * depth + "1" + "}" * depth
    return text + f"\ndeep: {deep}\n"


def duplicates(rng: random.Random, text: str) -> str:
    """Keys given twice and segments repeated (duplicate ids)."""
    lines = _lines(text)
    i = rng.randrange(len(lines))
    lines.insert(i, lines[i])
    seg = [j for j, ln in enumerate(lines) if ln.lstrip().startswith("- ")]
    if seg:
        j = rng.choice(seg)
        lines.insert(j, lines[j])
    return "\n".join(lines)


def alias_bomb(rng: random.Random, text: str) -> str:
    """The "billion laughs": nine anchors, each a list of nine aliases of the one before."""
    levels = rng.choice([6, 9, 12])
    bomb = ['a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    bomb += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, levels)]
    where = rng.choice(["top", "vars", "segment", "itself"])
    if where == "itself":  # an anchor holding an alias of itself: infinite when expanded
        return text + "\nloop: &loop [1, *loop]\n"
    if where == "vars":
        return text + "\nvars:\n" + "\n".join("  " + b for b in bomb) + f"\n  boom: *a{levels - 1}\n"
    if where == "segment":
        return "\n".join(bomb) + "\n" + text.replace("segments:", f"x: *a{levels - 1}\nsegments:", 1)
    return "\n".join(bomb) + "\n" + text


def binary_garbage(rng: random.Random, text: str) -> str:
    """Random bytes (returned as latin-1 text: the file written is exactly those bytes)."""
    data = bytes(rng.randrange(256) for _ in range(rng.randint(1, 4096)))
    if rng.random() < 0.5:  # garbage after a valid start
        data = text.encode()[: rng.randrange(len(text))] + data
    return data.decode("latin-1")


SPEC_ATTACKS = {
    "wrong_types": wrong_types,
    "unknown_keys": unknown_keys,
    "huge_numbers": huge_numbers,
    "unicode_control": unicode_control,
    "deep_nesting": deep_nesting,
    "duplicates": duplicates,
    "alias_bomb": alias_bomb,
    "binary_garbage": binary_garbage,
}
