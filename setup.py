"""Only what setup.cfg cannot say: the repository folders ``hardware_configs/``, ``teleop/`` and
``calibration/`` (fixed at the top level by the project layout) go into the wheel as
``robot_stack/_data/<folder>`` (read through ``robot_stack.resources.shipped_dir``)."""

from setuptools import find_packages, setup

DATA_FOLDERS = ("hardware_configs", "teleop", "calibration")

setup(
    packages=find_packages(include=["robot_stack", "robot_stack.*"]) + [f"robot_stack._data.{f}" for f in DATA_FOLDERS],
    package_dir={f"robot_stack._data.{f}": f for f in DATA_FOLDERS},
    package_data={
        "robot_stack.policy": ["configs/*.yaml"],
        **{f"robot_stack._data.{f}": ["*.yaml", "*.md", "**/*.yaml"] for f in DATA_FOLDERS},
    },
)
