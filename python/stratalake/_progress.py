"""Progress display for long calls: a tqdm bar in notebooks and terminals when tqdm is
installed, else one updating line on a terminal, else nothing. The engine calls it
between units of work; Ctrl-C is checked at the same points."""
from __future__ import annotations

import sys
import time
from typing import Optional


_hinted = False


def _hint_once() -> None:
    """In a notebook without tqdm nothing shows progress: say once how to get it."""
    global _hinted
    if _hinted or "ipykernel" not in sys.modules:
        return
    _hinted = True
    import warnings
    warnings.warn("progress bars need tqdm: pip install 'stratalake[progress]' "
                  "(or pass progress=False)", stacklevel=4)


class Progress:
    """Callable handed to the engine: ``progress(stage, done, total, rows)``."""

    def __init__(self, enabled: bool = True):
        self.enabled = enabled
        self._bar = None
        self._stage: Optional[str] = None
        self._started = time.monotonic()
        self._tty = sys.stderr.isatty() if hasattr(sys.stderr, "isatty") else False
        self._notebook = "ipykernel" in sys.modules

    def __call__(self, stage: str, done: int, total: int, rows: int) -> None:
        if not self.enabled:
            return
        if self._notebook or self._tty:
            try:
                from tqdm.auto import tqdm
            except ImportError:
                tqdm = None
                _hint_once()
            if tqdm is not None:
                if stage != self._stage:
                    self.close()
                    self._bar = tqdm(total=total or None, desc=stage, unit="file", leave=False)
                    self._stage = stage
                self._bar.n = done
                self._bar.set_postfix(rows=rows, refresh=False)
                self._bar.refresh()
                return
        if self._tty:
            secs = time.monotonic() - self._started
            rate = rows / secs if secs > 0 else 0.0
            sys.stderr.write(f"\r  {stage}: {done}/{total} files, {rows:,} rows, {rate:,.0f} rows/s  ")
            sys.stderr.flush()
            self._stage = stage

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
        elif self._tty and self._stage is not None and self.enabled:
            sys.stderr.write("\n")
        self._stage = None
