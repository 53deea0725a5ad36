"""The cyclic garbage collector while a process loads the pipeline's code.

Loading the code location (dagster-dbt and dbt, polars, pandera and the definitions) creates
about half a million objects (542,607 here) that live as long as the process, and almost no
garbage. Python still runs a full collection each time the heap has grown by a quarter, walking
every object loaded so far: about a quarter of the load (2.3-2.5 s -> 1.7-1.9 s in a fresh
process). Paused while loading, then frozen, those objects are never walked again; everything
created later is collected as usual.

Used where a process loads the pipeline: `definitions.py` (the code server and every run
worker) and the CLI's `enrich` (Dagster, the enrichment definitions, the instance's storage and
the job; a whole 1,000-domain run on PostgreSQL took about 0.9x its time without the pause,
measured side by side).
"""

from __future__ import annotations

import atexit
import gc
from collections.abc import Iterator
from contextlib import contextmanager

_thawed_at_exit = False


@contextmanager
def collector_paused_while_loading() -> Iterator[None]:
    """No collection inside the block; what exists at its end is moved out of the collector's
    reach (`gc.freeze`). A collector the host had disabled stays disabled.

    The frozen objects are handed back to the collector at exit: the interpreter's last
    collections then free them as usual (DuckDB's bindings report every object of theirs still
    alive at shutdown as a leak)."""
    global _thawed_at_exit
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        if not _thawed_at_exit:
            atexit.register(gc.unfreeze)
            _thawed_at_exit = True
        if enabled:
            gc.enable()
