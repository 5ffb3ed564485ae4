"""The hosts as a terminal reaches them: the adapter behind ``terminals.apps.uploads``' ports.

``TerminalHost(world)`` is ``TransitHostPort`` (the operator's host takes an upload,
``host.upload``; a PSAM made before upload keys gets its key from the terminal's region,
``register.upload_key``) and ``ListsPort`` (the hub's blacklist and revoked concessions,
``register.blacklist_copy``; the version a terminal holds noted in its register,
``register.record_sync``). The terminal's side — its state, its PSAM, what it keeps — is
``terminals.apps.uploads``; an entry point that holds the world and the terminals' files
(the CLI, the simulator) joins the two:

    with TerminalState.open(directory) as state:
        uploads.upload_unsent(state, TerminalHost(world), terminal_id, now=now)

The services never import ``terminals`` (``.importlinter``): this class fits the ports by
shape, and speaks the terminal's record type, ``sbcard.chip.purse_record.PurseRecord``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from sbcard.chip.purse_record import PurseRecord
from sbcard.services.terminals import register
from sbcard.services.transit import host
from sbcard.store.world import World


class TerminalHost:
    """The operator's host, the hub's lists and the terminals' register, for terminals (see the module doc)."""

    def __init__(self, world: World) -> None:
        self.world = world

    # --- TransitHostPort
    def upload_key(self, terminal_id: str) -> register.UploadKey:
        return register.upload_key(self.world, terminal_id)

    def upload(self, terminal_id: str, records: Sequence[PurseRecord], *, mac: str,
               now: dt.datetime) -> host.UploadResult:
        return host.upload(self.world, terminal_id, records, now=now, mac=mac)

    # --- ListsPort
    def lists(self) -> register.BlacklistCopy:
        return register.blacklist_copy(self.world)

    def synced(self, terminal_id: str, *, version: int, now: dt.datetime) -> None:
        register.record_sync(self.world, terminal_id, version=version, now=now)
