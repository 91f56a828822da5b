"""``robot-stack cameras``: list the connected RealSense cameras (serial, model, firmware, USB type).

Examples::

    robot-stack cameras            # one line per camera; "no RealSense connected" (exit 0) if none
    robot-stack cameras --modes    # also the color resolutions/frame rates each one supports

Copy a serial into the ``cameras:`` section of a rig YAML (``serial: "123456789012"``, quoted).
"""

from __future__ import annotations

import argparse



def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "cameras",
        help="list connected RealSense cameras",
        description="List connected Intel RealSense cameras: serial number, model, firmware and USB type.",
    )
    parser.add_argument("--modes", action="store_true", help="also list the supported color modes (WxH@fps)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from robot_stack.hardware.camera.library import load_realsense_driver

    realsense = load_realsense_driver(needed_by="listing RealSense cameras")
    devices = realsense.connected_devices()
    if not devices:
        print("no RealSense connected")
        return 0
    for device in devices:
        info = realsense.CameraInfo.of(device)
        warning = "  WARNING: USB 2 - use a USB 3 port/cable for full resolution and frame rate" if info.is_usb2 else ""
        print(f"{info.serial}  {info.model}  firmware {info.firmware or '?'}  USB {info.usb_type or '?'}{warning}")
        if args.modes:
            print(f"    color: {realsense.describe_color_modes(device)}")
    return 0
