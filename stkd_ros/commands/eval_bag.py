"""`stkd eval-bag`: evaluate models on a recorded drive, write the report and an annotated bag."""

import logging
from pathlib import Path

from stkd_ros.bag.annotate import write_annotated_bag
from stkd_ros.bag.evaluate import evaluate_bag, fetch_frames
from stkd_ros.bag.report import summarize, write_report
from stkd_ros.errors import InputError

log = logging.getLogger(__name__)


def eval_bag(bag, models, topic: str, *, label_topic: str = None, report: str = None,
             write_bag: str = None, max_frames: int = None) -> dict:
    """Run ``models`` over ``topic`` of ``bag``; returns the summary (metrics.json's content)."""
    if not models:
        raise InputError('give at least one --model')
    if write_bag and Path(write_bag).exists():
        raise FileExistsError(f'bag {write_bag} already exists; choose a new path')
    result = evaluate_bag(bag, [str(m) for m in models], topic, label_topic, max_frames)
    summary = summarize(result)
    if report:
        path = write_report(result, report, lambda stamps: fetch_frames(bag, topic, stamps))
        summary['report'] = str(path)
        log.info('report: %s', path)
    if write_bag:
        summary['annotated_bag'] = str(write_annotated_bag(bag, write_bag, topic,
                                                           result['tracks']))
    return summary
