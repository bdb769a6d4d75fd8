"""Start (or join) the Ray cluster a distributed run uses, keeping the run's SIGTERM.

``ray.init`` replaces the process's SIGTERM handler with ``sys.exit``: a run stopped by
SIGTERM (``timeout``, a scheduler, a session ending) would then end in SystemExit and
record FAILED, not INTERRUPTED with how to resume (the handler the recording layer
installs for the run's duration). The handler the process had goes back once Ray is up.
When that handler's exception is raised while the learner waits inside Ray's compiled
code (``ray.wait``), it surfaces as a SystemError caused by it; the distributed loop
re-raises the cause.
"""

from __future__ import annotations

import os
import signal
import threading


def init_ray(address: str | None, num_cpus: int) -> None:
    """``ray.init`` on ``address`` (a running cluster) or a local one of ``num_cpus``."""
    import ray

    kwargs = dict(include_dashboard=False, log_to_driver=False, configure_logging=False)
    on_sigterm = signal.getsignal(signal.SIGTERM)
    if address is not None:
        ray.init(address=address, **kwargs)
    else:
        os.environ.setdefault("RAY_AUTH_MODE", "disabled")
        ray.init(num_cpus=num_cpus, num_gpus=0, **kwargs)
    if on_sigterm is not None and threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, on_sigterm)
