"""The test-control socket: one JSON object per line in, one per line out ({"ok":true,...} or
{"ok":false,"error":"..."}). The commands are listed in COMMANDS and in notecard-sim --help.
"""
import base64
import errno as errno_mod
import json
import os
import socket
import threading

HELP = """control socket commands (JSON lines, field "cmd"):
  ping                                  -> {"ok":true}
  inject  file body? payload? note? deleted? now?   an inbound note waits on the hub for the
                                        next sync (now:true: sync at once)
  env     vars:{name:value|""} now?     environment variables set on the hub ("" unsets)
  sync                                  sync now and wait for it (not in hub mode off)
  fault   name p? count?                set one fault (io garble drop crc reset
                                        reset_response nack short_read bad_sent);
                                        clear_faults; faults -> status
  nack_errno errno:"EREMOTEIO"|"ENXIO"|n   errno the shim reports for a NACK
  timing  mode:"fast"|"real" proc_ms?   change the timing model
  gone    seconds open_fails?           the card disappears (i2c NACKs, serial silent;
                                        open_fails: i2c opens fail with ENODEV); back
  unplug  seconds?                      serial: close the pty (the host sees a hangup) and
                                        remove --serial-link; replug (or after seconds): a new
                                        pty, the link points at it -> {"serial": path}
  reset   seconds?                      reset the card now (in-flight request lost)
  counters                              request/fault/bus counters
  log     since?                        the request log from absolute index `since` (the
                                        reply's `next` continues it): entries t transport req
                                        rsp (parsed; {} / null) req_raw rsp_raw (as on the wire)
  hub                                   every event written to the hub
  attn                                  ATTN pin: set (high), armed, modes, files, fired
  files                                 notefiles: total pending bytes_json bytes_air template
  dfu     path|data(base64) name? version? md5? now?   a host image on the hub (ready at
                                        next sync; now:true: at once; md5: report this digest
                                        instead of the real one); dfu_status
  state                                 hub settings, env, flash writes, storage
  transcript                            transcript replay status
  set     bars? time_known?             radio bars, whether the card knows the time
  quit                                  stop the simulator
"""


class Control:
    def __init__(self, sim, path):
        self.sim = sim
        self.path = path
        if os.path.exists(path):
            os.unlink(path)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(path)
        self.sock.listen(8)
        threading.Thread(target=self._accept, daemon=True, name="control").start()

    def _accept(self):
        while True:
            conn, _ = self.sock.accept()
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn):
        f = conn.makefile("rwb")
        try:
            for line in f:
                try:
                    msg = json.loads(line)
                    out = self.handle(msg)
                    out["ok"] = True
                except Exception as e:          # report any failure to the test, keep serving
                    out = {"ok": False, "error": "%s: %s" % (type(e).__name__, e)}
                f.write(json.dumps(out).encode() + b"\n")
                f.flush()
        except OSError:
            pass
        finally:
            conn.close()

    def handle(self, m):
        sim = self.sim
        card, faults, dev = sim.card, sim.faults, sim.device
        cmd = m.get("cmd")
        if cmd == "ping":
            return {}
        if cmd == "inject":
            item = {k: m[k] for k in ("file", "body", "payload", "note", "deleted", "time")
                    if k in m}
            sim.hub.inject(item)
            if m.get("now"):
                return {"synced": sim.sync_now()}
            return {}
        if cmd == "env":
            sim.hub.inject({"env": m.get("vars", {})})
            if m.get("now"):
                return {"synced": sim.sync_now()}
            return {}
        if cmd == "sync":
            return {"synced": sim.sync_now()}
        if cmd == "fault":
            faults.set(m["name"], m.get("p"), m.get("count"))
            return {}
        if cmd == "clear_faults":
            faults.clear()
            return {}
        if cmd == "faults":
            return faults.status()
        if cmd == "nack_errno":
            e = m["errno"]
            faults.nack_errno = getattr(errno_mod, e) if isinstance(e, str) else int(e)
            return {}
        if cmd == "timing":
            if "mode" in m:
                if m["mode"] not in ("fast", "real"):
                    raise ValueError("mode must be fast or real")
                sim.timing.mode = m["mode"]
            if "proc_ms" in m:
                sim.timing.proc_ms = m["proc_ms"]
            return {}
        if cmd == "gone":
            faults.go_away(float(m.get("seconds", 3600)), bool(m.get("open_fails")))
            return {}
        if cmd in ("unplug", "replug"):
            if sim.serial is None:
                raise ValueError("no serial port")
            sim.serial.request_plug(cmd == "replug", m.get("seconds"))
            return {"serial": sim.serial.path}
        if cmd == "back":
            faults.come_back()
            return {}
        if cmd == "reset":
            dev.reset(m.get("seconds"))
            return {}
        if cmd == "counters":
            with card.lock:
                c = dict(card.counters)
            c["attn"] = card.state["attn"]["set"]
            return {"counters": c}
        if cmd == "log":
            with card.lock:
                since = max(0, int(m.get("since", 0)) - card.requests_base)
                return {"log": card.requests[since:],
                        "next": card.requests_base + len(card.requests)}
        if cmd == "hub":
            with sim.hub.lock:
                return {"events": list(sim.hub.events)}
        if cmd == "attn":
            a = card.state["attn"]
            return {"set": a["set"], "armed": a["armed"], "modes": a["modes"],
                    "files": a["files"], "fired": a["fired"], "enabled": a["enabled"]}
        if cmd == "files":
            with card.lock:
                out = {}
                for name, f in card.state["files"].items():
                    live = [n for n in f["notes"] if not n.get("deleted")]
                    out[name] = {"total": len(live),
                                 "pending": len([n for n in f["notes"] if n.get("pending")]),
                                 "bytes_json": f["bytes_json"], "bytes_air": f["bytes_air"],
                                 "bytes_templated": f["bytes_air"],
                                 "synced": f["synced_notes"],
                                 "template": card.state["templates"].get(name)}
                return {"files": out}
        if cmd == "dfu":
            if "path" in m:
                with open(m["path"], "rb") as fh:
                    data = fh.read()
            else:
                data = base64.b64decode(m["data"])
            with card.lock:
                card.set_dfu_image(data, m.get("name", "host-image.bin"), m.get("version"),
                                   ready=bool(m.get("now")), md5=m.get("md5"))
            return {}
        if cmd == "dfu_status":
            d = card.state["dfu"]
            return {"dfu": {k: v for k, v in d.items() if k not in ("image", "pending")},
                    "pending": d.get("pending") is not None}
        if cmd == "state":
            with card.lock:
                st = card.state
                return {"hub": st["hub"], "env": card._env_all(),
                        "env_modified": st["env_modified"], "flash_writes": st["flash_writes"],
                        "storage": card.storage_percent(), "time_known": st["time_known"],
                        "last_sync": st["last_sync"], "templates": st["templates"]}
        if cmd == "transcript":
            if sim.replay is None:
                raise ValueError("no transcript loaded")
            return sim.replay.status()
        if cmd == "set":
            if "bars" in m:
                sim.opts.bars = int(m["bars"])
            if "time_known" in m:
                card.state["time_known"] = bool(m["time_known"])
            return {}
        if cmd == "quit":
            threading.Timer(0.05, sim.shutdown).start()
            return {}
        raise ValueError("unknown command: %r" % cmd)
