"""The Storage SCP: pynetdicom server answering C-STORE (every storage SOP class) and C-ECHO.

Callers are checked twice: pynetdicom rejects unknown calling AE titles at association
(``require_calling_aet``), and an association from a listed AE title but another host is
aborted as soon as it is accepted (and any request on it refused with 0x0124).

Log lines (logger ``spectdose.node``), what a PACS log shows and nothing more: calling AE
title, peer address, association events, and per association the number of instances stored,
duplicated and refused per SeriesInstanceUID. Never a patient name, ID, birth date or any other
attribute value of the data sets.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter

from .config import NodeConfig
from .spool import STATUS_NOT_AUTHORISED, Spool

__all__ = ["StorageSCP"]

log = logging.getLogger("spectdose.node")


class StorageSCP:
    """A running (or startable) Storage SCP writing into ``spool``."""

    def __init__(self, config: NodeConfig, spool: Spool, on_stored=None):
        self.config = config
        self.spool = spool
        self.on_stored = on_stored
        self._server = None
        self._counts: dict = {}
        self._lock = threading.Lock()

    # -- policy ------------------------------------------------------------------------------

    def allowed(self, ae_title: str, host: str) -> bool:
        callers = self.config.allowed_callers
        return not callers or any(c.allows(ae_title, host) for c in callers)

    @staticmethod
    def _peer(event) -> tuple[str, str, int]:
        req = event.assoc.requestor
        ae = req.ae_title.decode(errors="replace") if isinstance(req.ae_title, bytes) else str(req.ae_title)
        return ae.strip(), str(req.address), int(req.port or 0)

    # -- handlers ----------------------------------------------------------------------------

    def _on_accepted(self, event):
        ae, host, port = self._peer(event)
        if not self.allowed(ae, host):
            log.warning("association from AE %s at %s:%d refused: caller not allowed", ae, host, port)
            event.assoc.abort()
            return
        with self._lock:
            self._counts[id(event.assoc)] = Counter()
        log.info("association from AE %s at %s:%d accepted", ae, host, port)

    def _on_closed(self, event, how: str):
        ae, host, port = self._peer(event)
        with self._lock:
            counts = self._counts.pop(id(event.assoc), None)
        if counts is None:
            return
        summary = ", ".join(f"{n} {what}" for what, n in sorted(counts.items()) if not what.startswith("series ")) \
            or "no instances"
        log.info("association from AE %s at %s:%d %s: %s", ae, host, port, how, summary)
        for what, n in sorted(counts.items()):
            if what.startswith("series "):
                log.info("  %s: %d instance(s) stored", what, n)

    def _on_echo(self, event):
        ae, host, _ = self._peer(event)
        if not self.allowed(ae, host):
            return STATUS_NOT_AUTHORISED
        log.info("C-ECHO from AE %s at %s", ae, host)
        return 0x0000

    def _on_store(self, event):
        ae, host, _ = self._peer(event)
        if not self.allowed(ae, host):
            return STATUS_NOT_AUTHORISED
        try:
            header = event.dataset
            header.file_meta = event.file_meta
            encoded = event.encoded_dataset()
        except Exception as exc:  # noqa: BLE001 - a data set pynetdicom cannot decode: refuse it
            log.warning("C-STORE from AE %s refused: cannot decode the data set (%s)", ae, type(exc).__name__)
            return 0xC000
        outcome = self.spool.store(header, encoded, calling_ae=ae)
        with self._lock:
            counts = self._counts.setdefault(id(event.assoc), Counter())
            counts[outcome.what] += 1
            if outcome.what == "stored":
                counts[f"series {outcome.series_uid}"] += 1
        if outcome.what.startswith("refused"):
            log.error("C-STORE from AE %s (series %s) %s; status 0x%04X", ae, outcome.series_uid or "?",
                      outcome.what, outcome.status)
        elif self.on_stored is not None:
            self.on_stored(outcome)
        return outcome.status

    # -- server ------------------------------------------------------------------------------

    def start(self) -> int:
        """Start listening (non-blocking); returns the port bound (useful with port 0)."""
        from pynetdicom import AE, AllStoragePresentationContexts, evt
        from pynetdicom.sop_class import Verification

        logging.getLogger("pynetdicom").setLevel(logging.WARNING)  # its debug output can dump data sets
        ae = AE(ae_title=self.config.ae_title)
        ae.maximum_pdu_size = 0
        syntaxes = _transfer_syntaxes()
        for context in AllStoragePresentationContexts:
            ae.add_supported_context(context.abstract_syntax, syntaxes)
        ae.add_supported_context(Verification)
        if self.config.allowed_callers:
            ae.require_calling_aet = sorted({c.ae_title for c in self.config.allowed_callers})
        handlers = [(evt.EVT_C_STORE, self._on_store), (evt.EVT_C_ECHO, self._on_echo),
                    (evt.EVT_ACCEPTED, self._on_accepted),
                    (evt.EVT_RELEASED, lambda e: self._on_closed(e, "released")),
                    (evt.EVT_ABORTED, lambda e: self._on_closed(e, "aborted")),
                    (evt.EVT_CONN_CLOSE, lambda e: self._on_closed(e, "dropped without release"))]
        self._server = ae.start_server((self.config.bind_address, self.config.port), block=False,
                                       evt_handlers=handlers)
        port = self._server.server_address[1]
        log.info("Storage SCP %s listening on %s:%d", self.config.ae_title, self.config.bind_address, port)
        return port

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server = None


def _transfer_syntaxes():
    from pydicom.uid import (DeflatedExplicitVRLittleEndian, ExplicitVRBigEndian, ExplicitVRLittleEndian,
                             ImplicitVRLittleEndian, JPEG2000, JPEG2000Lossless, JPEGBaseline8Bit, JPEGLosslessSV1,
                             JPEGLSLossless, RLELossless)

    return [ImplicitVRLittleEndian, ExplicitVRLittleEndian, DeflatedExplicitVRLittleEndian, ExplicitVRBigEndian,
            JPEGLosslessSV1, JPEGLSLossless, JPEG2000Lossless, RLELossless, JPEGBaseline8Bit, JPEG2000]

