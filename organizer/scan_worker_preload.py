"""Imported once by the scanner's fork server, before it forks any worker.

Loading here means dlib's models and the checked embedding engine (organizer.embedding:
the ONNX file built if it is not there yet, the onnxruntime session, the self-check against
dlib) exist once, in the fork server, and every worker is forked with them already in
memory, sharing their pages, instead of each worker loading, checking and - on a first
scan - building its own. Importing this module is its whole job (multiprocessing's
``set_forkserver_preload`` only imports), so it is imported nowhere else.
"""
from __future__ import annotations

import contextlib

from organizer import faces

# the fork server must start whatever happens here: each worker's initialiser runs
# warm_up again and reports the real error from the worker
with contextlib.suppress(Exception):
    faces.warm_up()
