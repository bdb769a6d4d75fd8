"""Which packages the wheel holds: every ``iwx*`` package, plus the checkout's ``gin/``
and ``sweeps/`` folders as ``iwx._shipped.gin`` / ``iwx._shipped.sweeps``.

Everything else about the build is in pyproject.toml. This file exists because
pyproject.toml can either discover packages (``packages.find``) or list them, not
both: the two data folders live outside ``iwx/`` (``--gin gin/x.gin`` and gin's
``include 'tasks/x.gin'`` keep working in a checkout) and are mapped into the
package here, so ``iwx run --gin point_nav_iwpl`` also works after ``pip install``
(iwx/experiment/shipped.py finds them in either place). An editable install maps
the same names back to the checkout's folders.
"""

from setuptools import find_namespace_packages, setup

# folder -> its files the wheel carries
SHIPPED = {"gin": ["*.gin"], "sweeps": ["*.yaml"], "figures": ["*.yaml"]}


def shipped_packages() -> tuple[list[str], dict[str, str], dict[str, list[str]]]:
    """(packages, package_dir, package_data) of the shipped folders and their subfolders."""
    packages, package_dir, package_data = [], {}, {}
    for folder, patterns in SHIPPED.items():
        base = f"iwx._shipped.{folder}"
        package_dir[base] = folder
        for name in [base, *(f"{base}.{sub}" for sub in find_namespace_packages(where=folder))]:
            packages.append(name)
            package_data[name] = patterns
    return packages, package_dir, package_data


shipped, package_dir, package_data = shipped_packages()
setup(packages=find_namespace_packages(include=["iwx*"]) + shipped,
      package_dir=package_dir, package_data=package_data)
