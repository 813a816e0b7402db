"""[daemon] watchdog: the daemon tells systemd it is alive (WATCHDOG=1 on NOTIFY_SOCKET)
every configured interval; 0, the default, follows the unit's WatchdogSec= (half of
WATCHDOG_USEC); an interval not under half of WatchdogSec= is cut to that, with a
warning. systemd is played by a datagram socket here."""
import os
import socket
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from harness import Daemon, TestDir, check, log  # noqa: E402

WATCHDOG_USEC = 20000000  # the unit's WatchdogSec=20s: pings at most every 5 s by default


def pings(sock, seconds):
    """WATCHDOG=1 datagrams received in the next `seconds`."""
    n, end = 0, time.monotonic() + seconds
    while True:
        left = end - time.monotonic()
        if left <= 0:
            return n
        sock.settimeout(left)
        try:
            msg = sock.recv(4096).decode(errors="replace")
        except socket.timeout:
            return n
        n += "WATCHDOG=1" in msg.split("\n")


def run(d, sock, interval):
    env = {"NOTIFY_SOCKET": sock.getsockname(), "WATCHDOG_USEC": str(WATCHDOG_USEC)}
    os.environ.pop("WATCHDOG_PID", None)  # a stray one would say "not for you"
    gw = Daemon(d, {"notecard": {"transport": "serial", "device": d.file("no-card"),
                                 "poll_interval": "1s"},
                    "daemon": {"watchdog": interval}}, name="gw-" + interval, env=env)
    gw.start()
    pings(sock, 0.2)  # whatever came during the start
    n = pings(sock, 1.5)
    check(gw.stop() == 0, "notegwd exit status")
    return n, gw.log_text()


def main():
    with TestDir("watchdog") as d:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        sock.bind(d.file("notify"))

        n, _ = run(d, sock, "100ms")
        log("watchdog = 100ms: %d pings in 1.5 s" % n)
        check(n >= 7, "watchdog = 100ms pinged %d times in 1.5 s" % n)

        n, _ = run(d, sock, "0")
        log("watchdog = 0 (WatchdogSec=20s): %d pings in 1.5 s" % n)
        check(n <= 1, "watchdog = 0 did not follow WatchdogSec=: %d pings in 1.5 s" % n)

        n, text = run(d, sock, "15s")
        check("not under half of the unit's WatchdogSec=" in text,
              "an interval systemd would not wait for was not reported")
        check(n <= 1, "watchdog = 15s pinged %d times in 1.5 s" % n)
    print("PASS: test_watchdog")


if __name__ == "__main__":
    main()
