"""What users pick DVC for: reports across commits, a remote to share results, queued experiments,
and new data re-running only what it must. All offline, in temporary git repositories."""

import json
import re
import sys
import time

import numpy as np
import pytest
import yaml
from PIL import Image

from tiny_repo import ROOT, commit, dvc, make, make_repo, run, stages_run, write_params

ALL_STAGES = {"prepare", "noise", "split", "baseline", "train", "train_reference", "export", "evaluate"}


def add_photos(folder, names, seed=0):
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for name in names:
        y, x = np.mgrid[0:48, 0:64]
        image = 120 + 80 * np.sin(x / rng.uniform(3, 9)) * np.cos(y / rng.uniform(3, 9)) + rng.normal(0, 3, (48, 64))
        Image.fromarray(np.clip(image, 0, 255).astype(np.uint8)).save(folder / name)


def table_rows(markdown):
    return [[cell.strip() for cell in line.strip("|").split("|")] for line in markdown.splitlines() if line.startswith("|")]


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    """Two commits of a tiny pipeline on a folder of photos: loss l1, then loss mse."""
    path = tmp_path_factory.mktemp("workflow") / "repo"
    add_photos(path / "photos", [f"p{k}.png" for k in range(6)])
    make_repo(path, data={"source": "photos"})
    assert set(stages_run(dvc(path, "repro"))) == ALL_STAGES
    commit(path, "l1 run")
    write_params(path, train={"loss": "mse"})
    assert sorted(stages_run(dvc(path, "repro"))) == ["evaluate", "export", "train"]
    commit(path, "mse run")
    return path


def test_report_shows_params_and_metric_changes(repo):
    make(repo, "report", "BASE=HEAD~1")
    report = (repo / "report.md").read_text()
    assert ["params.yaml", "train.loss", "l1", "mse"] in table_rows(report)
    old = json.loads(run(repo, "git", "show", "HEAD~1:eval/metrics.json"))
    new = json.loads((repo / "eval" / "metrics.json").read_text())
    before, after = old["test"]["sigma_50"]["model"]["psnr"], new["test"]["sigma_50"]["model"]["psnr"]
    row = next(cells for cells in table_rows(report) if cells[1] == "test.sigma_50.model.psnr")
    assert float(row[2]) == pytest.approx(before, abs=1e-3) and float(row[3]) == pytest.approx(after, abs=1e-3)
    assert float(row[4]) == pytest.approx(after - before, abs=2e-3)
    for image in ("curves.png", "psnr.png"):
        assert f"](report/{image})" in report and Image.open(repo / "report" / image).size[0] > 100
    strips = list((repo / "report").glob("p*_sigma*.png"))
    assert strips and Image.open(strips[0]).height > Image.open(repo / "eval" / "compare" / strips[0].name).height  # base above workspace


def test_report_against_a_base_without_metrics_says_so(repo):
    first = run(repo, "git", "rev-list", "--max-parents=0", "HEAD").strip()
    make(repo, "report", f"BASE={first}")
    assert "has no committed metrics" in (repo / "report.md").read_text()


def test_push_clone_then_retrain_has_nothing_to_do(repo, tmp_path):
    dvc(repo, "remote", "add", "-d", "local", str(tmp_path / "remote"))
    commit(repo, "remote")
    dvc(repo, "push")
    for name in ("denoiser", "denoiser-onnx"):  # a registry version: a GTO tag on the commit that made the model
        run(repo, "git", "tag", "-a", f"{name}@v0.1.0", "-m", f"register {name} v0.1.0")
    clone = tmp_path / "clone"
    run(tmp_path, "git", "clone", "-q", str(repo), str(clone))
    (clone / ".venv").symlink_to(ROOT / ".venv")
    output = make(clone, "retrain")  # what CI runs: pull, repro, push
    assert "dvc pull --run-cache" in output and stages_run(output) == []
    for path in ("models/model.keras", "models/reference.keras", "eval/metrics.json", "data/split/test/noisy/shard-00000.npy"):
        assert (clone / path).read_bytes() == (repo / path).read_bytes(), path
    # the model as a registry artifact (dvc.yaml artifacts:), its latest registered version fetched from the repository's remote
    dvc(tmp_path, "artifacts", "get", str(clone), "denoiser-onnx", "-o", str(tmp_path / "fetched.onnx"))
    dvc(tmp_path, "artifacts", "get", str(clone), "denoiser", "-o", str(tmp_path / "fetched.keras"))
    assert (tmp_path / "fetched.onnx").read_bytes() == (repo / "models" / "export" / "model.onnx").read_bytes()
    assert (tmp_path / "fetched.keras").read_bytes() == (repo / "models" / "model.keras").read_bytes()


def test_queued_grid_of_experiments(repo):
    dvc(repo, "exp", "run", "--queue", "-S", "train.loss=bce,l1", "-S", "train.model.width=4,8")
    dvc(repo, "queue", "start", "--jobs", "1")
    deadline = time.time() + 600
    while time.time() < deadline:
        status = dvc(repo, "queue", "status")
        if "Queued" not in status and "Running" not in status:
            break
        time.sleep(3)
    assert status.count("Success") == 4, status
    table = dvc(repo, "exp", "show", "--md", "--only-changed")
    rows = [line for line in table.splitlines() if "bce" in line or "l1" in line]
    assert len([r for r in rows if "bce" in r]) >= 2 and len([r for r in rows if "l1" in r]) >= 2, table


def test_new_image_reruns_prepare_and_everything_after_it(repo):
    add_photos(repo / "photos", ["p9.png"], seed=9)
    assert set(stages_run(dvc(repo, "repro"))) == ALL_STAGES
    write_params(repo, evaluate={"compare_images": 2})
    assert stages_run(dvc(repo, "repro")) == ["evaluate"]


def test_ci_workflow_lints_and_runs_project_commands_only():
    workflow = ROOT / ".github" / "workflows" / "retrain.yml"
    run(ROOT, sys.executable, "-m", "yamllint", "--strict", str(workflow), str(ROOT / "dvc.yaml"), str(ROOT / "params.yaml"))
    spec = yaml.safe_load(workflow.read_text())
    triggers = spec[True]  # YAML 1.1 reads the key `on` as true
    for event in ("push", "pull_request"):
        assert {"params.yaml", "dvc.yaml", "dvc.lock", "stages/**", "src/**"} <= set(triggers[event]["paths"])
    steps = spec["jobs"]["retrain"]["steps"]
    commands = [step["run"] for step in steps if "run" in step]
    assert commands and all(command.startswith("make ") for command in commands)
    targets = {word for command in commands for word in command.split()[1:] if re.fullmatch(r"[a-z][a-z-]*", word)}
    makefile = (ROOT / "Makefile").read_text()
    assert all(f"\n{target}:" in makefile for target in targets)
    assert {"retrain", "report"} <= targets  # both exercised by the tests above
    assert any(step.get("with", {}).get("fetch-depth") == 0 for step in steps)
