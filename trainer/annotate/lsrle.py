"""Label Studio's brush RLE (its `brushlabels` "rle" value), written from the format Label Studio documents for its
converter: a bit stream of a 32-bit count of values, the word size - 1 (5 bits), four run-length field widths - 1
(4 bits each), then runs: 1 flag bit (1 = one value repeated, 0 = literal values), 2 bits choosing a width, the run
length - 1 in that width, then the value(s). The values are the mask as RGBA bytes (each pixel four times 0 or 255),
row by row; the stream is padded with zeros to whole bytes and sent as a list of byte values.
"""

from __future__ import annotations

import numpy as np

WORD_BITS = 8
#: Widths of the run-length field, as Label Studio's own encoder uses them.
RUN_BITS = (3, 4, 8, 16)


def encode_brush_rle(mask: np.ndarray) -> list[int]:
    """The bool (H, W) mask as Label Studio's brush RLE: every run one repeated value (flag 1)."""
    flat = mask.reshape(-1).astype(np.uint8) * 255
    starts = np.flatnonzero(np.diff(flat, prepend=-1)) if flat.size else np.zeros(0, int)
    lengths = np.diff(np.append(starts, flat.size)) * 4  # RGBA: four equal bytes per pixel
    bits = [f"{flat.size * 4:032b}", f"{WORD_BITS - 1:05b}", *(f"{b - 1:04b}" for b in RUN_BITS)]
    longest = 1 << RUN_BITS[-1]
    for start, length in zip(starts.tolist(), lengths.tolist(), strict=True):
        value = f"{int(flat[start]):08b}"
        while length:
            chunk = min(length, longest)
            width = next(i for i, b in enumerate(RUN_BITS) if chunk - 1 < 1 << b)
            bits.append(f"1{width:02b}{chunk - 1:0{RUN_BITS[width]}b}{value}")
            length -= chunk
    stream = "".join(bits)
    stream += "0" * (-len(stream) % 8)
    return list(int(stream, 2).to_bytes(len(stream) // 8, "big"))
