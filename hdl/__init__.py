"""Amaranth designs: one sub-package per design."""
