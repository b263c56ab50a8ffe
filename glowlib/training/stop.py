"""Stopping a run early when its process is asked to (a signal of ``glowlib.workers.STOP_SIGNALS``, whose handler
calls :func:`request_stop`): the training loop checks the request between steps, saves ``last.pt`` at that
step and raises :class:`RunStopped`, so that the same command resumes the run exactly.
"""
from __future__ import annotations

from contextlib import contextmanager


class RunStopped(RuntimeError):
    """A run stopped at a step boundary because the process was asked to stop (SIGTERM, SIGHUP: ``request_stop``),
    after saving ``last.pt`` at that step; ``signal`` is the signal's number."""

    def __init__(self, message: str, signum: int):
        super().__init__(message)
        self.signal = signum


# The signal that asked this process to stop, if any (``request_stop``): the training loop checks it between steps,
# where the model, the optimizer and the Polyak copies agree, so that the checkpoint it then saves resumes exactly.
_stop = {"signal": None, "training": False}


def request_stop(signum: int) -> None:
    """Ask the training loop of this process to save ``last.pt`` and raise ``RunStopped`` after the current step
    (a signal handler calls this; it does nothing else, so it is safe at any point)."""
    _stop["signal"] = signum


def stop_requested() -> int | None:
    """The signal that asked this process to stop (``request_stop``), or None."""
    return _stop["signal"]


def training_now() -> bool:
    """Whether this process is inside ``train``, whose loop checks ``stop_requested`` between steps (a stop asked
    while the run is set up takes effect at its first step; one asked while it saves its end, when it returns)."""
    return _stop["training"]


@contextmanager
def in_training():
    """Mark this process as inside ``train`` (:func:`training_now`) for the block: a stop signal from here on waits
    for the next step boundary."""
    _stop["training"] = True
    try:
        yield
    finally:
        _stop["training"] = False
