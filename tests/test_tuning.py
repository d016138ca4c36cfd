"""make tune: an Optuna study whose trials are DVC experiments, pruned by the train stage's own per-epoch
validation PSNR, resumable, and joinable by other processes through the study's storage."""

import subprocess
import sys
import time

import optuna
import pytest
import yaml

from denoise import tuning
from denoise.errors import ConfigError
from denoise.trials import open_storage
from tiny_repo import ROOT, commit, dvc, make_repo, run

SPACE = {"fixed": {"train.epochs": 3, "train.final.epochs": 0},
         "search": {"train.optimizer.learning_rate": {"low": 0.0001, "high": 0.01, "log": True}, "train.sampling.batch_size": [2, 4]},
         "pruner_warmup_epochs": 0}


def write_space(path, space=SPACE):
    path.write_text(yaml.safe_dump(space))
    return path


@pytest.mark.parametrize("space, message", [
    ({"search": {"train.nope": [1, 2]}}, r"train\.nope: not a key of"),
    ({"search": {"train.epochs": {"low": 5, "high": 2}}}, r"train\.epochs: needs numbers low < high"),
    ({"search": {"train.optimizer.learning_rate": {"low": 0, "high": 1, "log": True}}}, r"low > 0 \(log scale\)"),
    ({"search": {"train.loss": {"choices": []}}}, r"train\.loss\.choices: expected a non-empty list"),
    ({"fixed": {"train.epochs": 2}}, r"expected a non-empty `search:` mapping"),
])
def test_search_space_errors_name_the_file_and_key(tmp_path, space, message):
    with pytest.raises(ConfigError, match=rf"space\.yaml: .*{message}"):
        tuning.load_space(write_space(tmp_path / "space.yaml", space), ROOT / "params.yaml")


def test_space_and_overrides(tmp_path):
    space = tuning.load_space(write_space(tmp_path / "space.yaml"), ROOT / "params.yaml")
    assert [d.key for d in space.dimensions] == ["train.optimizer.learning_rate", "train.sampling.batch_size"]
    assert space.dimensions[0].log and space.dimensions[1].choices == (2, 4)
    assert tuning.current_values(space, ROOT / "params.yaml") is None  # params.yaml's batch size, 8, is not among [2, 4]
    wider = tuning.load_space(write_space(tmp_path / "wider.yaml", {**SPACE, "search": {**SPACE["search"], "train.sampling.batch_size": [4, 8]}}),
                              ROOT / "params.yaml")
    assert tuning.current_values(wider, ROOT / "params.yaml") == {"train.optimizer.learning_rate": 0.001, "train.sampling.batch_size": 8}
    assert tuning.overrides({"train.epochs": 3, "train.loss": "l1", "train.optimizer.learning_rate": 0.0005}) == [
        "-S", "train.epochs=3", "-S", "train.loss=l1", "-S", "train.optimizer.learning_rate=0.0005"]


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    path = make_repo(tmp_path_factory.mktemp("tune") / "repo")
    dvc(path, "repro")
    commit(path, "a first run")
    write_space(path / "space.yaml")
    return path


def tune(repo, *args):
    return run(repo, sys.executable, "-m", "denoise.tuning", "--space", "space.yaml", "--storage", ".optuna/journal.log", *args)


def study(repo, name="tune"):
    return optuna.load_study(study_name=name, storage=open_storage(str(repo / ".optuna/journal.log")))


def experiments(repo):
    return set(dvc(repo, "exp", "list", "--name-only").split())


def test_four_trials_two_at_a_time_are_four_experiments_then_the_study_resumes(repo):
    tune(repo, "--trials", "4", "--workers", "2")
    names = experiments(repo)
    assert {name.removesuffix("-pruned") for name in names} == {f"tune-{k}" for k in range(4)}, names
    trials = study(repo).trials
    assert all(t.state.name in ("COMPLETE", "PRUNED") for t in trials) and len(trials) == 4
    # the train stage reported each epoch's validation PSNR to its trial; a pruned one stopped early
    for trial in trials:
        assert trial.intermediate_values and (trial.state.name == "PRUNED") == (len(trial.intermediate_values) < 3)
        assert (f"tune-{trial.number}-pruned" in names) == (trial.state.name == "PRUNED")
        assert trial.user_attrs["train_minutes"] > 0  # what its training took, from the experiment's state.json
    shown = dvc(repo, "exp", "show", "--md", "--only-changed")
    assert all(f"[{name}]" in shown for name in names) and "learning_rate" in shown
    shown = tune(repo, "--show")
    assert all(f"| tune-{t.number} | {t.state.name.lower()} |" in shown for t in trials)
    best = study(repo).best_trial
    assert best.value == max(t.value for t in trials if t.state.name == "COMPLETE")

    tune(repo, "--trials", "5")  # resumed: one more, not a repeat of the first proposals
    trials = study(repo).trials
    assert len(trials) == 5 and len(experiments(repo)) == 5
    assert trials[4].params not in [t.params for t in trials[:4]]

    dvc(repo, "exp", "apply", study(repo).best_trial.user_attrs["experiment"])
    applied = yaml.safe_load((repo / "params.yaml").read_text())
    assert applied["train"]["optimizer"]["learning_rate"] == pytest.approx(study(repo).best_trial.params["train.optimizer.learning_rate"])
    run(repo, "git", "checkout", "--", ".")


def test_two_processes_in_two_clones_join_one_study(repo, tmp_path):
    """As two machines would: each its own clone (sharing the first's DVC cache here), one journal file."""
    clones = []
    for name in ("a", "b"):
        clone = tmp_path / name
        run(tmp_path, "git", "clone", "-q", str(repo), str(clone))
        dvc(clone, "cache", "dir", "--local", str(repo / ".dvc" / "cache"))
        dvc(clone, "checkout")
        (clone / ".venv").symlink_to(ROOT / ".venv")
        write_space(clone / "space.yaml")
        clones.append(clone)
    journal = str(tmp_path / "shared.log")
    command = [sys.executable, "-m", "denoise.tuning", "--space", "space.yaml", "--storage", journal, "--study", "joint", "--trials", "3"]
    processes = [subprocess.Popen([*command, "--seed", str(k)], cwd=clone, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
                 for k, clone in enumerate(clones)]
    outputs = [p.communicate(timeout=900)[0] for p in processes]
    assert all(p.returncode == 0 for p in processes), outputs
    joint = optuna.load_study(study_name="joint", storage=open_storage(journal))
    finished = [t for t in joint.trials if t.state.name in ("COMPLETE", "PRUNED")]
    assert len(finished) >= 3 and len(finished) == len(joint.trials)
    assert len({t.user_attrs["owner"] for t in joint.trials}) == 2  # both processes ran trials of the one study
    listed = [{n.removesuffix("-pruned") for n in experiments(clone)} for clone in clones]
    assert listed[0] | listed[1] == {t.user_attrs["experiment"] for t in joint.trials} and not listed[0] & listed[1]


def test_a_batch_of_failed_trials_stops_the_study_with_where_to_look(repo):
    write_space(repo / "bad.yaml", {"fixed": {"train.epochs": 1}, "search": {"train.sampling.patch_size": [20]}})  # not a multiple of 8
    result = subprocess.run([sys.executable, "-m", "denoise.tuning", "--space", "bad.yaml", "--storage", ".optuna/journal.log", "--study", "bad",
                             "--trials", "3"], cwd=repo, capture_output=True, text=True)
    assert result.returncode != 0 and "every trial of the last batch failed (bad-0); `dvc queue logs bad-0` shows why" in result.stderr
    assert [t.state.name for t in study(repo, "bad").trials] == ["FAIL"]


def test_an_interrupted_study_resumes(repo):
    """The tuner killed while its trial trains (a closed laptop, a lost shell): run again, it gives that trial its
    experiment's result (or marks it failed), and goes on to the number of trials asked for."""
    command = [sys.executable, "-m", "denoise.tuning", "--space", "space.yaml", "--storage", ".optuna/journal.log", "--study", "cut", "--trials", "2"]
    tuner = subprocess.Popen(command, cwd=repo, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    def running() -> bool:
        try:
            return any(t.state.name == "RUNNING" for t in study(repo, "cut").trials)
        except KeyError:  # the journal is there, the study not yet
            return False

    deadline = time.monotonic() + 300
    while not running():
        assert time.monotonic() < deadline and tuner.poll() is None, "the first trial never started"
        time.sleep(0.5)
    tuner.kill()
    tuner.wait()
    assert [t.state.name for t in study(repo, "cut").trials] == ["RUNNING"]  # left behind

    resumed = subprocess.run(command, cwd=repo, capture_output=True, text=True, timeout=900)
    assert resumed.returncode == 0, resumed.stderr
    assert "cut-0: left by an interrupted run" in resumed.stdout
    trials = study(repo, "cut").trials
    assert trials[0].state.name in ("COMPLETE", "PRUNED", "FAIL")  # not running forever
    assert sum(t.state.name in ("COMPLETE", "PRUNED") for t in trials) == 2 and all(t.state.name != "RUNNING" for t in trials)
