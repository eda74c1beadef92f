"""Gradient-ascent feature visualization (Erhan 2009 ... Olah 2017, MACO 2023), batched over units."""
from .optimize import Settings, visualize

__all__ = ["Settings", "visualize"]
