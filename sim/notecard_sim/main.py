"""notecard-sim entry point: options, wiring, the sync scheduler."""
import argparse
import json
import os
import signal
import sys
import threading
import time

from . import VERSION
from .card import Card
from .control import HELP as CONTROL_HELP
from .device import Device
from .faults import Faults, Timing
from .hub import Hub

EPILOG = """
The serial pty path is printed on stdout as "serial: /dev/pts/N" (and "i2c: PATH",
"control: PATH", then "ready"), and written to --info FILE as JSON
{"serial":..., "i2c":..., "control":..., "pid":...}.

I2C: run the host program with LD_PRELOAD=<builddir>/tests/lib/.libs/libi2cshim.so and
NOTEGW_I2C_SIM=<the --i2c socket>; its open("/dev/i2c-N") and i2c-dev ioctls then reach this
card (address --i2c-address, default 0x17).

Sync model: hub.sync, note.add sync:true, hub.set sync:true, or the hub mode's schedule
(periodic: every outbound/inbound minutes, a minute being --minute seconds; continuous: at once)
move .qo/.qos notes and changed .db/.dbs notes to --hub FILE and deliver inbound notes and
environment variables from the control socket and --inbound DIR. Mode off: nothing moves.

Exit status: 0, or 3 when a --transcript was not replayed exactly (mismatch or unfinished).

""" + CONTROL_HELP


def parse_args(argv):
    p = argparse.ArgumentParser(
        prog="notecard-sim", description="A Blues Notecard simulator (serial and I2C).",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--serial", action="store_true", help="serve the card on a new pty")
    p.add_argument("--serial-link", metavar="PATH",
                   help="keep a symlink to the pty here (a stable name, like /dev/ttyACM0)")
    p.add_argument("--i2c", metavar="SOCKET", help="serve serial-over-I2C to the shim here")
    p.add_argument("--i2c-address", type=lambda s: int(s, 0), default=0x17, metavar="ADDR",
                   help="the card's 7-bit I2C address (default 0x17)")
    p.add_argument("--control", metavar="SOCKET", help="JSON-lines test control socket")
    p.add_argument("--attn-file", metavar="FILE",
                   help="mirror the ATTN pin here: '1' high, '0' low (rewritten on change)")
    p.add_argument("--info", metavar="FILE", help="write the endpoints as JSON here")
    p.add_argument("--state", metavar="DIR", help="persist notefiles, env and settings here")
    p.add_argument("--hub", metavar="FILE", help="append synced notes here as JSON lines")
    p.add_argument("--inbound", metavar="DIR|FILE",
                   help="inbound notes/env for the next sync: *.json files in DIR (deleted "
                        "once taken), or new JSON lines of FILE")
    p.add_argument("--dfu", metavar="FILE", help="a host firmware image, ready for dfu.get")
    p.add_argument("--dfu-version", metavar="VER", help="version reported for --dfu")
    p.add_argument("--timing", choices=("fast", "real"), default="fast",
                   help="fast: near-zero delays; real: 100 kHz I2C, UART baud, processing")
    p.add_argument("--baud", type=int, default=9600, help="UART baud rate (real timing)")
    p.add_argument("--i2c-hz", type=int, default=100000, help="I2C clock (real timing)")
    p.add_argument("--proc-ms", type=float, help="per-request processing time (ms)")
    p.add_argument("--minute", type=float, default=60.0,
                   help="seconds in a simulated minute for periodic syncs (default 60)")
    p.add_argument("--log", metavar="FILE", help="append every request/response here (JSONL)")
    p.add_argument("--transcript", metavar="FILE", help="answer from this transcript")
    p.add_argument("--no-api-check", dest="api_check", action="store_false",
                   help="do not check requests and answers against api.json (the simulator's "
                        "description of the Notecard API; mismatches go to stderr)")
    p.add_argument("--product", default="", help="ProductUID the card starts with")
    p.add_argument("--sn", default="", help="serial number the card starts with")
    p.add_argument("--device", default="dev:864475040000001", help="device UID")
    p.add_argument("--sku", default="NOTE-WBNAW", help="SKU reported by card.version")
    p.add_argument("--firmware", default="8.1.3", help="firmware version (major.minor.patch)")
    p.add_argument("--capacity", type=int, default=1 << 20,
                   help="flash bytes for notes (80%% usable; default 1 MiB)")
    p.add_argument("--fresh", action="store_true",
                   help="the card does not know the time until its first sync")
    p.add_argument("--bars", type=int, default=3, help="signal bars")
    p.add_argument("--seed", type=int, default=None, help="random seed for faults")
    p.add_argument("--version", action="version", version="notecard-sim " + VERSION)
    a = p.parse_args(argv)
    if not a.serial and not a.i2c:
        p.error("need --serial and/or --i2c")
    return a


class Sim:
    def __init__(self, opts):
        self.opts = opts
        self.stopping = threading.Event()
        self.faults = Faults(opts.seed)
        self.timing = Timing(opts.timing, opts.baud, opts.i2c_hz, opts.proc_ms)
        self.hub = Hub(opts.hub, opts.inbound)
        self.logf = open(opts.log, "a") if opts.log else None
        self.loglock = threading.Lock()
        if opts.state:
            os.makedirs(opts.state, exist_ok=True)
        self.card = Card(opts, self.hub, self._log)
        if opts.attn_file:
            self.card.attn_listeners.append(self._attn_changed)
            self._attn_changed(self.card.state["attn"]["set"])
        self.replay = None
        if opts.transcript:
            from .transcript import Replay
            self.replay = Replay(opts.transcript, self.card, self.faults)
        self.device = Device(self.card, self.faults, self.timing, self.replay)
        if opts.dfu:
            with open(opts.dfu, "rb") as f:
                self.card.set_dfu_image(f.read(), os.path.basename(opts.dfu), opts.dfu_version)
        self.sync_lock = threading.Lock()
        self.last_out = self.last_in = time.monotonic()

    def _log(self, entry):
        if self.logf:
            with self.loglock:
                self.logf.write(json.dumps(entry) + "\n")
                self.logf.flush()

    def sync_now(self):
        """One sync: outbound to the hub file, inbound to the card. Returns counts."""
        with self.sync_lock:
            with self.card.lock:
                if not self.card._sync_allowed():
                    raise ValueError("hub mode is off: nothing syncs")
                self.card.sync_busy = True
                self.card.sync_event.clear()
            time.sleep(2.0 if self.timing.real() else 0.01)
            with self.card.lock:
                try:
                    out, got = self.card.sync()
                    self.card.save()
                finally:
                    self.card.sync_busy = False
            self.last_out = self.last_in = time.monotonic()
            return {"out": out, "in": got}

    def _scheduler(self):
        while not self.stopping.is_set():
            fired = self.card.sync_event.wait(0.1)
            try:
                h = self.card.state["hub"]
                mode = h["mode"]
                if mode == "off":
                    self.card.sync_event.clear()
                    continue
                if fired:
                    self.sync_now()
                    continue
                t = time.monotonic()
                minute = self.opts.minute
                if mode == "continuous" and self.hub.pending:
                    self.sync_now()
                elif mode == "periodic":
                    pending = any(n.get("pending") for f in self.card.state["files"].values()
                                  for n in f["notes"])
                    if (pending and t - self.last_out >= h.get("outbound", 60) * minute) or \
                            t - self.last_in >= h.get("inbound", 240) * minute:
                        self.sync_now()
            except Exception as e:      # keep the card alive; tests see it on stderr
                print("notecard-sim: sync: %s" % e, file=sys.stderr)
                time.sleep(0.1)

    def run(self):
        o = self.opts
        info = self.info = {"pid": os.getpid()}
        self.serial = None
        if o.serial:
            from .serialport import SerialPort
            self.serial = SerialPort(self.device, o.serial_link, self._serial_changed)
            self.serial.start()
            info["serial"] = self.serial.path
            if o.serial_link:
                info["serial_link"] = os.path.abspath(o.serial_link)
            print("serial: %s" % self.serial.path)
        if o.i2c:
            from .i2c import I2CServer
            self.i2c = I2CServer(self.device, o.i2c, o.i2c_address)
            self.i2c.start()
            info["i2c"] = os.path.abspath(o.i2c)
            print("i2c: %s" % info["i2c"])
        if o.control:
            from .control import Control
            self.control = Control(self, o.control)
            info["control"] = os.path.abspath(o.control)
            print("control: %s" % info["control"])
        threading.Thread(target=self._scheduler, daemon=True, name="sync").start()
        # handlers before "ready": a test may stop us the moment we say so
        signal.signal(signal.SIGTERM, lambda *a: self.shutdown())
        signal.signal(signal.SIGINT, lambda *a: self.shutdown())
        self._write_info()
        print("ready", flush=True)
        self.stopping.wait()
        with self.card.lock:
            self.card.save()
        if o.serial_link and os.path.islink(o.serial_link):
            os.unlink(o.serial_link)
        if self.replay is not None:
            st = self.replay.status()
            print("notecard-sim: transcript: %s" % json.dumps(st), file=sys.stderr)
            if st["mismatches"] or not st["done"]:
                return 3
        return 0

    def _attn_changed(self, high):
        tmp = self.opts.attn_file + ".tmp"
        with open(tmp, "w") as f:
            f.write("1\n" if high else "0\n")
        os.replace(tmp, self.opts.attn_file)

    def _write_info(self):
        if self.opts.info:
            tmp = self.opts.info + ".tmp"
            with open(tmp, "w") as f:
                json.dump(self.info, f)
            os.replace(tmp, self.opts.info)

    def _serial_changed(self, path):
        if getattr(self, "info", None) is not None:
            self.info["serial"] = path
            self._write_info()

    def shutdown(self):
        self.stopping.set()


def main(argv=None):
    import faulthandler
    faulthandler.register(signal.SIGUSR1)     # kill -USR1: every thread's stack on stderr
    opts = parse_args(sys.argv[1:] if argv is None else argv)
    sim = Sim(opts)
    rc = sim.run()
    sys.stdout.flush()
    os._exit(rc)
