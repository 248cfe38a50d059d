"""Settings every suite shares."""

import os

# Exploration draws from each job's id, and ids are random: left on, about one route in ten could try the local GPU
# instead of the offer a test expects. Tests of exploration turn it on for their own stack.
os.environ.setdefault("HVR_EXPLORATION_SHARE", "0")
