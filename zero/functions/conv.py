"""Convolutions for images in NCHW layout (filled in by the toolkit work)."""

__all__ = []
