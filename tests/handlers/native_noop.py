"""Returns None at once: {"output": null}. For measuring the worker's own overhead."""

from runq import worker


def handler(job):
    return None


if __name__ == "__main__":
    worker.start({"handler": handler})
