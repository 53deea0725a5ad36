"""Several API worker processes on one port, each with its own listening socket.

uvicorn's own `workers` share one listening socket: whichever process wakes first
accepts, and connections opened together (a client's pool) often all land on one
process while the other idles (measured: 32 connections split 4,000/0 requests in
two of four runs). Here every worker binds the port itself with `SO_REUSEPORT`, so
the kernel spreads new connections over them by their addresses. The parent only
starts the workers, replaces one that dies, and stops them all on SIGTERM/SIGINT.
"""

from __future__ import annotations

import logging
import multiprocessing
import signal
import socket
import threading
import time
from typing import Any

import uvicorn

log = logging.getLogger("enrichment_pipeline.api")

APP_FACTORY = "enrichment_pipeline.api.app:create_app"
RESTARTS_PER_MINUTE = 5  # more means a worker cannot start at all: give up, say why


def reuse_port_socket(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    return sock


def _worker(host: str, port: int, options: dict[str, Any], log_config: dict[str, Any]) -> None:
    sock = reuse_port_socket(host, port)
    sock.listen(2048)
    config = uvicorn.Config(APP_FACTORY, factory=True, log_config=log_config, **options)
    uvicorn.Server(config).run(sockets=[sock])


def serve(host: str, port: int, workers: int, options: dict[str, Any], log_config: dict[str, Any]) -> int:
    """Run `workers` processes until SIGTERM/SIGINT; 1 when the port cannot be bound or workers
    keep dying."""
    try:
        # Fails at once, here, when another program holds the port (only sockets that all set
        # SO_REUSEPORT share one).
        reuse_port_socket(host, port).close()
    except OSError as exc:
        log.error("cannot listen on %s:%s: %s", host, port, exc)
        return 1
    context = multiprocessing.get_context("spawn")

    def start() -> multiprocessing.process.BaseProcess:
        process = context.Process(target=_worker, args=(host, port, options, log_config), name="api-worker")
        process.start()
        return process

    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    processes = [start() for _ in range(workers)]
    restarts: list[float] = []
    code = 0
    while not stop.wait(0.5):
        for i, process in enumerate(processes):
            if process.is_alive():
                continue
            restarts = [t for t in restarts if time.monotonic() - t < 60] + [time.monotonic()]
            if len(restarts) > RESTARTS_PER_MINUTE:
                log.error("API workers keep exiting (last exit code %s): stopping", process.exitcode)
                stop.set()
                code = 1
                break
            log.warning("API worker %s exited (code %s): starting another", process.pid, process.exitcode)
            processes[i] = start()
    for process in processes:
        if process.is_alive():
            process.terminate()  # uvicorn's graceful shutdown
    for process in processes:
        process.join(timeout=30)
        if process.is_alive():
            process.kill()
    return code
