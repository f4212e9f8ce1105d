"""Embedded model and sample audio shipped with s2t-live."""
