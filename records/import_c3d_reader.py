"""The C3D reader child: ``python import_c3d_reader.py IN.c3d OUT.npz [MAX_BYTES]``.

Run as its own process by :mod:`steplab.records.import_c3d`, so that a file that
makes ezc3d crash (a segmentation fault on a corrupt parameter name) takes down
only this child.  It imports nothing but the standard library, NumPy and ezc3d,
and writes one ``.npz``: ``analogs`` (float64, channels × samples) and ``meta``
(JSON: the header's rates and counts and every parameter's value).  Exit status 0
when written; 3 with one line on stderr when ezc3d refuses the file.

``MAX_BYTES`` caps the child's address space (``RLIMIT_AS``): a corrupt frame count
can make ezc3d reserve gigabytes for a file of kilobytes; with the cap it fails
at once (``out of memory``) instead of starving the machine.
"""

from __future__ import annotations

import json
import sys


def _jsonable(v):
    import numpy as np

    if isinstance(v, np.ndarray):
        return v.tolist()
    if isinstance(v, (list, tuple)):
        return [_jsonable(x) for x in v]
    if isinstance(v, (np.integer, np.floating)):
        return v.item()
    return v


def read(src: str, dst: str) -> None:
    import ezc3d
    import numpy as np

    c = ezc3d.c3d(src)
    h = c.c3d_swig.header()
    params = {}
    for group, items in c["parameters"].items():
        params[group] = {name: _jsonable(item["value"]) for name, item in items.items()
                         if isinstance(item, dict) and "value" in item}
    meta = {
        "points_rate_hz": float(c["header"]["points"]["frame_rate"]),
        "analogs_rate_hz": float(c["header"]["analogs"]["frame_rate"]),
        "n_points": int(h.nb3dPoints()),
        "analog_samples_per_frame": int(h.nbAnalogByFrame()),
        "n_frames": int(h.nbFrames()),
        "parameters": params,
    }
    analogs = np.asarray(c["data"]["analogs"], dtype=np.float64)
    if analogs.ndim == 3:
        analogs = analogs.reshape(analogs.shape[-2], analogs.shape[-1])
    np.savez(dst, analogs=analogs, meta=np.array(json.dumps(meta)))


def _cap_memory(max_bytes: int) -> None:
    try:
        import resource
    except ImportError:  # not on POSIX: no cap
        return
    _, hard = resource.getrlimit(resource.RLIMIT_AS)
    cap = max_bytes if hard == resource.RLIM_INFINITY else min(max_bytes, hard)
    resource.setrlimit(resource.RLIMIT_AS, (cap, hard))


def main(argv: list[str]) -> int:
    if len(argv) not in (2, 3):
        print("usage: import_c3d_reader.py IN.c3d OUT.npz [MAX_BYTES]", file=sys.stderr)
        return 2
    if len(argv) == 3:
        _cap_memory(int(argv[2]))
    try:
        read(argv[0], argv[1])
    except MemoryError:
        print("out of memory: the file declares far more data than it holds", file=sys.stderr)
        return 3
    except Exception as exc:  # ezc3d raises RuntimeError/IOError/IndexError/... on bad files
        if "bad_alloc" in str(exc):
            print("out of memory: the file declares far more data than it holds", file=sys.stderr)
            return 3
        msg = " ".join(str(exc).split()) or type(exc).__name__
        print(msg, file=sys.stderr)
        return 3
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
