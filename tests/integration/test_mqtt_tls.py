"""TLS for the client plugin: a CA, a server and a client certificate made here with
the openssl CLI; mosquitto requires a client certificate. The plugin connects and
works with the right CA, is refused with a wrong CA (server verification is on by
default), and connects with the wrong CA only when insecure = true."""
import json
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from harness import TestDir, check, fail, skip  # noqa: E402
from mqtthelp import MQTT_SO, FakeHost, broker  # noqa: E402


def ossl(*args, cwd):
    p = subprocess.run(["openssl"] + list(args), cwd=cwd, capture_output=True, text=True, timeout=60)
    if p.returncode != 0:
        fail("openssl %s: %s" % (" ".join(args), p.stderr))


def make_ca(dirname, name):
    ossl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
         "-keyout", name + ".key", "-out", name + ".pem", "-days", "2", "-subj", "/CN=" + name, cwd=dirname)


def make_cert(dirname, ca, name, cn, san=None):
    ossl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
         "-keyout", name + ".key", "-out", name + ".csr", "-subj", "/CN=" + cn, cwd=dirname)
    ext = os.path.join(dirname, name + ".ext")
    with open(ext, "w") as f:
        f.write("subjectAltName=%s\n" % san if san else "basicConstraints=CA:FALSE\n")
    ossl("x509", "-req", "-in", name + ".csr", "-CA", ca + ".pem", "-CAkey", ca + ".key",
         "-CAcreateserial", "-out", name + ".pem", "-days", "2", "-extfile", ext, cwd=dirname)
    os.chmod(os.path.join(dirname, name + ".key"), 0o600)


def main():
    if not os.path.exists(MQTT_SO):
        skip("mqtt plugin not built")
    if subprocess.run(["which", "openssl"], capture_output=True).returncode != 0:
        skip("openssl CLI not installed")
    with TestDir("mqtt-tls") as d:
        pki = d.file("pki")
        os.makedirs(pki)
        make_ca(pki, "ca")
        make_ca(pki, "otherca")
        make_cert(pki, "ca", "server", "localhost", "DNS:localhost,IP:127.0.0.1")
        make_cert(pki, "ca", "client", "gateway")
        p = lambda n: os.path.join(pki, n)  # noqa: E731
        b = broker(d, extra="cafile %s\ncertfile %s\nkeyfile %s\nrequire_certificate true\n"
                   % (p("ca.pem"), p("server.pem"), p("server.key")))
        # Clients use the certificate's name, and a stock Debian /etc/hosts gives
        # "localhost" ::1 first: libmosquitto's asynchronous connect tries only the
        # first address where the kernel does not refuse a loopback connect at once.
        b.bind = "localhost"
        b.start()
        tls = {"tls": True, "cert_file": p("client.pem"), "key_file": p("client.key"), "host": "localhost"}

        # Right CA: connects, and messages flow over TLS.
        h = FakeHost(d, b.port, name="good", ca_file=p("ca.pem"), **tls).start()
        h.wait_connected()
        sub = subprocess.run(["mosquitto_pub", "-h", "localhost", "-p", str(b.port), "--cafile", p("ca.pem"),
                              "--cert", p("client.pem"), "--key", p("client.key"), "-q", "1",
                              "-t", "notecard/out/tls.qo", "-m", '{"secure":true}'],
                             capture_output=True, text=True, timeout=20)
        check(sub.returncode == 0, "mosquitto_pub over TLS failed: %s" % sub.stderr)
        end = time.monotonic() + 10
        while time.monotonic() < end and not h.notes():
            time.sleep(0.1)
        check([json.loads(n["body"]) for n in h.notes()] == [{"secure": True}], "note over TLS not committed")
        h.stop()

        # Wrong CA: the server's certificate is not trusted; no connection, ever.
        h = FakeHost(d, b.port, name="wrongca", ca_file=p("otherca.pem"), **tls).start()
        time.sleep(2.5)  # several reconnect attempts (reconnect_max = 1s)
        s = h.stats()
        check(not s["connected"] and s["reconnects"] == 0, "connected with a wrong CA: %r" % s)
        h.stop()
        check("certificate verify failed" in h.log_text(), "the log does not say why: %s" % h.log_text())
        blog = open(os.path.join(b.dir, "mosquitto.log"), errors="replace").read()
        check("as gw-wrongca" not in blog, "broker saw the wrong-CA client connect")

        # Wrong CA with insecure = true: verification off, connects (the knob works, and is off by default).
        h = FakeHost(d, b.port, name="insecure", ca_file=p("otherca.pem"), insecure=True, **tls).start()
        h.wait_connected()
        h.stop()

        # Right CA but no client certificate: the broker refuses us.
        h = FakeHost(d, b.port, name="nocert", tls=True, ca_file=p("ca.pem"), host="localhost").start()
        time.sleep(2.0)
        check(not h.stats()["connected"], "connected without the required client certificate")
        h.stop()
    print("PASS")


if __name__ == "__main__":
    main()
