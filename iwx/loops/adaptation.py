"""IWPA's adaptation protocol (Algorithm 2 and appendix A.2), all problems at once.

A problem is one held-out task under one adaptation seed; all P = tasks ×
seeds problems play their episodes side by side. For each problem: the first
``exploration_episodes`` act from the prior alone, later ones through
softmax(Q/α) over K prior samples; after every ``unroll_length`` steps one
TD(0) update, after every episode ``updates_per_episode`` updates, each on
``batch_size`` transitions from that problem's own (local) replay.

Variants that adapt without gradient steps (``agent.learns = False``: RL²,
PEARL*) play the same episodes and are never updated; agents with memory are
told once that their rows hold new tasks (``begin_tasks``) and then carry it
across all the episodes (iwx.agents.base.contract).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from pathlib import Path

import gin
import numpy as np

from iwx.agents.base import AdaptationAgent
from iwx.loops.checkpoint import rng_state, set_rng_state
from iwx.loops.episodes import play_episode
from iwx.loops.guard import DivergenceGuard
from iwx.loops.logger import Logger
from iwx.loops.progress import progress_bar
from iwx.replay.task_replay import TaskReplay


def start_video(env) -> list | None:
    """An empty frame list if ``env`` renders here, else None (with a warning: a video
    is never worth failing a run for)."""
    try:
        env.render(0)
    except Exception as exc:  # no render method, no GL backend, ...
        warnings.warn(f"no adaptation video: {type(env).__name__} cannot render here "
                      f"({type(exc).__name__}: {exc}); set MUJOCO_GL=egl or osmesa",
                      RuntimeWarning)
        return None
    return []


def write_video(frames: list, path: Path, fps: int) -> Path | None:
    """MP4 when imageio-ffmpeg is installed (``pip install -e .[video]``), else a GIF
    at half the frame rate (every other frame, to keep it a few MB). Returns the path."""
    frames = [f for f in frames if f is not None]
    if not frames:
        return None
    import imageio

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        import imageio_ffmpeg  # noqa: F401
    except ImportError:
        path = path.with_suffix(".gif")
        imageio.mimsave(path, frames[::2], duration=2000 / fps, loop=0)
    else:
        path = path.with_suffix(".mp4")
        imageio.mimsave(path, frames, fps=fps, macro_block_size=8)
    return path


@gin.configurable
class Adaptation:
    def __init__(self, *, episodes: int = 10, exploration_episodes: int = 5, seeds: int = 3,
                 unroll_length: int = 10, updates_per_unroll: int = 1,
                 updates_per_episode: int = 50, batch_size: int = 128, progress: bool = True,
                 video: bool = False, video_fps: int = 20):
        if exploration_episodes > episodes:
            raise ValueError(f"Adaptation.exploration_episodes={exploration_episodes} exceeds "
                             f"episodes={episodes}")
        self.episodes, self.exploration_episodes, self.seeds = episodes, exploration_episodes, seeds
        self.unroll_length, self.updates_per_unroll = unroll_length, updates_per_unroll
        self.updates_per_episode, self.batch_size = updates_per_episode, batch_size
        self.progress = progress
        self.video, self.video_fps = video, video_fps

    def run(self, name: str, make_agent: Callable[..., AdaptationAgent], make_env,
            goals: np.ndarray, obs_spec, action_dim: int, rng: np.random.Generator,
            logger: Logger, save_checkpoint, state: dict | None = None, env_seed: int = 0,
            video_path: Path | None = None, guard: DivergenceGuard | None = None):
        """Adapt on every goal × seed. Returns per-episode returns [tasks, seeds, episodes].

        Episode e of every variant starts from ``reset(seed=[env_seed, 2, e])``:
        the variants meet the same start states (common random numbers).
        With ``video`` on, the last episode of problem 0 (held-out task 0, seed 0)
        is rendered next to ``video_path`` (MP4 or GIF), where the environment can render.
        ``guard`` (a default :class:`~iwx.loops.guard.DivergenceGuard` when None) checks
        every update's metrics, every episode's returns and, before every checkpoint
        (one per episode), the agent's whole state; it raises DivergenceError.
        """
        num_tasks = len(goals)
        problems = num_tasks * self.seeds
        env = make_env(np.repeat(goals, self.seeds, axis=0), None)   # row = task * seeds + seed
        agent = make_agent(num_problems=problems)
        replay = TaskReplay(problems, obs_spec, action_dim, env.episode_length,
                            capacity=self.episodes, extra_spec=agent.replay_extras)
        rows = np.arange(problems)
        returns = np.zeros((problems, self.episodes))
        start = 0
        if state is not None:
            agent.load_state_dict(state["agent"])
            replay.load_state_dict(state["replay"])
            returns[...] = state["returns"]
            start = state["episode"]
            set_rng_state(state["rng"], rng)  # after building the agent, whose init draws
        else:
            agent.begin_tasks(problems)
        watch = (guard or DivergenceGuard()).watch(
            agent, schedule={"Adaptation.batch_size": self.batch_size}, variant=name)
        episode = start

        def where() -> str:
            return (f"adaptation episode {episode + 1} of {self.episodes} of variant {name!r} "
                    f"(its update {agent.updates})")

        def learn(n):
            if not agent.learns:
                return
            for _ in range(n):
                batch = replay.sample(rng, rows, self.batch_size, 1)
                if agent.context_length:
                    batch["context"] = replay.sample(rng, rows, 1, agent.context_length)
                watch.update(agent.update(batch), where)

        frames: list | None = None

        def after_step(t):
            if frames is not None and not (frames and frames[-1] is None):
                # row 0's frames until its episode ends (a None marks the end)
                frames.append(env.render(0))
                if getattr(env, "done", np.zeros(1, bool))[0]:
                    frames.append(None)
            if t % self.unroll_length == 0:
                learn(self.updates_per_unroll)

        bar = progress_bar(self.episodes, f"adapt {name}", "ep", initial=start,
                           enabled=self.progress)
        try:
            for episode in range(start, self.episodes):
                explore = episode < self.exploration_episodes
                agent.begin_episode(episode)
                if self.video and video_path is not None and episode == self.episodes - 1:
                    frames = start_video(env)
                ret, _ = play_episode(env, lambda obs: agent.act(obs, explore=explore),
                                      replay=replay, rows=rows, after_step=after_step,
                                      seed=[env_seed, 2, episode], observe=agent.observe)
                if frames:
                    write_video(frames, video_path, self.video_fps)
                    frames = None
                learn(self.updates_per_episode)
                returns[:, episode] = ret
                per_task = ret.reshape(num_tasks, self.seeds).mean(axis=1)
                values = {f"adapt/{name}/return": float(ret.mean()),
                          **{f"adapt/{name}/return/task_{task:02d}": float(value)
                             for task, value in enumerate(per_task)}}
                watch.logged(values, where)           # nothing non-finite is recorded
                for metric, value in values.items():
                    logger.scalar(metric, value, episode + 1)
                bar.update(1)
                bar.set_postfix(ret=f"{ret.mean():.2f}")
                watch.state(where, everything=True)   # never save a diverged state
                save_checkpoint({"agent": agent.state_dict(), "replay": replay.state_dict(),
                                 "returns": returns.copy(), "episode": episode + 1,
                                 "rng": rng_state(rng)})
        except (ValueError, RuntimeError, FloatingPointError) as exc:
            watch.translate(exc, where)   # raises DivergenceError when it is one
            raise
        finally:
            bar.close()
        return returns.reshape(num_tasks, self.seeds, self.episodes)
