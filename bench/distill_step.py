"""
Benchmark: where the time of one distillation step goes, beside a plain student step.

Parts: teacher forward (no grad), student forward + backward with every loss, discriminator
step, and flow for the batch computed cold (DIS) and read from the cache.
"""

import argparse
import tempfile

from report import emit, median_ms
from stkd_ros.config import DistillConfig
from stkd_ros.data.synthetic import SyntheticClips, SyntheticConfig
from stkd_ros.data.transforms import IMAGENET_MEAN, IMAGENET_STD, train_transforms
from stkd_ros.flow import build_flow
from stkd_ros.flow.cache import FlowCache
from stkd_ros.models import build_model
from stkd_ros.training.distill_task import DistillationTask
from stkd_ros.training.tasks import SupervisedTask
import torch


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument('--student', default='lraspp_mobilenetv3')
    parser.add_argument('--teacher-size', default='tiny')
    parser.add_argument('--batch', type=int, default=8)
    parser.add_argument('--size', default='128x256')
    parser.add_argument('--repeats', type=int, default=5)
    parser.add_argument('--out', default=None)
    args = parser.parse_args()
    h, w = (int(v) for v in args.size.split('x'))
    torch.manual_seed(0)
    clips = SyntheticClips(SyntheticConfig(height=h, width=w, frames=12), clips=4,
                           keys_per_clip=4)
    items = [clips[i] for i in range(args.batch)]
    tf = train_transforms(crop_size=(h, w), scale_range=(1.0, 1.0), flip=False)
    batch = {k: torch.stack([tf(c)[k] for c in items]) for k in ('frames', 'labels', 'flows')}

    student = build_model(args.student, 11)
    teacher = build_model('teacher', 11, size=args.teacher_size)
    dis = build_flow('dis')
    task = DistillationTask(student, teacher, 11, DistillConfig(), IMAGENET_MEAN,
                            IMAGENET_STD, flow_source=dis).train()
    task.start_training(lambda step: 1.0, amp=False)
    opt = torch.optim.SGD(task.trainable_parameters(), lr=1e-3)
    plain = SupervisedTask(build_model(args.student, 11)).train()
    p_opt = torch.optim.SGD(plain.trainable_parameters(), lr=1e-3)
    both = torch.cat([batch['frames'][:, 0], batch['frames'][:, 1]])

    def plain_step():
        p_opt.zero_grad()
        plain(batch)['loss'].backward()
        p_opt.step()

    def teacher_forward():
        with torch.no_grad():
            teacher(both)

    def distill_step():
        opt.zero_grad()
        task(batch)['loss'].backward()
        opt.step()

    task(batch)
    judged = task._judged    # the pairs of one forward, judged again at every repeat

    def d_step():
        task._judged = judged
        task.after_step()
    with tempfile.TemporaryDirectory() as tmp:
        cache = FlowCache(tmp, dis, 'bench')
        cold = median_ms(lambda: [dis.between(c, 0, 1) for c in items], args.repeats)
        for c in items:
            cache.between(c, 0, 1, c.gap)
        cached = median_ms(lambda: [cache.between(c, 0, 1, c.gap) for c in items],
                           args.repeats)
    r = args.repeats
    parts = {'plain student step (CE only)': median_ms(plain_step, r),
             'distillation step (all)': None,
             '  teacher forward, 2 frames': median_ms(teacher_forward, r),
             '  student fwd+bwd, all losses (incl. teacher)': median_ms(distill_step, r),
             '  discriminator step': median_ms(d_step, r),
             '  flow DIS, cold': cold, '  flow, cached': cached}
    parts['distillation step (all)'] = (parts['  student fwd+bwd, all losses (incl. teacher)']
                                        + parts['  discriminator step'] + cached)
    base = parts['plain student step (CE only)']
    rows = [{'part': k, 'ms_per_step': v, 'x_plain': v / base} for k, v in parts.items()]
    print(f'batch {args.batch} x 2 frames at {h}x{w}, student {args.student}, teacher '
          f'{args.teacher_size}, {torch.get_num_threads()} threads')
    emit('distill_step', rows, ['part', 'ms_per_step', 'x_plain'], args.out)


if __name__ == '__main__':
    main()
