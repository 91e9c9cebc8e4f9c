"""Generator handler: yields input["n"] chunks {"i": i}; the final output aggregates them."""

from runq import worker


def handler(job):
    for i in range(job["input"]["n"]):
        yield {"i": i}


if __name__ == "__main__":
    worker.start({"handler": handler, "return_aggregate_stream": True})
