"""Camera analytics: parking occupancy and zone intrusion from camera frames.

See docs/vision.md. OpenCV (opencv-python-headless) runs only in worker processes
(gateway/vision/worker.py); the gateway's event loop and the pipeline writer thread never
decode or analyse a frame.
"""

from importlib.util import find_spec

from gateway.errors import ConfigProblem

INSTALL_HINT = "scripts/install.sh VENV vision, or pip install 'community-edge-gateway[vision]'"


def require_opencv(cameras: int) -> None:
    """Refuse a site with cameras when the ``vision`` extra is not installed, saying what to install.

    Only looks the modules up (no import): OpenCV is loaded by the worker processes alone, and
    importing it here would cost the gateway's own process tens of megabytes for nothing.
    """
    missing = [name for name in ("cv2", "numpy") if find_spec(name) is None]
    if missing:
        raise ConfigProblem(
            f"this site configures {cameras} camera(s); camera analytics need OpenCV and numpy, and"
            f" {' and '.join(missing)} is not installed. Install the vision extra: {INSTALL_HINT}"
        )
