"""Sweeps: sweep files, Ray Tune trials, summaries."""
