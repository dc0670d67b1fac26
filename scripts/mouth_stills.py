"""Mouth stills of a generated take: the widest-open, most rounded (oo) and most closed (m/b/p)
moments while speaking, and a pause, rendered on a photo and cropped to the mouth (docs/model.md).

Usage: python scripts/mouth_stills.py SPEECH PHOTO OUT.png [CHECKPOINT]   (prints each frame's mouth weights;
       the shipped model unless CHECKPOINT is given)
"""
import sys

import numpy as np
from PIL import Image, ImageDraw

from osmnet.generate import Generator
from osmnet.audio import load_audio, loudness, voice_activity
from osmnet.render.portrait import Portrait, render_frames, load_image
from osmnet.data.expression import ExpressionBasis
wav, face, out = sys.argv[1], sys.argv[2], sys.argv[3]
w = load_audio(wav); g = Generator.load(sys.argv[4] if len(sys.argv) > 4 else None)
t = g.generate((w, 16000), takes=1, seed=0)[0]
c = t.channels
jaw = c["jawOpen"]; act = voice_activity(loudness(w, 16000, 25.0))[: t.frames]
wide = int(np.argmax(jaw))
rnd = int(np.argmax(np.where(act > 0.9, c["mouthFunnel"] + c["mouthPucker"] - 0.5 * jaw, -9)))
closed = int(np.argmax(np.where((act > 0.9) & (jaw < 0.06), c["mouthClose"] + c["mouthPressLeft"] + c["mouthRollLower"] - c["mouthFunnel"], -9)))
pause = int(np.argmax(np.where(act < 0.05, 1, 0)))
p = Portrait.from_image(load_image(face))
size = 512
lm = p.landmarks[[13, 14, 61, 291]]
cx, cy = lm[:, 0].mean() * size, lm[:, 1].mean() * size
half = int(0.16 * size)
cells = []
for name, i in (("widest open", wide), ("rounded (oo)", rnd), ("closed (m/b/p)", closed), ("pause", pause)):
    f = next(render_frames(p, t, size, batch=1, basis=ExpressionBasis.load(), start=i, stop=i + 1))
    crop = Image.fromarray(f).crop((int(cx - half), int(cy - half * 0.8), int(cx + half), int(cy + half * 1.2)))
    cells.append((name, i, crop))
    print(name, i, {k: round(float(c[k][i]), 2) for k in ("jawOpen", "mouthFunnel", "mouthPucker", "mouthClose", "mouthPressLeft", "mouthRollLower", "mouthSmileLeft", "mouthLowerDownLeft", "mouthStretchLeft")})
W, H = cells[0][2].size
sheet = Image.new("RGB", (W * len(cells), H + 20), (24, 24, 24)); d = ImageDraw.Draw(sheet)
for k, (name, i, im) in enumerate(cells):
    sheet.paste(im, (k * W, 20)); d.text((k * W + 4, 4), f"{name} {i / 25:.2f}s", fill=(230, 230, 230))
sheet.save(out); print("wrote", out)
