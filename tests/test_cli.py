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
    """A DnCNN whose random weights change the image a lot (not an identity, so seams could not hide):
    tiles with enough overlap equal one pass to within one 8-bit step; without overlap the seams show."""
    model = models.dncnn(1, 4, 8)
    rng = np.random.default_rng(1)
    model.set_weights([rng.normal(0, 0.3, w.shape).astype(np.float32) if w.ndim > 1 else np.zeros_like(w) for w in model.get_weights()])
    model.save(tmp_path / "m.keras")
    photo("L", size=(150, 110)).save(tmp_path / "in.png")
    common = ["--model", str(tmp_path / "m.keras")]
    runs = {"whole": ["--tile", "512"], "tiled": ["--tile", "48", "--overlap", "15"], "seams": ["--tile", "48", "--overlap", "0"]}
    out = {}
    for name, options in runs.items():
        assert cli.main([str(tmp_path / "in.png"), "-o", str(tmp_path / f"{name}.png"), *options, *common]) == 0
        out[name] = images.read_image(tmp_path / f"{name}.png").pixels
    source = images.read_image(tmp_path / "in.png").pixels
    assert np.abs(out["whole"] - source).mean() > 0.05  # the network changes the image
    assert np.abs(out["whole"] - out["tiled"]).max() <= 1 / 255  # at most one 8-bit step from rounding
    assert np.abs(out["whole"] - out["seams"]).max() > 10 / 255


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


def test_self_ensemble_keeps_the_image_and_bad_sizes_are_refused(tmp_path, gray_model):
    photo("L").save(tmp_path / "in.png")
    assert cli.main([str(tmp_path / "in.png"), "-o", str(tmp_path / "out.png"), "--model", gray_model, "--self-ensemble", "2"]) == 0
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "out.png")), np.asarray(photo("L")))
    with pytest.raises(SystemExit) as exit_info:
        cli.parse_args([str(tmp_path / "in.png"), "-o", str(tmp_path / "x.png"), "--self-ensemble", "3"])
    assert exit_info.value.code == 2


def tree(folder):
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*"))


def test_an_output_folder_inside_the_input_folder_is_never_read_as_input(tmp_path, gray_model, capsys):
    photos = tmp_path / "photos"
    (photos / "sub").mkdir(parents=True)
    photo("L").save(photos / "a.png")
    photo("RGB").save(photos / "sub" / "b.png")
    command = [str(photos), "-o", str(photos / "clean"), "--model", gray_model]
    assert cli.main(command) == 0
    first = tree(photos)
    assert first == ["a.png", "clean", "clean/a.png", "clean/sub", "clean/sub/b.png", "sub", "sub/b.png"]
    assert cli.main(command) == 1  # the two outputs exist: skipped, and nothing else is found
    assert tree(photos) == first
    assert "done 0, skipped 2, failed 0" in capsys.readouterr().out
    assert cli.main(command + ["--overwrite"]) == 0
    assert tree(photos) == first


def test_two_inputs_mapped_to_one_output_name_are_an_error_naming_both(tmp_path, gray_model, capsys):
    (tmp_path / "in").mkdir()
    photo("L").save(tmp_path / "in" / "a.png")
    photo("L").save(tmp_path / "in" / "a.bmp")
    assert cli.main([str(tmp_path / "in"), "-o", str(tmp_path / "out"), "--format", "png", "--model", gray_model]) == 2
    message = capsys.readouterr().err.strip()
    assert len(message.splitlines()) == 1
    assert str(tmp_path / "in" / "a.bmp") in message and str(tmp_path / "in" / "a.png") in message and "out/a.png" in message
    assert not (tmp_path / "out").exists()


def test_a_write_error_fails_that_file_and_the_others_still_get_done(tmp_path, gray_model, capsys):
    (tmp_path / "in" / "sub").mkdir(parents=True)
    photo("L").save(tmp_path / "in" / "a.png")
    photo("L").save(tmp_path / "in" / "sub" / "b.png")
    photo("L").save(tmp_path / "in" / "z.png")
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "sub").write_text("a file where the output folder sub/ should go")
    assert cli.main([str(tmp_path / "in"), "-o", str(tmp_path / "out"), "--model", gray_model]) == 1
    captured = capsys.readouterr()
    assert f"failed {tmp_path / 'in' / 'sub' / 'b.png'}: cannot write" in captured.err
    assert "done 2, skipped 0, failed 1" in captured.out
    assert (tmp_path / "out" / "a.png").is_file() and (tmp_path / "out" / "z.png").is_file()


def test_the_command_shows_no_framework_chatter(tmp_path, gray_model):
    import os
    import subprocess
    import sys

    photo("L").save(tmp_path / "in.png")
    env = {key: value for key, value in os.environ.items() if key != "TF_CPP_MIN_LOG_LEVEL"}
    env["TF_ENABLE_ONEDNN_OPTS"] = "1"  # TensorFlow announces oneDNN on every CPU then, not only on those it turns it on for by itself
    command = [sys.executable, "-m", "denoise.cli", str(tmp_path / "in.png"), "-o", str(tmp_path / "out.png"), "--model", gray_model]
    result = subprocess.run(command, capture_output=True, text=True, env=env)
    assert result.returncode == 0 and result.stderr == "", result.stderr
    assert result.stdout.startswith("done 1, skipped 0, failed 0")
    verbose = subprocess.run(command + ["--overwrite", "--verbose"], capture_output=True, text=True, env=env)
    assert verbose.returncode == 0 and "oneDNN" in verbose.stderr  # the control: the chatter exists, and --verbose shows it
