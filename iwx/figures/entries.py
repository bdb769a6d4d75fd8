"""What a figure spec holds once read and checked (iwx/figures/spec.py reads it).

Plain frozen dataclasses: a spec's scales, each scale's panels, each panel's run
entries, and the error a spec that cannot be used raises.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path


class SpecError(Exception):
    """A spec that cannot be used; the message names the file and the key."""


@dataclasses.dataclass(frozen=True)
class RunEntry:
    gin: str                      # as written
    path: str                     # as a run is given it (iwx.experiment.runner.RunSpec)
    minutes: float                # estimate per seed
    bindings: tuple[str, ...]
    label: str
    where: str                    # its key path, for messages
    overlay: tuple[str, ...] = ()  # gin files after the run's own, before the panel's
    adapt_from: str | None = None  # the label of the panel's run whose model it adapts from
    # The variants drawn, (name, label shown) each, in order; None: all, as named.
    variants: tuple[tuple[str, str], ...] | None = None

    @property
    def draws_nothing(self) -> bool:
        """``variants: []``: a pretraining other runs adapt from, none of its lines drawn."""
        return self.variants is not None and not self.variants

    def shown(self, variant: str) -> str | None:
        """The label a variant of this run is drawn under, or None when it is not drawn."""
        if self.variants is None:
            return variant
        return dict(self.variants).get(variant)


@dataclasses.dataclass(frozen=True)
class PanelSpec:
    task: str
    title: str
    overlay: tuple[str, ...]      # resolved like RunEntry.path
    bindings: tuple[str, ...]
    runs: tuple[RunEntry, ...]
    where: str
    gin: str | None = None        # kind 'tasks': the gin file the frame's env is built from
    window: int | None = None     # its own smoothing window (None: the scale's)


@dataclasses.dataclass(frozen=True)
class Scale:
    name: str
    about: str
    seeds: tuple[int, ...]
    window: int
    bindings: tuple[str, ...]
    panels: tuple[PanelSpec, ...]
    chunk: float | None = None    # env steps per training-curve chunk (None: logging period)
    frame: tuple[int, int] | None = None   # kind 'tasks': (width, height) of every frame


@dataclasses.dataclass(frozen=True)
class FigureSpec:
    path: Path
    figure: int | str             # the paper's number, or a name (a figure of iwx's own)
    title: str
    kind: str
    last: int
    scales: dict[str, Scale]

    @property
    def name(self) -> str:
        """The stem of its files and report folder: 'figure3', or the name itself."""
        return f"figure{self.figure}" if isinstance(self.figure, int) else self.figure

    @property
    def heading(self) -> str:
        """'Figure 3: <title>' for the paper's figures, the title alone for iwx's own."""
        return f"Figure {self.figure}: {self.title}" if isinstance(self.figure, int) \
            else self.title

    def scale(self, name: str) -> Scale:
        if name not in self.scales:
            raise SpecError(f"{self.path}: no scale {name!r}; its scales are "
                            f"{', '.join(self.scales)}")
        return self.scales[name]
