"""Helpers for tests that run the real DVC pipeline in a temporary copy of the repository."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

from denoise.config import deep_merge

ROOT = Path(__file__).resolve().parents[1]
TINY = {
    "data": {"max_side": 64},
    "noise": {"sigma": [15, 50]},
    "baseline": {"method": "nlm"},
    "train": {"model": {"depth": 3, "width": 8}, "epochs": 2, "steps_per_epoch": 4, "sampling": {"batch_size": 4, "patch_size": 24},
              "final": {"epochs": 1, "loss": "psnr", "patch_size": 32, "batch_size": 2}},
    "reference": {"epochs": 1, "steps_per_epoch": 3, "sampling": {"batch_size": 4, "patch_size": 24}, "final": {"epochs": 0}},
    "evaluate": {"train_sample": 2, "compare_images": 1},
    "export": {"formats": ["onnx"]},
}
COPIED = ("stages", "src", ".dvc", "dvc.yaml", "params.yaml", ".dvcignore", ".gitignore", "data/sample.txt", "data/.gitignore",
          "Makefile", "pyproject.toml", "requirements.lock", "requirements-bm3d.lock")


def env():
    return {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}", "TF_CPP_MIN_LOG_LEVEL": "3",
            "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t"}


def run(cwd, *args, check=True, env_extra=None):
    result = subprocess.run(args, cwd=cwd, env={**env(), **(env_extra or {})}, capture_output=True, text=True)
    if check:
        assert result.returncode == 0, f"{args}\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result.stdout


def dvc(cwd, *args):
    return run(cwd, sys.executable, "-m", "dvc", *args)


def stages_run(output):
    return [line.split("'")[1] for line in output.splitlines() if line.startswith("Running stage")]


def write_params(repo, **changes):
    """Apply `changes` ({section: {key: value}}, nested groups merged key by key) to the repo's params.yaml."""
    params = deep_merge(yaml.safe_load((repo / "params.yaml").read_text()), changes)
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


def commit(repo, message):
    run(repo, "git", "add", "-A")
    run(repo, "git", "commit", "-qm", message)


def make_repo(path: Path, **changes) -> Path:
    """A git repository holding a copy of the project with tiny params (plus `changes`), committed.
    The project's .venv is linked in, so `make` targets run without installing anything."""
    path.mkdir(parents=True, exist_ok=True)
    for name in COPIED:
        source, target = ROOT / name, path / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.is_dir():
            shutil.copytree(source, target, ignore=shutil.ignore_patterns("__pycache__", "tmp", "cache", "config.local"))
        else:
            shutil.copy2(source, target)
    (path / ".venv").symlink_to(ROOT / ".venv")
    write_params(path, **TINY)
    write_params(path, **changes)
    run(path, "git", "init", "-q", "-b", "main")
    commit(path, "tiny pipeline")
    return path


def make(repo, *args):
    """Run a make target in a tiny repo without (re)installing into the project's linked .venv."""
    return run(repo, "make", "-o", ".venv/.installed", "-o", ".venv/.installed-bm3d", *args)
