"""
Labels made once, offline, by the teacher on unlabeled video (`stkd label`): a label store.

- ``store``: the store's layout, its manifest, the reading API (``LabelStore``) and a store of
  the synthetic world's ground truth (the oracle);
- ``identity``: what a store was made from (the teacher file's digest, the video source);
- ``sources``: the unlabeled video as named sequences of frames, and shards of them;
- ``passes``: the teacher's probabilities for a frame, test-time augmented;
- ``fusion``: neighbouring frames' probabilities warped along the flow and averaged;
- ``labeler``: one sequence labeled frame by frame through a sliding window;
- ``quality``: the labels scored against ground truth where there is some.

No training code is imported here: training reads stores through ``LabelStore``.
"""
