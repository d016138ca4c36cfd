"""The train stage's side of `make tune` (tuning.py): when DVC runs an experiment that an Optuna study queued,
report each epoch's validation PSNR to its trial and stop training when the study's pruner says so."""

from __future__ import annotations

import os
from pathlib import Path

STORAGE_ENV, STUDY_ENV = "DENOISE_TUNE_STORAGE", "DENOISE_TUNE_STUDY"


def open_storage(url: str):
    """An RDB URL (sqlite:///..., postgresql://...) as it is; anything else is a journal file (Optuna's file
    storage, with its own file lock: safe for processes on one machine or on a shared disk)."""
    import optuna

    if "://" in url:
        return url
    Path(url).parent.mkdir(parents=True, exist_ok=True)
    return optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(url)))


def median_pruner(warmup_epochs: int):
    """The study's pruner: stop a trial whose validation PSNR after an epoch (from the warmup_epochs+1-th on) is
    below the median of the finished trials' at that epoch, once 2 trials have finished. Optuna keeps no pruner in
    its storage, so the tuner records warmup_epochs in the study and the train stage rebuilds the same one."""
    import optuna

    return optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=warmup_epochs)


def callbacks() -> list:
    """[a Keras callback reporting to this experiment's trial] when the tuner started this run (its storage
    and study in the environment, and DVC's DVC_EXP_NAME naming a running trial), else []."""
    storage, study_name, experiment = (os.environ.get(name) for name in (STORAGE_ENV, STUDY_ENV, "DVC_EXP_NAME"))
    if not (storage and study_name and experiment):
        return []
    import keras
    import optuna

    study = optuna.load_study(study_name=study_name, storage=open_storage(storage))
    study.pruner = median_pruner(study.user_attrs.get("pruner_warmup_epochs", 0))
    running = [t for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)) if t.user_attrs.get("experiment") == experiment]
    if not running:
        return []
    trial = optuna.trial.Trial(study, running[0]._trial_id)

    class ReportToTrial(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            trial.report(logs["val_psnr"], epoch)
            if trial.should_prune():
                trial.set_user_attr("pruned_at_epoch", epoch + 1)
                print(f"pruned by study {study_name} after epoch {epoch + 1}")
                self.model.stop_training = True

    return [ReportToTrial()]
