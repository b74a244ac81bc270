"""
Benchmark: does memory grow with a drive's length? eval-bag, label and distill on a long drive.

Runs each command as a user would, in a process of its own, on a drive `long_drive.py` wrote
(default: 10 minutes at 640x480 and 30 Hz, labels on every frame), and samples every
``--every`` seconds the resident memory of the command's process (RSS) and the proportional
set size of it and its children (PSS: DataLoader workers share most of their pages with the
parent, so their RSS would be counted twice). Each row gives the memory 2 minutes in and at
the end, and their ratio: the target is an end within 10% of the 2-minute figure. The
training cache's disk (the frame pack distill and label read) is set beside the bag's; label
and distill get a cache each, so that each run's memory includes decoding the drive.

    python long_drive.py --out /tmp/drive --size 480x640 --minutes 10
    python fleet_memory.py --drive /tmp/drive --teacher T.safetensors --student S.safetensors

Memory, not speed: it may run beside other work (its seconds column is then not a rate).
"""

import argparse
import json
from pathlib import Path
import subprocess
import sys
import tempfile
import time

import psutil
from report import emit

CONFIG = Path(__file__).resolve().parents[1] / 'config' / 'distill' / 'synthetic.yaml'
MB = 1e6


def tree_memory(process: psutil.Process) -> tuple:
    """(RSS of the process, PSS of it and its children) in bytes."""
    rss = process.memory_info().rss
    pss = 0
    for p in [process] + process.children(recursive=True):
        try:
            pss += p.memory_full_info().pss
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            pass   # a worker that ended between the listing and the read
    return rss, pss


def watch(name: str, command: list, work: Path, every: float, mark: float) -> dict:
    """Run ``command`` to its end, sampling memory; the row and the samples."""
    log = work / f'{name}.log'
    start = time.monotonic()
    with open(log, 'w') as out:
        proc = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
        process = psutil.Process(proc.pid)
        samples = []
        while proc.poll() is None:
            try:
                rss, pss = tree_memory(process)
            except psutil.NoSuchProcess:
                break
            if rss:   # 0: a process that has ended and is not yet reaped
                samples.append((time.monotonic() - start, rss, pss))
            try:
                proc.wait(timeout=every)
            except subprocess.TimeoutExpired:
                pass
    seconds = time.monotonic() - start
    if proc.returncode != 0:
        sys.exit(f'{name} failed (exit {proc.returncode}); see {log}')
    at_two = next((s for s in samples if s[0] >= mark), None)
    if at_two is None:
        sys.exit(f'{name} ended after {seconds:.0f} s, before the sample at {mark:.0f} s')
    end = samples[-1]
    return {'command': name, 'seconds': seconds,
            'rss_2min_mb': at_two[1] / MB, 'rss_end_mb': end[1] / MB,
            'rss_end_over_2min': end[1] / at_two[1],
            'pss_2min_mb': at_two[2] / MB, 'pss_end_mb': end[2] / MB,
            'pss_end_over_2min': end[2] / at_two[2],
            'rss_peak_mb': max(s[1] for s in samples) / MB,
            'samples': [[round(t, 1), round(r / MB, 1), round(p / MB, 1)]
                        for t, r, p in samples]}


def folder_bytes(folder: Path) -> int:
    return sum(f.stat().st_size for f in folder.rglob('*') if f.is_file())


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--drive', required=True, help='a bag long_drive.py wrote')
    parser.add_argument('--topic', default='/camera/image_raw/compressed')
    parser.add_argument('--label-topic', default='/camera/labels')
    parser.add_argument('--teacher', required=True, help="the config's teacher, trained")
    parser.add_argument('--student', required=True, help="eval-bag's model file")
    parser.add_argument('--config', default=str(CONFIG), help='label and distill config')
    parser.add_argument('--set', action='append', default=[], metavar='KEY=VALUE',
                        help='a config override for label and distill (repeatable)')
    parser.add_argument('--distill-steps', type=int, default=150)
    parser.add_argument('--commands', default='eval-bag,label,distill')
    parser.add_argument('--every', type=float, default=2.0, help='seconds between samples')
    parser.add_argument('--mark', type=float, default=120.0,
                        help='the early sample the end is compared with (seconds in)')
    parser.add_argument('--work', default=None)
    parser.add_argument('--out', default=None, help='JSON folder (default bench/results)')
    args = parser.parse_args()
    work = Path(args.work or tempfile.mkdtemp(prefix='fleet_memory_'))
    work.mkdir(parents=True, exist_ok=True)
    drive = Path(args.drive)
    info_path = drive.parent / f'{drive.name}.json'
    drive_info = json.loads(info_path.read_text()) if info_path.exists() else {}
    stkd = [sys.executable, '-m', 'stkd_ros.cli']
    overrides = [a for item in ['data.synthetic.unlabeled_clips=0', *args.set]
                 for a in ('--set', item)]
    commands = {
        'eval-bag': stkd + ['eval-bag', '--bag', str(drive), '--model', args.student,
                            '--topic', args.topic, '--label-topic', args.label_topic,
                            '--report', str(work / 'report')],
        'label': stkd + ['label', '--config', args.config, '--teacher', args.teacher,
                         '--out', str(work / 'store'), '--bag', str(drive),
                         '--topic', args.topic, *overrides,
                         '--set', f'data.frame_cache={work / "frames_label"}'],
        'distill': stkd + ['distill', '--config', args.config, '--teacher', args.teacher,
                           '--out', str(work / 'distill'), '--unlabeled-bag', str(drive),
                           '--unlabeled-topic', args.topic, '--steps',
                           str(args.distill_steps), *overrides,
                           '--set', f'data.frame_cache={work / "frames_distill"}'],
    }
    rows = []
    for name in args.commands.split(','):
        row = watch(name, commands[name], work, args.every, args.mark)
        print(f'{name}: {row["seconds"]:.0f} s, RSS {row["rss_2min_mb"]:.0f} -> '
              f'{row["rss_end_mb"]:.0f} MB', flush=True)
        rows.append(row)
    bag_bytes = folder_bytes(drive)
    for cache in ('frames_label', 'frames_distill'):
        if (work / cache).exists():
            rows.append({'command': f'disk: {cache}', 'cache_mb': folder_bytes(work / cache)
                         / MB, 'bag_mb': bag_bytes / MB,
                         'cache_over_bag': folder_bytes(work / cache) / bag_bytes})
    print(f'drive {drive}: {drive_info.get("frames", "?")} frames, {bag_bytes / 1e9:.2f} GB')
    emit('fleet_memory', [dict(r, drive=drive_info) for r in rows],
         ['command', 'seconds', 'rss_2min_mb', 'rss_end_mb', 'rss_end_over_2min',
          'pss_2min_mb', 'pss_end_mb', 'pss_end_over_2min', 'rss_peak_mb', 'cache_mb',
          'bag_mb', 'cache_over_bag'], args.out)


if __name__ == '__main__':
    main()
