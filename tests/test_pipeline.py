"""End to end: the real `dvc repro` on tiny settings in a temporary copy of the repository."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
TINY = {
    "data": {"max_side": 64},
    "noise": {"sigma": [15, 50]},
    "baseline": {"method": "nlm"},
    "train": {"depth": 3, "width": 8, "epochs": 2, "steps_per_epoch": 4, "batch_size": 4, "patch_size": 24},
    "reference": {"epochs": 1, "steps_per_epoch": 3, "batch_size": 4, "patch_size": 24},
    "evaluate": {"train_sample": 2, "compare_images": 1},
}


def run(cwd, *args):
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}", "TF_CPP_MIN_LOG_LEVEL": "3"}
    result = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result.stdout


def dvc(cwd, *args):
    return run(cwd, sys.executable, "-m", "dvc", *args)


def stages_run(output):
    return [line.split("'")[1] for line in output.splitlines() if line.startswith("Running stage")]


def write_params(repo, **changes):
    params = yaml.safe_load((repo / "params.yaml").read_text())
    for section, values in changes.items():
        params[section].update(values)
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


def locked_outs(repo, stages):
    lock = yaml.safe_load((repo / "dvc.lock").read_text())["stages"]
    return {stage: lock[stage]["outs"] for stage in stages}


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    repo = tmp_path_factory.mktemp("pipeline")
    for name in ("stages", "src", ".dvc"):
        shutil.copytree(ROOT / name, repo / name, ignore=shutil.ignore_patterns("__pycache__", "tmp", "cache"))
    for name in ("dvc.yaml", "params.yaml", ".dvcignore", ".gitignore"):
        shutil.copy(ROOT / name, repo / name)
    write_params(repo, **TINY)
    run(repo, "git", "init", "-q")
    run(repo, "git", "add", "-A")
    run(repo, "git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "tiny")
    return repo


@pytest.fixture(scope="module")
def first_run(repo):
    return dvc(repo, "repro")


def test_repro_runs_every_stage_and_writes_metrics(repo, first_run):
    assert set(stages_run(first_run)) == {"prepare", "noise", "split", "baseline", "train", "train_reference", "evaluate"}
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
    data_stages = ("prepare", "noise", "split")
    before = locked_outs(repo, data_stages)
    metrics = (repo / "eval" / "metrics.json").read_text()
    dvc(repo, "repro", "--force")
    assert locked_outs(repo, data_stages) == before
    assert (repo / "eval" / "metrics.json").read_text() == metrics
