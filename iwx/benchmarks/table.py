"""What the bench reports beside its numbers: the machine, and the printed table."""

from __future__ import annotations

import os
import platform
from pathlib import Path

import torch


def machine_info(device: torch.device, threads: int) -> dict:
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else _cpu_name()
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count()
    return {"torch": torch.__version__, "python": platform.python_version(),
            "threads": torch.get_num_threads(), "requested_threads": threads,
            "device": str(device), "device_name": name, "cpu_count": os.cpu_count(),
            "cpus_usable": usable, "platform": platform.platform(),
            "loadavg_before": loadavg()}


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def loadavg() -> str:
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "n/a"


def format_table(result: dict) -> str:
    m = result["machine"]
    width = 101
    lines = [f"iwx.bench: torch {m['torch']}, threads {m['threads']}, device {m['device']} "
             f"({m['device_name']}), CPUs {m['cpu_count']} ({m['cpus_usable']} usable), "
             f"python {m['python']}, load avg {m['loadavg_before']} -> {m['loadavg_after']}",
             f"{'item':<40} {'rate':>12}  {'unit':<12} {'slowdown':>9} {'spread':>7} "
             f"{'cpu':>5} {'GFLOP/s':>8}",
             "-" * width]
    group, starved = None, []
    for it in result["items"]:
        if group is not None and it["group"] != group:
            lines.append("")
        group = it["group"]
        slow = f"{it['slowdown']:.2f}x" if it.get("reference") else "(ref)"
        r = it["round_rates"]
        spread = f"{100 * (max(r) - min(r)) / it['rate']:.0f}%" if len(r) > 1 else "-"
        gflops = f"{it['gflops']:.1f}" if "gflops" in it else ""
        lines.append(f"{it['item']:<40} {it['rate']:>12,.1f}  {it['unit']:<12} {slow:>9} "
                     f"{spread:>7} {100 * it['cpu_util']:>4.0f}% {gflops:>8}")
        if m["device"] == "cpu" and it["cpu_util"] < 0.85:
            starved.append(it["name"])
    lines += ["-" * width,
              "slowdown: reference rate / row rate. Learner rows: vs the SAC reference update "
              "(same batches,",
              "  networks, device). Method rows: vs IWPL at the gin files' K (same batch "
              "size, each on",
              "  its own replay). Acting rows: vs the bare env with the same B. Env steps "
              "are transitions",
              "  (B per vector step). Learner batches: chunks x chunk length transitions "
              "from a TaskReplay",
              "  of real point-navigation episodes. spread: (max - min) / rate over the "
              "rounds.",
              "cpu: process CPU time / wall while timing (about 100% per busy thread).",
              "GFLOP/s: matrix-product FLOPs of one update (torch.utils.flop_counter, "
              "forward and backward;",
              "  element-wise work not counted) x updates/s; compare with the machine peak "
              "row (a float32",
              "  1024^3 matmul timed beside the others).",
              "Every agent, network, task split and env is the one its gin file builds "
              "(each row's \"gin\"",
              "  and \"networks\" in --json); the bench's options are bindings on that file."]
    if starved:
        lines.append(f"WARNING: cpu < 85% for {', '.join(starved)}: other processes took "
                     f"this CPU; rates are low and noisy.")
    return "\n".join(lines)
