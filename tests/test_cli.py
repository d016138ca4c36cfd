import io

import numpy as np
import pytest
from PIL import Image

from denoise import cli, images, models


def identity_model(path, channels):
    """A DnCNN with zero weights predicts zero noise, so it returns its input exactly."""
    model = models.dncnn(channels, 3, 4)
    model.set_weights([np.zeros_like(w) for w in model.get_weights()])
    model.save(path)
    return str(path)


@pytest.fixture(scope="module")
def gray_model(tmp_path_factory):
    return identity_model(tmp_path_factory.mktemp("m") / "gray.keras", 1)


@pytest.fixture(scope="module")
def color_model(tmp_path_factory):
    return identity_model(tmp_path_factory.mktemp("m") / "rgb.keras", 3)


def photo(mode, size=(37, 23), seed=0):
    rng = np.random.default_rng(seed)
    if mode == "I;16":
        return Image.fromarray(rng.integers(0, 65535, size[::-1], dtype=np.uint16))
    bands = len(mode) if mode in ("RGB", "RGBA", "LA") else 1
    array = rng.integers(0, 255, (size[1], size[0], bands), dtype=np.uint8)
    image = Image.fromarray(array[..., 0] if bands == 1 else array)
    return image.convert("P") if mode == "P" else image


@pytest.mark.parametrize("mode, suffix, expected", [
    ("L", ".png", "L"), ("LA", ".png", "LA"), ("RGB", ".png", "RGB"), ("RGBA", ".png", "RGBA"),
    ("P", ".png", "RGB"), ("I;16", ".png", "I;16"), ("RGB", ".bmp", "RGB"), ("L", ".tif", "L"),
])
def test_round_trip_keeps_size_mode_and_pixels(tmp_path, gray_model, mode, suffix, expected):
    source = photo(mode)
    source.save(tmp_path / f"in{suffix}")
    assert cli.main([str(tmp_path / f"in{suffix}"), "-o", str(tmp_path / f"out{suffix}"), "--model", gray_model]) == 0
    out = Image.open(tmp_path / f"out{suffix}")
    assert out.size == source.size and out.mode == expected
    reference = source.convert("RGB") if mode == "P" else source
    np.testing.assert_array_equal(np.asarray(out), np.asarray(reference))  # identity model: bit-exact, alpha too


@pytest.mark.parametrize("suffix, file_format", [(".png", "PNG"), (".tif", "TIFF")])
def test_16_bit_rgba_keeps_16_bits_and_alpha(tmp_path, gray_model, suffix, file_format):
    rng = np.random.default_rng(2)
    pixels = rng.integers(0, 65536, (21, 17, 3), dtype=np.uint16)
    alpha = rng.integers(0, 65536, (21, 17), dtype=np.uint16)
    images.save_image(tmp_path / f"in{suffix}", pixels / 65535.0, alpha, 16, file_format)
    assert cli.main([str(tmp_path / f"in{suffix}"), "-o", str(tmp_path / f"out{suffix}"), "--model", gray_model]) == 0
    out = images.read_image(tmp_path / f"out{suffix}")
    assert out.bit_depth == 16
    np.testing.assert_array_equal(images.to_uint(out.pixels, 16), pixels)
    np.testing.assert_array_equal(out.alpha, alpha)


def test_color_model_on_gray_photo_says_what_it_does(tmp_path, color_model, capsys):
    photo("L").save(tmp_path / "g.png")
    assert cli.main([str(tmp_path / "g.png"), "-o", str(tmp_path / "o.png"), "--model", color_model]) == 0
    assert Image.open(tmp_path / "o.png").mode == "L"
    assert "color model on a gray image" in capsys.readouterr().err


def test_tiled_run_equals_single_pass(tmp_path):
    model = models.dncnn(1, 4, 8)
    rng = np.random.default_rng(1)
    model.set_weights([rng.normal(0, 0.05, w.shape).astype(np.float32) for w in model.get_weights()])
    model.save(tmp_path / "m.keras")
    photo("L", size=(150, 110)).save(tmp_path / "in.png")
    common = ["--model", str(tmp_path / "m.keras")]
    assert cli.main([str(tmp_path / "in.png"), "-o", str(tmp_path / "whole.png"), "--tile", "512", *common]) == 0
    assert cli.main([str(tmp_path / "in.png"), "-o", str(tmp_path / "tiled.png"), "--tile", "48", "--overlap", "15", *common]) == 0
    whole = images.read_image(tmp_path / "whole.png").pixels
    tiled = images.read_image(tmp_path / "tiled.png").pixels
    assert np.abs(whole - tiled).max() <= 1 / 255  # at most one 8-bit step from rounding


def test_folder_mirrors_tree_and_one_bad_file_does_not_stop_the_rest(tmp_path, gray_model, capsys):
    (tmp_path / "in" / "sub").mkdir(parents=True)
    photo("RGB").save(tmp_path / "in" / "a.jpg")
    photo("L").save(tmp_path / "in" / "sub" / "b.png")
    (tmp_path / "in" / "sub" / "bad.png").write_text("not an image")
    assert cli.main([str(tmp_path / "in"), "-o", str(tmp_path / "out"), "--model", gray_model]) == 1
    assert (tmp_path / "out" / "a.jpg").is_file() and (tmp_path / "out" / "sub" / "b.png").is_file()
    assert not (tmp_path / "out" / "sub" / "bad.png").exists()
    captured = capsys.readouterr()
    assert "bad.png: cannot decode image" in captured.err
    assert "done 2, skipped 0, failed 1" in captured.out
    assert not [p for p in (tmp_path / "out").rglob("*") if p.name.startswith(".")]  # no temp files left


def truncated_jpeg():
    buffer = io.BytesIO()
    photo("RGB", size=(64, 64)).save(buffer, format="JPEG")
    return buffer.getvalue()[:400]


@pytest.mark.parametrize("name, content", [
    ("empty.png", b""), ("text.png", b"hello, I am text"), ("cut.jpg", truncated_jpeg()),
    ("corrupt.png", b"\x89PNG\r\n\x1a\n" + b"\x00" * 50),
])
def test_unreadable_files_fail_with_their_name(tmp_path, gray_model, capsys, name, content):
    (tmp_path / name).write_bytes(content)
    assert cli.main([str(tmp_path / name), "-o", str(tmp_path / ("out_" + name)), "--model", gray_model]) == 1
    assert f"failed {tmp_path / name}: cannot decode image" in capsys.readouterr().err
    assert not (tmp_path / ("out_" + name)).exists()


def test_existing_output_and_input_are_never_overwritten(tmp_path, gray_model, capsys):
    photo("L").save(tmp_path / "in.png")
    (tmp_path / "out.png").write_bytes(b"keep me")
    assert cli.main([str(tmp_path / "in.png"), "-o", str(tmp_path / "out.png"), "--model", gray_model]) == 1
    assert (tmp_path / "out.png").read_bytes() == b"keep me"
    assert "exists (use --overwrite to replace it)" in capsys.readouterr().err
    assert cli.main([str(tmp_path / "in.png"), "-o", str(tmp_path / "out.png"), "--model", gray_model, "--overwrite"]) == 0
    before = (tmp_path / "in.png").read_bytes()
    assert cli.main([str(tmp_path / "in.png"), "-o", str(tmp_path / "in.png"), "--model", gray_model, "--overwrite"]) == 1
    assert "is an input; never overwritten" in capsys.readouterr().err
    assert (tmp_path / "in.png").read_bytes() == before


def test_decompression_bomb_is_refused(tmp_path, gray_model, capsys, monkeypatch):
    photo("L", size=(100, 100)).save(tmp_path / "bomb.png")
    monkeypatch.setattr(images, "MAX_PIXELS", 5000)
    assert cli.main([str(tmp_path / "bomb.png"), "-o", str(tmp_path / "o.png"), "--model", gray_model]) == 1
    assert "decompression bomb" in capsys.readouterr().err


def test_model_problems_stop_before_any_work(tmp_path, capsys):
    photo("L").save(tmp_path / "in.png")
    assert cli.main([str(tmp_path / "in.png"), "-o", str(tmp_path / "o.png"), "--model", str(tmp_path / "none.keras")]) == 2
    assert "run `make repro`" in capsys.readouterr().err
    identity_model(tmp_path / "two.keras", 2)
    assert cli.main([str(tmp_path / "in.png"), "-o", str(tmp_path / "o.png"), "--model", str(tmp_path / "two.keras")]) == 2
    assert "takes 2 channels" in capsys.readouterr().err
    assert not (tmp_path / "o.png").exists()


def test_alpha_cannot_go_to_jpeg(tmp_path, gray_model, capsys):
    photo("RGBA").save(tmp_path / "in.png")
    assert cli.main([str(tmp_path / "in.png"), "-o", str(tmp_path / "o"), "--format", "jpeg", "--model", gray_model]) == 1
    assert "cannot hold the alpha channel" in capsys.readouterr().err


def test_sigma_auto_prints_an_estimate_close_to_the_truth(tmp_path, gray_model, capsys):
    clean = np.full((128, 128), 128.0)
    noisy = clean + np.random.default_rng(0).normal(0, 20, clean.shape)
    Image.fromarray(np.clip(np.round(noisy), 0, 255).astype(np.uint8)).save(tmp_path / "n.png")
    assert cli.main([str(tmp_path / "n.png"), "-o", str(tmp_path / "o.png"), "--sigma", "auto", "--model", gray_model]) == 0
    estimate = float(capsys.readouterr().err.split("estimated noise sigma ")[1].split()[0])
    assert 18 < estimate < 22


def test_help_documents_options_with_examples(capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.parse_args(["--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    for option in ("--model", "--sigma", "--tile", "--overwrite", "--format", "examples:"):
        assert option in text


def test_tile_count_matches_the_tiles_denoised(gray_model):
    denoiser = cli.Denoiser(gray_model, tile=48, overlap=15, batch=2)
    pixels = np.random.default_rng(3).random((100, 130, 3)).astype(np.float32)
    done = []
    denoiser(pixels, progress=done.append)
    assert sum(done) == denoiser.tiles_for(pixels) == 3 * 12


def test_self_ensemble_counts_the_tiles_of_every_view_and_keeps_the_image(tmp_path, gray_model):
    denoiser = cli.Denoiser(gray_model, tile=48, overlap=15, batch=2, ensemble=8)
    pixels = np.random.default_rng(3).random((100, 130, 1)).astype(np.float32)
    done = []
    out = denoiser(pixels, progress=done.append)
    assert sum(done) == denoiser.tiles_for(pixels) == 8 * 12  # 3 × 4 tiles a view, turned or not
    np.testing.assert_allclose(out, pixels, atol=1e-6)  # the identity model: every view turned back in place
    photo("L").save(tmp_path / "in.png")
    assert cli.main([str(tmp_path / "in.png"), "-o", str(tmp_path / "out.png"), "--model", gray_model, "--self-ensemble", "2"]) == 0
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "out.png")), np.asarray(photo("L")))
    with pytest.raises(SystemExit) as exit_info:
        cli.parse_args([str(tmp_path / "in.png"), "-o", str(tmp_path / "x.png"), "--self-ensemble", "3"])
    assert exit_info.value.code == 2
