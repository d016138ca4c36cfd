from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from denoise import images
from denoise.config import DataConfig, Levels, NoiseConfig, TrainConfig
from denoise.datasets import assign_split, load_split, prepare, prepare_test_sets, source_files, write_split
from denoise.errors import ConfigError
from denoise.noise import add_noise_to_stack
from denoise.patches import patch_batches

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


def test_patch_batches_are_a_function_of_the_step_number(tmp_path):
    write_photos(tmp_path, 3, size=(50, 40))
    clean, _ = prepare(str(tmp_path), DataConfig(source=str(tmp_path), channels=1))
    noise = NoiseConfig()
    config = TrainConfig(batch_size=4, patch_size=16)
    whole = list(patch_batches(clean, add_noise_to_stack(clean, noise), config, noise, 0, 4))
    resumed = list(patch_batches(clean, add_noise_to_stack(clean, noise), config, noise, 2, 2))
    noisy, target = whole[0]
    assert noisy.shape == target.shape == (4, 16, 16, 1)
    assert 10 < (noisy - target).numpy().std() * 255 < 40
    for (a, b), (c, d) in zip(whole[2:], resumed):
        np.testing.assert_array_equal(a, c)
        np.testing.assert_array_equal(b, d)
    assert not np.array_equal(whole[0][0], whole[1][0])


def test_stored_noise_pairs_crop_the_same_place(tmp_path):
    write_photos(tmp_path, 2, size=(50, 40))
    clean, _ = prepare(str(tmp_path), DataConfig(source=str(tmp_path), channels=1))
    noise = NoiseConfig(sigma=Levels(values=(0.0,)))  # zero noise: input must equal target exactly
    batches = patch_batches(clean, add_noise_to_stack(clean, noise), TrainConfig(batch_size=8, patch_size=16, fresh_noise=False), noise, 0, 2)
    for noisy, target in batches:
        np.testing.assert_allclose(noisy, target, atol=1e-6)


def test_noise_weighting_gives_quieter_patches_more_weight(tmp_path):
    write_photos(tmp_path, 3, size=(50, 40))
    clean, _ = prepare(str(tmp_path), DataConfig(source=str(tmp_path), channels=1))
    noise = NoiseConfig()
    config = TrainConfig(batch_size=16, patch_size=16, weight_by_noise=True, fresh_levels=Levels(low=0.0, high=55.0))
    noisy, target, weight = next(iter(patch_batches(clean, clean, config, noise, 0, 1)))
    weight = weight.numpy().reshape(-1)
    noise_std = (noisy - target).numpy().std(axis=(1, 2, 3))
    order = np.argsort(noise_std)
    assert noise_std[order[-1]] > 3 * noise_std[order[0]]
    assert np.all(np.diff(weight[order]) < 0)  # strictly falling as the noise grows
    np.testing.assert_allclose(weight * (noise_std * 255 + 25 / 6), 25, rtol=1e-3)  # 1 at σ 25


def test_patch_candidates_prefer_textured_patches_and_keep_pairs_aligned(tmp_path):
    rng = np.random.default_rng(1)
    half_flat = np.full((64, 64), 128, np.uint8)
    half_flat[:, 32:] = rng.integers(0, 255, (64, 32), dtype=np.uint8)  # left half flat, right half texture
    Image.fromarray(half_flat).save(tmp_path / "half.png")
    clean, _ = prepare(str(tmp_path), DataConfig(source=str(tmp_path), channels=1))

    def texture(candidates):
        config = TrainConfig(batch_size=8, patch_size=16, patch_candidates=candidates)
        targets = np.concatenate([target for _, target in patch_batches(clean, clean, config, NoiseConfig(), 0, 20)])
        return np.abs(np.diff(targets, axis=2)).mean()

    assert texture(4) > 1.3 * texture(1)
    noise = NoiseConfig(sigma=Levels(values=(0.0,)))
    config = TrainConfig(batch_size=8, patch_size=16, fresh_noise=False, patch_candidates=3)
    for noisy, target in patch_batches(clean, add_noise_to_stack(clean, noise), config, noise, 0, 2):
        assert target.shape == (8, 16, 16, 1)
        np.testing.assert_allclose(noisy, target, atol=1e-6)


def test_rescaled_copies_make_texture_finer(tmp_path):
    columns = np.arange(96)
    stripes = (127.5 + 100 * np.sin(2 * np.pi * columns / 16))[None, :].repeat(96, 0).astype(np.uint8)  # period 16 px
    Image.fromarray(stripes).save(tmp_path / "stripes.png")
    clean, _ = prepare(str(tmp_path), DataConfig(source=str(tmp_path), channels=1))

    def texture(scales):
        config = TrainConfig(batch_size=8, patch_size=16, augment=False, scales=scales)
        targets = np.concatenate([target for _, target in patch_batches(clean, clean, config, NoiseConfig(), 0, 10)])
        return np.abs(np.diff(targets, axis=2)).mean()

    assert texture((0.5,)) > 1.7 * texture((1.0,))  # half the size: stripes of period 8, twice as steep
    assert texture((1.0, 0.5)) > 1.2 * texture((1.0,))  # both: patches from either
    with pytest.raises(ConfigError, match="train.patch_size: 64 is larger than every training image"):
        patch_batches(clean, clean, TrainConfig(batch_size=8, patch_size=64, scales=(0.5,)), NoiseConfig(), 0, 1)
