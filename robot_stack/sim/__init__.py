"""Simulated scenes that the simulated robot and camera twins act on and observe."""
