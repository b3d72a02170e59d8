"""One lock round the imaging's parallel numba kernels.

The kernels release the GIL (``nogil=True``) so that an image computed off the GUI thread does not
hold the window still while it runs; numba's ``workqueue`` threading layer (its fallback where
neither TBB nor OpenMP is found) aborts when two threads launch parallel kernels at once, so the
launches are taken one at a time. The lock costs well under a microsecond a frame.
"""

from __future__ import annotations

import threading

KERNEL_LOCK = threading.Lock()
