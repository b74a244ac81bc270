"""
What a person looks at: eval-bag's report of a drive, the pseudo-label review, and their parts.

ROS-free: the parts (panels, H.264 video, HTML pieces) draw and write what callers compose;
the ``drive_*`` modules make eval-bag's report (metrics.json, report.md, report.html, the
side-by-side video) from the evaluation pass's results; ``label_review`` makes a label
store's videos.
"""
