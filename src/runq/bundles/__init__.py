"""Worker bundles: a worker folder (handler, requirements, baked model files) whose requirements
get a virtual environment of their own, built once and reused while they are unchanged."""

from runq.bundles.build import Bundle, BundleError, build, bundle_for

__all__ = ["Bundle", "BundleError", "build", "bundle_for"]
