"""The stand-in for SIGKILL / Ctrl-C that the resume tests raise inside a training loop."""


class Killed(BaseException):
    """Raised at a chosen point of a loop: a BaseException, so no ``except Exception`` of the
    code under test catches it, and nothing after that point runs (as after SIGKILL)."""
