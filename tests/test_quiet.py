"""Tests for helpers/quiet.py: TensorFlow's start-up lines dropped, everything else passed on."""

import os

from helpers import quiet


def test_quiet_startup_drops_only_tensorflows_startup_lines(capfd):
    with quiet.quiet_startup():
        os.write(2, b"I0000 port.cc:153] oneDNN custom operations are on. You may see\n")
        os.write(2, b"E0000 cuda_platform.cc:52] failed call to cuInit: UNKNOWN ERROR\n")
        os.write(2, b"W0000 a real warning\nand a line without its end")
    assert capfd.readouterr().err == "W0000 a real warning\nand a line without its end"
