"""ncanvas core: the shared ML package used by jobs and the dashboard.

Light modules (``paths``, ``runrec``, ``metrics``, ``smoothing``, ``atomic``, ``errors``, ``render``)
never import torch; torch-backed modules import it at module scope and are only imported lazily.
"""

__version__ = "0.1.0"
