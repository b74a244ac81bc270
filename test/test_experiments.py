"""The experiments: their commands resolve today, and the protocol runs end to end."""

import importlib
import json
import os
import shlex
import signal
import subprocess
import sys
import time

from cli_helpers import _cmd, ROOT, TINY
import pytest
from stkd_ros.cli import build_parser
from stkd_ros.config import load_config

#: Every script in experiments/ (a module that runs as one); the others are shared code.
SCRIPTS = sorted(p.stem for p in (ROOT / 'experiments').glob('*.py')
                 if "if __name__ == '__main__':" in p.read_text())


def test_the_scripts_are_found():
    assert {'unlabeled_ablation', 'best_student', 'label_quality', 'demo_pilot'} <= set(SCRIPTS)


@pytest.mark.parametrize('script', SCRIPTS)
def test_every_command_an_experiment_runs_resolves_against_todays_config(script):
    """A key or an option removed since a protocol ran fails here, not hours into its rerun."""
    module = importlib.import_module(f'experiments.{script}')
    assert hasattr(module, 'commands'), f'experiments/{script}.py: no commands() to check'
    lines = module.commands()
    assert lines, f'experiments/{script}.py: commands() returned none'
    for line in lines:
        words = shlex.split(line)
        assert words[0] == 'stkd', line
        try:
            args = build_parser().parse_args(words[1:])
        except SystemExit:
            pytest.fail(f'stkd does not take: {line}')
        if getattr(args, 'config', None) is None:
            continue                  # a command without a config (synth, eval-bag): parsed
        config = ROOT / args.config   # an absolute path stays as it is
        try:
            load_config(config, args.set)
        except Exception as exc:
            pytest.fail(f'{exc}\nin: {line}')


def test_the_unlabeled_protocol_lists_every_row_and_the_tuning_runs():
    from experiments.unlabeled_ablation import commands, ROWS, TUNED_TEMPORAL
    lines = commands()
    for row in ROWS:
        assert any(f'/val/{row}_s0 ' in line for line in lines), row
    for weight in TUNED_TEMPORAL:
        assert any(f'distill.weights.temporal={weight}' in line and '/tune/D_s0 ' in line
                   for line in lines), weight


@pytest.mark.slow
def test_the_protocol_pairs_seeds_and_writes_every_row(tmp_path):
    subprocess.run(_cmd('train-teacher', tmp_path / 't', 2, ['train.eval_every=2']),
                   check=True, capture_output=True)
    world = ['data.synthetic.unlabeled_clips=2', 'data.synthetic.tune_clips=2',
             'data.gap=[1,2]', 'data.synthetic.label_every=3', 'train.eval_every=2']
    sets = [f'--set={s}' for s in TINY + world]

    def protocol(out, rows):
        return subprocess.run(
            [sys.executable, '-m', 'experiments.unlabeled_ablation', '--teacher',
             str(tmp_path / 't' / 'model.safetensors'), '--out', str(tmp_path / out),
             '--steps', '2', '--rows', rows, '--seeds', '2', '--split', 'tune',
             '--results', str(tmp_path / 'results')] + sets,
            cwd=ROOT, capture_output=True, text=True)

    res = protocol('runs', 'A,D')
    assert res.returncode == 0, res.stderr[-2000:]
    result = json.loads((tmp_path / 'results' / 'unlabeled_ablation_tune.json').read_text())
    assert set(result['rows']) == {'A', 'D', 'teacher'}
    for row in ('A', 'D'):
        assert set(result['rows'][row]['seeds']) == {'0', '1'}
        for scores in result['rows'][row]['seeds'].values():
            assert {'miou', 'tc', 'flicker'} <= set(scores)
    assert 'train-student' in result['rows']['A']['seeds']['0']['command']
    from stkd_ros.config import DistillWeights
    d_command = result['rows']['D']['seeds']['1']['command']
    assert all(f'--set=distill.weights.{k}={v}' in d_command     # the full method, named
               for k, v in DistillWeights.FULL_METHOD.items())
    assert 'A, seed 1: stkd train-student' in res.stdout
    assert '| D ' in res.stdout and 'n=2' in res.stdout

    # A new machine without runs/: the recorded runs are kept, nothing is trained again.
    again = protocol('elsewhere', 'D')
    assert again.returncode == 0, again.stderr[-2000:]
    assert 'D, seed 1: recorded in' in again.stdout
    assert not (tmp_path / 'elsewhere' / 'tune' / 'D_s0').exists()
    kept = json.loads((tmp_path / 'results' / 'unlabeled_ablation_tune.json').read_text())
    assert kept == result


def test_a_row_with_one_paired_seed_gets_its_difference_and_no_interval():
    from experiments.unlabeled_ablation import summarize
    classes = dict.fromkeys(('pole', 'sign', 'fence', 'pedestrian'), 0.5)

    def run(miou):
        return {'miou': miou, 'tc': 0.7, 'flicker': 0.03, 'per_class_iou': classes}

    rows = summarize({'A': {'0': run(0.50), '1': run(0.51)}, 'D': {'0': run(0.52)},
                      'E': {'7': run(0.40)}})
    by_name = {r['row']: r for r in rows}
    assert by_name['D']['miou - A (95% CI)'] == '+0.0200 (n=1: no interval)'
    assert by_name['E']['miou - A (95% CI)'] == 'no seed shared with A'


def _runs(miou, flicker, seeds=3, spread=0.001):
    classes = dict.fromkeys(('pole', 'sign', 'fence', 'pedestrian'), 0.5)
    return {str(s): {'miou': miou + spread * s, 'flicker': flicker - spread * s / 10, 'tc': 0.7,
                     'per_class_iou': classes} for s in range(seeds)}


def test_protocol_v2_reads_its_recommended_recipe_as_the_row_the_pilot_picked():
    from experiments import best_student
    assert best_student.RECIPE == 'L' and best_student.R == 'L'
    assert 'R' not in best_student.ROWS   # L's runs are not trained again under R's name
    scores = {'A': _runs(0.50, 0.040), 'B': _runs(0.53, 0.036), 'O': _runs(0.60, 0.038),
              'L': _runs(0.545, 0.036), 'D': _runs(0.51, 0.030)}
    verdicts = {t['target']: t['verdict'] for t in best_student.targets(scores)}
    # A, L (5 seeds planned) have 3: every verdict is interim.
    assert verdicts['R (L) - B mIoU >= +0.010, interval above 0'] == 'met (interim)'
    assert verdicts['R (L) - D flicker < 0, interval below 0'] == 'missed (interim)'
    assert verdicts['default recipe (the rule)'] == 'L (interim)'
    scores['A'], scores['L'] = _runs(0.50, 0.040, seeds=5), _runs(0.545, 0.036, seeds=5)
    final = {t['target']: t for t in best_student.targets(scores)}
    assert final["R (L) captures >= 0.5 of the oracle's gain (means)"]['difference'] == '0.45'
    assert final["R (L) captures >= 0.5 of the oracle's gain (means)"]['verdict'] == 'missed'
    assert final['default recipe (the rule)']['verdict'] == 'L'


def test_the_default_recipe_is_picked_by_the_rule_written_before_the_runs():
    from experiments.best_student import default_recipe
    a = _runs(0.50, 0.040)
    # The oracle is no recipe; D beats A on both; L is more accurate but no steadier.
    scores = {'A': a, 'O': _runs(0.60, 0.030), 'D': _runs(0.51, 0.032),
              'L': _runs(0.55, 0.040)}
    assert default_recipe(scores) == 'D'
    # Within 0.005 of the most accurate, the steadier one.
    scores['B'] = _runs(0.554, 0.038)
    scores['L'] = _runs(0.550, 0.035)
    assert default_recipe(scores) == 'L'
    # One seed gives no interval, so it cannot qualify.
    assert default_recipe({'A': a, 'L': _runs(0.55, 0.035, seeds=1)}) == 'none beats A on both'


def _recorded(tmp_path, args, rows, teacher_sha='t1'):
    from experiments.unlabeled_ablation import ledger
    path = tmp_path / 'protocol.json'
    ledger(path, args, tmp_path / 'runs', teacher_sha).write(rows)
    return path


def _args(**kw):
    import argparse
    base = {'teacher': 'teachers/t.safetensors', 'config': 'c.yaml', 'steps': None,
            'split': 'val', 'set': []}
    return argparse.Namespace(**base | kw)


def test_recorded_runs_are_kept_only_with_the_same_command_and_teacher(tmp_path):
    from experiments.runs import shown
    from experiments.unlabeled_ablation import command, recorded_runs
    args, out = _args(), tmp_path / 'runs'

    def run(row, seed, teacher_sha=None, **changes):
        _, cmd = command(row, seed, _args(**changes), tmp_path / 'old_runs')
        entry = {'miou': 0.5, 'command': shown(cmd)}
        return entry | ({'teacher_sha256': teacher_sha} if teacher_sha else {})

    # D's seed 2 ran when the full method was the default: its command named no weights.
    old_form = run('D', 2, 't1')
    old_form['command'] = ' '.join(w for w in old_form['command'].split()
                                   if not w.startswith('--set=distill.weights.'))
    path = _recorded(tmp_path, args, {
        'A': {'0': run('A', 0), '1': run('A', 1, steps=10)},
        'D': {'0': run('D', 0, 't1', teacher='elsewhere/t.safetensors'), '1': run('D', 1, 't0'),
              '2': old_form},
        'teacher': {'0': {'miou': 0.6}}})
    kept = recorded_runs(path, args, out, 't1')
    # --out and the teacher's path do not matter; steps and the teacher's weights do.
    assert kept == {'A': {'0': run('A', 0)},
                    'D': {'0': run('D', 0, 't1', teacher='elsewhere/t.safetensors'),
                          '2': old_form},
                    'teacher': {'0': {'miou': 0.6}}}
    assert 'teacher' not in recorded_runs(path, args, out, 't2')
    assert 'teacher' not in recorded_runs(path, _args(split='tune'), out, 't1')
    assert recorded_runs(tmp_path / 'none.json', args, out, 't1') == {}


def test_the_recorded_runs_are_those_todays_commands_train():
    # B and C ran with channel-wise KD at weight 0, a key removed since: still the same runs.
    from experiments.unlabeled_ablation import parser, recorded_runs, RESULTS
    path = RESULTS / 'unlabeled_ablation.json'
    recorded = json.loads(path.read_text())
    assert '--set=distill.weights.channel=0' in recorded['rows']['B']['seeds']['0']['command']
    kept = recorded_runs(path, parser().parse_args([]), ROOT / 'runs', recorded['teacher_sha256'],
                         quiet=True)
    assert {row: sorted(seeds) for row, seeds in kept.items()} == {
        row: sorted(entry['seeds']) for row, entry in recorded['rows'].items()}


def test_two_processes_recording_into_one_json_keep_each_others_runs(tmp_path):
    from experiments.runs import shown
    from experiments.unlabeled_ablation import command, ledger
    args, out = _args(), tmp_path / 'runs'

    def run(row, seed):
        entry = {'miou': 0.5, 'command': shown(command(row, seed, args, out)[1])}
        return entry | ({'teacher_sha256': 't1'} if row != 'A' else {})

    path = tmp_path / 'protocol.json'
    book = ledger(path, args, out, 't1')
    # One process (--rows A) started before the other (--rows D) finished anything.
    first, second = {'A': {}}, {'D': {}}
    first['A']['0'] = run('A', 0)
    book.record(first)
    second['D']['0'] = run('D', 0)
    book.record(second)
    first['A']['1'] = run('A', 1)
    book.record(first)
    rows = json.loads(path.read_text())['rows']
    assert rows == {'A': {'seeds': {'0': run('A', 0), '1': run('A', 1)}},
                    'D': {'seeds': {'0': run('D', 0)}}}


def test_a_missing_teacher_stops_with_the_commands_that_restore_or_train_it(tmp_path):
    res = subprocess.run(
        [sys.executable, '-m', 'experiments.unlabeled_ablation', '--teacher',
         str(tmp_path / 'none.safetensors'), '--out', str(tmp_path / 'runs'),
         '--results', str(tmp_path / 'results')],
        cwd=ROOT, capture_output=True, text=True)
    assert res.returncode != 0
    error = res.stderr.strip().splitlines()
    assert len(error) == 1 and 'none.safetensors' in error[0]
    assert 'git show c94640f:' in error[0] and 'stkd train-teacher' in error[0]
    assert not (tmp_path / 'results').exists() or not any((tmp_path / 'results').iterdir())


def test_protocol_v2_names_what_stops_it_in_one_line(tmp_path):
    def best_student(*args):
        res = subprocess.run([sys.executable, '-m', 'experiments.best_student',
                              '--out', str(tmp_path / 'runs'), '--results',
                              str(tmp_path / 'results'), *args],
                             cwd=tmp_path, env=dict(os.environ, PYTHONPATH=str(ROOT)),
                             capture_output=True, text=True)
        assert res.returncode != 0
        error = res.stderr.strip().splitlines()
        assert len(error) == 1, res.stderr
        return error[0]

    assert 'no row X' in best_student('--rows', 'X')
    missing = best_student('--rows', 'L', '--teacher', str(tmp_path / 'none.safetensors'))
    assert 'none.safetensors' in missing and 'git show 7654261:' in missing
    assert 'stkd train-teacher' in missing
    # A store that another teacher labeled is refused, not reused.
    teacher = tmp_path / 'teacher.safetensors'
    teacher.write_bytes(b'another teacher')
    store = tmp_path / 'runs' / 'stores' / 'teacher_aligned'
    store.mkdir(parents=True)
    (store / 'manifest.json').write_text(json.dumps({'teacher_sha256': '0' * 64}))
    refused = best_student('--rows', 'L', '--teacher', str(teacher))
    assert 'labeled by another teacher' in refused and 'teacher_aligned' in refused
    assert not (tmp_path / 'results').exists()


def test_the_restore_command_gives_the_teacher_the_recorded_runs_name(tmp_path):
    from stkd_ros.labeling.identity import file_sha256
    from experiments.unlabeled_ablation import RESULTS, TEACHER_HISTORY
    blob = subprocess.run(['git', 'show', TEACHER_HISTORY], cwd=ROOT, capture_output=True)
    if blob.returncode != 0:
        pytest.skip(f'{TEACHER_HISTORY} is not in this clone (shallow?)')
    restored = tmp_path / 'model.safetensors'
    restored.write_bytes(blob.stdout)
    recorded = json.loads((RESULTS / 'unlabeled_ablation.json').read_text())['teacher_sha256']
    assert file_sha256(restored) == recorded   # the hash the protocol compares runs by


def _alive(pid: int) -> bool:
    try:
        with open(f'/proc/{pid}/stat') as f:
            return f.read().rsplit(')', 1)[1].split()[0] != 'Z'   # a zombie has ended
    except FileNotFoundError:
        return False


def test_sigterm_to_an_experiment_stops_the_run_it_started(tmp_path):
    # As the protocol runs it: a training command started from a worker thread.
    pid_file = tmp_path / 'run.pid'
    training = f'import os, time; open({str(pid_file)!r}, "w").write(str(os.getpid())); ' \
               'time.sleep(120)'
    experiment = subprocess.Popen([sys.executable, '-c', (
        'import sys; from concurrent.futures import ThreadPoolExecutor\n'
        'from experiments.runs import run, stop_runs_on_sigterm\n'
        'stop_runs_on_sigterm()\n'
        'with ThreadPoolExecutor(1) as pool:\n'
        f'    list(pool.map(lambda _: run([sys.executable, "-c", {training!r}], '
        f'{str(tmp_path / "run.log")!r}), [0]))\n')], cwd=ROOT)
    for _ in range(300):
        if pid_file.is_file() and pid_file.read_text():
            break
        time.sleep(0.1)
    run_pid = int(pid_file.read_text())
    try:
        experiment.send_signal(signal.SIGTERM)
        assert experiment.wait(timeout=30) == 128 + signal.SIGTERM
        for _ in range(100):
            if not _alive(run_pid):
                break
            time.sleep(0.1)
        assert not _alive(run_pid), 'the training run outlived its experiment'
    finally:   # a failure leaves no process behind
        experiment.kill()
        if _alive(run_pid):
            os.kill(run_pid, signal.SIGKILL)


def test_a_run_logs_into_a_folder_it_makes(tmp_path):
    # On a fresh machine runs/ is empty: the first store's log has no folder yet.
    from experiments.runs import run
    log = tmp_path / 'runs' / 'stores' / 'teacher.0.log'
    run([sys.executable, '-c', 'print("labeled")'], log)
    run([sys.executable, '-c', 'print("resumed")'], log)
    assert log.read_text().split() == ['labeled', 'resumed']


def test_the_table_is_remade_from_the_recorded_json_alone(tmp_path):
    from experiments.unlabeled_ablation import RESULTS
    res = subprocess.run([sys.executable, '-m', 'experiments.unlabeled_ablation', '--table',
                          '--results', str(tmp_path)], cwd=ROOT, capture_output=True, text=True)
    assert res.returncode != 0 and 'unlabeled_ablation.json' in res.stderr   # nothing there
    (tmp_path / 'unlabeled_ablation.json').write_text(
        (RESULTS / 'unlabeled_ablation.json').read_text())
    res = subprocess.run([sys.executable, '-m', 'experiments.unlabeled_ablation', '--table',
                          '--results', str(tmp_path)], cwd=ROOT, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr[-2000:]
    table = json.loads((tmp_path / 'unlabeled_ablation_table.json').read_text())['rows']
    by_row = {r['row']: r for r in table}
    assert by_row['D']['miou - A (95% CI)'] == '+0.0132 [+0.0081, +0.0182] n=5'
    assert by_row['D']['flicker - A (95% CI)'] == '-0.0084 [-0.0095, -0.0074] n=5'


def test_the_cpu_students_verdict_follows_the_rule_written_before_its_runs():
    from experiments import cpu_student
    recorded = json.loads((ROOT / 'experiments/results/best_student.json').read_text())['rows']

    def shifted(row, by, seeds='012'):
        # A spread across seeds, so the paired interval has a width.
        return {s: {**recorded[row]['seeds'][s],
                    'miou': recorded[row]['seeds'][s]['miou'] + by + 0.001 * int(s)}
                for s in seeds}

    assert cpu_student.verdict({'FA': shifted('A', -0.02)}).startswith('an option: FA')
    assert cpu_student.verdict({'FA': shifted('A', 0.01)}) == 'open: FB missing'
    assert cpu_student.verdict({'FA': shifted('A', 0.01), 'FB': shifted('B', 0.0, '01')}) \
        == 'open: FB missing'
    assert cpu_student.verdict({'FA': shifted('A', 0.01), 'FB': shifted('B', 0.01)}) \
        == 'the default: both intervals above -0.005'
    assert cpu_student.verdict({'FA': shifted('A', 0.01), 'FB': shifted('B', -0.02)}) \
        .startswith('an option: FB')
    # A drift check within one seed's noise keeps v2's A; beyond it, this commit's LR-ASPP.
    assert cpu_student.baselines({'Ad': shifted('A', 0.004, '0')})['FA'][0] == 'A (v2)'
    drifted = {'Ad': shifted('A', 0.02, '0'), 'FA': shifted('A', 0.03)}
    assert cpu_student.baselines(drifted)['FA'] == ('Ad', drifted['Ad'])
    # Drifted, Ad trains every seed of FA, and the verdict waits for them.
    assert cpu_student.planned_rows(drifted)['Ad'][5] == 3
    assert cpu_student.planned_rows({})['Ad'][5] == 1
    assert cpu_student.verdict(drifted).startswith('open: the drift check moved; Ad needs')


def test_protocol_v3s_pilot_picks_accuracy_at_ds_stability():
    from experiments import recipe_v3
    runs = {}
    for teacher in ('T1', 'T2'):
        for candidate in recipe_v3.CANDIDATES:
            runs[recipe_v3.row_name(candidate, teacher)] = _runs(0.50, 0.040, seeds=2)
    assert recipe_v3.pilot_pick({**runs, 'BK': {}}) is None          # a row lacks its seeds
    # Nothing steadier: the most accurate (B itself on ties), with T1 (T2 is no better).
    runs['BF'] = _runs(0.503, 0.040, seeds=2)
    assert recipe_v3.pilot_pick(runs) == ('BF', 'T1')
    # Steadier by 0.003 and within 0.005 of B's mIoU qualifies and beats the more accurate.
    runs['BTa'] = _runs(0.496, 0.036, seeds=2)
    runs['BTc'] = _runs(0.490, 0.030, seeds=2)                        # steadier, too costly
    assert recipe_v3.pilot_pick(runs) == ('BTa', 'T1')
    # T2 when its B beats T1's B by more than 0.005; its own candidates are ranked alone.
    runs['B+'] = _runs(0.51, 0.040, seeds=2)
    assert recipe_v3.pilot_pick(runs) == ('B', 'T2')


def test_protocol_v3_runs_b_again_in_bf16_when_its_check_moves():
    from experiments import recipe_v3
    recorded = json.loads((ROOT / 'experiments/results/best_student.json').read_text())['rows']
    b0 = recorded['B']['seeds']['0']
    close = {'Bb': {'0': {**b0, 'miou': b0['miou'] + 0.004}}}
    moved = {'Bb': {'0': {**b0, 'miou': b0['miou'] + 0.02}}}
    assert recipe_v3.planned_rows(recipe_v3.HELD_OUT, close)['Bb'][2] == 1
    assert recipe_v3.planned_rows(recipe_v3.HELD_OUT, moved)['Bb'][2] == 3
    assert recipe_v3.with_recorded(close)['B'] == recorded['B']['seeds']
    assert recipe_v3.with_recorded(moved)['B'] == moved['Bb']
    # B with one seed leaves every verdict interim.
    r = {str(s): {**b0, 'miou': 0.57} for s in range(5)}
    verdicts = recipe_v3.targets({**recipe_v3.with_recorded(moved), 'R': r})
    assert all(v['verdict'].endswith('(interim)') or v['verdict'] == 'open' for v in verdicts)
