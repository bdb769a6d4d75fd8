import os

os.environ.setdefault("MUJOCO_GL", "disable")
os.environ.setdefault("RAY_AUTH_MODE", "disabled")


def pytest_xdist_auto_num_workers(config):
    """``-n auto``: one worker more than there are cores (``--maxprocesses`` still caps it).
    Many tests spend part of their time waiting — for a server or Omniboard to answer, a
    Ray cluster to start, a run to reach its checkpoint before it is signalled — and a
    third worker on CI's 2 cores fills those waits."""
    return (os.cpu_count() or 1) + 1
