"""`python -m robot_stack` == the `robot-stack` command."""

import sys

from robot_stack.cli import main

sys.exit(main())
