"""Create a file atomically, never replacing one that exists.

A recording, a recovered trial or a calibration record is written whole or
not at all, and never over a file that appeared at the same name meanwhile
(another recording, a ``recover`` run by a colleague, a file copied in by
hand).  Checking for the name at the start is not enough: the write comes
minutes later.  So ``create_new_file``:

1. writes the content to a temporary file in the target's own folder (so the
   last step stays on one file system) and fsyncs it;
2. ``os.link``s it to the final name: the kernel refuses atomically if the
   name exists (``FileExistsError``), so there is no window in which a file
   made by someone else could be replaced;
3. unlinks the temporary name and fsyncs the folder, so the new name survives
   a power cut.

File systems without hard links (FAT on a USB stick, some network shares)
fall back to reserving the name with ``O_CREAT | O_EXCL`` and renaming the
temporary file over that reservation, which is ours: still never a foreign
file replaced; a crash in between leaves an empty file at the name, never a
half-written one.
"""

from __future__ import annotations

import errno
import os
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

_NO_HARD_LINKS = {errno.EPERM, errno.EOPNOTSUPP, errno.ENOTSUP, errno.EXDEV, errno.EMLINK, errno.ENOSYS}


def _fsync_folder(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # some file systems cannot fsync a folder
    finally:
        os.close(fd)


def create_new_file(path: str | Path, content: bytes | Callable[[BinaryIO], None]) -> Path:
    """Write ``content`` to the new file ``path`` atomically; refuse if ``path`` exists.

    Parameters
    ----------
    path : str or Path
        The file to create.  Its folder must exist.
    content : bytes or callable
        The bytes, or a function that writes them to the binary file object it is given.

    Returns
    -------
    Path
        ``path``.

    Raises
    ------
    FileExistsError
        ``path`` exists (also when it appeared while the content was written); nothing was changed.
    OSError
        The content could not be written (disk full, no permission); no temporary file is left.
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.partial")
    if os.path.lexists(path):
        raise FileExistsError(errno.EEXIST, "File exists", str(path))
    try:
        with open(tmp, "xb") as fh:
            if callable(content):
                content(fh)
            else:
                fh.write(content)
            fh.flush()
            os.fsync(fh.fileno())
        try:
            os.link(tmp, path)  # atomic: fails if the name exists
        except OSError as exc:
            if exc.errno not in _NO_HARD_LINKS:
                raise
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)  # reserve the name (ours now)
            os.close(fd)
            os.replace(tmp, path)
    finally:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
    _fsync_folder(path.parent)
    return path
