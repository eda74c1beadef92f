"""The gallery: static pages of a results folder (experiments.report writes them)."""
