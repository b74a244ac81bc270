"""
What a person looks at: videos of masks, and the pieces of an HTML page.

ROS-free and model-free: callers (eval-bag's report, the pseudo-label review) compose the
images and the content; this package draws panels, encodes video and writes HTML.
"""
