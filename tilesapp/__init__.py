"""Tiles Creator: cut calibrated microscopy images into normalized tiles, and merge them back."""

__version__ = "0.1.0"
APP_NAME = "Tiles Creator"
