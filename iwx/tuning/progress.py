"""The sweep's progress: a bar over trials and one line per finished trial (a Ray Tune
callback, so it lives in the driver and sees every trial end)."""

from __future__ import annotations

from ray import tune


class TrialProgress(tune.Callback):
    def __init__(self, total: int, disable: bool, keys: list[str]):
        self.total, self.disable, self.keys, self._bar = total, disable, keys, None

    def __getstate__(self):   # Tune pickles its run config (to resume); a bar does not pickle
        return {**self.__dict__, "_bar": None}

    @property
    def bar(self):
        if self._bar is None:
            from iwx.loops.progress import progress_bar

            self._bar = progress_bar(self.total, "trials", "trial", enabled=not self.disable)
        return self._bar

    def describe(self, trial) -> str:
        """'IWPA.alpha=0.1, seed 2' from a trial's Ray config."""
        config = trial.config or {}
        params = config.get("params", {})
        text = ", ".join(f"{k}={params.get(f'p{i}')}" for i, k in enumerate(self.keys))
        return text + (f", seed {config['seed']}" if "seed" in config else "")

    def setup(self, **info):
        self.bar  # noqa: B018  (show the bar from the start)

    def on_trial_complete(self, iteration, trials, trial, **info):
        result = trial.last_result or {}
        scores = ", ".join(f"{v:.3f}" for v in result.get("scores", []))
        reused = all(result.get("reused") or [False])
        self.bar.update(1)
        self.bar.write(f"  {self.describe(trial)}: {scores} "
                       f"(run {', '.join(result.get('run_ids', []))}"
                       f"{', already done' if reused else ''})")

    def on_trial_error(self, iteration, trials, trial, **info):
        from iwx.tuning.outcomes import trial_error

        error, elsewhere = trial_error(trial)
        what = "still running in another process" if elsewhere else "FAILED"
        self.bar.update(1)
        self.bar.write(f"  {self.describe(trial)}: {what}: {error} "
                       f"(log: {trial.local_path})")
