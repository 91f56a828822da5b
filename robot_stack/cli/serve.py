"""``robot-stack serve``: run a trained policy as a network service for a robot PC (remote mode).

Examples::

    robot-stack serve --checkpoint runs/pusht/best.ckpt                       # 127.0.0.1:5555, this machine only
    ROBOT_STACK_TOKEN=... robot-stack serve --checkpoint best.ckpt --bind 0.0.0.0:5555 --allow-remote --device cuda

The robot PC then runs ``robot-stack eval --rig ... --remote tcp://GPU_HOST:5555`` (same token). The
server answers one request at a time until Ctrl-C. Binding anything but loopback needs ``--allow-remote``;
the token travels in clear text, so across untrusted networks tunnel the port (``ssh -L 5555:localhost:5555``)
instead of exposing it.
"""

from __future__ import annotations

import argparse
import logging
import os

from robot_stack.config import ConfigError

log = logging.getLogger(__name__)

TOKEN_ENV = "ROBOT_STACK_TOKEN"


def add_token_argument(parser: argparse.ArgumentParser) -> None:
    """``--token`` shared by serve and eval (falls back to $ROBOT_STACK_TOKEN, which ``ps`` does not show)."""
    parser.add_argument(
        "--token", default=os.environ.get(TOKEN_ENV) or None,
        help=f"shared secret the client must present (default: ${TOKEN_ENV}; prefer the variable, "
        "command lines are visible to other users)",
    )


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "serve",
        help="serve a trained policy over the network (remote mode)",
        description="Load a checkpoint and answer observation -> action-chunk requests from `robot-stack eval "
        "--remote`. Binds 127.0.0.1 unless --allow-remote is given.",
    )
    parser.add_argument("--checkpoint", required=True, help="policy checkpoint (.ckpt) from `robot-stack train`")
    parser.add_argument("--bind", default="127.0.0.1:5555", help="HOST:PORT (or tcp://HOST:PORT) to listen on")
    parser.add_argument("--allow-remote", action="store_true", help="allow binding a non-loopback address")
    add_token_argument(parser)
    parser.add_argument("--device", default="auto", help="cpu, cuda, cuda:<index> or auto (default)")
    parser.add_argument("--dt", type=float, help="control period sent to clients, s (default: the checkpoint's, from its training data)")
    parser.set_defaults(func=run)


def resolve_device(device: str) -> str:
    """``auto`` -> cuda if available, else cpu."""
    if device != "auto":
        return device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def run(args: argparse.Namespace) -> int:
    from robot_stack.server.local import CheckpointService
    from robot_stack.server.transport import PolicyServer, check_bind

    if args.dt is not None and not 0 < args.dt <= 10:
        raise ConfigError(f"--dt must be in (0, 10] s, got {args.dt}")
    check_bind(args.bind, args.allow_remote, args.token)  # before the slow model load
    service = CheckpointService(args.checkpoint, resolve_device(args.device), args.dt)()
    warm = service.warmup()
    info = service.info
    log.info(
        "policy: %d obs steps, %d action steps of %d dims, observes %s; one inference takes %.3f s",
        info.n_obs_steps, info.n_action_steps, info.action_dim, sorted(info.obs_shapes), warm,
    )
    with PolicyServer(service, bind=args.bind, token=args.token, allow_remote=args.allow_remote) as server:
        try:
            server.serve_forever()
        finally:
            stats = server.stats
            log.info("served %d requests, rejected %d %s", stats.served, stats.total_rejected, dict(stats.rejected))
    return 0
