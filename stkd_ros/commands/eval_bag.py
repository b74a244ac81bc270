"""
`stkd eval-bag`: evaluate models on a recorded drive, write the report and an annotated bag.

The report (report.md, report.html with the drive as video, metrics.json, plots) and the
annotated bag are each written under a temporary name and renamed into place when whole: a
failure part way leaves neither, and an earlier report at the same place is replaced only by
a complete one.
"""

from contextlib import ExitStack
import logging
from pathlib import Path

from stkd_ros.commands.bag_evaluation import evaluate_bag
from stkd_ros.commands.staging import check_destination, staged
from stkd_ros.errors import InputError
from stkd_ros.report.drive_page import PAGE
from stkd_ros.report.drive_report import is_report, summarize, write_report
from stkd_ros.report.drive_video import DriveVideo, VIDEO_NAME
from stkd_ros.temporal_fusion import FusionSettings

log = logging.getLogger(__name__)


def eval_bag(bag, models, topic: str, *, label_topic: str = None, report: str = None,
             write_bag: str = None, max_frames: int = None,
             temporal_fusion: bool = False, fusion: FusionSettings = None) -> dict:
    """
    Run ``models`` over ``topic`` of ``bag``; returns the summary (metrics.json's content).

    ``temporal_fusion``: each model scored with its per-frame masks and, from the same forward
    pass, with its masks fused along the drive, as segment_node's ``temporal_fusion``
    publishes them; ``fusion`` the stage's settings (given, fusion is on; None: the
    defaults).
    """
    if not models:
        raise InputError('give at least one --model')
    if write_bag:
        check_destination(write_bag)
    models = [str(m) for m in models]
    fusion = fusion or (FusionSettings() if temporal_fusion else None)
    # One pass feeds the report's video and the annotated bag; each output is renamed into
    # place only once the pass and the report are whole.
    with ExitStack() as outputs:
        folder = outputs.enter_context(staged(report, is_report)) if report else None
        annotated = outputs.enter_context(staged(write_bag)) if write_bag else None
        if folder is None:
            result = evaluate_bag(bag, models, topic, label_topic, max_frames,
                                  write_bag=annotated, fusion=fusion)
            summary = summarize(result)
        else:
            folder.mkdir()
            with DriveVideo(folder / VIDEO_NAME) as video:
                result = evaluate_bag(bag, models, topic, label_topic, max_frames,
                                      on_frame=video.add, write_bag=annotated, fusion=fusion)
            summary = write_report(result, folder, video.info)
    if report:
        summary['report'] = str(Path(report) / 'report.md')
        summary['report_html'] = str(Path(report) / PAGE)
        log.info('report: %s', summary['report_html'])
    if write_bag:
        summary['annotated_bag'] = str(write_bag)
    return summary
