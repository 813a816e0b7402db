"""Operations features on the simulator: the audit log lists the hub.set
the daemon made and a raw request an admin made (with the caller's uid), the
Prometheus textfile carries queue and link metrics, and the Notecard's time reaches
a chrony SOCK refclock socket as a well-formed sample, with the offset in status."""
import json
import os
import socket
import struct
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from harness import TOP_BUILDDIR, Daemon, TestDir, check, wait_for  # noqa: E402
from sim import Sim  # noqa: E402

SOCK_MAGIC = 0x534f434b


def chrony_time_bits():
    """The chrony the build was configured for (config.h): its tv_sec and tv_usec width."""
    with open(os.path.join(TOP_BUILDDIR, "config.h")) as f:
        for line in f:
            if line.startswith("#define NOTEGW_CHRONY_TIME_BITS "):
                return int(line.split()[2])
    raise SystemExit("FAIL: config.h has no NOTEGW_CHRONY_TIME_BITS")


def main():
    with TestDir("ops") as d, Sim(serial=True, workdir=d.file("sim")) as sim:
        chrony = d.file("chrony.sock")
        rx = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        rx.bind(chrony)
        rx.settimeout(30)
        prom = d.file("notegw.prom")
        gw = Daemon(d, {"notecard": {"transport": "serial", "device": sim.serial_path,
                                     "poll_interval": "1s", "timing_scale": 5},
                        "hub": {"product": "com.example.test:audit", "mode": "periodic"},
                        "daemon": {"metrics_file": prom, "chrony_socket": chrony},
                        "update": {"enabled": False}})
        gw.start()
        gw.cli("send", "ops.qo", '{"a":1}')
        sim.sync()
        gw.cli("req", '{"req":"card.version"}')

        def audit():
            _, out, _ = gw.cli("audit", "--json")
            rows = json.loads(out)["audit"]
            hubset = [r for r in rows if "hub.set" in (r["action"] + r["detail"])]
            req = [r for r in rows if r["action"] == "req" and "card.version" in r["detail"]]
            return (hubset, req) if hubset and req else None
        hubset, req = wait_for(audit, 30, 0.2, "hub.set and the admin request in the audit log")
        check("com.example.test:audit" in json.dumps(hubset), "hub.set row lacks the product: %r" % hubset)
        check(req[0]["actor"] == "uid:%d" % os.getuid(), "admin request not attributed: %r" % req)
        _, out, _ = gw.cli("audit")
        check("card.version" in out and "hub.set" in out, "readable audit lacks rows: %r" % out)

        # The chrony SOCK sample: struct timeval, double offset, int pulse, leap, pad, magic,
        # with the timeval as the target's chrony has it (32-bit on Debian 12 armhf).
        bits = chrony_time_bits()
        want, fmt = (40, "=qqdiiii") if bits == 64 else (32, "=iidiiii")
        data = rx.recv(64)
        check(len(data) == want, "sample is %d bytes, chrony wants %d" % (len(data), want))
        sec, usec, offset, pulse, leap, _pad, magic = struct.unpack(fmt, data)
        check(magic == SOCK_MAGIC, "bad magic %x" % magic)
        check(abs(sec - time.time()) < 30 and 0 <= usec < 1000000, "sample time is off: %d" % sec)
        check(abs(offset) < 2.0, "offset %f: the simulator's clock is the system's" % offset)
        st = gw.status()["status"]
        check(abs(st["time"]["offset_s"]) < 2.0, "status lacks the clock offset: %r" % st.get("time"))

        def metrics():
            try:
                text = open(prom).read()
            except OSError:
                return None
            return text if "notegw_clock_offset_seconds" in text else None
        text = wait_for(metrics, 30, 0.2, "the metrics textfile")
        for name in ("notegw_queue_notes ", "notegw_notes_sent_total ", "notegw_errors_total{kind=\"crc_errors\"}",
                     "notegw_uptime_seconds ", "notegw_clock_offset_seconds ",
                     "notegw_memory_rss_bytes ", "notegw_memory_pss_bytes ", "notegw_memory_private_bytes "):
            check(name in text, "metric %s missing" % name)
        for line in text.splitlines():
            check(line.startswith("#") or len(line.split(" ")) == 2, "malformed line: %r" % line)
        check(not os.path.exists(prom + ".tmp"), "temporary file left behind")
        check(gw.stop() == 0, "daemon did not stop cleanly")
    print("PASS: test_ops")


if __name__ == "__main__":
    main()
