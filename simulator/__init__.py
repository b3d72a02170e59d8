"""SpineSim: a simulator for image-guided and landmark spinal injections.

For training only; not for clinical use.
"""

__version__ = "0.1.0"
