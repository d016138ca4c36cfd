"""End to end: the real `dvc repro` on tiny settings in a temporary copy of the repository."""

import json

import pytest
import yaml

from tiny_repo import dvc, make_repo, stages_run, write_params


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    return make_repo(tmp_path_factory.mktemp("pipeline") / "repo")


@pytest.fixture(scope="module")
def first_run(repo):
    return dvc(repo, "repro")


def test_repro_runs_every_stage_and_writes_metrics(repo, first_run):
    assert set(stages_run(first_run)) == {"prepare", "noise", "split", "baseline", "train", "train_reference", "export", "evaluate"}
    assert (repo / "models" / "export" / "model.onnx").is_file() and (repo / "models" / "export" / "model.onnx.json").is_file()
    metrics = json.loads((repo / "eval" / "metrics.json").read_text())
    assert metrics["baseline_method"] == "nlm"
    assert set(metrics["test"]) == {"sigma_15", "sigma_50"}
    for group in metrics["test"].values():
        assert set(group) == {"noisy", "baseline", "reference", "model"}
    test = metrics["test"]
    assert test["sigma_15"]["noisy"]["psnr"] > test["sigma_50"]["noisy"]["psnr"]
    assert test["sigma_50"]["baseline"]["psnr"] > test["sigma_50"]["noisy"]["psnr"]
    assert 0 < metrics["train_sample"]["sigma_15"]["model"]["ssim"] <= 1
    assert len(list((repo / "eval" / "compare").glob("*.png"))) == 2
    assert (repo / "models" / "model.keras").is_file() and (repo / "dvclive" / "train" / "plots" / "metrics" / "eval" / "psnr.tsv").is_file()
    shown = dvc(repo, "metrics", "show")
    assert "test.sigma_50.model.psnr" in shown


def test_second_repro_does_nothing(repo, first_run):
    output = dvc(repo, "repro")
    assert stages_run(output) == []
    assert "up to date" in output


def test_evaluate_param_reruns_only_evaluate(repo, first_run):
    write_params(repo, evaluate={"compare_images": 2})
    assert stages_run(dvc(repo, "repro")) == ["evaluate"]


def test_forced_rerun_is_byte_identical(repo, first_run):
    """A forced rerun leaves dvc.lock as it was: every stage's outputs, models and export included, are the same
    bytes. Only the training time differs, in checkpoints/*/time.json, which .dvcignore keeps out of the hashes."""
    lock = (repo / "dvc.lock").read_text()
    outs = {out["path"] for stage in yaml.safe_load(lock)["stages"].values() for out in stage["outs"]}
    assert {"models/model.keras", "models/reference.keras", "models/export", "checkpoints/train"} <= outs
    timing = repo / "checkpoints" / "train" / "time.json"
    metrics, timed = (repo / "eval" / "metrics.json").read_text(), timing.stat().st_mtime_ns
    dvc(repo, "repro", "--force")
    assert (repo / "dvc.lock").read_text() == lock
    assert (repo / "eval" / "metrics.json").read_text() == metrics
    assert timing.stat().st_mtime_ns != timed  # written again, and out of the hash
