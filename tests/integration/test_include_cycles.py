"""The core's modules do not import each other: no source file under src/ includes the
header of a module whose source includes its own header back. A module that needs the one
that owns it gets what it uses as callbacks (the fleet's fleet_host, the status hooks in
struct gw), so each file can be read knowing only what it includes. A plugin's host API
would be the named exception; there is none today."""
import os
import re
import sys

TOP = os.environ.get("top_srcdir", os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
ALLOWED = set()  # pairs (a, b), sorted, that are a documented host API


def main():
    src = os.path.join(TOP, "src")
    includes = {}
    for d, _, files in os.walk(src):
        for f in files:
            if not f.endswith(".c"):
                continue
            mod = f[:-2]
            with open(os.path.join(d, f)) as fh:
                hs = re.findall(r'^\s*#\s*include\s+"([^"]+)\.h"', fh.read(), re.M)
            includes.setdefault(mod, set()).update(os.path.basename(h) for h in hs)
    if len(includes) < 20:
        print("FAIL: only %d modules found under %s" % (len(includes), src))
        sys.exit(1)
    cycles = sorted({tuple(sorted((a, b))) for a, hs in includes.items() for b in hs
                     if b != a and a in includes.get(b, ())} - ALLOWED)
    for a, b in cycles:
        print("FAIL: src/%s.c and src/%s.c include each other's header" % (a, b))
    if cycles:
        sys.exit(1)
    print("ok: %d modules under src/, none includes a module that includes it back" % len(includes))


if __name__ == "__main__":
    main()
