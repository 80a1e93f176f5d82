"""Helpers shared by test modules: the CLI as users run it, test videos made with ffmpeg, error-shape checks."""

import io
import json
import logging
import subprocess
import sys
from contextlib import redirect_stderr, redirect_stdout

SEGEDGE = [sys.executable, "-m", "segedge.cli"]


def segedge(*args, env=None):
    return subprocess.run([*SEGEDGE, *map(str, args)], capture_output=True, text=True, env=env)


def segedge_in_process(*args) -> subprocess.CompletedProcess:
    """The CLI's own entry point (same parsing, same one-line error handling and exit codes) without a new
    interpreter: for bad-input cases, where a subprocess would only add seconds of imports (torch) per case."""
    from segedge.cli import main

    stdout, stderr = io.StringIO(), io.StringIO()
    warnings = logging.StreamHandler(stderr)  # logging's own handlers keep the stderr of the first call
    logging.getLogger("segedge").addHandler(warnings)
    code = 0
    with redirect_stdout(stdout), redirect_stderr(stderr):
        try:
            main([str(arg) for arg in args])
        except SystemExit as exit_:
            code = exit_.code if isinstance(exit_.code, int) else 1
        finally:
            logging.getLogger("segedge").removeHandler(warnings)
    return subprocess.CompletedProcess(list(args), code, stdout.getvalue(), stderr.getvalue())


def ffprobe(path, *entries, stream="v:0"):
    result = subprocess.run(["ffprobe", "-v", "error", "-count_frames", "-select_streams", stream, "-show_entries",
                             ",".join(entries), "-of", "json", str(path)], capture_output=True, text=True, check=True)
    return json.loads(result.stdout)


def make_video(path, audio=True, seconds=1, size="96x64", rotate=None):
    inputs = ["-f", "lavfi", "-i", f"testsrc=size={size}:rate=10:duration={seconds}"]
    if audio:
        inputs += ["-f", "lavfi", "-i", f"sine=frequency=440:duration={seconds}"]
    codec = ["-c:v", "libx264", "-pix_fmt", "yuv420p"] + (["-c:a", "aac"] if audio else [])
    plain = path.with_name(f"plain_{path.name}") if rotate else path
    subprocess.run(["ffmpeg", "-v", "error", "-y", *inputs, *codec, "-shortest", str(plain)], check=True)
    if rotate:  # a phone-style display matrix; ffmpeg 5 sets it from this tag on a stream copy
        subprocess.run(["ffmpeg", "-v", "error", "-y", "-i", str(plain), "-c", "copy", "-metadata:s:v:0",
                        f"rotate={rotate}", str(path)], check=True)
    return path


def assert_one_line_error(result, *fragments):
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert lines and lines[-1].startswith("segedge: error:"), result.stderr
    for fragment in fragments:
        assert fragment in lines[-1]

