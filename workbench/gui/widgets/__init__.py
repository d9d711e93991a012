"""Reusable widgets: the parameter form, the error dialog, image preview and job progress."""
