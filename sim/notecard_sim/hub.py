"""The simulated Notehub: synced notes become JSON lines with Notehub's routed-event field names,
and inbound notes / environment variables wait here (injected or dropped into a directory) until
the card's next sync picks them up.

Inbound (`--inbound PATH`): a directory whose `*.json` files are taken in name order and then
deleted (each one JSON object or an array of them), or a file of JSON lines, read on from where
the last sync stopped. Each object is one of
  {"file": "data.qi", "body": {...}, "payload": "base64", "note": "id"}   a note (.qi/.qis/.db/.dbs)
  {"file": "config.db", "note": "id", "deleted": true}                     delete a db note
  {"env": {"name": "value", ...}}                                          set (""/null: unset) vars
"""
import glob
import json
import os
import threading
import time
import uuid


class Hub:
    def __init__(self, hub_file=None, inbound_dir=None):
        self.hub_file = hub_file
        self.inbound_dir = inbound_dir
        self.lock = threading.Lock()
        self.pending = []           # injected inbound items waiting for a sync
        self.events = []            # every event written
        self.inbound_offset = 0     # how far an inbound JSON-lines file has been read

    def _write(self, ev):
        self.events.append(ev)
        if self.hub_file:
            # one write(2) of the whole line on an O_APPEND descriptor: a reader polling the
            # file sees whole lines, or at most the end of the last one still arriving
            line = (json.dumps(ev, separators=(",", ":")) + "\n").encode()
            fd = os.open(self.hub_file, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                while line:
                    line = line[os.write(fd, line):]
            finally:
                os.close(fd)

    def emit(self, card, name, note):
        h = card.state["hub"]
        ev = {"event": str(uuid.uuid4()), "device": card.opts.device,
              "product": h.get("product", ""), "sn": h.get("sn", ""), "file": name,
              "when": note["time"], "received": time.time()}
        if not name.endswith((".qo", ".qos")):
            ev["note"] = note["id"]
        if note.get("deleted"):
            ev["deleted"] = True
        if "body" in note:
            ev["body"] = note["body"]
        if "payload" in note:
            ev["payload"] = note["payload"]
        if note.get("key"):
            ev["encrypted"] = True
            ev["key"] = note["key"]
        ev["template"] = bool(note.get("templated"))
        ev["bytes_json"] = note.get("json", 0)
        ev["bytes_air"] = note.get("air", 0)
        with self.lock:
            self._write(ev)

    def report_dfu(self, card, d):
        """The host's dfu.status stop report, as Notehub would show it (file `_dfu`)."""
        body = {"mode": d["mode"]}
        if d.get("host_status"):
            body["status"] = d["host_status"]
        if d.get("host_err"):
            body["err"] = d["host_err"]
        ev = {"event": str(uuid.uuid4()), "device": card.opts.device,
              "product": card.state["hub"].get("product", ""), "file": "_dfu",
              "body": body, "when": int(time.time()), "received": time.time()}
        with self.lock:
            self._write(ev)

    def inject(self, item):
        with self.lock:
            self.pending.append(item)

    def take_inbound(self):
        with self.lock:
            items, self.pending = self.pending, []
        if self.inbound_dir and os.path.isfile(self.inbound_dir):
            items.extend(self._take_lines(self.inbound_dir))
        elif self.inbound_dir:
            for path in sorted(glob.glob(os.path.join(self.inbound_dir, "*.json"))):
                try:
                    with open(path) as f:
                        data = json.load(f)
                except (OSError, ValueError):
                    continue        # a file still being written: next sync
                items.extend(data if isinstance(data, list) else [data])
                os.unlink(path)
        return items

    def _take_lines(self, path):
        """New complete lines of a JSON-lines inbound file."""
        with open(path, "rb") as f:
            f.seek(self.inbound_offset)
            data = f.read()
        end = data.rfind(b"\n") + 1        # a line still being written waits
        self.inbound_offset += end
        out = []
        for line in data[:end].splitlines():
            if line.strip():
                try:
                    obj = json.loads(line)
                except ValueError:
                    continue
                out.extend(obj if isinstance(obj, list) else [obj])
        return out
