"""What a run *is* — its task and its method — as recorded facts, not guessed from file names.

Task files bind ``run_identity.task`` and method files ``run_identity.method``
(gin/tasks/*.gin, gin/methods/*.gin); the run records the pair, and
``iwx.report`` / ``iwx.compare`` read it back from the record. Unbound, each is
None and the run records the names of the bound classes instead.
"""

from __future__ import annotations

import gin


@gin.configurable
def run_identity(task: str | None = None, method: str | None = None) -> dict:
    """{"task": ..., "method": ...} as bound in the configuration (None where unbound)."""
    return {"task": task, "method": method}
