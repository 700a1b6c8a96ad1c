"""npnet._io.atomic_write: the single path by which npnet writes a file."""
import os
import stat

import pytest

from npnet import _io


def test_atomic_write_creates_a_readable_file_and_replaces_it_whole(tmp_path):
    path = tmp_path / "f.bin"
    seen = []
    _io.atomic_write(path, lambda f, tmp: (seen.append(tmp), f.write(b"first")))
    assert path.read_bytes() == b"first"
    assert stat.S_IMODE(path.stat().st_mode) == 0o644           # not mkstemp's 0600
    tmp_name = os.path.basename(seen[0])
    assert tmp_name.startswith(".f.bin.") and tmp_name.endswith(".tmp")   # written beside the target
    _io.atomic_write(path, lambda f, _: f.write(b"second"), suffix=".part")
    assert path.read_bytes() == b"second" and os.listdir(tmp_path) == ["f.bin"]


@pytest.mark.parametrize("error", [OSError(28, "No space left on device"), KeyboardInterrupt()])
def test_atomic_write_that_fails_keeps_the_old_file_and_no_temp_file(tmp_path, error):
    path = tmp_path / "f.bin"
    path.write_bytes(b"old")

    def write(f, _):
        f.write(b"half of the new")
        raise error

    with pytest.raises(type(error)):
        _io.atomic_write(path, write)
    assert path.read_bytes() == b"old" and os.listdir(tmp_path) == ["f.bin"]
