"""Real speech cut into short lines, plus the broken inputs a batch must report and survive."""
from __future__ import annotations

import numpy as np
import pytest

SPEECH = ("makeittalk_M6_04_16k.wav", "librispeech_198-209-0000.ogg", "dreamtalk_french1.wav")


@pytest.fixture(scope="session")
def cut_speech(shared_data):
    """cut(folder, count, seconds): `count` pieces of real speech, line00.wav ..., 16 kHz."""
    import soundfile as sf

    from osmnet.audio import load_audio

    waves = [load_audio(shared_data / "audio" / name) for name in SPEECH]

    def cut(folder, count: int, seconds: float = 2.0):
        n = int(seconds * 16000)
        for i in range(count):
            wave = waves[i % len(waves)]
            start = (i // len(waves)) * n % max(1, len(wave) - n)
            sf.write(folder / f"line{i:02d}.wav", wave[start:start + n], 16000)
        return folder
    return cut


@pytest.fixture(scope="session")
def speech_folder(cut_speech, tmp_path_factory):
    """Three short real lines, a corrupt file and a silent one in one folder."""
    import soundfile as sf

    folder = cut_speech(tmp_path_factory.mktemp("lines"), 3)
    (folder / "corrupt.wav").write_bytes(b"RIFF\x10\x00\x00\x00WAVEjunk" * 64)
    sf.write(folder / "silent.wav", np.zeros(32000, np.float32), 16000)
    return folder
