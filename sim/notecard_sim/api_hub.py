"""The hub, environment, card and DFU requests (a mixin of Card)."""
import base64
import hashlib
import threading
import zlib

from .util import DFU_CHUNK_MAX, ReqError, now


class HubCardAPI:
    # ---- hub.* ---------------------------------------------------------------------------
    HUB_MODES = ("periodic", "continuous", "minimum", "off", "dfu", "dfu-completed")

    def r_hub_set(self, req):
        h = self.state["hub"]
        changed = False
        if "mode" in req:
            if req["mode"] not in self.HUB_MODES and req["mode"] != "-":
                raise ReqError("hub.set: unknown mode '%s'" % req["mode"])
            h["mode"] = "periodic" if req["mode"] == "-" else req["mode"]
            changed = True
        for k in ("product", "sn", "host", "voutbound", "vinbound"):
            if k in req:
                if not isinstance(req[k], str):
                    raise ReqError("hub.set: %s must be a string" % k)
                h[k] = req[k]
                changed = True
        for k in ("outbound", "inbound", "duration", "seconds"):
            if k in req:
                if not isinstance(req[k], int) or isinstance(req[k], bool):
                    raise ReqError("hub.set: %s must be an integer" % k)
                h[k] = req[k]
                changed = True
        if "version" in req:
            h["version"] = req["version"]
            changed = True
        if "align" in req:
            h["align"] = bool(req["align"])
            changed = True
        if changed:
            self.state["flash_writes"] += 1
            self.count("hub_set_writes")
        if req.get("sync"):
            self.request_sync()
        return {}

    def r_hub_get(self, req):
        h = self.state["hub"]
        out = {"device": self.opts.device, "mode": h["mode"]}
        for k in ("product", "sn", "host", "voutbound", "vinbound"):
            if h.get(k):
                out[k] = h[k]
        for k in ("outbound", "inbound"):
            if k in h:
                out[k] = h[k]
        return out

    def r_hub_status(self, req):
        if self.state["hub"]["mode"] == "continuous" and not self.gone_hub():
            return {"status": "connected (session open) {connected}", "connected": True}
        return {"status": "idle {disconnected}"}

    def gone_hub(self):
        return False

    def r_hub_sync(self, req):
        if not self._sync_allowed():
            raise ReqError("hub.sync: hub is in mode 'off' {hub-mode}")
        self.request_sync()
        self.count("sync_requests")
        return {}

    def r_hub_sync_status(self, req):
        st = self.state
        if req.get("sync") and self._sync_allowed() and any(
                n.get("pending") for f in st["files"].values() for n in f["notes"]):
            self.request_sync()
        if self.sync_busy or self.sync_event.is_set():
            out = {"status": "sync in progress {sync-begin}", "sync": True}
            if st["sync_requested"]:
                out["requested"] = max(0, now() - st["sync_requested"])
            return out
        if st["last_sync"] is None:
            return {"status": "idle"}
        return {"status": "completed {sync-end}", "time": st["last_sync"],
                "completed": max(0, now() - st["last_sync"])}

    # ---- env.* ---------------------------------------------------------------------------
    def _env_all(self):
        out = dict(self.state["env_default"])
        out.update(self.state["env"])
        out.update(self.state["env_local"])
        return out

    def _env_value(self, name):
        return self._env_all().get(name)

    def r_env_get(self, req):
        t = self.state["env_modified"]
        if isinstance(req.get("time"), int) and req["time"] >= t:
            raise ReqError("environment variables have not been modified {env-not-modified}")
        if "name" in req:
            v = self._env_value(req["name"])
            out = {"time": t}
            if v is not None:
                out["text"] = v
            return out
        allv = self._env_all()
        if "names" in req:
            if not isinstance(req["names"], list):
                raise ReqError("env.get: names must be an array")
            allv = {k: v for k, v in allv.items() if k in req["names"]}
        return {"body": allv, "time": t}

    def r_env_modified(self, req):
        t = self.state["env_modified"]
        if isinstance(req.get("time"), int) and req["time"] >= t:
            raise ReqError("environment variables have not been modified {env-not-modified}")
        return {"time": t}

    def r_env_default(self, req):
        name = req.get("name")
        if not isinstance(name, str) or not name:
            raise ReqError("env.default: name is required")
        text = req.get("text", "")
        if text:
            self.state["env_default"][name] = text
        else:
            self.state["env_default"].pop(name, None)
        self._env_changed()
        return {}

    def r_env_set(self, req):
        name = req.get("name")
        if not isinstance(name, str) or not name:
            raise ReqError("env.set: name is required")
        text = req.get("text", "")
        if text:
            self.state["env_local"][name] = text
        else:
            self.state["env_local"].pop(name, None)
        self._env_changed()
        return {"time": self.state["env_modified"]}

    def _env_changed(self):
        self.state["env_modified"] = max(now(), self.state["env_modified"] + 1)
        a = self.state["attn"]
        if a["armed"] and "env" in a["modes"]:
            self._attn_fire("modified")

    # ---- card.* --------------------------------------------------------------------------
    def r_card_version(self, req):
        v = self.opts.firmware
        major, minor, patch = (int(x) for x in v.split(".")[:3])
        return {"version": "notecard-" + v, "device": self.opts.device,
                "name": "Blues Wireless Notecard", "sku": self.opts.sku, "board": "1.11",
                "cell": True, "gps": True,
                "body": {"org": "Blues Wireless", "product": "Notecard",
                         "version": "notecard-" + v, "ver_major": major, "ver_minor": minor,
                         "ver_patch": patch, "ver_build": 17000, "built": "notecard-sim"}}

    def r_card_status(self, req):
        h = self.state["hub"]
        out = {"status": "{normal}", "usb": True, "storage": self.storage_percent(),
               "connected": h["mode"] == "continuous", "cell": True}
        if self.state["time_known"]:
            out["time"] = now()
        if h["mode"] == "periodic":
            out["inbound"], out["outbound"] = h.get("inbound", 240), h.get("outbound", 60)
        return out

    def r_card_time(self, req):
        if not self.state["time_known"]:
            raise ReqError("time is not yet set {no-time}")
        return {"time": now(), "zone": "UTC,Unknown", "minutes": 0}

    def r_card_wireless(self, req):
        for k in ("mode", "apn", "method", "hours"):
            if k in req:
                raise ReqError("card.wireless: changing %s is not supported by this simulator "
                               "{not-supported}" % k)
        bars = self.opts.bars
        return {"status": "{modem-on}", "count": 3,
                "net": {"iccid": "89011703278100000000", "imsi": "310170810000000",
                        "imei": "860000000000000", "modem": "sim", "band": "LTE BAND 2",
                        "rat": "lte", "rssir": -69, "rssi": -60 - 10 * (4 - bars),
                        "rsrp": -90 - 5 * (4 - bars), "sinr": 10, "rsrq": -10, "bars": bars,
                        "mcc": 310, "mnc": 410}}

    def r_card_location(self, req):
        return {"status": "GPS inactive {gps-inactive}", "mode": "off"}

    def r_card_restart(self, req):
        self.count("restarts")
        self.restart_pending = True
        return {}

    def r_card_attn(self, req):
        a = self.state["attn"]
        if "on" in req and req["on"]:
            a["enabled"] = True
        if "off" in req and req["off"]:
            a["enabled"] = False
        mode = req.get("mode")
        if mode is not None:
            if not isinstance(mode, str):
                raise ReqError("card.attn: mode must be a string")
            for kw in [m.strip() for m in mode.split(",") if m.strip()]:
                neg = kw.startswith("-")
                kw = kw.lstrip("-")
                if kw == "arm":
                    a["armed"], a["set"], a["fired"] = True, False, []
                    for cb in self.attn_listeners:
                        cb(False)
                    secs = req.get("seconds")
                    if isinstance(secs, int) and secs > 0:
                        self.attn_arms = getattr(self, "attn_arms", 0) + 1
                        threading.Timer(secs, self._attn_timeout, args=(self.attn_arms,)).start()
                elif kw == "disarm":
                    a["armed"], a["set"] = False, True
                    for cb in self.attn_listeners:
                        cb(True)
                elif kw in ("files", "env", "sleep", "connected", "watchdog", "location",
                            "motion", "usb", "wireless", "signal", "auxgpio", "rearm"):
                    if neg:
                        if kw in a["modes"]:
                            a["modes"].remove(kw)
                    elif kw not in a["modes"]:
                        a["modes"].append(kw)
                else:
                    raise ReqError("card.attn: unknown mode '%s'" % kw)
        if "files" in req:
            if not isinstance(req["files"], list):
                raise ReqError("card.attn: files must be an array")
            a["files"] = list(req["files"])
        out = {}
        if req.get("verify") or not req.keys() - {"req", "cmd", "id", "crc"} or a["set"]:
            if a["set"] and a["fired"]:
                out["files"] = list(a["fired"])
            elif req.get("verify") and a["files"]:
                out["files"] = list(a["files"])
            out["set"] = a["set"]
        if not a["enabled"]:
            out["off"] = True
        return out

    def _attn_timeout(self, arm):
        with self.lock:
            if arm == getattr(self, "attn_arms", 0) and self.state["attn"]["armed"]:
                self._attn_fire("timeout")

    # ---- dfu.* ---------------------------------------------------------------------------
    def r_dfu_status(self, req):
        d = self.state["dfu"]
        if req.get("name", "user") == "card":
            return {"mode": "idle", "status": "no download in progress", "on": True}
        if req.get("on"):
            d["on"] = True
        if req.get("off"):
            d["on"] = False
        if "version" in req:
            d["host_version"] = req["version"]
        if req.get("stop"):
            d["host_status"] = req.get("status")
            d["host_err"] = req.get("err")
            d["image"], d["meta"] = None, None
            d["mode"] = "error" if req.get("err") else "idle"
            self.count("dfu_stops")
            self.hub.report_dfu(self, d)
        out = {"mode": d["mode"], "on": d["on"]}
        if not d["on"]:
            out["off"] = True
        if d["mode"] == "ready" and d["on"]:
            out["status"] = "successfully downloaded"
            out["body"] = d["meta"]
        elif d["mode"] == "error":
            out["status"] = d["host_err"] or "error"
        else:
            out["status"] = "no download in progress"
        return out

    def r_dfu_get(self, req):
        d = self.state["dfu"]
        if req.get("binary"):
            raise ReqError("dfu.get: binary transfers are not supported by this simulator "
                           "{not-supported}")
        if d["mode"] != "ready" or d["image"] is None:
            raise ReqError("dfu.get: no firmware image is ready {dfu-not-ready}")
        length = req.get("length")
        offset = req.get("offset", 0)
        if not isinstance(length, int) or length < 0:
            raise ReqError("dfu.get: length is required")
        if length > DFU_CHUNK_MAX:
            raise ReqError("dfu.get: length may be at most %d bytes" % DFU_CHUNK_MAX)
        if length == 0:
            return {}
        if not isinstance(offset, int) or offset < 0:
            raise ReqError("dfu.get: offset must be a non-negative integer")
        img = base64.b64decode(d["image"])
        self.count("dfu_bytes", len(img[offset:offset + length]))
        return {"payload": base64.b64encode(img[offset:offset + length]).decode()}

    def set_dfu_image(self, data, name="host-image.bin", version=None, ready=True, md5=None):
        """A host image on the hub; `md5` overrides the digest reported (to test a mismatch)."""
        d = self.state["dfu"]
        meta = {"length": len(data), "md5": md5 or hashlib.md5(data).hexdigest(),
                "crc32": zlib.crc32(data) & 0xFFFFFFFF, "created": now(), "modified": now(),
                "name": name, "source": name, "type": "firmware", "info": {}}
        if version:
            meta["version"] = version
        if ready:
            d["image"], d["meta"], d["mode"] = base64.b64encode(data).decode(), meta, "ready"
            d["host_status"] = d["host_err"] = None
        else:
            d["pending"] = {"image": base64.b64encode(data).decode(), "meta": meta}
