"""The `stkd` command: one subcommand per job, each a thin call into the library."""

import argparse
import json
import logging
import sys

from stkd_ros import __version__
from stkd_ros.errors import InputError


def _cmd_synth(args):
    from stkd_ros.commands.synth import parse_size, synth
    result = synth(args.out, clips=args.clips, frames=args.frames, size=parse_size(args.size),
                   seed=args.seed, difficulty=args.difficulty, bag=args.bag,
                   storage=args.storage)
    print(f'wrote {result["root"]} {result["frames"]}'
          + (f' and bag {result["bag"]}' if 'bag' in result else ''))


def _cmd_demo(args):
    from stkd_ros.commands.demo import run_demo
    run_demo(args.out, quick=args.quick)


def _cmd_train(args):
    from stkd_ros.training import commands
    fn = commands.train_teacher if args.command == 'train-teacher' else commands.train_student
    ratio = getattr(args, 'labels_ratio', None)
    if ratio is not None and not args.labels:
        raise InputError('--labels-ratio: give the label stores with --labels STORE')
    if getattr(args, 'labels', None):
        from stkd_ros.training.self_training import train_teacher_with_stores
        metrics = train_teacher_with_stores(
            args.config, args.out, args.labels, steps=args.steps, overrides=args.set,
            **({} if ratio is None else {'ratio': ratio}))
    else:
        metrics = fn(args.config, args.out, args.steps, args.set)
    print(f'{args.command}: {args.out}/model.safetensors  mIoU {metrics.get("miou", 0):.4f}  '
          f'TC {metrics.get("tc", 0):.4f}  flicker {metrics.get("flicker", 0):.4f}')


def _bag_overrides(config, overrides, bags, topic) -> list:
    """
    ``--set`` assignments that add ``bags`` to the config's (``with_bags``) and set ``topic``.

    For a command whose config is read from overrides (`stkd distill`); JSON is YAML, so
    paths with spaces or colons pass through intact.
    """
    from stkd_ros.config import load_config
    from stkd_ros.data.unlabeled import with_bags
    sets = [f'data.unlabeled_topic={json.dumps(topic)}'] if topic else []
    if bags:
        there = load_config(config, list(overrides) + sets).data.unlabeled_bags
        sets.append(f'data.unlabeled_bags={json.dumps(with_bags(there, bags))}')
    return sets


def _cmd_distill(args):
    from stkd_ros.training.commands import distill
    sets = list(args.set) + _bag_overrides(args.config, args.set, args.unlabeled_bag,
                                           args.unlabeled_topic)
    if args.labels:
        sets.append(f'data.labels={json.dumps(args.labels)}')
    metrics = distill(args.config, args.teacher, args.out, args.steps, sets)
    print(f'distill: {args.out}/model.safetensors  mIoU {metrics.get("miou", 0):.4f}  '
          f'TC {metrics.get("tc", 0):.4f}  flicker {metrics.get("flicker", 0):.4f}')


def _cmd_label(args):
    from stkd_ros.commands.label import label
    from stkd_ros.labeling.quality import quality_table
    r = label(args.config, args.teacher, args.out, bags=args.bag, topic=args.topic,
              shard=args.shard, device=args.device, overrides=args.set, review=args.review)
    speed = (f', {r["seconds_per_frame"]:.3f} s/frame on {r["device"]}'
             if r['frames_labeled'] else '')
    print(f'label: {r["frames_labeled"]} frames labeled into {r["store"]} (shard '
          f'{r["shard"][0]}/{r["shard"][1]}{speed})'
          + ('; ORACLE: fused along the exact flow' if r['oracle'] else ''))
    for path in r['reviews']:
        print(f'review: {path}')
    _print_store_state(r, 'label', quality_table, 'no ground truth')


def _print_store_state(r, verb: str, table, lacking: str):
    """Print a label store's state: incomplete, its quality ``table``, or what it lacks."""
    if r['missing']:
        print(f'store incomplete: {r["missing"]} of {r["frames"]} frames to {verb} (other '
              f'shards, or run again to resume)')
    elif r.get('quality'):
        print('\n'.join(table(r['quality'])))
    else:
        print(f'store complete: {r["frames"]} frames ({lacking} to score them against)')


def _cmd_propagate(args):
    from stkd_ros.commands.propagate import propagate_labels
    from stkd_ros.labeling.quality import distance_table
    given = {key: getattr(args, key) for key in ('flow', 'check', 'threshold')
             if getattr(args, key) is not None}     # the others: the command's defaults
    r = propagate_labels(args.config, args.out, flow_args=args.flow_arg, shard=args.shard,
                         overrides=args.set, **given)
    speed = f', {r["seconds_per_frame"]:.3f} s/frame' if r['frames_carried'] else ''
    print(f'propagate-labels: {r["frames_carried"]} frames carried into {r["store"]} (shard '
          f'{r["shard"][0]}/{r["shard"][1]}{speed})'
          + ('; ORACLE: along the exact flow' if r['oracle'] else ''))
    _print_store_state(r, 'carry', distance_table, 'no ground truth beyond the labeled frames')


def _fusion(args):
    """Return the --fusion settings (None where none are given: the defaults, if on)."""
    if not args.fusion:
        return None
    from stkd_ros.temporal_fusion import FusionSettings
    return FusionSettings.parse(args.fusion)


def _cmd_evaluate(args):
    from stkd_ros.training.commands import evaluate_model
    backend = args.backend or ('onnxruntime' if args.onnx else 'torch')
    if (backend == 'torch') != bool(args.model):
        raise InputError(f'--backend {backend} runs ' + (
            'a model file: give it with --model' if backend == 'torch'
            else 'an ONNX export (`stkd export`): give it with --onnx'))
    if args.precision and backend != 'openvino':
        raise InputError(f'--precision is for --backend openvino, not {backend}')
    r = evaluate_model(args.model or args.onnx, args.config, args.json, args.set,
                       backend=backend, temporal_fusion=args.temporal_fusion,
                       fusion=_fusion(args), precision=args.precision)
    int8 = ', INT8 export' if r['precision'] == 'int8' else ''
    print(f'{r["model"]} ({r["backend"]} {r["inference_precision"]}{int8}): '
          f'mIoU {r["miou"]:.4f}  flicker {r["flicker"]:.4f}  '
          f'TC {r["tc"]:.4f} (ETC\'s, occluded pixels too: {r["tc_etc"]:.4f})  '
          f'{r["fps"]:.1f} fps on {r["device"]}')
    print(f'  flicker and TC along {r["stability_flow"]}')
    print(f'  temporal fusion: {r["temporal_fusion"]}')
    for name, iou in r['per_class_iou'].items():
        print(f'  {name:<12} {iou:.4f}')


def _cmd_eval_bag(args):
    from stkd_ros.commands.eval_bag import eval_bag
    summary = eval_bag(args.bag, args.model, args.topic, label_topic=args.label_topic,
                       report=args.report, write_bag=args.write_bag, max_frames=args.max_frames,
                       temporal_fusion=args.temporal_fusion, fusion=_fusion(args))
    print(f'{summary["frames"]} frames of {summary["topic"]} in {summary["bag"]}')
    for name, m in summary['models'].items():
        miou = f'mIoU {m["miou"]:.4f}  ' if 'miou' in m else ''
        print(f'  {name}: {miou}flicker {m["flicker"]:.4f}  TC {m["tc"]:.4f}  '
              f'latency p50 {m["latency_ms"]["p50"]:.1f} ms')
    print(f'  flicker and TC along {summary["stability_flow"]}')
    print(f'  temporal fusion: {summary["temporal_fusion"]}')
    for key, text in (('report', 'report'), ('report_html', 'report page (open in a browser)'),
                      ('annotated_bag', 'annotated bag (MCAP)')):
        if key in summary:
            print(f'{text}: {summary[key]}')


def _cmd_export(args):
    from stkd_ros.model_file import read_metadata
    meta = read_metadata(args.model)
    print(f'{args.model}: {meta["arch"]}, {meta["num_classes"]} classes, input '
          f'{meta["input_size"][0]}x{meta["input_size"][1]}')
    if (args.int8 or args.calibration is not None or args.data_root) and not args.onnx:
        raise InputError('--int8, --calibration and --data-root need --onnx FILE')
    if (args.calibration is not None or args.data_root) and not args.int8:
        raise InputError('--calibration and --data-root calibrate INT8: add --int8')
    if args.int8:
        from stkd_ros.commands.quantize import DEFAULT_FRAMES, quantize_int8
        frames = DEFAULT_FRAMES if args.calibration is None else args.calibration
        print(f'wrote {quantize_int8(args.model, args.onnx, frames, args.data_root)} (INT8, '
              f'calibrated on {frames} training frames)')
    elif args.onnx:
        from stkd_ros.commands.export import export_onnx
        print(f'wrote {export_onnx(args.model, args.onnx)}')


def _add_train_args(p):
    p.add_argument('--config', required=True, help='YAML config (config/distill/*.yaml)')
    p.add_argument('--out', required=True, help='output directory (resumes if it has '
                   'last.ckpt)')
    p.add_argument('--steps', type=int, default=None, help='override train.steps')
    p.add_argument('--set', action='append', default=[], metavar='KEY=VALUE',
                   help='override a config key, e.g. train.lr=0.01 (repeatable)')


def _add_fusion_args(p, switch_help: str):
    p.add_argument('--temporal-fusion', action='store_true', help=switch_help)
    p.add_argument('--fusion', action='append', default=[], metavar='KEY=VALUE',
                   help='a temporal fusion setting, e.g. fresh_weight=0.5 (repeatable; keys: '
                   'the fields of stkd_ros.temporal_fusion.FusionSettings, the rest keep '
                   'their defaults); implies --temporal-fusion')


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

    for name, text in (('train-teacher', 'train the two-branch teacher'),
                       ('train-student', 'train the student alone (the baseline)')):
        p = sub.add_parser(name, help=text)
        _add_train_args(p)
        p.set_defaults(func=_cmd_train)
    p = sub.choices['train-teacher']
    p.add_argument('--labels', action='append', default=[], metavar='STORE',
                   help='a label store to learn from beside the labeled frames (a self-training '
                   "round): the labeled frames' truth carried along the flow (stkd "
                   "propagate-labels), a teacher's labels of the unlabeled video (stkd label); "
                   'repeatable')
    p.add_argument('--labels-ratio', type=float, default=None, metavar='R',
                   help='stored frames per labeled clip in each batch (default 1)')

    p = sub.add_parser('distill', help='distill the student from a trained teacher')
    _add_train_args(p)
    p.add_argument('--teacher', required=True, help='the teacher model file')
    p.add_argument('--unlabeled-bag', action='append', default=[], metavar='PATH',
                   help='a recorded drive (ROS 2 MCAP or sqlite3, or ROS 1 bag; or a folder or '
                   'quoted glob of the bags or MCAP files of one split drive) to learn from '
                   "without labels, added to the config's data.unlabeled_bags (as stkd label "
                   '--bag adds); repeatable')
    p.add_argument('--unlabeled-topic', default=None, metavar='TOPIC',
                   help='the image topic (Image or CompressedImage) of the unlabeled bags')
    p.add_argument('--labels', default=None, metavar='STORE',
                   help='a label store of the unlabeled video (stkd label): its classes teach '
                   'the unlabeled frames, with no teacher pass in the step')
    p.set_defaults(func=_cmd_distill)

    p = sub.add_parser('label', help='the teacher labels unlabeled video once, into a label '
                       'store (PNG per frame + manifest)')
    p.add_argument('--config', required=True, help='YAML config: its unlabeled video and its '
                   'label section')
    p.add_argument('--teacher', required=True, help='the teacher model file')
    p.add_argument('--out', required=True, help='the label store (resumes if it has frames)')
    p.add_argument('--bag', action='append', default=[], metavar='PATH',
                   help='a recorded drive to label too (ROS 2 MCAP or sqlite3, or ROS 1 bag; or '
                   'a folder or quoted glob of the parts of one split drive), added to the '
                   "config's data.unlabeled_bags (as stkd distill --unlabeled-bag adds); "
                   'repeatable')
    p.add_argument('--topic', default=None, metavar='TOPIC',
                   help="the image topic (Image or CompressedImage) of the bags: --bag's and "
                   "the config's data.unlabeled_bags (as stkd distill --unlabeled-topic)")
    p.add_argument('--shard', default=None, metavar='I/N',
                   help='label sequences i with i %% N == I (several machines, one store); '
                   "default: torchrun's RANK/WORLD_SIZE, or 0/1")
    p.add_argument('--device', default='auto', choices=['auto', 'cpu', 'cuda'])
    p.add_argument('--set', action='append', default=[], metavar='KEY=VALUE',
                   help='override a config key, e.g. label.flip=true (repeatable)')
    p.add_argument('--review', type=int, default=0, metavar='N',
                   help='write the first N sequences of this shard as video to scrub through '
                   '(STORE/review/SEQUENCE.mp4: frame, labels, confidence side by side)')
    p.set_defaults(func=_cmd_label)

    p = sub.add_parser('propagate-labels', help="carry the labeled frames' truth along the "
                       'flow to the other frames of their sequences, into a label store')
    p.add_argument('--config', required=True, help='YAML config: its labeled video (the '
                   "synthetic world's training streets, or data.root's Cityscapes snippets or "
                   'CamVid runs)')
    p.add_argument('--out', required=True, help='the label store (resumes if it has frames)')
    p.add_argument('--flow', default=None, choices=['dis', 'raft', 'farneback', 'ground_truth'],
                   help="the flow (default dis; ground_truth: the synthetic world's exact "
                   'flow, an oracle)')
    p.add_argument('--flow-arg', action='append', default=[], metavar='KEY=VALUE',
                   help='a setting of the flow, e.g. preset=fast (DIS) or weights=raft.pth '
                   '(RAFT); repeatable')
    p.add_argument('--check', default=None,
                   choices=['forward-backward', 'photometric', 'both'],
                   help='the occlusion check a carried pixel must pass (default photometric: '
                   'colour constancy along the flow)')
    p.add_argument('--threshold', type=float, default=None,
                   help="the photometric check's mean absolute RGB difference (0..1; default "
                   '0.08)')
    p.add_argument('--shard', default=None, metavar='I/N',
                   help='carry sequences i with i %% N == I (several machines, one store)')
    p.add_argument('--set', action='append', default=[], metavar='KEY=VALUE',
                   help='override a config key (repeatable)')
    p.set_defaults(func=_cmd_propagate)

    p = sub.add_parser('evaluate', help='mIoU, TC, flicker and speed of a model file')
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument('--model', help='a model file (PyTorch)')
    which.add_argument('--onnx', help='an ONNX export, FP32 or INT8 (ONNX Runtime unless '
                       '--backend openvino; CPU), run by the Segmenter as segment_node runs it')
    p.add_argument('--backend', choices=['torch', 'onnxruntime', 'openvino'], default=None,
                   help='default: torch for --model, onnxruntime for --onnx')
    p.add_argument('--precision', choices=['bf16', 'f32'], default=None,
                   help="openvino's inference precision (default: bf16 where the CPU has it)")
    p.add_argument('--config', required=True)
    p.add_argument('--json', default=None, help='write the results here')
    p.add_argument('--set', action='append', default=[], metavar='KEY=VALUE')
    _add_fusion_args(p, 'fuse each frame with the past carried along the flow, each '
                     'held-out street one stream from its first frame (as segment_node does '
                     'with temporal_fusion)')
    p.set_defaults(func=_cmd_evaluate)

    p = sub.add_parser('export', help='check a model file; write ONNX (FP32 or INT8)')
    p.add_argument('--model', required=True)
    p.add_argument('--onnx', default=None, help='write an ONNX model here')
    p.add_argument('--int8', action='store_true',
                   help='quantize to INT8 (ONNX Runtime static quantization, QDQ, for CPU)')
    p.add_argument('--calibration', type=int, default=None, metavar='N',
                   help='training frames that calibrate the INT8 ranges (default 64)')
    p.add_argument('--data-root', default=None, metavar='DIR',
                   help='dataset directory, for models trained on camvid or cityscapes')
    p.set_defaults(func=_cmd_export)

    p = sub.add_parser('eval-bag', help='evaluate models on a recorded drive (rosbag)')
    p.add_argument('--bag', required=True, help='ROS 2 bag (MCAP or sqlite3) or ROS 1 bag; '
                   'or a folder or quoted glob of the parts of one split drive')
    p.add_argument('--model', action='append', required=True,
                   help='model file; repeat to compare models side by side')
    p.add_argument('--topic', required=True, help='image topic (Image or CompressedImage)')
    p.add_argument('--label-topic', default=None, help='mono8 label topic, for mIoU')
    p.add_argument('--report', default=None, metavar='DIR',
                   help='write the report folder: report.html (the drive as a side-by-side '
                   'video, drive.mp4), report.md, metrics.json, plots; an earlier report '
                   'there is replaced')
    p.add_argument('--write-bag', default=None, metavar='DIR',
                   help="write an MCAP copy of the bag with each model's mask and color "
                   'topics')
    p.add_argument('--max-frames', type=int, default=None,
                   help='stop after N frames (the report and --write-bag alike)')
    _add_fusion_args(p, 'score each model twice from one forward pass: its per-frame masks '
                     'and its masks fused with its past carried along the flow, as '
                     "segment_node's temporal_fusion does, the drive one stream fed the "
                     'header stamps (rows MODEL and MODEL + fusion; the video shows both, '
                     'the annotated bag the fused)')
    p.set_defaults(func=_cmd_eval_bag)

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
    except (InputError, FileNotFoundError, FileExistsError) as exc:
        # Errors raised on purpose say what is wrong in one line; anything else is a bug and
        # keeps its traceback.
        print(f'stkd {args.command}: error: {exc}', file=sys.stderr)
        return 2
    return 0


if __name__ == '__main__':
    sys.exit(main())
