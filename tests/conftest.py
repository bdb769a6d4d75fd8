"""Test-session settings shared by every file.

Scheduling on pytest-xdist (``--dist loadgroup`` in pyproject.toml): tests are handed
to workers one at a time, except those that use a module-scoped fixture of their own
file (the recorded sweep, the smoke figure, the built wheel...). Those stay together on
one worker, so the fixture is built once, and they are queued first: they are the
longest units of work, and a long unit started last is what keeps CI waiting on one
core while the other sits idle.

``-n auto`` starts one worker more than there are cores (at most 4, pyproject.toml's
``--maxprocesses``): many tests wait on processes of their own (the command line under
test, Ray's workers, the database and Omniboard servers), and a worker that waits
leaves its core to the extra one.
"""

import os

import pytest

os.environ.setdefault("MUJOCO_GL", "disable")
os.environ.setdefault("RAY_AUTH_MODE", "disabled")


def pytest_xdist_auto_num_workers(config):
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:                                   # not on Linux
        cores = os.cpu_count() or 1
    return cores + 1


def _module_fixture_group(item: pytest.Item) -> str | None:
    """The xdist group of a test that shares a module-scoped fixture (None: it shares
    nothing and may run on any worker)."""
    info = getattr(item, "_fixtureinfo", None)
    if info is None:
        return None
    for defs in info.name2fixturedefs.values():
        if any(d.scope == "module" for d in defs):
            return item.module.__name__
    return None


class _GroupsTookEffect:
    """Fails every test of a run whose xdist groups were silently dropped: xdist marks
    a grouped test by appending ``@group`` to ``item._nodeid``, which pytest 9 no
    longer reads (its ``nodeid`` comes from ``item._id``). With pytest 9.2 and xdist
    3.8 every worker built every module fixture of its own (the recorded sweep three
    times over), which is why pyproject.toml keeps pytest below 9. (An exception
    raised here would crash the worker with an INTERNALERROR that hides the reason.)"""

    lost: str | None = None

    @pytest.hookimpl(trylast=True)   # after xdist's own hook
    def pytest_collection_modifyitems(self, config, items):
        if not getattr(config.option, "loadgroup", False):   # not an xdist worker
            return
        lost = [i.nodeid for i in items
                if i.get_closest_marker("xdist_group") and "@" not in i.nodeid]
        if lost:
            self.lost = (f"pytest-xdist's --dist loadgroup did not take effect on {len(lost)} "
                         f"grouped tests (e.g. {lost[0]}): every worker would build every "
                         "module fixture. Use a pytest / pytest-xdist pair that supports "
                         "it (pyproject.toml pins pytest below 9).")

    def pytest_runtest_setup(self, item):
        if self.lost:
            pytest.fail(self.lost, pytrace=False)


def pytest_configure(config):
    config.pluginmanager.register(_GroupsTookEffect(), "iwx-xdist-groups")


@pytest.fixture(autouse=True)
def _gin_starts_clean(request):
    """A test that shares no module fixture starts with no gin binding: what another
    test parsed into gin's global configuration (and left there) is not its input, in
    whatever order the workers happen to run tests."""
    if _module_fixture_group(request.node) is None:
        import gin

        gin.clear_config()
    yield


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config, items):
    grouped = []
    for item in items:
        group = _module_fixture_group(item)
        if group is not None:
            item.add_marker(pytest.mark.xdist_group(group))
            grouped.append(item)
    if grouped:
        # A stable sort: each module's tests keep their order, so a fixture is set up
        # once and torn down after its last test.
        first = {id(item) for item in grouped}
        items.sort(key=lambda item: id(item) not in first)
