"""How far each run seed's Go To Ring training targets lie from the start area.

    .venv/bin/python docs/experiments/ring_draws.py gin/tasks/go_to_ring_cpu.gin --seeds 0 1 2

The tasks of a run are drawn from its seed (``GoToRingTasks.split(run_seed)``, unless
``GoToRingTasks.seed`` is bound), so every method's seed s trains on the same targets and
seed s and seed s' on different ones. The ant starts within ``spawn_half_size`` of the
origin and reaches a target when its torso comes within ``distance_tolerance`` (1 m):
a target at radius r asks for about r - 1 m of walking the right way, so how a seed's
radii fall decides how often an untrained policy reaches one, and with it how soon
training sees rewards. Prints, per seed, the training targets' radii (mean, min, max)
and the share under a threshold.
"""

import argparse

import numpy as np

from iwx.envs.go_to_ring import GoToRingTasks
from iwx.experiment.gin_config import parse


def radii(seed: int) -> np.ndarray:
    """The training targets' distances from the origin for run seed ``seed``."""
    return np.linalg.norm(GoToRingTasks().split(seed).train, axis=1)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("gin_files", nargs="*", help="task files whose bindings apply")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--under", type=float, default=1.5, help="radius threshold (m)")
    args = ap.parse_args(argv)
    parse(args.gin_files, [])
    print(f"{'seed':>4}  {'tasks':>5}  {'mean r':>6}  {'min':>5}  {'max':>5}  r < {args.under}")
    for seed in args.seeds:
        r = radii(seed)
        print(f"{seed:>4}  {len(r):>5}  {r.mean():6.3f}  {r.min():5.2f}  {r.max():5.2f}  "
              f"{np.mean(r < args.under):.2f}")


if __name__ == "__main__":
    main()
