"""Headless core of the workbench: everything that computes. Never imports Qt."""
