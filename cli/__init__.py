"""The ``asm`` command line: the synchronous face of the client, on top of every other layer."""

from agent_session_manager.cli.app import main

__all__ = ["main"]
