"""Importing this puts the simulator's package (sim/notecard_sim) on sys.path for tests."""
import os
import sys

sys.path.insert(0, os.path.join(os.environ.get("top_srcdir", os.path.join(
    os.path.dirname(os.path.abspath(__file__)), "..", "..")), "sim"))
