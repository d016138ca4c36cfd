"""One training loop under either Keras backend: the same batches, no TensorFlow under JAX, and the train
stage run where neither TensorFlow nor DVCLive is installed, then recorded here with `dvc commit`."""

import hashlib
import json
import shutil
import subprocess
import sys

import pytest
import yaml

from tiny_repo import ROOT, dvc, env, make_repo, run, stages_run, write_params

BATCHES = """
import hashlib, json, sys
import keras, numpy as np
sys.path.insert(0, sys.argv[1])
from denoise.config import Levels, NoiseConfig, SamplingConfig, TrainConfig
from denoise.sampling import Batches, PatchSampler
from denoise.storage import Stack
rng = np.random.default_rng(0)
clean = Stack([{"name": str(k)} for k in range(3)], [rng.random((40 + 8 * k, 48, 1), np.float32) for k in range(3)])
config = TrainConfig(sampling=SamplingConfig(batch_size=4, patch_size=16, fresh_levels=Levels(low=0.0, high=55.0)), epochs=2, steps_per_epoch=3)
digest = hashlib.sha256()
for noisy, target in Batches(PatchSampler(clean, clean, config, NoiseConfig()), 0, 6):
    digest.update(noisy.tobytes() + target.tobytes())
print(json.dumps([keras.backend.backend(), digest.hexdigest()]))
"""

# Run a script as if TensorFlow (and, where asked, DVCLive) were not installed: importing them fails.
WITHOUT = """
import runpy, sys
for name in sys.argv[1].split(","):
    sys.modules[name] = None
sys.argv = sys.argv[2:]
runpy.run_path(sys.argv[0], run_name="__main__")
"""


def test_the_batches_are_the_same_arrays_under_either_backend():
    seen = {}
    for backend in ("tensorflow", "jax"):
        result = subprocess.run([sys.executable, "-c", BATCHES, str(ROOT / "src")], env={**env(), "KERAS_BACKEND": backend},
                                capture_output=True, text=True)
        assert result.returncode == 0, result.stderr[-2000:]
        name, digest = json.loads(result.stdout.splitlines()[-1])
        seen[name] = digest
    assert set(seen) == {"tensorflow", "jax"} and len(set(seen.values())) == 1


def test_a_conflicting_keras_backend_is_refused_in_one_line(tmp_path):
    repo = make_repo(tmp_path / "repo")
    result = subprocess.run([sys.executable, "stages/train.py", "train"], cwd=repo, capture_output=True, text=True,
                            env={**env(), "KERAS_BACKEND": "jax", "PYTHONPATH": "src"})
    assert result.returncode == 2
    assert result.stderr.strip() == "error: train.backend: tensorflow, but KERAS_BACKEND=jax; unset KERAS_BACKEND or set train.backend: jax"


def test_train_stage_under_jax_without_tensorflow_dvc_or_dvclive_then_recorded_with_dvc_commit(tmp_path):
    """The accelerator-machine path of docs/accelerators.md, on CPU JAX: bench/remote_train.sh makes the split
    and trains (2 batch workers, train.workers) where TensorFlow and DVCLive are unimportable; its split is
    the one `dvc repro split` made here, byte for byte; here --log-only writes the DVCLive files, `dvc commit
    train` records the run, and `dvc repro` evaluates the model without training it again."""
    repo = make_repo(tmp_path / "repo", train={"backend": "jax", "workers": 2}, reference={"backend": "tensorflow", "devices": "auto", "workers": 1})
    write_params(repo, data={"source": str(repo / "data" / "sample.txt")})  # the image list at a path the scratch folder sees
    dvc(repo, "repro", "split")
    shim = tmp_path / "bin" / "python3"  # a python3 without TensorFlow or DVCLive, as on the accelerator machine
    shim.parent.mkdir()
    shim.write_text(f'#!/bin/sh\nexec "{sys.executable}" -c "$WITHOUT" tensorflow,dvclive "$@"\n')
    shim.chmod(0o755)
    out = tmp_path / "out"
    out.mkdir()
    result = subprocess.run([str(ROOT / "bench" / "remote_train.sh"), str(repo / "params.yaml"), str(out), "5"], capture_output=True, text=True,
                            env={**env(), "PATH": f"{shim.parent}:{env()['PATH']}", "WITHOUT": WITHOUT})
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert "(jax, float32, 1 device(s))" in result.stdout
    here = subprocess.run("find train val -type f | sort | xargs md5sum", shell=True, cwd=repo / "data" / "split", capture_output=True, text=True)
    assert (out / "split.md5").read_text() == here.stdout and "train/clean/index.json" in here.stdout
    (repo / "models").mkdir(exist_ok=True)
    (repo / "checkpoints" / "train").mkdir(parents=True, exist_ok=True)
    shutil.copyfile(out / "model.keras", repo / "models" / "model.keras")
    shutil.copyfile(out / "state.json", repo / "checkpoints" / "train" / "state.json")
    state = json.loads((repo / "checkpoints" / "train" / "state.json").read_text())
    assert state["backend"] == "jax" and len(state["history"]) == 2 and not (repo / "dvclive" / "train").exists()
    model = hashlib.sha256((repo / "models" / "model.keras").read_bytes()).hexdigest()
    run(repo, sys.executable, "stages/train.py", "train", "--log-only", env_extra={"PYTHONPATH": "src"})
    assert (repo / "dvclive" / "train" / "plots" / "metrics" / "eval" / "psnr.tsv").read_text().count("\n") == 3
    dvc(repo, "commit", "--force", "train")
    output = dvc(repo, "repro")
    assert "train" not in stages_run(output) and {"train_reference", "evaluate"} <= set(stages_run(output))
    assert hashlib.sha256((repo / "models" / "model.keras").read_bytes()).hexdigest() == model
    assert "test.sigma_15.model.psnr" in dvc(repo, "metrics", "show")
    lock = yaml.safe_load((repo / "dvc.lock").read_text())["stages"]["train"]
    assert lock["params"]["params.yaml"]["train"]["backend"] == "jax"
    write_params(repo, train={"backend": "tensorflow"})  # a change of backend is a change of params: train runs again
    assert "train:" in dvc(repo, "status").split()


def histories(repo, section="train"):
    return [entry["loss"] for entry in json.loads((repo / "checkpoints" / section / "state.json").read_text())["history"]]


@pytest.fixture(scope="module")
def jax_repo(tmp_path_factory):
    """A tiny pipeline training under JAX on one device, run once: (repo, its loss history)."""
    repo = make_repo(tmp_path_factory.mktemp("jax") / "repo", train={"backend": "jax", "devices": 1},
                     reference={"backend": "tensorflow", "devices": "auto"})
    run(repo, sys.executable, "-m", "dvc", "repro", "train")
    return repo, histories(repo)


def test_two_devices_train_the_tiny_pipeline_to_the_same_loss_curve_as_one(jax_repo):
    """XLA's host platform split into 2 CPU devices: train.devices 2 shares each batch between them (Keras's
    DataParallel); the global batch is the same, so the losses are the same within float tolerance."""
    repo, one = jax_repo
    two_devices = {"XLA_FLAGS": "--xla_force_host_platform_device_count=2"}
    write_params(repo, train={"devices": 2})
    output = run(repo, sys.executable, "-m", "dvc", "repro", "train", env_extra=two_devices)
    assert stages_run(output) == ["train"] and "2 device(s)" in output
    assert len(one) == 2 and histories(repo) == pytest.approx(one, rel=1e-4)
    write_params(repo, train={"devices": 3})
    result = subprocess.run([sys.executable, "stages/train.py"], cwd=repo, capture_output=True, text=True,
                            env={**env(), **two_devices, "PYTHONPATH": "src"})
    assert result.returncode == 2 and result.stderr.strip().startswith("error: train.devices: 3, but 2 device(s) here")


def test_two_processes_joined_by_jax_distributed_train_one_model(jax_repo):
    """Multi-host data parallelism on one machine: two processes, one CPU device each, joined by
    jax.distributed (gloo collectives) from KERAS_DISTRIBUTION_* variables, each feeding half of every batch.
    They train one model, whose losses match a single process's; process 0 alone writes the outputs."""
    repo, single = jax_repo
    write_params(repo, train={"devices": "auto"})
    (repo / "models" / "model.keras").unlink(missing_ok=True)
    port = 23000 + (hash(str(repo)) % 2000)
    cluster = {"PYTHONPATH": "src", "KERAS_DISTRIBUTION_JOB_ADDRESSES": f"localhost:{port},localhost:{port + 1}",
               "KERAS_DISTRIBUTION_NUM_PROCESSES": "2"}
    workers = [subprocess.Popen([sys.executable, "stages/train.py", "train"], cwd=repo, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                text=True, env={**env(), **cluster, "KERAS_DISTRIBUTION_PROCESS_ID": str(k)}) for k in range(2)]
    outputs = [worker.communicate(timeout=300)[0] for worker in workers]
    assert [worker.returncode for worker in workers] == [0, 0], "\n".join(o[-2000:] for o in outputs)
    assert all("2 device(s)" in output for output in outputs)
    assert (repo / "models" / "model.keras").is_file() and histories(repo) == pytest.approx(single, rel=1e-4)
