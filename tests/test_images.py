import numpy as np
import pytest
from PIL import Image

from denoise import images
from denoise.errors import DenoiseError


def test_16_bit_gray_round_trip(tmp_path):
    values = np.arange(0, 65536, 64, dtype=np.uint16).reshape(32, 32)
    images.save_image(tmp_path / "g16.png", values[..., None] / 65535.0, None, 16, "PNG")
    decoded = images.read_image(tmp_path / "g16.png")
    assert decoded.bit_depth == 16
    np.testing.assert_array_equal(images.to_uint(decoded.pixels[..., 0], 16), values)


@pytest.mark.parametrize("suffix, file_format", [(".png", "PNG"), (".tif", "TIFF")])
@pytest.mark.parametrize("channels, with_alpha", [(3, False), (3, True), (1, True)])
def test_16_bit_color_and_alpha_round_trip(tmp_path, suffix, file_format, channels, with_alpha):
    rng = np.random.default_rng(0)
    values = rng.integers(0, 65536, (9, 13, channels), dtype=np.uint16)
    alpha = rng.integers(0, 65536, (9, 13), dtype=np.uint16) if with_alpha else None
    images.save_image(tmp_path / f"c16{suffix}", values / 65535.0, alpha, 16, file_format)
    decoded = images.read_image(tmp_path / f"c16{suffix}")
    assert decoded.bit_depth == 16 and decoded.pixels.shape == (9, 13, channels)
    np.testing.assert_array_equal(images.to_uint(decoded.pixels, 16), values)
    if with_alpha:
        np.testing.assert_array_equal(decoded.alpha, alpha)


def test_8_bit_rgb_and_alpha_round_trip(tmp_path, smooth_image):
    pixels = np.round(smooth_image(20, 30, channels=3) * 255) / 255
    alpha = np.arange(600, dtype=np.uint8).reshape(20, 30)
    images.encode(pixels, alpha).save(tmp_path / "rgba.png")
    decoded = images.read_image(tmp_path / "rgba.png")
    np.testing.assert_allclose(decoded.pixels, pixels, atol=1e-6)
    np.testing.assert_array_equal(decoded.alpha, alpha)


def test_exif_orientation_is_applied(tmp_path):
    array = np.zeros((10, 20), np.uint8)
    array[:, :5] = 255  # bright band on the left
    image = Image.fromarray(array)
    exif = image.getexif()
    exif[0x0112] = 6  # rotate 90° clockwise when displayed
    image.save(tmp_path / "rotated.jpg", exif=exif, quality=100)
    decoded = images.read_image(tmp_path / "rotated.jpg")
    assert decoded.pixels.shape[:2] == (20, 10)
    assert decoded.pixels[:5].mean() > 0.9 and decoded.pixels[-5:].mean() < 0.1  # band now on top


def test_palette_is_converted(tmp_path):
    Image.fromarray(np.arange(256, dtype=np.uint8).reshape(16, 16)).convert("P").save(tmp_path / "p.png")
    assert images.read_image(tmp_path / "p.png").pixels.shape == (16, 16, 3)


@pytest.mark.parametrize("content", [b"", b"this is not an image", b"\x89PNG\r\n\x1a\n\x00\x00"])
def test_undecodable_files_name_the_file(tmp_path, content):
    (tmp_path / "bad.png").write_bytes(content)
    with pytest.raises(DenoiseError, match=r"bad\.png: cannot decode image"):
        images.read_image(tmp_path / "bad.png")


def test_decompression_bomb_is_refused(tmp_path, monkeypatch):
    Image.new("L", (100, 100)).save(tmp_path / "big.png")
    monkeypatch.setattr(images, "MAX_PIXELS", 1000)
    with pytest.raises(DenoiseError, match="decompression bomb"):
        images.read_image(tmp_path / "big.png")


def test_channel_conversion_and_size_limit(smooth_image):
    rgb = smooth_image(30, 60, channels=3)
    gray = images.to_channels(rgb, 1)
    assert gray.shape == (30, 60, 1)
    assert images.to_channels(gray, 3).shape == (30, 60, 3)
    small = images.limit_size(rgb, 20)
    assert small.shape == (10, 20, 3) and small.min() >= 0 and small.max() <= 1
    assert images.limit_size(rgb, None) is rgb


def test_find_images_is_recursive_and_sorted(tmp_path):
    for name in ["b.png", "a/c.JPG", "a/notes.txt", "z.tif"]:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"x")
    assert [p.relative_to(tmp_path).as_posix() for p in images.find_images(tmp_path)] == ["a/c.JPG", "b.png", "z.tif"]


