"""HEIF/HEIC photos (a phone camera's default) as lossless stills the rest of intake can read.

ffmpeg cannot decode HEIF, so intake decodes it here, once per content hash, with libheif (through
pillow-heif) into a 16-bit PNG in the cache; the submission itself is never touched. The PNG is
upright (libheif applies the ``irot``/``imir`` transforms, which a HEIF's EXIF orientation only
repeats) and in sRGB/BT.709 colour: an ICC profile is applied with LittleCMS, ``nclx`` primaries
(Display P3 on iPhones, BT.2020) are converted in linear light.
"""

from __future__ import annotations

import io
import os

import cv2
import numpy as np
from PIL import ImageCms

from render.core.cache import Cache, atomic_path
from render.core.errors import MediaRejected

DECODE_VERSION = 1
#: ISO base media ``ftyp`` brands of HEIF still images (AVIF excluded: ffmpeg has no AV1 still path here).
HEIF_BRANDS = {b"heic", b"heix", b"heim", b"heis", b"mif1", b"msf1", b"hevc", b"hevx"}
#: nclx transfer characteristics that are (close enough to) the sRGB curve: BT.709/601/2020 SDR, sRGB.
SDR_TRANSFERS = {1, 2, 6, 13, 14, 15}
_BT709 = ((0.64, 0.33), (0.30, 0.60), (0.15, 0.06), (0.3127, 0.3290))
BAND_ROWS = 256


def is_heif(head: bytes) -> bool:
    """True when a file's first bytes are a HEIF still image's ``ftyp`` box."""
    return len(head) >= 12 and head[4:8] == b"ftyp" and head[8:12] in HEIF_BRANDS


def still_of(cache: Cache, path: os.PathLike, content_hash: str, max_pixels: int) -> os.PathLike:
    """The decoded still of a HEIF submission (made once, kept in the cache by content hash)."""
    dest = cache.path("stills", f"{content_hash}-h{DECODE_VERSION}.png")
    if dest.exists():
        return dest
    import pillow_heif  # imported here: only HEIF uploads need libheif loaded

    try:
        heif = pillow_heif.open_heif(path, convert_hdr_to_8bit=False)
        w, h = heif.size
        if w * h > max_pixels:  # checked from the header, before anything decodes
            from render.intake.probe import over_pixel_limit
            raise MediaRejected(over_pixel_limit(w, h, max_pixels))
        rgb = _srgb(heif, path)
    except (ValueError, RuntimeError, OSError, SyntaxError) as exc:  # libheif's errors on damaged files
        raise MediaRejected(f"unreadable HEIF photo: {exc}", repr(exc)) from None
    channels = rgb.shape[2]
    ok, png = cv2.imencode(".png", cv2.cvtColor(rgb, cv2.COLOR_RGBA2BGRA if channels == 4 else cv2.COLOR_RGB2BGR))
    if not ok:
        raise MediaRejected("the HEIF photo could not be converted to a still")
    with atomic_path(dest) as tmp:
        tmp.write_bytes(png.tobytes())
    return dest


def _srgb(heif, path: os.PathLike) -> np.ndarray:
    """The primary image as 16-bit RGB(A) in sRGB/BT.709 colour."""
    import pillow_heif

    info = heif.info
    icc = info.get("icc_profile")
    if icc:
        # LittleCMS works on 8-bit pictures in Pillow; an ICC-tagged photo is 8-bit in practice
        image = pillow_heif.open_heif(path).to_pillow()
        image = image.convert("RGBA" if "A" in image.mode else "RGB")
        src = ImageCms.ImageCmsProfile(io.BytesIO(icc))
        alpha = image.getchannel("A") if image.mode == "RGBA" else None
        image = ImageCms.profileToProfile(image.convert("RGB"), src, ImageCms.createProfile("sRGB"),
                                          outputMode="RGB")
        if alpha is not None:
            image.putalpha(alpha)
        return np.asarray(image).astype(np.uint16) * 257
    pixels = np.asarray(heif)
    if pixels.ndim == 2:
        pixels = pixels[..., None].repeat(3, axis=2)
    out = pixels.astype(np.uint16) * (257 if pixels.dtype == np.uint8 else 1)
    matrix = _to_bt709(info.get("nclx_profile") or {})
    if matrix is not None:
        # in bands of rows: a 48-megapixel photo in float32 at once would take gigabytes
        for top in range(0, out.shape[0], BAND_ROWS):
            band = out[top:top + BAND_ROWS, :, :3]
            band[...] = _convert(band, matrix.T.astype(np.float32))
    return out


def _convert(band: np.ndarray, matrix_t: np.ndarray) -> np.ndarray:
    """16-bit sRGB-curve pixels through a linear-light primaries matrix, back to 16-bit."""
    colour = band.astype(np.float32) / 65535
    linear = np.where(colour <= 0.04045, colour / 12.92, ((colour + 0.055) / 1.055) ** 2.4)
    linear = np.clip(linear @ matrix_t, 0.0, 1.0)
    encoded = np.where(linear <= 0.0031308, linear * 12.92, 1.055 * linear ** (1 / 2.4) - 0.055)
    return np.rint(encoded * 65535).astype(np.uint16)


def _to_bt709(nclx: dict) -> np.ndarray | None:
    """The linear-light matrix from the nclx primaries to BT.709's, or None when they already are."""
    if nclx.get("color_primaries") in (None, 1, 2) or nclx.get("transfer_characteristics") not in SDR_TRANSFERS:
        return None  # BT.709/unspecified; PQ/HLG pictures stay as decoded (no HDR stills path yet)
    names = ("red", "green", "blue", "white")
    try:
        primaries = tuple((float(nclx[f"color_primary_{n}_x"]), float(nclx[f"color_primary_{n}_y"])) for n in names)
    except (KeyError, TypeError, ValueError):
        return None
    if any(y <= 0 for _, y in primaries):  # primaries named but not given: nothing to convert with
        return None
    return np.linalg.inv(_rgb_to_xyz(_BT709)) @ _rgb_to_xyz(primaries)


def _rgb_to_xyz(primaries: tuple) -> np.ndarray:
    """RGB -> XYZ for chromaticities ((rx, ry), (gx, gy), (bx, by), (wx, wy))."""
    xyz = np.array([[x / y, 1.0, (1 - x - y) / y] for x, y in primaries[:3]]).T
    wx, wy = primaries[3]
    white = np.array([wx / wy, 1.0, (1 - wx - wy) / wy])
    return xyz * np.linalg.solve(xyz, white)
