import os

os.environ.setdefault("MUJOCO_GL", "disable")
os.environ.setdefault("RAY_AUTH_MODE", "disabled")

