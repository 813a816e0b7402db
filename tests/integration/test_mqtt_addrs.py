"""The mqtt plugin tries each address the broker's name resolves to: a name that
resolves to ::1 first and 127.0.0.1 second (as "localhost" does on many machines),
with the broker listening on 127.0.0.1 only. The plugin (in its stand-in host, with
the resolver shim tests/lib/resolv_shim.c giving the name its two addresses) must
connect through the second address and queue a message; libmosquitto alone would
try ::1 again and again. With MQTT 3.1.1 (the non-blocking connect) and 5."""
import json
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from harness import TestDir, check, wait_for  # noqa: E402
from mqtthelp import FAKEHOST, MQTT_SO, Client, FakeHost, broker, numbers  # noqa: E402
from sim import asan_runtime, built_shim  # noqa: E402

NAME = "broker.notegw.test"


def shim():
    """The resolver shim (tests/lib/resolv_shim.c)."""
    return built_shim("libresolvshim.so")


def main():
    if not os.path.exists(MQTT_SO) or not shim():
        print("SKIP: mqtt plugin or resolver shim not built")
        sys.exit(77)
    pre = [p for p in (asan_runtime(FAKEHOST), shim()) if p]
    os.environ["LD_PRELOAD"] = " ".join(pre)
    os.environ["NOTEGW_SHIM_RESOLVE"] = "%s=::1,127.0.0.1" % NAME
    with TestDir("mqtt-addrs") as d:
        b = broker(d).start()
        for proto in ("3.1.1", "5"):
            h = FakeHost(d, b.port, name="p" + proto.replace(".", ""), host=NAME,
                         protocol=proto).start()
            h.wait_connected(20)
            c = Client(b.port, "pub-" + proto).connect()
            c.publish("notecard/out/a.qo", json.dumps({"n": 1}))
            c.close()
            wait_for(lambda: numbers(h.notes(), "a.qo") == [1], 20, 0.1, "the message queued")
            log = h.log_text()
            check("::1" in log and "127.0.0.1" in log,
                  "the first address failed and the second was used (%s): %s" % (proto, log))
            h.stop()
    print("PASS: test_mqtt_addrs")


if __name__ == "__main__":
    main()
