"""``python -m onexone [SUBCOMMAND] [options]``.

Without a subcommand: the main job on built-in defaults, i.e. the build configuration
(``onexone.show_config()``) and then the peer benchmark on the whole layer suite, batch 1,
all usable cores. Subcommands (``python -m onexone SUBCOMMAND --help`` for their options):

  bench    the peer benchmark: onexone vs NumPy, PyTorch, ONNX Runtime (onexone.bench)
  demo     why 1x1 convolutions pay: Inception's reductions and FCN, measured (onexone.demo)
  config   print how onexone was built and what it runs here
"""
from __future__ import annotations

import sys
from typing import Callable, Dict, List, Optional, Sequence, Tuple


def _bench(argv: Sequence[str]) -> int:
    from . import bench

    return bench.main(argv)


def _demo(argv: Sequence[str]) -> int:
    from . import demo

    return demo.main(argv)


def _config(argv: Sequence[str]) -> int:
    import argparse

    from ._config import show_config

    argparse.ArgumentParser(prog="python -m onexone config", description="Print onexone's "
                            "build and run-time configuration.").parse_args(argv)
    show_config()
    return 0


def _default(argv: Sequence[str]) -> int:
    """The main job: the configuration, then the peer benchmark on its defaults."""
    _config([])
    print(flush=True)
    return _bench([])


#: name -> (one-line help, function(argv) -> exit code). A new subcommand is one entry here.
SUBCOMMANDS: Dict[str, Tuple[str, Callable[[Sequence[str]], int]]] = {
    "bench": ("the peer benchmark: onexone vs NumPy, PyTorch, ONNX Runtime", _bench),
    "demo": ("why 1x1 convolutions pay: Inception's reductions and FCN, FLOPs and times", _demo),
    "config": ("print how onexone was built and what it runs here", _config),
}


def _usage() -> str:
    width = max(map(len, SUBCOMMANDS))
    return "usage: python -m onexone [SUBCOMMAND] [options]\n\n" \
        "Without a subcommand: the configuration, then the peer benchmark on its defaults.\n\n" \
        "subcommands:\n" + "\n".join(f"  {name:<{width}}  {text}" for name, (text, _) in SUBCOMMANDS.items())


def main(argv: Optional[List[str]] = None) -> int:
    """Dispatch ``argv`` (default ``sys.argv[1:]``) to a subcommand; return its exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv:
        return _default(argv)
    if argv[0] in ("-h", "--help"):
        print(_usage())
        return 0
    if argv[0] not in SUBCOMMANDS:
        print(_usage(), file=sys.stderr)
        print(f"\nerror: unknown subcommand {argv[0]!r}", file=sys.stderr)
        return 2
    return SUBCOMMANDS[argv[0]][1](argv[1:])


if __name__ == "__main__":
    sys.exit(main())
