"""Imported by a fork server (it is in the preload list): the server dies with its command.

See :func:`forensics.lifetime.guard_forkserver`. Importing this anywhere else does nothing.
"""

from forensics.lifetime import guard_forkserver

guard_forkserver()
