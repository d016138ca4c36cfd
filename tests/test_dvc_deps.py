"""dvc.yaml's code dependencies are complete by construction: every stage lists exactly the package modules
its script imports (transitively, lazy imports too), so a change to any of them re-runs the stage."""

import re

import pytest
import sys

import yaml

from imports import ROOT, package_modules

sys.path.insert(0, str(ROOT / "bench"))
STAGES = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]


def script_of(stage: dict) -> str:
    found = re.findall(r"\bstages/\w+\.py\b", stage["cmd"])
    assert len(found) == 1, f"cmd {stage['cmd']!r} should run one stages/*.py script"
    return found[0]


def code_deps(stage: dict) -> set[str]:
    return {dep for dep in stage.get("deps", []) if isinstance(dep, str) and dep.startswith(("stages/", "src/"))}


@pytest.mark.parametrize("name", sorted(STAGES))
def test_stage_lists_exactly_the_code_it_runs(name):
    stage = STAGES[name]
    script = script_of(stage)
    needed = {script} | {f"src/denoise/{module}.py" for module in package_modules(ROOT / script)}
    listed = code_deps(stage)
    missing, unused = sorted(needed - listed), sorted(listed - needed)
    assert not missing, f"stage {name}: dvc.yaml misses {', '.join(missing)}, which {script} imports (python tests/imports.py rewrites the lists)"
    assert not unused, f"stage {name}: dvc.yaml lists {', '.join(unused)}, which {script} does not import"


def test_the_check_follows_lazy_and_relative_imports():
    """The evaluate stage reaches models.py only through inference.py, and datasets.py imports noise.py
    inside a function: both must count."""
    evaluate = package_modules(ROOT / "stages" / "evaluate.py")
    assert {"evaluation", "inference", "models", "metrics", "images", "storage", "config", "errors"} <= evaluate
    assert "noise" in package_modules(ROOT / "stages" / "prepare.py")
    assert "training" not in evaluate and "cli" not in evaluate


def leaves(tree: dict, prefix: str = "") -> set[str]:
    found = set()
    for key, value in tree.items():
        path = f"{prefix}{key}"
        found |= leaves(value, path + ".") if isinstance(value, dict) and key != "fresh_levels" else {path}
    return found


def params_files():
    import run_bench  # bench/: applies a preset over params.yaml as `make bench` does

    base = yaml.safe_load((ROOT / "params.yaml").read_text())
    yield "params.yaml", base
    for preset in sorted((ROOT / "bench").glob("preset*.yaml")):
        yield preset.name, run_bench.merge(yaml.safe_load((ROOT / "params.yaml").read_text()), yaml.safe_load(preset.read_text()), ROOT)


@pytest.mark.parametrize("name, params", list(params_files()), ids=lambda value: value if isinstance(value, str) else "")
def test_train_reference_depends_on_every_train_key_the_reference_inherits(name, params):
    """`reference` states only how it differs from `train`; whatever it does not state comes from `train`, so
    the train_reference stage must list those train keys among its params, or a change to them leaves it stale."""
    from denoise.config import reference_params

    merged = reference_params(params["train"], params["reference"])
    inherited = {key for key in leaves(params["train"]) if key in leaves(merged) and key not in leaves(params["reference"])
                 and _get(merged, key) == _get(params["train"], key)}
    listed = [entry for entry in STAGES["train_reference"]["params"] if isinstance(entry, str) and entry.startswith("train.")]
    uncovered = sorted(f"train.{key}" for key in inherited if not any(f"train.{key}" == e or f"train.{key}".startswith(e + ".") for e in listed))
    assert not uncovered, f"{name}: the reference inherits {', '.join(uncovered)}; add them to train_reference's params in dvc.yaml"


def _get(tree: dict, key: str):
    for part in key.split("."):
        tree = tree[part]
    return tree
