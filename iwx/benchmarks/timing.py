"""Timing many items side by side: warm every item up, then visit them round-robin.

Each item is a ``step()`` that does some whole calls and returns the units it did
(updates, env steps); its rate is units / wall time of whole calls. Visiting the
items in ``rounds`` windows makes a slow drift of background load hit all alike.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import torch


def sync(device: torch.device) -> None:
    """Wait for queued GPU work (a no-op on the CPU), so a window times finished work."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def warm_up(step: Callable[[], int], seconds: float, device: torch.device,
            min_calls: int = 3) -> None:
    until = time.perf_counter() + seconds
    calls = 0
    while calls < min_calls or time.perf_counter() < until:
        step()
        calls += 1
    sync(device)


def time_window(step: Callable[[], int], seconds: float, device: torch.device,
                min_calls: int = 1) -> dict:
    """Call ``step`` (returns units done) until ``seconds`` of wall time pass (whole calls)."""
    sync(device)
    units, calls = 0, 0
    cpu0, start = time.process_time(), time.perf_counter()
    while True:
        units += step()
        calls += 1
        if calls >= min_calls and time.perf_counter() - start >= seconds:
            break
    sync(device)
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu0
    return {"units": units, "calls": calls, "seconds": wall, "cpu_seconds": cpu}


def measure_all(items: list[dict], steps: list[Callable[[], int]], seconds: float,
                rounds: int, device: torch.device, progress=None) -> None:
    """Warm every item up, then time them round-robin: ``rounds`` windows of
    ``seconds / rounds`` each, so slow drifts of background load hit every item alike.
    Fills each item's rate (total units / total wall), per-round rates and CPU use."""
    warm = min(0.5, 0.2 * seconds)
    for step in steps:
        warm_up(step, warm, device)
    windows: list[list[dict]] = [[] for _ in items]
    for r in range(rounds):
        if progress is not None:
            progress(f"round {r + 1}/{rounds}")
        for i, step in enumerate(steps):
            windows[i].append(time_window(step, seconds / rounds, device))
    for item, ws in zip(items, windows):
        wall = sum(w["seconds"] for w in ws)
        item.update(
            rate=sum(w["units"] for w in ws) / wall, units=sum(w["units"] for w in ws),
            calls=sum(w["calls"] for w in ws), seconds=wall,
            round_rates=[w["units"] / w["seconds"] for w in ws],
            # process CPU time / wall: about (threads busy) when nothing else competes;
            # well below the thread count means the bench was starved by other processes.
            cpu_util=sum(w["cpu_seconds"] for w in ws) / wall)


def count_flops(step: Callable[[], int]) -> float:
    """Matrix-product FLOPs per unit of one ``step()`` call (torch.utils.flop_counter: mm,
    addmm, bmm, baddbmm, forward and backward; element-wise work is not counted). The
    call does real work (e.g. one more learner update), like a warm-up call."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        units = step()
    return counter.get_total_flops() / max(units, 1)


def matmul_peak_step(device: torch.device, size: int = 1024) -> Callable[[], int]:
    """A ``step()`` doing one float32 [size, size] @ [size, size] product, counting its
    GFLOP as units: timed beside the other items, its rate is the machine's measured
    float32 matmul throughput (GFLOP/s) under the same load."""
    gen = torch.Generator(device="cpu").manual_seed(0)
    a = torch.randn(size, size, generator=gen).to(device)
    b = torch.randn(size, size, generator=gen).to(device)
    out = torch.empty(size, size, device=device)
    gflop = 2 * size ** 3 / 1e9

    def step():
        torch.mm(a, b, out=out)
        return gflop
    return step
