"""A code location that starts a thread when imported: the warm process must refuse to fork it."""

import threading
import time

import dagster as dg

threading.Thread(target=time.sleep, args=(3600,), name="poller", daemon=True).start()

defs = dg.Definitions()
