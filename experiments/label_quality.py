"""
Experiment: how the teacher should label unlabeled video; it chose `label`'s defaults.

Protocol, fixed before the runs:

- Teacher: the protocol's teacher, runs/teacher4k/model.safetensors (SHA-256 7307855e...;
  `mkdir -p runs/teacher4k && git show c94640f:experiments/teachers/synthetic_video.safetensors
  > runs/teacher4k/model.safetensors` restores it).
- Video: the first 20 never-labeled streets of config/distill/synthetic_video.yaml (96x192,
  30 frames each: 600 frames), every frame labeled by `stkd label` and scored against the
  world's ground truth (the store's quality report): label mIoU, and the IoU of pole, sign,
  fence, pedestrian and bicyclist, the thin classes the students lose.
- Cost: seconds per frame of the labeling loop (reading the frame, the teacher's passes, the
  flow, writing the PNGs), all rows one after another in one process on one machine, after
  the frames and the exact flow are rendered into the render cache (so no row pays for the
  renderer), with one torch thread. The machine's load average is recorded beside each row.
- Rows: one pass at the training size; + flip; scales 0.75/1/1.25/1.5; the same + flip; one
  pass at 1.5x; fusion of t-1..t+1 and of t-2..t+2 along DIS flow (forward-backward check);
  the same two along the world's exact flow (photometric check): ORACLES, reported and never
  chosen; then the best test-time augmentation (highest mIoU of the first five rows) with the
  best DIS fusion (highest mIoU of its two rows).
- Rule: the default is the non-oracle row with the highest label mIoU; where other non-oracle
  rows come within 0.003 of it, the one of them (it included) with the fewest seconds per
  frame. `stkd_ros.config.LabelConfig`'s defaults are then set to the chosen row.

Added after the runs (the rule above is kept as written; see AFTER_THE_RUNS): the rule picked
the combined row, four scales with DIS fusion of t-2..t+2 (0.6172, within 0.003 of the best,
0.6195), because it measured the fewest seconds per frame (0.605 against 0.718). But that row
does all the work of the four-scale row and DIS flow besides; its lower time is the shared
machine's noise (load average 3 to 10 during the runs), not a lower cost. The default is the
four-scale row: the best mIoU, and less work than every row within 0.003 of it.

Run from the repository root (a row recorded in the JSON with the same command and teacher
is kept; the others are labeled again from an empty store):
  python -m experiments.label_quality
Writes experiments/results/label_quality.json.
"""

import argparse
import json
import os
from pathlib import Path
import shlex
import shutil
import subprocess
import time

from bench.report import machine
from stkd_ros.commands.label import label
from stkd_ros.config import load_config
from stkd_ros.data.unlabeled import unlabeled_streets
from stkd_ros.labeling.identity import file_sha256
import torch

CONFIG = 'config/distill/synthetic_video.yaml'
TEACHER = 'runs/teacher4k/model.safetensors'
THIN = ('pole', 'sign', 'fence', 'pedestrian', 'bicyclist')
SCALES4 = [0.75, 1.0, 1.25, 1.5]
#: (key, description, label settings); the combined row is added after these are measured.
ROWS = [
    ('one_pass', 'one pass at the training size', {}),
    ('flip', '+ horizontal flip', {'flip': True}),
    ('scales4', 'scales 0.75/1/1.25/1.5', {'scales': SCALES4}),
    ('scales4_flip', 'scales 0.75/1/1.25/1.5 + flip', {'scales': SCALES4, 'flip': True}),
    ('scale1.5', 'one pass at 1.5x', {'scales': [1.5]}),
    ('dis_r1', 'fusion t-1..t+1, DIS', {'fusion_radius': 1}),
    ('dis_r2', 'fusion t-2..t+2, DIS', {'fusion_radius': 2}),
    ('exact_r1', 'fusion t-1..t+1, exact flow (ORACLE)',
     {'fusion_radius': 1, 'fusion_flow': 'ground_truth'}),
    ('exact_r2', 'fusion t-2..t+2, exact flow (ORACLE)',
     {'fusion_radius': 2, 'fusion_flow': 'ground_truth'}),
]
TTA_ROWS = ('one_pass', 'flip', 'scales4', 'scales4_flip', 'scale1.5')
FUSION_ROWS = ('dis_r1', 'dis_r2')
#: Within this much label mIoU of the best, the cheaper row is the default.
MARGIN = 0.003
#: The one departure from the rule, with its reason (the docstring's 'Added after the runs').
AFTER_THE_RUNS = {
    'rule_pick': 'combined', 'default': 'scales4',
    'why': "the rule's pick does all of scales4's work plus DIS flow, so it cannot cost less; "
           "its fewer measured seconds per frame are the shared machine's noise (load "
           'average 3-10); scales4 has the best mIoU and is the cheapest row within 0.003 of '
           'it by the work it does'}
#: What every row labels with, besides its settings; the defaults of `label` are not assumed.
BASE = {'scales': [1.0], 'flip': False, 'fusion_radius': 0, 'fusion_flow': 'dis'}


def command(args, key: str, settings: dict) -> list:
    """Return the `stkd label` command of a row (every label setting spelled out)."""
    cmd = ['stkd', 'label', '--config', args.config, '--teacher', args.teacher, '--out',
           str(Path(args.out) / key), '--device', args.device, '--set',
           f'data.synthetic.unlabeled_clips={args.streets}']
    for name, value in {**BASE, **settings}.items():
        cmd += ['--set', f'label.{name}={json.dumps(value)}']
    return cmd


def warm(cfg, streets: int):
    """Render every frame and the exact flow to t+-1, t+-2 into the render cache."""
    source = unlabeled_streets(cfg.data)
    frames = cfg.data.synthetic.frames
    start = time.perf_counter()
    for index in range(streets):
        for t in range(frames):
            source.world.frame(index, t)
            for to in (t - 2, t - 1, t + 1, t + 2):
                if 0 <= to < frames:
                    source.world.frame(index, t, to)
    print(f'render cache warm: {streets} streets in {time.perf_counter() - start:.0f} s')


def warm_teacher(args, cfg):
    """One pass at every scale of the rows first, so that no row pays the first call's setup."""
    from stkd_ros.labeling.passes import TeacherPasses
    from stkd_ros.model_file import load_model_file
    model, meta = load_model_file(args.teacher, args.device)
    source = unlabeled_streets(cfg.data)
    frame = source.sequence_frame(source.list_sequences()[0][0], 0)[0]
    TeacherPasses(model, meta, scales=SCALES4, flip=True, device=args.device).probabilities(frame)


def run_row(args, key: str, description: str, settings: dict, teacher_sha: str) -> dict:
    cmd = command(args, key, settings)
    print(f'{key}: {description}\n$ {shlex.join(cmd)}', flush=True)
    out = Path(args.out) / key
    shutil.rmtree(out, ignore_errors=True)      # a row is timed from an empty store
    load = os.getloadavg()[0]
    summary = label(args.config, args.teacher, out, device=args.device, progress=False,
                    overrides=cmd[cmd.index('--set') + 1::2])
    quality = summary['quality']
    row = {'description': description, 'command': shlex.join(cmd),
           'settings': {**BASE, **settings}, 'oracle': summary['oracle'],
           'miou': quality['miou'], **{c: quality['per_class_iou'][c] for c in THIN},
           'seconds_per_frame': summary['seconds_per_frame'], 'passes': summary['passes'],
           'frames': summary['frames_labeled'], 'load_before': load,
           'load_after': os.getloadavg()[0], 'teacher_sha256': teacher_sha,
           'commit': commit(), 'date': time.strftime('%Y-%m-%d %H:%M:%S'),
           'coverage': quality['coverage']}
    print(f'  mIoU {row["miou"]:.4f}  ' + '  '.join(f'{c} {row[c]:.3f}' for c in THIN)
          + f'  {row["seconds_per_frame"]:.3f} s/frame', flush=True)
    return row


def pick(rows: dict) -> str:
    """Apply the rule: best non-oracle mIoU; within MARGIN of it, the fastest row."""
    real = {k: r for k, r in rows.items() if not r['oracle']}
    best = max(r['miou'] for r in real.values())
    near = [k for k, r in real.items() if r['miou'] >= best - MARGIN]
    return min(near, key=lambda k: real[k]['seconds_per_frame'])


def table(rows: dict, chosen: str):
    columns = ['row', 'label mIoU', *THIN, 's/frame', 'passes']
    print('| ' + ' | '.join(columns) + ' |')
    print('|' + '|'.join('---' for _ in columns) + '|')
    for key, r in rows.items():
        name = r['description'] + (' **(default)**' if key == chosen else '')
        print(f'| {name} | {r["miou"]:.4f} | ' + ' | '.join(f'{r[c]:.3f}' for c in THIN)
              + f' | {r["seconds_per_frame"]:.3f} | {r["passes"]} |')


def commands() -> list:
    """
    Return the `stkd label` command of every row, as shown, with the default arguments.

    The combined row, made after the others are measured, takes its settings from two of
    them; every command spells out all of BASE's keys, so its keys are covered here.
    """
    args = parser().parse_args([])
    return [shlex.join(command(args, key, settings)) for key, _, settings in ROWS]


def parser() -> argparse.ArgumentParser:
    """Return the experiment's command line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument('--teacher', default=TEACHER)
    parser.add_argument('--config', default=CONFIG)
    parser.add_argument('--streets', type=int, default=20)
    parser.add_argument('--device', default='cpu', choices=['cpu', 'cuda'])
    parser.add_argument('--out', default='runs/label_quality')
    parser.add_argument('--results', default='experiments/results')
    parser.add_argument('--threads', type=int, default=1,
                        help='torch threads (1: two threads on a shared 2-core machine ran '
                        'the teacher 5-10x slower than one)')
    return parser


def main():
    args = parser().parse_args()
    torch.set_num_threads(args.threads)
    if not Path(args.teacher).is_file():
        raise SystemExit(f'teacher not found: {args.teacher}; restore it with: mkdir -p '
                         f'runs/teacher4k && git show c94640f:experiments/teachers/'
                         f'synthetic_video.safetensors > runs/teacher4k/model.safetensors')
    teacher_sha = file_sha256(args.teacher)
    path = Path(args.results) / 'label_quality.json'
    before = json.loads(path.read_text()) if path.is_file() else {}
    # Rows recorded before rows carried their own commit and date took the file's.
    recorded = {k: {'commit': before.get('commit'), 'date': before.get('machine', {}).get(
        'date'), **r} for k, r in before.get('rows', {}).items()}
    cfg = load_config(args.config, [f'data.synthetic.unlabeled_clips={args.streets}'])
    warm(cfg, args.streets)
    warm_teacher(args, cfg)
    rows = {}

    def measure(key, description, settings):
        old = recorded.get(key)
        if (old and old['command'] == shlex.join(command(args, key, settings))
                and old['teacher_sha256'] == teacher_sha):
            print(f'{key}: recorded in {path}')
            rows[key] = old
        else:
            rows[key] = run_row(args, key, description, settings, teacher_sha)
        write(path, args, rows, teacher_sha, None)

    for key, description, settings in ROWS:
        measure(key, description, settings)
    tta = max(TTA_ROWS, key=lambda k: rows[k]['miou'])
    fusion = max(FUSION_ROWS, key=lambda k: rows[k]['miou'])
    combined = {k: v for k, v in rows[tta]['settings'].items() if k in ('scales', 'flip')}
    combined.update({k: v for k, v in rows[fusion]['settings'].items()
                     if k in ('fusion_radius', 'fusion_flow')})
    measure('combined', f'best TTA ({rows[tta]["description"]}) + best fusion '
            f'({rows[fusion]["description"]})', combined)
    by_rule = pick(rows)
    chosen = (AFTER_THE_RUNS['default'] if by_rule == AFTER_THE_RUNS['rule_pick']
              else by_rule)
    table(rows, chosen)
    write(path, args, rows, teacher_sha, chosen, by_rule)
    print(f'\nthe rule picks: {rows[by_rule]["description"]} {rows[by_rule]["settings"]}')
    if chosen != by_rule:
        print(f'the default: {rows[chosen]["description"]} {rows[chosen]["settings"]}, '
              f'because {AFTER_THE_RUNS["why"]}')
    print(f'wrote {path}')


def commit() -> str:
    return subprocess.run(['git', 'rev-parse', 'HEAD'], capture_output=True,
                          text=True).stdout.strip()


def write(path: Path, args, rows: dict, teacher_sha: str, chosen, by_rule=None):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({
        'experiment': 'label_quality', 'config': args.config, 'teacher': args.teacher,
        'teacher_sha256': teacher_sha, 'streets': args.streets, 'device': args.device,
        'threads': args.threads, 'commit': commit(), 'machine': machine(),
        'rule': f'highest non-oracle label mIoU; within {MARGIN} of it, the fewest seconds '
        f'per frame', 'rule_pick': by_rule, 'default': chosen,
        'after_the_runs': AFTER_THE_RUNS if chosen != by_rule else None,
        'rows': rows}, indent=1) + '\n')


if __name__ == '__main__':
    main()
