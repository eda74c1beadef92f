"""Gradient-ascent feature visualization (Erhan 2009 ... Olah 2017, MACO 2023), batched over units."""
from .optimize import Ascent, Settings, check_params, visualize

__all__ = ["Ascent", "Settings", "check_params", "visualize"]
