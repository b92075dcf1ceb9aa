"""Camera analytics: parking occupancy and zone intrusion from camera frames.

See docs/vision.md. OpenCV (opencv-python-headless) runs only in worker processes
(gateway/vision/worker.py); the gateway's event loop and the pipeline writer thread never
decode or analyse a frame.
"""
