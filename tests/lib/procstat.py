"""What a process costs while it runs, from /proc: memory (VmRSS, and Pss and private memory
from smaps_rollup, which leave out the shared libraries other processes map too) and wake-ups
(voluntary context switches of all its threads: each is one sleep that ended).
Private memory is Private_Dirty: pages the process wrote (heap, stacks, its libraries' data).
Private_Clean is left out: it is library and program text that no other process happens to map
at that moment, which moves with whatever else runs on the machine, not with the daemon."""
import os


def memory_kb(pid):
    """{"rss", "pss", "private", "private_clean", "shared"} in kB; private is Private_Dirty."""
    out = {"rss": 0, "pss": 0, "private": 0, "private_clean": 0, "shared": 0}
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                out["rss"] = int(line.split()[1])
    with open("/proc/%d/smaps_rollup" % pid) as f:
        for line in f:
            k, _, v = line.partition(":")
            if k == "Pss":
                out["pss"] = int(v.split()[0])
            elif k == "Private_Dirty":
                out["private"] = int(v.split()[0])
            elif k == "Private_Clean":
                out["private_clean"] = int(v.split()[0])
            elif k in ("Shared_Clean", "Shared_Dirty"):
                out["shared"] += int(v.split()[0])
    return out


def wakeups(pid):
    """Voluntary context switches summed over the process's threads (a thread that has
    exited no longer counts: measure over windows in which the threads stay)."""
    n = 0
    d = "/proc/%d/task" % pid
    for tid in os.listdir(d):
        try:
            with open(os.path.join(d, tid, "status")) as f:
                for line in f:
                    if line.startswith("voluntary_ctxt_switches:"):
                        n += int(line.split()[1])
        except FileNotFoundError:
            pass
    return n


def wakeups_per_thread(pid):
    """{thread name: voluntary context switches}, to say which thread wakes."""
    out = {}
    d = "/proc/%d/task" % pid
    for tid in os.listdir(d):
        try:
            with open(os.path.join(d, tid, "comm")) as f:
                name = f.read().strip()
            with open(os.path.join(d, tid, "status")) as f:
                for line in f:
                    if line.startswith("voluntary_ctxt_switches:"):
                        out["%s/%s" % (name, tid)] = int(line.split()[1])
        except FileNotFoundError:
            pass
    return out
