from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from denoise import images
from denoise.config import DataConfig, Levels, NoiseConfig
from denoise.datasets import assign_split, load_split, prepare, prepare_stack, prepare_test_sets, source_files, write_split
from denoise.storage import load_stack
from denoise.errors import ConfigError
from denoise.noise import add_noise_to_stack

ROOT = Path(__file__).resolve().parents[1]


def write_photos(folder, count, size=(40, 30)):
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for k in range(count):
        Image.fromarray(rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)).save(folder / f"img{k:02d}.png")


def test_prepare_skips_undecodable_files_and_lists_them(tmp_path):
    write_photos(tmp_path, 3)
    (tmp_path / "broken.jpg").write_bytes(b"not a jpeg")
    stack, skipped = prepare(str(tmp_path), DataConfig(source=str(tmp_path), channels=1, max_side=None))
    assert [e["name"] for e in stack.entries] == ["img00.png", "img01.png", "img02.png"]
    assert stack.images[0].shape == (30, 40, 1) and len(stack.entries[0]["sha256"]) == 64
    assert [item["name"] for item in skipped] == ["broken.jpg"]
    assert skipped[0]["reason"].startswith("cannot decode image")


def test_bundled_photo_list_ships_with_the_install(tmp_path):
    folder, files = source_files(str(ROOT / "data" / "sample.txt"))
    assert len(files) == 16 and all(f.is_file() for f in files) and folder == images.sample_folder()
    (tmp_path / "list.txt").write_text("camera.png  # a comment\n\nnot_there.png\n")
    with pytest.raises(ConfigError, match="data.source: .* lists 'not_there.png', which scikit-image does not ship"):
        source_files(str(tmp_path / "list.txt"))


def test_pattern_keeps_only_matching_files_of_the_training_source(tmp_path):
    """data.pattern: the noisy half of a folder of noisy/reference pairs (PolyU's *_real / *_mean), say;
    the stage writes nothing when nothing matches, and test sets are never filtered."""
    write_photos(tmp_path / "pairs", 2)
    for k in range(2):
        (tmp_path / "pairs" / f"img{k:02d}.png").rename(tmp_path / "pairs" / f"shot{k}_real.png")
    write_photos(tmp_path / "refs", 2)
    for k in range(2):
        (tmp_path / "refs" / f"img{k:02d}.png").rename(tmp_path / "pairs" / f"shot{k}_mean.png")
    config = DataConfig(source=str(tmp_path / "pairs"), pattern="*_real.*", max_side=None)
    stack, _ = prepare(config.source, config)
    assert [e["name"] for e in stack.entries] == ["shot0_real.png", "shot1_real.png"]
    count, _ = prepare_stack(tmp_path / "out", config.source, config, processes=1)
    assert count == 2 and len(load_stack(tmp_path / "out").entries) == 2
    assert len(prepare(config.source, config, key="split.test_source")[0].entries) == 4
    with pytest.raises(ConfigError, match=r"data.source: no usable images named '\*_noisy.\*' in"):
        prepare_stack(tmp_path / "none", config.source, DataConfig(source=config.source, pattern="*_noisy.*"), processes=1)
    assert not (tmp_path / "none").exists()


def test_no_usable_images_is_an_error(tmp_path):
    (tmp_path / "broken.png").write_bytes(b"")
    with pytest.raises(ConfigError, match="data.source: no usable images"):
        prepare(str(tmp_path), DataConfig(source=str(tmp_path)))


@pytest.mark.parametrize("count", [3, 16, 101])
def test_split_is_disjoint_complete_and_seeded(count):
    names = [f"n{k}" for k in range(count)]
    parts = assign_split(names, 0.2, 0.1, seed=3)
    assert sorted(parts) == sorted(names)
    assert {"train", "val", "test"} == set(parts.values())
    assert parts == assign_split(list(reversed(names)), 0.2, 0.1, seed=3)
    if count > 20:
        assert abs(list(parts.values()).count("test") - 0.2 * count) <= 1


def test_split_keeps_every_noisy_copy_with_its_image(tmp_path):
    write_photos(tmp_path, 6)
    clean, _ = prepare(str(tmp_path), DataConfig(source=str(tmp_path), channels=1))
    noisy = add_noise_to_stack(clean, NoiseConfig(sigma=Levels(values=(15.0, 50.0))))
    parts = assign_split([e["name"] for e in clean.entries], 0.2, 0.1, 0)
    write_split(tmp_path / "split", clean, noisy, parts, None)
    seen = set()
    for part in ("train", "val", "test"):
        part_clean, part_noisy = load_split(tmp_path / "split", part)
        names = {e["name"] for e in part_clean.entries}
        assert {e["name"] for e in part_noisy.entries} == names and len(part_noisy) == 2 * len(names)
        assert not names & seen
        seen |= names
    assert len(seen) == 6


def test_separate_test_sets_are_named_in_every_entry(tmp_path):
    write_photos(tmp_path / "bsd", 2)
    write_photos(tmp_path / "set", 1)
    clean, noisy = prepare_test_sets([str(tmp_path / "bsd"), str(tmp_path / "set")], DataConfig(channels=1), NoiseConfig(sigma=Levels(values=(15.0, 25.0))))
    assert [e["name"] for e in clean.entries] == ["bsd/img00.png", "bsd/img01.png", "set/img00.png"]
    assert [(e["set"], e["level"]) for e in noisy.entries] == [("bsd", 15.0), ("bsd", 25.0)] * 2 + [("set", 15.0), ("set", 25.0)]


def test_test_levels_give_the_test_folders_their_own_noise(tmp_path):
    """A blind self-supervised run: one training copy per image at a σ drawn from a range, the separate test
    folders at listed levels (split.test_levels), each test copy as it would be with those levels alone."""
    write_photos(tmp_path / "set", 2)
    blind = NoiseConfig(sigma=Levels(low=5.0, high=50.0))
    clean, noisy = prepare_test_sets([str(tmp_path / "set")], DataConfig(channels=1), blind.with_levels(Levels(values=(15.0, 50.0))))
    assert [(e["level"], e["group"]) for e in noisy.entries] == [(15.0, "15"), (50.0, "50")] * 2
    _, listed = prepare_test_sets([str(tmp_path / "set")], DataConfig(channels=1), NoiseConfig(sigma=Levels(values=(15.0, 50.0))))
    for a, b in zip(noisy.images, listed.images):
        np.testing.assert_array_equal(a, b)
    assert blind.with_levels(None) is blind
    training = add_noise_to_stack(clean.subset([0]), blind)
    assert len(training) == 1 and 5 <= training.entries[0]["level"] <= 50 and training.entries[0]["group"] == "5-50"


def test_prepare_stack_on_two_processes_equals_one_and_lists_skipped(tmp_path):
    write_photos(tmp_path / "photos", 5)
    (tmp_path / "photos" / "broken.jpg").write_bytes(b"not a jpeg")
    config = DataConfig(source=str(tmp_path / "photos"), channels=1, max_side=None)
    results = {n: prepare_stack(tmp_path / f"out{n}", config.source, config, processes=n) for n in (1, 2)}
    assert results[1] == results[2] and results[1][0] == 5 and [s["name"] for s in results[1][1]] == ["broken.jpg"]
    files = {n: {p.name: p.read_bytes() for p in (tmp_path / f"out{n}").iterdir()} for n in (1, 2)}
    assert files[1] == files[2]
    stack, _ = prepare(config.source, config)
    np.testing.assert_allclose(load_stack(tmp_path / "out2").images[3], stack.images[3], atol=0.5 / 65535)
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "broken.png").write_bytes(b"")
    with pytest.raises(ConfigError, match="data.source: no usable images"):
        prepare_stack(tmp_path / "out3", str(empty), config, processes=2)
    assert not (tmp_path / "out3").exists()
