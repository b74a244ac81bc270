"""
What a replay asks of the nodes: every frame of the bag segmented and measured.

Live, segment_node keeps only the latest frame and a subscription keeps one message, so a
frame that comes while the model is busy is dropped. A replay is an evaluation of the whole
drive, as eval-bag is, so both queue instead. replay.launch.py and ``stkd demo``'s replay
read these, so that they measure the same thing.
"""

#: segment_node: a queue of frames, and masks held until flicker_monitor has matched, so
#: that no mask is lost to discovery.
SEGMENT_NODE = {'frame_buffer': 100, 'qos_depth': 10, 'wait_for_mask_subscribers': 1}
#: flicker_monitor: no step lost when it falls behind.
FLICKER_MONITOR = {'qos_depth': 100}
#: bag_player starts once this many readers (segment_node, flicker_monitor) subscribe.
PLAYER_WAITS_FOR = 2
