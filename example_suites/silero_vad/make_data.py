"""Regenerate inputs.npz / calib.npz from real (synthesized) speech: espeak-ng, 16 kHz.

Needs `espeak-ng` (apt-get install espeak-ng), scipy, silero-vad. Three sentences separated by ~1 s of
quiet room-level noise are streamed through the original silero_vad_op18_ifless.onnx (CPU, sr=16000)
exactly like silero_vad.utils_vad.OnnxWrapper does: each step's `input` is the previous step's last 64
samples + the next 512 samples, and `state` is the state the model returned the step before. Every
step's (input, state) pair (state split into h, c as prepare.py does) is a valid example of the
prepared one-step model; 32 evenly spaced steps go to inputs.npz, every 5th of the other steps to calib.npz.

    python example_suites/silero_vad/make_data.py
"""

from __future__ import annotations

import importlib.resources
import io
import subprocess
import wave
from pathlib import Path

import numpy as np
import onnxruntime as ort
from scipy.signal import resample_poly

HERE = Path(__file__).parent
SENTENCES = [
    ("en-us", 160, "The quick brown fox jumps over the lazy dog."),
    ("en-gb", 140, "Please run the conformance tests on the board before merging."),
    ("de", 170, "Die Sprachaktivitaetserkennung laeuft auf dem Prozessor."),
]
CHUNK, CONTEXT = 512, 64


def speak(voice: str, speed: int, text: str) -> np.ndarray:
    wav = subprocess.run(
        ["espeak-ng", "-v", voice, "-s", str(speed), "--stdout", text], check=True, capture_output=True
    ).stdout
    with wave.open(io.BytesIO(wav)) as w:
        rate = w.getframerate()
        pcm = np.frombuffer(w.readframes(w.getnframes()), np.int16).astype(np.float32) / 32768
    return resample_poly(pcm, 16000, rate).astype(np.float32)  # espeak-ng speaks at 22050 Hz


def audio() -> np.ndarray:
    rng = np.random.default_rng(0)
    parts = []
    for voice, speed, text in SENTENCES:
        parts += [rng.normal(0, 1e-3, 16000).astype(np.float32), speak(voice, speed, text)]
    parts.append(rng.normal(0, 1e-3, 16000).astype(np.float32))
    a = np.concatenate(parts)
    return (a + rng.normal(0, 1e-3, a.shape)).astype(np.float32)


def stream(a: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    model = importlib.resources.files("silero_vad").joinpath("data/silero_vad_op18_ifless.onnx")
    sess = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    state = np.zeros((2, 1, 128), np.float32)
    context = np.zeros((1, CONTEXT), np.float32)
    xs, states, probs = [], [], []
    for i in range(0, len(a) - CHUNK + 1, CHUNK):
        x = np.concatenate([context, a[None, i : i + CHUNK]], axis=1)
        xs.append(x)
        states.append(state)
        prob, state = sess.run(None, {"input": x, "state": state, "sr": np.array(16000, np.int64)})
        probs.append(float(prob[0, 0]))
        context = x[:, -CONTEXT:]
    return np.stack(xs), np.stack(states), np.array(probs, np.float32)


def main() -> None:
    a = audio()
    x, s, p = stream(a)
    idx_in = np.linspace(0, len(x) - 1, 32).round().astype(int)
    idx_cal = np.setdiff1d(np.arange(len(x)), idx_in)[::5]

    def feeds(idx):  # the prepared model takes the state as h = state[0], c = state[1], each [1, 128]
        return {"input": x[idx], "h": s[idx, 0], "c": s[idx, 1]}

    np.savez_compressed(HERE / "inputs.npz", **feeds(idx_in))
    np.savez_compressed(HERE / "calib.npz", **feeds(idx_cal))
    print(
        f"{len(a) / 16000:.1f} s audio, {len(x)} steps, speech (p>0.5) {int((p > 0.5).sum())}; "
        f"inputs {len(idx_in)} (speech {int((p[idx_in] > 0.5).sum())}), calibration {len(idx_cal)}"
    )


if __name__ == "__main__":
    main()
