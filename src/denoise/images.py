"""Reading and writing image files with Pillow: EXIF orientation, 8/16-bit, gray/RGB/alpha/palette."""

from __future__ import annotations

import hashlib
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from .errors import DenoiseError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp")
# Refuse files claiming more pixels than this before decoding them (decompression bombs).
MAX_PIXELS = 200_000_000
_SIXTEEN_BIT_MODES = ("I;16", "I;16B", "I;16L", "I;16N", "I")


@dataclass
class Decoded:
    """An image as floats in [0, 1]: `pixels` is H×W×C (C = 1 or 3); alpha, if any, is kept apart."""

    pixels: np.ndarray
    alpha: np.ndarray | None
    bit_depth: int
    mode: str
    format: str | None


def sample_folder() -> Path:
    import skimage.data

    return Path(skimage.data.__file__).parent


def find_images(folder: str | Path) -> list[Path]:
    """Image files below `folder` (recursive), sorted by their path relative to it."""
    folder = Path(folder)
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def sha256_of(path: str | Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def read_image(path: str | Path) -> Decoded:
    """Decode an image file; raises DenoiseError naming the file and the reason."""
    path = Path(path)
    try:
        wide = _read_16_bit_color(path)
        if wide is not None:
            return wide
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            previous, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, MAX_PIXELS
            try:
                with Image.open(path) as image:
                    image.load()
                    file_format = image.format
                    image = ImageOps.exif_transpose(image)
            finally:
                Image.MAX_IMAGE_PIXELS = previous
    except DenoiseError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise _bomb(path) from None
    except FileNotFoundError:
        raise DenoiseError(f"{path}: no such file") from None
    except Exception as error:  # Pillow, pypng and tifffile raise many types for corrupt data
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise DenoiseError(f"{path}: cannot decode image ({reason})") from None
    return _to_float(image, file_format)


def _bomb(path: Path) -> DenoiseError:
    return DenoiseError(f"{path}: refused: claims more than {MAX_PIXELS:,} pixels (decompression bomb?)")


def _read_16_bit_color(path: Path) -> Decoded | None:
    """16-bit color PNG and TIFF, which Pillow would cut to 8 bits, decoded with pypng / tifffile."""
    with open(path, "rb") as handle:
        head = handle.read(32)
    array = None
    if head[:8] == b"\x89PNG\r\n\x1a\n" and head[12:16] == b"IHDR" and head[24] == 16 and head[25] in (2, 4, 6):
        import png

        width, height, rows, info = png.Reader(filename=str(path)).asDirect()
        _refuse_bomb(path, width * height)
        array, file_format = np.vstack(list(rows)).reshape(height, width, info["planes"]), "PNG"
    elif head[:4] in (b"II*\x00", b"MM\x00*"):
        import tifffile

        with tifffile.TiffFile(path) as tiff:
            page = tiff.pages[0]
            if page.bitspersample == 16 and page.samplesperpixel in (2, 3, 4):
                _refuse_bomb(path, page.imagewidth * page.imagelength)
                array, file_format = page.asarray(), "TIFF"
    if array is None:
        return None
    pixels = array.astype(np.float32) / 65535.0
    colors = 1 if array.shape[-1] == 2 else 3
    alpha = array[..., colors].copy() if array.shape[-1] in (2, 4) else None
    return Decoded(pixels[..., :colors], alpha, 16, f"{'LA' if colors == 1 else 'RGB'}{'A' if colors == 3 and alpha is not None else ''};16", file_format)


def _refuse_bomb(path: Path, pixels: int) -> None:
    if pixels > MAX_PIXELS:
        raise _bomb(path)


def _to_float(image: Image.Image, file_format: str | None) -> Decoded:
    mode = image.mode
    if mode in _SIXTEEN_BIT_MODES or mode == "F":
        pixels = np.asarray(image, dtype=np.float32)[..., None] / 65535.0
        return Decoded(np.clip(pixels, 0, 1), None, 16, mode, file_format)
    if mode == "P":
        image = image.convert("RGBA" if "transparency" in image.info else "RGB")
    elif mode == "1":
        image = image.convert("L")
    elif mode == "PA":
        image = image.convert("RGBA")
    elif mode not in ("L", "LA", "RGB", "RGBA"):
        image = image.convert("RGB")
    array = np.asarray(image, dtype=np.float32) / 255.0
    if array.ndim == 2:
        array = array[..., None]
    alpha = None
    if image.mode in ("LA", "RGBA"):
        array, alpha = array[..., :-1], np.asarray(image)[..., -1].copy()
    return Decoded(array, alpha, 8, mode, file_format)


def to_channels(pixels: np.ndarray, channels: int) -> np.ndarray:
    """Convert H×W×C floats to gray (ITU-R 601 luma, as Pillow) or RGB."""
    if pixels.shape[-1] == channels:
        return pixels
    if channels == 1:
        return (pixels @ np.array([0.299, 0.587, 0.114], dtype=np.float32))[..., None]
    return np.repeat(pixels, 3, axis=-1)


def limit_size(pixels: np.ndarray, max_side: int | None) -> np.ndarray:
    """Downscale (Lanczos, per channel in float) so the longest side is at most max_side."""
    height, width = pixels.shape[:2]
    if max_side is None or max(height, width) <= max_side:
        return pixels
    return rescale(pixels, max_side / max(height, width))


def decoded_size(path: str | Path, channels: int, max_side: int | None) -> int:
    """Values (pixels × channels) of an image once read, converted and limited to max_side, from its header
    alone; 0 where the header cannot be read (the file is then skipped or sized when decoded)."""
    try:
        with Image.open(path) as image:
            width, height = image.size
    except Exception:  # noqa: BLE001 - any unreadable header: no estimate
        return 0
    scale = 1.0 if max_side is None or max(height, width) <= max_side else max_side / max(height, width)
    return max(1, round(height * scale)) * max(1, round(width * scale)) * channels


def rescale(pixels: np.ndarray, scale: float) -> np.ndarray:
    """Resize by `scale` (Lanczos, per channel in float), clipped to [0, 1]."""
    if scale == 1:
        return pixels
    height, width = pixels.shape[:2]
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    planes = [np.asarray(Image.fromarray(pixels[..., c]).resize(size, Image.Resampling.LANCZOS)) for c in range(pixels.shape[-1])]
    return np.clip(np.stack(planes, axis=-1), 0.0, 1.0)


def to_uint(pixels: np.ndarray, bit_depth: int) -> np.ndarray:
    """Floats in [0, 1] to rounded 8- or 16-bit integers."""
    top, dtype = (255.0, np.uint8) if bit_depth == 8 else (65535.0, np.uint16)
    return np.round(np.clip(pixels, 0.0, 1.0) * top).astype(dtype)


def encode(pixels: np.ndarray, alpha: np.ndarray | None = None) -> Image.Image:
    """An 8-bit Pillow image from H×W×C floats (C = 1 or 3) and an optional 8-bit alpha."""
    array = to_uint(pixels, 8)
    if alpha is not None:
        array = np.concatenate([array, alpha[..., None].astype(np.uint8)], axis=-1)
    return Image.fromarray(array[..., 0] if array.shape[-1] == 1 else array)


def save_image(path: str | Path, pixels: np.ndarray, alpha: np.ndarray | None, bit_depth: int, file_format: str, **options) -> None:
    """Write H×W×C floats at 8 or 16 bits (16: PNG or TIFF), with alpha copied as given."""
    path = Path(path)
    if bit_depth == 8:
        encode(pixels, alpha).save(path, format=file_format, **options)
        return
    if file_format not in ("PNG", "TIFF"):
        raise DenoiseError(f"{path}: a 16-bit image can only be written as png or tiff")
    array = to_uint(pixels, 16)
    if alpha is not None:
        array = np.concatenate([array, alpha[..., None].astype(np.uint16)], axis=-1)
    if array.shape[-1] == 1:
        Image.fromarray(array[..., 0]).save(path, format=file_format)
    elif file_format == "PNG":
        import png

        mode = {2: "LA", 3: "RGB", 4: "RGBA"}[array.shape[-1]] + ";16"
        png.from_array(array.reshape(array.shape[0], -1), mode=mode).save(str(path))
    else:
        import tifffile

        photometric = "minisblack" if array.shape[-1] == 2 else "rgb"
        extra = ["unassalpha"] if array.shape[-1] in (2, 4) else None
        tifffile.imwrite(path, array, photometric=photometric, extrasamples=extra)
