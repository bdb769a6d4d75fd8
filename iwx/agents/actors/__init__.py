"""The acting parts of the agents (Acme's actor side): networks + acting rule, no optimiser,
no replay. A learner acts through one of these; another process rebuilds the same one
from the learner's parameters (``Agent.build_acting``).

    importance   ImportanceWeightedActing   IWPL, IWPA: Cat(softmax(Q/α)) over K π0 samples
    gaussian     GaussianActing             RS(0), DISTRAL, MPO, parametric adaptation
    recurrent    RecurrentActing            RL² (LSTM memory, stored state for the replay)
    posterior    PosteriorSampling          PEARL* (context memory, z per episode)
"""
