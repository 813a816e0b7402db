"""Names shared by the card's modules: notefile kinds, limits, the request error."""
import json
import re
import time

from .wire import dumps

__all__ = ["dumps", "ReqError", "suffix_of", "now"]

QUEUE_OUT = (".qo", ".qos")
QUEUE_IN = (".qi", ".qis")
DB_SYNCED = (".db", ".dbs")
ALL_SUFFIXES = QUEUE_OUT + QUEUE_IN + DB_SYNCED + (".dbx",)
NAME_RE = re.compile(r"^[A-Za-z0-9_\-]+(\.[A-Za-z0-9_\-]+)*$")
NOTE_OVERHEAD = 64          # bytes of flash per stored note beyond its content (estimate)
DFU_CHUNK_MAX = 8192

# Requests the real card knows (the schema set) that the simulator does not implement.
KNOWN_REQUESTS = set("""
card.attn card.aux card.aux.serial card.binary card.binary.get card.binary.put card.carrier
card.contact card.dfu card.illumination card.io card.led card.location card.location.mode
card.location.track card.monitor card.motion card.motion.mode card.motion.sync
card.motion.track card.power card.random card.restart card.restore card.sleep card.status
card.temp card.time card.trace card.transport card.triangulate card.usage.get card.usage.test
card.version card.voltage card.wifi card.wireless card.wireless.penalty dfu.get dfu.status
env.default env.get env.modified env.set env.template file.changes file.changes.pending
file.clear file.delete file.stats hub.get hub.log hub.set hub.signal hub.status hub.sync
hub.sync.status note.add note.changes note.delete note.get note.template note.update ntn.gps
ntn.reset ntn.status var.delete var.get var.set web web.delete web.get web.post web.put
""".split())


class ReqError(Exception):
    pass


def suffix_of(name):
    i = name.rfind(".")
    return name[i:] if i >= 0 else ""


def now():
    return int(time.time())


def _parse(text):
    try:
        obj = json.loads(text)
    except (ValueError, UnicodeDecodeError):
        return {}
    return obj if isinstance(obj, dict) else {}
