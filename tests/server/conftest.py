import os
import sys

# Spawned children (PolicyProcess in local mode) import the fake policy by module name: make this folder
# importable there too (spawn passes the parent's sys.path to the child).
sys.path.insert(0, os.path.dirname(__file__))
