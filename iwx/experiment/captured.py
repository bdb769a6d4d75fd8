"""Sacred's ``captured_out_filter``: the captured output kept as a log a person can read.

Sacred calls the filter at every heartbeat on everything captured so far plus what
came since, and stores what it returns as ``cout.txt`` / Omniboard's "Captured
Out". Sacred's own ``apply_backspaces_and_linefeeds`` replays '\\r' like a terminal
but cannot undo the splice that made issue 15: a progress bar's frame is an open
line, and whatever is printed next is glued to it ("pretrain: 5%| | 19/384 [...]
[iwx] ..."), a stale state that survives in the record of a run that finished.

iwx's own bars never reach the capture (iwx.loops.progress draws them past
Sacred's tee and writes plain lines instead); this filter cleans what other code
may still write there:

* a finished line (ending in '\\n') keeps only its last non-blank '\\r' segment
  (with '\\b' applied): a bar's final state, or the line that replaced it;
* a tqdm frame glued to the front of a line is dropped, the rest kept;
* the unfinished last line is kept to be continued at the next heartbeat: its
  last non-blank segment, and a trailing '\\r' when it had one.

Idempotent (Sacred filters its own output again at every heartbeat): a clean line
passes unchanged.
"""

from __future__ import annotations

import re

# tqdm's default frame: "{desc}: {pct:3.0f}%|{bar}| {n}/{total} [{elapsed}<{left}, {rate}{postfix}]"
BAR_FRAME = re.compile(r"(?:[^\r\n]*?: )?\s*\d{1,3}%\|[^|\n]*\|\s*[\d.]+[kMGT]?/[\d.]+[kMGT]?"
                       r"(?:\s*\[[^\]\n]*\])?")


def clean_captured_out(text: str) -> str:
    *lines, tail = text.split("\n")
    return "\n".join([_final_state(line) for line in lines] + [_unfinished(tail)])


def _final_state(line: str) -> str:
    if "\r" not in line and "\b" not in line and "%|" not in line:
        return line                       # the fast path: an ordinary line
    return _unglue(_last_segment(line))


def _unfinished(tail: str) -> str:
    """What the next heartbeat continues: the segment being written, as it is; after a
    '\r' with nothing (visible) written yet, the segment it will overwrite too."""
    if "\r" not in tail and "\b" not in tail:
        return tail
    *earlier, current = [_backspaced(s) for s in tail.split("\r")]
    if current.strip():
        return current
    shown = _last_shown(earlier)
    return (shown + "\r" if shown else "") + current


def _last_segment(line: str) -> str:
    return _last_shown([_backspaced(s) for s in line.split("\r")])


def _last_shown(segments: list[str]) -> str:
    shown = [s for s in segments if s.strip()]
    return shown[-1].rstrip() if shown else ""


def _backspaced(segment: str) -> str:
    if "\b" not in segment:
        return segment
    chars: list[str] = []
    for char in segment:
        if char == "\b":
            if chars:
                chars.pop()
        else:
            chars.append(char)
    return "".join(chars)


def _unglue(line: str) -> str:
    """A line that starts with a bar frame and goes on: the rest. A frame alone (a bar's
    final state, closed with '\\n') stays."""
    frame = BAR_FRAME.match(line)
    if frame is None:
        return line
    rest = line[frame.end():]
    return rest if rest.strip() else line
