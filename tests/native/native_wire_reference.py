"""A second, independent decoder of the Bocage wire format, written from docs/wire-format.md
alone (pure Python, slow, for tests): if it agrees with the native decoder on every frame and
column the tests throw at it, the document is complete enough to write a decoder from.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

import numpy as np

MAX_VALUES = 1 << 22


class WireError(ValueError):
    pass


def _crc32c_table() -> list[int]:
    table = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        table.append(c)
    return table


_CRC_TABLE = _crc32c_table()


def crc32c(data: bytes) -> int:
    c = 0xFFFFFFFF
    for b in data:
        c = _CRC_TABLE[(c ^ b) & 0xFF] ^ (c >> 8)
    return c ^ 0xFFFFFFFF


def wrap64(x: int) -> int:
    x &= (1 << 64) - 1
    return x - (1 << 64) if x >= 1 << 63 else x


def unzigzag(z: int) -> int:
    return (z >> 1) ^ -(z & 1)


class Cursor:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def left(self) -> int:
        return len(self.data) - self.pos

    def take(self, n: int) -> bytes:
        if n < 0 or n > self.left():
            raise WireError("truncated")
        b = self.data[self.pos : self.pos + n]
        self.pos += n
        return b

    def u8(self) -> int:
        return self.take(1)[0]

    def varint(self) -> int:
        v = shift = 0
        while True:
            b = self.u8()
            v |= (b & 0x7F) << shift
            if not b & 0x80:
                if v >= 1 << 64:
                    raise WireError("varint overflow")
                return v
            shift += 7
            if shift > 63:
                raise WireError("varint overflow")

    def rest(self) -> bytes:
        return self.take(self.left())


class Bits:
    """LSB-first bit reader over one byte string."""

    def __init__(self, data: bytes) -> None:
        self.value = int.from_bytes(data, "little")
        self.size = len(data) * 8
        self.pos = 0

    def read(self, n: int) -> int:
        if self.pos + n > self.size:
            raise WireError("bit stream overrun")
        v = (self.value >> self.pos) & ((1 << n) - 1)
        self.pos += n
        return v

    def done(self) -> None:
        if (self.pos + 7) // 8 != self.size // 8:
            raise WireError("bit stream length mismatch")


def alphabet(m: int) -> int:
    return (1 << m) * (65 - m)


def bin_base(s: int, m: int) -> tuple[int, int]:
    lim = 1 << (m + 1)
    if s < lim:
        return s, 0
    q = s - lim
    e = (q >> m) + 1
    t = (1 << m) | (q & ((1 << m) - 1))
    return t << e, e


def read_table(c: Cursor, size: int) -> tuple[list[int], list[int]]:
    head = c.varint()
    used, layout = head // 2, head % 2
    if used == 0 or used > size:
        raise WireError("bad table")
    syms: list[int] = []
    if layout == 0:
        prev = -1
        for _ in range(used):
            prev = prev + c.varint() + 1
            syms.append(prev)
    else:
        first, span = c.varint(), c.varint()
        bitmap = c.take((span + 7) // 8)
        syms = [first + i for i in range(span) if bitmap[i // 8] >> (i % 8) & 1]
        if len(syms) != used:
            raise WireError("bad bitmap")
    if syms[-1] >= size:
        raise WireError("symbol out of range")
    if used == 1:
        return syms, [0]
    packed = c.take((used + 1) // 2)
    lens = [(packed[i // 2] >> (4 * (i % 2))) & 15 for i in range(used)]
    if any(not 1 <= x <= 12 for x in lens) or sum(2.0**-x for x in lens) != 1.0:
        raise WireError("bad code lengths")
    return syms, lens


def canonical(syms: list[int], lens: list[int]) -> dict[tuple[int, int], int]:
    """(length, code read MSB-first) -> symbol, as in DEFLATE."""
    order = sorted(range(len(syms)), key=lambda i: (lens[i], syms[i]))
    codes: dict[tuple[int, int], int] = {}
    code = prev_len = 0
    for k, i in enumerate(order):
        code = (code + 1) << (lens[i] - prev_len) if k else 0
        prev_len = lens[i]
        codes[(lens[i], code)] = syms[i]
    return codes


def read_symbol(br: Bits, syms: list[int], codes: dict[tuple[int, int], int]) -> int:
    """The next symbol of a canonical Huffman code (no bits for a table of one symbol)."""
    if len(syms) == 1:
        return syms[0]
    code = length = 0
    while True:
        code = (code << 1) | br.read(1)
        length += 1
        if (length, code) in codes:
            return codes[(length, code)]
        if length > 12:
            raise WireError("bad code")


def huff_residuals(c: Cursor, k: int, runs: bool = False) -> list[int]:
    """HUFF residuals, or RHUFF ones (``runs``: symbols from ``alphabet(m)`` on are runs of the
    centre, ``2^j + extra`` long)."""
    centre = unzigzag(c.varint())
    m = c.u8()
    if m > 7:
        raise WireError("bad precision")
    values = alphabet(m)
    syms, lens = read_table(c, values + (64 if runs else 0))
    streams = 4 if k >= 64 else 1
    sizes = [c.varint() for _ in range(streams - 1)]
    bodies = [c.take(s) for s in sizes] + [c.rest()]
    readers = [Bits(b) for b in bodies]
    codes = canonical(syms, lens)
    out: list[int] = []
    token = 0
    while len(out) < k:
        br = readers[token % streams]
        token += 1
        s = read_symbol(br, syms, codes)
        if runs and s >= values:
            j = s - values
            run = (1 << j) | br.read(j)
            if len(out) + run > k:
                raise WireError("run past the column")
            out += [centre] * run
            continue
        base, e = bin_base(s, m)
        z = base | br.read(e)
        out.append(wrap64(centre + unzigzag(z)))
    for br in readers:
        br.done()
    return out


def residuals(method: int, c: Cursor, k: int) -> list[int]:
    if method == 0:
        return [unzigzag(c.varint())] * k
    if method == 1:
        lo = unzigzag(c.varint())
        w = c.u8()
        if w > 64:
            raise WireError("bad width")
        br = Bits(c.take((k * w + 7) // 8))
        out = [wrap64(lo + br.read(w)) for _ in range(k)]
        br.done()
        return out
    if method == 3:
        centre = unzigzag(c.varint())
        out = [centre] * k
        pos = -1
        for j in range(c.varint()):
            gap = c.varint()
            pos = gap if j == 0 else pos + gap
            if (j and gap == 0) or pos >= k:
                raise WireError("bad exception")
            out[pos] = wrap64(centre + unzigzag(c.varint()))
        return out
    return huff_residuals(c, k)


def int_column(data: bytes, n: int) -> list[int]:
    c = Cursor(data)
    tag = c.u8()
    if tag == 0x00:
        out = list(struct.unpack(f"<{n}q", c.take(8 * n)))
    elif tag == 0x01:
        out = [unzigzag(c.varint())] * n
    elif (tag & 0xF0 == 0x10 and (tag >> 2) & 3 <= 2) or 0x20 <= tag <= 0x22:
        rpipe = tag >= 0x20
        d = tag & 3 if rpipe else (tag >> 2) & 3
        if d > n:
            raise WireError("order above count")
        heads = [unzigzag(c.varint()) for _ in range(d)]
        r = huff_residuals(c, n - d, runs=True) if rpipe else residuals(tag & 3, c, n - d)
        if d == 0:
            out = r
        elif d == 1:
            out = [heads[0]]
            for x in r:
                out.append(wrap64(out[-1] + x))
        else:
            diffs = [heads[1]]
            for x in r:
                diffs.append(wrap64(diffs[-1] + x))
            out = [heads[0]]
            for x in diffs:
                out.append(wrap64(out[-1] + x))
    else:
        raise WireError(f"unknown int tag {tag:#x}")
    if c.left():
        raise WireError("trailing bytes")
    return out


def _div(m: int, k: int) -> float:
    # float(m) rounds to nearest even, as does the IEEE division
    return float(np.float64(np.int64(m)) / np.float64(float(10**k)))


def deck(c: Cursor, n: int) -> tuple[list[int], list[int]]:
    """DECK's exponents and mantissas: two integer columns, the first length-prefixed."""
    ks = int_column(c.take(c.varint()), n)
    return ks, int_column(c.rest(), n)


def decj(c: Cursor, n: int) -> tuple[list[int], list[int]]:
    """DECJ's exponents and mantissas: symbols 65 k + b, then the b - 1 bits of zigzag(m)
    below its top bit, value i in stream i % 4."""
    syms, lens = read_table(c, 20 * 65)
    sizes = [c.varint() for _ in range(3)]
    readers = [Bits(c.take(s)) for s in sizes] + [Bits(c.rest())]
    codes = canonical(syms, lens)
    ks: list[int] = []
    ms: list[int] = []
    for i in range(n):
        br = readers[i % 4]
        k, b = divmod(read_symbol(br, syms, codes), 65)
        z = 0 if b == 0 else (1 << (b - 1)) | br.read(b - 1)
        ks.append(k)
        ms.append(unzigzag(z))
    for br in readers:
        br.done()
    return ks, ms


def float_column(data: bytes, n: int, nested: bool = False) -> list[float]:
    c = Cursor(data)
    tag = c.u8()
    if tag == 0x40:
        out = list(struct.unpack(f"<{n}d", c.take(8 * n)))
    elif tag == 0x41:
        out = [struct.unpack("<d", c.take(8))[0]] * n
    elif tag == 0x42:
        e = c.u8()
        if e > 18:
            raise WireError("bad exponent")
        exc = []
        pos = 0
        for j in range(c.varint()):
            gap = c.varint()
            pos = gap if j == 0 else pos + gap
            exc.append((pos, struct.unpack("<d", c.take(8))[0]))
        ms = int_column(c.rest(), n)
        out = [_div(m, e) for m in ms]
        for p, v in exc:
            out[p] = v
    elif tag in (0x43, 0x45):
        ks, ms = decj(c, n) if tag == 0x45 else deck(c, n)
        out = []
        for k, m in zip(ks, ms, strict=True):
            if 0 <= k <= 18:
                out.append(_div(m, k))
            elif k == 19:
                out.append(struct.unpack("<d", struct.pack("<q", m))[0])
            else:
                raise WireError("bad exponent")
    elif tag == 0x44 and not nested:
        runs, u = c.varint(), c.varint()
        values = float_column(c.take(c.varint()), u, nested=True)
        idx = int_column(c.take(c.varint()), runs)
        lens = int_column(c.rest(), runs)
        out = []
        for i, ln in zip(idx, lens, strict=True):
            if not 0 <= i < u or ln < 1:
                raise WireError("bad run")
            out += [values[i]] * ln
        if len(out) != n:
            raise WireError("runs do not add up")
    else:
        raise WireError(f"unknown float tag {tag:#x}")
    if c.left():
        raise WireError("trailing bytes")
    return out


def value_column(data: bytes, n: int) -> np.ndarray:
    if not data:
        raise WireError("empty column")
    if data[0] < 0x40:
        return np.array(int_column(data, n), dtype=np.int64)
    return np.array(float_column(data, n), dtype=np.float64)


def quality_column(data: bytes, n: int) -> np.ndarray:
    c = Cursor(data)
    tag = c.u8()
    if tag == 0:
        out = bytes(n)
    elif tag == 1:
        out = c.take(n)
    elif tag == 2:
        out = b""
        while len(out) < n:
            run, b = c.varint(), c.u8()
            if run == 0 or len(out) + run > n:
                raise WireError("bad run")
            out += bytes([b]) * run
    else:
        raise WireError("bad quality tag")
    if c.left():
        raise WireError("trailing bytes")
    return np.frombuffer(out, dtype=np.uint8).copy()


@dataclass
class RefSeries:
    sensor: str
    metric: str
    timestamps: np.ndarray
    values: np.ndarray
    quality: np.ndarray


@dataclass
class RefFrame:
    territory: str
    gateway: str
    sequence: int
    created_ms: int
    series: list[RefSeries]


def decode_frame(data: bytes) -> RefFrame:
    c = Cursor(data)
    if c.take(4) != b"BCGF" or c.u8() != 1 or c.u8() != 0:
        raise WireError("bad magic, version or flags")
    header_len, body_len, sequence, created_ms, series_count, reading_count = struct.unpack(
        "<HIQqII", c.take(30)
    )
    territory = c.take(c.u8()).decode()
    gateway = c.take(c.u8()).decode()
    if c.pos + 4 != header_len or len(data) != header_len + body_len:
        raise WireError("bad lengths")
    if struct.unpack("<I", c.take(4))[0] != crc32c(data[: header_len - 4]):
        raise WireError("header checksum")
    body = data[header_len:-4]
    if struct.unpack("<I", data[-4:])[0] != crc32c(body):
        raise WireError("body checksum")
    if reading_count > MAX_VALUES:
        raise WireError("too many readings")
    b = Cursor(body)
    series = []
    for _ in range(series_count):
        sensor = b.take(b.varint()).decode()
        metric = b.take(b.varint()).decode()
        n = b.varint()
        ts = np.array(int_column(b.take(b.varint()), n), dtype=np.int64)
        vals = value_column(b.take(b.varint()), n)
        q = quality_column(b.take(b.varint()), n)
        series.append(RefSeries(sensor, metric, ts, vals, q))
    if b.left() or sum(len(s.timestamps) for s in series) != reading_count:
        raise WireError("series disagree with the header")
    return RefFrame(territory, gateway, sequence, created_ms, series)


def decode_timestamps(data: bytes) -> np.ndarray:
    c = Cursor(data)
    n = c.varint()
    return np.array(int_column(c.rest(), n), dtype=np.int64)


def decode_values(data: bytes) -> np.ndarray:
    c = Cursor(data)
    n = c.varint()
    return value_column(c.rest(), n)
