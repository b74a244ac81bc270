"""
`stkd demo`: the main job on the built-in synthetic world, end to end.

Train the teacher and the baseline student (labels only); distill the student from the
labeled streets plus 120 streets of unlabeled video with `stkd distill`'s default recipe (the
teacher's classes of each unlabeled view are its targets); evaluate all three on 32 held-out
streets; export the distilled student to ONNX; record a synthetic drive to a bag; evaluate
both students on it with eval-bag; replay it through segment_node and flicker_monitor as
real ROS 2 processes; print one table, and put it on the eval-bag report's page
(report.html, with the drive as video), whose path comes last.
Steps already done (their model file exists) are reused.
"""

import json
import logging
from pathlib import Path

import numpy as np

from stkd_ros.data.classes import colorize
from stkd_ros.data.image_io import write_rgb
from stkd_ros.data.synthetic import SyntheticConfig, SyntheticWorld
from stkd_ros.flow.visualize import flow_to_color
from stkd_ros.report.drive_page import write_page
from stkd_ros.report.html_page import Section

log = logging.getLogger(__name__)
CONFIG = Path(__file__).resolve().parents[2] / 'config' / 'distill' / 'synthetic.yaml'
IMAGE_TOPIC, LABEL_TOPIC = '/camera/image_raw', '/camera/labels'


def preview(world: SyntheticWorld, clips: int, path: Path, gap: int = 3) -> Path:
    """One row per clip: frame t, its labels, frame t+gap, flow t -> t+gap."""
    rows = []
    for c in range(clips):
        clip = world.clip(c, start=0, length=2, gap=gap)
        rows.append(np.concatenate([clip.frames[0], colorize(clip.labels[0]), clip.frames[1],
                                    flow_to_color(clip.flows[0])], axis=1))
    write_rgb(path, np.concatenate(rows, axis=0))
    return path


def demo_plan(quick: bool) -> dict:
    """Return the demo's size, schedules and `--set`s (quick: what `make demo` runs)."""
    h, w = (96, 192) if quick else (128, 256)
    # The teacher gets twice the students' steps: its labels teach no more than it knows
    # (experiments/demo_pilot.py, tuning streets, distilling from a store of its labels: at
    # 200 steps it was 0.023 mIoU above the baseline and the distilled student gained 0.003;
    # at 400, 0.048 and 0.005).
    return {'size': (h, w), 'teacher_steps': 400 if quick else 1600,
            'student_steps': 200 if quick else 800, 'drive_frames': 60 if quick else 150,
            'overrides': [f'data.synthetic.height={h}', f'data.synthetic.width={w}',
                          f'data.crop_size=[{h},{w}]', f'data.eval_size=[{h},{w}]',
                          'train.eval_every=1000', 'data.synthetic.val_clips=32',
                          'data.synthetic.keys_per_clip=2']}


def _once(model_dir: Path, train):
    """Train unless ``model_dir`` already holds a finished model file."""
    if not (model_dir / 'model.safetensors').is_file():
        train()
    return model_dir / 'model.safetensors'


def train_models(out: Path, plan: dict, sets: list):
    """Train the teacher and the baseline, then distill; return the model files by name."""
    from stkd_ros.training import commands
    log.info('2/7 training the teacher and the baseline student')
    teacher = _once(out / 'teacher', lambda: commands.train_teacher(
        CONFIG, out / 'teacher', plan['teacher_steps'], sets))
    baseline = _once(out / 'baseline', lambda: commands.train_student(
        CONFIG, out / 'baseline', plan['student_steps'], sets))
    log.info('3/7 distilling the student (the teacher labels each unlabeled view)')
    distilled = _once(out / 'distilled', lambda: commands.distill(
        CONFIG, teacher, out / 'distilled', plan['student_steps'], sets))
    return {'teacher': teacher, 'baseline': baseline, 'distilled': distilled}


def run_demo(out='runs/demo', quick: bool = False) -> dict:
    from stkd_ros.commands.eval_bag import eval_bag
    from stkd_ros.commands.export import export_onnx
    from stkd_ros.commands.replay import replay
    from stkd_ros.commands.synth import synth
    from stkd_ros.training import commands
    out, plan = Path(out), demo_plan(quick)
    sets = plan['overrides'] + [f'data.synthetic.render_cache={out / "render_cache"}']
    world = SyntheticWorld(SyntheticConfig(height=plan['size'][0], width=plan['size'][1]))
    shown = preview(world, 3, out / 'preview.png')
    log.info('1/7 synthetic world: preview %s', shown)

    models = train_models(out, plan, sets)
    baseline, distilled = models['baseline'], models['distilled']

    log.info('4/7 evaluating on held-out clips')
    table = {name: commands.evaluate_model(path, CONFIG, out / f'eval_{name}.json', sets)
             for name, path in models.items()}
    onnx = export_onnx(distilled, out / 'distilled' / 'model.onnx')

    log.info('5/7 recording a synthetic drive to a bag')
    drive = out / 'drive'
    if not (drive / 'bag').exists():
        synth(drive, clips=1, frames=plan['drive_frames'], size=plan['size'], seed=777,
              bag=True)
    log.info('6/7 eval-bag: baseline vs distilled')
    report_dir = out / 'report'
    bag_summary = eval_bag(drive / 'bag', [baseline, distilled], IMAGE_TOPIC,
                           label_topic=LABEL_TOPIC, report=report_dir)
    log.info('7/7 replaying the bag through segment_node and flicker_monitor')
    live = {name: replay(drive / 'bag', models[name], IMAGE_TOPIC, out / f'replay_{name}')
            for name in ('baseline', 'distilled')}

    summary = {'held_out': {n: {k: r[k] for k in ('miou', 'flicker', 'tc', 'ms_per_frame',
                                                  'stability_flow')}
                            for n, r in table.items()},
               'bag': {n: {k: m[k] for k in ('miou', 'flicker', 'tc')}
                       for n, m in bag_summary['models'].items()},
               'bag_flow': bag_summary['stability_flow'],
               'live': live, 'report': bag_summary['report'], 'onnx': str(onnx),
               'preview': str(shown)}
    summary['report_html'] = str(_page(report_dir, summary))
    (out / 'summary.json').write_text(json.dumps(summary, indent=2))
    _print(summary, bag_summary, live)
    return summary


def _page(report_dir: Path, summary: dict) -> Path:
    """Render eval-bag's report.html again with the demo's held-out and live tables."""
    flow = next(iter(summary['held_out'].values()))['stability_flow']
    held_out = Section(
        '32 held-out synthetic streets (stkd evaluate)',
        f'Teacher, baseline and distilled student on streets none was trained on, along '
        f"{flow}. The distilled student learned the unlabeled streets from the teacher's "
        f"classes of each view (stkd distill's default recipe). Read flicker first (the "
        f'share of pixels whose class changes from frame to frame, lower is steadier); TC is '
        f'the mIoU of the same pixels.',
        ('model', 'flicker', 'TC', 'mIoU', 'ms/frame'),
        [[name, f'{r["flicker"]:.4f}', f'{r["tc"]:.4f}', f'{r["miou"]:.4f}',
          f'{r["ms_per_frame"]:.1f}'] for name, r in summary['held_out'].items()])
    live = Section(
        'Live replay (bag_player -> segment_node -> flicker_monitor)',
        'The same drive through the ROS 2 nodes as real processes, with the same flow: the '
        "monitor's running totals at the last frame.",
        ('model', 'flicker', 'TC', 'steps'),
        [[name, f'{r["flicker"]:.4f}', f'{r["tc"]:.4f}', str(r['steps'])]
         for name, r in summary['live'].items()])
    metrics = json.loads((report_dir / 'metrics.json').read_text())
    return write_page(report_dir, metrics, extra=[held_out, live])


def _print(summary, bag_summary, live):
    flow = next(iter(summary['held_out'].values()))['stability_flow']
    print(f'\n32 held-out synthetic streets ({flow}):')
    print(f'  {"model":<10} {"mIoU":>7} {"flicker":>8} {"TC":>7} {"ms/frame":>9}')
    for name, r in summary['held_out'].items():
        print(f'  {name:<10} {r["miou"]:7.4f} {r["flicker"]:8.4f} {r["tc"]:7.4f} '
              f'{r["ms_per_frame"]:9.1f}')
    print('  Read flicker first (share of pixels whose class changes from frame to frame, '
          'lower is steadier):\n  TC is the mIoU of the same pixels, averaged over classes, '
          'so a class predicted in a few pixels moves it.')
    print(f'\nrecorded drive (eval-bag, {summary["bag_flow"]}):')
    for name, m in bag_summary['models'].items():
        print(f'  {name:<22} mIoU {m["miou"]:.4f}  flicker {m["flicker"]:.4f}  '
              f'TC {m["tc"]:.4f}')
    print('\nlive replay (bag_player -> segment_node -> flicker_monitor, the same flow; running '
          'totals):')
    for name, r in live.items():
        print(f'  {name:<10} flicker {r["flicker"]:.4f}  TC {r["tc"]:.4f} over '
              f'{r["steps"]} steps')
    print(f'\nONNX:   {summary["onnx"]}\npreview: {summary["preview"]}')
    print('\nThese are short demo schedules; docs/results.md has the comparison at converged '
          'schedules over paired seeds.')
    print(f'\nThe report, with the drive side by side as video (open it in a browser):\n'
          f'  {summary["report_html"]}')
