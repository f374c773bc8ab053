"""Longer hardening runs that print their figures (not collected by pytest: no test_
prefix). Run from the repository root, e.g. ``python -m tests.stress.kill_scan``."""
