"""Simulated Push-T: a T block pushed by the end-effector tip on a table, its renderer and a scripted expert."""
