"""What the streaming peers of benchmarks/run share (quix_peer.py, bytewax_peer.py, pathway_peer.py):
their common arguments and how a run's result is written. Standard library only: each peer runs in
its own virtual environment."""
import argparse
import json


def arguments(doc, *extra):
    """The arguments every peer takes (brokers, topic, mode, sample, out), then `extra`: tuples of
    add_argument's positional and keyword arguments."""
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--brokers", required=True)
    parser.add_argument("--topic", required=True)
    parser.add_argument("--mode", choices=["view", "tumbling"], default="view")
    parser.add_argument("--sample", default="", help="comma-separated user ids whose values are written out")
    parser.add_argument("--out", required=True)
    for names, options in extra:
        parser.add_argument(*names, **options)
    return parser.parse_args()


def write(result, out):
    """Writes a run's result (its sampled users' windows under "values") to `out` and prints the
    rest as one JSON line."""
    with open(out, "w") as f:
        json.dump(result, f)
    print(json.dumps({k: v for k, v in result.items() if k != "values"}))
