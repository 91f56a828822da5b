import os
import sys

# Spawned children import the fake devices by module name: make this folder importable there too.
sys.path.insert(0, os.path.dirname(__file__))
