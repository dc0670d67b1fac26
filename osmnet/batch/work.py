"""Making one line inside a worker (process or Ray actor): load the model once, then per line
read the audio, refuse silence, generate the takes and serialise them to take-file bytes.
"""
from __future__ import annotations

import json
import os
import time
from pathlib import Path

from osmnet.batch.lines import Line, Settings

# A line whose loudest 40 ms frame is below this is silence, not quiet speech (the speech in
# ../shared/data/audio peaks between -22 and -6 dBFS; digital zero reads -100): it fails instead.
SILENT_DBFS = -60.0



def make_line(gen, line: Line, settings: Settings, audio_bytes: bytes | None = None) -> dict:
    """Generate one line's takes and serialise them (the workers do the CPU work, the driver
    only writes bytes). Never raises for a bad line: a corrupt, unreadable or silent file comes
    back as {"status": "failed", "reason": ...} and the batch goes on."""
    from blender_addon.core.errors import UserInputError
    from osmnet.audio import SAMPLE_RATE, loudness, read_speech

    t0, c0 = time.perf_counter(), time.process_time()  # wall, and CPU of the whole worker (both threads)
    tmp = None
    try:
        if audio_bytes is None:
            wave = read_speech(line.audio)
        else:  # sent by the driver: a cluster node need not see the driver's files
            tmp = _temp_file(audio_bytes, Path(line.audio).suffix)
            try:
                wave = read_speech(tmp)
            finally:
                os.unlink(tmp)
        loudest = float(loudness(wave).max())
        if loudest < SILENT_DBFS:
            raise UserInputError(f"no speech: the audio is silent (its loudest frame is {loudest:.0f} dBFS, "
                                 f"below {SILENT_DBFS:.0f}); check the file and its recording level")
        takes = gen.generate((wave, SAMPLE_RATE), takes=line.takes, seed=line.seed, diversity=line.diversity,
                             intensity=settings.intensity, fps=settings.fps)
    except (UserInputError, OSError) as e:  # the file's fault (unreadable, corrupt, empty, silent)
        reason = str(e).replace(tmp, line.audio) if tmp else str(e)  # name the user's file, not our copy
        return {"status": "failed", "reason": reason, "seconds": time.perf_counter() - t0,
                "cpu_s": time.process_time() - c0}
    files = {}
    for k, take in enumerate(takes):
        take.meta.update(line=line.name, audio=Path(line.audio).name)
        files[f"take_{k:02d}.json"] = json.dumps(take.to_dict(), separators=(",", ":")).encode()
    return {"status": "done", "files": files, "frames": takes[0].frames, "generator": gen.name,
            "duration_s": round(len(wave) / SAMPLE_RATE, 3), "seconds": time.perf_counter() - t0,
            "cpu_s": time.process_time() - c0}


def _temp_file(data: bytes, suffix: str) -> str:
    import tempfile

    fd, tmp = tempfile.mkstemp(suffix=suffix, prefix="osmnet-batch-")
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    return tmp


def load_generator(settings: Settings, device: str, checkpoint_bytes: bytes | None = None):
    """The model, loaded once per worker (from bytes when the driver sent the checkpoint)."""
    from osmnet import runtime
    from osmnet.generate import Generator

    runtime.configure(threads=1)  # before torch starts: workers, not threads, fill the cores
    if checkpoint_bytes is None:
        return Generator.load(settings.checkpoint, device=device)
    tmp = _temp_file(checkpoint_bytes, ".pt")
    try:
        gen = Generator.load(tmp, device=device)
    finally:
        os.unlink(tmp)
    gen.name = Path(settings.checkpoint).stem
    return gen


def safe_make_line(gen, line, settings, audio_bytes=None) -> dict:
    """make_line, with a bug in one line reported as that line's failure instead of ending the batch."""
    try:
        return make_line(gen, line, settings, audio_bytes)
    except Exception as e:  # noqa: BLE001 - the batch must go on; the reason names the error
        return {"status": "failed", "reason": f"internal error: {type(e).__name__}: {e}", "seconds": 0.0}
