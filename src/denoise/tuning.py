"""Hyperparameter search over the pipeline: an Optuna study whose every trial is a DVC experiment.

    python -m denoise.tuning --space bench/tune-space.yaml --trials 20 --workers 2 [--storage URL] [--study NAME]

The search space is a YAML file of params.yaml keys (dotted) with ranges or choices, plus the keys fixed in every
trial (its length). Each trial is queued as `dvc exp run --queue --name STUDY-N -S key=value ...` and the queue
runs `--workers` of them at once (`dvc queue start -j N`); `dvc exp show` lists them all with their params and
metrics, `dvc exp apply STUDY-N` brings one back. The objective is the best validation PSNR the train stage
records (never the test set). While a trial trains, the train stage reports each epoch's validation PSNR to the
study (training.trial_callbacks, through DENOISE_TUNE_* and the DVC_EXP_NAME that DVC sets) and stops when the
pruner says so; such an experiment is renamed STUDY-N-pruned. The study lives in Optuna storage: a journal
file by default (safe for several processes on one machine or a shared disk), any RDB URL (sqlite:///, or
postgresql:// so that machines with their own clones join one study). Starting the command again resumes the
study: it runs trials until --trials have finished in all."""

from __future__ import annotations

import argparse
import json
import os
import re
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import yaml

from .config import ConfigError, load_params
from .errors import DenoiseError, exit_on_error
from .trials import STORAGE_ENV, STUDY_ENV, median_pruner, open_storage

OBJECTIVE = "checkpoints/train/state.json"  # its best_val_psnr: what the train stage kept the model for
TIMING = "checkpoints/train/time.json"  # its train_seconds


@dataclass(frozen=True)
class Dimension:
    """One params.yaml key to search: a number in [low, high] (log-uniform if log; integers if both bounds are),
    or one of `choices`."""

    key: str
    low: float | None = None
    high: float | None = None
    log: bool = False
    choices: tuple | None = None

    def suggest(self, trial):
        if self.choices is not None:
            return trial.suggest_categorical(self.key, list(self.choices))
        if isinstance(self.low, int) and isinstance(self.high, int):
            return trial.suggest_int(self.key, self.low, self.high, log=self.log)
        return trial.suggest_float(self.key, self.low, self.high, log=self.log)


@dataclass(frozen=True)
class Space:
    dimensions: tuple[Dimension, ...]
    fixed: dict
    pruner_warmup_epochs: int = 1


_MISSING = object()


def _lookup(params: dict, key: str):
    """params' value at a dotted key (train.optimizer.learning_rate), or _MISSING."""
    node = params
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            return _MISSING
        node = node[part]
    return node


def load_space(path: str | Path, params_path: str | Path = "params.yaml") -> Space:
    """Read and check a search-space file: every key must be one of params.yaml's; a range needs numbers
    low < high (positive for log); choices a non-empty list. Errors name the file and the key."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: no search-space file there")
    raw = yaml.safe_load(path.read_text()) or {}
    unknown = set(raw) - {"search", "fixed", "pruner_warmup_epochs"}
    if unknown or not isinstance(raw.get("search"), dict) or not raw["search"]:
        raise ConfigError(f"{path}: expected a non-empty `search:` mapping (and optionally `fixed:`, `pruner_warmup_epochs:`), got keys {sorted(raw)}")
    params = yaml.safe_load(Path(params_path).read_text())
    fixed = raw.get("fixed") or {}
    for key in [*raw["search"], *fixed]:
        if _lookup(params, key) is _MISSING:
            raise ConfigError(f"{path}: {key}: not a key of {params_path}")
    dimensions = []
    for key, spec in raw["search"].items():
        if isinstance(spec, list):
            spec = {"choices": spec}
        if not isinstance(spec, dict) or not ({"choices"} == set(spec) or {"low", "high"} <= set(spec) <= {"low", "high", "log"}):
            raise ConfigError(f"{path}: {key}: expected {{low: a, high: b[, log: true]}} or {{choices: [...]}}, got {spec!r}")
        if "choices" in spec:
            if not isinstance(spec["choices"], list) or not spec["choices"]:
                raise ConfigError(f"{path}: {key}.choices: expected a non-empty list, got {spec['choices']!r}")
            dimensions.append(Dimension(key, choices=tuple(spec["choices"])))
            continue
        low, high, log = spec["low"], spec["high"], spec.get("log", False)
        if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (low, high)) or not low < high or (log and low <= 0):
            raise ConfigError(f"{path}: {key}: needs numbers low < high{' and low > 0 (log scale)' if log else ''}, got {low!r}, {high!r}")
        dimensions.append(Dimension(key, low, high, bool(log)))
    warmup = raw.get("pruner_warmup_epochs", 1)
    if not isinstance(warmup, int) or warmup < 0:
        raise ConfigError(f"{path}: pruner_warmup_epochs: expected a whole number >= 0, got {warmup!r}")
    return Space(tuple(dimensions), fixed, warmup)


def current_values(space: Space, params_path: str | Path = "params.yaml") -> dict | None:
    """params.yaml's own value of every searched key, or None if one of them lies outside the space."""
    params, values = yaml.safe_load(Path(params_path).read_text()), {}
    for dim in space.dimensions:
        value = _lookup(params, dim.key)
        inside = value in dim.choices if dim.choices is not None else isinstance(value, (int, float)) and dim.low <= value <= dim.high
        if not inside:
            return None
        values[dim.key] = value
    return values


def overrides(values: dict) -> list[str]:
    """`-S key=value` arguments for dvc exp run (values written as YAML, as DVC parses them)."""
    args = []
    for key, value in values.items():
        args += ["-S", f"{key}={yaml.safe_dump(value, default_flow_style=True).strip().removesuffix('...').strip()}"]
    return args


def _dvc(*args, env=None, check=True) -> str:
    result = subprocess.run([sys.executable, "-m", "dvc", *args], capture_output=True, text=True, env=env)
    if check and result.returncode != 0:
        raise DenoiseError(f"dvc {' '.join(args)} failed: {(result.stderr or result.stdout).strip().splitlines()[-1:]}")
    return result.stdout


def _experiment_ref(name: str) -> str | None:
    refs = subprocess.run(["git", "for-each-ref", "--format=%(refname)", "refs/exps"], capture_output=True, text=True, check=True).stdout.split()
    found = [ref for ref in refs if ref.rsplit("/", 1)[-1] == name]
    return found[-1] if found else None


def experiment_state(name: str) -> dict | None:
    """The train stage's state.json in the experiment `name` (best_val_psnr, train_seconds, ...), or None if
    there is no such experiment."""
    ref = _experiment_ref(name)
    if ref is None:
        return None
    shown = subprocess.run(["git", "show", f"{ref}:{OBJECTIVE}"], capture_output=True, text=True)
    if shown.returncode != 0:
        return None
    timing = subprocess.run(["git", "show", f"{ref}:{TIMING}"], capture_output=True, text=True)
    return {**json.loads(shown.stdout), **(json.loads(timing.stdout) if timing.returncode == 0 else {})}


def _queue_states(names: set[str]) -> tuple[dict[str, str], int]:
    """(name -> the DVC queue's status for it: Queued, Running, Success, Failed; the number of live workers)."""
    states, workers = {}, 0
    for line in _dvc("queue", "status").splitlines():
        parts = line.split()
        for name in names & set(parts):
            states[name] = parts[-1]
        if line.startswith("Worker status:"):
            workers = sum(int(n) for n in re.findall(r"(\d+) (?:active|idle)", line))
    return states, workers


def _wait(names: set[str], workers: int, env: dict, poll: float, patience: float = 60.0) -> None:
    """Until the queue has run every one of `names`; a queue left without a worker is started again, and after
    `patience` seconds without one the run stops with the place to look."""
    idle_since = None
    while True:
        states, live = _queue_states(names)
        if len(states) == len(names) and all(state not in ("Queued", "Running") for state in states.values()):
            return
        if live:
            idle_since = None
        elif idle_since is None:
            idle_since = time.monotonic()
        elif time.monotonic() - idle_since > patience:
            raise DenoiseError("the DVC queue has trials waiting and no worker running; see .dvc/tmp/exps/celery/*.out and `dvc queue logs NAME`")
        else:
            _dvc("queue", "start", "--jobs", str(workers), env=env)
        time.sleep(poll)


def open_study(name: str, storage: str, seed: int, warmup: int):
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(study_name=name, storage=open_storage(storage), direction="maximize", load_if_exists=True,
                                pruner=median_pruner(warmup))
    # seeded, and offset by the trials already there, so that a resumed study does not propose its first trials again
    study.sampler = optuna.samplers.TPESampler(seed=seed + len(study.trials))
    study.set_user_attr("pruner_warmup_epochs", warmup)
    return study


def _finish(study, number: int, name: str) -> str:
    """Tell the study how the experiment `name` ended: its objective, pruned, or failed."""
    import optuna

    trial = next(t for t in study.get_trials(deepcopy=False) if t.number == number)
    state = experiment_state(name)
    if state is None:
        study.tell(trial.number, state=optuna.trial.TrialState.FAIL)
        return "failed"
    value = float(state["best_val_psnr"])
    optuna.trial.Trial(study, trial._trial_id).set_user_attr("train_minutes", round(state.get("train_seconds", 0.0) / 60, 3))
    if "pruned_at_epoch" in trial.user_attrs:
        _dvc("exp", "rename", name, f"{name}-pruned", check=False)
        study.tell(trial.number, state=optuna.trial.TrialState.PRUNED)
        return f"pruned after epoch {trial.user_attrs['pruned_at_epoch']}"
    study.tell(trial.number, value)
    return f"{value:.3f} dB"


def _recover(study, owner_host: str) -> None:
    """Trials this machine left running (an interrupted run): told their result where the experiment finished,
    failed otherwise, so that the study goes on."""
    import optuna

    for trial in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
        owner = trial.user_attrs.get("owner", "")
        host, _, pid = owner.partition(":")
        if host == owner_host and pid.isdigit() and not _alive(int(pid)):
            print(f"{trial.user_attrs['experiment']}: left by an interrupted run; {_finish(study, trial.number, trial.user_attrs['experiment'])}")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def finished(study) -> int:
    import optuna

    return sum(t.state in (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED) for t in study.get_trials(deepcopy=False))


def tune(space: Space, trials: int, workers: int, storage: str, study_name: str, seed: int = 0, poll: float = 2.0) -> None:
    """Run the study until `trials` trials have finished (complete or pruned), `workers` at a time."""
    study = open_study(study_name, storage, seed, space.pruner_warmup_epochs)
    if not study.trials:  # the first trial is params.yaml as it is, where the space holds it: the point to beat
        current = current_values(space)
        if current:
            study.enqueue_trial(current)
    host = socket.gethostname()
    _recover(study, host)
    # the queue's workers run the stages: with this Python's environment first on PATH (dvc, python), and the study
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
           STORAGE_ENV: storage if "://" in storage else str(Path(storage).resolve()), STUDY_ENV: study_name}
    while (left := trials - finished(study)) > 0:
        batch = {}
        for _ in range(min(workers, left)):
            trial = study.ask()
            values = {dim.key: dim.suggest(trial) for dim in space.dimensions}
            name = f"{study_name}-{trial.number}"
            trial.set_user_attr("experiment", name)
            trial.set_user_attr("owner", f"{host}:{os.getpid()}")
            _dvc("exp", "run", "--queue", "--name", name, *overrides({**space.fixed, **values}), "train")  # up to training: no test
            batch[name] = trial.number
            print(f"{name}: queued {values}", flush=True)
        _dvc("queue", "start", "--jobs", str(workers), env=env)
        _wait(set(batch), workers, env, poll)
        outcomes = {name: _finish(study, number, name) for name, number in batch.items()}
        for name, outcome in outcomes.items():
            print(f"{name}: {outcome}", flush=True)
        if all(outcome == "failed" for outcome in outcomes.values()):
            raise DenoiseError(f"every trial of the last batch failed ({', '.join(outcomes)}); `dvc queue logs {next(iter(outcomes))}` shows why")
    best = study.best_trial
    print(f"best: {best.user_attrs['experiment']} {best.value:.3f} dB (validation) with {best.params}; `dvc exp apply {best.user_attrs['experiment']}` "
          f"then `dvc repro` evaluates it on the test set")


def table(study) -> str:
    """The study as a markdown table: each trial's experiment, state, best validation PSNR (for a pruned one,
    its best epoch before it stopped), epochs reported, training minutes (what the epochs reported took), and values."""
    trials = study.get_trials(deepcopy=False)
    keys = sorted({key for trial in trials for key in trial.params})
    lines = ["| experiment | state | val PSNR (dB) | epochs | train (min) | " + " | ".join(keys) + " |", "|---" * (5 + len(keys)) + "|"]
    for trial in trials:
        reported = trial.intermediate_values
        best = trial.value if trial.value is not None else max(reported.values(), default=float("nan"))
        minutes = trial.user_attrs.get("train_minutes")
        cells = [trial.user_attrs.get("experiment", str(trial.number)), trial.state.name.lower(), f"{best:.3f}", str(len(reported)),
                 "–" if minutes is None else f"{minutes:.1f}"]
        lines.append("| " + " | ".join(cells + [f"{trial.params[k]:.3g}" if isinstance(trial.params.get(k), float) else str(trial.params.get(k, "–")) for k in keys]) + " |")
    return "\n".join(lines)


@exit_on_error
def main(argv=None):
    parser = argparse.ArgumentParser(prog="make tune", description=__doc__.splitlines()[0])
    parser.add_argument("--space", default="bench/tune-space.yaml", help="search-space file (keys of params.yaml, ranges, choices)")
    parser.add_argument("--trials", type=int, default=20, help="trials to finish in all (a rerun resumes the study)")
    parser.add_argument("--workers", type=int, default=1, help="trials run at once on this machine")
    parser.add_argument("--storage", default=".optuna/journal.log", help="a journal file (default), or an RDB URL: sqlite:///tune.db, postgresql://...")
    parser.add_argument("--study", default="tune", help="study name; experiments are named STUDY-N")
    parser.add_argument("--seed", type=int, default=0, help="the TPE sampler's seed (plus the trials already in the study); give each machine joining a study its own")
    parser.add_argument("--show", action="store_true", help="print the study's trials as a table and stop")
    args = parser.parse_args(argv)
    if args.show:
        import optuna

        print(table(optuna.load_study(study_name=args.study, storage=open_storage(args.storage))))
        return
    for flag in ("trials", "workers"):
        if getattr(args, flag) < 1:
            parser.error(f"--{flag}: must be at least 1")
    load_params()  # a broken params.yaml stops here, with its key named, not inside every trial
    tune(load_space(args.space), args.trials, args.workers, args.storage, args.study, args.seed)


if __name__ == "__main__":
    sys.exit(main())
