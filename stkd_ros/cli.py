"""The `stkd` command: one subcommand per job, each a thin call into the library."""

import argparse
import logging
import sys

from stkd_ros import __version__


def _cmd_synth(args):
    from stkd_ros.synth import parse_size, synth
    result = synth(args.out, clips=args.clips, frames=args.frames, size=parse_size(args.size),
                   seed=args.seed, difficulty=args.difficulty, bag=args.bag,
                   storage=args.storage)
    print(f'wrote {result["root"]} {result["frames"]}'
          + (f' and bag {result["bag"]}' if 'bag' in result else ''))


def _cmd_demo(args):
    from stkd_ros.demo import run_demo
    run_demo(args.out, quick=args.quick)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog='stkd', description='Spatial-temporal consistency distillation for real-time '
        'semantic segmentation, and its ROS 2 runtime.')
    parser.add_argument('--version', action='version', version=f'stkd {__version__}')
    sub = parser.add_subparsers(dest='command', required=True)

    p = sub.add_parser('synth', help='write synthetic driving clips (CamVid layout, bag)')
    p.add_argument('--out', required=True, help='output directory')
    p.add_argument('--clips', type=int, default=4)
    p.add_argument('--frames', type=int, default=30, help='frames per clip (30 Hz)')
    p.add_argument('--size', default='256x512', help='frame size HxW')
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--difficulty', type=float, default=0.6, help='0 (easy) .. 1 (hard)')
    p.add_argument('--bag', action='store_true', help='also write a ROS 2 bag to OUT/bag')
    p.add_argument('--storage', default='mcap', choices=['mcap', 'sqlite3'])
    p.set_defaults(func=_cmd_synth)

    p = sub.add_parser('demo', help='run the main job on the built-in synthetic world')
    p.add_argument('--out', default='runs/demo')
    p.add_argument('--quick', action='store_true', help='small and fast (what make demo runs)')
    p.set_defaults(func=_cmd_demo)
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format='%(levelname)s %(name)s: %(message)s')
    try:
        args.func(args)
    except (FileNotFoundError, FileExistsError, ValueError, KeyError) as exc:
        print(f'stkd {args.command}: error: {exc}', file=sys.stderr)
        return 2
    return 0


if __name__ == '__main__':
    sys.exit(main())
