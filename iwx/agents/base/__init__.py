"""The agent toolkit: the contract and what every method module may import.

Method modules under ``iwx/agents`` (iwpl, iwpa, actor_critic, mpo, rl2, pearl,
parametric_adaptation) import from here, ``iwx.agents.actors``, ``iwx.ops`` and
``iwx.nets``, never from one another.

    contract   typed protocols the loops rely on (Acts, HasMemory, Learns, Checkpointable,
               MultiTaskAgent, AdaptationAgent, ActsRemotely)
    agent      Agent, ActingPart, AdaptsWithoutLearning: the contract's defaults,
               checkpoint parts, the acting part's parameter payload and its rebuild
               in another process
    adam       Adam: torch's Adam update without importing torch's compiler
    modules    adam (every learner's optimiser), frozen, Targets (target networks with a
               period), optimise
    batch      to_torch, task_rows, obs_task, split_steps (s_t / s_{t+1})
"""

from iwx.agents.base.adam import Adam
from iwx.agents.base.agent import (ActingPart, AdaptsWithoutLearning, Agent,
                                   configured_arguments, cpu_state)
from iwx.agents.base.batch import obs_task, split_steps, task_rows, to_torch
from iwx.agents.base.contract import (Acts, ActsRemotely, AdaptationAgent, Checkpointable,
                                      HasMemory, Learns, MultiTaskAgent)
from iwx.agents.base.modules import Targets, adam, frozen, optimise

__all__ = ["ActingPart", "Acts", "ActsRemotely", "Adam", "AdaptationAgent",
           "AdaptsWithoutLearning", "Agent", "Checkpointable", "HasMemory", "Learns", "MultiTaskAgent", "Targets", "adam",
           "configured_arguments", "cpu_state", "frozen", "obs_task", "optimise", "split_steps",
           "task_rows", "to_torch"]
